//! The engine on a disk that loses power: the ledger, the state fold and
//! retention run on the storage crate's `LazyDisk`, which at a crash keeps
//! a random subset of the writes not yet synced (whole, dropped, torn at a
//! sector, or scattered) and of the directory changes not yet synced.
//!
//! After every crash and replay: every event a sync acknowledged is there,
//! and the replayed state equals the live state as it was right after the
//! last event that survived, checked against a fingerprint kept for every
//! event. Each run prints its seed; `FERROX_TEST_SEED` replays one.

use std::{
    collections::BTreeMap,
    hash::{BuildHasher, RandomState},
    path::Path,
    sync::Arc,
};

use ferrox_storage::{Options, sim::LazyDisk};

use crate::{
    fixtures::{DESTINATIONS, destination, new_logs, source, subscription},
    history::History,
    journal::{Accepted, Event, Journal, Keyed, WalJournal, body_hash},
    ledger::Ledger,
    model::{Alert, AlertKind, Attempt, Id, LogStatus, LogType},
    retention::{checkpoint_history, plan},
    server::rebuild,
    state::Fingerprint,
};

const HOUR_MS: i64 = 3_600_000;

/// A small deterministic generator (SplitMix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn options() -> Options {
    Options { segment_bytes: 16 << 10, max_record_bytes: 8 << 10, seed: Some(11), ..Options::default() }
}

/// The engine on `disk`: its journal and its ledger.
struct Engine {
    journal: Arc<WalJournal>,
    ledger: Ledger,
}

impl Engine {
    fn open(disk: &LazyDisk, history_dir: &Path) -> Self {
        let journal = Arc::new(
            WalJournal::open_on(Arc::new(disk.clone()), Path::new("/data/wal"), options())
                .expect("opening the journal"),
        );
        let history = History::open(history_dir, journal.released_below()).expect("opening the history");
        let state = rebuild(journal.as_ref(), history).expect("replaying the journal");
        Self { ledger: Ledger::new(journal.clone(), state), journal }
    }

    fn record(&self, event: Event) -> u64 {
        self.ledger.record(&event).expect("appending")
    }
}

