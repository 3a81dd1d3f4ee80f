//! Load tool: the real `ferrox` binary (release) on a temporary data
//! directory, N connections sending PatientAdmin `NewPatient` messages to
//! `POST /endpoint`, and M destinations served by a fast receiver in this
//! process (actix-web). Reports accepted/s and delivered/s, and the
//! latency of accept and of accept → delivered (p50, p90, p99, p99.9, max,
//! from HDR histograms), as a table and, with `--json`, as JSON.
//!
//! ```sh
//! cargo build --release --bin ferrox
//! cargo run --release --example load -- --connections 64 --payload 1024 --duration 10
//! cargo run --release --example load -- --rate 5000 --destinations 10 --json report.json
//! ```
//!
//! Closed loop (the default): each connection sends its next SEND when the
//! last one is answered. Open loop (`--rate R`): R SENDs a second in all,
//! spread evenly over the connections, on a fixed schedule; each latency
//! counts from the request's scheduled start, so a slow answer that delays
//! the next requests is charged to them too (no coordinated omission).
//!
//! Accept is the time from a SEND's start to its 200 (the message is then
//! synced to disk). Accept → delivered is the time from the same start to
//! the arrival of the message at the receiver, once per destination. Only
//! SENDs answered after the warm-up and before the end of the run are
//! measured (in the open loop, a SEND the engine kept waiting past its
//! slot counts from that slot, however long ago it was); after the run the
//! tool waits (up to a minute) for every accepted message to reach every
//! destination, and accept → delivered takes in those deliveries too.
//!
//! The engine binary is `ferrox` in the directory above this example's
//! (`target/release/ferrox`), `FERROX_BENCH_BIN`, or `--binary`.

#![allow(clippy::print_stdout)]

use std::{
    collections::HashMap,
    fs::File,
    io::Write,
    path::{Path, PathBuf},
    process::{Child, Command, ExitCode, Stdio},
    sync::{
        Arc, OnceLock,
        atomic::{AtomicU64, Ordering},
        mpsc,
    },
    thread,
    time::{Duration, Instant},
};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use clap::Parser;
use hdrhistogram::Histogram;
use parking_lot::Mutex;
use serde_json::{Value, json};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SOURCE: &str = "00000000-0000-4000-8000-000000000001";
const API_KEY: &str = "load-key";
const SECRET: &str = "load-secret";
const ADMIN: &str = "load-operator-token-0123456789";
/// Longest wait for every accepted message's deliveries after the run.
const DRAIN_LIMIT: Duration = Duration::from_secs(60);
/// Longest wait for the engine to start and take SENDs.
const START_LIMIT: Duration = Duration::from_secs(30);
/// A message's ID in the payload: fixed width, so that every payload of a
/// run has the same size and the ID can be written in place.
const ID_DIGITS: usize = 12;
/// The most logs a message may have, so the most destinations.
const MAX_DESTINATIONS: u64 = 256;

