//! Deployment rollouts through the real kube client, judged from the sandbox's history of
//! status writes: every status a client could have read respects maxSurge and maxUnavailable,
//! Recreate never mixes revisions, minReadySeconds holds availability back, and a paused
//! Deployment starts nothing new.

mod common;

use std::time::Duration;

use common::{eventually, sandbox};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use sluice_sandbox::Sandbox;

const NS: &str = "erp-system";

fn reporting(replicas: i64, strategy: Value, extra: Value) -> Deployment {
    let labels = json!({"app": "reporting"});
    let mut spec = json!({
        "replicas": replicas,
        "strategy": strategy,
        "selector": {"matchLabels": labels},
        "template": {
            "metadata": {"labels": labels, "annotations": {"sandbox.sluice.dev/ready-after": "150ms"}},
            "spec": {"containers": [{"name": "reporting", "image": "erp/reporting:1.0"}]},
        },
    });
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
        spec.extend(extra.clone());
    }
    serde_json::from_value(json!({"metadata": {"name": "reporting"}, "spec": spec}))
        .expect("a valid Deployment")
}

async fn start(deployment: Deployment) -> (Sandbox, Api<Deployment>) {
    let (sandbox, client) = sandbox().await;
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": NS}})).unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .expect("namespace created");
    let api: Api<Deployment> = Api::namespaced(client, NS);
    api.create(&PostParams::default(), &deployment)
        .await
        .expect("Deployment created");
    (sandbox, api)
}

/// The status fields of a Deployment object, absent counts as 0.
fn count(object: &Value, field: &str) -> i64 {
    object["status"][field].as_i64().unwrap_or(0)
}

async fn wait_complete(api: &Api<Deployment>, generation: i64) {
    eventually(
        Duration::from_secs(30),
        "the rollout to complete",
        || async {
            let d = api.get("reporting").await.ok()?;
            let status = d.status?;
            let replicas = d.spec?.replicas?;
            let done = status.observed_generation == Some(generation)
                && status.updated_replicas == Some(replicas)
                && status.replicas == Some(replicas)
                && status.available_replicas == Some(replicas);
            done.then_some(())
        },
    )
    .await;
}

async fn new_image(api: &Api<Deployment>, image: &str) {
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "reporting", "image": image}]}}}});
    api.patch(
        "reporting",
        &PatchParams::default(),
        &Patch::Strategic(&patch),
    )
    .await
    .expect("template changed");
}

/// Every version of the Deployment stored since `since`, oldest first.
fn versions(sandbox: &Sandbox, since: u64) -> Vec<Value> {
    sandbox
        .store()
        .history()
        .iter()
        .filter(|e| e.resource.1 == "deployments" && e.name == "reporting")
        .filter(|e| e.resource_version > since)
        .map(|e| (*e.object).clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_update_steps_within_max_surge_and_max_unavailable() {
    let strategy =
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}});
    let (sandbox, api) = start(reporting(3, strategy, json!({}))).await;
    wait_complete(&api, 1).await;
    let since = sandbox.store().resource_version();
    new_image(&api, "erp/reporting:1.1").await;
    wait_complete(&api, 2).await;

    let history = versions(&sandbox, since);
    let observed: Vec<&Value> = history
        .iter()
        .filter(|d| d["status"]["observedGeneration"] == 2)
        .collect();
    assert!(
        observed.iter().all(|d| count(d, "replicas") <= 4),
        "{history:#?}"
    );
    assert!(
        observed.iter().all(|d| count(d, "availableReplicas") >= 3),
        "{history:#?}"
    );
    // One surge pod at a time: updatedReplicas went 1, 2, 3 and never jumped.
    let mut updated: Vec<i64> = observed
        .iter()
        .map(|d| count(d, "updatedReplicas"))
        .collect();
    updated.dedup();
    assert_eq!(updated, [1, 2, 3], "{history:#?}");
    sandbox.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recreate_never_runs_two_revisions_and_min_ready_seconds_holds_availability() {
    let extra = json!({"minReadySeconds": 1});
    let (sandbox, api) = start(reporting(2, json!({"type": "Recreate"}), extra)).await;
    wait_complete(&api, 1).await;
    let since = sandbox.store().resource_version();
    new_image(&api, "erp/reporting:1.1").await;
    wait_complete(&api, 2).await;

    let history = versions(&sandbox, since);
    let mixed = |d: &&Value| {
        let updated = count(d, "updatedReplicas");
        updated > 0 && count(d, "replicas") > updated
    };
    assert!(!history.iter().any(|d| mixed(&d)), "{history:#?}");
    assert!(
        history
            .iter()
            .any(|d| count(d, "replicas") == 0 && d["status"]["observedGeneration"] == 2),
        "old pods are all gone before new ones start: {history:#?}"
    );
    // Ready pods count as available only a second later.
    assert!(
        history
            .iter()
            .any(|d| count(d, "readyReplicas") > count(d, "availableReplicas")),
        "{history:#?}"
    );
    sandbox.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_deployment_observes_its_generation_but_starts_no_new_pods() {
    let (sandbox, api) = start(reporting(2, json!({}), json!({}))).await;
    wait_complete(&api, 1).await;
    let pause = json!({"spec": {"paused": true}});
    api.patch("reporting", &PatchParams::default(), &Patch::Merge(&pause))
        .await
        .expect("paused");
    new_image(&api, "erp/reporting:1.1").await;
    let paused = eventually(Duration::from_secs(10), "the paused condition", || async {
        let d = serde_json::to_value(api.get("reporting").await.ok()?).ok()?;
        let progressing = d["status"]["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == "Progressing")?
            .clone();
        (d["status"]["observedGeneration"] == 3 && progressing["reason"] == "DeploymentPaused")
            .then_some((d, progressing))
    })
    .await;
    assert_eq!(paused.1["status"], "Unknown");
    assert_eq!(count(&paused.0, "updatedReplicas"), 0, "{:#}", paused.0);
    let images: Vec<String> = sandbox
        .workloads()
        .pods()
        .into_iter()
        .flat_map(|p| p.images)
        .collect();
    assert_eq!(images, ["erp/reporting:1.0", "erp/reporting:1.0"]);

    let resume = json!({"spec": {"paused": false}});
    api.patch("reporting", &PatchParams::default(), &Patch::Merge(&resume))
        .await
        .expect("resumed");
    wait_complete(&api, 4).await;
    sandbox.shutdown().await;
}
