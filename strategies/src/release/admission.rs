//! Whether a command can act on a Rollout now. The API refuses (409) a command that the release
//! machine would consume without effect, so that a caller learns at once that a promote came too
//! late or a retry has nothing to retry, instead of a 202 for nothing. The annotation path stays
//! lenient: a command written by hand is consumed either way.

use super::CommandVerb;
use super::commands::{PendingCommand, pending_command};
use super::machine::{analysing, in_flight};
use crate::status::{Phase, RolloutStatus, Stage};

/// What to do with a command sent with `nonce` (through the API).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Write it.
    Write,
    /// The same command was sent before: applied already, or written and waiting.
    Duplicate,
    /// Not now: a stable `code` for programs and why, for a person.
    Refused { code: &'static str, message: String },
}

/// Decides on a command sent with `nonce`, given the command annotations as they are
/// (`written_command`, `written_nonce`) and the status.
pub fn admit_command(
    status: &RolloutStatus,
    written_command: Option<&str>,
    written_nonce: Option<&str>,
    verb: CommandVerb,
    nonce: &str,
) -> Admission {
    if status.last_command.as_deref() == Some(nonce) || written_nonce == Some(nonce) {
        return Admission::Duplicate;
    }
    let waiting = match pending_command(
        written_command,
        written_nonce,
        status.last_command.as_deref(),
    ) {
        PendingCommand::Unstamped(verb) => Some(verb),
        PendingCommand::Ready(command) => Some(command.verb),
        PendingCommand::None | PendingCommand::Consumed(_) | PendingCommand::Unknown(_) => None,
    };
    // An abort goes through whatever waits: giving up must never wait on a promote.
    if let Some(waiting) = waiting.filter(|_| verb != CommandVerb::Abort) {
        return Admission::Refused {
            code: "command_pending",
            message: format!(
                "the command {} is waiting to be applied; send {} once it is",
                waiting.as_str(),
                verb.as_str()
            ),
        };
    }
    match command_refusal(status, verb) {
        Some(why) => Admission::Refused {
            code: "not_applicable",
            message: format!("{}: {why}", verb.as_str()),
        },
        None => Admission::Write,
    }
}

/// What a release of new images (the CI trigger) does, by the revision they make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReleaseAdmission {
    /// They are the stable revision: nothing to do (even with another release in flight: giving
    /// that up is an abort, said as one).
    Stable,
    /// The target asks for them already: the release is under way, or about to be.
    Asked,
    /// Write them into the target.
    Write,
    /// That revision was rolled back: only `retry` releases it again.
    RolledBack,
}

/// Decides on a release of `revision`; `asked` says whether the target's template is that
/// revision already.
pub fn admit_release(status: &RolloutStatus, revision: &str, asked: bool) -> ReleaseAdmission {
    if status.rolled_back_revision.as_deref() == Some(revision) {
        ReleaseAdmission::RolledBack
    } else if status.stable_revision.as_deref() == Some(revision) {
        ReleaseAdmission::Stable
    } else if asked {
        ReleaseAdmission::Asked
    } else {
        ReleaseAdmission::Write
    }
}

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

    fn stepping() -> RolloutStatus {
        RolloutStatus {
            candidate_revision: Some("c1".into()),
            step: Some(1),
            ..at(Phase::Progressing, Stage::Stepping)
        }
    }

    fn code(admission: Admission) -> Result<bool, &'static str> {
        match admission {
            Admission::Write => Ok(false),
            Admission::Duplicate => Ok(true),
            Admission::Refused { code, .. } => Err(code),
        }
    }

    #[test]
    fn a_new_command_is_written_and_the_same_one_again_is_a_duplicate() {
        let status = stepping();
        let promote = CommandVerb::Promote;
        let new = admit_command(&status, None, None, promote, "promote@api-k1");
        assert_eq!(code(new), Ok(false));
        let waiting = admit_command(
            &status,
            Some("promote"),
            Some("promote@api-k1"),
            promote,
            "promote@api-k1",
        );
        assert_eq!(code(waiting), Ok(true), "still pending");
        let mut applied = stepping();
        applied.last_command = Some("promote@api-k1".into());
        assert_eq!(
            code(admit_command(
                &applied,
                None,
                None,
                promote,
                "promote@api-k1"
            )),
            Ok(true)
        );
        assert_eq!(
            code(admit_command(
                &applied,
                None,
                None,
                promote,
                "promote@api-k2"
            )),
            Ok(false)
        );
    }

    #[test]
    fn a_waiting_command_holds_back_all_but_an_abort() {
        let status = stepping();
        let (text, nonce) = (Some("promote"), Some("promote@api-k1"));
        let pause = admit_command(&status, text, nonce, CommandVerb::Pause, "pause@api-k2");
        assert_eq!(code(pause), Err("command_pending"));
        let abort = admit_command(&status, text, nonce, CommandVerb::Abort, "abort@api-k3");
        assert_eq!(code(abort), Ok(false), "abort goes through");
        let unstamped = admit_command(
            &status,
            Some("pause"),
            None,
            CommandVerb::Promote,
            "promote@api-k4",
        );
        assert_eq!(code(unstamped), Err("command_pending"));
        let mut consumed = stepping();
        consumed.last_command = Some("promote@api-k1".into());
        let leftover = admit_command(&consumed, text, nonce, CommandVerb::Pause, "pause@api-k2");
        assert_eq!(
            code(leftover),
            Ok(false),
            "only leftovers of an applied one"
        );
    }

    #[test]
    fn a_command_that_cannot_act_now_is_refused_with_the_reason() {
        let steady = at(Phase::Ready, Stage::Steady);
        for verb in [
            CommandVerb::Promote,
            CommandVerb::Abort,
            CommandVerb::Pause,
            CommandVerb::Resume,
            CommandVerb::Retry,
        ] {
            let nonce = format!("{}@api-x", verb.as_str());
            match admit_command(&steady, None, None, verb, &nonce) {
                Admission::Refused { code, message } => {
                    assert_eq!(code, "not_applicable");
                    assert!(
                        message.starts_with(&format!("{}: ", verb.as_str())),
                        "{message}"
                    );
                }
                other => panic!("{verb:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_release_writes_only_a_revision_neither_stable_nor_asked_nor_rolled_back() {
        let mut status = stepping();
        status.stable_revision = Some("s0".into());
        status.rolled_back_revision = Some("r9".into());
        assert_eq!(
            admit_release(&status, "s0", false),
            ReleaseAdmission::Stable
        );
        assert_eq!(admit_release(&status, "s0", true), ReleaseAdmission::Stable);
        assert_eq!(
            admit_release(&status, "r9", false),
            ReleaseAdmission::RolledBack
        );
        assert_eq!(
            admit_release(&status, "r9", true),
            ReleaseAdmission::RolledBack
        );
        assert_eq!(admit_release(&status, "c1", true), ReleaseAdmission::Asked);
        assert_eq!(admit_release(&status, "n2", false), ReleaseAdmission::Write);
    }
}
