//! The canary's traffic stages: an optional header/cookie match phase, then the weights step by
//! step while analysis passes, then promotion (or a wait for one).

use super::machine::Machine;
use crate::plan::CanaryPlan;
use crate::release::CommandVerb;
use crate::spec::Promotion;
use crate::status::Stage;

impl Machine<'_> {
    fn canary_plan(&self) -> &CanaryPlan {
        // Only the canary's stages call here, and only a canary plan enters them.
        self.canary().expect("a canary stage runs a canary plan")
    }

    pub(super) fn first_canary_stage(&mut self) {
        if self.canary_plan().traffic_match.is_some() {
            self.s.step = Some(0);
            self.enter(Stage::Matching);
        } else {
            self.enter_step(1);
        }
    }

    fn enter_step(&mut self, step: u32) {
        let steps = &self.canary_plan().steps;
        let (weight, count) = (steps.get(step as usize - 1).copied(), steps.len());
        self.s.step = Some(step);
        self.s.canary_weight = weight;
        self.enter(Stage::Stepping);
        let message = format!(
            "step {step}/{count}: {}% to {}",
            weight.unwrap_or(0),
            self.candidate()
        );
        self.note("Step", message, false);
    }

    /// Matching, stepping, or waiting at the last step: commands, then the next step once the
    /// current one was held long enough with a passing check.
    pub(super) fn stepping(&mut self, verb: Option<CommandVerb>) {
        match verb {
            Some(CommandVerb::Pause) => self.s.paused = true,
            Some(CommandVerb::Resume) => self.s.paused = false,
            Some(CommandVerb::PromoteFull) => return self.enter(Stage::PromotingScale),
            Some(CommandVerb::Promote) => return self.advance(true),
            _ => {}
        }
        let auto = self.plan.promotion == Promotion::Auto;
        if self.s.stage == Some(Stage::AwaitingPromotion)
            && auto
            && !self.s.paused
            && self.s.step_passed
        {
            // The spec went from manual to auto while this release waited: auto promotes on a
            // passing latest check, as at any step.
            return self.enter(Stage::PromotingScale);
        }
        let held = self.since(self.s.stage_started_at) >= self.canary_plan().step_interval;
        if !self.s.paused
            && self.s.step_passed
            && held
            && self.weight_read_back()
            && self.s.stage != Some(Stage::AwaitingPromotion)
        {
            self.advance(false);
        }
    }

    /// The canary Ingress carries the route of the current step (its weight; in the match phase,
    /// its header or cookie match): until then, the step's checks judged a candidate that did not
    /// get the traffic the step is about.
    fn weight_read_back(&self) -> bool {
        let matching = self.s.stage == Some(Stage::Matching);
        self.world.canary_weight == Some(self.s.canary_weight.unwrap_or(0))
            && self.world.canary_matching == matching
    }

    /// The next step, or the end of the steps: promotion, or a wait for one.
    fn advance(&mut self, commanded: bool) {
        let steps = self.canary_plan().steps.len() as u32;
        match (self.s.stage, self.s.step.unwrap_or(0)) {
            (Some(Stage::Matching), _) => self.enter_step(1),
            (Some(Stage::Stepping), step) if step < steps => self.enter_step(step + 1),
            // Past the last step (or waiting after it): a promote, or auto, promotes.
            _ if commanded || self.plan.promotion == Promotion::Auto => {
                self.enter(Stage::PromotingScale)
            }
            _ => self.enter(Stage::AwaitingPromotion),
        }
    }
}
