//! End-to-end canary releases of the ERP system's reporting service: the real controller
//! (`sluice::run`) in-process against its own sandbox, judged by the real Prometheus scraping the
//! sandbox's simulated ingress-nginx. Every ordering that matters is proven from the sandbox's
//! history of writes, not assumed.
//!
//! Timings are fast (steps [20, 50], 6s per step and per check) so that each test finishes in
//! well under its 120s bound.

mod api;
mod api_faults;
mod at_rest;
mod blue_green;
mod cli;
mod crash;
mod dashboard_queries;
mod hand_edits;
mod harness;
mod history;
mod install;
mod leader;
mod lifecycle;
mod metrics;
mod process;
mod records;
mod rollback;
mod shared_ingress;
mod status_page;

use std::collections::BTreeMap;

use harness::{
    APP, CANARY_INGRESS, CANARY_SERVICE, Env, INGRESS, SERVICE, Setup, bounded, ingress_requests,
    promoted, secs, status,
};
use history::annotation;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::Api;
use serde_json::{Value, json};
use sluice_strategies::status::{CONDITION_PROMOTED, ConditionStatus, Phase, Slot};

const V2: &str = "erp/reporting:1.1.0";
const V3: &str = "erp/reporting:1.2.0";
const SLOT_LABEL: &str = "sluice.dev/slot";
const BY_HEADER: &str = "nginx.ingress.kubernetes.io/canary-by-header";
const BY_HEADER_VALUE: &str = "nginx.ingress.kubernetes.io/canary-by-header-value";

async fn service_selector(env: &Env) -> BTreeMap<String, String> {
    let services: Api<Service> = Api::namespaced(env.client.clone(), harness::NS);
    let service = services.get(SERVICE).await.expect("reporting-service");
    service.spec.and_then(|s| s.selector).unwrap_or_default()
}

fn slot_selector(slot: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app".to_string(), APP.to_string()),
        (SLOT_LABEL.to_string(), slot.to_string()),
    ])
}

fn image_of(deployment: &Value) -> Option<&str> {
    deployment
        .pointer("/spec/template/spec/containers/0/image")
        .and_then(Value::as_str)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_release_is_promoted_through_every_step() {
    bounded(async {
        let (env, v1) = Env::taken_over(Setup::default(), json!({})).await;
        assert_eq!(service_selector(&env).await, slot_selector("blue"));

        let since = env.set_image(V2).await;
        let v2 = env.target_revision().await;
        assert_ne!(v1, v2, "a new image is a new revision");
        let done = env
            .wait_condition(
                CONDITION_PROMOTED,
                ConditionStatus::True,
                "Promoted",
                secs(60),
            )
            .await;
        assert!(promoted(&done, &v2), "{:?}", status(&done).message);
        let s = status(&done);
        assert_eq!(s.stable_slot, Some(Slot::Green), "promotion flips the slot");
        assert_eq!(s.candidate_revision, None);
        assert_eq!(service_selector(&env).await, slot_selector("green"));

        let history = env.history();
        assert_eq!(
            history.weights_since(since),
            ["20", "50", "0"],
            "both steps' weights reached the canary Ingress, then it drained"
        );
        let steps: Vec<(Option<u32>, Option<u8>)> = history
            .statuses(APP)
            .into_iter()
            .filter(|(rv, s)| *rv > since && s.step.is_some())
            .map(|(_, s)| (s.step, s.canary_weight))
            .fold(Vec::new(), |mut seen, step| {
                if seen.last() != Some(&step) {
                    seen.push(step);
                }
                seen
            });
        assert_eq!(steps, [(Some(1), Some(20)), (Some(2), Some(50))]);
        let slots: Vec<Option<Slot>> = history
            .statuses(APP)
            .into_iter()
            .map(|(_, s)| s.stable_slot)
            .filter(Option::is_some)
            .fold(Vec::new(), |mut seen, slot| {
                if seen.last() != Some(&slot) {
                    seen.push(slot);
                }
                seen
            });
        assert_eq!(slots, [Some(Slot::Blue), Some(Slot::Green)]);

        // Promotion order: the Service moved to green before the canary weight drained.
        let switched = history
            .of("Service", SERVICE)
            .into_iter()
            .find(|(rv, svc)| *rv > since && svc["spec"]["selector"][SLOT_LABEL] == "green")
            .map(|(rv, _)| rv)
            .expect("the Service switched to green");
        let drained = history
            .canary_weights()
            .pop()
            .filter(|(rv, _)| *rv > since)
            .expect("the canary Ingress changed in the release");
        assert_eq!(drained.1, "0");
        assert!(
            switched < drained.0,
            "Service switched at {switched}, weight 0 at {}",
            drained.0
        );

        // The canary Ingress is a copy of exactly the user's rules for reporting-service.
        let ingresses: Api<Ingress> = Api::namespaced(env.client.clone(), harness::NS);
        let canary = serde_json::to_value(ingresses.get(CANARY_INGRESS).await.expect("canary"))
            .expect("serializes");
        assert_eq!(
            annotation(&canary, "nginx.ingress.kubernetes.io/canary"),
            Some("true")
        );
        assert_eq!(canary["spec"]["ingressClassName"], "nginx");
        let rules = canary["spec"]["rules"].as_array().expect("rules");
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0]["host"], "erp.example.com");
        let paths: Vec<(&str, &str, &str)> = rules[0]["http"]["paths"]
            .as_array()
            .expect("paths")
            .iter()
            .map(|p| {
                (
                    p["path"].as_str().unwrap_or_default(),
                    p["pathType"].as_str().unwrap_or_default(),
                    p["backend"]["service"]["name"].as_str().unwrap_or_default(),
                )
            })
            .collect();
        assert_eq!(
            paths,
            [
                ("/api/dashboard", "Prefix", CANARY_SERVICE),
                ("/api/reports", "Prefix", CANARY_SERVICE)
            ]
        );
        assert_eq!(
            history.of("Ingress", INGRESS).len(),
            1,
            "the user's Ingress is never modified"
        );

        // The old slot stays warm for scaleDownDelay (3s), then goes to zero.
        let deployments = env.deployments();
        harness::eventually(secs(15), "blue scaled to 0", || async {
            let blue = deployments.get("reporting-blue").await.ok()?;
            (blue.spec?.replicas == Some(0)).then_some(())
        })
        .await;
        let target = deployments.get(APP).await.expect("the target");
        assert_eq!(target.spec.and_then(|s| s.replicas), Some(0));
        env.finish().await;
    })
    .await;
}

