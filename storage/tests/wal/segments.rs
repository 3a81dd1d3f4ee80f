//! Segment roll, retention, reopen across many segments, limits and faults.

use std::{
    fs,
    time::{Duration, Instant},
};

use ferrox_storage::{Error, Health, Options, Wal, sim::LazyDisk};

use crate::common::{contents, open_lazy, payload, small};

fn segment_files(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".seg"))
        .collect();
    names.sort();
    names
}

#[test]
fn rolls_across_many_segments_and_reopens_identically() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(dir.path(), small(4096)).unwrap();
    for seq in 1..=600u64 {
        let len = (seq as usize * 37) % 700;
        assert_eq!(wal.append(1 + (seq % 3) as u16, &payload(seq, len)).unwrap(), seq);
        if seq % 7 == 0 {
            wal.sync().unwrap();
        }
    }
    wal.sync().unwrap();
    let before = contents(&wal);
    assert_eq!(before.len(), 600);
    assert!(wal.segment_count() > 50, "{} segments", wal.segment_count());
    for (seq, _, bytes) in &before {
        assert_eq!(bytes, &payload(*seq, (*seq as usize * 37) % 700));
    }
    // Listed once the log is dropped: until then a spare segment may still
    // be in the making in the background.
    drop(wal);
    let files = segment_files(dir.path());
    let wal = Wal::open(dir.path(), small(4096)).unwrap();
    assert_eq!(contents(&wal), before);
    assert_eq!(segment_files(dir.path()), files);
    assert_eq!(wal.recovery_stats().records, 600);
    assert_eq!(wal.recovery_stats().torn_at, None);
    let random_access: Vec<u64> =
        [1u64, 599, 300, 2, 600].iter().map(|&s| wal.get(s).unwrap().unwrap().seq()).collect();
    assert_eq!(random_access, [1, 599, 300, 2, 600]);
    assert!(wal.get(601).unwrap().is_none());
    assert_eq!(wal.append_sync(1, b"next").unwrap(), 601);
}

#[test]
fn checkpoint_deletes_whole_segments_below_it_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    // No spare made in the background, which could appear between the two
    // counts of files.
    let wal = Wal::open(dir.path(), Options { prepare_ahead: false, ..small(4096) }).unwrap();
    for seq in 1..=300u64 {
        wal.append(1, &payload(seq, 200)).unwrap();
    }
    wal.sync().unwrap();
    let files_before = segment_files(dir.path()).len();
    assert!(matches!(wal.checkpoint(302), Err(Error::CheckpointBeyondEnd { .. })));
    let releasable = wal.releasable(150);
    assert_eq!(wal.releasable(1), 0, "the first segment holds record 1");
    let deleted = wal.checkpoint(150).unwrap();
    assert_eq!(deleted, releasable, "releasable predicts what a checkpoint deletes");
    assert_eq!(wal.releasable(150), 0);
    assert!(deleted > 5, "deleted {deleted}");
    assert_eq!(segment_files(dir.path()).len(), files_before - deleted);
    let first = wal.first_seq();
    assert!(first <= 150 && first > 100, "first retained {first}");
    assert!(wal.get(first - 1).unwrap().is_none());
    assert_eq!(wal.get(150).unwrap().unwrap().payload(), &payload(150, 200)[..]);
    assert_eq!(wal.iter_from(1).next().unwrap().unwrap().seq(), first);
    assert_eq!(wal.checkpoint(10).unwrap(), 0, "an older checkpoint changes nothing");
    drop(wal);
    let wal = Wal::open(dir.path(), small(4096)).unwrap();
    assert_eq!((wal.checkpoint_seq(), wal.first_seq(), wal.synced_through()), (150, first, 300));
    // The segment holding the last record is never deleted.
    wal.checkpoint(301).unwrap();
    assert_eq!(wal.segment_count(), 1);
    assert_eq!(wal.append_sync(1, b"x").unwrap(), 301);
}

