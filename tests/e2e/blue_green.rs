//! End-to-end blue/green releases of reporting: direct traffic on both Services (40 rps on
//! reporting-service, the users; 10 rps on reporting-service-canary, the preview's smoke traffic),
//! judged by the real Prometheus on the pods' own metrics. Every ordering is read from the
//! sandbox's history of writes.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};
use sluice_strategies::status::{CONDITION_PROMOTED, ConditionStatus, Phase, Stage};

use crate::harness::{
    self, APP, CANARY_SERVICE, Env, NS, SERVICE, Setup, bounded, promoted, samples, secs, status,
};

const USERS_RPS: u32 = 40;
const PREVIEW_RPS: u32 = 10;
/// Checks every 6s (every 3s after the switch), over 6s windows.
const INTERVAL_SECS: i64 = 6;

fn blue_green(promotion: &str) -> Value {
    json!({
        "spec": {
            "strategy": {"canary": null, "blueGreen": {
                "previewDuration": "6s", "postSwitchDuration": "6s", "scaleDownDelay": "3s"}},
            "analysis": {
                "interval": format!("{INTERVAL_SECS}s"),
                "failureLimit": 1,
                "minRequests": 10,
                "metrics": [{"name": "app-error-rate", "max": 5}, {"name": "app-latency-p99", "max": 500}],
            },
            "promotion": promotion,
        }
    })
}

/// A taken-over blue/green Rollout of reporting with traffic on both Services; returns the
/// environment and the stable revision.
async fn started(promotion: &str) -> (Env, String) {
    let setup = Setup {
        ingress_rps: None,
        ..Setup::default()
    };
    let (env, v1) = Env::taken_over(setup, blue_green(promotion)).await;
    env.send_to_service(SERVICE, USERS_RPS).await;
    env.send_to_service(CANARY_SERVICE, PREVIEW_RPS).await;
    (env, v1)
}

/// `sandbox_service_requests_total` for reporting-service, summed by serving slot ("" when no
/// pod was there to serve) and by whether the answer was a 5xx.
async fn served(env: &Env) -> BTreeMap<(String, bool), f64> {
    let mut by_slot = BTreeMap::new();
    for (labels, value) in samples(&env.metrics_text().await, "sandbox_service_requests_total") {
        if labels.get("service").map(String::as_str) != Some(SERVICE) {
            continue;
        }
        let pod = labels.get("pod").cloned().unwrap_or_default();
        let slot = ["blue", "green"]
            .into_iter()
            .find(|slot| pod.starts_with(&format!("{APP}-{slot}-")))
            .unwrap_or(if pod.is_empty() { "" } else { "target" });
        let failed = labels.get("code").is_some_and(|c| c.starts_with('5'));
        *by_slot.entry((slot.to_string(), failed)).or_default() += value;
    }
    by_slot
}

fn count(served: &BTreeMap<(String, bool), f64>, slot: &str, failed: Option<bool>) -> f64 {
    served
        .iter()
        .filter(|((s, f), _)| s == slot && failed.is_none_or(|want| *f == want))
        .map(|(_, v)| v)
        .sum()
}

/// The slots reporting-service selected, in order, from resourceVersion `since` on.
fn switches_since(env: &Env, since: u64) -> Vec<String> {
    env.history()
        .selector_slots(SERVICE)
        .into_iter()
        .filter(|(rv, _, _)| *rv > since)
        .map(|(_, _, slot)| slot)
        .collect()
}

