use super::*;
use crate::cli::fixtures::{summary, transition};

const T: &str = "cand";

#[test]
fn a_release_that_is_promoted_exits_0() {
    let transitions = [
        transition(11, 2, T, "Progressing"),
        transition(12, 2, T, "Promoting"),
        transition(13, 2, T, "Succeeded"),
    ];
    assert_eq!(decide(T, &transitions), Decision::Exit(Outcome::Promoted));
    assert_eq!(Outcome::Promoted.exit_code(), 0);
}

#[test]
fn rolled_back_aborted_or_failed_exits_1() {
    for end in ["RolledBack", "Failed"] {
        let transitions = [
            transition(11, 2, T, "Progressing"),
            transition(12, 2, T, end),
        ];
        assert_eq!(
            decide(T, &transitions),
            Decision::Exit(Outcome::GivenUp),
            "{end}"
        );
    }
    assert_eq!(Outcome::GivenUp.exit_code(), 1);
    assert_eq!(Outcome::TimedOut.exit_code(), 2);
}

#[test]
fn a_release_in_flight_continues() {
    let transitions = [
        transition(11, 2, T, "Progressing"),
        transition(12, 2, T, "Paused"),
    ];
    assert_eq!(decide(T, &transitions), Decision::Continue);
}

#[test]
fn other_revisions_are_ignored() {
    let transitions = [
        transition(11, 1, "other", "Succeeded"),
        transition(12, 3, "newer", "RolledBack"),
    ];
    assert_eq!(decide(T, &transitions), Decision::Ignore);
}

#[test]
fn only_the_highest_release_of_the_revision_counts() {
    // Release 2 of T was rolled back; `retry` started release 3, whose late replay of release 2
    // must not end the watch.
    let transitions = [
        transition(20, 3, T, "Progressing"),
        transition(12, 2, T, "RolledBack"),
        transition(21, 3, T, "Succeeded"),
    ];
    let mut follower = Follower::new(T);
    let decisions: Vec<Decision> = transitions.iter().map(|t| follower.observe(t)).collect();
    assert_eq!(
        decisions,
        [
            Decision::Continue,
            Decision::Ignore,
            Decision::Exit(Outcome::Promoted)
        ]
    );
}

#[test]
fn the_history_seeds_the_release_number() {
    let mut follower = Follower::new(T);
    follower.seed(&[
        transition(5, 3, T, "Progressing"),
        transition(4, 1, "x", "Ready"),
    ]);
    assert_eq!(follower.release(), Some(3));
    assert_eq!(
        follower.observe(&transition(6, 2, T, "RolledBack")),
        Decision::Ignore
    );
    assert_eq!(
        follower.observe(&transition(7, 3, T, "RolledBack")),
        Decision::Exit(Outcome::GivenUp)
    );
}

#[test]
fn a_stable_revision_is_settled() {
    let stable = RolloutSummary {
        phase: "Succeeded".to_string(),
        stable_revision: Some(T.to_string()),
        candidate_revision: None,
        ..summary()
    };
    assert_eq!(settled(&stable, T), Some(Outcome::Promoted));
    for phase in ["Ready", "Initializing"] {
        let idle = RolloutSummary {
            phase: phase.to_string(),
            ..stable.clone()
        };
        assert_eq!(settled(&idle, T), Some(Outcome::Promoted), "{phase}");
    }
}

#[test]
fn stable_but_still_in_flight_is_not_settled() {
    for phase in ["Progressing", "Paused", "Promoting"] {
        let promoting = RolloutSummary {
            phase: phase.to_string(),
            stable_revision: Some(T.to_string()),
            candidate_revision: None,
            ..summary()
        };
        assert_eq!(settled(&promoting, T), None, "{phase}");
    }
    let with_candidate = RolloutSummary {
        phase: "Ready".to_string(),
        stable_revision: Some(T.to_string()),
        ..summary()
    };
    assert_eq!(settled(&with_candidate, T), None);
}

#[test]
fn a_rolled_back_revision_is_settled_as_given_up() {
    let rolled_back = RolloutSummary {
        phase: "RolledBack".to_string(),
        candidate_revision: None,
        rolled_back_revision: Some(T.to_string()),
        ..summary()
    };
    assert_eq!(settled(&rolled_back, T), Some(Outcome::GivenUp));
    // Rolled back before, released again (retry): follow it.
    let again = RolloutSummary {
        phase: "Progressing".to_string(),
        ..rolled_back
    };
    assert_eq!(settled(&again, T), None);
}

#[test]
fn a_release_in_progress_is_not_settled() {
    assert_eq!(settled(&summary(), T), None);
    let failed = RolloutSummary {
        phase: "Failed".to_string(),
        ..summary()
    };
    assert_eq!(settled(&failed, T), Some(Outcome::GivenUp));
}
