//! Verdicts of one analysis check, from what Prometheus answered. Pure: the controller queries,
//! this judges. An empty answer is never a failure (Flagger counts it as one, and Argo crashed on
//! it): no data means "don't know yet", and never passes a step either.

use chrono::{DateTime, Utc};

use crate::plan::{AnalysisPlan, MetricPlan};
use crate::status::{MetricResult, Verdict};

/// What Prometheus answered for one query.
#[derive(Debug, Clone, PartialEq)]
pub enum Reading {
    /// A number (may be NaN, which is judged as no data).
    Value(f64),
    /// An empty vector.
    NoData,
    /// The query failed or Prometheus was unreachable, with why.
    Failed(String),
}

/// The judgement of one metric in one check.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricJudgement {
    /// The metric's name.
    pub name: String,
    /// The value read, when there was one.
    pub value: Option<f64>,
    /// The unit of the value, from the plan.
    pub unit: String,
    /// The bound, e.g. `<= 1%`.
    pub bound: String,
    /// The verdict.
    pub verdict: Verdict,
    /// Why, for anything but a pass.
    pub reason: Option<String>,
}

/// The judgement of one check.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckOutcome {
    /// Fail if any metric failed, else error if any errored, else inconclusive if any was, else
    /// pass.
    pub verdict: Verdict,
    /// Candidate requests in the window, when the count was read.
    pub requests: Option<f64>,
    /// Why the whole check could not judge its metrics (too little traffic, the count failed).
    pub reason: Option<String>,
    /// One judgement per metric of the plan, in the plan's order.
    pub metrics: Vec<MetricJudgement>,
}

impl CheckOutcome {
    /// The per-metric results for the Rollout's status.
    pub fn results(&self, time: Option<DateTime<Utc>>) -> Vec<MetricResult> {
        self.metrics
            .iter()
            .map(|m| MetricResult {
                name: m.name.clone(),
                value: m.value,
                bound: m.bound.clone(),
                verdict: m.verdict,
                reason: m.reason.clone(),
                time,
            })
            .collect()
    }
}

