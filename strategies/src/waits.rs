//! How long the shell waits before it looks at a Rollout again: after failures, and between
//! reconciles at rest. Pure: the randomness that spreads the waits comes in as an argument.

use std::time::Duration;

/// The longest wait between two attempts of a Rollout that keeps failing.
pub const MOST_BACKOFF: Duration = Duration::from_secs(300);

/// How long after its `failures`-th failure in a row a Rollout is tried again. A conflict means
/// our view was stale: look again almost at once. Anything else doubles from 1 s up to 5 minutes.
/// Each wait is lengthened by up to a quarter (`jitter` in 0..1), so that Rollouts failing
/// together, as when the API server is away, do not all come back at the same instant.
pub fn retry_after(failures: u32, conflict: bool, jitter: f64) -> Duration {
    let first = if conflict {
        Duration::from_millis(200)
    } else {
        Duration::from_secs(1)
    };
    let doublings = failures.saturating_sub(1).min(16);
    let wait = first.saturating_mul(1 << doublings).min(MOST_BACKOFF);
    wait.mul_f64(1.0 + 0.25 * jitter.clamp(0.0, 1.0))
}

/// Waits of a minute or more (the resync of a Rollout at rest, a long preview) come up to a quarter
/// earlier (`jitter` in 0..1): the Rollouts of a cold start, all reconciled in the same few
/// seconds, would otherwise all come back in the same few seconds five minutes later, in a burst
/// that delays the checks of the releases in flight. Earlier is always safe: a reconcile before
/// its time finds nothing due and waits again. Shorter waits are the core's own timers, kept.
pub fn spread_long_wait(wait: Duration, jitter: f64) -> Duration {
    if wait < Duration::from_secs(60) {
        return wait;
    }
    wait.mul_f64(1.0 - 0.25 * jitter.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_double_from_a_second_to_five_minutes_and_conflicts_come_back_at_once() {
        let waits: Vec<u64> = (1..=11)
            .map(|n| retry_after(n, false, 0.0).as_secs())
            .collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        assert_eq!(retry_after(1, true, 0.0), Duration::from_millis(200));
        assert_eq!(retry_after(2, true, 0.0), Duration::from_millis(400));
        assert_eq!(retry_after(u32::MAX, false, 0.0), MOST_BACKOFF);
        assert_eq!(retry_after(0, false, 0.0), Duration::from_secs(1));
    }

    #[test]
    fn only_waits_of_a_minute_or_more_are_spread_and_by_at_most_a_quarter() {
        let secs = Duration::from_secs;
        assert_eq!(spread_long_wait(secs(5), 1.0), secs(5));
        assert_eq!(
            spread_long_wait(Duration::from_millis(59_999), 1.0),
            Duration::from_millis(59_999)
        );
        assert_eq!(spread_long_wait(secs(60), 1.0), secs(45));
        assert_eq!(spread_long_wait(secs(300), 0.0), secs(300));
        assert_eq!(
            spread_long_wait(secs(300), 0.5),
            Duration::from_millis(262_500)
        );
        assert_eq!(spread_long_wait(secs(300), 9.0), secs(225), "clamped");
    }

    #[test]
    fn jitter_lengthens_a_wait_by_up_to_a_quarter() {
        assert_eq!(retry_after(3, false, 1.0), Duration::from_secs(5));
        assert_eq!(retry_after(3, false, 0.5), Duration::from_millis(4500));
        assert_eq!(
            retry_after(3, false, 7.0),
            Duration::from_secs(5),
            "clamped"
        );
    }
}
