//! Writes a data directory holding a long history whose logs have all
//! ended, straight through the journal (no HTTP, no engine running), for
//! the history benchmark (`benches/history/run.sh`):
//!
//! ```sh
//! cargo run --release --example make_history -- <out dir> <messages> [--failed-every K]
//! ```
//!
//! The directory holds `ferrox.toml` (an admin token, a retention of 168 h,
//! one source that can SEND, four staging destinations on 127.0.0.1:9 where
//! nothing listens, and their subscriptions), `data/wal/` (the journal),
//! `ids.txt` (10,000 log IDs spread evenly over the history),
//! `destinations.txt` (the destinations' IDs) and `generated.txt` (what
//! was written, as `key=value` lines).
//!
//! The journal starts with the token key and the file's objects, with the
//! file's IDs and values, so a start finds nothing to apply (checked here
//! with the engine's own planner). Then, for message `i`, from 0:
//! `MessageAccepted` (a 1 KiB PatientAdmin `NewPatient`, one log to
//! destination `i % 4`), `AttemptRecorded` and `LogStatusChanged` to
//! `Succeeded`, or, for every K-th log of each destination (default 1000),
//! an HTTP 500 attempt and `Failed`. Failures are counted per destination
//! because with `i % K` they would all fall on one destination whenever K
//! is a multiple of 4. Messages are received evenly over the 100 hours
//! before now, so the directory is within retention for 68 hours.

use std::{
    fmt::Write as _,
    fs,
    path::{Path, PathBuf},
    time::{Instant, SystemTime, UNIX_EPOCH},
};

use ferrox::{
    auth,
    clock::rfc3339,
    config::Config,
    ids::{IdSource, OsIds},
    inbound::{self, Endpoint},
    journal::{Accepted, Event, Journal, NewLog, WalJournal},
    model::{Attempt, Destination, Environment, Id, LogStatus, LogType, Source, Subscription},
    objects::file,
    state::State,
};
use ferrox_storage::{
    Options,
    format::{RECORD_ALIGN, RECORD_HEADER_BYTES},
};

const ADMIN_TOKEN: &str = "history-bench-admin-token";
const SOURCE: Id = Id(0x5e1f_0000_0000_4000_8000_0000_0000_0001);
const API_KEY: &str = "history-ehr-key";
const SECRET: &str = "history-ehr-secret-0123456789";
/// Destination `n` is `DESTINATION + n`, its subscription `SUBSCRIPTION + n`.
const DESTINATION: u128 = 0xde57_0000_0000_4000_8000_0000_0000_0001;
const SUBSCRIPTION: u128 = 0x5ab5_0000_0000_4000_8000_0000_0000_0001;
const DESTINATIONS: u64 = 4;
const SIGNING_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const TIMEOUT_MS: u64 = 30_000;
const RETENTION_HOURS: u64 = 168;
/// The history covers the hours before now.
const HISTORY_MS: i64 = 100 * 3_600_000;
const PAYLOAD_BYTES: usize = 1024;
/// Log IDs written to `ids.txt`, spread evenly over the history.
const SAMPLE_IDS: u64 = 10_000;
/// Events appended between syncs: the WAL buffers them until a sync.
const SYNC_EVERY_EVENTS: u64 = 10_000;
const SUCCESS_RESPONSE: &str = r#"{"Meta":{"DataModel":"PatientAdmin","EventType":"NewPatient"},"Status":"accepted"}"#;
const FAILURE_RESPONSE: &str = r#"{"Meta":{"Errors":[{"Text":"receiver unavailable"}]}}"#;
const FAILURE_ERROR: &str = "HTTP 500: receiver unavailable";

struct Args {
    out: PathBuf,
    messages: u64,
    failed_every: u64,
}