#[derive(Parser, Debug)]
#[command(about = "Drives the ferrox engine with real HTTP SENDs and measures accept and delivery")]
struct Args {
    /// The engine binary [default: FERROX_BENCH_BIN, or target/release/ferrox next to this example]
    #[arg(long)]
    binary: Option<PathBuf>,
    /// HTTP connections sending at once, one thread each
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=4096))]
    connections: u64,
    /// Size of each SEND's body in bytes (256 to 1048576)
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u64).range(256..=1_048_576))]
    payload: u64,
    /// Destinations subscribed to every message, each served by the embedded receiver
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=MAX_DESTINATIONS))]
    destinations: u64,
    /// Deliveries in flight per destination (`max_in_flight`, over a `fifo_key` unique to each message); 1 is strict FIFO
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=64))]
    lanes: u64,
    /// Seconds measured
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds of load before the measurement
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Open loop: SENDs a second in all, spread over the connections [default: closed loop]
    #[arg(long)]
    rate: Option<f64>,
    /// Write the report as JSON to this file (`-`: stdout, the table then goes to stderr)
    #[arg(long)]
    json: Option<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(report) => match output(&args, &report) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("ferrox load: {e}");
                ExitCode::FAILURE
            }
        },
        Err(e) => {
            eprintln!("ferrox load: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A message accepted by the engine whose deliveries have not all arrived.
struct Pending {
    /// The SEND's start (closed loop) or scheduled start (open loop).
    start: Instant,
    /// Whether the SEND was answered in the measured window.
    measured: bool,
    /// The destinations it reached, a bit each.
    seen: [u64; 4],
    remaining: u32,
}

struct Book {
    pending: HashMap<u64, Pending>,
    /// Deliveries that arrived before their SEND's answer was read
    /// (destination, arrival), by message ID.
    early: HashMap<u64, Vec<(usize, Instant)>>,
    /// Accept → delivered, microseconds, measured messages only.
    delivered: Histogram<u64>,
    /// Arrival of the last delivery of a known message.
    last_delivery: Option<Instant>,
}

/// What the receiver and the senders share.
struct Tracker {
    destinations: usize,
    /// The measured window, set when the senders start.
    window: OnceLock<(Instant, Instant)>,
    book: Mutex<Book>,
    /// Deliveries that arrived in the measured window, of any message.
    in_window: AtomicU64,
    /// A (message, destination) delivered again.
    duplicates: AtomicU64,
    /// Deliveries without a message ID or to an unknown path.
    malformed: AtomicU64,
}

impl Book {
    /// Counts one delivery of `pending`; false when that destination had
    /// it already.
    fn record(&mut self, pending: &mut Pending, destination: usize, at: Instant) -> bool {
        let (word, bit) = (destination / 64, 1u64 << (destination % 64));
        if pending.seen[word] & bit != 0 {
            return false;
        }
        pending.seen[word] |= bit;
        pending.remaining -= 1;
        if pending.measured {
            record(&mut self.delivered, at.saturating_duration_since(pending.start));
        }
        self.last_delivery = Some(self.last_delivery.map_or(at, |last| last.max(at)));
        true
    }
}

impl Tracker {
    fn new(destinations: usize) -> Result<Self, String> {
        Ok(Self {
            destinations,
            window: OnceLock::new(),
            book: Mutex::new(Book {
                pending: HashMap::new(),
                early: HashMap::new(),
                delivered: histogram()?,
                last_delivery: None,
            }),
            in_window: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            malformed: AtomicU64::new(0),
        })
    }

    /// A SEND answered 200 with this message ID.
    fn accepted(&self, id: u64, start: Instant, measured: bool) {
        let mut book = self.book.lock();
        let mut pending = Pending { start, measured, seen: [0; 4], remaining: self.destinations as u32 };
        for (destination, at) in book.early.remove(&id).unwrap_or_default() {
            if !book.record(&mut pending, destination, at) {
                self.duplicates.fetch_add(1, Ordering::Relaxed);
            }
        }
        if pending.remaining > 0 {
            book.pending.insert(id, pending);
        }
    }

    /// A delivery arrived at the receiver.
    fn delivered(&self, id: u64, destination: usize, at: Instant) {
        if self.window.get().is_some_and(|&(start, end)| at >= start && at < end) {
            self.in_window.fetch_add(1, Ordering::Relaxed);
        }
        let mut book = self.book.lock();
        let Some(mut pending) = book.pending.remove(&id) else {
            book.early.entry(id).or_default().push((destination, at));
            return;
        };
        if !book.record(&mut pending, destination, at) {
            self.duplicates.fetch_add(1, Ordering::Relaxed);
        }
        if pending.remaining > 0 {
            book.pending.insert(id, pending);
        }
    }
}

fn histogram() -> Result<Histogram<u64>, String> {
    Histogram::new(3).map_err(|e| format!("histogram: {e}"))
}

/// Records a latency in microseconds. `record` grows the histogram as
/// needed; `saturating_record` would clamp to its current range instead.
fn record(h: &mut Histogram<u64>, d: Duration) {
    let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
    if h.record(us).is_err() {
        h.saturating_record(us);
    }
}

/// Reads the whole body, as a real receiver does (actix-web closes a
/// connection whose request body was left unread).
async fn receive(req: HttpRequest, _body: web::Bytes, tracker: web::Data<Arc<Tracker>>) -> HttpResponse {
    let at = Instant::now();
    let id = req.headers().get("ferrox-message-id").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    let destination =
        req.path().strip_prefix("/d").and_then(|d| d.parse::<usize>().ok()).filter(|&d| d < tracker.destinations);
    match (id, destination) {
        (Some(id), Some(destination)) => tracker.delivered(id, destination, at),
        _ => {
            tracker.malformed.fetch_add(1, Ordering::Relaxed);
        }
    }
    HttpResponse::Ok().body("{}")
}

/// Starts the receiver on its own thread; returns its port.
fn start_receiver(tracker: Arc<Tracker>) -> Result<u16, String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let server = HttpServer::new(move || {
                App::new()
                    .app_data(web::Data::new(tracker.clone()))
                    .app_data(web::PayloadConfig::new(16 << 20))
                    .default_service(web::to(receive))
            })
            .workers(2)
            .bind(("127.0.0.1", 0));
            match server {
                Ok(server) => {
                    let _ = tx.send(Ok(server.addrs()[0].port()));
                    let _ = server.run().await;
                }
                Err(e) => {
                    let _ = tx.send(Err(format!("the receiver could not bind: {e}")));
                }
            }
        })
    });
    rx.recv().map_err(|_| "the receiver did not start".to_owned())?
}

