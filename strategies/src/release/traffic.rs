//! Where users' traffic is, read from a status: the candidate's share of it, and the moment a
//! rollback has it back on the stable slot. The status page draws the first; the rollback-time
//! metric starts from the second.

use chrono::{DateTime, Utc};

use crate::status::{Phase, RollbackCause, RolloutStatus, Stage};

/// The percent of users' traffic on the candidate, from where the release is: the canary weight
/// while stepping, none once traffic is sent back (the rollback writes 0 first) or before a
/// blue/green switch, all of it once `<svc>` selects the candidate.
pub fn candidate_share(
    phase: Phase,
    stage: Option<Stage>,
    weight: Option<u8>,
    blue_green: bool,
) -> u8 {
    match (phase, stage) {
        (Phase::Succeeded, _) => 100,
        (Phase::RolledBack | Phase::Failed, _) => 0,
        (_, Some(Stage::RollingBack | Stage::RollingBackScaleDown | Stage::Superseding)) => 0,
        (_, Some(Stage::PromotingDrain | Stage::Verifying)) => 100,
        _ if blue_green => 0,
        _ => weight.unwrap_or(0),
    }
}

/// When the failure began, if the step from `previous` to `next` is the one that saw a rollback's
/// traffic back on the stable slot: the machine leaves `RollingBack` only once it read the traffic
/// back (and goes straight to scaling down when the traffic never left stable, as in a blue/green
/// preview). A withdrawn release is no rollback.
pub fn traffic_back_after_failure(
    previous: &RolloutStatus,
    next: &RolloutStatus,
) -> Option<DateTime<Utc>> {
    if next.rollback_cause == Some(RollbackCause::Withdrawn) {
        return None;
    }
    let scaling_down = Some(Stage::RollingBackScaleDown);
    let back = (next.stage == scaling_down
        || (previous.stage == Some(Stage::RollingBack) && next.stage != Some(Stage::RollingBack)))
        && previous.stage != scaling_down;
    back.then_some(next.first_failure_at.or(previous.first_failure_at))
        .flatten()
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn the_share_follows_the_stage_not_only_the_weight() {
        use Stage::*;
        let share = |phase, stage, weight, blue_green| {
            candidate_share(phase, Some(stage), weight, blue_green)
        };
        assert_eq!(share(Phase::Progressing, Stepping, Some(50), false), 50);
        assert_eq!(
            share(Phase::Progressing, RollingBack, Some(50), false),
            0,
            "the rollback writes 0 first"
        );
        assert_eq!(
            share(Phase::Progressing, RollingBackScaleDown, Some(50), false),
            0
        );
        assert_eq!(share(Phase::Promoting, PromotingScale, Some(50), false), 50);
        assert_eq!(
            share(Phase::Promoting, PromotingDrain, Some(50), false),
            100,
            "<svc> selects the candidate"
        );
        assert_eq!(
            share(Phase::Progressing, Previewing, None, true),
            0,
            "a preview serves no users"
        );
        assert_eq!(
            share(Phase::Progressing, Verifying, None, true),
            100,
            "switched"
        );
        assert_eq!(share(Phase::Succeeded, Steady, Some(0), false), 100);
        assert_eq!(share(Phase::RolledBack, Steady, Some(0), true), 0);
    }

    fn with_stage(stage: Stage, failed: bool) -> RolloutStatus {
        RolloutStatus {
            stage: Some(stage),
            first_failure_at: failed.then(|| Utc.timestamp_opt(1_700_000_000, 0).unwrap()),
            ..RolloutStatus::default()
        }
    }

    #[test]
    fn traffic_is_back_once_rolling_back_ends_or_never_left() {
        use Stage::{Previewing, RollingBack, RollingBackScaleDown, Steady, Stepping};
        let back = |previous: Stage, next: Stage, failed: bool| {
            traffic_back_after_failure(&with_stage(previous, failed), &with_stage(next, failed))
                .is_some()
        };
        // The weight read back at 0: RollingBack ends.
        assert!(back(RollingBack, RollingBackScaleDown, true));
        assert!(back(RollingBack, Steady, true));
        // Traffic never left stable (a blue/green preview): straight to scaling down.
        assert!(back(Previewing, RollingBackScaleDown, true));
        // Not yet, not again, and not without a time to start from.
        assert!(!back(Stepping, RollingBack, true));
        assert!(!back(RollingBack, RollingBack, true));
        assert!(!back(RollingBackScaleDown, Steady, true));
        assert!(!back(RollingBack, RollingBackScaleDown, false));
        let withdrawn = RolloutStatus {
            rollback_cause: Some(RollbackCause::Withdrawn),
            ..with_stage(RollingBackScaleDown, true)
        };
        assert_eq!(
            traffic_back_after_failure(&with_stage(RollingBack, true), &withdrawn),
            None,
            "a withdrawn release is no rollback"
        );
    }
}
