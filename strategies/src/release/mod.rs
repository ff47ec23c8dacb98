//! The release machine: from a plan, the status so far and what the controller observed, the next
//! status and the world as it should be. Every decision sluice takes about traffic is here; the
//! controller only reads the world, writes what this returns, and reads back.
//!
//! Orderings that matter for safety are sequenced across reconciles through observations, never
//! assumed: the Service moves only to a slot observed ready, the candidate scales down only once the
//! canary weight is observed at zero, a promotion drains the canary weight only once the Service is
//! observed on the candidate. A restarted controller resumes from the status alone.

mod admission;
mod blue_green;
mod canary;
mod commands;
mod desired;
mod handback;
mod history;
mod invalid;
mod machine;
mod owned;
mod readiness;
mod report;
mod revision;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_blue_green;
#[cfg(test)]
mod tests_commands;
#[cfg(test)]
mod tests_latest_check;
#[cfg(test)]
mod tests_properties;
#[cfg(test)]
mod tests_records;
mod traffic;
mod writes;

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::analysis::CheckOutcome;
use crate::plan::{ReleasePlan, StrategyPlan};
use crate::spec::TrafficMatch;
use crate::status::{CanaryObjects, RolloutStatus, Slot, Stage};

pub use admission::{Admission, ReleaseAdmission, admit_command, admit_release, command_refusal};
pub use commands::{PendingCommand, command_nonce, pending_command};
pub use handback::{HandBack, HandBackView, hand_back};
pub use history::{TRANSITIONS_PER_RELEASE, record_history};
pub use invalid::{InvalidDecision, InvalidView, invalid_spec};
pub use readiness::{RolloutFacts, ready_of_current};
pub use report::{conditions_for_invalid, invalid_spec_status};
pub use revision::{
    REVISION_ANNOTATION, SLOT_LABEL, VERSION_LABEL, canonical_json, slot_selector, slot_template,
    template_hash,
};
pub use traffic::{candidate_share, traffic_back_after_failure};
pub use writes::{Write, ordered_writes};

/// A manual command, as written into the Rollout (see the controller's docs for the annotation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandVerb {
    /// Next step now (at the last step of a manual promotion: promote).
    Promote,
    /// Skip the remaining steps and promote.
    PromoteFull,
    /// Give up the release: traffic back to stable, candidate scaled down.
    Abort,
    /// Hold at the current step (analysis keeps running, and can still roll back).
    Pause,
    /// Carry on after a pause.
    Resume,
    /// Release a revision that was rolled back, again.
    Retry,
}

impl CommandVerb {
    pub fn parse(text: &str) -> Option<CommandVerb> {
        Some(match text.trim() {
            "promote" => CommandVerb::Promote,
            "promote-full" => CommandVerb::PromoteFull,
            "abort" => CommandVerb::Abort,
            "pause" => CommandVerb::Pause,
            "resume" => CommandVerb::Resume,
            "retry" => CommandVerb::Retry,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CommandVerb::Promote => "promote",
            CommandVerb::PromoteFull => "promote-full",
            CommandVerb::Abort => "abort",
            CommandVerb::Pause => "pause",
            CommandVerb::Resume => "resume",
            CommandVerb::Retry => "retry",
        }
    }
}

/// A command and the nonce that makes it be consumed exactly once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub verb: CommandVerb,
    pub nonce: String,
    /// Why, in the words of whoever sent it (an abort's reason, recorded in status and Events).
    pub reason: Option<String>,
}

/// The user's Deployment, the release source.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetView {
    /// Its pod template, as the API server stores it.
    pub template: Value,
    /// Its `spec.replicas` (sluice keeps it at 0 once it has taken over).
    pub replicas: i32,
    /// Its `spec.selector.matchLabels`.
    pub selector: BTreeMap<String, String>,
}

/// One slot Deployment as observed.
#[derive(Debug, Clone, PartialEq)]
pub struct SlotView {
    /// The revision it runs (its `sluice.dev/revision` annotation).
    pub revision: Option<String>,
    /// Its pod template.
    pub template: Value,
    /// `spec.replicas`.
    pub replicas: i32,
    /// Ready pods of its current template (0 while its status lags its spec).
    pub ready_replicas: i32,
}

/// What the controller observed this reconcile.
#[derive(Debug, Clone, PartialEq)]
pub struct World {
    pub now: DateTime<Utc>,
    /// The Rollout's `metadata.generation`.
    pub generation: i64,
    pub target: TargetView,
    pub blue: Option<SlotView>,
    pub green: Option<SlotView>,
    /// The selector of Service `<svc>`; None when it does not exist.
    pub service_selector: Option<BTreeMap<String, String>>,
    /// The weight read back from the canary Ingress the plan names; None when it does not exist.
    /// For blue/green, the highest weight of the canary Ingresses left from a canary spec (those
    /// of [`World::present`]), if one is left.
    pub canary_weight: Option<u8>,
    /// The canary Ingress read back carries a header or cookie match (for blue/green: one of
    /// those left from a canary spec does): matching requests reach the candidate at any weight.
    pub canary_matching: bool,
    /// Which of the canary objects the status records, or the plan names, exist (and are this
    /// Rollout's).
    pub present: CanaryObjects,
    /// The pod template recorded for the stable revision (see [`TemplateRecord`]), as the user
    /// wrote it; None when there is no record.
    pub stable_record: Option<Value>,
    /// A command written into the Rollout, not yet removed.
    pub command: Option<Command>,
    /// The outcome of the analysis check the controller ran because [`analysis_due`] said so.
    pub check: Option<CheckOutcome>,
}

