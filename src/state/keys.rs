//! The idempotency keys of the last 24 hours (SPEC §2): remembered as
//! fixed-size hashes with their message's position, here and in the
//! history on disk (`history::keys`), so a start loads them.

use super::{IDEMPOTENCY_WINDOW_MS, State};
use crate::{
    history::{StoredKey, key_hash},
    journal::BodyHash,
    model::{Id, TimestampMs},
};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Idempotent {
    pub message_id: u64,
    pub position: u64,
    pub at_ms: TimestampMs,
    /// The digest of the body that came with the key.
    pub body_hash: BodyHash,
}

impl State {
    /// Remembers a key, and forgets those whose window has ended by its
    /// time. Keys come in acceptance order, from the history at a start
    /// and from accepted messages after, so memory ends the same either way.
    pub(super) fn remember_key(&mut self, key: StoredKey) {
        let entry = Idempotent {
            message_id: key.message_id,
            position: key.position,
            at_ms: key.at_ms,
            body_hash: key.body_hash,
        };
        self.idempotency.insert(key.key, entry);
        self.idempotency_order.push_back((key.at_ms, key.key));
        self.last_key_position = key.position;
        self.forget_keys_before(key.at_ms - IDEMPOTENCY_WINDOW_MS);
    }

    /// Forgets the keys whose window has ended by `cutoff_ms` + the window:
    /// those received at or before `cutoff_ms`, as [`idempotent`] no longer
    /// answers them and retention no longer keeps their records. As each
    /// key comes, and at each compaction, by the clock.
    ///
    /// [`idempotent`]: Self::idempotent
    pub fn forget_keys_before(&mut self, cutoff_ms: TimestampMs) {
        while let Some(&(at, hash)) = self.idempotency_order.front() {
            if at > cutoff_ms {
                break;
            }
            self.idempotency_order.pop_front();
            if self.idempotency.get(&hash).is_some_and(|e| e.at_ms == at) {
                self.idempotency.remove(&hash);
            }
        }
    }

    /// The position of the oldest idempotency key remembered.
    pub fn oldest_key_position(&self) -> Option<u64> {
        // A key used again after its window leaves its older place behind.
        self.idempotency_order
            .iter()
            .find_map(|(at, hash)| self.idempotency.get(hash).filter(|e| e.at_ms == *at))
            .map(|e| e.position)
    }

    /// The message an `Idempotency-Key` of `source` named within the window.
    pub fn idempotent(&self, source: Id, key: &str, now_ms: TimestampMs) -> Option<Idempotent> {
        self.idempotency.get(&key_hash(source, key)).filter(|e| now_ms - e.at_ms < IDEMPOTENCY_WINDOW_MS).copied()
    }
}
