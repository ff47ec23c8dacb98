//! From a Rollout spec to a release plan: the preset merged with the spec's overrides, defaults
//! applied, and everything a spec can get wrong checked at once, so that one status message tells
//! the user all there is to fix. Checks that need the cluster (does the Deployment exist, does the
//! Ingress route to the Service) are the controller's; [`ingress_rules_for_service`] helps it.

mod cluster;
mod metrics;
mod strategy;

use std::time::Duration;

use crate::duration;
use crate::presets::{Presets, StrategyPreset};
use crate::spec::{BlueGreenSpec, CanarySpec, IntOrString, Promotion, RolloutSpec, TrafficMatch};

use metrics::analysis_plan;
use strategy::{blue_green_plan, canary_plan, check_names};

pub use crate::ingress::{IngressRuleRef, ingress_rules_for_service};
pub use cluster::{ClusterFacts, ForeignOwner, cluster_problems};

/// The preset a canary spec gets when it names none.
pub const DEFAULT_CANARY_PRESET: &str = "nginx-canary";
/// The preset a blueGreen spec gets when it names none.
pub const DEFAULT_BLUE_GREEN_PRESET: &str = "blue-green";

// Defaults for what neither the spec nor its preset sets.
const DEFAULT_STEP_INTERVAL: Duration = Duration::from_secs(60);
const DEFAULT_SCALE_DOWN_DELAY: Duration = Duration::from_secs(30);
const DEFAULT_PREVIEW: Duration = Duration::from_secs(300);
const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);
const DEFAULT_PROGRESS_DEADLINE: Duration = Duration::from_secs(600);
const DEFAULT_FAILURE_LIMIT: u32 = 2;
const DEFAULT_INCONCLUSIVE_LIMIT: u32 = 5;
const DEFAULT_ERROR_LIMIT: u32 = 3;

/// A spec that cannot work, with every problem found, each naming its field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", problems.join("; "))]
pub struct InvalidSpec {
    /// One entry per problem, e.g. `spec.strategy.canary.steps: weights must rise ...`.
    pub problems: Vec<String>,
}

/// Everything a release of this Rollout needs, resolved and validated.
#[derive(Debug, Clone, PartialEq)]
pub struct ReleasePlan {
    /// The target Deployment's name.
    pub target: String,
    /// The Service clients use.
    pub service: ServicePlan,
    /// How traffic moves.
    pub strategy: StrategyPlan,
    /// How candidates are judged.
    pub analysis: AnalysisPlan,
    /// What happens after the last step.
    pub promotion: Promotion,
    /// How long a release may go without progress.
    pub progress_deadline: Duration,
}

/// The Service clients use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePlan {
    /// Its name; the candidate's Service is `<name>-canary`.
    pub name: String,
    /// Its port.
    pub port: u16,
    /// The container port behind it; `None` means the same as `port`.
    pub target_port: Option<IntOrString>,
}

/// How traffic moves to a candidate.
#[derive(Debug, Clone, PartialEq)]
pub enum StrategyPlan {
    /// Weighted steps through an NGINX canary Ingress.
    Canary(CanaryPlan),
    /// A selector switch after a preview.
    BlueGreen(BlueGreenPlan),
}

/// A canary release.
#[derive(Debug, Clone, PartialEq)]
pub struct CanaryPlan {
    /// The user's Ingress.
    pub ingress: String,
    /// Weights in percent, rising strictly, each 1..=100.
    pub steps: Vec<u8>,
    /// The least time on each step.
    pub step_interval: Duration,
    /// The header/cookie phase before the weights, if any.
    pub traffic_match: Option<TrafficMatch>,
    /// How long the old slot stays warm after promotion.
    pub scale_down_delay: Duration,
}

/// A blue/green release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlueGreenPlan {
    /// Analysis on the preview Service before the switch.
    pub preview_duration: Duration,
    /// Analysis after the switch.
    pub post_switch_duration: Duration,
    /// How long the old slot stays warm after the switch.
    pub scale_down_delay: Duration,
}

/// How candidates are judged.
#[derive(Debug, Clone, PartialEq)]
pub struct AnalysisPlan {
    /// Between checks, and the window each query covers.
    pub interval: Duration,
    /// Failed checks tolerated; one more rolls back.
    pub failure_limit: u32,
    /// Inconclusive checks tolerated.
    pub inconclusive_limit: u32,
    /// Checks with failed queries tolerated.
    pub error_limit: u32,
    /// Fewer candidate requests in a window makes a check inconclusive; 0 disables the gate.
    pub min_requests: u64,
    /// The candidate request-count template.
    pub requests_query: String,
    /// The metrics each check queries.
    pub metrics: Vec<MetricPlan>,
}

/// One metric of a check.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricPlan {
    /// Its name.
    pub name: String,
    /// Its PromQL template, checked (see [`crate::promql::render`]).
    pub query: String,
    /// The unit of its value (`percent`, `ms`, or empty for a custom query).
    pub unit: String,
    /// The check fails above this.
    pub max: Option<f64>,
    /// The check fails below this.
    pub min: Option<f64>,
}