fn config(args: &Args, port: u16, data: &Path) -> String {
    // The defaults hold 1 MiB payloads: max_body_bytes 10 MiB, WAL
    // segments of 64 MiB.
    let mut toml = format!(
        "admin_token = \"{ADMIN}\"\ndata_dir = \"{}\"\n[[sources]]\nid = \"{SOURCE}\"\nname = \"load\"\napi_key = \"{API_KEY}\"\nsecret = \"{SECRET}\"\n",
        data.display()
    );
    let lanes = if args.lanes > 1 {
        format!("fifo_key = \".Patient.Identifiers[0].ID\"\nmax_in_flight = {}\n", args.lanes)
    } else {
        String::new()
    };
    for i in 0..args.destinations {
        toml += &format!(
            "[[destinations]]\nid = \"00000000-0000-4000-9000-{i:012}\"\nname = \"d{i}\"\nurl = \"http://127.0.0.1:{port}/d{i}\"\nenvironment = \"production\"\n{lanes}[[subscriptions]]\nsource_id = \"{SOURCE}\"\ndestination_id = \"00000000-0000-4000-9000-{i:012}\"\ndata_model = \"PatientAdmin\"\n"
        );
    }
    toml
}

/// The engine process; killed when dropped.
struct Engine {
    child: Child,
    url: String,
    token: String,
}

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn engine_binary(args: &Args) -> Result<PathBuf, String> {
    if let Some(bin) = &args.binary {
        return Ok(bin.clone());
    }
    if let Some(bin) = std::env::var_os("FERROX_BENCH_BIN") {
        return Ok(bin.into());
    }
    // target/release/examples/load → target/release/ferrox
    let exe = std::env::current_exe().map_err(|e| format!("this program's path: {e}"))?;
    let bin = exe.parent().and_then(Path::parent).map(|dir| dir.join("ferrox"));
    match bin {
        Some(bin) if bin.is_file() => Ok(bin),
        _ => Err(format!(
            "no engine binary next to {}: run `cargo build --release --bin ferrox` first, or give --binary",
            exe.display()
        )),
    }
}

/// A client whose every phase times out after `limit`. Not a global
/// timeout: with one, ureq resolves the address on a new thread for every
/// request, pooled connection or not.
fn agent_config(limit: Duration) -> ureq::config::ConfigBuilder<ureq::typestate::AgentScope> {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(limit))
        .timeout_send_request(Some(limit))
        .timeout_send_body(Some(limit))
        .timeout_recv_response(Some(limit))
        .timeout_recv_body(Some(limit))
}

fn agent(limit: Duration) -> ureq::Agent {
    agent_config(limit).build().into()
}

