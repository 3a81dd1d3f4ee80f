//! Delivery benchmark: the real `ferrox` binary (release) and a fast local
//! receiver (actix-web, in this process) on loopback.
//!
//! - fan-out: messages each routed to 100 staging destinations
//!   (`FERROX_BENCH_DESTINATIONS` for another number, up to the 256 logs a
//!   message may have), 300,000 deliveries in all; deliveries per second
//!   until the receiver has every one, and the CPU each delivery cost the
//!   engine and this process.
//! - strict FIFO: one destination paused while N messages queue, then
//!   resumed; deliveries per second while it drains, and the order checked.
//! - latency: one message at a time; accept (the engine's `received-at`) to
//!   arrival at the receiver.
//! - memory (first, on the fresh engine): resident memory before and after
//!   queueing N messages for a paused destination, per message; from the
//!   fresh engine, and after a warm-up of a few thousand.
//!
//! - queries: `POST /query` round trips, one at a time and from 8 clients,
//!   against calling the receiver directly in the same run.
//!
//! Run with `cargo bench --bench delivery` (about a minute). To run some
//! phases only: `FERROX_BENCH_PHASES=memory,fanout cargo bench --bench
//! delivery` (phases: memory, fanout, fifo, latency, queries). To measure
//! another build of the engine under the same load, for a baseline in the
//! same run: `FERROX_BENCH_BIN=/path/to/ferrox`.

#![allow(clippy::print_stdout)]

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    thread,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use parking_lot::Mutex;
use serde_json::{Value, json};

/// Deliveries in the fan-out phase, spread over the destinations.
const FANOUT_DELIVERIES: usize = 300_000;
const FIFO_MESSAGES: usize = 20_000;
const LATENCY_MESSAGES: usize = 300;
const MEMORY_WARM_UP: usize = 5_000;
const MEMORY_MESSAGES: usize = 100_000;
const QUERIES: usize = 1000;
/// Messages to the slow receiver, per destination, and their keys.
const SLOW_MESSAGES: usize = 1000;
const SLOW_KEYS: usize = 64;
/// What the slow receiver takes over each request.
const SLOW_RECEIVER: Duration = Duration::from_millis(5);
const LANES: usize = 16;
const ADMIN: &str = "bench-operator-token-0123456789";

/// What the receiver saw.
#[derive(Default)]
struct Seen {
    total: AtomicU64,
    /// Message IDs delivered to the FIFO destination, in arrival order.
    fifo: Mutex<Vec<u64>>,
    /// Milliseconds from the engine's received-at to arrival.
    latencies_ms: Mutex<Vec<f64>>,
    /// (key, message ID) delivered to the laned slow destination, in
    /// arrival order; and how many reached each slow destination.
    laned: Mutex<Vec<(String, u64)>>,
    slow_strict: AtomicU64,
    slow_lanes: AtomicU64,
}

/// Fan-out destinations: 100, or `FERROX_BENCH_DESTINATIONS`.
fn destinations() -> usize {
    std::env::var("FERROX_BENCH_DESTINATIONS").ok().and_then(|v| v.parse().ok()).filter(|&n| n > 0).unwrap_or(100)
}

fn now_ms() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// Reads the whole body, as a real receiver does: actix-web closes a
/// connection whose request body was left unread, which would make the
/// engine open a new one for the next delivery.
async fn receive(req: HttpRequest, body: web::Bytes, seen: web::Data<Arc<Seen>>) -> HttpResponse {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    if req.path().starts_with("/slow-") {
        // A receiver that takes its time: 5 ms a request, as many at once
        // as are sent.
        actix_web::rt::time::sleep(SLOW_RECEIVER).await;
        if req.path() == "/slow-lanes" {
            let key =
                serde_json::from_slice::<Value>(&body).ok().map(|b| b["Patient"]["Identifiers"][0]["ID"].to_string());
            let id = header("ferrox-message-id").and_then(|v| v.parse().ok());
            if let (Some(key), Some(id)) = (key, id) {
                seen.laned.lock().push((key, id));
            }
            seen.slow_lanes.fetch_add(1, Ordering::Relaxed);
        } else {
            seen.slow_strict.fetch_add(1, Ordering::Relaxed);
        }
        return HttpResponse::Ok().body("{}");
    }
    seen.total.fetch_add(1, Ordering::Relaxed);
    if req.path() == "/fifo"
        && let Some(id) = header("ferrox-message-id").and_then(|v| v.parse().ok())
    {
        seen.fifo.lock().push(id);
    }
    if let Some(at) = header("ferrox-received-at").and_then(|v| ferrox::clock::parse_rfc3339(&v)) {
        seen.latencies_ms.lock().push(now_ms() - at as f64);
    }
    HttpResponse::Ok().body("{}")
}

