//! The release machine both strategies share: take over, then for each new revision start the
//! candidate, run the strategy's traffic stages (canary.rs, blue_green.rs) while analysis passes,
//! promote by flipping the stable slot, or roll back with traffic off the candidate first.
//! Commands, checks and their limits, superseding, rollback and settling are decided here once.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{Command, CommandVerb, Decision, Note, World, report, revision};
use crate::analysis::{CheckOutcome, one_line};
use crate::plan::{BlueGreenPlan, CanaryPlan, ReleasePlan, StrategyPlan};
use crate::status::{Phase, RollbackCause, RolloutStatus, ScaleDown, Slot, Stage, Verdict};

pub(super) struct Machine<'a> {
    pub(super) plan: &'a ReleasePlan,
    pub(super) world: &'a World,
    pub(super) s: RolloutStatus,
    notes: Vec<Note>,
    pub(super) target_revision: String,
    /// Revisions whose template records are no longer needed.
    forget: Vec<String>,
    /// What an abort this reconcile says of itself.
    abort_words: String,
}

/// The stages of a release in flight: the candidate runs at full size, and traffic may reach it.
pub(super) fn in_flight(stage: Option<Stage>) -> bool {
    matches!(
        stage,
        Some(
            Stage::Starting
                | Stage::Matching
                | Stage::Stepping
                | Stage::AwaitingPromotion
                | Stage::Previewing
                | Stage::PromotingScale
                | Stage::PromotingSwitch
                | Stage::PromotingDrain
                | Stage::Verifying
        )
    )
}

/// The stages in which analysis checks run.
pub(super) fn analysing(stage: Option<Stage>) -> bool {
    matches!(
        stage,
        Some(
            Stage::Matching
                | Stage::Stepping
                | Stage::AwaitingPromotion
                | Stage::Previewing
                | Stage::Verifying
        )
    )
}

pub fn reconcile(plan: &ReleasePlan, status: &RolloutStatus, world: &World) -> Decision {
    let mut m = Machine {
        plan,
        world,
        s: status.clone(),
        notes: Vec::new(),
        target_revision: revision::template_hash(&world.target.template),
        forget: Vec::new(),
        abort_words: "aborted by command".into(),
    };
    m.s.observed_generation = Some(world.generation);
    let command = world
        .command
        .clone()
        .filter(|c| status.last_command.as_deref() != Some(c.nonce.as_str()));
    if let Some(command) = &command {
        m.s.last_command = Some(command.nonce.clone());
        if let Some(reason) = command.reason.as_deref().filter(|r| !r.is_empty()) {
            m.abort_words = format!("aborted by command: {reason}");
        }
        let why = command.reason.as_deref().filter(|r| !r.is_empty());
        let message = match why {
            Some(why) => format!("{} received: {why}", command.verb.as_str()),
            None => format!("{} received", command.verb.as_str()),
        };
        m.note("Command", message, false);
    }
    m.follow_rescale();
    if let Some(check) = &world.check {
        m.apply_check(check);
    }
    m.transition(command.as_ref());
    let remove = m.track_canary_objects();
    let mut desired = m.desired();
    desired.remove = remove;
    desired.forget = std::mem::take(&mut m.forget);
    let requeue_after = m.requeue_after();
    report::finish(&mut m.s, &plan.strategy, world, &m.target_revision);
    super::history::record_history(status, &mut m.s, world.now);
    Decision {
        status: m.s,
        desired,
        notes: m.notes,
        requeue_after,
    }
}

