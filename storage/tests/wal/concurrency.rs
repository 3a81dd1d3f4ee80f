//! Group commit under concurrent appenders.

use std::{
    collections::BTreeSet,
    sync::{Arc, Barrier, Mutex},
    thread,
};

use ferrox_storage::{Options, Wal, sim::LazyDisk};

use crate::common::{contents, open_lazy, payload, small};

#[test]
fn concurrent_appenders_get_distinct_numbers_and_every_record_is_durable() {
    const THREADS: u64 = 16;
    const EACH: u64 = 200;
    let disk = LazyDisk::new();
    let wal = Arc::new(open_lazy(&disk, small(8192)));
    let barrier = Arc::new(Barrier::new(THREADS as usize));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let (wal, barrier) = (wal.clone(), barrier.clone());
            thread::spawn(move || {
                barrier.wait();
                (0..EACH)
                    .map(|i| {
                        let tag = t * EACH + i;
                        let seq = wal.append(1, &payload(tag, 64)).unwrap();
                        wal.sync_through(seq).unwrap();
                        assert!(wal.synced_through() >= seq);
                        (seq, tag)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let acked: Vec<(u64, u64)> = handles.into_iter().flat_map(|h| h.join().unwrap()).collect();
    let seqs: BTreeSet<u64> = acked.iter().map(|a| a.0).collect();
    assert_eq!(seqs.len() as u64, THREADS * EACH, "sequence numbers are unique");
    assert_eq!(seqs.last().copied(), Some(THREADS * EACH));
    drop(wal);
    // Everything acknowledged survives a power cut, each under its number.
    let wal = open_lazy(&disk.crash(11), small(8192));
    let got = contents(&wal);
    assert_eq!(got.len() as u64, THREADS * EACH);
    for (seq, tag) in acked {
        assert_eq!(got[seq as usize - 1].2, payload(tag, 64));
    }
}

/// Group commit, made deterministic: in each round every appender appends,
/// and only then do they all wait for their record. The first to sync
/// writes the whole round, so the round costs one `fdatasync` however the
/// threads are scheduled. (Counting syncs while appends and waits
/// interleave freely depends on the scheduler: on a loaded machine each
/// wait can find its record alone.)
#[test]
fn appenders_waiting_together_share_one_sync() {
    const THREADS: usize = 16;
    const ROUNDS: u64 = 50;
    let disk = LazyDisk::new();
    // One segment holds every round, and none is made in the background,
    // so every sync counted is a batch's.
    let options = Options { prepare_ahead: false, ..small(1 << 20) };
    let wal = Arc::new(open_lazy(&disk, options));
    let barrier = Arc::new(Barrier::new(THREADS));
    let round_syncs = Arc::new(Mutex::new(Vec::new()));
    let handles: Vec<_> = (0..THREADS as u64)
        .map(|t| {
            let (wal, barrier, disk, round_syncs) = (wal.clone(), barrier.clone(), disk.clone(), round_syncs.clone());
            thread::spawn(move || {
                for round in 0..ROUNDS {
                    let seq = wal.append(1, &payload(round * 100 + t, 64)).unwrap();
                    barrier.wait();
                    let before = disk.sync_count();
                    barrier.wait();
                    wal.sync_through(seq).unwrap();
                    if barrier.wait().is_leader() {
                        round_syncs.lock().unwrap().push(disk.sync_count() - before);
                    }
                    barrier.wait();
                }
            })
        })
        .collect();
    for handle in handles {
        handle.join().unwrap();
    }
    let round_syncs = round_syncs.lock().unwrap().clone();
    assert_eq!(round_syncs, vec![1; ROUNDS as usize], "syncs per round of {THREADS} appenders");
    assert_eq!(wal.synced_through(), THREADS as u64 * ROUNDS);
}

#[test]
fn readers_see_only_synced_records_while_writers_run() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Arc::new(Wal::open(dir.path(), small(16 * 1024)).unwrap());
    let writer = {
        let wal = wal.clone();
        thread::spawn(move || {
            for seq in 1..=2000u64 {
                wal.append(1, &payload(seq, 100)).unwrap();
                if seq % 10 == 0 {
                    wal.sync().unwrap();
                }
            }
        })
    };
    let mut next = 1;
    while next <= 2000 {
        let limit = wal.synced_through();
        for record in wal.iter_from(next) {
            let record = record.unwrap();
            assert!(record.seq() <= wal.synced_through());
            assert_eq!(record.payload(), &payload(record.seq(), 100)[..]);
            next = record.seq() + 1;
        }
        assert!(next > limit, "iteration reached the synced point");
        thread::yield_now();
    }
    writer.join().unwrap();
}

#[test]
fn the_sync_observer_is_told_of_every_record_each_sync_made_durable() {
    const THREADS: u64 = 8;
    const EACH: u64 = 50;
    let disk = LazyDisk::new();
    let wal = Arc::new(open_lazy(&disk, small(8192)));
    let told = Arc::new(Mutex::new((0u64, 0u64)));
    let sink = told.clone();
    let set = wal.observe_syncs(Box::new(move |_took, records| {
        let mut told = sink.lock().unwrap();
        told.0 += 1;
        told.1 += records;
    }));
    assert!(set, "the first observer is taken");
    assert!(!wal.observe_syncs(Box::new(|_, _| {})), "a second is not");
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let wal = wal.clone();
            thread::spawn(move || {
                for i in 0..EACH {
                    wal.append_sync(1, &payload(t * EACH + i, 64)).unwrap();
                }
            })
        })
        .collect();
    handles.into_iter().for_each(|h| h.join().unwrap());
    let (syncs, records) = *told.lock().unwrap();
    assert_eq!(records, THREADS * EACH, "each record is counted by the one sync that made it durable");
    assert!((1..=THREADS * EACH).contains(&syncs), "{syncs} syncs");
}