/// The Service switched to green only once reporting-green had every pod of the candidate ready.
fn assert_switched_to_a_ready_green(env: &Env, since: u64) -> u64 {
    let history = env.history();
    let (switched, _, _) = history
        .selector_slots(SERVICE)
        .into_iter()
        .find(|(rv, _, slot)| *rv > since && slot == "green")
        .expect("reporting-service switched to green");
    let green = history
        .at("Deployment", "reporting-green", switched)
        .expect("reporting-green existed before the switch");
    assert_eq!(green["spec"]["replicas"], 2);
    assert_eq!(
        green["status"]["readyReplicas"], 2,
        "green fully ready before the switch at rv {switched}"
    );
    assert_eq!(green["status"]["updatedReplicas"], 2);
    switched
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blue_green_a_healthy_release_is_previewed_then_switched() {
    bounded(async {
        let (env, v1) = started("auto").await;
        let since = env.set_image(crate::V2).await;
        let v2 = env.target_revision().await;
        let done = env
            .wait_condition(
                CONDITION_PROMOTED,
                ConditionStatus::True,
                "Promoted",
                secs(60),
            )
            .await;
        assert!(promoted(&done, &v2), "{:?}", status(&done).message);
        assert_eq!(
            switches_since(&env, since),
            ["green"],
            "one switch, no flapping"
        );
        let switched = assert_switched_to_a_ready_green(&env, since);

        let history = env.history();
        let stages: Vec<Stage> = history
            .statuses(APP)
            .into_iter()
            .filter(|(rv, _)| *rv > since)
            .filter_map(|(_, s)| s.stage)
            .fold(Vec::new(), |mut seen, stage| {
                if seen.last() != Some(&stage) {
                    seen.push(stage);
                }
                seen
            });
        for want in [
            Stage::Starting,
            Stage::Previewing,
            Stage::PromotingSwitch,
            Stage::Verifying,
        ] {
            assert!(stages.contains(&want), "{want:?} in {stages:?}");
        }
        // The preview was judged on the candidate pods' own requests.
        let checks: Vec<String> = history
            .statuses(APP)
            .into_iter()
            .filter_map(|(_, s)| s.last_check_summary)
            .collect();
        assert!(
            checks.iter().any(|c| c.contains("app-error-rate")),
            "{checks:?}"
        );

        // The old slot stayed warm through the switch and went to zero after it.
        harness::eventually(secs(15), "reporting-blue scaled down", || async {
            let blue = env.deployments().get("reporting-blue").await.ok()?;
            (blue.spec?.replicas == Some(0)).then_some(())
        })
        .await;
        let history = env.history();
        let succeeded = history
            .statuses(APP)
            .into_iter()
            .find(|(rv, s)| *rv > since && s.phase == Phase::Succeeded)
            .map(|(rv, _)| rv)
            .expect("a Succeeded status");
        let scaled = history
            .first_decrease("reporting-blue", since)
            .expect("a decrease");
        assert!(
            scaled > succeeded && succeeded > switched,
            "blue kept warm through the verification: switch at {switched}, verified at {succeeded}, blue scaled down at {scaled}"
        );

        // Blue and green tell their revisions apart by the version label.
        let green = env
            .deployments()
            .get("reporting-green")
            .await
            .expect("green");
        let labels = green
            .spec
            .expect("spec")
            .template
            .metadata
            .expect("meta")
            .labels
            .unwrap_or_default();
        assert_eq!(labels.get("version"), Some(&v2));
        assert_eq!(
            labels.get("sluice.dev/slot").map(String::as_str),
            Some("green")
        );
        assert_ne!(v1, v2);

        let served = served(&env).await;
        assert!(
            count(&served, "green", None) > 0.0,
            "users reached green: {served:?}"
        );
        assert_eq!(count(&served, "green", Some(true)), 0.0, "{served:?}");
        env.finish().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blue_green_a_faulty_preview_is_never_switched_to() {
    bounded(async {
        let (env, _) = started("auto").await;
        let since = env.set_image(&format!("{}-errors", crate::V2)).await;
        let done = env.wait_phase(Phase::RolledBack, secs(60)).await;
        let message = status(&done).message.unwrap_or_default();
        assert!(message.contains("app-error-rate"), "{message}");
        let switches = switches_since(&env, since);
        assert!(
            switches.is_empty(),
            "reporting-service never left blue: {switches:?}; {:#?}",
            env.history()
                .statuses(APP)
                .into_iter()
                .filter(|(rv, _)| *rv > since)
                .map(|(rv, s)| (rv, s.stage, s.message))
                .collect::<Vec<_>>()
        );
        harness::eventually(secs(10), "reporting-green scaled down", || async {
            let green = env.deployments().get("reporting-green").await.ok()?;
            (green.spec?.replicas == Some(0)).then_some(())
        })
        .await;
        let served = served(&env).await;
        assert_eq!(
            count(&served, "green", None),
            0.0,
            "no user request reached green: {served:?}"
        );
        assert_eq!(
            count(&served, "", None),
            0.0,
            "no request without endpoints: {served:?}"
        );
        env.finish().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blue_green_a_failure_after_the_switch_is_switched_back_within_one_interval() {
    bounded(async {
        let (env, _) = started("auto").await;
        // 12 rps per pod: fine for the preview's 10 rps on two pods, not for 50 on them.
        let since = env.set_image(&format!("{}-fragile", crate::V2)).await;
        let done = env.wait_phase(Phase::RolledBack, secs(60)).await;
        let message = status(&done).message.unwrap_or_default();
        assert!(message.contains("after the switch"), "{message}");

        let changes: Vec<(u64, chrono::DateTime<chrono::Utc>, String)> = env
            .history()
            .selector_slots(SERVICE)
            .into_iter()
            .filter(|(rv, _, _)| *rv > since)
            .collect();
        let slots: Vec<&str> = changes.iter().map(|(_, _, s)| s.as_str()).collect();
        assert_eq!(slots, ["green", "blue"], "switched once, and back once");
        let (switched_rv, switched_at, _) = &changes[0];
        let (back_rv, back_at, _) = &changes[1];
        // The overload is evident from the first request after the switch.
        let exposed = (*back_at - *switched_at).num_milliseconds();
        assert!(
            exposed <= INTERVAL_SECS * 1000,
            "switched back {exposed}ms after the switch; the analysis interval is {INTERVAL_SECS}s"
        );
        let decrease = env.history().first_decrease("reporting-green", since);
        assert!(
            decrease.is_some_and(|rv| rv > *back_rv),
            "green scaled down at {decrease:?}, only after the switch back at {back_rv} (switch at {switched_rv})"
        );

        let served = served(&env).await;
        let (on_green, failed_on_green) =
            (count(&served, "green", None), count(&served, "green", Some(true)));
        println!(
            "after the failure was evident: green served {on_green} user requests ({failed_on_green} of them 5xx) for {exposed}ms before the switch back"
        );
        assert!(on_green > 0.0 && failed_on_green > 0.0, "{served:?}");
        assert!(
            on_green <= f64::from(USERS_RPS) * (INTERVAL_SECS as f64 + 1.0),
            "{on_green} requests is more than one interval of users' traffic"
        );
        assert_eq!(count(&served, "", None), 0.0, "no request without endpoints: {served:?}");
        env.finish().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blue_green_manual_promotion_switches_only_on_promote() {
    bounded(async {
        let (env, _) = started("manual").await;
        let since = env.set_image(crate::V2).await;
        let v2 = env.target_revision().await;
        env.wait_for("waiting for promote", secs(40), |r| {
            status(r).stage == Some(Stage::AwaitingPromotion)
        })
        .await;
        let waiting = env.rollout().await;
        assert_eq!(status(&waiting).phase, Phase::Paused);
        tokio::time::sleep(secs(INTERVAL_SECS as u64 + 1)).await;
        assert!(
            switches_since(&env, since).is_empty(),
            "no switch without promote"
        );
        assert_eq!(
            status(&env.rollout().await).stage,
            Some(Stage::AwaitingPromotion)
        );

        env.rollouts()
            .patch(
                APP,
                &PatchParams::default(),
                &Patch::Merge(
                    json!({"metadata": {"annotations": {"sluice.dev/command": "promote"}}}),
                ),
            )
            .await
            .expect("the promote command is written");
        env.wait_for("v2 promoted", secs(40), |r| promoted(r, &v2))
            .await;
        assert_eq!(switches_since(&env, since), ["green"]);
        env.finish().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blue_green_a_switch_and_a_hand_back_cause_no_503_from_missing_endpoints() {
    bounded(async {
        let (env, _) = started("auto").await;
        // Pods that take 2s to be ready: a switch that did not wait for them would drop requests.
        let since = env
            .patch_target(json!({"spec": {"template": {
                "metadata": {"annotations": {"sandbox.sluice.dev/ready-after": "2s"}},
                "spec": {"containers": [{"name": APP, "image": crate::V2}]}}}}))
            .await;
        let v2 = env.target_revision().await;
        env.wait_for("v2 promoted", secs(60), |r| promoted(r, &v2))
            .await;
        assert_switched_to_a_ready_green(&env, since);
        let during = served(&env).await;
        assert!(
            count(&during, "green", None) > 100.0,
            "green serves: {during:?}"
        );

        // Deleting the Rollout hands reporting back to the user's Deployment.
        env.delete_rollout().await;
        let services: Api<Service> = Api::namespaced(env.client.clone(), NS);
        let selector = services
            .get(SERVICE)
            .await
            .expect("reporting-service stays")
            .spec
            .and_then(|s| s.selector)
            .unwrap_or_default();
        assert_eq!(selector, [("app".to_string(), APP.to_string())].into());
        tokio::time::sleep(secs(2)).await;

        let after = served(&env).await;
        assert!(
            count(&after, "target", None) > 0.0,
            "the user's Deployment serves again: {after:?}"
        );
        assert_eq!(
            count(&after, "", None),
            0.0,
            "requests to reporting-service that found no ready pod: {after:?}"
        );
        assert_eq!(count(&after, "green", Some(true)), 0.0, "{after:?}");
        env.finish().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_changed_to_blue_green_mid_release_removes_its_canary_ingress_first() {
    bounded(async {
        let (env, _) = Env::taken_over(Setup::default(), json!({})).await;
        env.send_to_service(CANARY_SERVICE, PREVIEW_RPS).await;
        env.set_image(crate::V2).await;
        let v2 = env.target_revision().await;
        env.wait_canary_weight("20").await;

        let changed = env
            .rollouts()
            .patch(
                APP,
                &PatchParams::default(),
                &Patch::Merge(blue_green("auto")),
            )
            .await
            .expect("the Rollout becomes blue/green")
            .metadata
            .resource_version
            .and_then(|rv| rv.parse::<u64>().ok())
            .expect("a resourceVersion");
        env.wait_for("v2 promoted", secs(60), |r| promoted(r, &v2))
            .await;

        let history = env.history();
        let removed = history
            .of("Ingress", crate::harness::CANARY_INGRESS)
            .into_iter()
            .find(|(rv, ingress)| *rv > changed && ingress.is_null())
            .map(|(rv, _)| rv)
            .expect("the canary Ingress was deleted");
        let (switched, _, _) = history
            .selector_slots(SERVICE)
            .into_iter()
            .find(|(rv, _, slot)| *rv > changed && slot == "green")
            .expect("reporting-service switched to green");
        let restarted = history
            .statuses(APP)
            .into_iter()
            .find(|(rv, s)| *rv > changed && s.stage == Some(Stage::Starting))
            .map(|(rv, _)| rv)
            .expect("the release started again");
        assert!(
            removed < restarted && restarted < switched,
            "canary Ingress gone at {removed}, release restarted at {restarted}, switch at {switched}"
        );
        let stages: Vec<Stage> = history
            .statuses(APP)
            .into_iter()
            .filter(|(rv, _)| *rv > changed)
            .filter_map(|(_, s)| s.stage)
            .collect();
        let superseding = stages.iter().position(|s| *s == Stage::Superseding);
        let previewing = stages.iter().position(|s| *s == Stage::Previewing);
        assert!(
            superseding.is_some() && superseding < previewing,
            "back to stable, then a preview: {stages:?}"
        );
        assert_eq!(status(&env.rollout().await).canary_weight, None);
        env.finish().await;
    })
    .await;
}