fn main() {
    let args = parse_args();
    assert!(!args.out.join("data").exists(), "{} already holds a data directory", args.out.display());
    fs::create_dir_all(&args.out).expect("creating the out dir");
    let text = config_text();
    fs::write(args.out.join("ferrox.toml"), &text).expect("writing ferrox.toml");
    let mut config = Config::parse(&text).unwrap_or_else(|e| panic!("the generated configuration: {e}"));
    config.data_dir = args.out.join("data");
    let objects = objects();
    check_file_agrees(&config, &objects);

    let options = Options {
        segment_bytes: config.storage.segment_bytes,
        max_record_bytes: config.max_record_bytes(),
        ..Options::default()
    };
    let journal = WalJournal::open(&config.wal_dir(), options).expect("opening the journal");
    let mut writer = Writer { journal, unsynced: 0 };
    for event in &objects {
        writer.append(event);
    }
    let started = Instant::now();
    let sample = history(&mut writer, &args);
    writer.sync();
    let seconds = started.elapsed().as_secs_f64();
    let (records, record_bytes) = framed_bytes(&writer.journal);
    // Closed first, so that a segment made ahead of need is counted.
    drop(writer);
    let (segments, disk_bytes) = segment_files(&config.wal_dir());
    let failed = failed_count(&args);

    let per_message = |bytes: u64| bytes as f64 / args.messages.max(1) as f64;
    let summary = [
        ("messages", args.messages.to_string()),
        ("failed", failed.to_string()),
        ("failed_every", args.failed_every.to_string()),
        ("seconds", format!("{seconds:.2}")),
        ("messages_per_s", format!("{:.0}", args.messages as f64 / seconds)),
        ("records", records.to_string()),
        ("wal_record_bytes", record_bytes.to_string()),
        ("wal_record_bytes_per_message", format!("{:.0}", per_message(record_bytes))),
        ("segment_files", segments.to_string()),
        ("wal_disk_bytes", disk_bytes.to_string()),
        ("wal_disk_bytes_per_message", format!("{:.0}", per_message(disk_bytes))),
        ("generated_at_ms", now_ms().to_string()),
    ];
    let lines: String = summary.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
    write_lines(&args.out.join("ids.txt"), sample.iter());
    write_lines(&args.out.join("destinations.txt"), (0..DESTINATIONS).map(destination_id));
    fs::write(args.out.join("generated.txt"), &lines).expect("writing generated.txt");
    eprint!("make_history: wrote {}\n{lines}", args.out.display());
}