/// Starts the receiver on its own thread; returns its port.
fn start_receiver(seen: Arc<Seen>) -> u16 {
    let (tx, rx) = std::sync::mpsc::channel();
    thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let server = HttpServer::new(move || {
                App::new().app_data(web::Data::new(seen.clone())).default_service(web::to(receive))
            })
            .workers(2)
            .bind(("127.0.0.1", 0))
            .expect("bind receiver");
            tx.send(server.addrs()[0].port()).expect("report port");
            server.run().await
        })
    });
    rx.recv().expect("receiver port")
}

fn config(port: u16, data: &std::path::Path) -> String {
    let mut toml = format!(
        "admin_token = \"{ADMIN}\"\ndata_dir = \"{}\"\n[[sources]]\nid = \"00000000-0000-4000-8000-000000000001\"\nname = \"bench\"\napi_key = \"bench-key\"\nsecret = \"bench-secret\"\n",
        data.display()
    );
    toml += &format!(
        "[[destinations]]\nid = \"00000000-0000-4000-9000-000000000001\"\nname = \"records\"\nurl = \"http://127.0.0.1:{port}/records\"\nenvironment = \"production\"\n[[subscriptions]]\nsource_id = \"00000000-0000-4000-8000-000000000001\"\ndestination_id = \"00000000-0000-4000-9000-000000000001\"\ndata_model = \"ClinicalSummary\"\n"
    );
    // The slow receiver behind one destination in strict FIFO and one with
    // 16 lanes, both for Scheduling messages only.
    for (n, path, lanes) in [
        (1, "slow-strict", String::new()),
        (2, "slow-lanes", format!("fifo_key = \".Patient.Identifiers[0].ID\"\nmax_in_flight = {LANES}\n")),
    ] {
        toml += &format!(
            "[[destinations]]\nid = \"00000000-0000-4000-a000-{n:012}\"\nname = \"{path}\"\nurl = \"http://127.0.0.1:{port}/{path}\"\nenvironment = \"production\"\n{lanes}[[subscriptions]]\nsource_id = \"00000000-0000-4000-8000-000000000001\"\ndestination_id = \"00000000-0000-4000-a000-{n:012}\"\ndata_model = \"Scheduling\"\n"
        );
    }
    let destinations = destinations();
    for i in 0..=destinations {
        let (path, model) =
            if i == destinations { ("fifo".to_owned(), "Order") } else { (format!("d{i}"), "PatientAdmin") };
        toml += &format!(
            "[[destinations]]\nid = \"00000000-0000-4000-8000-{i:012}\"\nname = \"{path}\"\nurl = \"http://127.0.0.1:{port}/{path}\"\nenvironment = \"staging\"\n[[subscriptions]]\nsource_id = \"00000000-0000-4000-8000-000000000001\"\ndestination_id = \"00000000-0000-4000-8000-{i:012}\"\ndata_model = \"{model}\"\n"
        );
    }
    toml
}