impl Machine<'_> {
    pub(super) fn now(&self) -> DateTime<Utc> {
        self.world.now
    }

    pub(super) fn canary(&self) -> Option<&CanaryPlan> {
        match &self.plan.strategy {
            StrategyPlan::Canary(canary) => Some(canary),
            StrategyPlan::BlueGreen(_) => None,
        }
    }

    pub(super) fn blue_green(&self) -> Option<&BlueGreenPlan> {
        match &self.plan.strategy {
            StrategyPlan::BlueGreen(blue_green) => Some(blue_green),
            StrategyPlan::Canary(_) => None,
        }
    }

    fn scale_down_delay(&self) -> Duration {
        match &self.plan.strategy {
            StrategyPlan::Canary(canary) => canary.scale_down_delay,
            StrategyPlan::BlueGreen(blue_green) => blue_green.scale_down_delay,
        }
    }

    pub(super) fn note(&mut self, reason: &'static str, message: String, warning: bool) {
        self.notes.push(Note {
            reason,
            message,
            warning,
        });
    }

    pub(super) fn full(&self) -> i32 {
        self.s.replicas.unwrap_or(self.world.target.replicas)
    }

    pub(super) fn stable(&self) -> Slot {
        self.s.stable_slot.unwrap_or(Slot::Blue)
    }

    pub(super) fn candidate(&self) -> Slot {
        self.stable().other()
    }

    pub(super) fn since(&self, at: Option<DateTime<Utc>>) -> Duration {
        at.and_then(|at| (self.now() - at).to_std().ok())
            .unwrap_or_default()
    }

    pub(super) fn enter(&mut self, stage: Stage) {
        self.s.stage = Some(stage);
        self.s.stage_started_at = Some(self.now());
        self.s.step_passed = false;
    }

    /// Someone scaled the user's Deployment after the take-over: that is the new size of the
    /// slots, and the Deployment goes back to zero.
    fn follow_rescale(&mut self) {
        let taken_over = !matches!(self.s.stage, None | Some(Stage::TakingOver));
        if taken_over
            && self.world.target.replicas > 0
            && Some(self.world.target.replicas) != self.s.replicas
        {
            self.s.replicas = Some(self.world.target.replicas);
            let message = format!(
                "{} replicas per slot, from the target's new size",
                self.world.target.replicas
            );
            self.note("Rescaled", message, false);
        }
    }

    /// The candidate slot runs the candidate revision at full size, every pod ready.
    pub(super) fn candidate_ready(&self) -> bool {
        let full = self.full();
        self.world.slot(self.candidate()).is_some_and(|slot| {
            slot.revision.as_deref() == self.s.candidate_revision.as_deref()
                && slot.replicas == full
                && slot.ready_replicas >= full
        })
    }

    fn apply_check(&mut self, outcome: &CheckOutcome) {
        if !analysing(self.s.stage) {
            return;
        }
        self.s.analysis = outcome.results(Some(self.now()));
        self.s.last_check_at = Some(self.now());
        let summary = one_line(outcome);
        self.s.last_check_summary = Some(summary.clone());
        let analysis = &self.plan.analysis;
        // A step or phase ends on a passing latest check: a pass followed by a fail, an error or
        // an inconclusive check is no reason to advance any more.
        self.s.step_passed = outcome.verdict == Verdict::Pass;
        let exceeded = match outcome.verdict {
            Verdict::Pass => None,
            // After a blue/green switch every user is on the candidate and the old slot is still
            // warm: switching back costs one write, tolerating a failure costs users' requests.
            Verdict::Fail if self.s.stage == Some(Stage::Verifying) => {
                self.s.failed_checks += 1;
                self.s.first_failure_at.get_or_insert(self.now());
                Some((
                    RollbackCause::FailedChecks,
                    format!(
                        "{summary} (failed after the switch; failureLimit applies before it only)"
                    ),
                ))
            }
            Verdict::Fail => {
                self.s.failed_checks += 1;
                self.s.first_failure_at.get_or_insert(self.now());
                (self.s.failed_checks > analysis.failure_limit).then(|| {
                    (
                        RollbackCause::FailedChecks,
                        format!(
                            "{summary} ({} failed checks > failureLimit {})",
                            self.s.failed_checks, analysis.failure_limit
                        ),
                    )
                })
            }
            Verdict::Inconclusive => {
                self.s.inconclusive_checks += 1;
                (self.s.inconclusive_checks > analysis.inconclusive_limit).then(|| {
                    (
                        RollbackCause::Inconclusive,
                        format!(
                            "{summary} ({} inconclusive checks > inconclusiveLimit {})",
                            self.s.inconclusive_checks, analysis.inconclusive_limit
                        ),
                    )
                })
            }
            Verdict::Error => {
                self.s.error_checks += 1;
                (self.s.error_checks > analysis.error_limit).then(|| {
                    (
                        RollbackCause::FailedQueries,
                        format!(
                            "{summary} ({} failed queries > errorLimit {})",
                            self.s.error_checks, analysis.error_limit
                        ),
                    )
                })
            }
        };
        if outcome.verdict != Verdict::Pass {
            self.note(
                "AnalysisCheck",
                format!("{}: {summary}", outcome.verdict),
                true,
            );
        }
        if let Some((cause, reason)) = exceeded {
            self.roll_back(cause, reason, true);
        }
    }

    fn transition(&mut self, command: Option<&Command>) {
        let verb = command.map(|c| c.verb);
        let abortable = !matches!(self.s.stage, None | Some(Stage::TakingOver | Stage::Steady));
        if abortable && self.aborted(verb) {
            return;
        }
        if self.stage_of_the_other_strategy() {
            // The spec changed strategy mid-release: traffic back to stable first, then the
            // revision starts again the new way.
            self.enter(Stage::Superseding);
            let message = format!(
                "the strategy changed: {} goes back to {} first, then starts again",
                self.s.candidate_revision.clone().unwrap_or_default(),
                self.stable()
            );
            self.note("StrategyChanged", message, false);
            return;
        }
        match self.s.stage {
            None | Some(Stage::TakingOver) => self.take_over(),
            Some(Stage::Steady) => self.steady(verb),
            Some(Stage::Starting) => {
                if self.superseded() {
                    return;
                }
                if self.candidate_ready() {
                    self.first_traffic_stage();
                } else if self.since(self.s.release_started_at) > self.plan.progress_deadline {
                    let ready = self
                        .world
                        .slot(self.candidate())
                        .map(|s| s.ready_replicas)
                        .unwrap_or(0);
                    let reason = format!(
                        "candidate {} on {} not ready after progressDeadline {}: {ready}/{} ready",
                        self.s.candidate_revision.clone().unwrap_or_default(),
                        self.candidate(),
                        crate::duration::format(self.plan.progress_deadline),
                        self.full()
                    );
                    self.roll_back(RollbackCause::ProgressDeadline, reason, true);
                } else if verb == Some(CommandVerb::PromoteFull) {
                    self.enter(Stage::PromotingScale);
                }
            }
            Some(stage @ (Stage::Matching | Stage::Stepping | Stage::AwaitingPromotion)) => {
                if self.superseded() {
                    return;
                }
                match (stage, self.blue_green().is_some()) {
                    (Stage::AwaitingPromotion, true) => self.previewing(verb),
                    _ => self.stepping(verb),
                }
            }
            Some(Stage::Previewing) => {
                if !self.superseded() {
                    self.previewing(verb);
                }
            }
            Some(Stage::Verifying) => {
                if !self.superseded() {
                    self.verifying(verb);
                }
            }
            Some(Stage::PromotingScale) => {
                if self.candidate_ready() {
                    self.enter(Stage::PromotingSwitch);
                } else if self.since(self.s.stage_started_at) > self.plan.progress_deadline {
                    let reason = format!(
                        "candidate not ready at full size for promotion after {}",
                        crate::duration::format(self.plan.progress_deadline)
                    );
                    self.roll_back(RollbackCause::ProgressDeadline, reason, true);
                }
            }
            Some(Stage::PromotingSwitch) => {
                if self.world.service_slot() == Some(self.candidate()) {
                    self.switched();
                } else if self.since(self.s.stage_started_at) > self.plan.progress_deadline {
                    // The switch waits for a fully ready candidate; it lost pods and never came back.
                    let reason = format!(
                        "the Service could not switch to a fully ready {} within {}",
                        self.candidate(),
                        crate::duration::format(self.plan.progress_deadline)
                    );
                    self.roll_back(RollbackCause::ProgressDeadline, reason, true);
                }
            }
            Some(Stage::PromotingDrain) => {
                if self.world.canary_weight.is_none_or(|w| w == 0) && !self.world.canary_matching {
                    self.finish_promotion();
                }
            }
            Some(Stage::RollingBack) => {
                if self.traffic_on_stable() {
                    self.s.stage = Some(Stage::RollingBackScaleDown);
                }
            }
            Some(Stage::RollingBackScaleDown) => {
                if self
                    .world
                    .slot(self.candidate())
                    .is_none_or(|slot| slot.replicas == 0)
                {
                    let outcome = if self.s.rolled_back_revision.is_some()
                        && self.s.rolled_back_revision == self.s.candidate_revision
                    {
                        Phase::RolledBack
                    } else {
                        Phase::Ready
                    };
                    self.settle(outcome);
                }
            }
            Some(Stage::Superseding) => {
                if self.traffic_on_stable() {
                    if Some(&self.target_revision) == self.s.stable_revision.as_ref() {
                        self.settle(Phase::Ready);
                    } else if Some(&self.target_revision) == self.s.rolled_back_revision.as_ref() {
                        // The target went back to a revision given up before: as in Steady, it
                        // waits for `retry`. No new rollback: that one was announced then.
                        let message = format!(
                            "the target is {}, rolled back before: send retry to release it again",
                            self.target_revision
                        );
                        self.note("AwaitingRetry", message, true);
                        self.settle_without_note(Phase::RolledBack);
                    } else {
                        self.start_release();
                    }
                }
            }
        }
    }

    /// A stage only the other strategy has.
    fn stage_of_the_other_strategy(&self) -> bool {
        let canary_only = matches!(
            self.s.stage,
            Some(Stage::Matching | Stage::Stepping | Stage::PromotingDrain)
        );
        let blue_green_only = matches!(self.s.stage, Some(Stage::Previewing | Stage::Verifying));
        // Both wait for a promote in AwaitingPromotion; only a canary gets there with a step.
        let waiting_for_the_other = self.s.stage == Some(Stage::AwaitingPromotion)
            && self.s.step.is_some() != self.canary().is_some();
        (canary_only && self.canary().is_none())
            || (blue_green_only && self.blue_green().is_none())
            || waiting_for_the_other
    }

    /// No traffic reaches the candidate any more, as read back: no canary weight, and `<svc>` on
    /// the stable slot.
    fn traffic_on_stable(&self) -> bool {
        // Blue/green waits until a canary Ingress left from a canary spec is gone, not just at 0:
        // a header or cookie match would still reach the candidate.
        let no_canary = match self.canary() {
            Some(_) => {
                self.world.canary_weight.is_none_or(|w| w == 0) && !self.world.canary_matching
            }
            None => self.world.canary_weight.is_none(),
        };
        no_canary && self.world.service_slot() == Some(self.stable())
    }

    /// The candidate gets its first traffic: the canary's steps, or the blue/green preview.
    fn first_traffic_stage(&mut self) {
        if self.blue_green().is_some() {
            self.enter_preview();
        } else {
            self.first_canary_stage();
        }
    }

    /// `<svc>` was read back on the candidate: drain the canary weight, or verify the switch.
    fn switched(&mut self) {
        match self.blue_green().map(|b| b.post_switch_duration) {
            None => self.enter(Stage::PromotingDrain),
            Some(verify) if !verify.is_zero() => self.enter_verification(),
            Some(_) => self.finish_promotion(),
        }
    }

    fn take_over(&mut self) {
        if self.s.stage.is_none() {
            self.s.stable_slot = Some(Slot::Blue);
            self.s.replicas = Some(self.world.target.replicas);
            self.s.original_selector = self.world.service_selector.clone();
            self.enter(Stage::TakingOver);
            self.note(
                "TakingOver",
                format!(
                    "running the target's pods in {} before moving the Service",
                    self.stable()
                ),
                false,
            );
        }
        // Until the Service has moved, the stable slot follows the target's template.
        if self.world.service_slot() != Some(self.stable()) {
            self.s.stable_revision = Some(self.target_revision.clone());
            return;
        }
        if self.world.target.replicas == 0 {
            self.settle(Phase::Ready);
            self.note(
                "TakenOver",
                format!(
                    "revision {} serves all traffic from {}",
                    self.target_revision,
                    self.stable()
                ),
                false,
            );
        }
    }

    fn steady(&mut self, verb: Option<CommandVerb>) {
        if let Some(pending) = self.s.scale_down {
            let gone = self
                .world
                .slot(pending.slot)
                .is_none_or(|slot| slot.replicas == 0);
            if self.now() >= pending.at && gone {
                self.s.scale_down = None;
            }
        }
        if Some(&self.target_revision) == self.s.stable_revision.as_ref() {
            return;
        }
        if verb == Some(CommandVerb::Abort) {
            // A revision not started yet is given up without starting it.
            self.s.rolled_back_revision = Some(self.target_revision.clone());
            self.s.rollback_reason =
                Some(format!("{}: {}", self.target_revision, self.abort_words));
            self.s.rollback_cause = Some(RollbackCause::Aborted);
            self.settle(Phase::RolledBack);
            return;
        }
        if self.s.rolled_back_revision.as_ref() == Some(&self.target_revision) {
            if verb != Some(CommandVerb::Retry) {
                return;
            }
            self.s.rolled_back_revision = None;
        }
        self.start_release();
    }

    /// The template record of `revision` can go, unless it is the stable one's.
    fn forget_record(&mut self, revision: Option<String>) {
        if let Some(revision) = revision.filter(|r| Some(r) != self.s.stable_revision.as_ref()) {
            self.forget.push(revision);
        }
    }

    fn start_release(&mut self) {
        let superseded = self
            .s
            .candidate_revision
            .clone()
            .filter(|c| *c != self.target_revision);
        self.forget_record(superseded);
        self.s.candidate_revision = Some(self.target_revision.clone());
        self.s.release_started_at = Some(self.now());
        self.s.failed_checks = 0;
        self.s.first_failure_at = None;
        self.s.inconclusive_checks = 0;
        self.s.error_checks = 0;
        self.s.analysis.clear();
        self.s.last_check_at = None;
        self.s.last_check_summary = None;
        self.s.step = None;
        self.s.canary_weight = self.canary().map(|_| 0);
        self.s.paused = false;
        // The old slot kept warm after the previous promotion now runs the new candidate.
        self.s.scale_down = None;
        self.enter(Stage::Starting);
        let message = format!(
            "revision {} starts on {}",
            self.target_revision,
            self.candidate()
        );
        self.note("ReleaseStarted", message, false);
    }

    pub(super) fn superseded(&mut self) -> bool {
        if Some(&self.target_revision) == self.s.candidate_revision.as_ref() {
            return false;
        }
        let old = self.s.candidate_revision.clone().unwrap_or_default();
        if Some(&self.target_revision) == self.s.stable_revision.as_ref() {
            self.roll_back(
                RollbackCause::Withdrawn,
                format!("the target went back to the stable revision; {old} withdrawn"),
                false,
            );
        } else {
            self.enter(Stage::Superseding);
            self.note(
                "Superseded",
                format!("revision {old} superseded by {}", self.target_revision),
                false,
            );
        }
        true
    }

    /// An abort gives up the release in flight and the revision the target asks for, even when
    /// that arrived after the candidate in flight: neither starts again until `retry` or a new
    /// template.
    pub(super) fn aborted(&mut self, verb: Option<CommandVerb>) -> bool {
        if verb != Some(CommandVerb::Abort) {
            return false;
        }
        if self.s.stable_revision.as_ref() != Some(&self.target_revision) {
            self.s.candidate_revision = Some(self.target_revision.clone());
        }
        self.roll_back(RollbackCause::Aborted, self.abort_words.clone(), true);
        true
    }

    pub(super) fn roll_back(&mut self, cause: RollbackCause, reason: String, remember: bool) {
        if remember {
            self.s.rolled_back_revision = self.s.candidate_revision.clone();
        }
        let revision = self.s.candidate_revision.clone().unwrap_or_default();
        self.s.rollback_reason = Some(format!("{revision}: {reason}"));
        self.s.rollback_cause = Some(cause);
        // A release given up with no failed check (an abort, a deadline, failed queries) is timed
        // from the decision.
        self.s.first_failure_at.get_or_insert(self.now());
        self.enter(Stage::RollingBack);
        self.note("RollingBack", format!("{revision}: {reason}"), true);
    }

    pub(super) fn finish_promotion(&mut self) {
        let old = self.stable();
        let delay = chrono::Duration::from_std(self.scale_down_delay()).unwrap_or_default();
        self.s.scale_down = Some(ScaleDown {
            slot: old,
            at: self.now() + delay,
        });
        self.s.stable_slot = Some(old.other());
        let replaced = std::mem::replace(
            &mut self.s.stable_revision,
            self.s.candidate_revision.take(),
        );
        self.forget_record(replaced);
        self.s.step = None;
        self.s.canary_weight = self.canary().map(|_| 0);
        self.settle(Phase::Succeeded);
        let message = format!(
            "revision {} promoted: {} is stable",
            self.s.stable_revision.clone().unwrap_or_default(),
            old.other()
        );
        self.note("Promoted", message, false);
    }

    /// No release in flight any more; the phase says how the last one ended.
    pub(super) fn settle(&mut self, outcome: Phase) {
        if outcome == Phase::RolledBack {
            let reason = self.s.rollback_reason.clone().unwrap_or_default();
            self.note("RolledBack", reason, true);
        }
        self.settle_without_note(outcome);
    }

    fn settle_without_note(&mut self, outcome: Phase) {
        if outcome != Phase::RolledBack {
            self.s.rollback_reason = None;
            self.s.rollback_cause = None;
        }
        let settled = self.s.candidate_revision.take();
        self.forget_record(settled);
        self.s.step = None;
        self.s.canary_weight = self.canary().map(|_| 0);
        self.s.phase = outcome;
        self.s.paused = false;
        self.enter(Stage::Steady);
    }
}
