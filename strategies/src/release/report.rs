//! What a person reads: the phase, the one-line message and the conditions, derived from the
//! machine's stage so that they can never disagree with it.

use chrono::{DateTime, Utc};

use super::World;
use crate::plan::StrategyPlan;
use crate::status::{
    CONDITION_PROGRESSING, CONDITION_PROMOTED, CONDITION_READY, Condition, ConditionStatus, Phase,
    REASON_INVALID_SPEC, RolloutStatus, Slot, Stage,
};

fn set_condition(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: ConditionStatus,
    reason: &str,
    message: String,
    now: DateTime<Utc>,
    generation: Option<i64>,
) {
    let previous = conditions.iter().position(|c| c.type_ == type_);
    let last_transition_time = match previous.map(|i| &conditions[i]) {
        Some(old) if old.status == status => old.last_transition_time,
        _ => Some(now),
    };
    let condition = Condition {
        type_: type_.to_string(),
        status,
        reason: reason.to_string(),
        message,
        last_transition_time,
        observed_generation: generation,
    };
    match previous {
        Some(i) => conditions[i] = condition,
        None => conditions.push(condition),
    }
}

fn stage_name(stage: Stage) -> &'static str {
    match stage {
        Stage::TakingOver => "TakingOver",
        Stage::Steady => "Steady",
        Stage::Starting => "Starting",
        Stage::Matching => "Matching",
        Stage::Stepping => "Stepping",
        Stage::AwaitingPromotion => "AwaitingPromotion",
        Stage::Previewing => "Previewing",
        Stage::Verifying => "Verifying",
        Stage::PromotingScale | Stage::PromotingSwitch | Stage::PromotingDrain => "Promoting",
        Stage::RollingBack | Stage::RollingBackScaleDown => "RollingBack",
        Stage::Superseding => "Superseding",
    }
}

