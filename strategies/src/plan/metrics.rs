//! The analysis part of a spec: interval, limits, and each metric resolved to a template and
//! bounds.

use std::collections::BTreeSet;
use std::time::Duration;

use super::{
    AnalysisPlan, DEFAULT_ERROR_LIMIT, DEFAULT_FAILURE_LIMIT, DEFAULT_INCONCLUSIVE_LIMIT,
    DEFAULT_INTERVAL, MetricPlan, Problems,
};
use crate::duration;
use crate::presets::{Presets, StrategyPreset};
use crate::promql::{Var, template_variables};
use crate::spec::{MetricSpec, RolloutSpec};

pub(super) fn analysis_plan(
    spec: &RolloutSpec,
    preset: Option<&StrategyPreset>,
    canary: Option<bool>,
    presets: &Presets,
    p: &mut Problems,
) -> AnalysisPlan {
    let own = spec.analysis.clone().unwrap_or_default();
    let base = preset.and_then(|p| p.analysis.clone()).unwrap_or_default();
    let interval = p.duration(
        "spec.analysis.interval",
        own.interval.as_ref().or(base.interval.as_ref()),
        DEFAULT_INTERVAL,
    );
    if interval < Duration::from_secs(1) {
        let problem = format!("must be at least 1s, got {}", duration::format(interval));
        p.add("spec.analysis.interval", problem);
    }
    let metrics = if own.metrics.is_empty() {
        &base.metrics
    } else {
        &own.metrics
    };
    let mut seen = BTreeSet::new();
    let mut plans = Vec::new();
    for (i, metric) in metrics.iter().enumerate() {
        let field = format!("spec.analysis.metrics[{i}]");
        if !seen.insert(metric.name.as_str()) {
            p.add(&field, format!("metric {:?} is listed twice", metric.name));
        }
        if let Some(plan) = metric_plan(metric, &field, &base.metrics, canary, presets, p) {
            plans.push(plan);
        }
    }
    let counts = presets.request_counts();
    AnalysisPlan {
        interval,
        failure_limit: own
            .failure_limit
            .or(base.failure_limit)
            .unwrap_or(DEFAULT_FAILURE_LIMIT),
        inconclusive_limit: own
            .inconclusive_limit
            .or(base.inconclusive_limit)
            .unwrap_or(DEFAULT_INCONCLUSIVE_LIMIT),
        error_limit: own
            .error_limit
            .or(base.error_limit)
            .unwrap_or(DEFAULT_ERROR_LIMIT),
        min_requests: own.min_requests.or(base.min_requests).unwrap_or(0),
        requests_query: if canary == Some(false) {
            &counts.pods
        } else {
            &counts.ingress
        }
        .clone(),
        metrics: plans,
    }
}

fn metric_plan(
    metric: &MetricSpec,
    field: &str,
    preset_metrics: &[MetricSpec],
    canary: Option<bool>,
    presets: &Presets,
    p: &mut Problems,
) -> Option<MetricPlan> {
    let name = &metric.name;
    if name.trim().is_empty() {
        p.add(field, "give the metric a name");
        return None;
    }
    let template = presets.metric(name);
    let (query, unit) = match (&metric.query, template) {
        (Some(query), _) => (
            query.clone(),
            template.map(|t| t.unit.clone()).unwrap_or_default(),
        ),
        (None, Some(t)) => (t.query.clone(), t.unit.clone()),
        (None, None) => {
            // Offer only what works here: blue/green has no ingress traffic to measure.
            let usable = |n: &&str| {
                canary != Some(false) || presets.metric(n).is_some_and(|t| !t.needs_ingress)
            };
            let known: Vec<&str> = presets.metric_names().filter(usable).collect();
            let problem = format!(
                "unknown metric {name:?}: known preset metrics are {}, or give a query",
                known.join(", ")
            );
            p.add(field, problem);
            return None;
        }
    };
    match template_variables(&query) {
        Err(e) => p.add(&format!("{field}.query"), e),
        Ok(vars) if canary == Some(false) && vars.contains(&Var::Ingress) => {
            let problem = if metric.query.is_some() {
                format!("{name} uses {{{{ ingress }}}}, which blueGreen has none of")
            } else {
                format!(
                    "{name} measures ingress traffic, which blueGreen has none of; use app-{name} or a query"
                )
            };
            p.add(field, problem);
        }
        Ok(_) => {}
    }
    // Bounds the spec leaves out come from the preset's entry for the same metric.
    let (max, min) = match (metric.max, metric.min) {
        (None, None) if metric.query.is_none() => preset_metrics
            .iter()
            .find(|m| &m.name == name)
            .map(|m| (m.max, m.min))
            .unwrap_or((None, None)),
        bounds => bounds,
    };
    if max.is_none() && min.is_none() {
        p.add(field, format!("{name} needs a bound: give max or min"));
    }
    for (which, bound) in [("max", max), ("min", min)] {
        if bound.is_some_and(|b| !b.is_finite()) {
            p.add(&format!("{field}.{which}"), "must be a finite number");
        }
    }
    if let (Some(max), Some(min)) = (max, min)
        && min > max
    {
        p.add(
            field,
            format!("min {min} is above max {max}: no value could pass"),
        );
    }
    Some(MetricPlan {
        name: name.clone(),
        query,
        unit,
        max,
        min,
    })
}