/// The longest duration a spec may give: time arithmetic on any shorter one cannot overflow.
const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// The problems found so far.
#[derive(Default)]
struct Problems(Vec<String>);

impl Problems {
    fn add(&mut self, field: &str, problem: impl std::fmt::Display) {
        self.0.push(format!("{field}: {problem}"));
    }

    fn duration(&mut self, field: &str, text: Option<&String>, default: Duration) -> Duration {
        match text.map(|t| duration::parse(t)) {
            None => default,
            Some(Ok(d)) if d > MAX_DURATION => {
                self.add(
                    field,
                    format!(
                        "{} is too long; at most 8760h (a year)",
                        text.map(String::as_str).unwrap_or_default()
                    ),
                );
                default
            }
            Some(Ok(d)) => d,
            Some(Err(e)) => {
                self.add(field, e);
                default
            }
        }
    }
}

/// Merges the spec with its preset, applies defaults, and checks everything that can be checked
/// without the cluster. All problems are reported together.
pub fn resolve(spec: &RolloutSpec, presets: &Presets) -> Result<ReleasePlan, InvalidSpec> {
    let mut p = Problems::default();
    check_names(spec, &mut p);

    let strategy = &spec.strategy;
    let preset = strategy.preset.as_ref().map(|name| {
        let found = presets.strategy(name);
        if found.is_none() {
            let known: Vec<&str> = presets.strategy_names().collect();
            let problem = format!("unknown preset {name:?}; presets: {}", known.join(", "));
            p.add("spec.strategy.preset", problem);
        }
        found
    });
    let canary = match (&strategy.canary, &strategy.blue_green, preset) {
        (Some(_), Some(_), _) => {
            p.add(
                "spec.strategy",
                "give exactly one of canary or blueGreen, not both",
            );
            None
        }
        (Some(_), None, _) => Some(true),
        (None, Some(_), _) => Some(false),
        (None, None, Some(Some(preset))) => Some(preset.is_canary()),
        (None, None, Some(None)) => None,
        (None, None, None) => {
            p.add(
                "spec.strategy",
                "give exactly one of canary or blueGreen (or a preset)",
            );
            None
        }
    };
    let preset: Option<&StrategyPreset> = match (preset, canary) {
        (Some(preset), _) => preset,
        (None, Some(true)) => presets.strategy(DEFAULT_CANARY_PRESET),
        (None, Some(false)) => presets.strategy(DEFAULT_BLUE_GREEN_PRESET),
        (None, None) => None,
    };
    if let (Some(preset), Some(canary)) = (preset, canary)
        && preset.is_canary() != canary
    {
        let (is, gives) = if canary {
            ("blueGreen", "canary")
        } else {
            ("canary", "blueGreen")
        };
        let problem = format!(
            "preset {:?} is a {is} strategy, but spec.strategy gives {gives}",
            preset.name
        );
        p.add("spec.strategy.preset", problem);
    }
    let empty_canary = CanarySpec::default();
    let empty_blue_green = BlueGreenSpec::default();
    let strategy_plan = match canary {
        Some(true) => {
            let from_preset = preset.and_then(|p| p.strategy.canary.as_ref());
            let own = strategy.canary.as_ref().unwrap_or(&empty_canary);
            canary_plan(own, from_preset.unwrap_or(&empty_canary), &mut p).map(StrategyPlan::Canary)
        }
        Some(false) => {
            let from_preset = preset.and_then(|p| p.strategy.blue_green.as_ref());
            let own = strategy.blue_green.as_ref().unwrap_or(&empty_blue_green);
            let plan = blue_green_plan(own, from_preset.unwrap_or(&empty_blue_green), &mut p);
            Some(StrategyPlan::BlueGreen(plan))
        }
        None => None,
    };
    let analysis = analysis_plan(spec, preset, canary, presets, &mut p);
    let promotion = spec
        .promotion
        .or(preset.and_then(|p| p.promotion))
        .unwrap_or_default();
    let deadline_text = spec
        .progress_deadline
        .as_ref()
        .or(preset.and_then(|p| p.progress_deadline.as_ref()));
    let progress_deadline = p.duration(
        "spec.progressDeadline",
        deadline_text,
        DEFAULT_PROGRESS_DEADLINE,
    );
    if progress_deadline.is_zero() {
        p.add("spec.progressDeadline", "must be above zero");
    }
    match strategy_plan {
        Some(strategy) if p.0.is_empty() => Ok(ReleasePlan {
            target: spec.target_ref.name.clone(),
            service: ServicePlan {
                name: spec.service.name.clone(),
                port: spec.service.port,
                target_port: spec.service.target_port.clone(),
            },
            strategy,
            analysis,
            promotion,
            progress_deadline,
        }),
        _ => Err(InvalidSpec { problems: p.0 }),
    }
}

#[cfg(test)]
mod tests;
