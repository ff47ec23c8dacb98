//! The user-facing Rollout spec (DESIGN.md section 3). Doc comments here become the CRD schema's
//! descriptions. Optional fields mean "take it from the preset, else the default", which is what
//! lets a spec name a preset and override only what it needs; [`crate::plan::resolve`] merges them.

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

use crate::duration::DURATION_PATTERN;

/// What a Rollout releases, where its traffic goes, and how its candidates are judged.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutSpec {
    /// The Deployment (apps/v1, same namespace) whose pod template is released. sluice keeps it at
    /// 0 replicas while it runs the slots `<name>-blue` and `<name>-green`.
    pub target_ref: TargetRef,
    /// The Service clients use; sluice points it at the stable slot.
    pub service: ServiceRef,
    /// How traffic moves to a candidate: a preset, and/or exactly one of canary or blueGreen.
    pub strategy: StrategySpec,
    /// How candidates are judged; unset fields come from the preset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<AnalysisSpec>,
    /// `auto` promotes after the last step passes; `manual` holds there until promoted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promotion: Option<Promotion>,
    /// How long a release may go without progress (e.g. the candidate not becoming ready) before
    /// it is rolled back, e.g. `10m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub progress_deadline: Option<String>,
}

/// The Deployment a Rollout releases.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TargetRef {
    /// The Deployment's name.
    pub name: String,
}

fn default_port() -> u16 {
    80
}

/// The Service clients use to reach the application.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceRef {
    /// The Service's name; sluice also creates `<name>-canary` for the candidate.
    pub name: String,
    /// The Service port the Ingress sends traffic to.
    #[serde(default = "default_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: u16,
    /// The container port (number or name) behind it; defaults to `port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_port: Option<IntOrString>,
}

/// A port given by number or by name, as Kubernetes' IntOrString. The schema cannot bound an
/// int-or-string, so any integer is read here and a number outside 1..=65535 is an InvalidSpec.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(untagged)]
pub enum IntOrString {
    /// A port number.
    Int(i64),
    /// A named container port.
    String(String),
}

impl JsonSchema for IntOrString {
    fn schema_name() -> Cow<'static, str> {
        "IntOrString".into()
    }

    fn inline_schema() -> bool {
        true
    }

    // The Kubernetes convention for int-or-string fields (as k8s-openapi writes it): an untagged
    // enum's anyOf would not be a structural schema, and the apiserver would refuse the CRD.
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A port number or a port name.",
            "x-kubernetes-int-or-string": true,
        })
    }
}

/// The strategy: a named preset, and/or exactly one of `canary` or `blueGreen` whose fields
/// override the preset's.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StrategySpec {
    /// A preset from sluice's `presets/` (e.g. `nginx-canary`); the fields given here override it.
    /// Defaults to `nginx-canary` for canary and `blue-green` for blueGreen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset: Option<String>,
    /// Move traffic in weighted steps through an NGINX canary Ingress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanarySpec>,
    /// Switch the Service selector from the stable slot to the candidate slot at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blue_green: Option<BlueGreenSpec>,
}

/// A traffic weight in percent.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, JsonSchema,
)]
#[serde(transparent)]
pub struct Weight(#[schemars(range(min = 1, max = 100))] pub u8);

/// Weighted canary through the NGINX ingress canary annotations.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanarySpec {
    /// The user's Ingress with a rule for the Service; sluice copies those rules into
    /// `<name>-canary` and never modifies this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress_ref: Option<IngressRef>,
    /// Traffic percent for each step, rising; full promotion follows the last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<Vec<Weight>>,
    /// The least time on each step, e.g. `1m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub step_interval: Option<String>,
    /// An A/B phase before the weighted steps: only requests with this header or cookie reach
    /// the candidate.
    #[serde(rename = "match", default, skip_serializing_if = "Option::is_none")]
    pub match_: Option<TrafficMatch>,
    /// How long the old slot stays warm after promotion, e.g. `30s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub scale_down_delay: Option<String>,
}