/// Phase, message and conditions for the stage the machine reached.
pub fn finish(
    s: &mut RolloutStatus,
    strategy: &StrategyPlan,
    world: &World,
    target_revision: &str,
) {
    let stage = s.stage.unwrap_or(Stage::TakingOver);
    let stable = s.stable_slot.unwrap_or(Slot::Blue);
    let candidate = stable.other();
    let candidate_revision = s.candidate_revision.clone().unwrap_or_default();
    let check = s
        .last_check_summary
        .clone()
        .map(|c| format!(", {c}"))
        .unwrap_or_default();
    let (steps, blue_green) = match strategy {
        StrategyPlan::Canary(canary) => (canary.steps.len(), None),
        StrategyPlan::BlueGreen(blue_green) => (0, Some(blue_green)),
    };
    let progressing = if s.paused {
        Phase::Paused
    } else {
        Phase::Progressing
    };
    let or_first_check = if check.is_empty() {
        ", waiting for the first check".to_string()
    } else {
        check.clone()
    };
    let full = s.replicas.unwrap_or(world.target.replicas);
    let ready = |slot: Slot| world.slot(slot).map(|v| v.ready_replicas).unwrap_or(0);
    let held = if s.paused { " (paused)" } else { "" };
    let (phase, message) = match stage {
        Stage::TakingOver => (
            Phase::Initializing,
            format!(
                "taking over: {} runs the target's pods, {}/{full} ready",
                stable,
                ready(stable)
            ),
        ),
        Stage::Steady => {
            let phase = if matches!(s.phase, Phase::Succeeded | Phase::RolledBack) {
                s.phase
            } else {
                Phase::Ready
            };
            let stable_revision = s.stable_revision.clone().unwrap_or_default();
            let message = match (phase, s.rollback_reason.clone()) {
                (Phase::RolledBack, Some(why)) => format!(
                    "rolled back {why}; {stable_revision} on {stable} serves all traffic (send retry or change the template to release again)"
                ),
                (Phase::Succeeded, _) => {
                    format!("revision {stable_revision} promoted: {stable} serves all traffic")
                }
                _ => format!("revision {stable_revision} on {stable} serves all traffic"),
            };
            (phase, message)
        }
        Stage::Starting => (
            progressing,
            format!(
                "starting {candidate_revision} on {candidate}: {}/{full} ready{held}",
                ready(candidate)
            ),
        ),
        Stage::Matching => (
            progressing,
            format!("match phase: matching requests go to {candidate}{check}{held}"),
        ),
        Stage::Stepping => (
            progressing,
            format!(
                "step {}/{steps}: {}% to {candidate}{or_first_check}{held}",
                s.step.unwrap_or(0),
                s.canary_weight.unwrap_or(0),
            ),
        ),
        Stage::Previewing => (
            progressing,
            format!(
                "previewing {candidate_revision} on {candidate} for {}{or_first_check}{held}",
                blue_green
                    .map_or_else(String::new, |b| crate::duration::format(b.preview_duration))
            ),
        ),
        Stage::AwaitingPromotion if blue_green.is_some() => (
            Phase::Paused,
            format!(
                "preview of {candidate_revision} on {candidate} passed{check}; waiting for promote to switch"
            ),
        ),
        Stage::Verifying => (
            progressing,
            format!(
                "switched to {candidate}, verifying {candidate_revision} for {}{or_first_check}{held}",
                blue_green.map_or_else(String::new, |b| crate::duration::format(
                    b.post_switch_duration
                ))
            ),
        ),
        Stage::AwaitingPromotion => (
            Phase::Paused,
            format!(
                "step {steps}/{steps}: {}% to {candidate}{check}; waiting for promote",
                s.canary_weight.unwrap_or(0)
            ),
        ),
        Stage::PromotingScale => (
            Phase::Promoting,
            format!(
                "promoting {candidate_revision}: {candidate} {}/{full} ready",
                ready(candidate)
            ),
        ),
        Stage::PromotingSwitch => (
            Phase::Promoting,
            format!("promoting {candidate_revision}: switching the Service to {candidate}"),
        ),
        Stage::PromotingDrain => (
            Phase::Promoting,
            format!(
                "promoting {candidate_revision}: canary weight to 0, all traffic via the Service on {candidate}"
            ),
        ),
        Stage::RollingBack | Stage::RollingBackScaleDown => (
            Phase::Progressing,
            format!(
                "rolling back {}",
                s.rollback_reason.clone().unwrap_or(candidate_revision)
            ),
        ),
        Stage::Superseding => (
            Phase::Progressing,
            format!(
                "superseding {candidate_revision} by {target_revision}: traffic back to {stable} first"
            ),
        ),
    };
    s.phase = phase;
    s.message = Some(message.clone());
    let now = world.now;
    let generation = s.observed_generation;
    let (ready_status, ready_reason) = if stage == Stage::TakingOver {
        (ConditionStatus::False, "TakingOver")
    } else {
        (ConditionStatus::True, "Reconciled")
    };
    set_condition(
        &mut s.conditions,
        CONDITION_READY,
        ready_status,
        ready_reason,
        message.clone(),
        now,
        generation,
    );
    let in_flight = !matches!(stage, Stage::Steady | Stage::TakingOver);
    let (progressing, reason) = if in_flight {
        (ConditionStatus::True, stage_name(stage))
    } else {
        (
            ConditionStatus::False,
            if phase == Phase::Initializing {
                "TakingOver"
            } else {
                phase_reason(phase)
            },
        )
    };
    set_condition(
        &mut s.conditions,
        CONDITION_PROGRESSING,
        progressing,
        reason,
        message.clone(),
        now,
        generation,
    );
    let promoted = stage == Stage::Steady && s.stable_revision.as_deref() == Some(target_revision);
    let (promoted_status, promoted_reason) = match (promoted, phase) {
        (true, Phase::Succeeded) => (ConditionStatus::True, "Promoted"),
        (true, _) => (ConditionStatus::True, "Stable"),
        (false, Phase::RolledBack) => (ConditionStatus::False, "RolledBack"),
        (false, _) => (ConditionStatus::False, stage_name(stage)),
    };
    set_condition(
        &mut s.conditions,
        CONDITION_PROMOTED,
        promoted_status,
        promoted_reason,
        message,
        now,
        generation,
    );
}

fn phase_reason(phase: Phase) -> &'static str {
    match phase {
        Phase::Succeeded => "Succeeded",
        Phase::RolledBack => "RolledBack",
        Phase::Failed => "Failed",
        _ => "Idle",
    }
}

/// The status of a Rollout whose spec cannot work: phase Failed, `Ready=False` with reason
/// `InvalidSpec` and a message that says what to fix. The release state is kept; what happens to a
/// release in flight is [`super::invalid_spec`]'s to decide.
pub fn invalid_spec_status(
    status: &RolloutStatus,
    now: DateTime<Utc>,
    generation: i64,
    problems: &str,
) -> RolloutStatus {
    let mut s = status.clone();
    s.observed_generation = Some(generation);
    s.phase = Phase::Failed;
    s.message = Some(format!("invalid spec: {problems}"));
    s.conditions = conditions_for_invalid(&s.conditions, now, generation, problems);
    s
}

/// The conditions of an invalid Rollout.
pub fn conditions_for_invalid(
    conditions: &[Condition],
    now: DateTime<Utc>,
    generation: i64,
    problems: &str,
) -> Vec<Condition> {
    let mut conditions = conditions.to_vec();
    let message = format!("invalid spec: {problems}");
    set_condition(
        &mut conditions,
        CONDITION_READY,
        ConditionStatus::False,
        REASON_INVALID_SPEC,
        message.clone(),
        now,
        Some(generation),
    );
    set_condition(
        &mut conditions,
        CONDITION_PROGRESSING,
        ConditionStatus::False,
        REASON_INVALID_SPEC,
        message,
        now,
        Some(generation),
    );
    conditions
}