struct Engine {
    child: Child,
    url: String,
    agent: ureq::Agent,
    token: String,
}

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_engine(config_path: &std::path::Path) -> Engine {
    // `FERROX_BENCH_BIN` runs another build (a baseline) under the same load.
    let bin = std::env::var_os("FERROX_BENCH_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_ferrox").into());
    let mut command = Command::new(bin);
    // The engine takes every FERROX_ variable as a configuration key, this
    // bench's own (FERROX_BENCH_BIN) too.
    for name in ferrox::config::env_variables_set() {
        command.env_remove(name);
    }
    let mut child = command
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(config_path)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start ferrox");
    let stdout = child.stdout.take().expect("stdout");
    let line =
        BufReader::new(stdout).lines().map_while(Result::ok).find(|l| l.contains("listening on")).expect("ready line");
    let url = line.trim_start_matches("ferrox listening on ").to_owned();
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let body = json!({ "apiKey": "bench-key", "secret": "bench-secret" });
    let reply: Value = agent
        .post(format!("{url}/auth/authenticate"))
        .send_json(&body)
        .expect("auth")
        .body_mut()
        .read_json()
        .expect("json");
    let token = reply["accessToken"].as_str().expect("token").to_owned();
    Engine { child, url, agent, token }
}

impl Engine {
    fn send(&self, body: &Value) -> u64 {
        let mut resp = self
            .agent
            .post(format!("{}/endpoint", self.url))
            .header("authorization", format!("Bearer {}", self.token))
            .send_json(body)
            .expect("send");
        assert_eq!(resp.status(), 200);
        let reply: Value = resp.body_mut().read_json().expect("reply");
        reply["Meta"]["Message"]["ID"].as_u64().expect("message id")
    }

    fn admin_post(&self, path: &str) {
        let resp = self
            .agent
            .post(format!("{}/api/v1{path}", self.url))
            .header("authorization", format!("Bearer {ADMIN}"))
            .send_empty();
        assert_eq!(resp.expect("admin").status(), 200, "{path}");
    }

    fn rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        let kb = status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok());
        kb.unwrap_or(0) * 1024
    }
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

fn admit(n: usize) -> Value {
    json!({ "Meta": { "DataModel": "PatientAdmin", "EventType": "NewPatient" }, "Patient": { "Identifiers": [{ "ID": n.to_string() }] } })
}

fn order(n: usize) -> Value {
    json!({ "Meta": { "DataModel": "Order", "EventType": "New" }, "Patient": { "Identifiers": [{ "ID": n.to_string() }] }, "Order": { "ID": n.to_string() } })
}

fn wait_until(what: &str, deadline: Duration, done: impl Fn() -> bool) -> Duration {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(2));
    }
    start.elapsed()
}

/// Sends `count` bodies from 8 client threads.
fn send_many(engine: &Arc<Engine>, count: usize, body: fn(usize) -> Value) {
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let engine = engine.clone();
            thread::spawn(move || {
                for n in (t..count).step_by(8) {
                    engine.send(&body(n));
                }
            })
        })
        .collect();
    threads.into_iter().for_each(|t| t.join().expect("client thread"));
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn patient_query() -> Value {
    json!({ "Meta": { "DataModel": "ClinicalSummary", "EventType": "PatientQuery" }, "Patient": { "Identifiers": [{ "ID": "1" }] } })
}

/// Milliseconds of each of `n` sequential calls of `call`, sorted.
fn timed(n: usize, mut call: impl FnMut()) -> Vec<f64> {
    let mut ms: Vec<f64> = (0..n)
        .map(|_| {
            let start = Instant::now();
            call();
            start.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    ms.sort_by(f64::total_cmp);
    ms
}

fn queries(engine: &Arc<Engine>, port: u16) {
    let body = patient_query();
    let direct_url = format!("http://127.0.0.1:{port}/records");
    let direct = timed(QUERIES, || {
        let resp = engine.agent.post(&direct_url).send_json(&body).expect("direct call");
        assert_eq!(resp.status(), 200);
    });
    let query_url = format!("{}/query", engine.url);
    let auth = format!("Bearer {}", engine.token);
    let call = |agent: &ureq::Agent| {
        let resp = agent.post(&query_url).header("authorization", &auth).send_json(&body).expect("query");
        assert_eq!(resp.status(), 200);
    };
    let through = timed(QUERIES, || call(&engine.agent));
    let start = Instant::now();
    thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| (0..QUERIES / 8).for_each(|_| call(&engine.agent)));
        }
    });
    let rate = (QUERIES / 8 * 8) as f64 / start.elapsed().as_secs_f64();
    let (p50, p99) = (percentile(&through, 0.5), percentile(&through, 0.99));
    let (d50, d99) = (percentile(&direct, 0.5), percentile(&direct, 0.99));
    println!(
        "queries: direct to the receiver p50 {d50:.2} ms, p99 {d99:.2} ms; through ferrox p50 {p50:.2} ms, p99 {p99:.2} ms (added p50 {:.2} ms, p99 {:.2} ms); {rate:.0} queries/s from 8 clients",
        p50 - d50,
        p99 - d99
    );
}