/// An Ingress in the Rollout's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IngressRef {
    /// The Ingress's name.
    pub name: String,
}

/// Which requests reach the candidate during the A/B phase (NGINX: header, then cookie).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrafficMatch {
    /// Requests with this header reach the candidate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<HeaderMatch>,
    /// Requests with this cookie set to `always` reach the candidate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cookie: Option<CookieMatch>,
}

/// A header match. Without value or pattern, the header's value `always` routes to the
/// candidate and `never` to stable.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HeaderMatch {
    /// The header's name, e.g. `x-canary`.
    pub name: String,
    /// The exact value that routes to the candidate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// A PCRE regular expression the value must match (instead of `value`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
}

/// A cookie match: the cookie's value `always` routes to the candidate, `never` to stable.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CookieMatch {
    /// The cookie's name.
    pub name: String,
}

/// Blue/green: the candidate is analysed on `<service>-canary`, then the Service selector
/// switches to it at once.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BlueGreenSpec {
    /// How long the candidate is analysed on the preview Service before the switch, e.g. `5m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub preview_duration: Option<String>,
    /// How long analysis goes on after the switch; a failure then switches back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub post_switch_duration: Option<String>,
    /// How long the old slot stays warm after the switch, e.g. `30s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub scale_down_delay: Option<String>,
}

// Every integer the schema lets through must fit its Rust type, or one Rollout's value would fail
// the decoding of the whole list the controller reads (formats like `uint32` bound nothing on a
// real API server).
const COUNT_MAX: u32 = u32::MAX;
/// The largest integer kube-apiserver stores (int64).
const REQUESTS_MAX: u64 = i64::MAX as u64;

/// How candidates are judged. Unset fields come from the preset.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisSpec {
    /// How often a check runs, and the window each query covers, e.g. `1m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub interval: Option<String>,
    /// Failed checks tolerated in a release; one more rolls it back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = COUNT_MAX))]
    pub failure_limit: Option<u32>,
    /// Inconclusive checks (no data, too little traffic) tolerated in a release; one more rolls it back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = COUNT_MAX))]
    pub inconclusive_limit: Option<u32>,
    /// Checks whose queries failed tolerated in a release; one more rolls it back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = COUNT_MAX))]
    pub error_limit: Option<u32>,
    /// Fewer candidate requests than this in a window makes a check inconclusive, not failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = REQUESTS_MAX))]
    pub min_requests: Option<u64>,
    /// The metrics each check queries; empty means the preset's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<MetricSpec>,
}

/// A metric: a preset one by name (e.g. `error-rate`, `latency-p99`), or a custom PromQL query.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricSpec {
    /// A preset metric's name, or a name for a custom query.
    #[schemars(length(min = 1))]
    pub name: String,
    /// A custom PromQL query returning one number for the candidate. Variables:
    /// `{{ namespace }}`, `{{ name }}`, `{{ ingress }}`, `{{ service }}`, `{{ canary_service }}`,
    /// `{{ stable_slot }}`, `{{ candidate_slot }}`, `{{ interval }}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// The check fails when the value is above this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// The check fails when the value is below this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
}

/// What happens after the last step passes.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Promotion {
    /// Promote on its own.
    #[default]
    Auto,
    /// Hold at the last step until an operator promotes.
    Manual,
}

