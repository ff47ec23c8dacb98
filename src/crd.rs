//! The Rollout custom resource (`sluice.dev/v1alpha1`), derived from the core's spec and status
//! types so that the schema, the controller and the release machine can never disagree.
//!
//! The spec is read leniently: a stored spec the types cannot read (a value the schema let
//! through that they do not take) is kept as raw JSON with the reason, instead of failing the
//! decoding of the whole list every Rollout is watched through. The controller then reports that
//! one Rollout and carries on with the others.

use std::borrow::Cow;

use kube::CustomResource;
use kube::CustomResourceExt;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use sluice_strategies::spec::RolloutSpec as Spec;
use sluice_strategies::status::RolloutStatus;

/// A progressive release of one Deployment: canary steps through an NGINX canary Ingress, or a
/// blue/green switch of a Service, judged by Prometheus.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "sluice.dev",
    version = "v1alpha1",
    kind = "Rollout",
    namespaced,
    status = "RolloutStatus",
    shortname = "ro",
    category = "sluice",
    printcolumn = r#"{"name": "Phase", "type": "string", "jsonPath": ".status.phase"}"#,
    printcolumn = r#"{"name": "Weight", "type": "integer", "jsonPath": ".status.canaryWeight"}"#,
    printcolumn = r#"{"name": "Step", "type": "integer", "jsonPath": ".status.step"}"#,
    printcolumn = r#"{"name": "Stable", "type": "string", "jsonPath": ".status.stableRevision"}"#,
    printcolumn = r#"{"name": "Candidate", "type": "string", "jsonPath": ".status.candidateRevision"}"#,
    printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}"#
)]
#[serde(transparent)]
pub struct RolloutSpec(pub StoredSpec);

/// A Rollout's spec as stored: readable by the core's types, or not.
#[derive(Clone, Debug, PartialEq)]
pub enum StoredSpec {
    Readable(Box<Spec>),
    Unreadable {
        /// The spec as stored, written back unchanged.
        raw: Value,
        /// Why the types cannot read it, e.g. `invalid value: integer 70000 ...`.
        reason: String,
    },
}

impl RolloutSpec {
    /// The spec, or why it cannot be read.
    pub fn readable(&self) -> Result<&Spec, &str> {
        match &self.0 {
            StoredSpec::Readable(spec) => Ok(spec),
            StoredSpec::Unreadable { reason, .. } => Err(reason),
        }
    }
}

/// The names of the objects a spec refers to, readable even from a spec the types cannot read,
/// so that a hand-back never needs more than these.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpecNames {
    pub target: String,
    pub service: String,
    /// The canary strategy's Ingress.
    pub ingress: Option<String>,
}

impl RolloutSpec {
    /// The names the spec gives; None when even they cannot be read.
    pub fn names(&self) -> Option<SpecNames> {
        match &self.0 {
            StoredSpec::Readable(spec) => Some(SpecNames {
                target: spec.target_ref.name.clone(),
                service: spec.service.name.clone(),
                ingress: spec
                    .strategy
                    .canary
                    .as_ref()
                    .and_then(|c| c.ingress_ref.as_ref())
                    .map(|i| i.name.clone()),
            }),
            StoredSpec::Unreadable { raw, .. } => {
                let text = |pointer: &str| raw.pointer(pointer)?.as_str().map(str::to_string);
                Some(SpecNames {
                    target: text("/targetRef/name")?,
                    service: text("/service/name")?,
                    ingress: text("/strategy/canary/ingressRef/name"),
                })
            }
        }
    }
}

impl From<Spec> for RolloutSpec {
    fn from(spec: Spec) -> Self {
        RolloutSpec(StoredSpec::Readable(Box::new(spec)))
    }
}

impl Serialize for StoredSpec {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            StoredSpec::Readable(spec) => spec.serialize(serializer),
            StoredSpec::Unreadable { raw, .. } => raw.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for StoredSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = Value::deserialize(deserializer)?;
        Ok(match serde_json::from_value::<Spec>(raw.clone()) {
            Ok(spec) => StoredSpec::Readable(Box::new(spec)),
            Err(error) => StoredSpec::Unreadable {
                raw,
                reason: error.to_string(),
            },
        })
    }
}

impl JsonSchema for StoredSpec {
    fn schema_name() -> Cow<'static, str> {
        Spec::schema_name()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        Spec::json_schema(generator)
    }
}

/// The CRD as YAML, as `sluice crd` prints it.
pub fn crd_yaml() -> Result<String, serde_saphyr::ser::Error> {
    serde_saphyr::to_string(&Rollout::crd())
}

#[cfg(test)]
mod tests;
