//! One reconcile of one Rollout: observe, decide (in the core), record the status, then act.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};
use serde_json::json;
use sluice_strategies::plan::{ReleasePlan, StrategyPlan, ingress_rules_for_service};
use sluice_strategies::release::{self, Note, World};
use sluice_strategies::resolve;
use sluice_strategies::status::{RolloutStatus, Slot};
use tracing::Instrument;

use super::Context;
use super::apply::{self, Target};
use super::commands::{self, Pending};
use super::observe::{self, canary_ingress_name, get, slot_name};
use crate::crd::Rollout;
use crate::error::{Error, kube_err};

/// Holds the Rollout until traffic is handed back to the user's Deployment.
pub const FINALIZER: &str = "sluice.dev/hand-back";
const INVALID_RECHECK: Duration = Duration::from_secs(300);
/// How long a reconcile waits for the caches' first lists before it looks again later.
const CACHE_SYNC_WAIT: Duration = Duration::from_secs(10);

pub async fn reconcile(rollout: Arc<Rollout>, ctx: Arc<Context>) -> Result<Action, Error> {
    let namespace = rollout.namespace().unwrap_or_default();
    let name = rollout.name_any();
    let span = tracing::info_span!("reconcile", rollout = %format!("{namespace}/{name}"));
    async move {
        if namespace.is_empty() {
            return Err(Error::Unnamed { namespace, name });
        }
        // A controller that just started decides nothing from caches still being filled.
        if !ctx.caches_synced(CACHE_SYNC_WAIT).await {
            tracing::debug!("caches not synced yet");
            return Ok(Action::requeue(Duration::from_secs(1)));
        }
        if rollout.metadata.deletion_timestamp.is_some() {
            return hand_back(&ctx, &rollout, &namespace).await;
        }
        if !rollout.finalizers().iter().any(|f| f == FINALIZER) {
            add_finalizer(&ctx, &rollout, &namespace).await?;
            return Ok(Action::await_change());
        }
        release(&ctx, &rollout, &namespace).await
    }
    .instrument(span)
    .await
}

fn api(ctx: &Context, namespace: &str) -> Api<Rollout> {
    Api::namespaced(ctx.client.clone(), namespace)
}

async fn add_finalizer(ctx: &Context, rollout: &Rollout, namespace: &str) -> Result<(), Error> {
    let mut finalizers = rollout.finalizers().to_vec();
    finalizers.push(FINALIZER.into());
    set_finalizers(ctx, rollout, namespace, finalizers, "add finalizer to").await
}

/// Writes the finalizer list, guarded by the resourceVersion it was computed from.
async fn set_finalizers(
    ctx: &Context,
    rollout: &Rollout,
    namespace: &str,
    finalizers: Vec<String>,
    action: &'static str,
) -> Result<(), Error> {
    let patch = json!({"metadata": {"finalizers": finalizers, "resourceVersion": rollout.resource_version()}});
    api(ctx, namespace)
        .patch(
            &rollout.name_any(),
            &PatchParams::default(),
            &Patch::Merge(patch),
        )
        .await
        .map_err(kube_err(action, "Rollout", namespace, &rollout.name_any()))?;
    Ok(())
}

async fn publish(ctx: &Context, rollout: &Rollout, notes: &[Note]) {
    let reference = rollout.object_ref(&());
    for note in notes {
        let event = Event {
            type_: if note.warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: note.reason.into(),
            note: Some(note.message.chars().take(1000).collect()),
            action: note.reason.into(),
            secondary: None,
        };
        // An event that cannot be recorded must not stop a release.
        if let Err(err) = ctx.recorder.publish(&event, &reference).await {
            tracing::warn!(error = %err, reason = note.reason, "cannot record event");
        }
    }
}