/// The last lines of a file, for an error message.
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(10)..].join("\n")
}

fn start_engine(bin: &Path, dir: &Path, config_path: &Path) -> Result<Engine, String> {
    let (out_path, err_path) = (dir.join("engine.out"), dir.join("engine.err"));
    let stdout = File::create(&out_path).map_err(|e| format!("{}: {e}", out_path.display()))?;
    let stderr = File::create(&err_path).map_err(|e| format!("{}: {e}", err_path.display()))?;
    let mut command = Command::new(bin);
    // The engine takes every FERROX_ variable as a configuration key.
    for name in ferrox::config::env_variables_set() {
        command.env_remove(name);
    }
    let child = command
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(config_path)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .map_err(|e| format!("could not start {}: {e}", bin.display()))?;
    let mut engine = Engine { child, url: String::new(), token: String::new() };
    let started = Instant::now();
    let failed = |engine: &mut Engine, what: String| {
        let status = engine.child.try_wait().ok().flatten().map_or(String::new(), |s| format!(" ({s})"));
        format!("{what}{status}; the engine's stderr ends with:\n{}", tail(&err_path))
    };
    // Its address, once bound.
    loop {
        let out = std::fs::read_to_string(&out_path).unwrap_or_default();
        if let Some(line) = out.lines().find(|l| l.contains("listening on")) {
            engine.url = line.trim_start_matches("ferrox listening on ").trim().to_owned();
            break;
        }
        if matches!(engine.child.try_wait(), Ok(Some(_))) {
            return Err(failed(&mut engine, format!("the engine ({}) exited at start", bin.display())));
        }
        if started.elapsed() > START_LIMIT {
            return Err(failed(&mut engine, "the engine did not report its address".to_owned()));
        }
        thread::sleep(Duration::from_millis(20));
    }
    let agent = agent(Duration::from_secs(10));
    // Ready once the journal is replayed.
    loop {
        let ready = agent.get(format!("{}/readyz", engine.url)).call().map(|r| r.status() == 200);
        if matches!(ready, Ok(true)) {
            break;
        }
        if started.elapsed() > START_LIMIT {
            return Err(failed(&mut engine, "the engine did not become ready".to_owned()));
        }
        thread::sleep(Duration::from_millis(20));
    }
    let body = json!({ "apiKey": API_KEY, "secret": SECRET });
    let reply = agent
        .post(format!("{}/auth/authenticate", engine.url))
        .send_json(&body)
        .and_then(|mut r| r.body_mut().read_json::<Value>())
        .map_err(|e| failed(&mut engine, format!("authentication: {e}")))?;
    engine.token = match reply["accessToken"].as_str() {
        Some(token) => token.to_owned(),
        None => return Err(failed(&mut engine, format!("authentication answered {reply}"))),
    };
    Ok(engine)
}

/// A SEND body of exactly `size` bytes, and where its message ID goes.
fn payload(size: usize) -> (Vec<u8>, usize) {
    let head = r#"{"Meta":{"DataModel":"PatientAdmin","EventType":"NewPatient"},"Patient":{"Identifiers":[{"ID":""#;
    let middle = r#"","IDType":"MR"}],"Notes":[""#;
    let end = r#""]}}"#;
    let pad = size.saturating_sub(head.len() + ID_DIGITS + middle.len() + end.len());
    let mut body = Vec::with_capacity(size);
    body.extend_from_slice(head.as_bytes());
    body.extend_from_slice(&[b'0'; ID_DIGITS]);
    body.extend_from_slice(middle.as_bytes());
    body.resize(body.len() + pad, b'x');
    body.extend_from_slice(end.as_bytes());
    (body, head.len())
}

/// What the senders share, read only.
struct Plan {
    url: String,
    auth: String,
    connections: u64,
    size: usize,
    rate: Option<f64>,
    /// When the senders start (the warm-up's start).
    t0: Instant,
    window: (Instant, Instant),
}