#[test]
fn a_missing_segment_is_damage() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(dir.path(), Options { prepare_ahead: false, ..small(4096) }).unwrap();
    for seq in 1..=100u64 {
        wal.append(1, &payload(seq, 300)).unwrap();
    }
    wal.sync().unwrap();
    drop(wal);
    let files = segment_files(dir.path());
    let first = fs::read(dir.path().join(&files[0])).unwrap();
    fs::remove_file(dir.path().join(&files[0])).unwrap();
    assert!(
        matches!(Wal::open(dir.path(), small(4096)), Err(Error::Corrupt { reason, .. }) if reason.contains("below the checkpoint"))
    );
    fs::write(dir.path().join(&files[0]), first).unwrap();
    assert!(Wal::open(dir.path(), small(4096)).is_ok());
    fs::remove_file(dir.path().join(&files[3])).unwrap();
    let err = Wal::open(dir.path(), small(4096)).unwrap_err();
    assert!(matches!(&err, Error::Corrupt { segment, offset: 0, .. } if segment.ends_with(&files[4])), "{err}");
}

#[test]
fn oversized_records_and_kind_zero_are_errors() {
    let disk = LazyDisk::new();
    let wal = open_lazy(&disk, small(4096));
    assert!(matches!(wal.append(1, &[0; 1025]), Err(Error::RecordTooLarge { len: 1025, max: 1024 })));
    assert!(matches!(wal.append(0, b"x"), Err(Error::ReservedKind)));
    assert!(matches!(wal.sync_through(5), Err(Error::NotAppended { seq: 5 })));
    assert_eq!(wal.append_sync(1, &[1; 1024]).unwrap(), 1);
    let too_big = Options { segment_bytes: 4096, max_record_bytes: 8192, ..Options::default() };
    assert!(matches!(
        Wal::open_on(std::sync::Arc::new(LazyDisk::new()), "/wal", too_big),
        Err(Error::InvalidOptions(_))
    ));
}

#[test]
fn a_failed_sync_poisons_the_writer_and_loses_nothing_acknowledged() {
    let disk = LazyDisk::new();
    let wal = open_lazy(&disk, small(4096));
    wal.append_sync(1, b"acknowledged").unwrap();
    disk.fail_syncs(true);
    wal.append(1, b"never acknowledged").unwrap();
    assert!(matches!(wal.sync(), Err(Error::Io { .. })));
    assert!(matches!(wal.append(1, b"refused"), Err(Error::Poisoned(_))));
    assert!(matches!(wal.sync(), Err(Error::Poisoned(_))));
    assert!(wal.get(2).unwrap().is_none(), "an unsynced record is never readable");
    drop(wal);
    let disk = disk.crash(5);
    let wal = open_lazy(&disk, small(4096));
    assert_eq!(contents(&wal)[0].2, b"acknowledged");
    assert!(wal.synced_through() <= 2);
}

#[test]
fn disk_full_at_roll_fails_the_append_and_then_recovers() {
    disk_full_at_roll(false);
    // Here the background preparation of the next segment fails first.
    disk_full_at_roll(true);
}

fn disk_full_at_roll(prepare_ahead: bool) {
    let disk = LazyDisk::new();
    // The first segment is created before the disk fills up.
    let wal = open_lazy(&disk, Options { prepare_ahead, ..small(4096) });
    disk.fail_creates(true);
    let wal = if prepare_ahead {
        drop(wal);
        open_lazy(&disk, Options { prepare_ahead, ..small(4096) })
    } else {
        wal
    };
    let seq = fill_until_refused(&wal);
    wal.sync().unwrap();
    disk.fail_creates(false);
    assert_eq!(append_once_healed(&wal, &[8; 500]), seq + 1);
    drop(wal);
    // Segment indices have no hole: recovery finds every record.
    let wal = open_lazy(&disk.crash(1), small(4096));
    assert_eq!(wal.synced_through(), seq + 1);
}

