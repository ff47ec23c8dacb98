//! Deployments as the API server stores them, with the pod template kept as JSON: k8s-openapi's
//! typed template drops every field its `v1_33` types do not know, so a slot would run without
//! them and the revision (a hash of the template) would change with the library, not with what
//! the user wrote.

use k8s_openapi::api::apps::v1::DeploymentStatus;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A Deployment, its template as JSON.
#[derive(kube::Resource, Clone, Debug, Deserialize, Serialize)]
#[resource(inherit = "k8s_openapi::api::apps::v1::Deployment")]
pub struct RawDeployment {
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: Option<RawDeploymentSpec>,
    #[serde(default)]
    pub status: Option<DeploymentStatus>,
}

/// The parts of a Deployment's spec sluice reads; the template and strategy as written.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RawDeploymentSpec {
    #[serde(default)]
    pub replicas: Option<i32>,
    #[serde(default)]
    pub selector: LabelSelector,
    #[serde(default)]
    pub template: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_ready_seconds: Option<i32>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::Deployment;
    use serde_json::json;

    #[test]
    fn fields_the_typed_structs_do_not_know_survive() {
        // A pod field newer than k8s-openapi's v1_33 types.
        let stored = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "reporting", "namespace": "erp-system", "generation": 2},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "reporting"}},
                     "template": {"metadata": {"labels": {"app": "reporting"}},
                                  "spec": {"containers": [{"name": "reporting", "image": "erp/reporting:1.0.0"}],
                                           "hostnameOverride": "reports"}}},
        });
        let raw: RawDeployment = serde_json::from_value(stored.clone()).expect("reads");
        let template = raw.spec.expect("a spec").template;
        assert_eq!(template["spec"]["hostnameOverride"], "reports");
        let typed: Deployment = serde_json::from_value(stored).expect("reads");
        let typed_template =
            serde_json::to_value(typed.spec.expect("a spec").template).expect("writes");
        assert!(
            typed_template["spec"].get("hostnameOverride").is_none(),
            "what the typed path loses (if this fails, k8s-openapi learnt the field: pick a newer one)"
        );
    }
}
