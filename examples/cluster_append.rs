//! What a durable append costs on the cluster's journal stream against the
//! embedded write-ahead log, same process, same appenders: N tasks, each
//! appending a record and waiting until it is durable (a quorum of NATS
//! servers synced it; the WAL's `fdatasync`), then the next. Reports
//! appends/s and the latency of each append (p50, p99, max, from an HDR
//! histogram). `benches/cluster/run.sh` starts the NATS servers and runs
//! both, alternating.
//!
//! ```sh
//! cargo run --release --example cluster_append -- --nats nats://127.0.0.1:4222 --appenders 64
//! cargo run --release --example cluster_append -- --wal /tmp/wal --appenders 64
//! ```

#![allow(clippy::print_stdout)]

use std::{
    path::PathBuf,
    process::ExitCode,
    rc::Rc,
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::Bytes;
use clap::Parser;
use ferrox::cluster::{self, ClusterLog, ClusterSettings, Expect};
use ferrox_storage::{Committer, Options, Wal};
use hdrhistogram::Histogram;

#[derive(Parser)]
struct Args {
    /// NATS servers, comma-separated: append to the cluster's journal stream.
    #[arg(long, conflicts_with = "wal")]
    nats: Option<String>,
    /// A directory for a fresh write-ahead log: append to it instead.
    #[arg(long)]
    wal: Option<PathBuf>,
    /// Copies of the stream (on --nats).
    #[arg(long, default_value_t = 3)]
    replicas: usize,
    /// Concurrent appenders, each with one append outstanding.
    #[arg(long, default_value_t = 64)]
    appenders: usize,
    /// Bytes per record.
    #[arg(long, default_value_t = 1024)]
    payload: usize,
    /// Records per commit: one atomic batch on the stream, one sync on the
    /// WAL. Throughput counts records; latency is per commit.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Seconds measured, after one second of warm-up.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
}

/// Where the appends go.
enum Target {
    Stream(Box<ClusterLog>),
    Wal(Committer),
}

impl Target {
    async fn append(&self, payload: &Bytes, batch: usize, id: &str) -> Result<(), String> {
        match self {
            Self::Stream(log) if batch == 1 => {
                log.append("engine", 1, payload.clone(), id, Expect::Nothing).await.map_err(|e| e.to_string())?;
            }
            Self::Stream(log) => {
                let records = vec![(1, payload.clone()); batch];
                log.append_batch("engine", &records, id).await.map_err(|e| e.to_string())?;
            }
            Self::Wal(committer) => {
                let mut seq = 0;
                for _ in 0..batch {
                    seq = committer.wal().append(1, payload).map_err(|e| e.to_string())?;
                }
                committer.commit(seq).await.map_err(|e| e.to_string())?;
            }
        }
        Ok(())
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    let local = tokio::task::LocalSet::new();
    match local.block_on(&runtime, run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cluster_append: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    if !(1..=1000).contains(&args.batch) {
        return Err(format!("--batch {} must be 1–1000, the most one atomic batch holds", args.batch));
    }
    let (target, name) = match (&args.nats, &args.wal) {
        (Some(urls), _) => {
            let settings = ClusterSettings {
                nats_urls: urls.split(',').map(str::to_owned).collect(),
                node_name: "bench".into(),
                replicas: args.replicas,
                lease: ClusterSettings::DEFAULT_LEASE,
            };
            let context = cluster::connect(&settings).await.map_err(|e| e.to_string())?;
            let log = ClusterLog::open(context, args.replicas).await.map_err(|e| e.to_string())?;
            (Target::Stream(Box::new(log)), format!("JetStream R{}", args.replicas))
        }
        (None, Some(dir)) => {
            let wal = Wal::open(dir, Options::default()).map_err(|e| e.to_string())?;
            let committer = Committer::start(Arc::new(wal)).map_err(|e| e.to_string())?;
            (Target::Wal(committer), "embedded WAL".to_owned())
        }
        (None, None) => return Err("say --nats or --wal".into()),
    };
    let target = Rc::new(target);
    let payload = Bytes::from(vec![b'x'; args.payload]);
    let warm_until = Instant::now() + Duration::from_secs(1);
    let end = warm_until + Duration::from_secs(args.seconds);
    let tasks: Vec<_> = (0..args.appenders)
        .map(|a| {
            let (target, payload, batch) = (target.clone(), payload.clone(), args.batch);
            tokio::task::spawn_local(async move {
                let mut latencies = Histogram::<u64>::new(3).expect("a histogram");
                let mut n = 0u64;
                loop {
                    let began = Instant::now();
                    if began >= end {
                        return Ok::<_, String>(latencies);
                    }
                    target.append(&payload, batch, &format!("a{a}-{n}")).await?;
                    n += 1;
                    if began >= warm_until {
                        let micros = u64::try_from(began.elapsed().as_micros()).unwrap_or(u64::MAX);
                        latencies.record(micros.max(1)).expect("recorded");
                    }
                }
            })
        })
        .collect();
    let mut all = Histogram::<u64>::new(3).expect("a histogram");
    for task in tasks {
        let latencies = task.await.map_err(|e| e.to_string())??;
        all.add(latencies).expect("added");
    }
    let ms = |q: f64| all.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "{name}: {} appenders, {} B, {} per commit: {:.0} records/s, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        args.appenders,
        args.payload,
        args.batch,
        (all.len() * args.batch as u64) as f64 / args.seconds as f64,
        ms(0.5),
        ms(0.99),
        all.max() as f64 / 1000.0
    );
    Ok(())
}
