//! Processing look-ahead (SPEC §4: processing "may run ahead of the queue,
//! in parallel, but never reorders delivery").
//!
//! While a destination's head is delivered, or waits for a retry, its actor
//! prepares the logs after it: payload read, then the transform on the
//! pool, or the Meta IDs set on the actor's thread. `LookAhead` keeps those
//! preparations until their log's turn. Delivery stays head-only: a result
//! is used only by its own log, once that log is the head, and only then
//! does a filter or a processing error count. Nothing is journaled for a
//! log ahead of the head.
//!
//! A result depends on more than its log: on the subscription's transform
//! program, which an operator may change meanwhile, and on the number of
//! attempts made, which the Meta IDs carry. It is kept with that `Basis`;
//! one whose basis no longer holds is thrown away and prepared again.
//! Operator actions throw every result away (a manual retry re-runs
//! processing), and a log that leaves the queue takes its result along.
//!
//! Bounds, per destination (see `limits`): `PROCESSING_READ_AHEAD` logs,
//! `PROCESSING_AHEAD_JOBS` of them in preparation at once, and
//! `PROCESSING_READ_AHEAD_BYTES` of payloads in preparation and bodies
//! kept. A preparation starts only if its payload fits the byte budget; a
//! transform that enlarges a body may take the total past it, and then
//! nothing new starts until it is back under. The head is always prepared,
//! outside these bounds.

use std::{
    collections::HashMap,
    fmt,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use actix_web::web::Bytes;
use futures_util::future::{LocalBoxFuture, Shared};

use crate::{limits, model::Id};

/// A prepared body: `Ok(None)` when the transform filtered the message
/// out, `Err` for a processing failure.
pub type Prepared = Result<Option<Bytes>, String>;

/// A preparation under way or done, awaited both by the look-ahead and by
/// the delivery that uses it.
pub type Preparation = Shared<LocalBoxFuture<'static, Prepared>>;

/// What a prepared body depends on besides its log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Basis {
    /// The subscription's transform program; `None` without a transform.
    pub program: Option<String>,
    /// Attempts made before this one: the Meta IDs carry the number.
    pub attempts: u64,
}

/// Look-ahead counts over every destination, for `/metrics`.
#[derive(Debug, Default)]
pub struct AheadCounts {
    /// Preparations started ahead of their log's turn.
    pub started: AtomicU64,
    /// Preparations started ahead of their log's turn that finished.
    pub prepared: AtomicU64,
    /// Deliveries that used a preparation started ahead of their turn.
    pub used: AtomicU64,
    /// Preparations thrown away: stale, cleared by an operator action, or
    /// their log left the queue.
    pub discarded: AtomicU64,
}

struct Entry {
    basis: Basis,
    /// Tells this preparation from an earlier one of the same log.
    seq: u64,
    /// The payload's bytes while preparing, then the body's.
    bytes: usize,
    preparation: Preparation,
}

/// One destination's preparations of the logs after its head.
pub struct LookAhead {
    entries: HashMap<Id, Entry>,
    /// Bytes of every entry.
    bytes: usize,
    /// Preparations started ahead and not finished, kept or not: each holds
    /// a place in the pool's queue until it finishes.
    running: usize,
    next_seq: u64,
    /// A log whose payload did not fit the byte budget, and its size: it is
    /// not read again while it still would not fit.
    too_big: Option<(Id, usize)>,
    counts: Arc<AheadCounts>,
}

impl fmt::Debug for LookAhead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (logs, bytes, running) = (self.entries.len(), self.bytes, self.running);
        f.debug_struct("LookAhead").field("logs", &logs).field("bytes", &bytes).field("running", &running).finish()
    }
}

impl LookAhead {
    pub fn new(counts: Arc<AheadCounts>) -> Self {
        Self { entries: HashMap::new(), bytes: 0, running: 0, next_seq: 0, too_big: None, counts }
    }

