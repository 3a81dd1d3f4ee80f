//! The retry schedule (SPEC §4): a pure function of how many attempts have
//! failed, so tests can drive it in virtual time.

/// Delay before the next attempt after `failures` failed attempts (at least
/// one): element *i* of `schedule` is the delay before retry *i + 1*, and the
/// last element repeats. An empty schedule retries at once.
pub fn retry_delay_ms(failures: u32, schedule: &[u64]) -> u64 {
    let index = usize::try_from(failures.saturating_sub(1)).unwrap_or(usize::MAX);
    schedule.get(index).or(schedule.last()).copied().unwrap_or(0)
}

/// When a `Retrying` log is due for its next attempt: after the end of its
/// last attempt, by the schedule.
pub fn next_attempt_at(log: &crate::state::Log, schedule: &[u64]) -> i64 {
    let failures = u32::try_from(log.attempts().len()).unwrap_or(u32::MAX).max(1);
    let last_end = log.attempts().last().map_or(log.updated_at_ms, |a| {
        a.started_at_ms.saturating_add(i64::try_from(a.duration_ms).unwrap_or(i64::MAX))
    });
    last_end.saturating_add(i64::try_from(retry_delay_ms(failures, schedule)).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULT: [u64; 8] = [0, 10_000, 10_000, 20_000, 30_000, 50_000, 80_000, 120_000];

    #[test]
    fn attempt_times_follow_the_spec() {
        // The first attempt fails at t = 0; each retry happens after its delay
        // (delivery itself is taken as instant).
        let mut at = 0u64;
        let mut times = vec![at];
        for failures in 1..=9 {
            at += retry_delay_ms(failures, &DEFAULT);
            times.push(at / 1000);
        }
        assert_eq!(times, [0, 0, 10, 20, 40, 70, 120, 200, 320, 440]);
    }

    #[test]
    fn last_delay_repeats_and_odd_inputs_are_safe() {
        assert_eq!(retry_delay_ms(1_000_000, &DEFAULT), 120_000);
        assert_eq!(retry_delay_ms(0, &DEFAULT), 0);
        assert_eq!(retry_delay_ms(3, &[]), 0);
        assert_eq!(retry_delay_ms(u32::MAX, &[5]), 5);
    }
}
