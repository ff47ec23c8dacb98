//! The controller's life around releases: a restart mid-release, invalid Rollouts beside a valid
//! one, and a deleted Rollout handing traffic back without a dropped request.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, ListParams};
use serde_json::{Value, json};
use sluice_sandbox::faults::{FaultAction, FaultRule, Verb};
use sluice_strategies::status::{CONDITION_READY, ConditionStatus, Phase, Stage};

use crate::harness::{
    APP, CANARY_INGRESS, CANARY_SERVICE, Env, NS, SERVICE, Setup, bounded, condition, create,
    fast_deployment, fixture, ingress_requests, phase, promoted, secs, status,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_controller_resumes_at_the_same_step() {
    bounded(async {
        let (mut env, _) = Env::taken_over(Setup::default(), json!({})).await;
        env.set_image(crate::V2).await;
        let v2 = env.target_revision().await;
        env.wait_for("step 2", secs(40), |r| status(r).step == Some(2))
            .await;
        env.wait_canary_weight("50").await;

        env.stop_controller().await;
        let stopped = env.sandbox.store().resource_version();
        let at_stop = status(&env.rollout().await);
        assert_eq!(
            (at_stop.stage, at_stop.step, at_stop.canary_weight),
            (Some(Stage::Stepping), Some(2), Some(50)),
            "stopped in the middle of step 2"
        );
        // Time passes with nobody watching: the step's clock is in the status, not in memory.
        tokio::time::sleep(secs(3)).await;
        // A big cluster lists slowly: the new controller's caches of Deployments fill 2s late.
        env.sandbox.faults().add(FaultRule {
            verb: Some(Verb::List),
            resource: Some("deployments".into()),
            action: FaultAction::Delay { millis: 2000 },
            times: Some(1),
        });
        env.start_controller().await;
        env.wait_for("v2 promoted", secs(60), |r| promoted(r, &v2))
            .await;

        let history = env.history();
        assert_eq!(
            history.weights_since(stopped),
            ["0"],
            "after the restart the canary went from 50 straight to the drain, never back to 20"
        );
        for (rv, s) in history.statuses(APP) {
            if rv <= stopped {
                continue;
            }
            assert!(
                s.step.is_none_or(|step| step >= 2),
                "step {:?} at rv {rv} after the restart",
                s.step
            );
            assert!(
                !matches!(s.stage, Some(Stage::Starting | Stage::TakingOver)),
                "stage {:?} at rv {rv} after the restart",
                s.stage
            );
            assert!(
                !matches!(
                    s.phase,
                    Phase::Failed | Phase::Initializing | Phase::RolledBack
                ),
                "phase {:?} at rv {rv} after the restart: {:?}",
                s.phase,
                s.message
            );
        }
        let green: Vec<_> = history
            .replicas("reporting-green")
            .into_iter()
            .filter(|(rv, _)| *rv > stopped)
            .collect();
        assert!(
            green.iter().all(|(_, r)| *r == Some(2)),
            "the candidate kept running through the restart: {green:?}"
        );
        env.finish().await;
    })
    .await;
}

fn rules_point_only_at(ingress: &Value, service: &str) -> bool {
    ingress["spec"]["rules"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|r| r["http"]["paths"].as_array().into_iter().flatten())
        .all(|p| p["backend"]["service"]["name"] == service)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_rollouts_are_reported_and_touch_no_traffic() {
    bounded(async {
        let mut env = Env::start(Setup {
            prometheus: false,
            ..Setup::default()
        })
        .await;
        // The gateway of the same Ingress, released by a valid Rollout beside the invalid ones.
        create::<Deployment>(&env.client, NS, fast_deployment("gateway")).await;
        create::<Service>(&env.client, NS, fixture("Service", "gateway-service")).await;
        env.wait_deployment_ready("gateway", 2).await;
        let gateway = json!({"spec": {
            "targetRef": {"name": "gateway"},
            "service": {"name": "gateway-service"},
        }});
        env.create_rollout("gateway", gateway).await;
        // There before the controller starts: the schema cannot bound an int-or-string, and this
        // one once failed the decoding of the whole list, so that no Rollout was reconciled.
        let port = json!({"spec": {"service": {"targetPort": 70000}}});
        env.create_rollout("reporting-port", port).await;
        env.start_controller().await;
        env.wait_for_named("gateway", "gateway taken over", secs(20), |r| {
            phase(r) == Phase::Ready
        })
        .await;

        let falling = json!({"spec": {"strategy": {"canary": {"steps": [50, 10]}}}});
        env.create_rollout("reporting-falling", falling).await;
        let ghost = json!({"spec": {"targetRef": {"name": "ghost"}}});
        env.create_rollout("reporting-ghost", ghost).await;
        // ingress-nginx would treat a header value with a space as unset.
        let header = json!({"spec": {"strategy": {"canary": {"match": {"header": {"name": "x-canary", "value": "insider users"}}}}}});
        env.create_rollout("reporting-header", header).await;

        let invalid = [
            ("reporting-falling", "weights must rise strictly"),
            ("reporting-ghost", "Deployment erp-system/ghost not found"),
            (
                "reporting-port",
                "spec.service.targetPort: must be 1..=65535, got 70000",
            ),
            (
                "reporting-header",
                "\"insider users\" is not a header value ingress-nginx accepts",
            ),
        ];
        for (name, problem) in invalid {
            let rollout = env
                .wait_for_named(name, "phase Failed", secs(15), |r| {
                    phase(r) == Phase::Failed
                })
                .await;
            let message = status(&rollout).message.unwrap_or_default();
            assert!(message.contains(problem), "{problem:?} in {message:?}");
            assert_eq!(
                condition(&rollout, CONDITION_READY),
                Some((ConditionStatus::False, "InvalidSpec".to_string()))
            );
        }

        // The valid Rollout carries on: a release of the gateway reaches its first step.
        let gateways: Api<Deployment> = Api::namespaced(env.client.clone(), NS);
        let image = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "gateway", "image": "erp/gateway:1.1.0"}
        ]}}}});
        gateways
            .patch(
                "gateway",
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Strategic(image),
            )
            .await
            .expect("gateway patched");
        env.wait_for_named("gateway", "gateway at step 1", secs(20), |r| {
            status(r).step == Some(1) && status(r).canary_weight == Some(20)
        })
        .await;

        let events: Api<Event> = Api::namespaced(env.client.clone(), NS);
        let events = events.list(&ListParams::default()).await.expect("events");
        for (name, problem) in invalid {
            assert!(
                events.items.iter().any(|e| {
                    e.reason.as_deref() == Some("InvalidSpec")
                        && e.type_.as_deref() == Some("Warning")
                        && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)
                        && e.note.as_deref().is_some_and(|n| n.contains(problem))
                }),
                "an InvalidSpec event for {name}"
            );
            let still = env.rollouts().get(name).await.expect("the Rollout");
            assert_eq!(phase(&still), Phase::Failed, "{name} stays Failed");
        }

        // Nothing of reporting's traffic was touched, at any point.
        let history = env.history();
        for name in ["reporting-blue", "reporting-green"] {
            assert!(
                !history.ever("Deployment", name),
                "{name} was never created"
            );
        }
        assert!(!history.ever("Service", CANARY_SERVICE));
        assert_eq!(
            history.of("Service", SERVICE).len(),
            1,
            "reporting-service was never written after its creation"
        );
        assert!(
            history
                .replicas(APP)
                .iter()
                .all(|(_, replicas)| *replicas == Some(2)),
            "reporting kept its 2 replicas"
        );
        assert!(
            !history.ever("Ingress", CANARY_INGRESS),
            "reporting never got a canary Ingress"
        );
        let canaries = history.of("Ingress", "erp-ingress-gateway-service-canary");
        assert!(
            !canaries.is_empty(),
            "the gateway's release has its canary Ingress"
        );
        assert!(
            canaries
                .iter()
                .all(|(_, i)| i.is_null() || rules_point_only_at(i, "gateway-service-canary")),
            "no canary rule for reporting: {canaries:?}"
        );
        env.finish().await;
    })
    .await;
}