/// Requests to reporting-service through the Ingress: (to the canary, in all).
fn reporting_counts(metrics: &str) -> (f64, f64) {
    let (mut canary, mut all) = (0.0, 0.0);
    for (labels, value) in ingress_requests(metrics) {
        if labels.get("service").map(String::as_str) != Some(SERVICE) {
            continue;
        }
        all += value;
        if labels.get("canary").is_some_and(|c| !c.is_empty()) {
            canary += value;
        }
    }
    (canary, all)
}

/// Reporting's requests (to the canary, in all) over as much of the match phase as the test sees,
/// up to 8s, from the ingress-nginx counters. Sampled every 500ms; a sample counts only if the
/// canary Ingress still routed as `matching` when it was taken (proven from the history).
async fn match_phase_counts(env: &Env, matching: &Value) -> (f64, f64, std::time::Duration) {
    let routing = |i: &Value| (i["metadata"]["annotations"].clone(), i["spec"].clone());
    let since: u64 = matching["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|rv| rv.parse().ok())
        .expect("a resourceVersion");
    let started = tokio::time::Instant::now();
    // (when, resourceVersion after the read, canary, all)
    let mut samples = Vec::new();
    let changed_at = loop {
        let (canary, all) = reporting_counts(&env.metrics_text().await);
        let rv = env.sandbox.store().resource_version();
        samples.push((started.elapsed(), rv, canary, all));
        let changed_at = env
            .history()
            .of("Ingress", CANARY_INGRESS)
            .into_iter()
            .find(|(at, i)| *at > since && routing(i) != routing(matching))
            .map(|(at, _)| at);
        if changed_at.is_some() || started.elapsed() >= secs(8) {
            break changed_at.unwrap_or(u64::MAX);
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    };
    let valid: Vec<_> = samples.iter().filter(|s| s.1 < changed_at).collect();
    let (Some(first), Some(last)) = (valid.first(), valid.last()) else {
        panic!("no sample of the match phase: it ended at rv {changed_at}");
    };
    (last.2 - first.2, last.3 - first.3, last.0 - first.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_header_match_phase_routes_only_matching_requests() {
    bounded(async {
        let mut env = Env::start(Setup {
            request_headers: Some("x-canary=insider:0.2"),
            ..Setup::default()
        })
        .await;
        // A longer step, so that the match phase leaves a measurement window of 7s.
        let overrides = json!({"spec": {"strategy": {"canary": {
            "match": {"header": {"name": "x-canary", "value": "insider"}},
            "stepInterval": "10s",
        }}}});
        env.create_rollout(APP, overrides).await;
        env.start_controller().await;
        env.wait_taken_over().await;
        let since = env.set_image(V2).await;
        let v2 = env.target_revision().await;

        let ingresses: Api<Ingress> = Api::namespaced(env.client.clone(), harness::NS);
        let matching = harness::eventually(secs(20), "the match phase", || async {
            let canary = ingresses.get(CANARY_INGRESS).await.ok()?;
            let canary = serde_json::to_value(canary).ok()?;
            annotation(&canary, BY_HEADER).is_some().then_some(canary)
        })
        .await;
        assert_eq!(annotation(&matching, BY_HEADER), Some("x-canary"));
        assert_eq!(annotation(&matching, BY_HEADER_VALUE), Some("insider"));
        assert_eq!(annotation(&matching, history::WEIGHT), Some("0"));

        let (canary, all, window) = match_phase_counts(&env, &matching).await;
        let share = 100.0 * canary / all;
        println!("match phase: {share:.1}% of {all} requests to the canary over {window:?}");
        assert!(
            window >= secs(4) && all > 300.0,
            "{all} requests over {window:?} of the match phase"
        );
        assert!(
            (14.0..=26.0).contains(&share),
            "the canary's share is the header's 20% ± 6, got {share:.1}% ({canary}/{all} over {window:?})"
        );

        env.wait_for("v2 promoted", secs(60), |r| promoted(r, &v2))
            .await;
        // The routes the canary Ingress changed to after the release began: the match phase, then
        // the weighted steps without the header.
        let history = env.history();
        let route = |i: &Value| {
            let header = annotation(i, BY_HEADER).map(str::to_string);
            (history::weight_of(i), header)
        };
        let before = history
            .at("Ingress", CANARY_INGRESS, since + 1)
            .expect("the canary Ingress before the release");
        let routes: Vec<(String, Option<String>)> = history
            .of("Ingress", CANARY_INGRESS)
            .into_iter()
            .filter(|(rv, _)| *rv > since)
            .map(|(_, i)| route(&i))
            .fold(vec![route(&before)], |mut seen, route| {
                if seen.last() != Some(&route) {
                    seen.push(route);
                }
                seen
            })
            .split_off(1);
        assert_eq!(
            routes,
            [
                ("0".to_string(), Some("x-canary".to_string())),
                ("20".to_string(), None),
                ("50".to_string(), None),
                ("0".to_string(), None),
            ]
        );
        env.finish().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_revision_mid_release_supersedes_the_old_one() {
    bounded(async {
        let (env, _) = Env::taken_over(Setup::default(), json!({})).await;
        env.set_image(V2).await;
        let v2 = env.target_revision().await;
        env.wait_for("v2 at step 1", secs(30), |r| {
            let s = status(r);
            s.candidate_revision.as_deref() == Some(v2.as_str()) && s.step == Some(1)
        })
        .await;
        env.wait_canary_weight("20").await;

        let since = env.set_image(V3).await;
        let v3 = env.target_revision().await;
        let done = env
            .wait_for("v3 promoted", secs(60), |r| promoted(r, &v3))
            .await;
        assert_eq!(status(&done).stable_slot, Some(Slot::Green));

        let history = env.history();
        let candidates: Vec<String> = history
            .statuses(APP)
            .into_iter()
            .filter_map(|(_, s)| s.candidate_revision)
            .fold(Vec::new(), |mut seen, c| {
                if seen.last() != Some(&c) {
                    seen.push(c);
                }
                seen
            });
        assert_eq!(candidates, [v2.clone(), v3.clone()]);
        assert!(
            history
                .statuses(APP)
                .iter()
                .all(|(_, s)| s.stable_revision.as_deref() != Some(v2.as_str())),
            "v2 never became stable"
        );
        assert_eq!(
            history.weights_since(since),
            ["0", "20", "50", "0"],
            "traffic back to stable first, then v3 from step 1"
        );
        let zeroed = history
            .canary_weights()
            .into_iter()
            .find(|(rv, w)| *rv > since && w == "0")
            .map(|(rv, _)| rv)
            .expect("weight 0 after the new revision");
        let v3_on_green = history
            .of("Deployment", "reporting-green")
            .into_iter()
            .find(|(_, d)| image_of(d) == Some(V3))
            .map(|(rv, _)| rv)
            .expect("green runs v3");
        assert!(
            zeroed < v3_on_green,
            "weight 0 at rv {zeroed} before green got v3 at rv {v3_on_green}"
        );
        let green = env
            .deployments()
            .get("reporting-green")
            .await
            .expect("green");
        let green = serde_json::to_value(green).expect("serializes");
        assert_eq!(image_of(&green), Some(V3));
        assert_eq!(service_selector(&env).await, slot_selector("green"));
        assert_eq!(status(&done).phase, Phase::Succeeded);
        env.finish().await;
    })
    .await;
}
