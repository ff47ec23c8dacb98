//! Blue/green's traffic stages: the candidate is previewed on `<svc>-canary` (serving no users)
//! and analysed for `previewDuration`; then `<svc>` switches to it in one write (the switch itself
//! is the shared `PromotingSwitch`, which waits for a fully ready candidate); then it is verified
//! for `postSwitchDuration`, where a failed check switches back at once.
//!
//! Commands: `promote` and `promote-full` end the current phase early (in the preview or while
//! waiting: switch now; after the switch: finish now); `pause` holds either phase while analysis
//! goes on; `abort` switches back to the stable slot first.

use std::time::Duration;

use super::machine::Machine;
use crate::plan::BlueGreenPlan;
use crate::release::CommandVerb;
use crate::spec::Promotion;
use crate::status::Stage;

impl Machine<'_> {
    fn blue_green_plan(&self) -> &BlueGreenPlan {
        // Only blue/green stages call here, and only a blue/green plan enters them.
        self.blue_green()
            .expect("a blue/green stage runs a blue/green plan")
    }

    pub(super) fn enter_preview(&mut self) {
        self.enter(Stage::Previewing);
        let message = format!(
            "previewing {} on {} for {}",
            self.s.candidate_revision.clone().unwrap_or_default(),
            self.candidate(),
            crate::duration::format(self.blue_green_plan().preview_duration)
        );
        self.note("Preview", message, false);
    }

    pub(super) fn enter_verification(&mut self) {
        self.enter(Stage::Verifying);
        let message = format!(
            "the Service selects {}; verifying for {}",
            self.candidate(),
            crate::duration::format(self.blue_green_plan().post_switch_duration)
        );
        self.note("Switched", message, false);
    }

    /// Pause and resume; whether a promote command ends the phase.
    fn phase_command(&mut self, verb: Option<CommandVerb>) -> bool {
        match verb {
            Some(CommandVerb::Pause) => self.s.paused = true,
            Some(CommandVerb::Resume) => self.s.paused = false,
            Some(CommandVerb::Promote | CommandVerb::PromoteFull) => {
                // A promote is the person deciding: a pause before it is over.
                self.s.paused = false;
                return true;
            }
            _ => {}
        }
        false
    }

    /// Whether the current phase has run its course: held `length` with a passing check.
    fn phase_done(&self, length: Duration) -> bool {
        !self.s.paused && self.s.step_passed && self.since(self.s.stage_started_at) >= length
    }

    /// Previewing, or waiting for a promote after the preview.
    pub(super) fn previewing(&mut self, verb: Option<CommandVerb>) {
        if self.phase_command(verb) {
            return self.enter(Stage::PromotingScale);
        }
        let preview = self.blue_green_plan().preview_duration;
        let auto = self.plan.promotion == Promotion::Auto;
        if self.s.stage == Some(Stage::AwaitingPromotion)
            && auto
            && !self.s.paused
            && self.s.step_passed
        {
            // The spec went from manual to auto while this release waited: auto promotes on a
            // passing latest check, as after any preview.
            return self.enter(Stage::PromotingScale);
        }
        if self.s.stage == Some(Stage::Previewing) && self.phase_done(preview) {
            match self.plan.promotion {
                Promotion::Auto => self.enter(Stage::PromotingScale),
                Promotion::Manual => self.enter(Stage::AwaitingPromotion),
            }
        }
    }

    /// After the switch: analysis goes on; a failed check has already switched back.
    pub(super) fn verifying(&mut self, verb: Option<CommandVerb>) {
        let verify = self.blue_green_plan().post_switch_duration;
        if self.phase_command(verb) || self.phase_done(verify) {
            self.finish_promotion();
        }
    }
}