    /// Whether another preparation may start: fewer than the most logs
    /// kept, and fewer than the most preparations running.
    pub fn has_room(&self) -> bool {
        self.entries.len() < limits::PROCESSING_READ_AHEAD && self.running < limits::PROCESSING_AHEAD_JOBS
    }

    /// Whether a payload of `bytes` fits the byte budget beside what is kept.
    pub fn fits(&self, bytes: usize) -> bool {
        self.bytes.saturating_add(bytes) <= limits::PROCESSING_READ_AHEAD_BYTES
    }

    /// Whether `log` is known not to fit, so need not be read to find out.
    pub fn known_too_big(&self, log: Id) -> bool {
        self.too_big.is_some_and(|(l, bytes)| l == log && !self.fits(bytes))
    }

    /// Remembers that `log`'s payload of `bytes` did not fit.
    pub fn too_big(&mut self, log: Id, bytes: usize) {
        self.too_big = Some((log, bytes));
    }

    /// Logs with a preparation.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether `log` has a preparation, on whatever basis.
    pub fn contains(&self, log: Id) -> bool {
        self.entries.contains_key(&log)
    }

    /// Whether `log` has a preparation on the basis `(program, attempts)`.
    /// One on another basis is thrown away.
    pub fn holds(&mut self, log: Id, program: Option<&str>, attempts: u64) -> bool {
        let Some(entry) = self.entries.get(&log) else { return false };
        if entry.basis.program.as_deref() == program && entry.basis.attempts == attempts {
            return true;
        }
        self.discard(log);
        false
    }

    /// Keeps a preparation just started for `log`, whose payload has
    /// `bytes`; returns the number `finished` is to be called with.
    pub fn insert(&mut self, log: Id, basis: Basis, bytes: usize, preparation: Preparation) -> u64 {
        self.discard(log);
        let seq = self.next_seq;
        self.next_seq += 1;
        self.running += 1;
        self.counts.started.fetch_add(1, Ordering::Relaxed);
        self.bytes += bytes;
        self.entries.insert(log, Entry { basis, seq, bytes, preparation });
        seq
    }

    /// Records the end of preparation `seq` of `log`: a body now takes the
    /// place of its payload. Counts it even if the entry has gone.
    pub fn finished(&mut self, log: Id, seq: u64, prepared: &Prepared) {
        debug_assert!(self.running > 0, "a preparation finished that was not running");
        self.running = self.running.saturating_sub(1);
        self.counts.prepared.fetch_add(1, Ordering::Relaxed);
        let Some(entry) = self.entries.get_mut(&log).filter(|e| e.seq == seq) else { return };
        let body_bytes = prepared.as_ref().ok().and_then(Option::as_ref).map_or(0, Bytes::len);
        self.bytes = self.bytes - entry.bytes + body_bytes;
        entry.bytes = body_bytes;
    }

    /// Takes `log`'s preparation for its delivery, if made on `basis`; one
    /// made on another basis is thrown away.
    pub fn take(&mut self, log: Id, basis: &Basis) -> Option<Preparation> {
        if !self.holds(log, basis.program.as_deref(), basis.attempts) {
            return None;
        }
        let entry = self.remove(log)?;
        self.counts.used.fetch_add(1, Ordering::Relaxed);
        Some(entry.preparation)
    }

    /// Throws away the preparations of logs that `keep` does not name.
    pub fn retain(&mut self, keep: impl Fn(Id) -> bool) {
        let gone: Vec<Id> = self.entries.keys().copied().filter(|&log| !keep(log)).collect();
        for log in gone {
            self.discard(log);
        }
    }

    /// Throws every preparation away.
    pub fn clear(&mut self) {
        self.retain(|_| false);
        self.too_big = None;
    }

    /// Logs kept and the bytes they take.
    #[cfg(test)]
    fn usage(&self) -> (usize, usize) {
        (self.len(), self.bytes)
    }

