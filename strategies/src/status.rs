//! The Rollout's status, as the controller writes it (DESIGN.md section 3). All release state lives
//! here so that a restarted controller resumes every release where it was.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Condition type: the Rollout's spec is valid and its objects are in place.
pub const CONDITION_READY: &str = "Ready";
/// Condition type: a release is in flight.
pub const CONDITION_PROGRESSING: &str = "Progressing";
/// Condition type: the latest revision was promoted (`kubectl wait --for=condition=Promoted`).
pub const CONDITION_PROMOTED: &str = "Promoted";
/// Condition reason for a spec that cannot work.
pub const REASON_INVALID_SPEC: &str = "InvalidSpec";

/// Where a Rollout is in its life.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum Phase {
    /// sluice is taking the target over: creating slots, Services and the canary Ingress.
    #[default]
    Initializing,
    /// The stable revision serves all traffic; no release is in flight.
    Ready,
    /// A candidate is receiving traffic and being analysed.
    Progressing,
    /// A release is held, by an operator or by inconclusive analysis.
    Paused,
    /// The candidate passed and is becoming stable.
    Promoting,
    /// The latest release finished and its candidate is now stable.
    Succeeded,
    /// The latest release was given up and traffic is back on stable.
    RolledBack,
    /// The Rollout cannot work as specified (see `message` and the `Ready` condition).
    Failed,
}

/// One of the two slot Deployments, `<app>-blue` and `<app>-green`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Slot {
    /// The `<app>-blue` Deployment.
    Blue,
    /// The `<app>-green` Deployment.
    Green,
}

impl Phase {
    /// A release is under way: traffic or the slots may still move.
    pub fn in_flight(self) -> bool {
        matches!(self, Phase::Progressing | Phase::Paused | Phase::Promoting)
    }
}

impl Slot {
    /// The other slot: the candidate's when this one is stable, and back.
    pub fn other(self) -> Slot {
        match self {
            Slot::Blue => Slot::Green,
            Slot::Green => Slot::Blue,
        }
    }

    /// The slot's name as used in Deployment names and the `sluice.dev/slot` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Slot::Blue => "blue",
            Slot::Green => "green",
        }
    }
}

impl std::fmt::Display for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The verdict on one metric in one analysis check, or on the whole check.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Within its bounds, with enough traffic.
    Pass,
    /// A bound was crossed; counts toward `failureLimit`.
    Fail,
    /// No data, or fewer than `minRequests` candidate requests; never passes a step.
    Inconclusive,
    /// Prometheus was unreachable or the query failed; never passes a step.
    Error,
}

impl Verdict {
    /// The lowercase word used in status and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Inconclusive => "inconclusive",
            Verdict::Error => "error",
        }
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a release was given up: a bounded word for metrics and alerts, beside the message.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum RollbackCause {
    /// More failed checks than `failureLimit` (or one after a blue/green switch).
    FailedChecks,
    /// More checks whose queries failed than `errorLimit`.
    FailedQueries,
    /// More inconclusive checks than `inconclusiveLimit`.
    Inconclusive,
    /// The candidate was not ready, or could not be switched to, within `progressDeadline`.
    ProgressDeadline,
    /// An `abort` command.
    Aborted,
    /// The target went back to the stable revision while the release was in flight.
    Withdrawn,
}

impl RollbackCause {
    /// The snake_case word of metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            RollbackCause::FailedChecks => "failed_checks",
            RollbackCause::FailedQueries => "failed_queries",
            RollbackCause::Inconclusive => "inconclusive",
            RollbackCause::ProgressDeadline => "progress_deadline",
            RollbackCause::Aborted => "aborted",
            RollbackCause::Withdrawn => "withdrawn",
        }
    }

    pub const ALL: [RollbackCause; 6] = [
        RollbackCause::FailedChecks,
        RollbackCause::FailedQueries,
        RollbackCause::Inconclusive,
        RollbackCause::ProgressDeadline,
        RollbackCause::Aborted,
        RollbackCause::Withdrawn,
    ];
}

/// The latest check of one metric.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricResult {
    /// The metric's name from `spec.analysis.metrics`.
    pub name: String,
    /// What Prometheus answered; absent when it had no data or the query failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// The bound the value was held to, e.g. `<= 1%`.
    pub bound: String,
    /// The metric's verdict.
    pub verdict: Verdict,
    /// Why the verdict is what it is, when that is not obvious from value and bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When the check ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<DateTime<Utc>>,
}

