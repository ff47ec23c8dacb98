//! Reads the world a Rollout's release depends on from the reflector caches (no GETs per
//! reconcile), in the core's terms.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::Ingress;
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use kube::{Resource, ResourceExt};
use serde_json::Value;
pub use sluice_strategies::names::{
    canary_ingress_name, canary_service_name, legacy_canary_ingress_name, slot_name,
    template_record_name,
};
use sluice_strategies::plan::{ForeignOwner, ReleasePlan, StrategyPlan};
use sluice_strategies::release::{
    self, CanaryRoute, REVISION_ANNOTATION, RolloutFacts, SlotView, TargetView,
};
use sluice_strategies::status::{CanaryObjects, Slot};

use super::cache::{Cache, Cacheable};
use super::index::Index;
use super::raw::{RawControllerRevision, RawDeployment};
use crate::crd::{Rollout, SpecNames};
use sluice_strategies::index::Kind;

use sluice_strategies::objects::nginx::route_of;

pub fn get<K: Cacheable>(cache: &Cache<K>, namespace: &str, name: &str) -> Option<Arc<K>> {
    cache.get(namespace, name)
}

/// Whether the Deployment's selector has `matchExpressions`, which no Service selector can express.
pub fn selects_by_expressions(deployment: &RawDeployment) -> bool {
    deployment
        .spec
        .as_ref()
        .and_then(|s| s.selector.match_expressions.as_ref())
        .is_some_and(|e| !e.is_empty())
}

pub fn match_labels(deployment: &RawDeployment) -> BTreeMap<String, String> {
    deployment
        .spec
        .as_ref()
        .and_then(|s| s.selector.match_labels.clone())
        .unwrap_or_default()
}

fn replicas(deployment: &RawDeployment) -> i32 {
    deployment
        .spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(1)
}

fn template(deployment: &RawDeployment) -> Value {
    deployment
        .spec
        .as_ref()
        .map(|s| s.template.value())
        .unwrap_or(Value::Null)
}

pub fn target_view(deployment: &RawDeployment) -> TargetView {
    TargetView {
        template: template(deployment),
        replicas: replicas(deployment),
        selector: match_labels(deployment),
    }
}

/// Ready (and available) pods of the Deployment's current template, as the core counts them.
pub fn ready_of_current(deployment: &RawDeployment) -> i32 {
    let Some(status) = deployment.status.as_ref() else {
        return 0;
    };
    release::ready_of_current(RolloutFacts {
        replicas: replicas(deployment),
        generation: deployment.metadata.generation.unwrap_or(0),
        observed_generation: status.observed_generation.unwrap_or(0),
        total: status.replicas.unwrap_or(0),
        updated: status.updated_replicas.unwrap_or(0),
        ready: status.ready_replicas.unwrap_or(0),
        available: status.available_replicas.unwrap_or(0),
    })
}