/// Writes the status if it changed; the resourceVersion makes a stale view fail (and retry).
async fn write_status(
    ctx: &Context,
    rollout: &Rollout,
    namespace: &str,
    status: &RolloutStatus,
) -> Result<(), Error> {
    if rollout.status.as_ref() == Some(status) {
        return Ok(());
    }
    let mut updated = rollout.clone();
    updated.status = Some(status.clone());
    api(ctx, namespace)
        .replace_status(&rollout.name_any(), &PostParams::default(), &updated)
        .await
        .map_err(kube_err(
            "write status of",
            "Rollout",
            namespace,
            &rollout.name_any(),
        ))?;
    Ok(())
}

async fn invalid(
    ctx: &Context,
    rollout: &Rollout,
    namespace: &str,
    problems: &str,
) -> Result<Action, Error> {
    let status = rollout.status.clone().unwrap_or_default();
    let generation = rollout.metadata.generation.unwrap_or(0);
    let next = release::invalid_spec_status(&status, Utc::now(), generation, problems);
    if status.message != next.message {
        let note = Note {
            reason: "InvalidSpec",
            message: next.message.clone().unwrap_or_default(),
            warning: true,
        };
        publish(ctx, rollout, &[note]).await;
    }
    let mut unchanged_times = next.clone();
    // Only a new problem is a new status: re-checks must not rewrite it every time.
    if status.message == next.message && status.phase == next.phase {
        unchanged_times.conditions = status.conditions.clone();
    }
    write_status(ctx, rollout, namespace, &unchanged_times).await?;
    Ok(Action::requeue(INVALID_RECHECK))
}

/// What of the cluster a spec relies on and the core cannot check.
fn cluster_problems(
    ctx: &Context,
    rollout: &Rollout,
    plan: &ReleasePlan,
    namespace: &str,
) -> Vec<String> {
    let mut problems = claimed_elsewhere(ctx, rollout, plan, namespace);
    if get(&ctx.deployments, namespace, &plan.target).is_none() {
        problems.push(format!(
            "spec.targetRef: Deployment {namespace}/{} not found",
            plan.target
        ));
    }
    if let StrategyPlan::Canary(canary) = &plan.strategy {
        match get(&ctx.ingresses, namespace, &canary.ingress) {
            None => problems.push(format!(
                "spec.strategy.canary.ingressRef: Ingress {namespace}/{} not found",
                canary.ingress
            )),
            Some(ingress) => {
                let json = serde_json::to_value(&*ingress).unwrap_or_default();
                if ingress_rules_for_service(&json, &plan.service.name, plan.service.port)
                    .is_empty()
                {
                    problems.push(format!(
                        "spec.strategy.canary.ingressRef: Ingress {namespace}/{} has no rule for Service {} port {}",
                        canary.ingress, plan.service.name, plan.service.port
                    ));
                }
            }
        }
    }
    problems
}

/// Objects sluice would own for this Rollout that another owner controls. Writing them would take
/// them over: two Rollouts naming one Ingress (the ERP system's Ingress fronts both its gateway
/// and reporting) would take `<ingress>-canary` from each other on every reconcile, a write loop
/// that leaves each release's traffic to the other's weight.
fn claimed_elsewhere(
    ctx: &Context,
    rollout: &Rollout,
    plan: &ReleasePlan,
    namespace: &str,
) -> Vec<String> {
    fn meta<K: Resource>(object: Option<Arc<K>>) -> Option<ObjectMeta> {
        object.map(|o| o.meta().clone())
    }
    let uid = rollout.uid();
    let mut owned = Vec::new();
    for slot in [Slot::Blue, Slot::Green] {
        let name = slot_name(&plan.target, slot);
        let object = meta(get(&ctx.deployments, namespace, &name));
        owned.push(("spec.targetRef", "Deployment", name, object));
    }
    let name = observe::canary_service_name(&plan.service.name);
    let object = meta(get(&ctx.services, namespace, &name));
    owned.push(("spec.service", "Service", name, object));
    if let StrategyPlan::Canary(canary) = &plan.strategy {
        let name = canary_ingress_name(&canary.ingress);
        let object = meta(get(&ctx.ingresses, namespace, &name));
        owned.push(("spec.strategy.canary.ingressRef", "Ingress", name, object));
    }
    owned
        .into_iter()
        .filter_map(|(field, kind, name, object)| {
            let object = object?;
            let owner = controller(&object)?;
            (Some(&owner.uid) != uid.as_ref()).then(|| {
                format!(
                    "{field}: {kind} {namespace}/{name}, which sluice would own for this Rollout, belongs to {} {}; one Rollout per Deployment, Service and Ingress",
                    owner.kind, owner.name
                )
            })
        })
        .collect()
}

