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
    /// Burst: send this many messages in all (closed loop, no warm-up, no time limit), then wait for
    /// their deliveries; rates count from the first SEND to the last answer and to the last delivery
    #[arg(long, conflicts_with = "rate", value_parser = clap::value_parser!(u64).range(1..))]
    messages: Option<u64>,
    /// Milliseconds the receiver takes over each request (a slow receiver)
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=60_000))]
    receiver_delay_ms: u64,
    /// Seconds to wait after the run for every accepted message's deliveries
    #[arg(long, default_value_t = 60.0)]
    drain_limit: f64,
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

mod engine;
mod report;
mod tracker;

use engine::*;
use report::*;
use tracker::*;

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
    /// Burst: the messages sent in all.
    burst: Option<u64>,
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
            // Connection c sends messages c, c + N, c + 2N, ... below the total.
            None if plan.burst.is_some_and(|n| seq * plan.connections + connection >= n) => break,
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

    let tracker = Arc::new(Tracker::new(args.destinations as usize, Duration::from_millis(args.receiver_delay_ms))?);
    let port = start_receiver(tracker.clone())?;
    let config_path = dir.path().join("ferrox.toml");
    std::fs::write(&config_path, config(args, port, dir.path())).map_err(|e| format!("writing the config: {e}"))?;
    let engine = start_engine(&bin, dir.path(), &config_path)?;

    let t0 = Instant::now() + Duration::from_millis(100);
    // A burst is measured whole: from its first SEND, with no end but its own.
    let (warmup, duration) = match args.messages {
        Some(_) => (0.0, 24.0 * 3600.0),
        None => (args.warmup, args.duration),
    };
    let window_start = t0 + Duration::from_secs_f64(warmup);
    let window = (window_start, window_start + Duration::from_secs_f64(duration));
    let _ = tracker.window.set(window);
    let plan = Plan {
        url: format!("{}/endpoint", engine.url),
        auth: format!("Bearer {}", engine.token),
        connections: args.connections,
        size: args.payload as usize,
        rate: args.rate,
        burst: args.messages,
        t0,
        window,
    };
    let (plan, shared) = (&plan, &*tracker);
    let engine_pid = engine.child.id();
    let mut cpu = (0.0, 0.0);
    let burst = args.messages.is_some();
    // A burst's CPU is counted from its start to its last delivery.
    let cpu_at_start = (cpu_seconds(engine_pid), cpu_seconds(std::process::id()));
    let results: Vec<Result<Sent, String>> = thread::scope(|s| {
        // CPU used in the window by the engine and by this process.
        let cpu = &mut cpu;
        s.spawn(move || {
            if burst {
                return;
            }
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
        window_s: if burst { sends_done.saturating_duration_since(t0).as_secs_f64() } else { args.duration },
        delivery_window_s: args.duration,
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
        if sends_done.elapsed().as_secs_f64() > args.drain_limit {
            break;
        }
        drop(book);
        thread::sleep(Duration::from_millis(1));
    }
    let book = tracker.book.lock();
    if burst {
        let last = book.last_delivery.unwrap_or(sends_done);
        report.delivery_window_s = last.saturating_duration_since(t0).as_secs_f64();
        report.engine_cpu_s = cpu_seconds(engine_pid) - cpu_at_start.0;
        report.tool_cpu_s = cpu_seconds(std::process::id()) - cpu_at_start.1;
    }
    drop(book);
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
