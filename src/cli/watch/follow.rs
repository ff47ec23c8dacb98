//! What `watch` decides, without I/O: whether the revision is settled before the stream opens,
//! and, for each transition of the stream, whether to go on or to exit with which code.

use crate::api::types::{RolloutSummary, TransitionView};

/// How a watch ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The revision is stable: promoted, or it already was.
    Promoted,
    /// The revision was rolled back, aborted, or the Rollout failed.
    GivenUp,
    /// The release did not end in time.
    TimedOut,
}

impl Outcome {
    pub fn exit_code(self) -> u8 {
        match self {
            Outcome::Promoted => 0,
            Outcome::GivenUp => 1,
            Outcome::TimedOut => 2,
        }
    }
}

/// What to do with one transition of the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Not about the followed release: another revision, or an older release of this one.
    Ignore,
    /// A step of the followed release: show it and go on.
    Continue,
    /// The followed release ended: show it and exit.
    Exit(Outcome),
}

/// Phases in which a release is still in flight.
const IN_FLIGHT: [&str; 3] = ["Progressing", "Paused", "Promoting"];

/// Whether `revision` is already settled in the Rollout as first read, so nothing is to follow.
pub fn settled(rollout: &RolloutSummary, revision: &str) -> Option<Outcome> {
    let phase = rollout.phase.as_str();
    let is = |field: &Option<String>| field.as_deref() == Some(revision);
    if is(&rollout.stable_revision)
        && rollout.candidate_revision.is_none()
        && !IN_FLIGHT.contains(&phase)
    {
        return Some(Outcome::Promoted);
    }
    if is(&rollout.rolled_back_revision) && phase == "RolledBack" {
        return Some(Outcome::GivenUp);
    }
    // A Rollout that cannot work as specified releases nothing until its spec is fixed.
    if phase == "Failed" {
        return Some(Outcome::GivenUp);
    }
    None
}

/// Follows the latest release of one revision through the stream's transitions.
#[derive(Debug, Clone)]
pub struct Follower {
    revision: String,
    /// The highest release number seen for the revision.
    release: Option<u32>,
}

impl Follower {
    pub fn new(revision: &str) -> Self {
        Follower {
            revision: revision.to_string(),
            release: None,
        }
    }

    pub fn revision(&self) -> &str {
        &self.revision
    }

    /// The release followed: the highest seen for the revision.
    pub fn release(&self) -> Option<u32> {
        self.release
    }

    /// Takes the release numbers of the revision from the history read before the stream, so
    /// that a replay of an older release of it is not taken for the current one.
    pub fn seed(&mut self, history: &[TransitionView]) {
        for transition in history {
            if self.is_of_revision(transition) {
                self.release = self.release.max(Some(transition.release));
            }
        }
    }

    pub fn observe(&mut self, transition: &TransitionView) -> Decision {
        if !self.is_of_revision(transition) {
            return Decision::Ignore;
        }
        if self
            .release
            .is_some_and(|latest| transition.release < latest)
        {
            return Decision::Ignore;
        }
        self.release = Some(transition.release);
        match transition.phase.as_str() {
            "Succeeded" => Decision::Exit(Outcome::Promoted),
            "RolledBack" | "Failed" => Decision::Exit(Outcome::GivenUp),
            _ => Decision::Continue,
        }
    }

    fn is_of_revision(&self, transition: &TransitionView) -> bool {
        transition.revision.as_deref() == Some(self.revision.as_str())
    }
}

/// The decision after a sequence of transitions: the first exit, or whether any was followed.
pub fn decide(revision: &str, transitions: &[TransitionView]) -> Decision {
    let mut follower = Follower::new(revision);
    let mut last = Decision::Ignore;
    for transition in transitions {
        match follower.observe(transition) {
            Decision::Exit(outcome) => return Decision::Exit(outcome),
            Decision::Continue => last = Decision::Continue,
            Decision::Ignore => {}
        }
    }
    last
}

#[cfg(test)]
#[path = "follow_tests.rs"]
mod tests;