/// One connection's figures.
struct Sent {
    /// Accept latency, microseconds, measured SENDs answered 200.
    accept: Histogram<u64>,
    accepted: u64,
    refused: u64,
    errors: u64,
    outside_accepted: u64,
    outside_refused: u64,
    outside_errors: u64,
    /// Open loop: SENDs scheduled before the end that were never sent.
    missed: u64,
    first_refusal: Option<String>,
    first_error: Option<String>,
}

fn sender(plan: &Plan, tracker: &Tracker, connection: u64) -> Result<Sent, String> {
    // One agent, so one keep-alive connection, per thread.
    let agent: ureq::Agent =
        agent_config(Duration::from_secs(60)).max_idle_connections(1).max_idle_connections_per_host(1).build().into();
    let (mut body, id_at) = payload(plan.size);
    let mut sent = Sent {
        accept: histogram()?,
        accepted: 0,
        refused: 0,
        errors: 0,
        outside_accepted: 0,
        outside_refused: 0,
        outside_errors: 0,
        missed: 0,
        first_refusal: None,
        first_error: None,
    };
    let end = plan.window.1;
    thread::sleep(plan.t0.saturating_duration_since(Instant::now()));
    for seq in 0u64.. {
        let now = Instant::now();
        let start = match plan.rate {
            None if now >= end => break,
            None => now,
            Some(rate) => {
                // This connection's share of the schedule: SENDs number
                // connection, connection + N, connection + 2N, ...
                let slot =
                    |k: u64| plan.t0 + Duration::from_secs_f64((k * plan.connections + connection) as f64 / rate);
                let at = slot(seq);
                if at >= end {
                    break;
                }
                if now >= end {
                    // Behind schedule at the end: count what was not sent.
                    let total = (end - plan.t0).as_secs_f64() * rate;
                    let scheduled = ((total - connection as f64) / plan.connections as f64).ceil().max(0.0) as u64;
                    sent.missed = scheduled.saturating_sub(seq);
                    break;
                }
                thread::sleep(at.saturating_duration_since(now));
                at
            }
        };
        let id = connection * 100_000_000 + seq;
        body[id_at..id_at + ID_DIGITS].copy_from_slice(format!("{id:0width$}", width = ID_DIGITS).as_bytes());
        let result = agent
            .post(&plan.url)
            .header("authorization", &plan.auth)
            .header("content-type", "application/json")
            .send(&body[..]);
        let answered = Instant::now();
        // Measured: answered in the window (as wrk2 counts), with the
        // latency from the (scheduled) start.
        let measured = answered >= plan.window.0 && answered < end;
        match result {
            Ok(mut resp) if resp.status() == 200 => {
                let header = resp.headers().get("ferrox-message-id").and_then(|v| v.to_str().ok()?.parse().ok());
                // Read to the end, so that the connection is kept.
                let reply = resp.body_mut().read_to_vec();
                let from_body = || {
                    let reply: Value = serde_json::from_slice(reply.as_deref().ok()?).ok()?;
                    reply["Meta"]["Message"]["ID"].as_u64()
                };
                match header.or_else(from_body) {
                    Some(message) => {
                        tracker.accepted(message, start, measured);
                        if measured {
                            record(&mut sent.accept, answered - start);
                            sent.accepted += 1;
                        } else {
                            sent.outside_accepted += 1;
                        }
                    }
                    None => {
                        *(if measured { &mut sent.errors } else { &mut sent.outside_errors }) += 1;
                        sent.first_error.get_or_insert_with(|| "a 200 without a message ID".to_owned());
                    }
                }
            }
            Ok(mut resp) => {
                let status = resp.status();
                let text = resp.body_mut().read_to_string().unwrap_or_default();
                *(if measured { &mut sent.refused } else { &mut sent.outside_refused }) += 1;
                sent.first_refusal
                    .get_or_insert_with(|| format!("{status}: {}", text.chars().take(300).collect::<String>()));
            }
            Err(e) => {
                *(if measured { &mut sent.errors } else { &mut sent.outside_errors }) += 1;
                sent.first_error.get_or_insert_with(|| e.to_string());
                // Not a hot loop against a dead engine.
                thread::sleep(Duration::from_millis(10));
            }
        }
    }
    Ok(sent)
}

