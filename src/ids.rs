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

/// The operating system's generator.
#[derive(Debug, Default)]
pub struct OsIds;

impl IdSource for OsIds {
    fn fill(&self, out: &mut [u8]) {
        // `Uuid::new_v4` draws from the OS generator (getrandom).
        for chunk in out.chunks_mut(16) {
            let random = uuid::Uuid::new_v4().as_u128().to_le_bytes();
            chunk.copy_from_slice(&random[..chunk.len()]);
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
        assert_eq!(uuid::Uuid::from_u128(OsIds.id().0).get_version_num(), 4);
        assert_eq!(a.bytes(37).len(), 37);
    }
}