/// Whether the phase was asked for (all are, by default).
fn wants(phase: &str) -> bool {
    std::env::var("FERROX_BENCH_PHASES").map_or(true, |phases| phases.split(',').any(|p| p.trim() == phase))
}

fn main() {
    let seen = Arc::new(Seen::default());
    let port = start_receiver(seen.clone());
    let dir = tempfile::tempdir().expect("temp dir");
    let config_path = dir.path().join("ferrox.toml");
    std::fs::write(&config_path, config(port, dir.path())).expect("write config");
    let engine = Arc::new(start_engine(&config_path));
    let fifo = format!("/destinations/00000000-0000-4000-8000-{:012}", destinations());

    // Memory first, on a fresh engine, so that no memory freed by earlier
    // phases is reused and hidden.
    if wants("memory") {
        memory(&engine, &seen, &fifo);
    }
    if wants("fanout") {
        fan_out(&engine, &seen);
    }
    if wants("fifo") {
        strict_fifo(&engine, &seen, &fifo);
    }
    if wants("latency") {
        latency(&engine, &seen);
    }
    if wants("queries") {
        queries(&engine, port);
    }
    if wants("lanes") {
        lanes(&engine, &seen);
    }
}

fn memory(engine: &Arc<Engine>, seen: &Seen, fifo: &str) {
    engine.admin_post(&format!("{fifo}/pause"));
    let rss_fresh = engine.rss_bytes();
    // The first requests warm up what every engine has whatever it holds
    // (worker threads' heaps, connection buffers); these messages stay
    // pending too, so the second figure is the cost of one more.
    send_many(engine, MEMORY_WARM_UP, order);
    let rss_before = engine.rss_bytes();
    send_many(engine, MEMORY_MESSAGES, order);
    let rss_after = engine.rss_bytes();
    let total = MEMORY_WARM_UP + MEMORY_MESSAGES;
    println!(
        "memory: {total} pending messages (1 log each, payloads left on disk) added {} bytes of resident memory to the fresh engine: {:.0} bytes per pending message",
        rss_after.saturating_sub(rss_fresh),
        rss_after.saturating_sub(rss_fresh) as f64 / total as f64
    );
    println!(
        "memory: the last {MEMORY_MESSAGES} of them added {} bytes: {:.0} bytes per pending message",
        rss_after.saturating_sub(rss_before),
        rss_after.saturating_sub(rss_before) as f64 / MEMORY_MESSAGES as f64
    );
    let drained = seen.total.load(Ordering::Relaxed) + total as u64;
    engine.admin_post(&format!("{fifo}/resume"));
    wait_until("memory phase drain", Duration::from_secs(300), || seen.total.load(Ordering::Relaxed) >= drained);
    seen.fifo.lock().clear();
}

fn fan_out(engine: &Arc<Engine>, seen: &Seen) {
    let (engine_cpu, bench_cpu) = (cpu_seconds(engine.child.id()), cpu_seconds(std::process::id()));
    let start = Instant::now();
    let before = seen.total.load(Ordering::Relaxed);
    let destinations = destinations();
    let messages = (FANOUT_DELIVERIES / destinations).max(1);
    send_many(engine, messages, admit);
    let expected = (messages * destinations) as u64;
    wait_until("fan-out deliveries", Duration::from_secs(300), || {
        seen.total.load(Ordering::Relaxed) >= before + expected
    });
    let secs = start.elapsed().as_secs_f64();
    println!(
        "fan-out: {expected} deliveries to {destinations} destinations in {secs:.2} s: {:.0} deliveries/s",
        expected as f64 / secs
    );
    // Where the machine's CPU went: the engine, and this process (the
    // receiver and the senders).
    let engine_us = (cpu_seconds(engine.child.id()) - engine_cpu) * 1e6 / expected as f64;
    let bench_us = (cpu_seconds(std::process::id()) - bench_cpu) * 1e6 / expected as f64;
    println!(
        "fan-out: CPU per delivery: engine {engine_us:.0} us, receiver and senders {bench_us:.0} us ({} cores)",
        thread::available_parallelism().map_or(0, |n| n.get())
    );
}

