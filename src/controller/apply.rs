//! The thin patch writer: turns the core's `Desired` into Kubernetes writes, in an order that never
//! sends traffic where nothing is ready. Server-side apply with one field manager for the objects
//! sluice owns; targeted patches for the two objects it only borrows (the user's Service and
//! Deployment).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{ControllerRevision, Deployment};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};
use sluice_strategies::objects::{self, applied, managed_labels, nginx};
use sluice_strategies::plan::ReleasePlan;
use sluice_strategies::release::{
    CanaryRoute, HandBack, InvalidDecision, REVISION_ANNOTATION, SlotSpec, TemplateRecord, Write,
    slot_selector,
};
use sluice_strategies::status::Slot;

use super::observe::{canary_ingress_name, canary_service_name, slot_name, template_record_name};
use super::raw::RawDeployment;
use super::repairs::{self, InPlace, Repair};
use crate::crd::Rollout;
use crate::error::{Error, kube_err};

/// The one field manager of everything sluice applies.
pub const FIELD_MANAGER: &str = "sluice";

/// What the writer needs to know about the Rollout and the objects it reads.
pub struct Target<'a> {
    pub rollout: &'a Rollout,
    pub namespace: &'a str,
    pub plan: &'a ReleasePlan,
    pub deployment: &'a RawDeployment,
    pub service: Option<&'a Service>,
    pub ingress: Option<&'a Ingress>,
    /// This Rollout's canary objects as observed (those `Desired::remove` names are deleted).
    pub owned_ingresses: &'a [std::sync::Arc<Ingress>],
    pub owned_services: &'a [std::sync::Arc<Service>],
    /// The record `Desired::record` asks for is in the cache already.
    pub record_exists: bool,
    /// The records of `Desired::forget` that exist and are this Rollout's.
    pub forgettable: &'a [std::sync::Arc<super::raw::RawControllerRevision>],
    /// The objects sluice applies, as cached: an apply they already reflect is skipped.
    pub applied: Applied<'a>,
    /// Each object's state as last seen in place, to tell a repair from a step.
    pub in_place: &'a InPlace,
}

/// The cached objects of the names sluice applies for a Rollout.
#[derive(Default, Clone, Copy)]
pub struct Applied<'a> {
    pub blue: Option<&'a RawDeployment>,
    pub green: Option<&'a RawDeployment>,
    pub canary_service: Option<&'a Service>,
    pub canary_ingress: Option<&'a Ingress>,
}

/// Whether `cached` already is the stamped `body` (see [`applied`]): then the apply is skipped.
fn already_applied<K: serde::Serialize>(cached: Option<&K>, body: &Value) -> bool {
    let Some(current) = cached.and_then(|object| serde_json::to_value(object).ok()) else {
        return false;
    };
    let same = applied::already_applied(&current, body);
    if !same {
        tracing::debug!(cached = %current, body = %body, "applying: the cached object differs");
    }
    same
}

fn apply_params() -> PatchParams {
    PatchParams::apply(FIELD_MANAGER).force()
}

/// Patches to the objects sluice borrows carry its field manager too, so that `managedFields`
/// says who changed a selector or a replica count.
fn patch_params() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PatchParams::default()
    }
}

fn owner(rollout: &Rollout) -> Value {
    // A Rollout read from the API always has a name and uid; controller_owner_ref only misses them
    // for objects that were never stored.
    json!([rollout
        .controller_owner_ref(&())
        .map(|r| serde_json::to_value(r).unwrap_or(Value::Null))])
}

fn labels(rollout: &Rollout) -> Value {
    managed_labels(&rollout.name_any())
}

