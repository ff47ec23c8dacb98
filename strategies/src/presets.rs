//! Named strategies and metric templates, as YAML files in `presets/` embedded into the binary.
//! They are parsed and validated together when loaded: a preset that names an unknown metric, has
//! a typo in a field, or does not resolve into a plan is an error at startup (and in the unit
//! tests), not in the middle of a release.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::promql::check_template;
use crate::spec::{
    AnalysisSpec, BlueGreenSpec, CanarySpec, IngressRef, Promotion, RolloutSpec, ServiceRef,
    StrategySpec, TargetRef, unknown_fields,
};

/// The strategy presets shipped with sluice: (file name, contents).
const STRATEGY_FILES: [(&str, &str); 2] = [
    (
        "nginx-canary.yaml",
        include_str!("../presets/nginx-canary.yaml"),
    ),
    (
        "blue-green.yaml",
        include_str!("../presets/blue-green.yaml"),
    ),
];
const METRICS_FILE: (&str, &str) = ("metrics.yaml", include_str!("../presets/metrics.yaml"));

/// A preset file that cannot be used, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PresetError {
    /// The YAML does not parse into a preset.
    #[error("preset file {file}: {message}")]
    Parse {
        /// The file's name.
        file: String,
        /// The parser's message.
        message: String,
    },
    /// The file has fields that no preset type has (typos).
    #[error("preset file {file}: unknown fields {}", fields.join(", "))]
    UnknownFields {
        /// The file's name.
        file: String,
        /// Dotted paths of the unknown fields.
        fields: Vec<String>,
    },
    /// The file parses but its content is wrong.
    #[error("preset file {file}: {problem}")]
    Invalid {
        /// The file's name.
        file: String,
        /// What is wrong.
        problem: String,
    },
}

/// A metric template from `metrics.yaml`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MetricTemplate {
    /// The name Rollouts use, e.g. `error-rate`.
    pub name: String,
    /// The unit of the query's value: `percent`, `ms`, ...
    pub unit: String,
    /// What the metric measures, for a person.
    pub description: String,
    /// Whether it measures traffic through the Ingress (canary only).
    pub needs_ingress: bool,
    /// The PromQL template (see [`crate::promql`]).
    pub query: String,
}

/// Candidate request-count templates, for `minRequests`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RequestCounts {
    /// Candidate requests through the Ingress (canary).
    pub ingress: String,
    /// Requests the candidate pods served (blue/green, where no ingress split exists).
    pub pods: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
struct MetricsFile {
    request_counts: RequestCounts,
    metrics: Vec<MetricTemplate>,
}

/// The strategy part of a preset: exactly one of canary or blueGreen.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PresetStrategy {
    /// Canary settings (without `ingressRef`, which only a Rollout can give).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanarySpec>,
    /// Blue/green settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blue_green: Option<BlueGreenSpec>,
}

/// A named strategy: the parts of a Rollout spec it provides.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StrategyPreset {
    /// The name Rollouts use in `strategy.preset`; also the file's name without `.yaml`.
    pub name: String,
    /// What the preset does, for a person.
    pub description: String,
    /// Canary or blue/green settings.
    pub strategy: PresetStrategy,
    /// Analysis settings and the metrics with their bounds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<AnalysisSpec>,
    /// `auto` or `manual`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promotion: Option<Promotion>,
    /// e.g. `10m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress_deadline: Option<String>,
}

impl StrategyPreset {
    /// Whether this is a canary preset (else blue/green).
    pub fn is_canary(&self) -> bool {
        self.strategy.canary.is_some()
    }
}

/// All strategy presets and metric templates, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct Presets {
    strategies: BTreeMap<String, StrategyPreset>,
    metrics: BTreeMap<String, MetricTemplate>,
    request_counts: RequestCounts,
}

/// Parses YAML into `T`, reporting fields that `T` does not have.
fn load<T: Serialize + for<'de> Deserialize<'de>>(
    file: &str,
    text: &str,
) -> Result<T, PresetError> {
    let parse_error = |message: String| PresetError::Parse {
        file: file.to_string(),
        message,
    };
    let raw: serde_json::Value =
        serde_saphyr::from_str(text).map_err(|e| parse_error(e.to_string()))?;
    let typed: T = serde_json::from_value(raw.clone()).map_err(|e| parse_error(e.to_string()))?;
    let round_trip = serde_json::to_value(&typed).map_err(|e| parse_error(e.to_string()))?;
    let fields = unknown_fields(&raw, &round_trip, "");
    if !fields.is_empty() {
        let fields = fields
            .into_iter()
            .map(|f| f.trim_start_matches('.').to_string());
        return Err(PresetError::UnknownFields {
            file: file.to_string(),
            fields: fields.collect(),
        });
    }
    Ok(typed)
}