/// The status of a condition, as Kubernetes spells it.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum ConditionStatus {
    /// The condition holds.
    True,
    /// The condition does not hold.
    False,
    /// It is not known whether the condition holds.
    Unknown,
}

/// A standard Kubernetes condition (`Ready`, `Progressing`, `Promoted`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// The condition's type, e.g. `Promoted`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: ConditionStatus,
    /// A CamelCase word for why, e.g. `InvalidSpec`.
    #[serde(default)]
    pub reason: String,
    /// What happened, for a person.
    #[serde(default)]
    pub message: String,
    /// When the status last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<DateTime<Utc>>,
    /// The spec generation the condition was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// What sluice knows about a Rollout and its release in flight.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutStatus {
    /// Where the Rollout is in its life.
    #[serde(default)]
    pub phase: Phase,
    /// The slot that serves the stable revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_slot: Option<Slot>,
    /// Hash of the stable pod template (canonical JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_revision: Option<String>,
    /// Hash of the candidate pod template, while a release is in flight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidate_revision: Option<String>,
    /// The current step, counted from 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<u32>,
    /// The percent of traffic the candidate receives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 100))]
    pub canary_weight: Option<u8>,
    /// Failed checks in this release.
    #[serde(default)]
    pub failed_checks: u32,
    /// When the release's first failed check ran, or, if none failed, when it was given up: the
    /// rollback-time metric runs from here to traffic back on stable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_failure_at: Option<DateTime<Utc>>,
    /// Inconclusive checks in this release.
    #[serde(default)]
    pub inconclusive_checks: u32,
    /// Checks whose queries failed in this release.
    #[serde(default)]
    pub error_checks: u32,
    /// The latest check, one entry per metric.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub analysis: Vec<MetricResult>,
    /// `Ready`, `Progressing` and `Promoted`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// One line on what is happening, for a person.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The spec generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Where the release machine is: the state a restarted controller resumes from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<Stage>,
    /// Replicas each slot runs at full size (the target's replicas when sluice took it over, or
    /// when it was last scaled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// Held by a `pause` command until `resume`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub paused: bool,
    /// When the current stage (or step) began.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage_started_at: Option<DateTime<Utc>>,
    /// When the release in flight began (for `progressDeadline`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_started_at: Option<DateTime<Utc>>,
    /// The latest check in one line, e.g. `error-rate 0.3% <= 1%, latency-p99 212ms <= 500ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_check_summary: Option<String>,
    /// When the latest analysis check ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_check_at: Option<DateTime<Utc>>,
    /// The latest check of the current step or phase passed (it advances only then).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub step_passed: bool,
    /// The old slot kept warm after a promotion, and when it goes to zero.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_down: Option<ScaleDown>,
    /// The latest revision that was rolled back: not retried until the template changes or a
    /// `retry` command arrives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolled_back_revision: Option<String>,
    /// Why the latest release was given up (shown while and after it rolls back).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_reason: Option<String>,
    /// The kind of reason, in one word.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_cause: Option<RollbackCause>,
    /// The nonce of the latest command consumed, so that none is applied twice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_command: Option<String>,
    /// The Service's selector before sluice took it over, restored when the Rollout is deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_selector: Option<std::collections::BTreeMap<String, String>>,
    /// The canary Ingresses and Services sluice may have made for this Rollout and has not seen
    /// gone: after a change of `ingressRef`, `service` or strategy, the ones no longer wanted are
    /// deleted by these names, whatever the spec names now.
    #[serde(default, skip_serializing_if = "CanaryObjects::is_empty")]
    pub canary_objects: CanaryObjects,
    /// The transitions of the current and the previous release, oldest first (bounded: see
    /// `release::record_history`), kept here so that they survive restarts; the API's history
    /// and event stream read them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub history: Vec<Transition>,
}

/// One transition of a release: where it went, when, and the check that moved it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Transition {
    /// Numbers the Rollout's transitions from 1, never reused (the event stream's ids).
    pub seq: u64,
    /// Numbers the Rollout's releases from 1; 0 for the take-over.
    pub release: u32,
    pub time: DateTime<Utc>,
    pub phase: Phase,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<Stage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<u32>,
    /// The canary weight the release set (canary only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 100))]
    pub weight: Option<u8>,
    /// The revision being released (at the end of a release, the one it released or gave up;
    /// the stable one outside a release).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// The check that ran at this transition, one entry per metric.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<MetricResult>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Names of canary objects of one Rollout, each list sorted and without repeats.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanaryObjects {
    /// Canary Ingresses (`<ingress>-<svc>-canary`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ingresses: Vec<String>,
    /// Canary Services (`<svc>-canary`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<String>,
}