/// Requests to reporting-service answered 503, and all requests to it, from the metrics text.
fn reporting_requests(text: &str) -> (f64, f64, f64) {
    let (mut unavailable, mut all, mut canary) = (0.0, 0.0, 0.0);
    for (labels, value) in ingress_requests(text) {
        if labels.get("service").map(String::as_str) != Some(SERVICE) {
            continue;
        }
        all += value;
        if labels.get("status").map(String::as_str) == Some("503") {
            unavailable += value;
        }
        if labels.get("canary").is_some_and(|c| !c.is_empty()) {
            canary += value;
        }
    }
    (unavailable, all, canary)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_rollout_hands_traffic_back_without_a_503() {
    bounded(async {
        let (env, _) = Env::taken_over(Setup::default(), json!({})).await;
        // Deleted mid-release, with 20% on the candidate.
        env.set_image(crate::V2).await;
        env.wait_for("step 1", secs(30), |r| status(r).step == Some(1))
            .await;
        env.wait_canary_weight("20").await;
        tokio::time::sleep(secs(2)).await;

        let deleted = env.sandbox.store().resource_version();
        env.delete_rollout().await;
        let deployments = env.deployments();
        let services: Api<Service> = Api::namespaced(env.client.clone(), NS);
        let ingresses: Api<Ingress> = Api::namespaced(env.client.clone(), NS);
        for slot in ["reporting-blue", "reporting-green"] {
            assert!(
                deployments.get_opt(slot).await.expect("get").is_none(),
                "{slot} gone"
            );
        }
        assert!(
            services
                .get_opt(CANARY_SERVICE)
                .await
                .expect("get")
                .is_none()
        );
        assert!(
            ingresses
                .get_opt(CANARY_INGRESS)
                .await
                .expect("get")
                .is_none()
        );
        let service = services
            .get(SERVICE)
            .await
            .expect("reporting-service stays");
        let selector = service.spec.and_then(|s| s.selector).unwrap_or_default();
        assert_eq!(
            selector,
            [("app".to_string(), APP.to_string())].into(),
            "the original selector"
        );
        let target = deployments.get(APP).await.expect("the target stays");
        assert_eq!(target.spec.and_then(|s| s.replicas), Some(2));

        // The target was back and ready before the Service stopped selecting a slot.
        let history = env.history();
        let released = history
            .of("Service", SERVICE)
            .into_iter()
            .find(|(rv, s)| *rv > deleted && s["spec"]["selector"].get("sluice.dev/slot").is_none())
            .map(|(rv, _)| rv)
            .expect("the Service lost the slot label");
        let target = history.at("Deployment", APP, released).expect("the target");
        assert_eq!(
            target["spec"]["replicas"], 2,
            "restored before rv {released}"
        );
        assert_eq!(
            target["status"]["readyReplicas"], 2,
            "ready before rv {released}"
        );
        assert_eq!(target["status"]["updatedReplicas"], 2);
        assert!(
            target["status"]["observedGeneration"].as_i64()
                >= target["metadata"]["generation"].as_i64()
        );

        // Traffic went on all along: not a single 503 for reporting-service.
        let (_, all_before, _) = reporting_requests(&env.metrics_text().await);
        tokio::time::sleep(secs(2)).await;
        let (unavailable, all, canary) = reporting_requests(&env.metrics_text().await);
        assert!(
            canary > 0.0,
            "the candidate had its share before the deletion"
        );
        assert!(
            all > all_before + 100.0,
            "reporting still serves after the hand-back"
        );
        assert_eq!(
            unavailable, 0.0,
            "503s for reporting-service across the whole test"
        );
        env.finish().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_named_past_63_characters_takes_over_with_valid_labels() {
    bounded(async {
        let mut env = Env::start(Setup {
            prometheus: false,
            ..Setup::default()
        })
        .await;
        let name = format!("reporting-{}", "long".repeat(15));
        assert!(name.len() > 63);
        env.create_rollout(&name, json!({})).await;
        env.start_controller().await;
        env.wait_for_named(&name, "taken over", secs(30), |r| phase(r) == Phase::Ready)
            .await;
        let deployments: Api<Deployment> = Api::namespaced(env.client.clone(), NS);
        let blue = deployments
            .get("reporting-blue")
            .await
            .expect("the stable slot");
        let label = blue
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("sluice.dev/rollout"))
            .cloned()
            .unwrap_or_default();
        assert_eq!(label.len(), 63, "{label}");
        assert!(label.starts_with("reporting-long"), "{label}");
        env.finish().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_world_write_that_fails_after_a_transition_loses_none_of_its_events() {
    bounded(async {
        let (env, _) = Env::taken_over(Setup::default(), json!({})).await;
        // Every Ingress write fails for a while: the release starts (its status is written), and
        // the canary Ingress write after it fails.
        env.sandbox.faults().add(FaultRule {
            verb: Some(Verb::Patch),
            resource: Some("ingresses".into()),
            action: FaultAction::Fail { code: 500 },
            times: Some(4),
        });
        env.set_image(crate::V2).await;
        let v2 = env.target_revision().await;
        env.wait_for("v2 promoted", secs(60), |r| promoted(r, &v2))
            .await;
        let events: Api<Event> = Api::namespaced(env.client.clone(), NS);
        let notes: Vec<(String, String)> = events
            .list(&ListParams::default())
            .await
            .expect("Events")
            .items
            .into_iter()
            .map(|e| (e.reason.unwrap_or_default(), e.note.unwrap_or_default()))
            .collect();
        let started: Vec<&(String, String)> = notes
            .iter()
            .filter(|(reason, note)| reason == "ReleaseStarted" && note.contains(&v2))
            .collect();
        assert_eq!(
            started.len(),
            1,
            "announced once, whatever failed after: {notes:?}"
        );
        for step in ["step 1/2", "step 2/2"] {
            assert!(
                notes
                    .iter()
                    .any(|(reason, note)| reason == "Step" && note.contains(step)),
                "{step} announced: {notes:?}"
            );
        }
        assert!(
            notes.iter().any(|(reason, _)| reason == "Promoted"),
            "{notes:?}"
        );
        env.finish().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_on_an_ingress_of_another_class_is_invalid_and_touches_no_traffic() {
    bounded(async {
        let mut env = Env::start(Setup::default()).await;
        // erp-ingress is served by the ingress-nginx of class nginx; this sluice writes for another.
        env.ingress_class = Some("nginx-internal".to_string());
        env.create_rollout(APP, json!({})).await;
        env.start_controller().await;
        let rollout = env
            .wait_for("phase Failed", secs(15), |r| phase(r) == Phase::Failed)
            .await;
        let message = status(&rollout).message.unwrap_or_default();
        assert!(
            message.contains("Ingress erp-system/erp-ingress has ingress class nginx, but this sluice writes canary annotations for the ingress-nginx of class nginx-internal"),
            "{message}"
        );
        assert!(
            env.history().of("Ingress", CANARY_INGRESS).is_empty(),
            "no canary Ingress was written"
        );
        env.finish().await;
    })
    .await;
}
