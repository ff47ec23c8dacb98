//! Builders of the wire types for the CLI's tests: a Rollout mid-release, its transitions, checks.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeZone, Utc};

use crate::api::types::{Check, ConditionView, RolloutDetail, RolloutSummary, TransitionView};

/// 2026-12-01 at 12:00:00 plus `seconds`.
pub fn at(seconds: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0)
        .single()
        .expect("a valid time")
        + chrono::Duration::seconds(seconds)
}

/// shop/web, a canary at step 2 of 4 releasing `cand` over `stab`.
pub fn summary() -> RolloutSummary {
    RolloutSummary {
        namespace: "shop".to_string(),
        name: "web".to_string(),
        strategy: Some("canary".to_string()),
        phase: "Progressing".to_string(),
        step: Some(2),
        step_count: 4,
        weight: Some(50),
        stable_slot: Some("blue".to_string()),
        candidate_slot: Some("green".to_string()),
        stable_revision: Some("stab".to_string()),
        candidate_revision: Some("cand".to_string()),
        rolled_back_revision: None,
        target_revision: Some("cand".to_string()),
        paused: false,
        message: Some("step 2/4: 50% to green".to_string()),
    }
}

pub fn check(metric: &str, value: Option<f64>, bound: &str, verdict: &str) -> Check {
    Check {
        metric: metric.to_string(),
        value,
        bound: bound.to_string(),
        verdict: verdict.to_string(),
        reason: None,
        time: Some(at(10)),
    }
}

pub fn passing_checks() -> Vec<Check> {
    vec![
        check("error-rate", Some(0.2), "<= 1%", "pass"),
        check("latency-p99", Some(57.0), "<= 500ms", "pass"),
    ]
}

/// A transition of `revision` in `release`, at `seq` seconds past noon.
pub fn transition(seq: u64, release: u32, revision: &str, phase: &str) -> TransitionView {
    TransitionView {
        seq,
        release,
        time: at(seq as i64),
        phase: phase.to_string(),
        stage: None,
        step: None,
        weight: None,
        revision: Some(revision.to_string()),
        checks: Vec::new(),
        message: None,
    }
}

/// A canary step of `cand` in release 2.
pub fn step(seq: u64, step: u32, weight: u8) -> TransitionView {
    TransitionView {
        step: Some(step),
        weight: Some(weight),
        checks: passing_checks(),
        ..transition(seq, 2, "cand", "Progressing")
    }
}

pub fn detail() -> RolloutDetail {
    RolloutDetail {
        summary: summary(),
        stable_images: BTreeMap::from([("web".to_string(), "shop/web:1.1".to_string())]),
        candidate_images: BTreeMap::from([("web".to_string(), "shop/web:1.2".to_string())]),
        analysis: passing_checks(),
        conditions: vec![ConditionView {
            type_: "Ready".to_string(),
            status: "True".to_string(),
            reason: "Progressing".to_string(),
            message: "releasing cand".to_string(),
            last_transition_time: Some(at(0)),
        }],
        rollback_reason: None,
        rollback_cause: None,
        history: vec![
            TransitionView {
                message: Some("revision stab promoted".to_string()),
                ..transition(1, 1, "stab", "Succeeded")
            },
            TransitionView {
                message: Some("step 1/4: 20% to green".to_string()),
                step: Some(1),
                weight: Some(20),
                ..transition(5, 2, "cand", "Progressing")
            },
        ],
    }
}
