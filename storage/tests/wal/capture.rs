//! Capture: a copy of a log taken while a writer appends, without its
//! lock, holds every record synced before it started and opens as a log.

use std::{
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use ferrox_storage::{Wal, capture};

use crate::common::{contents, payload, seed, small};

const SEGMENT_BYTES: u64 = 16 * 1024;

/// Waits until `condition` holds, or fails after `deadline`.
fn eventually(what: &str, deadline: Duration, condition: impl Fn() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(start.elapsed() < deadline, "timed out waiting for {what}");
        thread::yield_now();
    }
}

/// Checks that `copy` opens as a log whose records are exactly those the
/// writer wrote, consecutive, reaching at least `acknowledged`.
fn check_copy(copy: &Path, acknowledged: u64) -> Vec<(u64, u16, Vec<u8>)> {
    assert!(!copy.join("LOCK").exists(), "the copy holds a LOCK file");
    let wal = Wal::open(copy, small(SEGMENT_BYTES)).expect("the copy opens as a log");
    assert_eq!(wal.recovery_stats().torn_at, None, "the copy ends cleanly");
    let records = contents(&wal);
    let first = records.first().map_or(0, |r| r.0);
    assert!(first <= wal.checkpoint_seq().max(1), "records below the copied checkpoint are missing");
    for (i, (seq, kind, bytes)) in records.iter().enumerate() {
        assert_eq!(*seq, first + i as u64, "sequence numbers are consecutive");
        assert_eq!((*kind, bytes.len()), (1 + (*seq % 3) as u16, 20 + (*seq % 97) as usize), "record {seq}");
        assert_eq!(bytes, &payload(*seq, bytes.len()), "record {seq} copied intact");
    }
    let last = records.last().map_or(0, |r| r.0);
    assert!(last >= acknowledged, "acknowledged record {acknowledged} missing: the copy ends at {last}");
    records
}

#[test]
fn capture_while_a_writer_appends_and_retention_deletes() {
    let seed = seed("capture_while_a_writer_appends_and_retention_deletes");
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("wal");
    let wal = Arc::new(Wal::open(&src, small(SEGMENT_BYTES)).unwrap());
    let acknowledged = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (wal, acknowledged, stop) = (wal.clone(), acknowledged.clone(), stop.clone());
        thread::spawn(move || {
            let mut next = 1u64;
            while !stop.load(Ordering::Relaxed) {
                let len = 20 + (next % 97) as usize;
                let seq = wal.append_sync(1 + (next % 3) as u16, &payload(next, len)).expect("append");
                assert_eq!(seq, next);
                acknowledged.store(seq, Ordering::Release);
                // Retention keeps the last ~200 records, deleting segments
                // while captures read them.
                if seq % (17 + seed % 13) == 0 {
                    wal.checkpoint(seq.saturating_sub(200).max(1)).expect("checkpoint");
                }
                next += 1;
            }
        })
    };
    for round in 0..5u64 {
        let target = 400 * (round + 1);
        eventually("the writer", Duration::from_secs(60), || acknowledged.load(Ordering::Acquire) >= target);
        let before = acknowledged.load(Ordering::Acquire);
        let copy = dir.path().join(format!("copy-{round}"));
        let captured = capture(&src, &copy).expect("capture");
        let records = check_copy(&copy, before);
        assert_eq!(captured.records, records.len() as u64, "round {round}: {captured:?}");
        assert!(captured.segments >= 2, "the copy spans segments: {captured:?}");
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().expect("the writer");
    assert!(wal.segment_count() < 40, "retention deleted segments meanwhile");
}

#[test]
fn capture_of_a_closed_log_is_the_whole_log() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("wal");
    let written = {
        let wal = Wal::open(&src, small(SEGMENT_BYTES)).unwrap();
        for seq in 1..=300u64 {
            wal.append(1 + (seq % 3) as u16, &payload(seq, 20 + (seq % 97) as usize)).unwrap();
        }
        wal.sync().unwrap();
        wal.checkpoint(50).unwrap();
        contents(&wal)
    };
    let copy = dir.path().join("copy");
    let captured = capture(&src, &copy).expect("capture");
    assert_eq!((captured.checkpoint, captured.last_seq), (50, Some(300)));
    assert_eq!(check_copy(&copy, 300), written);
}

#[test]
fn capture_refuses_a_directory_that_is_not_empty() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("wal");
    Wal::open(&src, small(SEGMENT_BYTES)).unwrap().append_sync(1, b"x").unwrap();
    let copy = dir.path().join("copy");
    std::fs::create_dir(&copy).unwrap();
    std::fs::write(copy.join("notes.txt"), "keep me").unwrap();
    let err = capture(&src, &copy).expect_err("a non-empty target is refused");
    assert!(err.to_string().contains("not empty"), "{err}");
    assert_eq!(std::fs::read_to_string(copy.join("notes.txt")).unwrap(), "keep me");
}
