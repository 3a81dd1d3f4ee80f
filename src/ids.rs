//! Randomness, injected: identifiers, secrets and salts come from an
//! [`IdSource`], the OS generator in production and a seeded one in tests.

use std::{fmt, sync::Arc};

use parking_lot::Mutex;

use crate::model::Id;

pub trait IdSource: Send + Sync + fmt::Debug {
    /// Fills `out` with random bytes.
    fn fill(&self, out: &mut [u8]);

    /// A random (version 4) UUID.
    fn id(&self) -> Id {
        let mut bytes = [0u8; 16];
        self.fill(&mut bytes);
        Id(uuid::Builder::from_random_bytes(bytes).into_uuid().as_u128())
    }

    /// `n` random bytes.
    fn bytes(&self, n: usize) -> Vec<u8> {
        let mut out = vec![0u8; n];
        self.fill(&mut out);
        out
    }
}

pub type SharedIds = Arc<dyn IdSource>;

/// Bytes drawn from the OS at a time: one system call serves many IDs.
const OS_POOL_BYTES: usize = 4096;

/// The operating system's generator (getrandom), read in blocks.
#[derive(Debug, Default)]
pub struct OsIds {
    pool: Mutex<(Vec<u8>, usize)>,
}

impl IdSource for OsIds {
    fn fill(&self, out: &mut [u8]) {
        let mut guard = self.pool.lock();
        let (pool, used) = &mut *guard;
        let mut filled = 0;
        while filled < out.len() {
            if *used == pool.len() {
                pool.resize(OS_POOL_BYTES, 0);
                // Without OS randomness no safe identifier or secret can be
                // made; there is nothing sensible to continue with.
                if let Err(e) = getrandom::fill(pool) {
                    panic!("the operating system's random generator failed: {e}");
                }
                *used = 0;
            }
            let n = (out.len() - filled).min(pool.len() - *used);
            out[filled..filled + n].copy_from_slice(&pool[*used..*used + n]);
            // Bytes handed out are never handed out again.
            pool[*used..*used + n].fill(0);
            *used += n;
            filled += n;
        }
    }
}

/// A deterministic generator (SplitMix64) for tests.
#[derive(Debug)]
pub struct SeededIds(Mutex<u64>);

impl SeededIds {
    pub fn new(seed: u64) -> Self {
        Self(Mutex::new(seed))
    }
}

impl IdSource for SeededIds {
    fn fill(&self, out: &mut [u8]) {
        let mut state = self.0.lock();
        for chunk in out.chunks_mut(8) {
            *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = *state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            let z = (z ^ (z >> 31)).to_le_bytes();
            chunk.copy_from_slice(&z[..chunk.len()]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_v4_and_seeded_ones_repeat() {
        let a = SeededIds::new(1);
        let b = SeededIds::new(1);
        let (x, y) = (a.id(), b.id());
        assert_eq!(x, y);
        assert_ne!(a.id(), x);
        let os = OsIds::default();
        assert_eq!(uuid::Uuid::from_u128(os.id().0).get_version_num(), 4);
        assert_ne!(os.id(), os.id());
        assert_eq!(os.bytes(10_000).len(), 10_000);
        assert_eq!(a.bytes(37).len(), 37);
    }
}
