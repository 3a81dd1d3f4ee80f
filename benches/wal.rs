//! Write-ahead log benchmarks.
//!
//! - `append_sync`: records per second of `append` + `sync_through` from 1, 8
//!   and 64 concurrent appender threads (a persistent pool per case), with
//!   payloads of 256 B, 1 KiB and 16 KiB. Concurrent appenders share one
//!   `fdatasync` per batch (group commit).
//! - `append_commit`: the same with 1, 8 and 64 concurrent appender *tasks*
//!   on one single-threaded runtime, each awaiting a `Committer::commit`
//!   future: the log's committer thread syncs, so no thread switch is paid
//!   per record. This is how the engine's router waits for durability.
//! - `raw_baseline`: the floor for one appender: a 256 B `pwrite` +
//!   `fdatasync`, and a 256 B memcpy into a shared file mapping + `msync` of
//!   the page, both into a preallocated zero-filled file. Compare with
//!   `append_sync/1 appender/256B`.
//! - `recovery`: `Wal::open` of a log of two full 64 MiB segments of 1 KiB
//!   records, which verifies every record's CRC; throughput is segment bytes
//!   per second. The files are in the page cache, so this measures the scan,
//!   not the disk.
//!
//! Files live in temporary directories under Cargo's `CARGO_TARGET_TMPDIR`
//! (`target/tmp`), on the disk of the target directory rather than a tmpfs,
//! so `fdatasync` reaches the disk.
//!
//! Run with `cargo bench --bench wal` (a few minutes); add `-- recovery` (or
//! another group name) to run one group.