impl World {
    pub fn slot(&self, slot: Slot) -> Option<&SlotView> {
        match slot {
            Slot::Blue => self.blue.as_ref(),
            Slot::Green => self.green.as_ref(),
        }
    }

    /// The slot `<svc>` selects, if it selects one.
    pub fn service_slot(&self) -> Option<Slot> {
        match self.service_selector.as_ref()?.get(SLOT_LABEL)?.as_str() {
            "blue" => Some(Slot::Blue),
            "green" => Some(Slot::Green),
            _ => None,
        }
    }
}

/// One slot Deployment as it should be.
#[derive(Debug, Clone, PartialEq)]
pub struct SlotSpec {
    pub slot: Slot,
    pub revision: String,
    pub template: Value,
    pub replicas: i32,
}

/// The canary Ingress as it should be.
#[derive(Debug, Clone, PartialEq)]
pub struct CanaryRoute {
    pub weight: u8,
    pub traffic_match: Option<TrafficMatch>,
}

/// The world as it should be. `None` means "leave it as it is".
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Desired {
    pub slots: Vec<SlotSpec>,
    /// Selector of `<svc>`.
    pub service_selector: Option<BTreeMap<String, String>>,
    /// Slot `<svc>-canary` selects.
    pub canary_service: Option<Slot>,
    pub canary_route: Option<CanaryRoute>,
    /// Canary objects of this Rollout that the plan no longer names: delete them (deleting a
    /// canary Ingress sends its share back to the main one, safe at any point of a release).
    pub remove: CanaryObjects,
    /// `spec.replicas` of the user's Deployment.
    pub target_replicas: Option<i32>,
    /// A revision whose pod template must be on record (created if absent).
    pub record: Option<TemplateRecord>,
    /// Revisions whose records are no longer needed.
    pub forget: Vec<String>,
}

/// The pod template of a revision, as the user wrote it, kept in a ControllerRevision owned by the
/// Rollout (`<rollout>-<revision>`): a lost stable slot is rebuilt from it, and a hand-back after
/// a rollback restores it into the user's Deployment, whatever that Deployment asks for by then.
#[derive(Debug, Clone, PartialEq)]
pub struct TemplateRecord {
    pub revision: String,
    pub template: Value,
    /// The ControllerRevision's `revision` number: when it was recorded, in Unix seconds.
    pub number: i64,
}

impl Desired {
    pub fn slot(&self, slot: Slot) -> Option<&SlotSpec> {
        self.slots.iter().find(|s| s.slot == slot)
    }
}

/// A Kubernetes Event to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub reason: &'static str,
    pub message: String,
    pub warning: bool,
}

/// The next status, the world as it should be, what to tell people, and when to look again.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub status: RolloutStatus,
    pub desired: Desired,
    pub notes: Vec<Note>,
    /// Reconcile again after this long even if nothing changes (time-driven steps and checks).
    pub requeue_after: Duration,
}

/// Whether an analysis check is due now: the controller runs the queries and passes the outcome
/// in [`World::check`].
pub fn analysis_due(plan: &ReleasePlan, status: &RolloutStatus, now: DateTime<Utc>) -> bool {
    machine::analysing(status.stage) && next_check_at(plan, status).is_some_and(|at| now >= at)
}

/// Time between checks: the analysis interval, and half of it after a blue/green switch, where
/// every user is on the candidate, so that a regression there is switched back within one
/// interval of showing up. The query window stays the interval.
fn check_cadence(plan: &ReleasePlan, stage: Option<Stage>) -> Duration {
    let interval = plan.analysis.interval;
    if stage == Some(Stage::Verifying) {
        (interval / 2).max(Duration::from_secs(1)).min(interval)
    } else {
        interval
    }
}

/// When the next analysis check is due: one cadence after the later of the stage's start and the
/// last check.
pub fn next_check_at(plan: &ReleasePlan, status: &RolloutStatus) -> Option<DateTime<Utc>> {
    let since = match (status.stage_started_at, status.last_check_at) {
        (Some(stage), Some(check)) => stage.max(check),
        (stage, check) => stage.or(check)?,
    };
    let cadence = check_cadence(plan, status.stage);
    Some(since + chrono::Duration::from_std(cadence).ok()?)
}

/// The one entry point: the next decision.
pub fn reconcile(plan: &ReleasePlan, status: &RolloutStatus, world: &World) -> Decision {
    machine::reconcile(plan, status, world)
}

/// The variables a check's queries are rendered with.
pub fn template_vars(
    namespace: &str,
    plan: &ReleasePlan,
    status: &RolloutStatus,
) -> crate::promql::TemplateVars {
    let stable = status.stable_slot.unwrap_or(Slot::Blue);
    let ingress = match &plan.strategy {
        StrategyPlan::Canary(c) => Some(c.ingress.clone()),
        StrategyPlan::BlueGreen(_) => None,
    };
    crate::promql::TemplateVars::for_release(
        namespace,
        &plan.target,
        &plan.service.name,
        ingress.as_deref(),
        stable,
        plan.analysis.interval,
    )
}