pub fn slot_view(deployment: &RawDeployment) -> SlotView {
    SlotView {
        revision: deployment.annotations().get(REVISION_ANNOTATION).cloned(),
        template: template(deployment),
        replicas: replicas(deployment),
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

/// The pod template recorded for `revision` of the Rollout, if its record is in the cache and the
/// Rollout's own.
pub fn template_record(
    revisions: &Cache<RawControllerRevision>,
    rollout: &Rollout,
    revision: Option<&str>,
) -> Option<Value> {
    let namespace = rollout.namespace()?;
    let name = template_record_name(&rollout.name_any(), revision?);
    let record = get(revisions, &namespace, &name)?;
    let ours = controller(record.meta()).map(|o| &o.uid) == rollout.uid().as_ref();
    ours.then(|| {
        record
            .data
            .as_ref()?
            .value()
            .get_mut("template")
            .map(Value::take)
    })
    .flatten()
}

/// Whether the Rollout's own record of `revision` is in the cache.
pub fn has_template_record(
    revisions: &Cache<RawControllerRevision>,
    rollout: &Rollout,
    revision: &str,
) -> bool {
    template_record(revisions, rollout, Some(revision)).is_some()
}

/// Everything one reconcile reads of a Rollout's objects, from the caches, once.
pub struct Observed {
    pub target: Option<Arc<RawDeployment>>,
    pub service: Option<Arc<Service>>,
    /// The user's Ingress (canary strategy).
    pub ingress: Option<Arc<Ingress>>,
    /// The canary Ingress the plan names, whoever owns it.
    pub canary_ingress: Option<Arc<Ingress>>,
    /// The canary Service the plan names, whoever owns it.
    pub canary_service: Option<Arc<Service>>,
    /// This Rollout's canary objects.
    pub owned: Owned,
    pub blue: Option<Arc<RawDeployment>>,
    pub green: Option<Arc<RawDeployment>>,
}

impl Observed {
    pub fn read(caches: &Caches<'_>, rollout: &Rollout, plan: &ReleasePlan) -> Observed {
        let Caches {
            deployments,
            services,
            ingresses,
            ..
        } = *caches;
        let namespace = rollout.namespace().unwrap_or_default();
        let namespace = namespace.as_str();
        let ingress_name = match &plan.strategy {
            StrategyPlan::Canary(canary) => Some(canary.ingress.as_str()),
            StrategyPlan::BlueGreen(_) => None,
        };
        let slot = |slot: Slot| get(deployments, namespace, &slot_name(&plan.target, slot));
        let canary_ingress_name =
            ingress_name.map(|name| canary_ingress_name(name, &plan.service.name));
        let canary_service_name = canary_service_name(&plan.service.name);
        Observed {
            target: get(deployments, namespace, &plan.target),
            service: get(services, namespace, &plan.service.name),
            ingress: ingress_name.and_then(|name| get(ingresses, namespace, name)),
            canary_ingress: canary_ingress_name
                .as_ref()
                .and_then(|name| get(ingresses, namespace, name)),
            canary_service: get(services, namespace, &canary_service_name),
            blue: slot(Slot::Blue),
            green: slot(Slot::Green),
            owned: Owned::read_named(
                caches,
                rollout,
                ingress_name,
                canary_ingress_name,
                Some(canary_service_name),
            ),
        }
    }

    /// The route the core reads back: the weight of the canary Ingress the plan names and
    /// whether it carries a header or cookie match; for blue/green, the highest weight of those
    /// left from a canary spec and whether any of them matches.
    pub fn canary_route(&self, plan: &ReleasePlan) -> (Option<u8>, bool) {
        let read: Vec<CanaryRoute> = match &plan.strategy {
            StrategyPlan::Canary(_) => self
                .canary_ingress
                .iter()
                .map(|i| route_of(i.annotations()))
                .collect(),
            StrategyPlan::BlueGreen(_) => self
                .owned
                .ingresses
                .iter()
                .map(|i| route_of(i.annotations()))
                .collect(),
        };
        let weight = read.iter().map(|r| r.weight).max();
        (weight, read.iter().any(|r| r.traffic_match.is_some()))
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

/// The controller owner reference of an object when that controller is a sluice Rollout.
pub fn rollout_controller(meta: &ObjectMeta) -> Option<&OwnerReference> {
    controller(meta).filter(|o| o.kind == "Rollout" && o.api_version.starts_with("sluice.dev/"))
}

/// The controller owner reference of an object.
pub fn controller(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .as_ref()?
        .iter()
        .find(|r| r.controller == Some(true))
}

/// A Rollout's canary Ingresses and Services: those of the names its status records or its spec
/// gives that exist and that it controls (see `CanaryObjects`).
pub struct Owned {
    pub ingresses: Vec<Arc<Ingress>>,
    pub services: Vec<Arc<Service>>,
}

impl Owned {
    /// The names the status records and those the spec gives, whether or not it resolves to a
    /// plan (None: it cannot be read).
    pub fn read(caches: &Caches<'_>, rollout: &Rollout, names: Option<&SpecNames>) -> Owned {
        let ingress = names.and_then(|n| {
            let ingress = n.ingress.as_ref()?;
            Some(canary_ingress_name(ingress, &n.service))
        });
        let service = names.map(|n| canary_service_name(&n.service));
        let user_ingress = names.and_then(|n| n.ingress.as_deref());
        Owned::read_named(caches, rollout, user_ingress, ingress, service)
    }

    fn read_named(
        caches: &Caches<'_>,
        rollout: &Rollout,
        user_ingress: Option<&str>,
        ingress: Option<String>,
        service: Option<String>,
    ) -> Owned {
        let namespace = rollout.namespace().unwrap_or_default();
        let uid = rollout.uid();
        let recorded = rollout
            .status
            .as_ref()
            .map(|s| s.canary_objects.clone())
            .unwrap_or_default();
        // A status from before the record may still have a canary Ingress of the older name.
        let legacy = recorded
            .is_empty()
            .then(|| user_ingress.map(legacy_canary_ingress_name))
            .flatten();
        let ingress_names = recorded.ingresses.into_iter().chain(ingress).chain(legacy);
        let service_names = recorded.services.into_iter().chain(service);
        Owned {
            ingresses: controlled(
                caches.ingresses,
                caches.index,
                Kind::Ingress,
                &namespace,
                ingress_names,
                uid.as_deref(),
            ),
            services: controlled(
                caches.services,
                caches.index,
                Kind::Service,
                &namespace,
                service_names,
                uid.as_deref(),
            ),
        }
    }

    /// Their names, for the core.
    pub fn present(&self) -> CanaryObjects {
        CanaryObjects {
            ingresses: self.ingresses.iter().map(|i| i.name_any()).collect(),
            services: self.services.iter().map(|s| s.name_any()).collect(),
        }
    }
}

/// The objects of these names (deduplicated) in the cache that the Rollout `uid` controls, and
/// those the index finds it controls (the record lost them: they are found by their owner
/// reference and our label).
fn controlled<K: Cacheable>(
    cache: &Cache<K>,
    index: &Index,
    kind: Kind,
    namespace: &str,
    names: impl Iterator<Item = String>,
    uid: Option<&str>,
) -> Vec<Arc<K>> {
    let controlled_here =
        |object: &K| uid.is_some() && controller(object.meta()).map(|o| o.uid.as_str()) == uid;
    let mut names: Vec<String> = names.collect();
    names.extend(uid.map(|uid| index.owned_by(uid, kind)).unwrap_or_default());
    names.sort();
    names.dedup();
    names
        .iter()
        .filter_map(|name| get(cache, namespace, name))
        .filter(|object| controlled_here(object))
        .collect()
}

/// The caches a reconcile reads, with the index that finds a Rollout's objects in them.
#[derive(Clone, Copy)]
pub struct Caches<'a> {
    pub deployments: &'a Cache<RawDeployment>,
    pub services: &'a Cache<Service>,
    pub ingresses: &'a Cache<Ingress>,
    pub index: &'a Index,
}

impl<'a> Caches<'a> {
    pub fn of(context: &'a super::Context) -> Caches<'a> {
        Caches {
            deployments: &context.deployments,
            services: &context.services,
            ingresses: &context.ingresses,
            index: &context.index,
        }
    }
}
