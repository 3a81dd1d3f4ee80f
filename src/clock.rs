//! Time, injected. Nothing outside this module and `main.rs` reads the
//! wall clock; tests drive a [`ManualClock`].

use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicI64, Ordering},
    },
    task::{Context, Poll, Waker},
};

use parking_lot::Mutex;

use time::{OffsetDateTime, format_description::well_known::Rfc3339};

use crate::model::TimestampMs;

pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send>>;

pub trait Clock: Send + Sync + fmt::Debug {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> TimestampMs;
    /// Resolves once the clock reads `deadline_ms` or later.
    fn sleep_until(&self, deadline_ms: TimestampMs) -> Sleep;
}

pub type SharedClock = Arc<dyn Clock>;

/// The system's wall clock.
#[derive(Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> TimestampMs {
        let now = OffsetDateTime::now_utc();
        i64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
    }

    fn sleep_until(&self, deadline_ms: TimestampMs) -> Sleep {
        let wait_ms = u64::try_from(deadline_ms.saturating_sub(self.now_ms())).unwrap_or(0);
        Box::pin(tokio::time::sleep(std::time::Duration::from_millis(wait_ms)))
    }
}

/// A clock that moves only when told to; sleepers wake as it passes their
/// deadlines.
#[derive(Debug, Default)]
pub struct ManualClock {
    inner: Arc<ManualInner>,
}

#[derive(Debug, Default)]
struct ManualInner {
    now: AtomicI64,
    /// Pending sleeps: deadline, sleep number, waker.
    sleepers: Mutex<Vec<(TimestampMs, u64, Waker)>>,
    next_sleep: std::sync::atomic::AtomicU64,
}

impl ManualClock {
    pub fn new(now_ms: TimestampMs) -> Self {
        let inner = ManualInner { now: AtomicI64::new(now_ms), ..ManualInner::default() };
        Self { inner: Arc::new(inner) }
    }

    pub fn advance_ms(&self, ms: i64) {
        // The time moves before the sleepers are looked at, and sleeps check
        // the time under the same lock, so no wake-up is lost.
        let now = self.inner.now.fetch_add(ms, Ordering::SeqCst) + ms;
        let mut sleepers = self.inner.sleepers.lock();
        sleepers.retain(|(deadline, _, waker)| {
            let due = *deadline <= now;
            if due {
                waker.wake_by_ref();
            }
            !due
        });
    }

    /// The earliest deadline anyone sleeps until, if any.
    pub fn next_deadline(&self) -> Option<TimestampMs> {
        self.inner.sleepers.lock().iter().map(|(d, _, _)| *d).min()
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> TimestampMs {
        self.inner.now.load(Ordering::SeqCst)
    }

    fn sleep_until(&self, deadline_ms: TimestampMs) -> Sleep {
        let number = self.inner.next_sleep.fetch_add(1, Ordering::SeqCst);
        Box::pin(ManualSleep { deadline_ms, number, inner: self.inner.clone() })
    }
}

struct ManualSleep {
    deadline_ms: TimestampMs,
    number: u64,
    inner: Arc<ManualInner>,
}

impl Future for ManualSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut sleepers = self.inner.sleepers.lock();
        let listed = sleepers.iter().position(|(_, n, _)| *n == self.number);
        if self.inner.now.load(Ordering::SeqCst) >= self.deadline_ms {
            if let Some(i) = listed {
                sleepers.swap_remove(i);
            }
            return Poll::Ready(());
        }
        match listed {
            Some(i) => sleepers[i].2.clone_from(cx.waker()),
            None => sleepers.push((self.deadline_ms, self.number, cx.waker().clone())),
        }
        Poll::Pending
    }
}

impl Drop for ManualSleep {
    fn drop(&mut self) {
        self.inner.sleepers.lock().retain(|(_, n, _)| *n != self.number);
    }
}

/// Formats a timestamp as RFC 3339 UTC with millisecond precision.
pub fn rfc3339(ms: TimestampMs) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_owned())
}

/// Parses an RFC 3339 timestamp to milliseconds.
pub fn parse_rfc3339(text: &str) -> Option<TimestampMs> {
    let t = OffsetDateTime::parse(text, &Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_sleeps_wake_when_time_passes_their_deadline() {
        let clock = ManualClock::new(1_000);
        let sleep = clock.sleep_until(11_000);
        let handle = std::thread::spawn(move || futures_util::FutureExt::now_or_never(sleep).is_some());
        assert!(!handle.join().unwrap(), "not due yet");
        assert_eq!(clock.next_deadline(), None, "a dropped sleep is forgotten");
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let sleep = clock.sleep_until(11_000);
        let waiter = std::thread::spawn(move || rt.block_on(sleep));
        while clock.next_deadline().is_none() {
            std::thread::yield_now();
        }
        clock.advance_ms(9_999);
        assert_eq!(clock.next_deadline(), Some(11_000));
        clock.advance_ms(1);
        waiter.join().unwrap();
        assert!(futures_util::FutureExt::now_or_never(clock.sleep_until(5)).is_some(), "past deadlines are ready");
    }

    #[test]
    fn rfc3339_round_trips() {
        let ms = 1_763_846_400_123;
        let text = rfc3339(ms);
        assert_eq!(text, "2025-11-22T21:20:00.123Z");
        assert_eq!(parse_rfc3339(&text), Some(ms));
        assert_eq!(parse_rfc3339("yesterday"), None);
    }
}
