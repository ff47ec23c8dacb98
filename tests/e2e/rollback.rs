//! Releases that must be rolled back: a 5xx regression, a latency regression, a candidate that
//! never becomes ready, and a Prometheus nobody can reach. Each proves from the history that the
//! canary weight was 0 before the candidate slot shrank.

use serde_json::{Value, json};
use sluice_strategies::status::{CONDITION_PROMOTED, ConditionStatus, Phase, Slot};

use crate::harness::{APP, Env, Setup, bounded, condition, dead_prometheus_url, secs, status};

const CANDIDATE: &str = "reporting-green";

/// What a rollback test changes and expects.
struct Case {
    setup: Setup,
    /// Merged into the Rollout.
    overrides: Value,
    /// None: the sandbox's Prometheus.
    prometheus_url: Option<String>,
    /// The strategic merge patch CI applies to the target.
    change: Value,
    /// Words the reason in `status.message` must hold.
    reason: &'static [&'static str],
    /// Whether the candidate got traffic (step 1) before it was given up.
    had_traffic: bool,
}

fn image(image: &str) -> Value {
    json!({"spec": {"template": {"spec": {"containers": [{"name": APP, "image": image}]}}}})
}

/// Runs a release that must end rolled back, and checks everything a rollback promises.
/// Returns the history's statuses after the change, for case-specific checks.
async fn rolled_back(case: Case) -> Vec<(u64, sluice_strategies::status::RolloutStatus)> {
    let mut env = Env::start(case.setup).await;
    env.create_rollout(APP, case.overrides).await;
    match &case.prometheus_url {
        Some(url) => env.start_controller_with(url).await,
        None => env.start_controller().await,
    }
    let v1 = env.wait_taken_over().await;
    let since = env.patch_target(case.change).await;
    let v2 = env.target_revision().await;
    assert_ne!(v1, v2);
    let done = env.wait_phase(Phase::RolledBack, secs(60)).await;

    let s = status(&done);
    let message = s.message.clone().unwrap_or_default();
    println!("rolled back: {message}");
    for word in case.reason {
        assert!(message.contains(word), "{word:?} in the message: {message}");
    }
    assert!(message.contains(&v2), "the message names {v2}: {message}");
    assert_eq!(s.stable_revision.as_deref(), Some(v1.as_str()));
    assert_eq!(s.stable_slot, Some(Slot::Blue));
    assert_eq!(s.rolled_back_revision.as_deref(), Some(v2.as_str()));
    assert_eq!(
        condition(&done, CONDITION_PROMOTED),
        Some((ConditionStatus::False, "RolledBack".to_string()))
    );
    let service = env.history().of("Service", crate::harness::SERVICE);
    let (_, service) = service.last().expect("reporting-service");
    assert_eq!(service["spec"]["selector"]["sluice.dev/slot"], "blue");

    let history = env.history();
    let (zeroed, shrunk) = history.assert_weight_zero_before_scale_down(CANDIDATE, since);
    let weights = history.weights_since(since);
    if case.had_traffic {
        assert_eq!(
            weights,
            ["20", "0"],
            "step 1 only, then traffic back to stable"
        );
        assert!(
            history
                .canary_weights()
                .iter()
                .any(|(rv, w)| *rv > since && *rv < zeroed && w == "20"),
            "the candidate had 20% before the weight went to 0 at rv {zeroed}"
        );
    } else {
        assert!(
            weights.is_empty(),
            "no traffic ever reached the candidate: {weights:?}"
        );
    }
    let green_after: Vec<_> = history
        .replicas(CANDIDATE)
        .into_iter()
        .filter(|(rv, _)| *rv >= shrunk)
        .collect();
    assert_eq!(green_after.last().map(|(_, r)| *r), Some(Some(0)));

    let statuses: Vec<_> = history
        .statuses(APP)
        .into_iter()
        .filter(|(rv, _)| *rv > since)
        .collect();
    assert!(
        statuses
            .iter()
            .all(|(_, s)| s.stable_revision.as_deref() != Some(v2.as_str())
                && s.phase != Phase::Succeeded),
        "never promoted"
    );
    // The time from the first failed check (or the decision, with none) to traffic back on
    // stable: one rollback, timed once.
    let metrics = crate::metrics::scrape(&env).await;
    let timed = format!(
        "sluice_rollback_duration_seconds_count{{namespace=\"{}\"}} 1",
        crate::harness::NS
    );
    assert!(metrics.contains(&timed), "{timed} in:\n{metrics}");
    assert!(s.first_failure_at.is_some(), "the clock started");
    let cause = s
        .rollback_cause
        .expect("a rolled-back release says why in one word");
    let counted = format!(
        "sluice_rollbacks_total{{namespace=\"{}\",rollout=\"{APP}\",cause=\"{}\"}} 1",
        crate::harness::NS,
        cause.as_str()
    );
    assert!(metrics.contains(&counted), "{counted} in:\n{metrics}");
    env.finish().await;
    statuses
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_5xx_regression_is_rolled_back() {
    bounded(async {
        rolled_back(Case {
            setup: Setup::default(),
            overrides: json!({}),
            prometheus_url: None,
            change: image("erp/reporting:1.1.0-errors"),
            reason: &["error-rate", "failureLimit 1"],
            had_traffic: true,
        })
        .await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_latency_regression_is_rolled_back() {
    bounded(async {
        rolled_back(Case {
            setup: Setup::default(),
            overrides: json!({}),
            prometheus_url: None,
            change: image("erp/reporting:1.1.0-slow"),
            reason: &["latency-p99", "failureLimit 1"],
            had_traffic: true,
        })
        .await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_candidate_that_never_becomes_ready_is_rolled_back_at_the_deadline() {
    bounded(async {
        let change = json!({"spec": {"template": {"metadata": {"annotations": {
            "sandbox.sluice.dev/never-ready": "true"
        }}}}});
        let statuses = rolled_back(Case {
            setup: Setup::default(),
            overrides: json!({}),
            prometheus_url: None,
            change,
            reason: &["not ready after progressDeadline 20s", "0/2 ready"],
            had_traffic: false,
        })
        .await;
        // Given up at the deadline, not before.
        let (_, giving_up) = statuses
            .iter()
            .find(|(_, s)| s.rollback_reason.is_some())
            .expect("a rollback");
        let started = giving_up.release_started_at.expect("a release start");
        let gave_up = giving_up.stage_started_at.expect("when the rollback began");
        assert!(
            gave_up - started >= chrono::Duration::seconds(20),
            "rolled back {} after the release started",
            gave_up - started
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_prometheus_never_promotes_and_rolls_back() {
    bounded(async {
        let statuses = rolled_back(Case {
            setup: Setup {
                prometheus: false,
                ..Setup::default()
            },
            overrides: json!({"spec": {"analysis": {"errorLimit": 1}}}),
            prometheus_url: Some(dead_prometheus_url()),
            change: image("erp/reporting:1.1.0"),
            reason: &["unreachable", "errorLimit 1"],
            had_traffic: true,
        })
        .await;
        assert!(
            statuses
                .iter()
                .all(|(_, s)| s.step.is_none_or(|step| step <= 1)),
            "a check that could not run never passes a step"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spec_made_invalid_mid_release_sends_traffic_back_then_starts_again_once_fixed() {
    use kube::api::{Patch, PatchParams};
    bounded(async {
        let (env, _) = Env::taken_over(Setup::default(), json!({})).await;
        env.set_image("erp/reporting:1.1.0").await;
        let v2 = env.target_revision().await;
        env.wait_canary_weight("20").await;
        let steps = |steps: Value| {
            Patch::Merge(json!({"spec": {"strategy": {"canary": {"steps": steps}}}}))
        };
        let broken = env
            .rollouts()
            .patch(APP, &PatchParams::default(), &steps(json!([50, 10])))
            .await
            .expect("the steps patched")
            .metadata
            .resource_version
            .and_then(|rv| rv.parse::<u64>().ok())
            .expect("a resourceVersion");
        env.wait_for("InvalidSpec", secs(15), |r| {
            status(r).phase == Phase::Failed
                && status(r).stage == Some(sluice_strategies::status::Stage::Superseding)
        })
        .await;
        // The canary Ingress goes: no weight is left on a candidate no plan judges.
        crate::harness::eventually(secs(10), "the canary Ingress deleted", || async {
            let gone = env
                .history()
                .of("Ingress", crate::harness::CANARY_INGRESS)
                .iter()
                .any(|(rv, o)| *rv > broken && o.is_null());
            gone.then_some(())
        })
        .await;
        let history = env.history();
        assert!(
            history
                .replicas(CANDIDATE)
                .iter()
                .filter(|(rv, _)| *rv > broken)
                .all(|(_, replicas)| *replicas == Some(2)),
            "the candidate keeps its pods while it waits for a fixed spec"
        );

        env.rollouts()
            .patch(APP, &PatchParams::default(), &steps(json!([20, 50])))
            .await
            .expect("the steps fixed");
        let done = env
            .wait_for("v2 promoted", secs(60), |r| {
                crate::harness::promoted(r, &v2)
            })
            .await;
        assert_eq!(status(&done).stable_slot, Some(Slot::Green));
        env.finish().await;
    })
    .await;
}