fn parse_args() -> Args {
    let usage = || -> ! {
        eprintln!("usage: make_history <out dir> <messages> [--failed-every K]");
        std::process::exit(2);
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let number = |text: &str| text.replace('_', "").parse::<u64>().unwrap_or_else(|_| usage());
    let (out, messages, failed_every) = match args.as_slice() {
        [out, messages] => (out, number(messages), 1000),
        [out, messages, flag, k] if flag == "--failed-every" => (out, number(messages), number(k)),
        _ => usage(),
    };
    if failed_every == 0 {
        usage();
    }
    Args { out: PathBuf::from(out), messages, failed_every }
}

fn destination_id(n: u64) -> Id {
    Id(DESTINATION + u128::from(n))
}

/// The configuration file: every field of its objects given, so that
/// the objects in the journal equal what the engine builds from it.
fn config_text() -> String {
    let mut text = format!(
        "admin_token = \"{ADMIN_TOKEN}\"\n\n[storage]\nretention_hours = {RETENTION_HOURS}\n\n\
         [[sources]]\nid = \"{SOURCE}\"\nname = \"EHR\"\napi_key = \"{API_KEY}\"\nsecret = \"{SECRET}\"\n"
    );
    for n in 0..DESTINATIONS {
        let _ = write!(
            text,
            "\n[[destinations]]\nid = \"{id}\"\nname = \"History {n}\"\nurl = \"http://127.0.0.1:9/history/{n}\"\n\
             environment = \"staging\"\nverification_token = \"history-token-{n}\"\n\
             signing_secret = \"{SIGNING_SECRET}\"\ntimeout_ms = {TIMEOUT_MS}\nenabled = true\n",
            id = destination_id(n),
        );
    }
    for n in 0..DESTINATIONS {
        let _ = write!(
            text,
            "\n[[subscriptions]]\nid = \"{id}\"\nsource_id = \"{SOURCE}\"\ndestination_id = \"{destination}\"\n\
             data_model = \"PatientAdmin\"\n",
            id = Id(SUBSCRIPTION + u128::from(n)),
            destination = destination_id(n),
        );
    }
    text
}

/// The token key and the file's objects, as events.
fn objects() -> Vec<Event> {
    let ids = OsIds::default();
    let mut key = [0u8; 32];
    ids.fill(&mut key);
    let source = Source {
        id: SOURCE,
        name: "EHR".into(),
        api_key: API_KEY.into(),
        secret_hash: auth::hash_secret(SECRET, &ids),
        alert_emails: Vec::new(),
    };
    let mut events = vec![Event::TokenKeyCreated { key }, Event::SourceUpserted(source)];
    for n in 0..DESTINATIONS {
        events.push(Event::DestinationUpserted(Destination {
            id: destination_id(n),
            name: format!("History {n}"),
            url: format!("http://127.0.0.1:9/history/{n}"),
            environment: Environment::Staging,
            verification_token: format!("history-token-{n}"),
            signing_secret: SIGNING_SECRET.into(),
            timeout_ms: TIMEOUT_MS,
            enabled: true,
            alert_emails: Vec::new(),
            alert_depth: None,
            alert_age_ms: None,
            client_cert: None,
            fifo_key: None,
            max_in_flight: 1,
        }));
    }
    for n in 0..DESTINATIONS {
        events.push(Event::SubscriptionUpserted(Subscription {
            id: Id(SUBSCRIPTION + u128::from(n)),
            source_id: SOURCE,
            destination_id: destination_id(n),
            data_model: "PatientAdmin".into(),
            event_types: Vec::new(),
            transform: None,
            response_transform: None,
        }));
    }
    events
}

/// Stops unless the engine, given this file and these objects, would
/// find nothing to write at start.
fn check_file_agrees(config: &Config, objects: &[Event]) {
    let mut state = State::default();
    for (position, event) in (1..).zip(objects) {
        state.apply(position, event);
    }
    let plan = file::plan(&config.declared(), &state, &OsIds::default())
        .unwrap_or_else(|errors| panic!("the generated configuration is refused:\n  {}", errors.join("\n  ")));
    assert!(plan.event.is_none(), "the file and the journal disagree; a start would write {:?}", plan.event);
}

struct Writer {
    journal: WalJournal,
    unsynced: u64,
}

impl Writer {
    fn append(&mut self, event: &Event) {
        self.journal.append(event).unwrap_or_else(|e| panic!("appending to the journal: {e}"));
        self.unsynced += 1;
        if self.unsynced >= SYNC_EVERY_EVENTS {
            self.sync();
        }
    }

    fn sync(&mut self) {
        self.journal.wal().sync().unwrap_or_else(|e| panic!("syncing the journal: {e}"));
        self.unsynced = 0;
    }
}

/// Whether the `i`th message's log fails: every K-th log of its destination.
fn fails(i: u64, failed_every: u64) -> bool {
    (i / DESTINATIONS) % failed_every == failed_every - 1
}

fn failed_count(args: &Args) -> u64 {
    (0..DESTINATIONS).map(|d| args.messages.saturating_sub(d).div_ceil(DESTINATIONS) / args.failed_every).sum()
}

/// Appends every message with its outcome; returns the sampled log IDs.
fn history(writer: &mut Writer, args: &Args) -> Vec<Id> {
    let n = args.messages;
    let first_ms = now_ms() - HISTORY_MS;
    let mut rng = SplitMix(0x0123_4567_89ab_cdef ^ n);
    let mut sample = Vec::new();
    let mut next_sample = 0;
    let (started, mut reported) = (Instant::now(), Instant::now());
    for i in 0..n {
        let received_at_ms = first_ms + i64::try_from(u128::from(i) * HISTORY_MS as u128 / u128::from(n)).unwrap_or(0);
        let log = NewLog { id: rng.id(), attempt_id: rng.id(), destination_id: destination_id(i % DESTINATIONS) };
        if i == next_sample {
            sample.push(log.id);
            next_sample = (sample.len() as u64 * n).div_ceil(SAMPLE_IDS.min(n));
        }
        let payload = payload(i, received_at_ms);
        if i == 0 || i == n - 1 {
            inbound::parse_redox(&payload, Endpoint::Send)
                .unwrap_or_else(|e| panic!("message {i} is not a valid SEND: {:?}", e.error));
        }
        writer.append(&Event::MessageAccepted(Accepted {
            message_id: i + 1,
            log_type: LogType::Async,
            source_id: SOURCE,
            data_model: "PatientAdmin".into(),
            event_type: "NewPatient".into(),
            received_at_ms,
            idempotency: None,
            logs: vec![log],
            payload,
        }));
        for event in outcome(log, received_at_ms, fails(i, args.failed_every)) {
            writer.append(&event);
        }
        if reported.elapsed().as_secs() >= 2 {
            reported = Instant::now();
            let rate = i as f64 / started.elapsed().as_secs_f64();
            eprintln!("make_history: {i} of {n} messages ({:.0}%), {rate:.0} messages/s", i as f64 * 100.0 / n as f64);
        }
    }
    sample
}

/// The attempt and final status of a log received at `received_at_ms`.
fn outcome(log: NewLog, received_at_ms: i64, failed: bool) -> [Event; 2] {
    let started_at_ms = received_at_ms + 2;
    let duration_ms = 4;
    let (http_status, error, response, status) = match failed {
        false => (200, None, SUCCESS_RESPONSE, LogStatus::Succeeded),
        true => (500, Some(FAILURE_ERROR.to_owned()), FAILURE_RESPONSE, LogStatus::Failed),
    };
    let attempt = Attempt {
        id: log.attempt_id,
        started_at_ms,
        duration_ms,
        http_status: Some(http_status),
        error: error.clone(),
        response: Some(response.to_owned()),
    };
    [
        Event::AttemptRecorded { log_id: log.id, attempt },
        Event::LogStatusChanged { log_id: log.id, status, at_ms: started_at_ms + duration_ms as i64, reason: error },
    ]
}

/// A PatientAdmin `NewPatient` of exactly `PAYLOAD_BYTES`, padded by a note.
fn payload(i: u64, received_at_ms: i64) -> Vec<u8> {
    const FIRST: [&str; 4] = ["Timothy", "Barbara", "Keva", "Mateo"];
    const LAST: [&str; 4] = ["Bixby", "Bixby", "Green", "Alvarez"];
    const SEX: [&str; 4] = ["Male", "Female", "Female", "Male"];
    let k = (i % 4) as usize;
    let head = format!(
        r#"{{"Meta":{{"DataModel":"PatientAdmin","EventType":"NewPatient","EventDateTime":"{at}","Test":false,"Source":{{"ID":"{SOURCE}","Name":"EHR"}}}},"Patient":{{"Identifiers":[{{"ID":"{mrn:010}","IDType":"MR"}},{{"ID":"E{mrn:09}","IDType":"EHRID"}}],"Demographics":{{"FirstName":"{first}","LastName":"{last}","DOB":"1981-07-{day:02}","SSN":"101-01-{ssn:04}","Sex":"{sex}","Address":{{"StreetAddress":"4762 Hickory Street","City":"Monroe","State":"WI","ZIP":"53566","County":"Green","Country":"US"}},"PhoneNumber":{{"Home":"+18088675301"}},"EmailAddresses":["patient{mrn}@example.org"],"Language":"en"}},"Notes":[""#,
        at = rfc3339(received_at_ms),
        mrn = i + 1,
        first = FIRST[k],
        last = LAST[k],
        day = 1 + i % 28,
        ssn = i % 10_000,
        sex = SEX[k],
    );
    let tail = r#""]}}"#;
    let mut body = String::with_capacity(PAYLOAD_BYTES);
    body.push_str(&head);
    let note = "Admitted through the emergency department; history on file. ";
    while body.len() + tail.len() < PAYLOAD_BYTES {
        let room = PAYLOAD_BYTES - tail.len() - body.len();
        body.push_str(&note[..room.min(note.len())]);
    }
    body.push_str(tail);
    body.into_bytes()
}

/// Records in the journal and their framed bytes (header and padding).
fn framed_bytes(journal: &WalJournal) -> (u64, u64) {
    let wal = journal.wal();
    let (mut records, mut bytes) = (0u64, 0u64);
    for record in wal.iter_from(wal.first_seq()) {
        let record = record.unwrap_or_else(|e| panic!("reading the journal back: {e}"));
        records += 1;
        bytes += (RECORD_HEADER_BYTES + record.payload().len().next_multiple_of(RECORD_ALIGN)) as u64;
    }
    (records, bytes)
}

/// The WAL's segment files and their bytes: segments are created whole,
/// zero-filled, one ahead of need.
fn segment_files(wal_dir: &Path) -> (u64, u64) {
    let entries = fs::read_dir(wal_dir).unwrap_or_else(|e| panic!("listing {}: {e}", wal_dir.display()));
    let (mut files, mut bytes) = (0, 0);
    for entry in entries {
        let entry = entry.unwrap_or_else(|e| panic!("listing {}: {e}", wal_dir.display()));
        if entry.path().extension().is_some_and(|x| x == "seg") {
            files += 1;
            bytes += entry.metadata().map_or(0, |m| m.len());
        }
    }
    (files, bytes)
}

fn write_lines<T: std::fmt::Display>(path: &Path, items: impl Iterator<Item = T>) {
    let text: String = items.map(|item| format!("{item}\n")).collect();
    fs::write(path, text).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}

fn now_ms() -> i64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).expect("a clock after 1970");
    i64::try_from(since.as_millis()).expect("a clock before 2262")
}

/// SplitMix64: log and attempt IDs, fast and repeatable.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A version 4 UUID.
    fn id(&mut self) -> Id {
        let bits = (u128::from(self.next()) << 64) | u128::from(self.next());
        Id((bits & !(0xF000 << 64) & !(0xC << 60)) | (0x4000 << 64) | (0x8 << 60))
    }
}
