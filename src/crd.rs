//! The Rollout custom resource (`sluice.dev/v1alpha1`), derived from the core's spec and status
//! types so that the schema, the controller and the release machine can never disagree.

use kube::CustomResource;
use kube::CustomResourceExt;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
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
pub struct RolloutSpec(pub Spec);

/// The CRD as YAML, as `sluice crd` prints it.
pub fn crd_yaml() -> Result<String, serde_saphyr::ser::Error> {
    serde_saphyr::to_string(&Rollout::crd())
}
