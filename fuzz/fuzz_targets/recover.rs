//! Arbitrary bytes as a segment, alone or after a valid prefix of records,
//! through recovery. Recovery must not panic, must not allocate beyond the
//! input's size, and may only return records that an independent reading of
//! the documented format finds CRC-valid, in order.

#![no_main]

use std::{path::Path, sync::Arc};

use ferrox_storage::{Options, Recovery, Wal, format, sim::LazyDisk, vfs::Vfs};
use libfuzzer_sys::fuzz_target;

const DIR: &str = "/wal";
const SEGMENT_BYTES: u64 = 8192;

fn options(recovery: Recovery) -> Options {
    Options { segment_bytes: SEGMENT_BYTES, max_record_bytes: 2048, prepare_ahead: false, recovery, seed: Some(1) }
}

/// Builds the disk: mode 0 writes the input as a whole segment file; mode 1
/// writes a valid log of a few records (the count taken from the input) and
/// then lays the input over the rest of the segment.
fn disk_from(data: &[u8]) -> Option<LazyDisk> {
    let (&mode, rest) = data.split_first()?;
    let disk = LazyDisk::new();
    let path = Path::new(DIR).join("00000000000000000001.seg");
    let mut image = vec![0u8; SEGMENT_BYTES as usize];
    if mode % 2 == 0 {
        let n = rest.len().min(image.len());
        image[..n].copy_from_slice(&rest[..n]);
    } else {
        let (&count, rest) = rest.split_first()?;
        {
            let wal = Wal::open_on(Arc::new(disk.clone()), DIR, options(Recovery::Strict)).ok()?;
            for i in 0..count % 16 {
                wal.append(1 + u16::from(i % 3), &vec![i; usize::from(i) * 17]).ok()?;
            }
            wal.sync().ok()?;
        }
        image = disk.read(&path)?;
        let start = prefix_end(&image);
        let n = rest.len().min(image.len() - start);
        image[start..start + n].copy_from_slice(&rest[..n]);
        disk.remove(&path).ok()?;
    }
    let file = disk.create(&path, SEGMENT_BYTES).ok()?;
    file.write_at(0, &image).ok()?;
    file.sync().ok()?;
    disk.sync_dir(Path::new(DIR)).ok()?;
    Some(disk)
}

/// Reads records by the documented layout, independently of the crate:
/// returns (seq, kind, payload) of each valid record from offset 64 on.
fn independent_records(image: &[u8]) -> Vec<(u64, u16, Vec<u8>)> {
    let le = |at: usize, n: usize| image[at..at + n].iter().rev().fold(0u64, |acc, &b| acc << 8 | u64::from(b));
    let mut out = Vec::new();
    if image.len() < 64 || crc32fast::hash(&image[..60]) as u64 != le(60, 4) {
        return out;
    }
    let salt = le(32, 8);
    let mut at = format::SEGMENT_HEADER_BYTES;
    while at + 32 <= image.len() {
        let len = le(at + 4, 4) as usize;
        let Some(payload) = image.get(at + 32..at + 32 + len) else { break };
        let mut crc = crc32fast::Hasher::new();
        crc.update(&image[at + 4..at + 32]);
        crc.update(&salt.to_le_bytes());
        crc.update(payload);
        if u64::from(crc.finalize()) != le(at, 4) || le(at + 8, 8) == 0 {
            break;
        }
        out.push((le(at + 8, 8), le(at + 24, 2) as u16, payload.to_vec()));
        at += format::record_bytes(len);
    }
    out
}

fn prefix_end(image: &[u8]) -> usize {
    independent_records(image).iter().fold(format::SEGMENT_HEADER_BYTES, |at, r| at + format::record_bytes(r.2.len()))
}

fuzz_target!(|data: &[u8]| {
    for recovery in [Recovery::Strict, Recovery::Repair] {
        // Each mode gets its own disk: a successful open changes it.
        let Some(disk) = disk_from(data) else { return };
        let image = disk.read(&Path::new(DIR).join("00000000000000000001.seg")).unwrap_or_default();
        let valid = independent_records(&image);
        let Ok(wal) = Wal::open_on(Arc::new(disk.clone()), DIR, options(recovery)) else {
            assert!(recovery == Recovery::Strict, "repair always opens");
            continue;
        };
        let got: Vec<(u64, u16, Vec<u8>)> = wal
            .iter_from(0)
            .map(|r| r.expect("recovered records read back"))
            .map(|r| (r.seq(), r.kind(), r.payload().to_vec()))
            .collect();
        assert!(got.len() <= valid.len(), "recovery returned a record the format does not hold");
        assert_eq!(got[..], valid[..got.len()], "recovered records differ from the file");
        // A recovered log accepts appends again, numbered after what it kept.
        let next = wal.append_sync(1, b"after").expect("append after recovery");
        assert_eq!(next, got.last().map_or(1, |r| r.0 + 1));
    }
});
