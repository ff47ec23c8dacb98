//! Tables as kubectl prints them: upper-case headers, columns aligned with spaces, no borders.

use super::text::{or_none, step_text, weight_text};
use crate::api::types::RolloutList;

/// Space between two columns.
const GAP: &str = "   ";

/// The rows with every column but the last padded to its widest cell, each line after `indent`.
pub fn aligned(rows: &[Vec<String>], indent: &str) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|column| {
            rows.iter()
                .filter_map(|row| row.get(column))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = indent.to_string();
        for (column, cell) in row.iter().enumerate() {
            if column > 0 {
                line.push_str(GAP);
            }
            line.push_str(cell);
            let padding = widths[column].saturating_sub(cell.chars().count());
            line.extend(std::iter::repeat_n(' ', padding));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `sluice get`: one line per Rollout under the headers.
pub fn rollout_table(list: &RolloutList) -> String {
    let header = [
        "NAMESPACE",
        "NAME",
        "STRATEGY",
        "PHASE",
        "STEP",
        "WEIGHT",
        "STABLE",
        "CANDIDATE",
        "MESSAGE",
    ];
    let mut rows = vec![header.map(String::from).to_vec()];
    for rollout in &list.items {
        let phase = if rollout.paused && rollout.phase != "Paused" {
            format!("{} (paused)", rollout.phase)
        } else {
            rollout.phase.clone()
        };
        rows.push(vec![
            rollout.namespace.clone(),
            rollout.name.clone(),
            or_none(rollout.strategy.as_deref()).to_string(),
            phase,
            step_text(rollout.step, rollout.step_count),
            weight_text(rollout.weight),
            or_none(rollout.stable_revision.as_deref()).to_string(),
            or_none(rollout.candidate_revision.as_deref()).to_string(),
            or_none(rollout.message.as_deref()).to_string(),
        ]);
    }
    aligned(&rows, "")
}

#[cfg(test)]
#[path = "table_tests.rs"]
mod tests;