/// Carries out the core's writes in the order it gives them (`release::ordered_writes`): the
/// first to fail stops the rest, and the next reconcile starts again from what was read back.
/// Returns what the writes put back after a hand edit.
pub async fn write(
    client: &kube::Client,
    t: &Target<'_>,
    writes: &[Write],
) -> Result<Vec<Repair>, Error> {
    let mut repaired = Vec::new();
    for write in writes {
        let repair = match write {
            Write::Record(record) if !t.record_exists => {
                create_record(client, t, record).await?;
                None
            }
            Write::Record(_) => None,
            Write::Slot(slot) => apply_slot(client, t, slot).await?,
            Write::ServiceSelector(selector) => write_service(client, t, selector).await?,
            Write::CanaryService(slot) => apply_canary_service(client, t, *slot).await?,
            Write::CanaryRoute(route) => apply_canary_ingress(client, t, route).await?,
            Write::Remove(objects) => {
                for name in &objects.ingresses {
                    t.in_place.forget("Ingress", t.namespace, name);
                }
                for name in &objects.services {
                    t.in_place.forget("Service", t.namespace, name);
                }
                let (ingresses, services) = (t.owned_ingresses, t.owned_services);
                remove_owned(
                    client,
                    t.namespace,
                    ingresses,
                    &objects.ingresses,
                    "Ingress",
                )
                .await?;
                remove_owned(client, t.namespace, services, &objects.services, "Service").await?;
                None
            }
            Write::TargetReplicas(replicas) => {
                scale_target(client, t.namespace, t.deployment, *replicas).await?;
                None
            }
            Write::Forget(_) => {
                let names: Vec<String> = t.forgettable.iter().map(|r| r.name_any()).collect();
                remove_owned(
                    client,
                    t.namespace,
                    t.forgettable,
                    &names,
                    "ControllerRevision",
                )
                .await?;
                None
            }
        };
        repaired.extend(repair);
    }
    Ok(repaired)
}

/// Server-side applies `body` unless `cached` already is it; what that repaired, if anything.
async fn apply<K>(
    client: &kube::Client,
    t: &Target<'_>,
    kind: &'static str,
    name: &str,
    cached: Option<&K>,
    body: &Value,
) -> Result<Option<Repair>, Error>
where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::Serialize
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    // Remembered once the cache shows it in place, never on our own write: a cache that has not
    // seen the write yet would otherwise look like a hand edit.
    if already_applied(cached, body) {
        t.in_place
            .seen(kind, t.namespace, name, repairs::digest(body));
        return Ok(None);
    }
    let repair = repairs::of_apply(t.in_place, kind, t.namespace, name, cached, body);
    Api::<K>::namespaced(client.clone(), t.namespace)
        .patch(name, &apply_params(), &Patch::Apply(body))
        .await
        .map_err(kube_err("apply", kind, t.namespace, name))?;
    Ok(repair)
}

/// Keeps a revision's pod template, as the user wrote it, in a ControllerRevision the Rollout owns.
/// Its data is immutable, so it is created once; one already there is the same.
async fn create_record(
    client: &kube::Client,
    t: &Target<'_>,
    record: &TemplateRecord,
) -> Result<(), Error> {
    let name = template_record_name(&t.rollout.name_any(), &record.revision);
    let body: ControllerRevision = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": t.namespace, "labels": labels(t.rollout),
                     "annotations": {REVISION_ANNOTATION: record.revision},
                     "ownerReferences": owner(t.rollout)},
        "data": {"template": record.template},
        "revision": record.number,
    }))
    .map_err(|source| Error::Serialize {
        what: "ControllerRevision",
        source,
    })?;
    match Api::<ControllerRevision>::namespaced(client.clone(), t.namespace)
        .create(&PostParams::default(), &body)
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
        Err(e) => Err(kube_err("create", "ControllerRevision", t.namespace, &name)(e)),
    }
}

async fn apply_slot(
    client: &kube::Client,
    t: &Target<'_>,
    slot: &SlotSpec,
) -> Result<Option<Repair>, Error> {
    let name = slot_name(&t.plan.target, slot.slot);
    let user = t.deployment.spec.as_ref();
    let mut spec = json!({
        "replicas": slot.replicas,
        "selector": {"matchLabels": slot_selector(&super::observe::match_labels(t.deployment), slot.slot)},
        "template": slot.template,
    });
    if let Some(strategy) = user.and_then(|s| s.strategy.as_ref()) {
        spec["strategy"] = json!(strategy);
    }
    if let Some(seconds) = user.and_then(|s| s.min_ready_seconds) {
        spec["minReadySeconds"] = json!(seconds);
    }
    let mut slot_labels = labels(t.rollout);
    slot_labels["sluice.dev/slot"] = json!(slot.slot.as_str());
    let mut body = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": t.namespace,
            "labels": slot_labels,
            "annotations": {REVISION_ANNOTATION: slot.revision},
            "ownerReferences": owner(t.rollout),
        },
        "spec": spec,
    });
    applied::stamp(&mut body);
    let cached = match slot.slot {
        Slot::Blue => t.applied.blue,
        Slot::Green => t.applied.green,
    };
    apply::<RawDeployment>(client, t, "Deployment", &name, cached, &body).await
}