/// The controller owner reference of an object.
fn controller(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .as_ref()?
        .iter()
        .find(|r| r.controller == Some(true))
}

async fn release(ctx: &Context, rollout: &Rollout, namespace: &str) -> Result<Action, Error> {
    let plan = match resolve(&rollout.spec.0, &ctx.presets) {
        Ok(plan) => plan,
        Err(problems) => return invalid(ctx, rollout, namespace, &problems.to_string()).await,
    };
    let problems = cluster_problems(ctx, rollout, &plan, namespace);
    if !problems.is_empty() {
        return invalid(ctx, rollout, namespace, &problems.join("; ")).await;
    }
    let status = rollout.status.clone().unwrap_or_default();
    let mut command = None;
    match commands::pending(rollout, &status) {
        Pending::None => {}
        Pending::Unstamped(text) => {
            commands::stamp(&ctx.client, rollout, &text).await?;
            return Ok(Action::await_change());
        }
        Pending::Consumed(text) => commands::remove(&ctx.client, rollout, &text).await?,
        Pending::Unknown(text) => {
            let message = format!(
                "unknown command {text:?}; commands are promote, promote-full, abort, pause, resume, retry"
            );
            publish(
                ctx,
                rollout,
                &[Note {
                    reason: "UnknownCommand",
                    message,
                    warning: true,
                }],
            )
            .await;
            commands::remove(&ctx.client, rollout, &text).await?;
        }
        Pending::Ready(ready) => command = Some(ready),
    }

    // Checked just above: the target exists.
    let Some(target) = get(&ctx.deployments, namespace, &plan.target) else {
        return Ok(Action::requeue(INVALID_RECHECK));
    };
    let service = get(&ctx.services, namespace, &plan.service.name);
    let ingress = match &plan.strategy {
        StrategyPlan::Canary(canary) => get(&ctx.ingresses, namespace, &canary.ingress),
        StrategyPlan::BlueGreen(_) => None,
    };
    let canary_ingress = ingress.as_ref().and_then(|i| {
        get(
            &ctx.ingresses,
            namespace,
            &canary_ingress_name(&i.name_any()),
        )
    });
    let slot = |slot: Slot| get(&ctx.deployments, namespace, &slot_name(&plan.target, slot));
    let (blue, green) = (slot(Slot::Blue), slot(Slot::Green));
    let now = Utc::now();
    let mut world = World {
        now,
        generation: rollout.metadata.generation.unwrap_or(0),
        target: observe::target_view(&target),
        blue: blue.as_deref().map(observe::slot_view),
        green: green.as_deref().map(observe::slot_view),
        service_selector: service.as_deref().map(observe::service_selector),
        canary_weight: canary_ingress.as_deref().map(observe::canary_weight),
        command: command.clone(),
        check: None,
    };
    if release::analysis_due(&plan, &status, now) {
        let vars = release::template_vars(namespace, &plan, &status);
        world.check = Some(ctx.analyst.check(&plan.analysis, &vars).await);
    }
    let decision = release::reconcile(&plan, &status, &world);
    write_status(ctx, rollout, namespace, &decision.status).await?;
    if let Some(command) = &command {
        // Recorded in the status just now: the annotations can go.
        commands::remove(&ctx.client, rollout, command.verb.as_str()).await?;
    }
    let target_ref = Target {
        rollout,
        namespace,
        plan: &plan,
        deployment: &target,
        service: service.as_deref(),
        ingress: ingress.as_deref(),
        observed_slots: [
            world.blue.as_ref().map(|s| s.replicas),
            world.green.as_ref().map(|s| s.replicas),
        ],
    };
    apply::write(&ctx.client, &target_ref, &decision.desired).await?;
    publish(ctx, rollout, &decision.notes).await;
    Ok(Action::requeue(decision.requeue_after))
}

