//! Hand edits mid-release: someone changes the canary weight, deletes the canary Ingress or
//! Service, scales the candidate slot, or points the Service at the candidate. sluice puts each
//! back as the release requires, within 2 s of the edit (times from the sandbox's history), and
//! records an Event that names what it repaired.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use serde_json::{Value, json};

use crate::harness::{
    CANARY_INGRESS, CANARY_SERVICE, Env, NS, SERVICE, Setup, bounded, eventually, secs,
};
use crate::history::{WEIGHT, weight_of};

const V2: &str = "erp/reporting:1.1.0";
const REPAIR_LIMIT: Duration = Duration::from_secs(2);

fn resource_version(object: &impl kube::Resource) -> u64 {
    object
        .meta()
        .resource_version
        .as_deref()
        .and_then(|rv| rv.parse().ok())
        .expect("a numeric resourceVersion")
}

/// When the change at `rv` was made.
fn time_of(env: &Env, rv: u64) -> chrono::DateTime<chrono::Utc> {
    env.sandbox
        .store()
        .history()
        .iter()
        .find(|e| e.resource_version == rv)
        .map(|e| e.time)
        .unwrap_or_else(|| panic!("rv {rv} in the history"))
}

/// Waits until a change of `kind`/`name` after `edited` satisfies `repaired`; how long after the
/// edit that change was made.
async fn repaired_within(
    env: &Env,
    kind: &str,
    name: &str,
    edited: u64,
    repaired: impl Fn(&Value) -> bool,
) -> Duration {
    let rv = eventually(secs(10), &format!("{kind} {name} put back"), || async {
        env.history()
            .of(kind, name)
            .into_iter()
            .find(|(rv, object)| *rv > edited && repaired(object))
            .map(|(rv, _)| rv)
    })
    .await;
    let took = (time_of(env, rv) - time_of(env, edited))
        .to_std()
        .expect("the repair after the edit");
    println!("{kind} {name}: put back {took:?} after the edit");
    assert!(
        took <= REPAIR_LIMIT,
        "{kind} {name} put back {took:?} after the edit"
    );
    took
}

/// The deletion's resourceVersion: the history's last change of the object.
fn deleted_at(env: &Env, kind: &str, name: &str) -> u64 {
    env.history()
        .of(kind, name)
        .into_iter()
        .rev()
        .find(|(_, object)| object.is_null())
        .map(|(rv, _)| rv)
        .expect("the deletion in the history")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hand_edits_mid_release_are_put_back_at_once_and_told() {
    bounded(async {
        // A long first step, so that every edit happens while the release holds it.
        let overrides = json!({"spec": {"strategy": {"canary": {"stepInterval": "90s"}}}});
        let (env, _) = Env::taken_over(Setup::default(), overrides).await;
        env.set_image(V2).await;
        env.wait_canary_weight("20").await;
        let patch = PatchParams::default();

        // The canary weight, edited.
        let ingresses: Api<Ingress> = Api::namespaced(env.client.clone(), NS);
        let edit = json!({"metadata": {"annotations": {WEIGHT: "90"}}});
        let edited = ingresses
            .patch(CANARY_INGRESS, &patch, &Patch::Merge(edit))
            .await
            .expect("the weight edited");
        repaired_within(
            &env,
            "Ingress",
            CANARY_INGRESS,
            resource_version(&edited),
            |i| weight_of(i) == "20",
        )
        .await;

        // The canary Ingress, deleted.
        ingresses
            .delete(CANARY_INGRESS, &DeleteParams::default())
            .await
            .expect("the canary Ingress deleted");
        let deleted = deleted_at(&env, "Ingress", CANARY_INGRESS);
        repaired_within(&env, "Ingress", CANARY_INGRESS, deleted, |i| {
            weight_of(i) == "20"
        })
        .await;

        // The canary Service, deleted.
        let services: Api<Service> = Api::namespaced(env.client.clone(), NS);
        services
            .delete(CANARY_SERVICE, &DeleteParams::default())
            .await
            .expect("the canary Service deleted");
        let deleted = deleted_at(&env, "Service", CANARY_SERVICE);
        repaired_within(&env, "Service", CANARY_SERVICE, deleted, |s| !s.is_null()).await;

        // The candidate slot, scaled.
        let deployments: Api<Deployment> = Api::namespaced(env.client.clone(), NS);
        let candidate = "reporting-green";
        let replicas = deployments
            .get(candidate)
            .await
            .expect("the candidate slot")
            .spec
            .and_then(|s| s.replicas);
        let scaled = deployments
            .patch(
                candidate,
                &patch,
                &Patch::Merge(json!({"spec": {"replicas": 5}})),
            )
            .await
            .expect("the slot scaled");
        repaired_within(
            &env,
            "Deployment",
            candidate,
            resource_version(&scaled),
            |d| d.pointer("/spec/replicas").and_then(Value::as_i64) == replicas.map(i64::from),
        )
        .await;

        // The Service, pointed at the candidate.
        let edit = json!({"spec": {"selector": {"sluice.dev/slot": "green"}}});
        let pointed = services
            .patch(SERVICE, &patch, &Patch::Merge(edit))
            .await
            .expect("the selector edited");
        repaired_within(&env, "Service", SERVICE, resource_version(&pointed), |s| {
            s["spec"]["selector"]["sluice.dev/slot"] == "blue"
        })
        .await;

        // One Event each, naming what was put back.
        let notes = eventually(secs(10), "the five repairs told", || async {
            let notes = env.event_notes(Some("Repaired")).await;
            (notes.len() >= 5).then_some(notes)
        })
        .await;
        for said in [
            format!("Ingress {CANARY_INGRESS} metadata.annotations.{WEIGHT} was changed"),
            format!("Ingress {CANARY_INGRESS} was deleted"),
            format!("Service {CANARY_SERVICE} was deleted"),
            format!("Deployment {candidate} spec.replicas was changed"),
            format!("Service {SERVICE} spec.selector was changed"),
        ] {
            assert!(
                notes.iter().any(|n| n.starts_with(&said)),
                "an Event says {said:?}: {notes:#?}"
            );
        }
        assert_eq!(notes.len(), 5, "one Event a repair: {notes:#?}");
        env.finish().await;
    })
    .await;
}
