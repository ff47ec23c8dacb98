//! What the API's requests and answers look like on the wire (contract: DESIGN.md section 4b).
//! The CLI reads the same types, and the OpenAPI document is generated from them. They are the
//! API's own, not the CRD's: the status can grow fields without changing the API.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One Rollout in a list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutSummary {
    pub namespace: String,
    pub name: String,
    /// `canary` or `blueGreen`; absent when the spec cannot be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<String>,
    /// Initializing, Ready, Progressing, Paused, Promoting, Succeeded, RolledBack or Failed.
    pub phase: String,
    /// The current step, counted from 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<u32>,
    /// The steps of the canary strategy (0 for blue/green).
    pub step_count: u32,
    /// The percent of traffic the candidate receives (canary only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_slot: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidate_slot: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_revision: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidate_revision: Option<String>,
    /// The latest revision given up; not released again until `retry` or a new template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolled_back_revision: Option<String>,
    /// The revision the target Deployment's pod template asks for now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_revision: Option<String>,
    /// Held by a pause command.
    pub paused: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// A list of Rollouts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RolloutList {
    pub items: Vec<RolloutSummary>,
}

/// One Rollout in full.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutDetail {
    #[serde(flatten)]
    pub summary: RolloutSummary,
    /// The stable slot's images, by container.
    pub stable_images: BTreeMap<String, String>,
    /// The candidate slot's images, by container, while a release is in flight.
    pub candidate_images: BTreeMap<String, String>,
    /// The latest check, one entry per metric.
    pub analysis: Vec<Check>,
    pub conditions: Vec<ConditionView>,
    /// Why the latest release was given up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_reason: Option<String>,
    /// The kind of reason in one word: `failed_checks`, `failed_queries`, `inconclusive`,
    /// `progress_deadline`, `aborted` or `withdrawn`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_cause: Option<String>,
    /// The transitions of the current and the previous release, oldest first.
    pub history: Vec<TransitionView>,
}

/// One metric of one check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Check {
    pub metric: String,
    /// What Prometheus answered; absent with no data or a failed query.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// The bound it was held to, e.g. `<= 1%`.
    pub bound: String,
    /// pass, fail, inconclusive or error.
    pub verdict: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<DateTime<Utc>>,
}

/// A Kubernetes condition of the Rollout (`Ready`, `Progressing`, `Promoted`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConditionView {
    #[serde(rename = "type")]
    pub type_: String,
    /// True, False or Unknown.
    pub status: String,
    pub reason: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<DateTime<Utc>>,
}

/// One transition of a release; also the data of each event of the event stream, whose id is
/// `seq`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TransitionView {
    /// Numbers the Rollout's transitions from 1, never reused.
    pub seq: u64,
    /// Numbers the Rollout's releases from 1; 0 for the take-over.
    pub release: u32,
    pub time: DateTime<Utc>,
    pub phase: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u8>,
    /// The revision being released (at its end, the one released or given up).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// The check that ran at this transition.
    pub checks: Vec<Check>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// `POST .../release`: `image` for a single-container target, or `images` by container.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReleaseRequest {
    /// `[registry/]repository[:tag][@sha256:digest]`, with a tag or a digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "erp/reporting:1.0.1")]
    pub image: Option<String>,
    /// Container name to image reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images: Option<BTreeMap<String, String>>,
}

/// The answer to a release: the revision that will be released.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseAccepted {
    /// The pod template hash of the release (the Rollout's `candidateRevision` once it starts).
    pub revision: String,
    /// Whether the target Deployment was changed (false: it already asked for these images).
    pub changed: bool,
    /// The target's images after the change, by container.
    pub images: BTreeMap<String, String>,
}

/// `POST .../promote`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PromoteRequest {
    /// Skip the remaining steps and promote at once.
    #[serde(default)]
    pub full: bool,
}

/// `POST .../abort`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AbortRequest {
    /// Why, recorded in the status and in an Event (at most 1024 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `POST .../pause`, `.../resume`, `.../retry`: no fields; an empty body does too.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmptyRequest {}

/// The answer to a command: accepted, to be applied exactly once by the release machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CommandAccepted {
    /// promote, promote-full, abort, pause, resume or retry.
    pub command: String,
    /// The command's id: the `Idempotency-Key`, or one derived from the request and the release.
    pub id: String,
    /// The same command was sent before; it is not applied again.
    pub duplicate: bool,
}

/// Every error answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// A stable word for programs, e.g. `not_found`, `conflict`, `invalid_image`.
    pub code: String,
    /// What went wrong, for a person.
    pub message: String,
}