fn strict_fifo(engine: &Arc<Engine>, seen: &Seen, fifo: &str) {
    seen.fifo.lock().clear();
    engine.admin_post(&format!("{fifo}/pause"));
    let before = seen.total.load(Ordering::Relaxed);
    send_many(engine, FIFO_MESSAGES, order);
    let start = Instant::now();
    engine.admin_post(&format!("{fifo}/resume"));
    let target = before + FIFO_MESSAGES as u64;
    wait_until("FIFO drain", Duration::from_secs(300), || seen.total.load(Ordering::Relaxed) >= target);
    let secs = start.elapsed().as_secs_f64();
    let got = seen.fifo.lock().clone();
    assert!(got.windows(2).all(|w| w[0] < w[1]), "FIFO order broken");
    println!(
        "strict FIFO: {FIFO_MESSAGES} deliveries to one destination in {secs:.2} s: {:.0} deliveries/s (order verified)",
        FIFO_MESSAGES as f64 / secs
    );
}

fn latency(engine: &Arc<Engine>, seen: &Seen) {
    seen.latencies_ms.lock().clear();
    for n in 0..LATENCY_MESSAGES {
        let before = seen.latencies_ms.lock().len();
        engine.send(&order(n));
        wait_until("one delivery", Duration::from_secs(10), || seen.latencies_ms.lock().len() > before);
    }
    let mut lat = seen.latencies_ms.lock().clone();
    lat.sort_by(f64::total_cmp);
    println!(
        "accept -> delivered at light load ({} messages, one at a time): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms (received-at has millisecond resolution)",
        lat.len(),
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        lat.last().copied().unwrap_or(0.0)
    );
}

fn booking(n: usize) -> Value {
    json!({ "Meta": { "DataModel": "Scheduling", "EventType": "New" }, "Patient": { "Identifiers": [{ "ID": (n % SLOW_KEYS).to_string() }] }, "Visit": { "VisitNumber": n.to_string() } })
}

/// A receiver that takes 5 ms per request, behind strict FIFO and behind
/// 16 lanes, with the same messages queued for both.
fn lanes(engine: &Arc<Engine>, seen: &Seen) {
    let strict = "/destinations/00000000-0000-4000-a000-000000000001";
    let laned = "/destinations/00000000-0000-4000-a000-000000000002";
    engine.admin_post(&format!("{strict}/pause"));
    engine.admin_post(&format!("{laned}/pause"));
    send_many(engine, SLOW_MESSAGES, booking);
    let drain = |path: &str, count: &AtomicU64| {
        let before = count.load(Ordering::Relaxed);
        engine.admin_post(&format!("{path}/resume"));
        let took = wait_until("the slow receiver's queue", Duration::from_secs(120), || {
            count.load(Ordering::Relaxed) >= before + SLOW_MESSAGES as u64
        });
        SLOW_MESSAGES as f64 / took.as_secs_f64()
    };
    let strict_rate = drain(strict, &seen.slow_strict);
    let laned_rate = drain(laned, &seen.slow_lanes);
    // Each key's messages arrived in acceptance order.
    let mut last: std::collections::HashMap<String, u64> = std::collections::HashMap::new();
    for (key, id) in seen.laned.lock().iter() {
        let before = last.insert(key.clone(), *id);
        assert!(before.is_none_or(|b| b < *id), "lane {key}: message {id} after {before:?}");
    }
    println!(
        "lanes: a receiver taking {} ms per request, {SLOW_MESSAGES} messages over {SLOW_KEYS} keys: strict FIFO {strict_rate:.0} deliveries/s, {LANES} lanes {laned_rate:.0} deliveries/s: {:.1}x (order per key verified)",
        SLOW_RECEIVER.as_millis(),
        laned_rate / strict_rate
    );
}