/// The Rollout is being deleted: the user's Deployment takes the traffic back first.
async fn hand_back(ctx: &Context, rollout: &Rollout, namespace: &str) -> Result<Action, Error> {
    if !rollout.finalizers().iter().any(|f| f == FINALIZER) {
        return Ok(Action::await_change());
    }
    let status = rollout.status.clone().unwrap_or_default();
    let spec = &rollout.spec.0;
    if let Some(target) = get(&ctx.deployments, namespace, &spec.target_ref.name) {
        let service = get(&ctx.services, namespace, &spec.service.name);
        let world = World {
            now: Utc::now(),
            generation: rollout.metadata.generation.unwrap_or(0),
            target: observe::target_view(&target),
            blue: None,
            green: None,
            service_selector: service.as_deref().map(observe::service_selector),
            canary_weight: None,
            command: None,
            check: None,
        };
        let step = release::hand_back(&status, &world, observe::ready_of_current(&target));
        tracing::info!(message = %step.message, "hand-back");
        let deployments: Api<k8s_openapi::api::apps::v1::Deployment> =
            Api::namespaced(ctx.client.clone(), namespace);
        if world.target.replicas != step.target_replicas {
            deployments
                .patch(
                    &target.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(json!({"spec": {"replicas": step.target_replicas}})),
                )
                .await
                .map_err(kube_err(
                    "scale back",
                    "Deployment",
                    namespace,
                    &target.name_any(),
                ))?;
        }
        if let (Some(selector), Some(_)) = (&step.service_selector, &service) {
            apply::set_selector(&ctx.client, namespace, &spec.service.name, selector).await?;
        }
        if !step.done {
            return Ok(Action::requeue(Duration::from_secs(1)));
        }
    }
    if let Some(ingress) = spec
        .strategy
        .canary
        .as_ref()
        .and_then(|c| c.ingress_ref.as_ref())
    {
        let name = canary_ingress_name(&ingress.name);
        // Only if it is this Rollout's: the canary Ingress of a shared Ingress can be another's.
        let ours = get(&ctx.ingresses, namespace, &name)
            .filter(|canary| controller(canary.meta()).map(|o| &o.uid) == rollout.uid().as_ref());
        if let Some(canary) = ours {
            let params = DeleteParams {
                preconditions: Some(Preconditions {
                    uid: canary.uid(),
                    resource_version: None,
                }),
                ..DeleteParams::default()
            };
            match Api::<Ingress>::namespaced(ctx.client.clone(), namespace)
                .delete(&name, &params)
                .await
            {
                Ok(_) | Err(kube::Error::Api(_)) => {}
                Err(err) => return Err(kube_err("delete", "Ingress", namespace, &name)(err)),
            }
        }
    }
    let finalizers: Vec<String> = rollout
        .finalizers()
        .iter()
        .filter(|f| *f != FINALIZER)
        .cloned()
        .collect();
    set_finalizers(ctx, rollout, namespace, finalizers, "remove finalizer from").await?;
    publish(
        ctx,
        rollout,
        &[Note {
            reason: "HandedBack",
            message: "traffic handed back to the target Deployment".into(),
            warning: false,
        }],
    )
    .await;
    Ok(Action::await_change())
}
