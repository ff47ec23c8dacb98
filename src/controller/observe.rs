//! Reads the world a Rollout's release depends on from the reflector caches (no GETs per
//! reconcile), in the core's terms.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::Ingress;
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};
use serde_json::Value;
pub use sluice_strategies::names::{canary_ingress_name, canary_service_name, slot_name};
use sluice_strategies::plan::{ForeignOwner, ReleasePlan, StrategyPlan};
use sluice_strategies::release::{REVISION_ANNOTATION, SlotView, TargetView};
use sluice_strategies::status::Slot;

use crate::crd::Rollout;

use sluice_strategies::objects::nginx::{CANARY_ANNOTATION, WEIGHT_ANNOTATION};

pub fn get<K>(store: &Store<K>, namespace: &str, name: &str) -> Option<std::sync::Arc<K>>
where
    K: kube::Resource<DynamicType = ()> + Clone + 'static,
{
    store.get(&ObjectRef::new(name).within(namespace))
}

/// Whether the Deployment's selector has `matchExpressions`, which no Service selector can express.
pub fn selects_by_expressions(deployment: &Deployment) -> bool {
    deployment
        .spec
        .as_ref()
        .and_then(|s| s.selector.match_expressions.as_ref())
        .is_some_and(|e| !e.is_empty())
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
        .get(WEIGHT_ANNOTATION)
        .and_then(|w| w.parse().ok())
        .unwrap_or(0)
}

/// Everything one reconcile reads of a Rollout's objects, from the caches, once.
pub struct Observed {
    pub target: Option<Arc<Deployment>>,
    pub service: Option<Arc<Service>>,
    /// The user's Ingress (canary strategy).
    pub ingress: Option<Arc<Ingress>>,
    pub canary_ingress: Option<Arc<Ingress>>,
    /// Canary Ingresses this Rollout wrote under a canary spec, now that it is blue/green.
    pub leftover_canaries: Vec<Arc<Ingress>>,
    pub canary_service: Option<Arc<Service>>,
    pub blue: Option<Arc<Deployment>>,
    pub green: Option<Arc<Deployment>>,
}

impl Observed {
    pub fn read(
        deployments: &Store<Deployment>,
        services: &Store<Service>,
        ingresses: &Store<Ingress>,
        rollout: &Rollout,
        plan: &ReleasePlan,
    ) -> Observed {
        let namespace = rollout.namespace().unwrap_or_default();
        let namespace = namespace.as_str();
        let ingress_name = match &plan.strategy {
            StrategyPlan::Canary(canary) => Some(canary.ingress.as_str()),
            StrategyPlan::BlueGreen(_) => None,
        };
        let slot = |slot: Slot| get(deployments, namespace, &slot_name(&plan.target, slot));
        Observed {
            target: get(deployments, namespace, &plan.target),
            service: get(services, namespace, &plan.service.name),
            ingress: ingress_name.and_then(|name| get(ingresses, namespace, name)),
            canary_ingress: ingress_name.and_then(|name| {
                get(
                    ingresses,
                    namespace,
                    &canary_ingress_name(name, &plan.service.name),
                )
            }),
            canary_service: get(
                services,
                namespace,
                &canary_service_name(&plan.service.name),
            ),
            blue: slot(Slot::Blue),
            green: slot(Slot::Green),
            leftover_canaries: leftover_canaries(ingresses, rollout, plan),
        }
    }

    /// The weight the core reads back: the canary Ingress's, or for blue/green the highest of
    /// those left from a canary spec.
    pub fn canary_weight(&self) -> Option<u8> {
        match &self.canary_ingress {
            Some(canary) => Some(canary_weight(canary)),
            None => self
                .leftover_canaries
                .iter()
                .map(|i| canary_weight(i))
                .max(),
        }
    }

    /// The objects sluice would own for this Rollout that another controller owns.
    pub fn foreign_owners(&self, rollout_uid: Option<&str>) -> Vec<ForeignOwner> {
        let candidates = [
            (
                "spec.targetRef",
                "Deployment",
                self.blue.as_ref().map(|o| o.meta().clone()),
            ),
            (
                "spec.targetRef",
                "Deployment",
                self.green.as_ref().map(|o| o.meta().clone()),
            ),
            (
                "spec.service",
                "Service",
                self.canary_service.as_ref().map(|o| o.meta().clone()),
            ),
            (
                "spec.strategy.canary.ingressRef",
                "Ingress",
                self.canary_ingress.as_ref().map(|o| o.meta().clone()),
            ),
        ];
        candidates
            .into_iter()
            .filter_map(|(field, kind, meta)| {
                let meta = meta?;
                let owner = controller(&meta)?;
                (Some(owner.uid.as_str()) != rollout_uid).then(|| ForeignOwner {
                    field,
                    kind,
                    name: meta.name.clone().unwrap_or_default(),
                    owner_kind: owner.kind.clone(),
                    owner_name: owner.name.clone(),
                })
            })
            .collect()
    }
}

/// The controller owner reference of an object.
pub fn controller(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .as_ref()?
        .iter()
        .find(|r| r.controller == Some(true))
}

/// Canary Ingresses a blue/green Rollout still owns from a canary spec. Only a Rollout whose status
/// still carries a canary weight can have one, so the others never scan the cache.
fn leftover_canaries(
    ingresses: &Store<Ingress>,
    rollout: &Rollout,
    plan: &ReleasePlan,
) -> Vec<Arc<Ingress>> {
    let was_canary = rollout
        .status
        .as_ref()
        .is_some_and(|s| s.canary_weight.is_some());
    if matches!(plan.strategy, StrategyPlan::Canary(_)) || !was_canary {
        return Vec::new();
    }
    let namespace = rollout.namespace();
    let uid = rollout.uid();
    ingresses
        .state()
        .into_iter()
        .filter(|i| i.namespace() == namespace)
        .filter(|i| controller(i.meta()).map(|o| Some(&o.uid)) == Some(uid.as_ref()))
        .filter(|i| i.annotations().get(CANARY_ANNOTATION).map(String::as_str) == Some("true"))
        .collect()
}
