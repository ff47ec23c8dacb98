//! How long the shell waits before it looks at a Rollout again: after failures, and between
//! reconciles at rest. Pure: the randomness that spreads the waits comes in as an argument.

use std::time::Duration;

/// The longest wait between two attempts of a Rollout at rest that keeps failing.
pub const MOST_BACKOFF: Duration = Duration::from_secs(300);
/// The longest for a Rollout with a release in flight: a rollback may be due, and must not wait
/// minutes for an API server that had a bad minute.
pub const MOST_RELEASE_BACKOFF: Duration = Duration::from_secs(30);
/// The longest after conflicts: each one says our view was stale, not that the server is sick,
/// and the next try reads the cache the watch has moved on meanwhile.
pub const MOST_CONFLICT_BACKOFF: Duration = Duration::from_secs(1);

/// What failed, which bounds how long the next attempt waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// A write met a newer version (409).
    Conflict,
    /// Anything else, while a release is in flight.
    InRelease,
    /// Anything else, at rest.
    AtRest,
}

impl Failure {
    /// A failed reconcile of a Rollout at `stage`: a conflict if the API server said 409.
    pub fn of(conflict: bool, stage: Option<crate::status::Stage>) -> Failure {
        let in_release = stage.is_some_and(|stage| stage != crate::status::Stage::Steady);
        match (conflict, in_release) {
            (true, _) => Failure::Conflict,
            (false, true) => Failure::InRelease,
            (false, false) => Failure::AtRest,
        }
    }
}

/// How long after its `failures`-th failure in a row a Rollout is tried again: from 200 ms after
/// a conflict, from 1 s otherwise, doubling, up to the ceiling of the `failure`. Each wait is
/// lengthened by up to a quarter (`jitter` in 0..1), so that Rollouts failing together, as when
/// the API server is away, do not all come back at the same instant.
pub fn retry_after(failures: u32, failure: Failure, jitter: f64) -> Duration {
    let (first, most) = match failure {
        Failure::Conflict => (Duration::from_millis(200), MOST_CONFLICT_BACKOFF),
        Failure::InRelease => (Duration::from_secs(1), MOST_RELEASE_BACKOFF),
        Failure::AtRest => (Duration::from_secs(1), MOST_BACKOFF),
    };
    let doublings = failures.saturating_sub(1).min(16);
    let wait = first.saturating_mul(1 << doublings).min(most);
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
            .map(|n| retry_after(n, Failure::AtRest, 0.0).as_secs())
            .collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        assert_eq!(
            retry_after(1, Failure::Conflict, 0.0),
            Duration::from_millis(200)
        );
        assert_eq!(
            retry_after(2, Failure::Conflict, 0.0),
            Duration::from_millis(400)
        );
        assert_eq!(retry_after(u32::MAX, Failure::AtRest, 0.0), MOST_BACKOFF);
        assert_eq!(retry_after(0, Failure::AtRest, 0.0), Duration::from_secs(1));
    }

    #[test]
    fn a_release_in_flight_waits_at_most_30_s_and_a_conflict_storm_1_s() {
        let waits: Vec<u64> = (1..=7)
            .map(|n| retry_after(n, Failure::InRelease, 0.0).as_secs())
            .collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30]);
        let storm: Vec<u128> = (1..=7)
            .map(|n| retry_after(n, Failure::Conflict, 0.0).as_millis())
            .collect();
        assert_eq!(storm, [200, 400, 800, 1000, 1000, 1000, 1000]);
        assert_eq!(
            retry_after(u32::MAX, Failure::InRelease, 0.0),
            MOST_RELEASE_BACKOFF
        );
        assert_eq!(
            retry_after(u32::MAX, Failure::Conflict, 1.0),
            Duration::from_millis(1250)
        );
    }

    #[test]
    fn a_failure_is_in_release_from_the_take_over_to_the_end_of_a_release() {
        use crate::status::Stage;
        assert_eq!(Failure::of(true, Some(Stage::Stepping)), Failure::Conflict);
        assert_eq!(Failure::of(true, None), Failure::Conflict);
        assert_eq!(
            Failure::of(false, Some(Stage::Stepping)),
            Failure::InRelease
        );
        assert_eq!(
            Failure::of(false, Some(Stage::TakingOver)),
            Failure::InRelease
        );
        assert_eq!(
            Failure::of(false, Some(Stage::RollingBack)),
            Failure::InRelease
        );
        assert_eq!(Failure::of(false, Some(Stage::Steady)), Failure::AtRest);
        assert_eq!(Failure::of(false, None), Failure::AtRest);
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
        assert_eq!(retry_after(3, Failure::AtRest, 1.0), Duration::from_secs(5));
        assert_eq!(
            retry_after(3, Failure::AtRest, 0.5),
            Duration::from_millis(4500)
        );
        assert_eq!(
            retry_after(3, Failure::AtRest, 7.0),
            Duration::from_secs(5),
            "clamped"
        );
    }
}