fn user_service_json(t: &Target<'_>) -> Option<Value> {
    t.service.and_then(|s| serde_json::to_value(s).ok())
}

/// The user's Service is borrowed: only its selector is written (created when it did not exist).
pub async fn write_service(
    client: &kube::Client,
    t: &Target<'_>,
    selector: &BTreeMap<String, String>,
) -> Result<Option<Repair>, Error> {
    let name = &t.plan.service.name;
    let state = serde_json::to_string(selector).unwrap_or_default();
    let mut repair = None;
    match t.service {
        Some(service) => {
            let current = service.spec.as_ref().and_then(|s| s.selector.as_ref());
            if current == Some(selector) {
                t.in_place.seen("Service", t.namespace, name, &state);
                return Ok(None);
            }
            // It selected what sluice wants now, and no longer does: someone changed it.
            if t.in_place.was("Service", t.namespace, name, &state) {
                repair = Some(Repair {
                    kind: "Service",
                    name: name.clone(),
                    what: "spec.selector was changed".into(),
                });
            }
            set_selector(client, t.namespace, name, selector).await?;
        }
        None => {
            // Created, not adopted: it goes with the Rollout, as nothing of that name was there.
            let body: Service = serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": t.namespace, "labels": labels(t.rollout),
                             "ownerReferences": owner(t.rollout)},
                "spec": {"selector": selector, "ports": objects::cluster_ip_ports(None, &t.plan.service)},
            }))
            .map_err(|source| Error::Serialize {
                what: "Service",
                source,
            })?;
            Api::<Service>::namespaced(client.clone(), t.namespace)
                .create(&PostParams::default(), &body)
                .await
                .map_err(kube_err("create", "Service", t.namespace, name))?;
        }
    }
    Ok(repair)
}

/// Replaces a Service's whole selector (a merge patch would keep keys the new selector lacks).
async fn set_selector(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    selector: &BTreeMap<String, String>,
) -> Result<(), Error> {
    let ops: json_patch::Patch =
        serde_json::from_value(json!([{"op": "add", "path": "/spec/selector", "value": selector}]))
            .map_err(|source| Error::Serialize {
                what: "selector patch",
                source,
            })?;
    Api::<Service>::namespaced(client.clone(), namespace)
        .patch(name, &patch_params(), &Patch::Json::<()>(ops))
        .await
        .map_err(kube_err("switch selector of", "Service", namespace, name))?;
    Ok(())
}

async fn apply_canary_service(
    client: &kube::Client,
    t: &Target<'_>,
    slot: Slot,
) -> Result<Option<Repair>, Error> {
    let name = canary_service_name(&t.plan.service.name);
    let mut body = json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": t.namespace, "labels": labels(t.rollout), "ownerReferences": owner(t.rollout)},
        "spec": objects::canary_service_spec(
            user_service_json(t).as_ref(),
            &t.plan.service,
            &slot_selector(&super::observe::match_labels(t.deployment), slot),
        ),
    });
    applied::stamp(&mut body);
    apply(client, t, "Service", &name, t.applied.canary_service, &body).await
}

async fn apply_canary_ingress(
    client: &kube::Client,
    t: &Target<'_>,
    route: &CanaryRoute,
) -> Result<Option<Repair>, Error> {
    let Some(ingress) = t.ingress else {
        return Ok(None);
    };
    let user = serde_json::to_value(ingress).map_err(|source| Error::Serialize {
        what: "Ingress",
        source,
    })?;
    let name = canary_ingress_name(&ingress.name_any(), &t.plan.service.name);
    let canary = nginx::canary_ingress(&user, &t.plan.service, route);
    let mut body = json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": name, "namespace": t.namespace, "labels": labels(t.rollout),
                     "annotations": canary.annotations, "ownerReferences": owner(t.rollout)},
        "spec": canary.spec,
    });
    applied::stamp(&mut body);
    apply(client, t, "Ingress", &name, t.applied.canary_ingress, &body).await
}

