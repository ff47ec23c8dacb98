//! After a rollback the user's Deployment still asks for the rejected revision. The stable
//! revision's pod template is on record (a ControllerRevision the Rollout owns): a lost stable
//! slot comes back with it, and deleting the Rollout hands the stable template back, never the
//! rejected one.

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, DeleteParams};
use serde_json::json;
use sluice_strategies::status::Phase;

use crate::harness::{APP, Env, NS, Setup, bounded, eventually, secs};

const STABLE_IMAGE: &str = "erp/reporting:1.0.0";
const REJECTED_IMAGE: &str = "erp/reporting:1.1.0-errors";

fn image_of(deployment: &Deployment) -> Option<String> {
    deployment.spec.as_ref()?.template.spec.as_ref()?.containers[0]
        .image
        .clone()
}

async fn rolled_back() -> Env {
    let (env, _) = Env::taken_over(Setup::default(), json!({})).await;
    env.set_image(REJECTED_IMAGE).await;
    env.wait_phase(Phase::RolledBack, secs(60)).await;
    env
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_stable_slot_after_a_rollback_comes_back_with_the_stable_image() {
    bounded(async {
        let env = rolled_back().await;
        let deployments: Api<Deployment> = Api::namespaced(env.client.clone(), NS);
        let blue = deployments
            .get("reporting-blue")
            .await
            .expect("the stable slot");
        deployments
            .delete("reporting-blue", &DeleteParams::default())
            .await
            .expect("kubectl delete deploy reporting-blue");
        let old_uid = blue.metadata.uid.clone();
        let back = eventually(secs(15), "reporting-blue back and ready", || async {
            let d = deployments.get_opt("reporting-blue").await.ok()??;
            let ready = d.status.as_ref().and_then(|s| s.ready_replicas) == Some(2);
            (d.metadata.uid != old_uid && ready).then_some(d)
        })
        .await;
        assert_eq!(image_of(&back).as_deref(), Some(STABLE_IMAGE));
        let target = deployments.get(APP).await.expect("the target");
        assert_eq!(
            image_of(&target).as_deref(),
            Some(REJECTED_IMAGE),
            "the target still asks for the rejected revision"
        );
        env.finish().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_rollout_after_a_rollback_hands_back_the_stable_template() {
    bounded(async {
        let env = rolled_back().await;
        env.delete_rollout().await;
        let deployments: Api<Deployment> = Api::namespaced(env.client.clone(), NS);
        let target = deployments.get(APP).await.expect("the target");
        assert_eq!(image_of(&target).as_deref(), Some(STABLE_IMAGE));
        assert_eq!(target.spec.as_ref().and_then(|s| s.replicas), Some(2));
        // It never ran a pod of the rejected template: its history has it scaled up only after
        // the template came back.
        let history = env.history();
        let versions = history.of("Deployment", APP);
        let restored = versions
            .iter()
            .find(|(_, d)| {
                d["spec"]["template"]["spec"]["containers"][0]["image"] == STABLE_IMAGE
                    && d["spec"]["replicas"] == 0
            })
            .map(|(rv, _)| *rv);
        let scaled_up = versions
            .iter()
            .filter(|(rv, _)| Some(*rv) > restored)
            .find(|(_, d)| d["spec"]["replicas"] == 2)
            .map(|(rv, _)| *rv);
        assert!(
            restored.is_some() && scaled_up.is_some(),
            "restored at {restored:?}, then scaled up at {scaled_up:?}"
        );
        env.finish().await;
    })
    .await;
}
