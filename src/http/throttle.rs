//! Rate limits per client address (SPEC §11): source sign-ins
//! (`/auth/*`, each a PBKDF2 check) and failed operator tokens. A token
//! bucket per address: a burst, then a steady rate; past it, 429 with
//! `Retry-After`. The addresses tracked are bounded.

use std::{collections::HashMap, net::IpAddr};

use parking_lot::Mutex;

use crate::{
    clock::SharedClock,
    error::{ApiError, ErrorKind},
    limits,
};

/// One rate limit.
#[derive(Debug)]
pub struct Throttle {
    what: &'static str,
    burst: f64,
    per_ms: f64,
    clock: SharedClock,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at_ms: i64,
}

impl Throttle {
    /// `burst` at once, then `per_minute`; `what` names the limit in the
    /// 429's text.
    pub fn new(what: &'static str, burst: u32, per_minute: u32, clock: SharedClock) -> Self {
        Self {
            what,
            burst: f64::from(burst),
            per_ms: f64::from(per_minute) / 60_000.0,
            clock,
            buckets: Mutex::default(),
        }
    }

    /// The bucket of `addr`, refilled to now.
    fn refilled(&self, buckets: &HashMap<IpAddr, Bucket>, addr: IpAddr, now_ms: i64) -> Bucket {
        let bucket = buckets.get(&addr).copied().unwrap_or(Bucket { tokens: self.burst, at_ms: now_ms });
        let elapsed_ms = (now_ms - bucket.at_ms).max(0) as f64;
        Bucket { tokens: (bucket.tokens + elapsed_ms * self.per_ms).min(self.burst), at_ms: now_ms }
    }

    fn refusal(&self, bucket: Bucket) -> ApiError {
        let wait_s = ((1.0 - bucket.tokens) / self.per_ms / 1000.0).ceil().max(1.0) as u64;
        ApiError::new(
            ErrorKind::TooManyRequests,
            format!("Too many {} from this address: try again in {wait_s} s", self.what),
        )
        .retry_after(wait_s)
    }

    /// Refuses `addr` while its bucket is empty, without taking from it.
    pub fn check(&self, addr: IpAddr) -> Result<(), ApiError> {
        let buckets = self.buckets.lock();
        let bucket = self.refilled(&buckets, addr, self.clock.now_ms());
        if bucket.tokens < 1.0 { Err(self.refusal(bucket)) } else { Ok(()) }
    }

    /// Takes one from `addr`'s bucket, or refuses when it is empty.
    pub fn take(&self, addr: IpAddr) -> Result<(), ApiError> {
        let now_ms = self.clock.now_ms();
        let mut buckets = self.buckets.lock();
        let mut bucket = self.refilled(&buckets, addr, now_ms);
        if bucket.tokens < 1.0 {
            return Err(self.refusal(bucket));
        }
        bucket.tokens -= 1.0;
        if buckets.len() >= limits::THROTTLED_ADDRESSES_MAX && !buckets.contains_key(&addr) {
            // Full buckets hold nothing back: forgetting them changes no
            // answer. Should every address be in debt, the oldest debts go.
            let burst = self.burst;
            let per_ms = self.per_ms;
            buckets.retain(|_, b| b.tokens + (now_ms - b.at_ms).max(0) as f64 * per_ms < burst);
            if buckets.len() >= limits::THROTTLED_ADDRESSES_MAX {
                tracing::warn!(limit = self.what, "too many addresses are rate limited at once; forgetting them");
                buckets.clear();
            }
        }
        buckets.insert(addr, bucket);
        Ok(())
    }
}

/// The engine's rate limits.
#[derive(Debug)]
pub struct Throttles {
    /// `POST /auth/authenticate` and `/auth/refreshToken`, every request.
    pub sign_in: Throttle,
    /// Operator API requests with a missing or wrong token.
    pub operator_failures: Throttle,
}

impl Throttles {
    pub fn new(clock: &SharedClock) -> Self {
        Self {
            sign_in: Throttle::new(
                "sign-in requests",
                limits::SIGN_IN_BURST,
                limits::SIGN_IN_PER_MINUTE,
                clock.clone(),
            ),
            operator_failures: Throttle::new(
                "failed operator tokens",
                limits::OPERATOR_FAILURES_BURST,
                limits::OPERATOR_FAILURES_PER_MINUTE,
                clock.clone(),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::clock::ManualClock;

    #[test]
    fn a_burst_then_a_steady_rate_then_429_with_the_wait() {
        let clock = Arc::new(ManualClock::new(1_000_000));
        let throttle = Throttle::new("tries", 3, 6, clock.clone());
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        for _ in 0..3 {
            throttle.take(a).expect("within the burst");
        }
        let refused = throttle.take(a).expect_err("past the burst");
        assert_eq!((refused.status().as_u16(), refused.retry_after_s), (429, Some(10)), "{refused}");
        assert!(throttle.check(a).is_err());
        throttle.take(b).expect("another address has its own bucket");
        clock.advance_ms(10_000);
        throttle.check(a).expect("one refilled after 10 s at 6 a minute");
        throttle.take(a).expect("one refilled");
        assert!(throttle.take(a).is_err());
    }
}