/// Sets `spec.replicas` of the user's Deployment, unless it has it already.
async fn scale_target(
    client: &kube::Client,
    namespace: &str,
    deployment: &RawDeployment,
    replicas: i32,
) -> Result<(), Error> {
    if deployment.spec.as_ref().and_then(|s| s.replicas) == Some(replicas) {
        return Ok(());
    }
    let name = deployment.name_any();
    Api::<Deployment>::namespaced(client.clone(), namespace)
        .patch(
            &name,
            &patch_params(),
            &Patch::Merge(json!({"spec": {"replicas": replicas}})),
        )
        .await
        .map_err(kube_err("scale", "Deployment", namespace, &name))?;
    Ok(())
}

/// What a hand-back step writes to.
pub struct HandBackTarget<'a> {
    pub namespace: &'a str,
    pub deployment: Option<&'a RawDeployment>,
    pub service: Option<&'a Service>,
    pub owned_ingresses: &'a [std::sync::Arc<Ingress>],
    pub owned_services: &'a [std::sync::Arc<Service>],
}

/// Writes one step of the hand-back, in its order: the target scales up, the Service selects it
/// again, then the canary objects go.
pub async fn hand_back(
    client: &kube::Client,
    t: &HandBackTarget<'_>,
    step: &HandBack,
) -> Result<(), Error> {
    if let (Some(deployment), Some(template)) = (t.deployment, &step.restore_template) {
        let name = deployment.name_any();
        let ops: json_patch::Patch = serde_json::from_value(
            json!([{"op": "replace", "path": "/spec/template", "value": template}]),
        )
        .map_err(|source| Error::Serialize {
            what: "template patch",
            source,
        })?;
        Api::<Deployment>::namespaced(client.clone(), t.namespace)
            .patch(&name, &patch_params(), &Patch::Json::<()>(ops))
            .await
            .map_err(kube_err(
                "restore the stable template of",
                "Deployment",
                t.namespace,
                &name,
            ))?;
    }
    if let (Some(deployment), Some(replicas)) = (t.deployment, step.target_replicas) {
        scale_target(client, t.namespace, deployment, replicas).await?;
    }
    if let (Some(service), Some(selector)) = (t.service, &step.service_selector) {
        let current = service.spec.as_ref().and_then(|s| s.selector.as_ref());
        if current != Some(selector) {
            set_selector(client, t.namespace, &service.name_any(), selector).await?;
        }
    }
    remove_owned(
        client,
        t.namespace,
        t.owned_ingresses,
        &step.remove.ingresses,
        "Ingress",
    )
    .await?;
    remove_owned(
        client,
        t.namespace,
        t.owned_services,
        &step.remove.services,
        "Service",
    )
    .await
}

/// What a fall-back to stable writes to.
pub struct FallBack<'a> {
    pub namespace: &'a str,
    pub service: Option<&'a Service>,
    pub owned_ingresses: &'a [std::sync::Arc<Ingress>],
}

/// Sends traffic back to stable for a Rollout whose spec cannot work: the canary Ingresses go,
/// `<svc>` selects the stable slot again.
pub async fn fall_back(
    client: &kube::Client,
    t: &FallBack<'_>,
    decision: &InvalidDecision,
) -> Result<(), Error> {
    remove_owned(
        client,
        t.namespace,
        t.owned_ingresses,
        &decision.remove.ingresses,
        "Ingress",
    )
    .await?;
    if let (Some(service), Some(selector)) = (t.service, &decision.service_selector) {
        set_selector(client, t.namespace, &service.name_any(), selector).await?;
    }
    Ok(())
}

/// Deletes those of `owned` named in `names`, each exactly as seen: the cache can be stale, and a
/// newer object of that name (a uid precondition fails: 409) or one already gone (404) is not
/// ours to delete.
async fn remove_owned<K>(
    client: &kube::Client,
    namespace: &str,
    owned: &[std::sync::Arc<K>],
    names: &[String],
    kind: &'static str,
) -> Result<(), Error>
where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let api = Api::<K>::namespaced(client.clone(), namespace);
    for object in owned.iter().filter(|o| names.contains(&o.name_any())) {
        let name = object.name_any();
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: object.uid(),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match api.delete(&name, &params).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => {}
            Err(e) => return Err(kube_err("delete", kind, namespace, &name)(e)),
        }
    }
    Ok(())
}