    fn discard(&mut self, log: Id) {
        if self.remove(log).is_some() {
            self.counts.discarded.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn remove(&mut self, log: Id) -> Option<Entry> {
        let entry = self.entries.remove(&log)?;
        self.bytes -= entry.bytes;
        Some(entry)
    }
}

#[cfg(test)]
mod tests {
    use futures_util::{FutureExt as _, future};

    use super::*;

    fn ready(body: &[u8]) -> Preparation {
        future::ready(Ok(Some(Bytes::copy_from_slice(body)))).boxed_local().shared()
    }

    fn basis(program: Option<&str>, attempts: u64) -> Basis {
        Basis { program: program.map(str::to_owned), attempts }
    }

    fn counts(ahead: &LookAhead) -> [u64; 4] {
        let c = &ahead.counts;
        [&c.started, &c.prepared, &c.used, &c.discarded].map(|n| n.load(Ordering::Relaxed))
    }

    #[test]
    fn a_result_is_used_only_on_the_basis_it_was_made_on() {
        let mut ahead = LookAhead::new(Arc::default());
        let seq = ahead.insert(Id(1), basis(Some(".a"), 0), 10, ready(b"{}"));
        ahead.finished(Id(1), seq, &Ok(Some(Bytes::from_static(b"{\"a\":1}"))));
        assert_eq!(ahead.usage(), (1, 7), "the body's bytes replace the payload's");
        // Another program, or another attempt, makes it stale.
        assert!(ahead.take(Id(1), &basis(Some(".b"), 0)).is_none());
        assert_eq!(ahead.usage(), (0, 0));
        let seq = ahead.insert(Id(1), basis(None, 0), 10, ready(b"{}"));
        assert!(!ahead.holds(Id(1), None, 1));
        // A preparation thrown away still finishes: it counts, changes nothing.
        ahead.finished(Id(1), seq, &Ok(None));
        assert_eq!(ahead.usage(), (0, 0));
        ahead.insert(Id(1), basis(None, 0), 10, ready(b"{}"));
        assert!(ahead.holds(Id(1), None, 0));
        let taken = ahead.take(Id(1), &basis(None, 0)).expect("a fresh result");
        assert_eq!(taken.now_or_never(), Some(Ok(Some(Bytes::from_static(b"{}")))));
        assert!(ahead.take(Id(1), &basis(None, 0)).is_none(), "a result is used once");
        assert_eq!(counts(&ahead), [3, 2, 1, 2]);
    }

    #[test]
    fn logs_running_preparations_and_bytes_are_bounded() {
        let mut ahead = LookAhead::new(Arc::default());
        let mut log = 0;
        let mut start = |ahead: &mut LookAhead, bytes| {
            log += 1;
            (Id(log), ahead.insert(Id(log), basis(None, 0), bytes, ready(b"")))
        };
        let running: Vec<_> = (0..limits::PROCESSING_AHEAD_JOBS).map(|_| start(&mut ahead, 1)).collect();
        assert!(!ahead.has_room(), "at most PROCESSING_AHEAD_JOBS run at once");
        for (log, seq) in running {
            ahead.finished(log, seq, &Ok(Some(Bytes::from_static(b"x"))));
        }
        while ahead.has_room() {
            let (log, seq) = start(&mut ahead, 1);
            ahead.finished(log, seq, &Ok(None));
        }
        assert_eq!(ahead.usage().0, limits::PROCESSING_READ_AHEAD, "at most PROCESSING_READ_AHEAD logs");

        ahead.clear();
        assert_eq!(ahead.usage(), (0, 0));
        let budget = limits::PROCESSING_READ_AHEAD_BYTES;
        assert!(ahead.fits(budget) && !ahead.fits(budget + 1));
        start(&mut ahead, budget - 10);
        assert!(ahead.fits(10) && !ahead.fits(11));
        ahead.too_big(Id(99), 11);
        assert!(ahead.known_too_big(Id(99)) && !ahead.known_too_big(Id(98)));
        ahead.retain(|_| false);
        assert!(!ahead.known_too_big(Id(99)), "it fits once room is made");
    }
}