impl Presets {
    /// The presets embedded in the binary. Call it once at startup and keep the result.
    pub fn embedded() -> Result<Presets, PresetError> {
        Presets::from_yaml(&STRATEGY_FILES, METRICS_FILE)
    }

    /// Presets from YAML texts: strategy files as (file name, text), and the metrics file.
    pub fn from_yaml(
        strategies: &[(&str, &str)],
        metrics: (&str, &str),
    ) -> Result<Presets, PresetError> {
        let (metrics_file, metrics_text) = metrics;
        let invalid = |file: &str, problem: String| PresetError::Invalid {
            file: file.to_string(),
            problem,
        };
        let parsed: MetricsFile = load(metrics_file, metrics_text)?;
        let mut presets = Presets {
            strategies: BTreeMap::new(),
            metrics: BTreeMap::new(),
            request_counts: parsed.request_counts,
        };
        for (which, template) in [
            ("requestCounts.ingress", &presets.request_counts.ingress),
            ("requestCounts.pods", &presets.request_counts.pods),
        ] {
            check_template(template).map_err(|e| invalid(metrics_file, format!("{which}: {e}")))?;
        }
        for metric in parsed.metrics {
            check_template(&metric.query)
                .map_err(|e| invalid(metrics_file, format!("metric {}: {e}", metric.name)))?;
            let name = metric.name.clone();
            if presets.metrics.insert(name.clone(), metric).is_some() {
                return Err(invalid(
                    metrics_file,
                    format!("metric {name} is defined twice"),
                ));
            }
        }
        for (file, text) in strategies {
            let preset: StrategyPreset = load(file, text)?;
            if file.strip_suffix(".yaml") != Some(preset.name.as_str()) {
                let problem = format!(
                    "its name {:?} must be the file's name without .yaml",
                    preset.name
                );
                return Err(invalid(file, problem));
            }
            let strategy = &preset.strategy;
            if strategy.canary.is_some() == strategy.blue_green.is_some() {
                let problem = "strategy: give exactly one of canary or blueGreen".to_string();
                return Err(invalid(file, problem));
            }
            if strategy
                .canary
                .as_ref()
                .is_some_and(|c| c.ingress_ref.is_some())
            {
                let problem =
                    "strategy.canary.ingressRef: only a Rollout can name its Ingress".to_string();
                return Err(invalid(file, problem));
            }
            let name = preset.name.clone();
            if presets.strategies.insert(name.clone(), preset).is_some() {
                return Err(invalid(file, format!("preset {name} is defined twice")));
            }
        }
        // Every preset must resolve into a plan for the smallest Rollout that uses it.
        for preset in presets.strategies.values() {
            let spec = minimal_spec(preset);
            crate::plan::resolve(&spec, &presets)
                .map_err(|e| invalid(&format!("{}.yaml", preset.name), e.to_string()))?;
        }
        Ok(presets)
    }

    /// The strategy preset with this name.
    pub fn strategy(&self, name: &str) -> Option<&StrategyPreset> {
        self.strategies.get(name)
    }

    /// The metric template with this name.
    pub fn metric(&self, name: &str) -> Option<&MetricTemplate> {
        self.metrics.get(name)
    }

    /// The names of all strategy presets, sorted.
    pub fn strategy_names(&self) -> impl Iterator<Item = &str> {
        self.strategies.keys().map(String::as_str)
    }

    /// The names of all metric templates, sorted.
    pub fn metric_names(&self) -> impl Iterator<Item = &str> {
        self.metrics.keys().map(String::as_str)
    }

    /// The candidate request-count templates.
    pub fn request_counts(&self) -> &RequestCounts {
        &self.request_counts
    }
}

/// The smallest Rollout spec that uses `preset`.
fn minimal_spec(preset: &StrategyPreset) -> RolloutSpec {
    let canary = preset.is_canary().then(|| CanarySpec {
        ingress_ref: Some(IngressRef {
            name: "ingress".into(),
        }),
        ..CanarySpec::default()
    });
    RolloutSpec {
        target_ref: TargetRef { name: "app".into() },
        service: ServiceRef {
            name: "app".into(),
            port: 80,
            target_port: None,
        },
        strategy: StrategySpec {
            preset: Some(preset.name.clone()),
            canary,
            blue_green: None,
        },
        analysis: None,
        promotion: None,
        progress_deadline: None,
    }
}

#[cfg(test)]
#[path = "presets_tests.rs"]
mod tests;