/// The dotted paths of fields in `raw` that `typed` (the same document after a round trip through
/// a spec type) does not have: the fields serde ignored. Explicit nulls are not reported.
/// Kubernetes prunes unknown fields by schema, but a typo must not pass silently where it does
/// not (or in a preset file).
pub fn unknown_fields(
    raw: &serde_json::Value,
    typed: &serde_json::Value,
    path: &str,
) -> Vec<String> {
    use serde_json::Value;
    let mut found = Vec::new();
    match (raw, typed) {
        (Value::Object(raw), Value::Object(typed)) => {
            for (key, value) in raw {
                let child = format!("{path}.{key}");
                match typed.get(key) {
                    Some(t) => found.extend(unknown_fields(value, t, &child)),
                    None if !value.is_null() => found.push(child),
                    None => {}
                }
            }
        }
        (Value::Array(raw), Value::Array(typed)) => {
            for (i, (r, t)) in raw.iter().zip(typed).enumerate() {
                found.extend(unknown_fields(r, t, &format!("{path}[{i}]")));
            }
        }
        _ => {}
    }
    found
}

impl RolloutSpec {
    /// The fields of a raw spec (as read from the cluster) that this spec type does not know,
    /// e.g. `spec.strategy.canary.stepinterval`. Empty when it does not parse at all: its parse
    /// error says more.
    pub fn unknown_fields(raw: &serde_json::Value) -> Vec<String> {
        let typed =
            serde_json::from_value::<RolloutSpec>(raw.clone()).and_then(serde_json::to_value);
        match typed {
            Ok(typed) => unknown_fields(raw, &typed, "spec"),
            Err(_) => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_camel_case_and_defaults() {
        let spec: RolloutSpec = serde_json::from_value(json!({
            "targetRef": {"name": "shop"},
            "service": {"name": "shop", "targetPort": "http"},
            "strategy": {"canary": {"ingressRef": {"name": "web"}, "steps": [5, 50],
                                    "match": {"cookie": {"name": "beta"}}}},
            "promotion": "manual",
        }))
        .unwrap();
        assert_eq!(spec.service.port, 80);
        assert_eq!(
            spec.service.target_port,
            Some(IntOrString::String("http".into()))
        );
        let canary = spec.strategy.canary.as_ref().unwrap();
        assert_eq!(canary.steps, Some(vec![Weight(5), Weight(50)]));
        assert_eq!(
            canary
                .match_
                .as_ref()
                .unwrap()
                .cookie
                .as_ref()
                .unwrap()
                .name,
            "beta"
        );
        assert_eq!(spec.promotion, Some(Promotion::Manual));
        assert!(spec.analysis.is_none());
        let back = serde_json::to_value(&spec).unwrap();
        assert_eq!(
            back["strategy"]["canary"]["match"]["cookie"]["name"],
            "beta"
        );
        assert_eq!(back["service"]["targetPort"], "http");
    }

    #[test]
    fn finds_unknown_fields() {
        let raw = json!({
            "targetRef": {"name": "shop"},
            "service": {"name": "shop", "port": 80, "targetPort": 8080},
            "strategy": {"canary": {"stepinterval": "1m", "steps": [5]}, "preset": null},
            "analysis": {"metrics": [{"name": "x", "maxx": 1}]},
        });
        assert_eq!(
            RolloutSpec::unknown_fields(&raw),
            vec![
                "spec.analysis.metrics[0].maxx".to_string(),
                "spec.strategy.canary.stepinterval".to_string(),
            ]
        );
    }

    #[test]
    fn schema_carries_the_constraints() {
        let schema = serde_json::to_value(schemars::schema_for!(RolloutSpec)).unwrap();
        let text = schema.to_string();
        assert!(text.contains("x-kubernetes-int-or-string"), "{text}");
        assert!(
            text.contains(&serde_json::to_string(DURATION_PATTERN).unwrap()),
            "{text}"
        );
        let weight = &schema["$defs"]["Weight"];
        assert_eq!(weight["minimum"], 1, "{weight}");
        assert_eq!(weight["maximum"], 100, "{weight}");
        let canary = &schema["$defs"]["CanarySpec"]["properties"];
        assert!(canary.get("match").is_some(), "{canary}");
        assert!(
            canary["stepInterval"]["description"]
                .as_str()
                .unwrap()
                .contains("least time"),
            "{canary}"
        );
    }
}
