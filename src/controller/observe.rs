//! Reads the world a Rollout's release depends on from the reflector caches (no GETs per
//! reconcile), in the core's terms.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::Ingress;
use kube::ResourceExt;
use kube::runtime::reflector::{ObjectRef, Store};
use serde_json::Value;
use sluice_strategies::release::{REVISION_ANNOTATION, SlotView, TargetView};
use sluice_strategies::status::Slot;

pub const CANARY_WEIGHT: &str = "nginx.ingress.kubernetes.io/canary-weight";

pub fn slot_name(target: &str, slot: Slot) -> String {
    format!("{target}-{slot}")
}

pub fn canary_service_name(service: &str) -> String {
    format!("{service}-canary")
}

pub fn canary_ingress_name(ingress: &str) -> String {
    format!("{ingress}-canary")
}

pub fn get<K>(store: &Store<K>, namespace: &str, name: &str) -> Option<std::sync::Arc<K>>
where
    K: kube::Resource<DynamicType = ()> + Clone + 'static,
{
    store.get(&ObjectRef::new(name).within(namespace))
}

pub fn match_labels(deployment: &Deployment) -> BTreeMap<String, String> {
    deployment
        .spec
        .as_ref()
        .and_then(|s| s.selector.match_labels.clone())
        .unwrap_or_default()
}

pub fn target_view(deployment: &Deployment) -> TargetView {
    let spec = deployment.spec.as_ref();
    TargetView {
        template: spec
            .and_then(|s| serde_json::to_value(&s.template).ok())
            .unwrap_or(Value::Null),
        replicas: spec.and_then(|s| s.replicas).unwrap_or(1),
        selector: match_labels(deployment),
    }
}

/// Ready pods of the Deployment's current template: the ready count only counts once the
/// Deployment controller has seen the latest spec and no pod of an older template is left.
pub fn ready_of_current(deployment: &Deployment) -> i32 {
    let replicas = deployment
        .spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(1);
    let Some(status) = deployment.status.as_ref() else {
        return 0;
    };
    let observed =
        status.observed_generation.unwrap_or(0) >= deployment.metadata.generation.unwrap_or(0);
    let updated = status.updated_replicas.unwrap_or(0);
    let total = status.replicas.unwrap_or(0);
    if !observed || updated < replicas || total > replicas {
        return 0;
    }
    status.ready_replicas.unwrap_or(0).min(updated)
}

pub fn slot_view(deployment: &Deployment) -> SlotView {
    SlotView {
        revision: deployment.annotations().get(REVISION_ANNOTATION).cloned(),
        template: deployment
            .spec
            .as_ref()
            .and_then(|s| serde_json::to_value(&s.template).ok())
            .unwrap_or(Value::Null),
        replicas: deployment
            .spec
            .as_ref()
            .and_then(|s| s.replicas)
            .unwrap_or(1),
        ready_replicas: ready_of_current(deployment),
    }
}

pub fn service_selector(service: &Service) -> BTreeMap<String, String> {
    service
        .spec
        .as_ref()
        .and_then(|s| s.selector.clone())
        .unwrap_or_default()
}

/// The weight the canary Ingress carries now; an Ingress without the annotation carries 0.
pub fn canary_weight(ingress: &Ingress) -> u8 {
    ingress
        .annotations()
        .get(CANARY_WEIGHT)
        .and_then(|w| w.parse().ok())
        .unwrap_or(0)
}
