//! Helpers shared by the tests.

use std::{
    hash::{BuildHasher, RandomState},
    path::Path,
    sync::Arc,
};

use ferrox_storage::{Options, Wal, sim::LazyDisk};

/// The seed of a randomized test: `FERROX_TEST_SEED` if set, else random.
/// Every randomized test prints it so a failure can be replayed.
pub fn seed(test: &str) -> u64 {
    let seed = std::env::var("FERROX_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| RandomState::new().hash_one(test));
    eprintln!("{test}: seed {seed} (set FERROX_TEST_SEED={seed} to replay)");
    seed
}

/// Small segments so that tests roll often.
pub fn small(segment_bytes: u64) -> Options {
    Options { segment_bytes, max_record_bytes: 1024, seed: Some(7), ..Options::default() }
}

pub fn open_lazy(disk: &LazyDisk, options: Options) -> Wal {
    Wal::open_on(Arc::new(disk.clone()), Path::new("/wal"), options).expect("open on the lazy disk")
}

/// A payload whose bytes identify `seq` and never end in zero.
pub fn payload(seq: u64, len: usize) -> Vec<u8> {
    (0..len).map(|i| ((seq as usize * 31 + i * 7) % 251 + 1) as u8).collect()
}

/// Every durable record as (seq, kind, payload).
pub fn contents(wal: &Wal) -> Vec<(u64, u16, Vec<u8>)> {
    wal.iter_from(0).map(|r| r.expect("record reads back")).map(|r| (r.seq(), r.kind(), r.payload().to_vec())).collect()
}
