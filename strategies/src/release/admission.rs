//! Whether a command can act on a Rollout now. The API refuses (409) a command that the release
//! machine would consume without effect, so that a caller learns at once that a promote came too
//! late or a retry has nothing to retry, instead of a 202 for nothing. The annotation path stays
//! lenient: a command written by hand is consumed either way.

use super::CommandVerb;
use super::machine::{analysing, in_flight};
use crate::status::{Phase, RolloutStatus, Stage};

/// Why `verb` cannot act on a Rollout in `status` now; None when it can.
pub fn command_refusal(status: &RolloutStatus, verb: CommandVerb) -> Option<String> {
    let phase = status.phase;
    let stage = status.stage;
    match verb {
        CommandVerb::Promote | CommandVerb::PromoteFull if !analysing(stage) => Some(format!(
            "no release is waiting for a promotion (phase {phase:?}{})",
            stage_words(stage)
        )),
        CommandVerb::Abort if !(in_flight(stage) || stage == Some(Stage::Superseding)) => {
            Some(format!("no release in flight to abort (phase {phase:?})"))
        }
        CommandVerb::Pause if !analysing(stage) => {
            Some(format!("no release in flight to pause (phase {phase:?})"))
        }
        CommandVerb::Pause if status.paused => Some("the release is paused already".into()),
        CommandVerb::Resume if !status.paused => Some("the release is not paused".into()),
        CommandVerb::Retry
            if !(phase == Phase::RolledBack && status.rolled_back_revision.is_some()) =>
        {
            Some(format!(
                "no rolled-back revision to retry (phase {phase:?})"
            ))
        }
        _ => None,
    }
}

fn stage_words(stage: Option<Stage>) -> String {
    stage.map(|s| format!(", stage {s:?}")).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(phase: Phase, stage: Stage) -> RolloutStatus {
        RolloutStatus {
            phase,
            stage: Some(stage),
            ..RolloutStatus::default()
        }
    }

    #[test]
    fn promote_needs_a_release_being_judged() {
        for verb in [CommandVerb::Promote, CommandVerb::PromoteFull] {
            let stepping = at(Phase::Progressing, Stage::Stepping);
            assert_eq!(command_refusal(&stepping, verb), None);
            let waiting = at(Phase::Paused, Stage::AwaitingPromotion);
            assert_eq!(command_refusal(&waiting, verb), None);
            for quiet in [
                at(Phase::Ready, Stage::Steady),
                at(Phase::Succeeded, Stage::Steady),
                at(Phase::Progressing, Stage::Starting),
                at(Phase::Promoting, Stage::PromotingScale),
            ] {
                let refusal = command_refusal(&quiet, verb).expect("refused");
                assert!(refusal.contains("no release"), "{refusal}");
                let stage = format!("{:?}", quiet.stage.expect("a stage"));
                assert!(refusal.ends_with(&format!(", stage {stage})")), "{refusal}");
            }
        }
    }

    #[test]
    fn abort_needs_a_release_in_flight_including_one_promoting_or_superseded() {
        for flying in [
            Stage::Starting,
            Stage::Stepping,
            Stage::PromotingScale,
            Stage::Verifying,
            Stage::Superseding,
        ] {
            let status = at(Phase::Progressing, flying);
            assert_eq!(
                command_refusal(&status, CommandVerb::Abort),
                None,
                "{flying:?}"
            );
        }
        for quiet in [Stage::Steady, Stage::RollingBack, Stage::TakingOver] {
            let status = at(Phase::Ready, quiet);
            assert!(
                command_refusal(&status, CommandVerb::Abort).is_some(),
                "{quiet:?}"
            );
        }
    }

    #[test]
    fn pause_and_resume_follow_the_pause() {
        let mut status = at(Phase::Progressing, Stage::Stepping);
        assert_eq!(command_refusal(&status, CommandVerb::Pause), None);
        assert!(command_refusal(&status, CommandVerb::Resume).is_some());
        status.paused = true;
        assert!(command_refusal(&status, CommandVerb::Pause).is_some());
        assert_eq!(command_refusal(&status, CommandVerb::Resume), None);
        let steady = at(Phase::Ready, Stage::Steady);
        assert!(command_refusal(&steady, CommandVerb::Pause).is_some());
    }

    #[test]
    fn retry_needs_a_rolled_back_revision() {
        let mut status = at(Phase::RolledBack, Stage::Steady);
        assert!(command_refusal(&status, CommandVerb::Retry).is_some());
        status.rolled_back_revision = Some("c1".into());
        assert_eq!(command_refusal(&status, CommandVerb::Retry), None);
        status.phase = Phase::Progressing;
        assert!(command_refusal(&status, CommandVerb::Retry).is_some());
    }
}