/// A number as a person reads it: at most two decimals from 1 up, three significant digits below.
pub fn format_number(value: f64) -> String {
    if value.is_nan() {
        return "NaN".to_string();
    }
    if value.is_infinite() {
        return if value > 0.0 { "+Inf" } else { "-Inf" }.to_string();
    }
    let magnitude = value.abs();
    let decimals = if magnitude >= 1.0 || magnitude == 0.0 {
        2
    } else {
        // Three significant digits, capped so that tiny values stay short.
        (2 - magnitude.log10().floor() as i32).clamp(2, 12) as usize
    };
    let text = format!("{value:.decimals$}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" { "0" } else { text }.to_string()
}

/// A value with its unit: `0.3%`, `212ms`, `7 jobs`.
pub fn format_value(value: f64, unit: &str) -> String {
    let number = format_number(value);
    match unit {
        "percent" => format!("{number}%"),
        "ms" | "s" => format!("{number}{unit}"),
        "" => number,
        other => format!("{number} {other}"),
    }
}

/// The bound a metric is held to: `<= 1%`, `>= 99`, `>= 1 and <= 5`.
pub fn bound_text(metric: &MetricPlan) -> String {
    let unit = metric.unit.as_str();
    match (metric.min, metric.max) {
        (None, Some(max)) => format!("<= {}", format_value(max, unit)),
        (Some(min), None) => format!(">= {}", format_value(min, unit)),
        (Some(min), Some(max)) => {
            format!(
                ">= {} and <= {}",
                format_value(min, unit),
                format_value(max, unit)
            )
        }
        (None, None) => "no bound".to_string(),
    }
}

/// What the traffic gate decided before any metric is looked at.
enum Gate {
    Open,
    TooLittle(String),
    Failed(String),
}

fn traffic_gate(min_requests: u64, requests: &Reading) -> Gate {
    if min_requests == 0 {
        return Gate::Open;
    }
    match requests {
        Reading::Failed(why) => {
            Gate::Failed(format!("candidate request count query failed: {why}"))
        }
        Reading::Value(n) if n.is_nan() => Gate::TooLittle(format!(
            "no data for candidate requests (minRequests {min_requests})"
        )),
        Reading::Value(n) if n.is_infinite() => Gate::Failed(format!(
            "the candidate request count query answered {}, which is no count",
            format_number(*n)
        )),
        Reading::NoData => Gate::TooLittle(format!(
            "no data for candidate requests (minRequests {min_requests})"
        )),
        // The count is compared unrounded: increase() extrapolates, so 49.6 is not 50.
        Reading::Value(n) if *n < min_requests as f64 => Gate::TooLittle(format!(
            "{} candidate requests < minRequests {min_requests}",
            format_number(*n)
        )),
        Reading::Value(_) => Gate::Open,
    }
}

fn judge_metric(metric: &MetricPlan, reading: Option<&Reading>, gate: &Gate) -> MetricJudgement {
    let bound = bound_text(metric);
    let value = match reading {
        Some(Reading::Value(v)) if v.is_finite() => Some(*v),
        _ => None,
    };
    let (verdict, reason) = match (reading, gate) {
        (None, _) => (Verdict::Error, Some("not queried".to_string())),
        (Some(Reading::Failed(why)), _) => (Verdict::Error, Some(format!("query failed: {why}"))),
        (_, Gate::Failed(why)) => (Verdict::Error, Some(why.clone())),
        (_, Gate::TooLittle(why)) => (Verdict::Inconclusive, Some(why.clone())),
        (Some(Reading::NoData), _) => (Verdict::Inconclusive, Some("no data".to_string())),
        (Some(Reading::Value(v)), _) if v.is_nan() => {
            (Verdict::Inconclusive, Some("no data (NaN)".to_string()))
        }
        // Not a measurement but a query that divided by zero or overflowed: judged against a max
        // -Inf would pass, against a min +Inf would.
        (Some(Reading::Value(v)), _) if v.is_infinite() => (
            Verdict::Error,
            Some(format!(
                "the query answered {}, which is no measurement (a division by zero?)",
                format_number(*v)
            )),
        ),
        (Some(Reading::Value(v)), _) => {
            let unit = metric.unit.as_str();
            if let Some(max) = metric.max.filter(|max| *v > *max) {
                (
                    Verdict::Fail,
                    Some(format!(
                        "{} > {}",
                        format_value(*v, unit),
                        format_value(max, unit)
                    )),
                )
            } else if let Some(min) = metric.min.filter(|min| *v < *min) {
                (
                    Verdict::Fail,
                    Some(format!(
                        "{} < {}",
                        format_value(*v, unit),
                        format_value(min, unit)
                    )),
                )
            } else {
                (Verdict::Pass, None)
            }
        }
    };
    MetricJudgement {
        name: metric.name.clone(),
        value,
        unit: metric.unit.clone(),
        bound,
        verdict,
        reason,
    }
}

/// Judges one check: `requests` is the candidate request count over the window, `readings` the
/// answer for each metric by name. A metric of the plan without a reading is an error (the
/// controller did not query it); readings for metrics not in the plan are ignored.
pub fn judge_check(
    plan: &AnalysisPlan,
    requests: &Reading,
    readings: &[(String, Reading)],
) -> CheckOutcome {
    let gate = traffic_gate(plan.min_requests, requests);
    let metrics: Vec<MetricJudgement> = plan
        .metrics
        .iter()
        .map(|metric| {
            let reading = readings
                .iter()
                .find(|(name, _)| name == &metric.name)
                .map(|(_, r)| r);
            judge_metric(metric, reading, &gate)
        })
        .collect();
    let any = |v: Verdict| metrics.iter().any(|m| m.verdict == v);
    let verdict = if any(Verdict::Fail) {
        Verdict::Fail
    } else if any(Verdict::Error) || matches!(gate, Gate::Failed(_)) {
        Verdict::Error
    } else if any(Verdict::Inconclusive) || matches!(gate, Gate::TooLittle(_)) {
        Verdict::Inconclusive
    } else {
        Verdict::Pass
    };
    let requests = match requests {
        Reading::Value(n) if n.is_finite() => Some(*n),
        _ => None,
    };
    let reason = match gate {
        Gate::Open => None,
        Gate::TooLittle(why) | Gate::Failed(why) => Some(why),
    };
    CheckOutcome {
        verdict,
        requests,
        reason,
        metrics,
    }
}

/// A one-line summary of a check for a person, e.g.
/// `error-rate 0.3% <= 1%, latency-p99 212ms <= 500ms`.
pub fn one_line(outcome: &CheckOutcome) -> String {
    let gated = outcome.reason.as_ref().filter(|why| {
        outcome
            .metrics
            .iter()
            .all(|m| m.reason.as_ref() == Some(*why))
    });
    if let Some(why) = gated {
        return format!("{}: {why}", outcome.verdict);
    }
    let parts: Vec<String> = outcome
        .metrics
        .iter()
        .map(|m| match (m.verdict, m.value, &m.reason) {
            (Verdict::Pass, Some(v), _) => {
                format!("{} {} {}", m.name, format_value(v, &m.unit), m.bound)
            }
            (Verdict::Fail, _, Some(crossed)) => format!("{} {crossed} (fail)", m.name),
            (verdict, _, reason) => {
                let reason = reason.as_deref().unwrap_or("no reason");
                format!("{}: {reason} ({verdict})", m.name)
            }
        })
        .collect();
    if parts.is_empty() {
        return format!("{}: no metrics", outcome.verdict);
    }
    parts.join(", ")
}

#[cfg(test)]
#[path = "analysis_tests.rs"]
mod tests;
