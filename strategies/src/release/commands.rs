//! Which command a Rollout's annotations hold, and whether it was applied already. The controller
//! stamps each command with a nonce, the status records the nonce of the last command applied,
//! and the annotations are removed after that status is written. The nonce names the verb it was
//! given for, so that a verb written over another (abort over promote) before the first was
//! removed is a new command, never taken for the one already applied.

use super::{Command, CommandVerb};

/// What the command annotations hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PendingCommand {
    /// No command.
    None,
    /// A command without a nonce for its verb yet: stamp it (see [`command_nonce`]).
    Unstamped(CommandVerb),
    /// Stamped, not applied yet.
    Ready(Command),
    /// Applied already: only the annotations are left to remove.
    Consumed(String),
    /// Not a command sluice knows; the text as written.
    Unknown(String),
}

/// The nonce a command is stamped with: its verb and something unique to this writing of it (the
/// Rollout's resourceVersion when it was stamped).
pub fn command_nonce(verb: CommandVerb, unique: &str) -> String {
    format!("{}@{unique}", verb.as_str())
}

/// Reads the command annotation's text, its nonce and the status's `lastCommand`.
pub fn pending_command(
    text: Option<&str>,
    nonce: Option<&str>,
    last_command: Option<&str>,
) -> PendingCommand {
    let Some(text) = text else {
        return PendingCommand::None;
    };
    let Some(verb) = CommandVerb::parse(text) else {
        return PendingCommand::Unknown(text.to_string());
    };
    let Some(nonce) = nonce else {
        return PendingCommand::Unstamped(verb);
    };
    let for_this_verb = nonce
        .split_once('@')
        .is_some_and(|(stamped, _)| stamped == verb.as_str());
    // A nonce without a verb was written before nonces named their verb; if it was applied, the
    // command it stamped is the one still written.
    let legacy_applied = !nonce.contains('@') && last_command == Some(nonce);
    if legacy_applied || (for_this_verb && last_command == Some(nonce)) {
        return PendingCommand::Consumed(text.to_string());
    }
    if !for_this_verb {
        return PendingCommand::Unstamped(verb);
    }
    PendingCommand::Ready(Command {
        verb,
        nonce: nonce.to_string(),
        reason: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_verb_reads_back_as_written() {
        use CommandVerb::*;
        for verb in [Promote, PromoteFull, Abort, Pause, Resume, Retry] {
            assert_eq!(CommandVerb::parse(verb.as_str()), Some(verb));
        }
        assert_eq!(CommandVerb::parse("promote_full"), None);
        assert_eq!(CommandVerb::parse(""), None);
    }

    #[test]
    fn a_command_is_stamped_then_ready_then_consumed() {
        assert_eq!(pending_command(None, None, None), PendingCommand::None);
        assert_eq!(
            pending_command(Some("promote"), None, None),
            PendingCommand::Unstamped(CommandVerb::Promote)
        );
        let nonce = command_nonce(CommandVerb::Promote, "41");
        assert_eq!(nonce, "promote@41");
        assert_eq!(
            pending_command(Some(" promote "), Some(&nonce), Some("abort@12")),
            PendingCommand::Ready(Command {
                verb: CommandVerb::Promote,
                nonce: nonce.clone(),
                reason: None,
            })
        );
        assert_eq!(
            pending_command(Some("promote"), Some(&nonce), Some(&nonce)),
            PendingCommand::Consumed("promote".into())
        );
        assert_eq!(
            pending_command(Some("rollback"), Some(&nonce), None),
            PendingCommand::Unknown("rollback".into())
        );
    }

    #[test]
    fn a_verb_written_over_an_applied_one_is_a_new_command() {
        // promote was stamped and applied; abort was written over it before its annotations
        // were removed. Taking abort for the applied promote would lose it.
        let applied = command_nonce(CommandVerb::Promote, "41");
        assert_eq!(
            pending_command(Some("abort"), Some(&applied), Some(&applied)),
            PendingCommand::Unstamped(CommandVerb::Abort)
        );
        // The same, before promote was applied: abort is stamped anew, promote never applies.
        assert_eq!(
            pending_command(Some("abort"), Some(&applied), None),
            PendingCommand::Unstamped(CommandVerb::Abort)
        );
    }

    #[test]
    fn nonces_from_before_they_named_their_verb() {
        assert_eq!(
            pending_command(Some("pause"), Some("41"), Some("41")),
            PendingCommand::Consumed("pause".into())
        );
        assert_eq!(
            pending_command(Some("pause"), Some("41"), Some("12")),
            PendingCommand::Unstamped(CommandVerb::Pause)
        );
    }
}