/// Percentiles of a histogram, in milliseconds.
#[derive(Debug, Clone, Copy)]
struct Quantiles {
    count: u64,
    mean: f64,
    p50: f64,
    p90: f64,
    p99: f64,
    p99_9: f64,
    max: f64,
}

impl Quantiles {
    fn of(h: &Histogram<u64>) -> Self {
        let ms = |us: u64| us as f64 / 1000.0;
        Self {
            count: h.len(),
            mean: h.mean() / 1000.0,
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p99: ms(h.value_at_quantile(0.99)),
            p99_9: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
        }
    }

    fn json(&self) -> Value {
        json!({
            "count": self.count, "mean": self.mean, "p50": self.p50, "p90": self.p90,
            "p99": self.p99, "p99_9": self.p99_9, "max": self.max,
        })
    }
}

struct Report {
    window_s: f64,
    accepted: u64,
    refused: u64,
    errors: u64,
    outside_accepted: u64,
    outside_refused: u64,
    outside_errors: u64,
    missed: u64,
    deliveries_in_window: u64,
    /// From the last SEND's answer to the last delivery; None when the
    /// deliveries did not all arrive in time.
    drain_s: Option<f64>,
    /// (message, destination) pairs accepted but not delivered.
    undelivered: u64,
    duplicates: u64,
    malformed: u64,
    /// Deliveries of messages no SEND was answered for.
    unmatched: u64,
    accept: Quantiles,
    delivered: Quantiles,
    first_refusal: Option<String>,
    first_error: Option<String>,
    engine: String,
    /// CPU seconds used in the window by the engine and by this process
    /// (senders and receiver).
    engine_cpu_s: f64,
    tool_cpu_s: f64,
}

/// CPU time (user and system) a process has used so far, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name, which is in parentheses.
    let fields: Vec<&str> = stat.rsplit_once(')').map_or("", |(_, rest)| rest).split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    // SAFETY: sysconf only reads a system constant.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1);
    // utime and stime are fields 14 and 15 of the whole line.
    (ticks(11) + ticks(12)) as f64 / per_second as f64
}

