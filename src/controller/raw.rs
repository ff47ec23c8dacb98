//! Deployments and ControllerRevisions as the API server stores them, with pod templates kept as
//! JSON: k8s-openapi's typed template drops every field its `v1_33` types do not know, so a slot
//! would run without them and the revision (a hash of the template) would change with the
//! library, not with what the user wrote. In the caches a template is its compact JSON text, read
//! when a reconcile needs it: as a `serde_json::Value` it takes about ten times its text (every
//! small map is a whole B-tree node), and there are three or four templates per Rollout.

use k8s_openapi::api::apps::v1::DeploymentStatus;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// A JSON value kept as its compact text.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JsonText(Box<str>);

impl JsonText {
    pub fn new(value: &Value) -> JsonText {
        JsonText(value.to_string().into_boxed_str())
    }

    /// The value again. The text was written from a value, so it always reads back; Null if it
    /// somehow did not.
    pub fn value(&self) -> Value {
        serde_json::from_str(&self.0).unwrap_or(Value::Null)
    }
}

impl<'de> Deserialize<'de> for JsonText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Value::deserialize(deserializer).map(|value| JsonText::new(&value))
    }
}

impl Serialize for JsonText {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.value().serialize(serializer)
    }
}

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
    pub template: JsonText,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_ready_seconds: Option<i32>,
}

/// A ControllerRevision (sluice's record of a revision's template), its data kept as JSON text.
#[derive(kube::Resource, Clone, Debug, Deserialize, Serialize)]
#[resource(inherit = "k8s_openapi::api::apps::v1::ControllerRevision")]
pub struct RawControllerRevision {
    pub metadata: ObjectMeta,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<JsonText>,
    #[serde(default)]
    pub revision: i64,
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
        let template = raw.spec.expect("a spec").template.value();
        assert_eq!(template["spec"]["hostnameOverride"], "reports");
        let typed: Deployment = serde_json::from_value(stored).expect("reads");
        let typed_template =
            serde_json::to_value(typed.spec.expect("a spec").template).expect("writes");
        assert!(
            typed_template["spec"].get("hostnameOverride").is_none(),
            "what the typed path loses (if this fails, k8s-openapi learnt the field: pick a newer one)"
        );
    }

    #[test]
    fn a_template_kept_as_text_reads_and_writes_back_the_same_json() {
        let template = json!({"metadata": {"labels": {"app": "reporting"}},
                              "spec": {"containers": [{"name": "r", "image": "erp/reporting:1.0.0",
                                                       "resources": {"limits": {"cpu": 0.5}}}]}});
        let text = JsonText::new(&template);
        assert_eq!(text.value(), template);
        let through_serde: JsonText = serde_json::from_value(template.clone()).expect("reads");
        assert_eq!(through_serde, text);
        assert_eq!(
            serde_json::to_value(&through_serde).expect("writes"),
            template
        );
        assert_eq!(JsonText::default().value(), Value::Null);
        let record: RawControllerRevision = serde_json::from_value(json!({
            "metadata": {"name": "reporting-abc"}, "revision": 3, "data": {"template": template},
        }))
        .expect("reads");
        assert_eq!(
            record.data.map(|d| d.value()["template"].clone()),
            Some(template)
        );
    }
}
