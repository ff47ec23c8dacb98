//! Reading Rollouts: the list, one Rollout in full, from the controller's caches.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use kube::ResourceExt;
use serde::Deserialize;
use sluice_strategies::image::images_of;
use sluice_strategies::names::slot_name;
use sluice_strategies::release::template_hash;
use sluice_strategies::status::{Condition, MetricResult, RolloutStatus, Slot, Transition};
use sluice_strategies::{ReleasePlan, resolve};
use utoipa::IntoParams;

use super::auth::Caller;
use super::error::ApiError;
use super::types::{
    Check, ConditionView, RolloutDetail, RolloutList, RolloutSummary, TransitionView,
};
use super::{ApiState, ErrorAnswers};
use crate::controller::observe::get;
use crate::crd::Rollout;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only the Rollouts of this namespace.
    pub namespace: Option<String>,
}

/// The Rollouts the token may read.
#[utoipa::path(
    get,
    path = "/api/v1/rollouts",
    tag = "rollouts",
    params(ListQuery),
    responses(
        (status = 200, description = "The Rollouts, sorted by namespace and name", body = RolloutList),
        ErrorAnswers,
    ),
    security(("bearer" = []))
)]
pub async fn list_rollouts(
    State(state): State<ApiState>,
    caller: Caller,
    Query(query): Query<ListQuery>,
) -> Result<Json<RolloutList>, ApiError> {
    if let Some(namespace) = &query.namespace {
        caller.allow(namespace, super::auth::Action::Read)?;
    }
    let mut items: Vec<RolloutSummary> = state
        .rollouts
        .state()
        .iter()
        .filter(|r| {
            let namespace = r.namespace().unwrap_or_default();
            query.namespace.as_ref().is_none_or(|n| *n == namespace) && caller.may_read(&namespace)
        })
        .map(|r| summary(&state, r))
        .collect();
    items.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    Ok(Json(RolloutList { items }))
}

/// One Rollout in full: where its release is, the latest checks, its history.
#[utoipa::path(
    get,
    path = "/api/v1/namespaces/{namespace}/rollouts/{name}",
    tag = "rollouts",
    params(
        ("namespace" = String, Path, description = "The Rollout's namespace", example = "erp-system"),
        ("name" = String, Path, description = "The Rollout's name", example = "reporting"),
    ),
    responses(
        (status = 200, description = "The Rollout", body = RolloutDetail),
        ErrorAnswers,
    ),
    security(("bearer" = []))
)]
pub async fn get_rollout(
    State(state): State<ApiState>,
    caller: Caller,
    Path((namespace, name)): Path<(String, String)>,
) -> Result<Json<RolloutDetail>, ApiError> {
    caller.allow(&namespace, super::auth::Action::Read)?;
    let rollout = find(&state, &namespace, &name)?;
    Ok(Json(detail(&state, &rollout)))
}

/// The Rollout from the cache, or 404.
pub fn find(
    state: &ApiState,
    namespace: &str,
    name: &str,
) -> Result<std::sync::Arc<Rollout>, ApiError> {
    get(&state.rollouts, namespace, name).ok_or_else(|| ApiError::not_found(namespace, name))
}

pub(super) fn plan(state: &ApiState, rollout: &Rollout) -> Option<ReleasePlan> {
    resolve(rollout.spec.readable().ok()?, &state.context.presets).ok()
}

pub fn summary(state: &ApiState, rollout: &Rollout) -> RolloutSummary {
    let status = rollout.status.clone().unwrap_or_default();
    let plan = plan(state, rollout);
    let (strategy, step_count) = match plan.as_ref().map(|p| &p.strategy) {
        Some(sluice_strategies::plan::StrategyPlan::Canary(canary)) => {
            (Some("canary".to_string()), canary.steps.len() as u32)
        }
        Some(sluice_strategies::plan::StrategyPlan::BlueGreen(_)) => {
            (Some("blueGreen".to_string()), 0)
        }
        None => (None, 0),
    };
    let target_revision = target_template(state, rollout).map(|t| template_hash(&t));
    let in_release = status.candidate_revision.is_some();
    RolloutSummary {
        namespace: rollout.namespace().unwrap_or_default(),
        name: rollout.name_any(),
        strategy,
        phase: format!("{:?}", status.phase),
        step: status.step,
        step_count,
        weight: status.canary_weight,
        stable_slot: status.stable_slot.map(|s| s.to_string()),
        candidate_slot: status
            .stable_slot
            .filter(|_| in_release)
            .map(|s| s.other().to_string()),
        stable_revision: status.stable_revision.clone(),
        candidate_revision: status.candidate_revision.clone(),
        rolled_back_revision: status.rolled_back_revision.clone(),
        target_revision,
        paused: status.paused,
        message: status.message.clone(),
    }
}

/// The target Deployment's pod template as the API server stores it.
pub fn target_template(state: &ApiState, rollout: &Rollout) -> Option<serde_json::Value> {
    let names = rollout.spec.names()?;
    let namespace = rollout.namespace().unwrap_or_default();
    let target = get(&state.context.deployments, &namespace, &names.target)?;
    Some(target.spec.as_ref()?.template.value())
}

fn detail(state: &ApiState, rollout: &Rollout) -> RolloutDetail {
    let status: RolloutStatus = rollout.status.clone().unwrap_or_default();
    let summary = summary(state, rollout);
    let namespace = rollout.namespace().unwrap_or_default();
    let names = rollout.spec.names();
    let slot_images = |slot: Option<Slot>| -> BTreeMap<String, String> {
        let (Some(slot), Some(names)) = (slot, names.as_ref()) else {
            return BTreeMap::new();
        };
        get(
            &state.context.deployments,
            &namespace,
            &slot_name(&names.target, slot),
        )
        .and_then(|d| d.spec.as_ref().map(|s| images_of(&s.template.value())))
        .unwrap_or_default()
    };
    let candidate_slot = status
        .stable_slot
        .filter(|_| status.candidate_revision.is_some())
        .map(Slot::other);
    RolloutDetail {
        stable_images: slot_images(status.stable_slot),
        candidate_images: slot_images(candidate_slot),
        analysis: status.analysis.iter().map(check).collect(),
        conditions: status.conditions.iter().map(condition).collect(),
        rollback_reason: status.rollback_reason.clone(),
        rollback_cause: status.rollback_cause.map(|c| c.as_str().to_string()),
        history: status.history.iter().map(transition).collect(),
        summary,
    }
}

fn check(result: &MetricResult) -> Check {
    Check {
        metric: result.name.clone(),
        value: result.value.filter(|v| v.is_finite()),
        bound: result.bound.clone(),
        verdict: result.verdict.to_string(),
        reason: result.reason.clone(),
        time: result.time,
    }
}

fn condition(condition: &Condition) -> ConditionView {
    ConditionView {
        type_: condition.type_.clone(),
        status: format!("{:?}", condition.status),
        reason: condition.reason.clone(),
        message: condition.message.clone(),
        last_transition_time: condition.last_transition_time,
    }
}

pub fn transition(transition: &Transition) -> TransitionView {
    TransitionView {
        seq: transition.seq,
        release: transition.release,
        time: transition.time,
        phase: format!("{:?}", transition.phase),
        stage: transition.stage.map(|s| format!("{s:?}")),
        step: transition.step,
        weight: transition.weight,
        revision: transition.revision.clone(),
        checks: transition.checks.iter().map(check).collect(),
        message: transition.message.clone(),
    }
}