/// One run of `steps` random operations with crashes; returns how many
/// crashes it survived.
fn run(seed: u64, steps: usize) -> usize {
    let mut rng = Rng(seed);
    let mut disk = LazyDisk::new();
    // The history is on a real disk, which does not lose power here: it
    // holds only what the journal made durable, so it must agree with
    // whatever the journal keeps.
    let history_dir = tempfile::tempdir().expect("a directory for the history");
    let mut engine = Engine::open(&disk, history_dir.path());
    // The live state's fingerprint after each event, by position.
    let mut history: BTreeMap<u64, Fingerprint> = BTreeMap::new();
    let (mut now_ms, mut next_id, mut crashes) = (1_796_400_000_000i64, 1000u128, 0usize);
    let mut fresh = || {
        next_id += 1;
        Id(next_id)
    };
    let remember = |engine: &Engine, history: &mut BTreeMap<u64, Fingerprint>, position: u64| {
        history.insert(position, engine.ledger.state().read().fingerprint());
    };
    for event in [Event::TokenKeyCreated { key: [7; 32] }, Event::SourceUpserted(source())].into_iter().chain(
        (0..DESTINATIONS).flat_map(|n| {
            [Event::DestinationUpserted(destination(n, 0)), Event::SubscriptionUpserted(subscription(n))]
        }),
    ) {
        let position = engine.record(event);
        remember(&engine, &mut history, position);
    }
    engine.journal.wal().sync().expect("syncing the configuration");
    let mut acknowledged = engine.journal.durable_through();
    for _ in 0..steps {
        let head = |engine: &Engine, dest: u128| {
            let state = engine.ledger.state().read();
            state.queue_head(Id(100 + dest), u64::MAX).map(|h| h.id)
        };
        let dest = u128::from(rng.below(DESTINATIONS as u64) as u8);
        let event = match rng.below(20) {
            0..=6 => {
                let mask = 1 + rng.below(7);
                let logs = new_logs(&engine.ledger.state().read(), mask, &mut fresh);
                if logs.is_empty() {
                    continue;
                }
                let payload = vec![b'p'; rng.below(1500) as usize];
                let keyed = rng.below(4) == 0;
                Some(Event::MessageAccepted(Accepted {
                    message_id: engine.ledger.state().read().next_message_id.max(1),
                    log_type: LogType::Async,
                    source_id: Id(1),
                    data_model: "PatientAdmin".into(),
                    event_type: "NewPatient".into(),
                    received_at_ms: now_ms,
                    idempotency: keyed
                        .then(|| Keyed { key: format!("k{}", rng.below(8)), body_hash: body_hash(&payload) }),
                    logs,
                    payload,
                }))
            }
            7..=10 => head(&engine, dest).map(|log_id| {
                let attempt = Attempt {
                    id: fresh(),
                    started_at_ms: now_ms,
                    duration_ms: 2,
                    http_status: Some(200),
                    error: None,
                    response: Some("{}".into()),
                };
                Event::AttemptRecorded { log_id, attempt }
            }),
            11..=13 => head(&engine, dest).map(|log_id| {
                let status = [LogStatus::Succeeded, LogStatus::Failed, LogStatus::Filtered, LogStatus::Retrying]
                    [rng.below(4) as usize];
                Event::LogStatusChanged { log_id, status, at_ms: now_ms, reason: None }
            }),
            14 => Some(Event::QueuePaused { destination_id: Id(100 + dest), at_ms: now_ms, reason: "op".into() }),
            15 => Some(Event::QueueResumed { destination_id: Id(100 + dest), at_ms: now_ms }),
            16 => Some(Event::AlertRaised(Alert {
                id: fresh(),
                kind: AlertKind::QueuePaused,
                destination_id: Id(100 + dest),
                log_id: None,
                at_ms: now_ms,
                text: "paused".into(),
            })),
            17 => {
                now_ms += rng.below(120) as i64 * 60_000;
                let done = checkpoint_history(&engine.ledger).expect("checkpointing the history");
                let planned = plan(&engine.ledger, now_ms, HOUR_MS, done).expect("planning a compaction");
                if let Some(at) = planned.snapshot_at {
                    engine.journal.wal().sync_through(at).expect("syncing the snapshot");
                    acknowledged = acknowledged.max(engine.journal.durable_through());
                }
                if let Some(below) = planned.release {
                    engine.ledger.release_below(below).expect("releasing");
                }
                // Releasing hides what retention let go: the state at the
                // last event, as a restart shows it, is the state after that.
                if planned.snapshot_at.is_some() || planned.release.is_some() {
                    let at = engine.ledger.state().read().position;
                    remember(&engine, &mut history, at);
                }
                None
            }
            18 => {
                engine.journal.wal().sync().expect("syncing");
                acknowledged = engine.journal.durable_through();
                None
            }
            _ => {
                // Power is lost: whatever was not synced may be kept, torn
                // or dropped.
                let Engine { journal, ledger } = engine;
                drop(ledger);
                drop(journal);
                disk = disk.crash(rng.next());
                engine = Engine::open(&disk, history_dir.path());
                crashes += 1;
                let recovered = engine.ledger.state().read().position;
                assert!(recovered >= acknowledged, "seed {seed}: acknowledged {acknowledged}, recovered {recovered}");
                history.retain(|&p, _| p <= recovered);
                let (&last, expected) = history.last_key_value().expect("the first events are synced");
                let expired = now_ms - crate::state::IDEMPOTENCY_WINDOW_MS;
                let expected = expected.clone().without_keys_before(expired);
                let replayed = engine.ledger.state().read().fingerprint().without_keys_before(expired);
                assert_eq!(last, recovered, "seed {seed}: the recovered position has no recorded state");
                if replayed != expected {
                    panic!(
                        "seed {seed}: after crash {crashes}, the replayed state differs from the live one at {last}: {:#?}",
                        replayed.differences(&expected)
                    );
                }
                None
            }
        };
        if let Some(event) = event {
            let position = engine.record(event);
            remember(&engine, &mut history, position);
        }
    }
    crashes
}

#[test]
fn after_any_power_loss_every_acknowledged_event_survives_and_replay_equals_the_live_state() {
    let seed = std::env::var("FERROX_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| RandomState::new().hash_one("powerloss"));
    eprintln!("powerloss: seed {seed} (FERROX_TEST_SEED={seed} to replay)");
    let mut crashes = 0;
    for run_number in 0..24u64 {
        crashes += run(seed.wrapping_add(run_number), 300);
    }
    assert!(crashes > 50, "only {crashes} crashes were tried");
}
