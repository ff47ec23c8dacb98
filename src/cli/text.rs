//! Small pieces of text every view shares: a step, a weight, a check, images, a time.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sluice_strategies::analysis::format_number;

use crate::api::types::Check;

/// What a view shows for a value it does not have.
pub const NONE: &str = "-";

/// `2/4`; just `2` when the number of steps is unknown (blue/green has none); `-` between releases.
pub fn step_text(step: Option<u32>, step_count: u32) -> String {
    match step {
        Some(step) if step_count > 0 => format!("{step}/{step_count}"),
        Some(step) => step.to_string(),
        None => NONE.to_string(),
    }
}

/// `50%`, or `-`.
pub fn weight_text(weight: Option<u8>) -> String {
    weight.map_or_else(|| NONE.to_string(), |weight| format!("{weight}%"))
}

/// A metric's value as a person reads it (`0.2`, `57.58`), or `-` without data.
pub fn value_text(value: Option<f64>) -> String {
    value.map_or_else(|| NONE.to_string(), format_number)
}

/// `error-rate 0.2 (bound <= 1%): pass`.
pub fn check_text(check: &Check) -> String {
    format!(
        "{} {} (bound {}): {}",
        check.metric,
        value_text(check.value),
        check.bound,
        check.verdict
    )
}

/// `error-rate 0.2 (bound <= 1%): pass, latency-p99 57 (bound <= 500ms): pass`.
pub fn checks_text(checks: &[Check]) -> String {
    checks.iter().map(check_text).collect::<Vec<_>>().join(", ")
}

/// `proxy=envoy:1.30, web=shop/web:1.2`, or `-`.
pub fn images_text(images: &BTreeMap<String, String>) -> String {
    if images.is_empty() {
        return NONE.to_string();
    }
    images
        .iter()
        .map(|(container, image)| format!("{container}={image}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The text, or `-`.
pub fn or_none(text: Option<&str>) -> &str {
    text.filter(|text| !text.is_empty()).unwrap_or(NONE)
}

/// `12:00:10` (UTC), for lines that follow each other within a release.
pub fn clock(time: DateTime<Utc>) -> String {
    time.format("%H:%M:%S").to_string()
}

/// `2026-12-01T12:00:10Z`.
pub fn timestamp(time: DateTime<Utc>) -> String {
    time.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_and_weights() {
        assert_eq!(step_text(Some(2), 4), "2/4");
        assert_eq!(step_text(Some(1), 0), "1");
        assert_eq!(step_text(None, 4), "-");
        assert_eq!(weight_text(Some(50)), "50%");
        assert_eq!(weight_text(None), "-");
    }

    #[test]
    fn checks_read_metric_value_bound_verdict() {
        let check = |metric: &str, value, bound: &str, verdict: &str| Check {
            metric: metric.to_string(),
            value,
            bound: bound.to_string(),
            verdict: verdict.to_string(),
            reason: None,
            time: None,
        };
        let checks = [
            check("error-rate", Some(0.2), "<= 1%", "pass"),
            check("latency-p99", Some(57.0), "<= 500ms", "pass"),
            check("saturation", None, "<= 80%", "inconclusive"),
        ];
        assert_eq!(
            checks_text(&checks),
            "error-rate 0.2 (bound <= 1%): pass, latency-p99 57 (bound <= 500ms): pass, \
             saturation - (bound <= 80%): inconclusive"
        );
    }
}