fn run(args: &Args) -> Result<Report, String> {
    if !(args.duration > 0.0 && args.duration.is_finite()) {
        return Err("--duration must be more than 0 seconds".to_owned());
    }
    if !(args.warmup >= 0.0 && args.warmup.is_finite()) {
        return Err("--warmup must be 0 seconds or more".to_owned());
    }
    if let Some(rate) = args.rate
        && !(rate > 0.0 && rate.is_finite())
    {
        return Err("--rate must be more than 0 SENDs a second".to_owned());
    }
    let bin = engine_binary(args)?;
    let dir = tempfile::Builder::new().prefix("ferrox-load.").tempdir().map_err(|e| format!("temp dir: {e}"))?;

    let tracker = Arc::new(Tracker::new(args.destinations as usize)?);
    let port = start_receiver(tracker.clone())?;
    let config_path = dir.path().join("ferrox.toml");
    std::fs::write(&config_path, config(args, port, dir.path())).map_err(|e| format!("writing the config: {e}"))?;
    let engine = start_engine(&bin, dir.path(), &config_path)?;

    let t0 = Instant::now() + Duration::from_millis(100);
    let window_start = t0 + Duration::from_secs_f64(args.warmup);
    let window = (window_start, window_start + Duration::from_secs_f64(args.duration));
    let _ = tracker.window.set(window);
    let plan = Plan {
        url: format!("{}/endpoint", engine.url),
        auth: format!("Bearer {}", engine.token),
        connections: args.connections,
        size: args.payload as usize,
        rate: args.rate,
        t0,
        window,
    };
    let (plan, shared) = (&plan, &*tracker);
    let engine_pid = engine.child.id();
    let mut cpu = (0.0, 0.0);
    let results: Vec<Result<Sent, String>> = thread::scope(|s| {
        // CPU used in the window by the engine and by this process.
        let cpu = &mut cpu;
        s.spawn(move || {
            thread::sleep(window.0.saturating_duration_since(Instant::now()));
            let before = (cpu_seconds(engine_pid), cpu_seconds(std::process::id()));
            thread::sleep(window.1.saturating_duration_since(Instant::now()));
            *cpu = (cpu_seconds(engine_pid) - before.0, cpu_seconds(std::process::id()) - before.1);
        });
        let handles: Vec<_> = (0..args.connections).map(|c| s.spawn(move || sender(plan, shared, c))).collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err("a sender thread panicked".to_owned()))).collect()
    });
    let sends_done = Instant::now();

    let mut accept = histogram()?;
    let mut report = Report {
        window_s: args.duration,
        accepted: 0,
        refused: 0,
        errors: 0,
        outside_accepted: 0,
        outside_refused: 0,
        outside_errors: 0,
        missed: 0,
        deliveries_in_window: 0,
        drain_s: None,
        undelivered: 0,
        duplicates: 0,
        malformed: 0,
        unmatched: 0,
        accept: Quantiles::of(&accept),
        delivered: Quantiles::of(&accept),
        first_refusal: None,
        first_error: None,
        engine: bin.display().to_string(),
        engine_cpu_s: cpu.0,
        tool_cpu_s: cpu.1,
    };
    for sent in results {
        let sent = sent?;
        accept.add(&sent.accept).map_err(|e| format!("histogram: {e}"))?;
        report.accepted += sent.accepted;
        report.refused += sent.refused;
        report.errors += sent.errors;
        report.outside_accepted += sent.outside_accepted;
        report.outside_refused += sent.outside_refused;
        report.outside_errors += sent.outside_errors;
        report.missed += sent.missed;
        report.first_refusal = report.first_refusal.or(sent.first_refusal);
        report.first_error = report.first_error.or(sent.first_error);
    }

    // Every accepted message's deliveries, or the limit.
    loop {
        let book = tracker.book.lock();
        if book.pending.is_empty() {
            let last = book.last_delivery.unwrap_or(sends_done);
            report.drain_s = Some(last.saturating_duration_since(sends_done).as_secs_f64());
            break;
        }
        if sends_done.elapsed() > DRAIN_LIMIT {
            break;
        }
        drop(book);
        thread::sleep(Duration::from_millis(1));
    }
    // The engine stops here: nothing more arrives.
    drop(engine);
    let book = tracker.book.lock();
    report.undelivered = book.pending.values().map(|p| u64::from(p.remaining)).sum();
    report.unmatched = book.early.values().map(|v| v.len() as u64).sum();
    report.deliveries_in_window = tracker.in_window.load(Ordering::Relaxed);
    report.duplicates = tracker.duplicates.load(Ordering::Relaxed);
    report.malformed = tracker.malformed.load(Ordering::Relaxed);
    report.accept = Quantiles::of(&accept);
    report.delivered = Quantiles::of(&book.delivered);
    Ok(report)
}

