//! Corruption on a real file: torn tails at every byte offset, bit flips in
//! acknowledged records, and explicit repair.

use std::{fs, os::unix::fs::FileExt, path::Path};

use ferrox_storage::{Error, Options, Recovery, Wal, format};

use crate::common::{contents, payload, small};

const SEGMENT: &str = "00000000000000000001.seg";

/// Writes `synced` records synced one by one, then `batch` more in a single
/// sync. Returns the payload lengths and each record's start offset.
fn build(dir: &Path, synced: u64, batch: u64) -> Vec<(usize, usize)> {
    let wal = Wal::open(dir, small(64 * 1024)).unwrap();
    let mut layout = Vec::new();
    let mut offset = format::SEGMENT_HEADER_BYTES;
    for seq in 1..=synced + batch {
        let len = 40 + (seq as usize * 13) % 90;
        assert_eq!(wal.append(1, &payload(seq, len)).unwrap(), seq);
        if seq <= synced {
            wal.sync().unwrap();
        }
        layout.push((len, offset));
        offset += format::record_bytes(len);
    }
    wal.sync().unwrap();
    layout
}

#[test]
fn torn_tail_at_every_byte_keeps_every_whole_record() {
    let dir = tempfile::tempdir().unwrap();
    let layout = build(dir.path(), 6, 4);
    let path = dir.path().join(SEGMENT);
    let pristine = fs::read(&path).unwrap();
    let tail_start = layout[6].1;
    let tail_end = layout.last().map(|&(len, off)| off + format::record_bytes(len)).unwrap();
    for cut in tail_start..=tail_end {
        let mut image = pristine.clone();
        image[cut..].fill(0);
        fs::write(&path, &image).unwrap();
        let wal = Wal::open(dir.path(), small(64 * 1024)).unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
        // A record survives exactly when all its payload bytes precede the cut.
        let whole = layout.iter().take_while(|&&(len, off)| off + format::RECORD_HEADER_BYTES + len <= cut).count();
        let got = contents(&wal);
        assert_eq!(got.len(), whole, "cut at {cut}");
        for (seq, _, bytes) in &got {
            assert_eq!(bytes, &payload(*seq, layout[*seq as usize - 1].0));
        }
        let stats = wal.recovery_stats().clone();
        if whole < layout.len() && cut > layout[whole].1 {
            assert_eq!(stats.torn_at, Some((SEGMENT.to_string(), layout[whole].1 as u64)), "cut at {cut}");
            assert!(stats.torn_bytes_dropped > 0);
        }
        drop(wal);
        // The torn bytes were zeroed: the next open finds a clean log.
        let reopened = Wal::open(dir.path(), small(64 * 1024)).unwrap();
        assert_eq!(reopened.recovery_stats().torn_at, None, "cut at {cut}");
        assert_eq!(contents(&reopened), got);
    }
}

#[test]
fn bit_flip_in_an_acknowledged_record_is_reported_where_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let layout = build(dir.path(), 12, 0);
    let path = dir.path().join(SEGMENT);
    let pristine = fs::read(&path).unwrap();
    let (len, offset) = layout[4];
    for bit in 0..format::record_bytes(len) * 8 {
        let mut image = pristine.clone();
        image[offset + bit / 8] ^= 1 << (bit % 8);
        if image == pristine {
            continue;
        }
        fs::write(&path, &image).unwrap();
        match Wal::open(dir.path(), small(64 * 1024)) {
            Err(Error::Corrupt { segment, offset: at, seq, .. }) => {
                assert_eq!((segment, at, seq), (path.clone(), offset as u64, 5), "bit {bit}");
            }
            other => panic!("bit {bit}: expected damage at offset {offset}, got {other:?}"),
        }
    }
}

#[test]
fn padding_flips_are_damage_too() {
    let dir = tempfile::tempdir().unwrap();
    let layout = build(dir.path(), 8, 0);
    let path = dir.path().join(SEGMENT);
    let (len, offset) = layout[2];
    let padding_at = offset + format::RECORD_HEADER_BYTES + len;
    assert!(format::record_bytes(len) > format::RECORD_HEADER_BYTES + len, "record 3 has padding");
    let file = fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.write_all_at(&[0x80], padding_at as u64).unwrap();
    assert!(matches!(Wal::open(dir.path(), small(64 * 1024)), Err(Error::Corrupt { seq: 3, .. })));
}

#[test]
fn repair_truncates_at_the_damage_and_reports_it() {
    let dir = tempfile::tempdir().unwrap();
    let layout = build(dir.path(), 10, 0);
    let path = dir.path().join(SEGMENT);
    let file = fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.write_all_at(&[0xff], layout[6].1 as u64 + 40).unwrap();
    assert!(matches!(Wal::open(dir.path(), small(64 * 1024)), Err(Error::Corrupt { seq: 7, .. })));
    let repair = Options { recovery: Recovery::Repair, ..small(64 * 1024) };
    let wal = Wal::open(dir.path(), repair).unwrap();
    assert_eq!(wal.synced_through(), 6);
    assert_eq!(wal.recovery_stats().records_discarded, 3, "records 8..=10 were cut with the damage");
    assert!(wal.recovery_stats().repaired.as_deref().is_some_and(|r| r.contains(SEGMENT)));
    assert_eq!(wal.append_sync(1, b"after repair").unwrap(), 7);
    drop(wal);
    let wal = Wal::open(dir.path(), small(64 * 1024)).unwrap();
    assert_eq!(contents(&wal).len(), 7);
}

#[test]
fn damaged_segment_header_or_shortened_file_is_damage_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path(), 3, 0);
    let path = dir.path().join(SEGMENT);
    let pristine = fs::read(&path).unwrap();
    let mut image = pristine.clone();
    image[20] ^= 1;
    fs::write(&path, &image).unwrap();
    assert!(matches!(Wal::open(dir.path(), small(64 * 1024)), Err(Error::Corrupt { offset: 0, .. })));
    fs::write(&path, &pristine[..pristine.len() / 2]).unwrap();
    assert!(matches!(Wal::open(dir.path(), small(64 * 1024)), Err(Error::Corrupt { offset: 0, .. })));
}
