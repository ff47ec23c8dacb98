//! One reconcile of one Rollout: observe, decide (in the core), record the status, then act.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};
use serde_json::json;
use sluice_strategies::plan::{ClusterFacts, cluster_problems};
use sluice_strategies::release::{self, HandBackView, InvalidView, Note, PendingCommand, World};
use sluice_strategies::resolve;
use sluice_strategies::status::RolloutStatus;
use sluice_strategies::status::Slot;
use tracing::Instrument;

use super::Context;
use super::apply::{self, Target};
use super::commands;
use super::observe::{self, Observed, get};
use crate::crd::Rollout;
use crate::error::{Error, kube_err};

/// Holds the Rollout until traffic is handed back to the user's Deployment.
pub const FINALIZER: &str = "sluice.dev/hand-back";
const INVALID_RECHECK: Duration = Duration::from_secs(300);
/// How long a reconcile waits for the caches' first lists before it looks again later.
const CACHE_SYNC_WAIT: Duration = Duration::from_secs(10);
/// How soon to look again when the cache is behind our own last write to a Rollout.
const STALE_RETRY: Duration = Duration::from_millis(100);

pub async fn reconcile(rollout: Arc<Rollout>, ctx: Arc<Context>) -> Result<Action, Error> {
    // A follower decides nothing: the leader's new term reconciles every Rollout again.
    if !ctx.leadership.is_leading() {
        return Ok(Action::await_change());
    }
    let namespace = rollout.namespace().unwrap_or_default();
    let name = rollout.name_any();
    let span = tracing::info_span!("reconcile", rollout = %format!("{namespace}/{name}"));
    // The semaphore is never closed (acquire fails only on a closed one): no permit, no bound.
    let shared = ctx.clone();
    let _permit = shared.reconcile_permits.acquire().await.ok();
    let key = kube::runtime::reflector::ObjectRef::from_obj(&*rollout);
    let started = std::time::Instant::now();
    let metrics = ctx.metrics.clone();
    let _in_flight = metrics.reconcile_started();
    let outcome = async move {
        if namespace.is_empty() {
            return Err(Error::Unnamed { namespace, name });
        }
        // A controller that just started decides nothing from caches still being filled.
        if !ctx.caches_synced(CACHE_SYNC_WAIT).await {
            tracing::debug!("caches not synced yet");
            return Ok(Action::requeue(Duration::from_secs(1)));
        }
        let (uid, version) = (
            rollout.uid().unwrap_or_default(),
            rollout.resource_version(),
        );
        if ctx
            .own_writes
            .is_stale(&uid, version.as_deref().unwrap_or_default())
        {
            tracing::debug!("the cache has not seen our last write yet");
            return Ok(Action::requeue(STALE_RETRY));
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
    .await;
    metrics.observe_reconcile(started.elapsed());
    if outcome.is_ok() {
        shared.failures.succeeded(&key);
    }
    outcome
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
    record_write(ctx, rollout);
    Ok(())
}

/// Remembers that we wrote `rollout` as read: later reconciles wait for the cache to move past it.
fn record_write(ctx: &Context, rollout: &Rollout) {
    if let (Some(uid), Some(version)) = (rollout.uid(), rollout.resource_version()) {
        ctx.own_writes.wrote(&uid, &version);
    }
}

/// The Event's action: its reason and a digest of its message. The recorder folds Events of the
/// same reason and action into one series that keeps the first message: "step 2/2" would be
/// counted as a repeat of "step 1/2" and its message lost. The digest keeps each message its own
/// Event, and folds only true repeats.
fn event_action(note: &Note) -> String {
    let digest = crate::digest::sha256_hex(&note.message);
    format!("{}-{}", note.reason, &digest[..8])
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
            action: event_action(note),
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
) -> Result<Option<Rollout>, Error> {
    if rollout.status.as_ref() == Some(status) {
        return Ok(None);
    }
    let mut updated = rollout.clone();
    updated.status = Some(status.clone());
    let written = api(ctx, namespace)
        .replace_status(&rollout.name_any(), &PostParams::default(), &updated)
        .await
        .map_err(kube_err(
            "write status of",
            "Rollout",
            namespace,
            &rollout.name_any(),
        ))?;
    record_write(ctx, rollout);
    Ok(Some(written))
}

/// The spec cannot work: traffic back to stable first if a release is in flight (decided in the
/// core), then InvalidSpec in the status and an Event. `spec` is None when it cannot be read:
/// then only the canary objects the status records can be found.
async fn invalid(
    ctx: &Context,
    rollout: &Rollout,
    namespace: &str,
    problems: &str,
) -> Result<Action, Error> {
    let status = rollout.status.clone().unwrap_or_default();
    let names = rollout.spec.names();
    let spec = names.as_ref();
    let owned = observe::Owned::read(&observe::Caches::of(ctx), rollout, spec);
    let present = owned.present();
    let service = spec.and_then(|s| get(&ctx.services, namespace, &s.service));
    let service_selector = service.as_deref().map(observe::service_selector);
    let stable_slot = status.stable_slot.unwrap_or(Slot::Blue);
    let stable = spec.and_then(|spec| {
        let target = get(&ctx.deployments, namespace, &spec.target)?;
        let slot = get(
            &ctx.deployments,
            namespace,
            &observe::slot_name(&spec.target, stable_slot),
        )?;
        Some((
            release::slot_selector(&observe::match_labels(&target), stable_slot),
            observe::slot_view(&slot),
        ))
    });
    let decision = release::invalid_spec(
        &status,
        InvalidView {
            now: Utc::now(),
            generation: rollout.metadata.generation.unwrap_or(0),
            present: &present,
            service_selector: service_selector.as_ref(),
            stable: stable.as_ref().map(|(selector, slot)| (selector, slot)),
        },
        problems,
    );
    let mut notes = decision.notes.clone();
    if status.message != decision.status.message {
        notes.push(Note {
            reason: "InvalidSpec",
            message: decision.status.message.clone().unwrap_or_default(),
            warning: true,
        });
    }
    // The core keeps each condition's transition time while its status holds, so a re-check
    // with the same problems writes nothing.
    write_status(ctx, rollout, namespace, &decision.status).await?;
    // Announced once recorded, before the writes that may fail (see `release`).
    publish(ctx, rollout, &notes).await;
    let writes = apply::FallBack {
        namespace,
        service: service.as_deref(),
        owned_ingresses: &owned.ingresses,
    };
    apply::fall_back(&ctx.client, &writes, &decision).await?;
    ctx.metrics
        .observe_rollout(namespace, &rollout.name_any(), None, &decision.status);
    let heading_to_stable = !decision.remove.is_empty() || decision.service_selector.is_some();
    Ok(Action::requeue(if heading_to_stable {
        Duration::from_secs(1)
    } else {
        INVALID_RECHECK
    }))
}

async fn release(ctx: &Context, rollout: &Rollout, namespace: &str) -> Result<Action, Error> {
    let spec = match rollout.spec.readable() {
        Ok(spec) => spec,
        Err(reason) => {
            // The schema let through what the types cannot read: say so loudly, for this
            // Rollout only.
            tracing::error!(%reason, "the Rollout's spec cannot be read");
            let problem = format!("spec cannot be read: {reason}");
            return invalid(ctx, rollout, namespace, &problem).await;
        }
    };
    let plan = match resolve(spec, &ctx.presets) {
        Ok(plan) => plan,
        Err(problems) => {
            return invalid(ctx, rollout, namespace, &problems.to_string()).await;
        }
    };
    let seen = Observed::read(&observe::Caches::of(ctx), rollout, &plan);
    let ingress_json = seen
        .ingress
        .as_deref()
        .and_then(|i| serde_json::to_value(i).ok());
    let facts = ClusterFacts {
        namespace,
        target_exists: seen.target.is_some(),
        target_selects_by_expressions: seen
            .target
            .as_deref()
            .is_some_and(observe::selects_by_expressions),
        ingress: ingress_json.as_ref(),
        ingress_class: ctx.ingress_class.as_deref(),
        foreign_owners: seen.foreign_owners(rollout.uid().as_deref()),
    };
    let problems = cluster_problems(&plan, &facts);
    if !problems.is_empty() {
        return invalid(ctx, rollout, namespace, &problems.join("; ")).await;
    }
    let status = rollout.status.clone().unwrap_or_default();
    let mut command = None;
    match commands::pending(rollout, &status) {
        PendingCommand::None => {}
        PendingCommand::Unstamped(verb) => {
            commands::stamp(&ctx.client, rollout, verb).await?;
            return Ok(Action::await_change());
        }
        PendingCommand::Consumed(_) => {
            // Applied before: only the annotations were left. Deciding on now would write a
            // status with the resourceVersion this removal just replaced.
            commands::remove(&ctx.client, rollout).await?;
            record_write(ctx, rollout);
            return Ok(Action::await_change());
        }
        PendingCommand::Unknown(text) => {
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
            commands::remove(&ctx.client, rollout).await?;
        }
        PendingCommand::Ready(ready) => command = Some(ready),
    }

    let Some(target) = seen.target.clone() else {
        // cluster_problems reported a missing target above.
        return Ok(Action::requeue(INVALID_RECHECK));
    };
    let (service, ingress) = (seen.service.clone(), seen.ingress.clone());
    let now = Utc::now();
    let (canary_weight, canary_matching) = seen.canary_route(&plan);
    let mut world = World {
        now,
        generation: rollout.metadata.generation.unwrap_or(0),
        target: observe::target_view(&target),
        blue: seen.blue.as_deref().map(observe::slot_view),
        green: seen.green.as_deref().map(observe::slot_view),
        service_selector: service.as_deref().map(observe::service_selector),
        canary_weight,
        canary_matching,
        present: seen.owned.present(),
        stable_record: observe::template_record(
            &ctx.revisions,
            rollout,
            status.stable_revision.as_deref(),
        ),
        command: command.clone(),
        check: None,
    };
    if release::analysis_due(&plan, &status, now) {
        if let Some(due) = release::next_check_at(&plan, &status) {
            let late = (now - due).to_std().unwrap_or_default();
            ctx.metrics.observe_check_lateness(late);
        }
        let vars = release::template_vars(namespace, &plan, &status);
        world.check = Some(ctx.analyst.check(&plan.analysis, &vars).await);
    }
    let decision = release::reconcile(&plan, &status, &world);
    let written = write_status(ctx, rollout, namespace, &decision.status).await?;
    // The transitions are recorded now: their Events go out before the world writes, so that a
    // write failing after them loses none (the next reconcile decides from the new status and
    // would not announce them again).
    publish(ctx, rollout, &decision.notes).await;
    // Counted with the status, like the Events: a world write failing below loses none of it.
    let name = rollout.name_any();
    let metrics = &ctx.metrics;
    metrics.observe_rollout(namespace, &name, Some(&plan), &decision.status);
    let applied = command
        .as_ref()
        .filter(|c| status.last_command.as_deref() != Some(c.nonce.as_str()));
    let check = world.check.as_ref();
    let done = crate::metrics::Reconciled {
        check,
        command: applied,
        notes: &decision.notes,
        previous: &status,
        status: &decision.status,
        now,
    };
    metrics.count_reconcile(namespace, &name, done);
    if command.is_some() {
        // Recorded in the status just now: the annotations can go; a cache still showing the
        // status write with them is behind this write too.
        commands::remove(&ctx.client, rollout).await?;
        if let Some(written) = &written {
            record_write(ctx, written);
        }
    }
    let forgettable: Vec<Arc<super::raw::RawControllerRevision>> = decision
        .desired
        .forget
        .iter()
        .filter_map(|revision| {
            let name = observe::template_record_name(&rollout.name_any(), revision);
            get(&ctx.revisions, namespace, &name)
        })
        .filter(|r| observe::controller(r.meta()).map(|o| &o.uid) == rollout.uid().as_ref())
        .collect();
    let target_ref =
        Target {
            rollout,
            namespace,
            plan: &plan,
            deployment: &target,
            service: service.as_deref(),
            ingress: ingress.as_deref(),
            owned_ingresses: &seen.owned.ingresses,
            owned_services: &seen.owned.services,
            record_exists: decision.desired.record.as_ref().is_some_and(|r| {
                observe::has_template_record(&ctx.revisions, rollout, &r.revision)
            }),
            forgettable: &forgettable,
            applied: apply::Applied {
                blue: seen.blue.as_deref(),
                green: seen.green.as_deref(),
                canary_service: seen.canary_service.as_deref(),
                canary_ingress: seen.canary_ingress.as_deref(),
            },
            in_place: &ctx.in_place,
        };
    let writes = release::ordered_writes(&decision.desired, &world);
    let repaired = apply::write(&ctx.client, &target_ref, &writes).await?;
    if !repaired.is_empty() {
        for repair in &repaired {
            tracing::warn!(kind = repair.kind, name = %repair.name, what = %repair.what, "repaired a hand edit");
        }
        let notes: Vec<Note> = repaired.iter().map(|r| r.note()).collect();
        publish(ctx, rollout, &notes).await;
    }
    Ok(Action::requeue(sluice_strategies::waits::spread_long_wait(
        decision.requeue_after,
        super::jitter(),
    )))
}

/// The Rollout is being deleted: the user's Deployment takes the traffic back first.
async fn hand_back(ctx: &Context, rollout: &Rollout, namespace: &str) -> Result<Action, Error> {
    if !rollout.finalizers().iter().any(|f| f == FINALIZER) {
        return Ok(Action::await_change());
    }
    let status = rollout.status.clone().unwrap_or_default();
    let Some(names) = rollout.spec.names() else {
        // Without even the names of the target and the Service, handing back would be a guess;
        // letting go without one would leave the Service on slots about to be collected.
        let message = "cannot hand back: the spec names no readable targetRef.name and service.name; fix the spec, or remove the finalizer sluice.dev/hand-back to let the Rollout go as it is";
        tracing::error!(message);
        let note = Note {
            reason: "HandBackBlocked",
            message: message.into(),
            warning: true,
        };
        publish(ctx, rollout, &[note]).await;
        return Ok(Action::requeue(INVALID_RECHECK));
    };
    let target = get(&ctx.deployments, namespace, &names.target);
    let service = get(&ctx.services, namespace, &names.service);
    let owned = observe::Owned::read(&observe::Caches::of(ctx), rollout, Some(&names));
    let present = owned.present();
    let target_view = target.as_deref().map(observe::target_view);
    let stable_record =
        observe::template_record(&ctx.revisions, rollout, status.stable_revision.as_deref());
    let selector = service.as_deref().map(observe::service_selector);
    let step = release::hand_back(
        &status,
        HandBackView {
            target: target_view.as_ref(),
            target_ready: target.as_deref().map_or(0, observe::ready_of_current),
            service_selector: selector.as_ref(),
            present: &present,
            stable_record: stable_record.as_ref(),
        },
    );
    tracing::info!(message = %step.message, "hand-back");
    let writes = apply::HandBackTarget {
        namespace,
        deployment: target.as_deref(),
        service: service.as_deref(),
        owned_ingresses: &owned.ingresses,
        owned_services: &owned.services,
    };
    apply::hand_back(&ctx.client, &writes, &step).await?;
    if step.restore_template.is_some() {
        let note = Note {
            reason: "TemplateRestored",
            message: step.message.clone(),
            warning: false,
        };
        publish(ctx, rollout, &[note]).await;
    }
    if !step.done {
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    release_finalizer(ctx, rollout, namespace).await
}

/// The hand-back is done (or cannot be): the Rollout may go.
async fn release_finalizer(
    ctx: &Context,
    rollout: &Rollout,
    namespace: &str,
) -> Result<Action, Error> {
    let finalizers: Vec<String> = rollout
        .finalizers()
        .iter()
        .filter(|f| *f != FINALIZER)
        .cloned()
        .collect();
    set_finalizers(ctx, rollout, namespace, finalizers, "remove finalizer from").await?;
    if let Some(uid) = rollout.uid() {
        ctx.own_writes.forget(&uid);
    }
    ctx.metrics.forget_rollout(namespace, &rollout.name_any());
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
