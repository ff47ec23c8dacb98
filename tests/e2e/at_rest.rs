//! A Rollout at rest costs the API server nothing: after a release, and after a restart of the
//! controller (whose every cache is new), reconciles woken by the Rollout, its Service and its
//! Ingress write nothing, because every object sluice applies already holds what it would apply.

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use sluice::crd::Rollout;
use sluice::metrics::WRITE_VERBS;

use crate::harness::{APP, Env, INGRESS, NS, SERVICE, Setup, bounded, promoted, secs};

/// The controller's requests so far: (writes by verb and resource, reconciles).
async fn requests(env: &Env) -> (Vec<String>, f64) {
    let probes = env.probes.expect("the controller serves /metrics");
    let text = reqwest::get(format!("http://{probes}/metrics"))
        .await
        .expect("/metrics answers")
        .text()
        .await
        .expect("a body");
    let mut writes = Vec::new();
    let mut reconciles = 0.0;
    for line in text.lines() {
        if let Some(count) = line.strip_prefix("sluice_reconcile_duration_seconds_count ") {
            reconciles = count.parse().unwrap_or(0.0);
        }
        let Some(series) = line.strip_prefix("sluice_kubernetes_requests_total{") else {
            continue;
        };
        let written = WRITE_VERBS
            .iter()
            .any(|verb| series.starts_with(&format!("verb=\"{verb}\"")));
        if written && !series.ends_with(" 0") {
            writes.push(series.to_string());
        }
    }
    (writes, reconciles)
}

/// A merge patch of an annotation nobody reads: a change that wakes the Rollout and asks nothing.
async fn poke<K>(api: &Api<K>, name: &str, n: u32)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let patch = json!({"metadata": {"annotations": {"test.sluice.dev/poke": n.to_string()}}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .expect("the poke is written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_at_rest_makes_no_writes_even_after_a_restart() {
    bounded(async {
        let (mut env, _) = Env::taken_over(Setup::default(), json!({})).await;
        env.set_image(crate::V2).await;
        let v2 = env.target_revision().await;
        env.wait_for("v2 promoted", secs(60), |r| promoted(r, &v2))
            .await;
        // The old slot's scale-down delay, then nothing left to do.
        tokio::time::sleep(secs(8)).await;

        env.stop_controller().await;
        env.start_controller().await;
        // Its first reconciles wait for its caches: on a loaded machine, seconds.
        let reconciled = |at_least: f64| {
            let env = &env;
            async move {
                let deadline = tokio::time::Instant::now() + secs(30);
                loop {
                    let (_, reconciles) = requests(env).await;
                    if reconciles >= at_least || tokio::time::Instant::now() > deadline {
                        return reconciles;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
            }
        };
        let after_restart = reconciled(1.0).await;
        let rollouts: Api<Rollout> = env.rollouts();
        let services: Api<Service> = Api::namespaced(env.client.clone(), NS);
        let ingresses: Api<Ingress> = Api::namespaced(env.client.clone(), NS);
        for n in 1..=2 {
            tokio::time::sleep(secs(2)).await;
            poke(&rollouts, APP, n).await;
            poke(&services, SERVICE, n).await;
            poke(&ingresses, INGRESS, n).await;
        }
        let reconciles = reconciled(after_restart + 3.0).await;
        assert!(
            after_restart >= 1.0 && reconciles >= after_restart + 3.0,
            "the restart and the pokes woke the Rollout: {after_restart}, then {reconciles} reconciles"
        );
        // Whatever the last pokes woke has run by now.
        tokio::time::sleep(secs(2)).await;
        let (writes, _) = requests(&env).await;
        assert!(writes.is_empty(), "written at rest: {writes:#?}");
        env.finish().await;
    })
    .await;
}