use std::{
    fs::{self, File, OpenOptions},
    hint::black_box,
    io::Write,
    os::unix::fs::FileExt,
    path::Path,
    sync::{Arc, mpsc},
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ferrox_storage::{
    Committer, DEFAULT_SEGMENT_BYTES, Options, Wal,
    format::{SEGMENT_HEADER_BYTES, record_bytes},
};
use memmap2::{MmapMut, MmapOptions};
use tempfile::TempDir;
use tokio::runtime::Runtime;

const APPENDERS: [usize; 3] = [1, 8, 64];
const PAYLOADS: [(usize, &str); 3] = [(256, "256B"), (1 << 10, "1KiB"), (16 << 10, "16KiB")];
/// Size of the preallocated file of the raw baselines.
const RAW_FILE_BYTES: usize = 64 << 20;
const RAW_WRITE_BYTES: usize = 256;
const RECOVERY_PAYLOAD_BYTES: usize = 1 << 10;
const RECOVERY_SEGMENTS: u64 = 2;

/// A fresh temporary directory on the disk holding Cargo's target directory.
fn scratch_dir(prefix: &str) -> TempDir {
    tempfile::Builder::new().prefix(prefix).tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("create scratch directory")
}

/// Appender threads that wait for a number of records to append and sync,
/// then report back; created once per case so spawning is not measured.
struct Pool {
    jobs: Vec<mpsc::Sender<u64>>,
    done: mpsc::Receiver<ferrox_storage::Result<()>>,
    workers: Vec<JoinHandle<()>>,
}

impl Pool {
    fn new(wal: &Arc<Wal>, threads: usize, payload: &Arc<[u8]>) -> Self {
        let (done_tx, done) = mpsc::channel();
        let mut jobs = Vec::with_capacity(threads);
        let mut workers = Vec::with_capacity(threads);
        for i in 0..threads {
            let (job_tx, job_rx) = mpsc::channel();
            let (wal, payload, done_tx) = (Arc::clone(wal), Arc::clone(payload), done_tx.clone());
            let worker = thread::Builder::new()
                .name(format!("appender-{i}"))
                .spawn(move || appender(&wal, &payload, &job_rx, &done_tx))
                .expect("spawn appender thread");
            jobs.push(job_tx);
            workers.push(worker);
        }
        Self { jobs, done, workers }
    }

    /// Appends and syncs `records` records spread over the workers; returns
    /// the time until the last one is durable.
    fn run(&self, records: u64) -> Duration {
        let threads = self.jobs.len() as u64;
        let start = Instant::now();
        for (i, jobs) in (0u64..).zip(&self.jobs) {
            let share = records / threads + u64::from(i < records % threads);
            jobs.send(share).expect("appender thread alive");
        }
        for _ in 0..threads {
            self.done.recv().expect("appender thread alive").expect("append and sync");
        }
        start.elapsed()
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // Closing the job channels ends the workers.
        self.jobs.clear();
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

fn appender(wal: &Wal, payload: &[u8], jobs: &mpsc::Receiver<u64>, done: &mpsc::Sender<ferrox_storage::Result<()>>) {
    while let Ok(records) = jobs.recv() {
        let result = (0..records).try_for_each(|_| {
            let seq = wal.append(1, payload)?;
            wal.sync_through(seq)
        });
        if done.send(result).is_err() {
            return;
        }
    }
}

/// One `append_sync` case. Fields drop in order: workers, log, directory.
struct AppendCase {
    pool: Pool,
    _wal: Arc<Wal>,
    _dir: TempDir,
}

impl AppendCase {
    fn new(threads: usize, payload_bytes: usize) -> Self {
        let dir = scratch_dir("wal-append-");
        let wal = Arc::new(Wal::open(dir.path(), Options::default()).expect("open log"));
        let payload: Arc<[u8]> = (0..payload_bytes).map(|i| i as u8).collect();
        Self { pool: Pool::new(&wal, threads, &payload), _wal: wal, _dir: dir }
    }
}

fn append_sync(c: &mut Criterion) {
    let mut group = c.benchmark_group("append_sync");
    group.sample_size(20).throughput(Throughput::Elements(1));
    for threads in APPENDERS {
        let name = if threads == 1 { "1 appender".to_owned() } else { format!("{threads} appenders") };
        for (payload_bytes, label) in PAYLOADS {
            // Set up lazily, so cases filtered out on the command line cost nothing.
            let mut case: Option<AppendCase> = None;
            group.bench_function(BenchmarkId::new(&name, label), |b| {
                let case = case.get_or_insert_with(|| AppendCase::new(threads, payload_bytes));
                b.iter_custom(|iters| case.pool.run(iters));
            });
        }
    }
    group.finish();
}

/// Runs `iters` records through `tasks` concurrent appender tasks on a
/// single-threaded runtime and returns the elapsed time.
fn run_tasks(rt: &Runtime, committer: &Arc<Committer>, tasks: u64, iters: u64, payload: &Arc<[u8]>) -> Duration {
    let start = Instant::now();
    rt.block_on(async {
        let handles: Vec<_> = (0..tasks)
            .map(|t| {
                let (committer, payload) = (committer.clone(), payload.clone());
                let count = iters / tasks + u64::from(t < iters % tasks);
                tokio::spawn(async move {
                    for _ in 0..count {
                        let seq = committer.wal().append(1, &payload).expect("append");
                        committer.commit(seq).await.expect("commit");
                    }
                })
            })
            .collect();
        for handle in handles {
            handle.await.expect("appender task");
        }
    });
    start.elapsed()
}

fn append_commit(c: &mut Criterion) {
    let mut group = c.benchmark_group("append_commit");
    group.sample_size(20).throughput(Throughput::Elements(1));
    for tasks in APPENDERS {
        for (payload_bytes, label) in PAYLOADS {
            let mut case: Option<(TempDir, Arc<Committer>, Runtime)> = None;
            let payload: Arc<[u8]> = (0..payload_bytes).map(|i| i as u8).collect();
            group.bench_function(BenchmarkId::new(format!("{tasks} tasks"), label), |b| {
                let (_, committer, rt) = case.get_or_insert_with(|| {
                    let dir = scratch_dir("wal-commit-");
                    let wal = Arc::new(Wal::open(dir.path(), Options::default()).expect("open log"));
                    let committer = Arc::new(Committer::start(wal).expect("start committer"));
                    let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
                    (dir, committer, rt)
                });
                b.iter_custom(|iters| run_tasks(rt, committer, tasks as u64, iters, &payload));
            });
        }
    }
    group.finish();
}

/// Creates `path` holding `len` zero bytes (really written, so the blocks
/// are allocated), synced.
fn zeroed_file(path: &Path, len: usize) -> File {
    let mut file = OpenOptions::new().read(true).write(true).create_new(true).open(path).expect("create file");
    let chunk = vec![0u8; 1 << 20];
    for _ in 0..len / chunk.len() {
        file.write_all(&chunk).expect("zero-fill file");
    }
    file.sync_all().expect("sync file");
    file
}

fn map_file(file: &File, len: usize) -> MmapMut {
    // SAFETY: the file was created by this benchmark in its own temporary
    // directory and is neither truncated nor written other than through this
    // mapping while it is mapped.
    unsafe { MmapOptions::new().len(len).map_mut(file) }.expect("map file")
}

fn raw_baseline(c: &mut Criterion) {
    let mut group = c.benchmark_group("raw_baseline");
    group.throughput(Throughput::Elements(1));
    let dir = scratch_dir("wal-raw-");
    let data = [0xA5u8; RAW_WRITE_BYTES];

    let (mut file, mut offset) = (None, 0);
    group.bench_function(BenchmarkId::new("pwrite+fdatasync", "256B"), |b| {
        let file = file.get_or_insert_with(|| zeroed_file(&dir.path().join("pwrite"), RAW_FILE_BYTES));
        b.iter(|| {
            file.write_all_at(black_box(&data), offset as u64).expect("pwrite");
            file.sync_data().expect("fdatasync");
            offset = (offset + RAW_WRITE_BYTES) % RAW_FILE_BYTES;
        });
    });

    let (mut map, mut offset) = (None, 0);
    group.bench_function(BenchmarkId::new("mmap+msync", "256B"), |b| {
        let map =
            map.get_or_insert_with(|| map_file(&zeroed_file(&dir.path().join("mmap"), RAW_FILE_BYTES), RAW_FILE_BYTES));
        b.iter(|| {
            map[offset..offset + RAW_WRITE_BYTES].copy_from_slice(black_box(&data));
            // memmap2 widens the range to whole pages: this syncs the touched page.
            map.flush_range(offset, RAW_WRITE_BYTES).expect("msync");
            offset = (offset + RAW_WRITE_BYTES) % RAW_FILE_BYTES;
        });
    });
    group.finish();
}

/// Fills `dir` with a log of exactly `RECOVERY_SEGMENTS` full segments of
/// 1 KiB records, synced; returns the number of records.
fn build_log(dir: &Path, options: &Options) -> u64 {
    let per_segment = (options.segment_bytes as usize - SEGMENT_HEADER_BYTES) / record_bytes(RECOVERY_PAYLOAD_BYTES);
    let records = per_segment as u64 * RECOVERY_SEGMENTS;
    let wal = Wal::open(dir, options.clone()).expect("open log");
    let payload: Vec<u8> = (0..RECOVERY_PAYLOAD_BYTES).map(|i| (i * 7) as u8).collect();
    for _ in 0..records {
        let seq = wal.append(1, &payload).expect("append");
        if seq.is_multiple_of(4096) {
            wal.sync().expect("sync");
        }
    }
    wal.sync().expect("sync");
    drop(wal);
    assert_eq!(
        segment_file_bytes(dir),
        RECOVERY_SEGMENTS * options.segment_bytes,
        "log is not exactly the full segments"
    );
    records
}

/// Total size of the segment files in `dir`.
fn segment_file_bytes(dir: &Path) -> u64 {
    let entries = fs::read_dir(dir).expect("list log directory").map(|entry| entry.expect("read log directory"));
    let segments = entries.filter(|entry| entry.file_name().to_string_lossy().ends_with(".seg"));
    segments.map(|entry| entry.metadata().expect("stat segment").len()).sum()
}

fn recovery(c: &mut Criterion) {
    let mut group = c.benchmark_group("recovery");
    group.sample_size(10).throughput(Throughput::Bytes(RECOVERY_SEGMENTS * DEFAULT_SEGMENT_BYTES));
    let dir = scratch_dir("wal-recovery-");
    // No background segment creation, so opening only reads and the
    // directory stays the same across iterations.
    let options = Options { prepare_ahead: false, ..Options::default() };
    let mut records = None;
    group.bench_function(BenchmarkId::new("open", "2x64MiB of 1KiB records"), |b| {
        let records = *records.get_or_insert_with(|| build_log(dir.path(), &options));
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                let wal = Wal::open(dir.path(), options.clone()).expect("open log");
                total += start.elapsed();
                let stats = wal.recovery_stats();
                assert_eq!((stats.records, stats.torn_bytes_dropped), (records, 0), "recovery changed the log");
            }
            total
        });
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = append_sync, append_commit, raw_baseline, recovery
}
criterion_main!(benches);
