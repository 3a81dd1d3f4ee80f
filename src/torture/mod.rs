//! `ferrox torture`: the crash test that ships with ferrox.
//!
//! It runs the real engine (this executable, or another build) as a child
//! process, with real HTTP receivers for two production and two staging
//! destinations that refuse one request in ten at random, and concurrent
//! senders. Again and again it kills the engine with SIGKILL at a random
//! moment of one of four kinds: during a burst of SENDs, while deliveries
//! drain a backlog, right after a segment roll, right after a compaction
//! (segments are small and retention is zero, so both come often). After
//! each kill it runs `ferrox wal verify`, then starts the engine again. At
//! the end it lets every queue drain and checks what the receivers got
//! against what the senders were answered 200 for (`check`).
//!
//! It prints its seed, so a run can be repeated with `--seed`, and one
//! summary line: `kills=N acked=N delivered=N lost=0 reordered=0 dup=N`.

mod check;
mod engine;
mod receivers;
mod senders;

use std::{
    io::Write,
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::Context as _;

pub use self::check::{Acked, Findings, Receipt, check};
use self::{engine::Engine, receivers::Receivers, senders::Senders};
use crate::limits;

/// Destinations: production ones retry until they succeed, staging ones
/// fail a log and go on.
const PRODUCTION: [bool; 4] = [true, true, false, false];
/// Chance in 1000 that a receiver refuses a request.
const FAILURE_PER_MILLE: u64 = 100;
/// Longest the final drain may take.
const DRAIN: Duration = Duration::from_secs(180);

/// How a run goes.
#[derive(Debug, Clone)]
pub struct Options {
    pub kills: u32,
    pub seed: u64,
    pub senders: usize,
    /// The `ferrox` executable to torture.
    pub binary: PathBuf,
    /// Where the data directory goes; a temporary one by default.
    pub dir: Option<PathBuf>,
}

/// A small deterministic generator (xorshift64*), seeded by the run.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n.max(1)
    }
}

/// The ID of destination `n`.
fn destination_id(n: usize) -> String {
    format!("00000000-0000-4000-8000-{n:012}")
}

/// The number of the destination with `id`.
fn destination_number(id: &str) -> Option<usize> {
    (0..PRODUCTION.len()).find(|&n| destination_id(n) == id)
}

fn config(port: u16) -> String {
    let mut toml = String::from(
        r#"admin_token = "torture-admin-token-0123456789"
max_body_bytes = 65536
[delivery]
retry_schedule_ms = [0, 20, 50, 100]
timeout_ms = 5000
[storage]
segment_bytes = 262144
retention_hours = 0
compaction_interval_ms = 100
[[sources]]
name = "torture"
api_key = "torture-key"
secret = "torture-secret-0123456789"
"#,
    );
    for (n, production) in PRODUCTION.iter().enumerate() {
        let environment = if *production { "production" } else { "staging" };
        toml.push_str(&format!(
            "[[destinations]]\nid = \"{}\"\nname = \"d{n}\"\nurl = \"http://127.0.0.1:{port}/d/{n}\"\nenvironment = \"{environment}\"\n",
            destination_id(n)
        ));
        // One destination's messages go through a jq worker.
        let transform = if n == 1 { "transform = \".\"\n" } else { "" };
        toml.push_str(&format!(
            "[[subscriptions]]\nsource = \"torture\"\ndestination = \"d{n}\"\ndata_model = \"PatientAdmin\"\n{transform}"
        ));
    }
    toml
}

/// Runs the torture; writes progress and the summary to `out`. Returns the
/// findings; the caller fails the run unless they are clean.
pub fn run(options: &Options, out: &mut dyn Write) -> anyhow::Result<Findings> {
    writeln!(out, "torture: seed {} (--seed {} repeats this run)", options.seed, options.seed)?;
    let temp = tempfile::tempdir().context("a working directory")?;
    let dir = options.dir.clone().unwrap_or_else(|| temp.path().to_owned());
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let (receivers, port) = Receivers::start(options.seed ^ 0x5eed, FAILURE_PER_MILLE)?;
    let config_path = dir.join("torture.toml");
    std::fs::write(&config_path, config(port)).context("writing the configuration")?;
    let data = dir.join("data");
    let mut rng = Rng::new(options.seed);
    let system = actix_web::rt::System::new();
    let acked: Vec<Acked> = system.block_on(async {
        let mut senders = Senders::new(options.senders);
        for round in 0..=options.kills {
            receivers.run.store(round, std::sync::atomic::Ordering::SeqCst);
            let engine = Engine::start(&options.binary, &config_path, &data).await?;
            if round == options.kills {
                drain(&receivers, &senders).await;
                engine.stop()?;
            } else {
                let moment = torment(&engine, &mut senders, &mut rng).await;
                engine.kill()?;
                senders.stop().await;
                writeln!(out, "kill {}: {moment}", round + 1)?;
            }
            engine::verify(&options.binary, &data)?;
        }
        anyhow::Ok(senders.acked())
    })?;
    let findings = check(&acked, &receivers.receipts(), &PRODUCTION);
    writeln!(
        out,
        "kills={} acked={} delivered={} lost={} reordered={} dup={}",
        options.kills,
        findings.acked,
        findings.delivered,
        findings.lost.len(),
        findings.reordered.len(),
        findings.dup
    )?;
    writeln!(
        out,
        "most messages one destination was sent again after one kill: {} (bound {})",
        findings.most_resent_per_crash,
        resend_bound()
    )?;
    Ok(findings)
}

/// The most logs a destination may be sent again after one crash: the one
/// in flight and the outcomes not yet durable.
pub fn resend_bound() -> usize {
    limits::UNSYNCED_OUTCOMES_MAX + 1
}

/// Runs senders and kills the engine at a moment of a random kind; says
/// which.
async fn torment(engine: &Engine, senders: &mut Senders, rng: &mut Rng) -> String {
    senders.start(engine.base(), engine.token());
    let sleep = |ms: u64| actix_web::rt::time::sleep(Duration::from_millis(ms));
    match rng.below(4) {
        0 => {
            let ms = 50 + rng.below(750);
            sleep(ms).await;
            format!("during SENDs, after {ms} ms")
        }
        1 => {
            let ms = 100 + rng.below(400);
            sleep(ms).await;
            senders.stop().await;
            let drain_ms = rng.below(300);
            sleep(drain_ms).await;
            format!("during deliveries, {drain_ms} ms after {ms} ms of SENDs")
        }
        kind => {
            let (gauge, what) = match kind {
                2 => ("ferrox_wal_segments", "a segment roll"),
                _ => ("ferrox_wal_first_position", "a compaction"),
            };
            let before = engine.metric(gauge).await;
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(5) {
                if engine.metric(gauge).await != before {
                    return format!("right after {what}, after {} ms", started.elapsed().as_millis());
                }
                sleep(2).await;
            }
            format!("waiting for {what} (none in 5 s)")
        }
    }
}

/// Lets every queue drain: waits until every acknowledged message has
/// reached its destinations, or the time is up (what is still missing
/// then is lost).
async fn drain(receivers: &Receivers, senders: &Senders) {
    let acked = senders.acked();
    let started = Instant::now();
    loop {
        let findings = check(&acked, &receivers.receipts(), &PRODUCTION);
        if findings.lost.is_empty() || started.elapsed() > DRAIN {
            return;
        }
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
}
