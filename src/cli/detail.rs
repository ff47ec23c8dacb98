//! `sluice get NS/NAME`: one Rollout in full, as a block of fields followed by its latest check,
//! its conditions and its release history.

use std::collections::BTreeMap;

use super::table::aligned;
use super::text::{NONE, images_text, or_none, step_text, timestamp, value_text, weight_text};
use crate::api::types::{Check, ConditionView, RolloutDetail, TransitionView};

pub fn detail_text(detail: &RolloutDetail) -> String {
    let mut out = fields(detail);
    out.push_str(&section("Analysis", analysis_rows(&detail.analysis)));
    out.push_str(&section("Conditions", condition_rows(&detail.conditions)));
    out.push_str(&section("History", history_rows(&detail.history, detail)));
    out
}

fn fields(detail: &RolloutDetail) -> String {
    let rollout = &detail.summary;
    let mut phase = rollout.phase.clone();
    if rollout.paused && phase != "Paused" {
        phase.push_str(" (paused)");
    }
    let mut rows = vec![
        field("Name", format!("{}/{}", rollout.namespace, rollout.name)),
        field("Strategy", or_none(rollout.strategy.as_deref())),
        field("Phase", phase),
        field("Step", step_text(rollout.step, rollout.step_count)),
        field("Weight", weight_text(rollout.weight)),
        field(
            "Stable",
            slot(
                rollout.stable_slot.as_deref(),
                rollout.stable_revision.as_deref(),
                &detail.stable_images,
            ),
        ),
        field(
            "Candidate",
            slot(
                rollout.candidate_slot.as_deref(),
                rollout.candidate_revision.as_deref(),
                &detail.candidate_images,
            ),
        ),
        field("Target", or_none(rollout.target_revision.as_deref())),
    ];
    if let Some(revision) = &rollout.rolled_back_revision {
        rows.push(field("Rolled back", revision));
    }
    if let Some(reason) = &detail.rollback_reason {
        rows.push(field("Rollback reason", reason));
    }
    rows.push(field("Message", or_none(rollout.message.as_deref())));
    aligned(&rows, "")
}

fn field(label: &str, value: impl Into<String>) -> Vec<String> {
    vec![format!("{label}:"), value.into()]
}

/// `green  cand  web=shop/web:1.2`, or `-` with no slot and no revision.
fn slot(name: Option<&str>, revision: Option<&str>, images: &BTreeMap<String, String>) -> String {
    if name.is_none() && revision.is_none() && images.is_empty() {
        return NONE.to_string();
    }
    format!(
        "{}  {}  {}",
        or_none(name),
        or_none(revision),
        images_text(images)
    )
}

/// `\nTitle:\n` and the rows under headers, indented; `\nTitle: <none>\n` without rows.
fn section(title: &str, rows: Vec<Vec<String>>) -> String {
    if rows.len() <= 1 {
        return format!("\n{title}: <none>\n");
    }
    format!("\n{title}:\n{}", aligned(&rows, "  "))
}

fn headers(names: &[&str]) -> Vec<String> {
    names.iter().map(|name| name.to_string()).collect()
}

/// The latest check; a REASON column only when some metric has one.
fn analysis_rows(checks: &[Check]) -> Vec<Vec<String>> {
    let with_reason = checks.iter().any(|check| check.reason.is_some());
    let mut header = headers(&["METRIC", "VALUE", "BOUND", "VERDICT"]);
    if with_reason {
        header.push("REASON".to_string());
    }
    let mut rows = vec![header];
    rows.extend(checks.iter().map(|check| {
        let mut row = vec![
            check.metric.clone(),
            value_text(check.value),
            check.bound.clone(),
            check.verdict.clone(),
        ];
        if with_reason {
            row.push(check.reason.clone().unwrap_or_default());
        }
        row
    }));
    rows
}

fn condition_rows(conditions: &[ConditionView]) -> Vec<Vec<String>> {
    let mut rows = vec![headers(&["TYPE", "STATUS", "REASON", "MESSAGE"])];
    rows.extend(conditions.iter().map(|condition| {
        vec![
            condition.type_.clone(),
            condition.status.clone(),
            condition.reason.clone(),
            condition.message.clone(),
        ]
    }));
    rows
}

/// One line per transition, oldest first.
fn history_rows(history: &[TransitionView], detail: &RolloutDetail) -> Vec<Vec<String>> {
    let mut rows = vec![headers(&[
        "SEQ", "TIME", "RELEASE", "REVISION", "PHASE", "STEP", "WEIGHT", "MESSAGE",
    ])];
    rows.extend(history.iter().map(|transition| {
        vec![
            transition.seq.to_string(),
            timestamp(transition.time),
            transition.release.to_string(),
            or_none(transition.revision.as_deref()).to_string(),
            transition.phase.clone(),
            step_text(transition.step, detail.summary.step_count),
            weight_text(transition.weight),
            or_none(transition.message.as_deref()).to_string(),
        ]
    }));
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::fixtures::{check, detail};

    #[test]
    fn detail_of_a_canary_mid_release() {
        let expected = "\
Name:        shop/web
Strategy:    canary
Phase:       Progressing
Step:        2/4
Weight:      50%
Stable:      blue  stab  web=shop/web:1.1
Candidate:   green  cand  web=shop/web:1.2
Target:      cand
Message:     step 2/4: 50% to green

Analysis:
  METRIC        VALUE   BOUND      VERDICT
  error-rate    0.2     <= 1%      pass
  latency-p99   57      <= 500ms   pass

Conditions:
  TYPE    STATUS   REASON        MESSAGE
  Ready   True     Progressing   releasing cand

History:
  SEQ   TIME                   RELEASE   REVISION   PHASE         STEP   WEIGHT   MESSAGE
  1     2026-12-01T12:00:01Z   1         stab       Succeeded     -      -        revision stab promoted
  5     2026-12-01T12:00:05Z   2         cand       Progressing   1/4    20%      step 1/4: 20% to green
";
        assert_eq!(detail_text(&detail()), expected);
    }

    #[test]
    fn a_rolled_back_rollout_shows_what_and_why() {
        let mut rolled_back = detail();
        rolled_back.summary.phase = "RolledBack".to_string();
        rolled_back.summary.candidate_slot = None;
        rolled_back.summary.candidate_revision = None;
        rolled_back.candidate_images.clear();
        rolled_back.summary.rolled_back_revision = Some("cand".to_string());
        rolled_back.rollback_reason = Some("error-rate 23% > 1%".to_string());
        let mut failing = check("error-rate", None, "<= 1%", "inconclusive");
        failing.reason = Some("no data".to_string());
        rolled_back.analysis = vec![failing];
        rolled_back.conditions.clear();
        let text = detail_text(&rolled_back);
        assert!(text.contains("Candidate:         -\n"), "{text}");
        assert!(text.contains("Rolled back:       cand\n"), "{text}");
        assert!(
            text.contains("Rollback reason:   error-rate 23% > 1%\n"),
            "{text}"
        );
        assert!(
            text.contains("  error-rate   -       <= 1%   inconclusive   no data\n"),
            "{text}"
        );
        assert!(text.contains("\nConditions: <none>\n"), "{text}");
    }
}