impl CanaryObjects {
    pub fn is_empty(&self) -> bool {
        self.ingresses.is_empty() && self.services.is_empty()
    }
}

/// The release machine's states. The phase a person sees is derived from these.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Stage {
    /// Stable slot created from the target's template; the Service moves once it is ready.
    TakingOver,
    /// No release in flight.
    Steady,
    /// The candidate slot scales up with the new template.
    Starting,
    /// Requests matching the header/cookie go to the candidate.
    Matching,
    /// The candidate gets the weight of the current step.
    Stepping,
    /// At the last step (canary) or after the preview (blue/green), waiting for a `promote`
    /// (promotion: manual).
    AwaitingPromotion,
    /// Blue/green: the candidate serves no users; `<svc>-canary` selects it and it is analysed
    /// for `previewDuration`.
    Previewing,
    /// The candidate is brought to full size and must be ready.
    PromotingScale,
    /// The Service switches to the candidate slot.
    PromotingSwitch,
    /// The canary weight goes to zero: everything flows through the Service, now on the candidate.
    PromotingDrain,
    /// Blue/green: `<svc>` selects the candidate and it is analysed for `postSwitchDuration`; a
    /// failed check switches `<svc>` back to the old slot, still warm.
    Verifying,
    /// Giving up: the canary weight goes to zero first, read back.
    RollingBack,
    /// Then the candidate scales down.
    RollingBackScaleDown,
    /// A newer revision arrived: traffic back to stable, then it starts from step 1.
    Superseding,
}

/// An old slot kept warm after a promotion.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScaleDown {
    /// The slot that was stable before the promotion.
    pub slot: Slot,
    /// When it scales to zero.
    pub at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_rollback_cause_has_its_own_snake_case_word() {
        let words: Vec<&str> = RollbackCause::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(
            words,
            [
                "failed_checks",
                "failed_queries",
                "inconclusive",
                "progress_deadline",
                "aborted",
                "withdrawn"
            ]
        );
        // In the status the same cause is camelCase, as the rest of the API is.
        let status = serde_json::to_value(RollbackCause::ProgressDeadline).unwrap();
        assert_eq!(status, json!("progressDeadline"));
    }

    #[test]
    fn serializes_as_the_design_spells_it() {
        let status = RolloutStatus {
            phase: Phase::RolledBack,
            stable_slot: Some(Slot::Blue),
            canary_weight: Some(25),
            failed_checks: 1,
            analysis: vec![MetricResult {
                name: "error-rate".into(),
                value: Some(0.3),
                bound: "<= 1%".into(),
                verdict: Verdict::Inconclusive,
                reason: None,
                time: None,
            }],
            conditions: vec![Condition {
                type_: CONDITION_READY.into(),
                status: ConditionStatus::False,
                reason: REASON_INVALID_SPEC.into(),
                message: "fix it".into(),
                last_transition_time: None,
                observed_generation: Some(3),
            }],
            ..RolloutStatus::default()
        };
        let value = serde_json::to_value(&status).unwrap();
        assert_eq!(
            value,
            json!({
                "phase": "RolledBack", "stableSlot": "blue", "canaryWeight": 25,
                "failedChecks": 1, "inconclusiveChecks": 0, "errorChecks": 0,
                "analysis": [{"name": "error-rate", "value": 0.3, "bound": "<= 1%",
                              "verdict": "inconclusive"}],
                "conditions": [{"type": "Ready", "status": "False", "reason": "InvalidSpec",
                                "message": "fix it", "observedGeneration": 3}],
            })
        );
        let back: RolloutStatus = serde_json::from_value(value).unwrap();
        assert_eq!(back, status);
    }

    #[test]
    fn an_empty_status_is_initializing() {
        let status: RolloutStatus = serde_json::from_value(json!({})).unwrap();
        assert_eq!(status.phase, Phase::Initializing);
        assert_eq!(status.failed_checks, 0);
    }

    #[test]
    fn slots_flip() {
        assert_eq!(Slot::Blue.other(), Slot::Green);
        assert_eq!(Slot::Green.other().as_str(), "blue");
    }
}