/// Appends until the disk refuses; returns the last sequence number taken.
fn fill_until_refused(wal: &Wal) -> u64 {
    let mut seq = 0;
    let err = loop {
        match wal.append(1, &[7; 500]) {
            Ok(s) => seq = s,
            Err(e) => break e,
        }
    };
    let full = |e: &Error| matches!(e, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::StorageFull);
    // With preparation ahead, the failure is the preparing thread's, told
    // at once by the writer.
    assert!(full(&err) || matches!(&err, Error::NoSegment(reason) if reason.contains("no space")), "{err}");
    assert!(matches!(wal.health(), Health::Unwritable(_)), "{:?}", wal.health());
    seq
}

/// Appends `payload` once the disk takes a segment again, waiting for the
/// background retries; returns its sequence number.
fn append_once_healed(wal: &Wal, payload: &[u8]) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match wal.append_sync(1, payload) {
            Ok(seq) => return seq,
            Err(e @ (Error::NoSegment(_) | Error::Io { .. })) => {
                assert!(Instant::now() < deadline, "appends did not come back: {e}");
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("{e}"),
        }
    }
}

#[test]
fn a_full_disk_heals_without_a_reopen_and_leaves_no_partial_segment() {
    for prepare_ahead in [false, true] {
        let disk = LazyDisk::new();
        let wal = open_lazy(&disk, Options { prepare_ahead, ..small(4096) });
        // Half a segment of room: each try to create one fails midway.
        disk.set_capacity(Some(disk.used_bytes() + 2048));
        let seq = fill_until_refused(&wal);
        wal.sync().unwrap();
        for _ in 0..3 {
            assert!(wal.append(1, &[7; 500]).is_err(), "an append past a full disk");
        }
        if !prepare_ahead {
            let left: Vec<_> = disk.files().into_iter().filter(|f| f.to_string_lossy().ends_with(".tmp")).collect();
            assert!(left.is_empty(), "partial segments left behind: {left:?}");
        }
        disk.set_capacity(None);
        assert_eq!(append_once_healed(&wal, &[8; 500]), seq + 1, "prepare_ahead {prepare_ahead}");
        assert_eq!(wal.health(), Health::Writable);
        drop(wal);
        let wal = open_lazy(&disk.crash(2), small(4096));
        assert_eq!(wal.synced_through(), seq + 1);
        assert_eq!(contents(&wal).last().map(|r| r.2.clone()), Some(vec![8; 500]));
    }
}

#[test]
fn a_second_open_of_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _wal = Wal::open(dir.path(), small(4096)).unwrap();
    let err = Wal::open(dir.path(), small(4096)).unwrap_err();
    assert!(err.to_string().contains("in use"), "{err}");
}

#[test]
fn payloads_are_aligned_for_reading_archived_data_in_place() {
    #[derive(rkyv::Archive, rkyv::Serialize, Debug, PartialEq)]
    struct Event {
        id: u64,
        destinations: Vec<u128>,
        body: String,
    }
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(dir.path(), small(64 * 1024)).unwrap();
    for i in 0..20u64 {
        let event = Event { id: i, destinations: vec![u128::from(i) << 64, 3], body: "x".repeat(i as usize * 3) };
        let bytes = rkyv::to_bytes::<rkyv::rancor::Error>(&event).unwrap();
        wal.append(1, &bytes).unwrap();
    }
    wal.sync().unwrap();
    for record in wal.iter_from(1) {
        let record = record.unwrap();
        assert_eq!(record.payload().as_ptr() as usize % 16, 0);
        let archived = rkyv::access::<ArchivedEvent, rkyv::rancor::Error>(record.payload()).unwrap();
        assert_eq!(archived.id, record.seq() - 1);
        assert_eq!(archived.destinations.len(), 2);
    }
}
