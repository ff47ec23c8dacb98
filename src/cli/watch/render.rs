//! What `watch` prints, as pure text: one plain line per transition for logs, or a live view
//! that a terminal redraws in place with ANSI escapes.

use std::time::Duration;

use super::follow::Outcome;
use crate::api::types::{RolloutDetail, TransitionView};
use crate::cli::args::Target;
use crate::cli::table::aligned;
use crate::cli::text::{NONE, checks_text, clock, or_none, step_text, value_text, weight_text};

/// Cells in the progress bar.
const BAR_WIDTH: usize = 10;

/// `12:00:10  Progressing  step 2/4  weight 50%  error-rate 0.2 (bound <= 1%): pass, ...`: the check
/// when there is one, the message when there is none or the release has ended.
pub fn plain_line(transition: &TransitionView, step_count: u32) -> String {
    let mut parts = vec![clock(transition.time), format!("{:<11}", transition.phase)];
    if transition.step.is_some() {
        parts.push(format!("step {}", step_text(transition.step, step_count)));
    }
    if let Some(weight) = transition.weight {
        parts.push(format!("weight {weight}%"));
    }
    if let Some(stage) = &transition.stage {
        parts.push(stage.clone());
    }
    if !transition.checks.is_empty() {
        parts.push(checks_text(&transition.checks));
    }
    let in_flight = matches!(transition.phase.as_str(), "Progressing" | "Promoting");
    if let Some(message) = &transition.message
        && (transition.checks.is_empty() || !in_flight)
    {
        parts.push(message.clone());
    }
    parts.join("  ").trim_end().to_string()
}

/// The first line of a watch: what it follows.
pub fn header(target: &Target, revision: &str, detail: &RolloutDetail) -> String {
    format!(
        "{target}: following revision {revision} (stable {}, phase {})",
        or_none(detail.summary.stable_revision.as_deref()),
        detail.summary.phase
    )
}

/// `[#####.....] step 2/4`; full once the release succeeded.
pub fn progress_bar(step: Option<u32>, step_count: u32, phase: &str) -> String {
    let done = if phase == "Succeeded" {
        Some(step_count)
    } else {
        step.map(|step| step.min(step_count))
    };
    // `done` is at most `step_count`, so `filled` is at most `BAR_WIDTH`.
    let filled = done.unwrap_or(0) as usize * BAR_WIDTH / step_count.max(1) as usize;
    let step = done.map_or_else(|| NONE.to_string(), |done| done.to_string());
    format!(
        "[{}{}] step {step}/{step_count}",
        "#".repeat(filled),
        ".".repeat(BAR_WIDTH - filled)
    )
}

/// The live view: what is followed, phase and message, progress, each metric against its bound.
pub fn live_view(
    target: &Target,
    revision: &str,
    detail: &RolloutDetail,
    latest: Option<&TransitionView>,
) -> String {
    let rollout = &detail.summary;
    let mut lines = vec![
        format!("{target}  revision {revision}"),
        format!("{}  {}", rollout.phase, or_none(rollout.message.as_deref())),
    ];
    let mut progress = if rollout.step_count > 0 {
        progress_bar(rollout.step, rollout.step_count, &rollout.phase)
    } else {
        // Blue/green has no steps: say the stage it is in.
        format!(
            "stage {}",
            or_none(latest.and_then(|transition| transition.stage.as_deref()))
        )
    };
    progress.push_str(&format!("  weight {}", weight_text(rollout.weight)));
    lines.push(progress);
    if detail.analysis.is_empty() {
        lines.push("  no check yet".to_string());
    }
    let rows: Vec<Vec<String>> = detail
        .analysis
        .iter()
        .map(|check| {
            vec![
                check.metric.clone(),
                value_text(check.value),
                check.bound.clone(),
                check.verdict.clone(),
            ]
        })
        .collect();
    let mut view = lines.join("\n");
    view.push('\n');
    view.push_str(&aligned(&rows, "  "));
    view
}

/// Escapes that replace a view of `previous_lines` lines, drawn just above the cursor, with
/// `view`. Line wrapping is off while drawing, so a line wider than the terminal stays one line
/// and the count of lines to go back up stays right.
pub fn redraw(previous_lines: usize, view: &str) -> String {
    let mut out = String::new();
    if previous_lines > 0 {
        out.push_str(&format!("\x1b[{previous_lines}A"));
    }
    out.push_str("\r\x1b[J\x1b[?7l");
    out.push_str(view);
    out.push_str("\x1b[?7h");
    out
}

/// The last line of a watch.
pub fn outcome_line(
    target: &Target,
    revision: &str,
    outcome: Outcome,
    detail: &RolloutDetail,
    timeout: Option<Duration>,
) -> String {
    let rollout = &detail.summary;
    match outcome {
        Outcome::Promoted => format!("{target}: revision {revision} is stable"),
        Outcome::GivenUp if rollout.phase == "Failed" => {
            format!("{target}: failed: {}", or_none(rollout.message.as_deref()))
        }
        Outcome::GivenUp => format!(
            "{target}: revision {revision} was rolled back: {}",
            or_none(
                detail
                    .rollback_reason
                    .as_deref()
                    .or(rollout.message.as_deref())
            )
        ),
        Outcome::TimedOut => format!(
            "{target}: timed out{} waiting for revision {revision} (phase {}, step {})",
            timeout
                .map(|timeout| format!(" after {}", sluice_strategies::duration::format(timeout)))
                .unwrap_or_default(),
            rollout.phase,
            step_text(rollout.step, rollout.step_count)
        ),
    }
}

#[cfg(test)]
#[path = "render_tests.rs"]
mod tests;