/// Milliseconds, to three significant figures or so.
fn ms(v: f64) -> String {
    if v < 10.0 {
        format!("{v:.2} ms")
    } else if v < 100.0 {
        format!("{v:.1} ms")
    } else {
        format!("{v:.0} ms")
    }
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn table(args: &Args, r: &Report) -> String {
    let mode = args.rate.map_or("closed loop".to_owned(), |rate| format!("open loop at {rate} SENDs/s"));
    let mut t = format!(
        "ferrox load: {}, {mode}, {} B payloads, {}{}, {} s (+{} s warm-up)\n",
        plural(args.connections, "connection", "connections"),
        args.payload,
        plural(args.destinations, "destination", "destinations"),
        if args.lanes > 1 { format!(" ({} lanes each)", args.lanes) } else { String::new() },
        args.duration,
        args.warmup,
    );
    let missed = if args.rate.is_some() { format!(", {} not sent in time", r.missed) } else { String::new() };
    t += &format!(
        "accepted   {:>7.0}/s   ({} answers 200, {} refused, {} errors{missed})\n",
        r.accepted as f64 / r.window_s,
        r.accepted,
        r.refused,
        r.errors
    );
    let drained = match r.drain_s {
        Some(s) => format!("drained {s:.1} s after the last SEND"),
        None => {
            format!("NOT drained: {} deliveries missing {} s after the last SEND", r.undelivered, DRAIN_LIMIT.as_secs())
        }
    };
    t += &format!("delivered  {:>7.0}/s   ({drained})\n", r.deliveries_in_window as f64 / r.window_s);
    t += &format!(
        "cpu        engine {:.2} cores, load tool {:.2} cores (of {} on this machine)\n",
        r.engine_cpu_s / r.window_s,
        r.tool_cpu_s / r.window_s,
        thread::available_parallelism().map_or(0, |n| n.get())
    );
    t += &format!("{:<14}{:>10}{:>10}{:>10}{:>10}{:>10}\n", "", "p50", "p90", "p99", "p99.9", "max");
    for (name, q) in [("accept", &r.accept), ("accept→deliv", &r.delivered)] {
        t += &format!(
            "{name:<14}{:>10}{:>10}{:>10}{:>10}{:>10}\n",
            ms(q.p50),
            ms(q.p90),
            ms(q.p99),
            ms(q.p99_9),
            ms(q.max)
        );
    }
    if r.missed > 0 {
        t += &format!("the engine fell behind the rate: {} SENDs scheduled before the end were never sent\n", r.missed);
    }
    if r.outside_refused + r.outside_errors > 0 {
        t += &format!(
            "outside the window (warm-up, last answers): {} refused, {} errors\n",
            r.outside_refused, r.outside_errors
        );
    }
    if r.duplicates + r.malformed + r.unmatched > 0 {
        t += &format!(
            "receiver: {} deliveries repeated, {} without a message ID, {} of messages never acknowledged to a sender\n",
            r.duplicates, r.malformed, r.unmatched
        );
    }
    if let Some(refusal) = &r.first_refusal {
        t += &format!("first refusal: {refusal}\n");
    }
    if let Some(error) = &r.first_error {
        t += &format!("first error: {error}\n");
    }
    t
}

fn report_json(args: &Args, r: &Report) -> Value {
    json!({
        "engine": r.engine,
        "connections": args.connections,
        "mode": if args.rate.is_some() { "open" } else { "closed" },
        "rate_per_s": args.rate,
        "payload_bytes": args.payload,
        "destinations": args.destinations,
        "lanes": args.lanes,
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "accepted": r.accepted,
        "refused": r.refused,
        "errors": r.errors,
        "missed": r.missed,
        "outside_window_accepted": r.outside_accepted,
        "outside_window_refused": r.outside_refused,
        "outside_window_errors": r.outside_errors,
        "accepted_per_s": r.accepted as f64 / r.window_s,
        "deliveries_in_window": r.deliveries_in_window,
        "delivered_per_s": r.deliveries_in_window as f64 / r.window_s,
        "drained": r.drain_s.is_some(),
        "drain_s": r.drain_s,
        "undelivered": r.undelivered,
        "duplicate_deliveries": r.duplicates,
        "malformed_deliveries": r.malformed,
        "unmatched_deliveries": r.unmatched,
        "accept_ms": r.accept.json(),
        "accept_to_delivered_ms": r.delivered.json(),
        "engine_cpu_s": r.engine_cpu_s,
        "tool_cpu_s": r.tool_cpu_s,
        "cores": thread::available_parallelism().map_or(0, |n| n.get()),
        "first_refusal": r.first_refusal,
        "first_error": r.first_error,
    })
}

fn output(args: &Args, report: &Report) -> Result<(), String> {
    let table = table(args, report);
    let Some(path) = &args.json else {
        print!("{table}");
        return Ok(());
    };
    let text = serde_json::to_string_pretty(&report_json(args, report)).map_err(|e| format!("JSON: {e}"))?;
    if path == "-" {
        eprint!("{table}");
        println!("{text}");
    } else {
        print!("{table}");
        let mut file = File::create(path).map_err(|e| format!("{path}: {e}"))?;
        writeln!(file, "{text}").map_err(|e| format!("{path}: {e}"))?;
    }
    Ok(())
}
