//! The rollout arithmetic against what the Deployment controller does, step by step.

use serde_json::json;

use super::super::{NEVER_READY, Pods, READY_AFTER};
use super::*;

fn deployment(replicas: i64, strategy: Value, image: &str, extra: Value) -> Value {
    let mut d = json!({"spec": {
        "replicas": replicas,
        "strategy": strategy,
        "template": {"metadata": {"annotations": {READY_AFTER: "1s"}},
                     "spec": {"containers": [{"name": "c", "image": image}]}},
    }});
    if let (Some(spec), Some(extra)) = (d["spec"].as_object_mut(), extra.as_object()) {
        spec.extend(extra.clone());
    }
    d
}

fn rolling(surge: Value, unavailable: Value) -> Value {
    json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}})
}

fn spec_of(d: &Value) -> Spec {
    let hash = d["spec"]["template"].to_string();
    Spec::parse(d, hash)
}

/// One Deployment under the simulated controllers, with a record of every instant's counts.
struct Run {
    revisions: Revisions,
    counter: u64,
    now: Instant,
    /// (old pods, new pods, available pods) after each reconcile.
    history: Vec<(i64, i64, i64)>,
}

impl Run {
    fn new() -> Self {
        Run {
            revisions: Revisions::default(),
            counter: 0,
            now: Instant::now(),
            history: Vec::new(),
        }
    }

    fn reconcile(&mut self, spec: &Spec) {
        let mut pods = Pods {
            deployment: "api",
            counter: &mut self.counter,
        };
        for _ in 0..self.revisions.step_limit(spec) {
            if !self.revisions.step(spec, self.now, &mut pods) {
                return;
            }
            let c = self.revisions.counts(spec, self.now);
            self.history
                .push((c.replicas - c.updated, c.updated, c.available));
        }
        panic!("no steady state at one instant: {:?}", self.history);
    }

    /// Reconciles at every pod change until nothing is left to happen (or 200 steps).
    fn settle(&mut self, spec: &Spec) {
        self.reconcile(spec);
        for _ in 0..200 {
            let Some(next) = self.revisions.next_change(spec, self.now) else {
                return;
            };
            self.now = next;
            self.reconcile(spec);
        }
        panic!("no steady state after 200 steps: {:?}", self.history);
    }

    fn counts(&self, spec: &Spec) -> Counts {
        self.revisions.counts(spec, self.now)
    }
}

/// Rolls `replicas` from image 1 to image 2 under `strategy`; returns the rollout's history.
fn roll(replicas: i64, strategy: Value, extra: Value) -> Vec<(i64, i64, i64)> {
    let mut run = Run::new();
    run.settle(&spec_of(&deployment(
        replicas,
        strategy.clone(),
        "api:1",
        extra.clone(),
    )));
    run.history.clear();
    let spec = spec_of(&deployment(replicas, strategy, "api:2", extra));
    run.settle(&spec);
    assert!(run.revisions.complete(&spec, run.now), "{:?}", run.history);
    run.history
}

#[test]
fn fenceposts_round_surge_up_and_unavailable_down() {
    let spec = |replicas, strategy| spec_of(&deployment(replicas, strategy, "x", json!({})));
    assert_eq!(spec(10, json!({})).fenceposts(), (3, 2));
    assert_eq!(spec(1, json!({})).fenceposts(), (1, 0));
    assert_eq!(
        spec(4, rolling(json!("30%"), json!("30%"))).fenceposts(),
        (2, 1)
    );
    assert_eq!(
        spec(5, rolling(json!(2), json!("10%"))).fenceposts(),
        (2, 0)
    );
    // Both resolving to 0 would stall: unavailable becomes 1.
    assert_eq!(
        spec(3, rolling(json!(0), json!("10%"))).fenceposts(),
        (0, 1)
    );
    let recreate = spec(3, json!({"type": "Recreate"}));
    assert_eq!((recreate.max_surge(), recreate.max_unavailable()), (0, 0));
}

#[test]
fn surge_only_rollouts_never_exceed_replicas_plus_surge_nor_lose_availability() {
    let history = roll(4, rolling(json!(1), json!(0)), json!({}));
    assert!(
        history.iter().all(|&(old, new, _)| old + new <= 5),
        "{history:?}"
    );
    assert!(
        history.iter().all(|&(_, _, available)| available >= 4),
        "{history:?}"
    );
    // One new pod at a time: four steps of surge, each waited for.
    let new_counts: Vec<i64> = history.iter().map(|h| h.1).collect();
    assert!(
        new_counts.windows(2).all(|w| w[1] - w[0] <= 1),
        "{history:?}"
    );
    assert_eq!(history.last(), Some(&(0, 4, 4)));
}

#[test]
fn unavailable_only_rollouts_never_exceed_replicas() {
    let history = roll(4, rolling(json!(0), json!(1)), json!({}));
    assert!(
        history.iter().all(|&(old, new, _)| old + new <= 4),
        "{history:?}"
    );
    assert!(
        history.iter().all(|&(_, _, available)| available >= 3),
        "{history:?}"
    );
}

#[test]
fn percent_defaults_step_a_ten_replica_rollout() {
    let history = roll(10, json!({}), json!({}));
    // 25% of 10: surge 3, unavailable 2.
    assert!(
        history.iter().all(|&(old, new, _)| old + new <= 13),
        "{history:?}"
    );
    assert!(
        history.iter().all(|&(_, _, available)| available >= 8),
        "{history:?}"
    );
    // The first steps: 3 surge pods, 2 old ones retired, 2 more new ones.
    assert_eq!(
        history[..3],
        [(10, 3, 10), (8, 3, 8), (8, 5, 8)],
        "{history:?}"
    );
}

#[test]
fn recreate_removes_every_old_pod_before_a_new_one_starts() {
    let history = roll(3, json!({"type": "Recreate"}), json!({}));
    assert!(
        history.iter().all(|&(old, new, _)| old == 0 || new == 0),
        "{history:?}"
    );
    assert_eq!(history[..2], [(0, 0, 0), (0, 3, 0)], "{history:?}");
}

#[test]
fn min_ready_seconds_delays_availability_and_the_next_step() {
    let extra = json!({"minReadySeconds": 5});
    let strategy = rolling(json!(1), json!(0));
    let mut run = Run::new();
    let spec = spec_of(&deployment(1, strategy.clone(), "api:1", extra.clone()));
    run.reconcile(&spec);
    run.now += Duration::from_secs(2);
    run.reconcile(&spec);
    let c = run.counts(&spec);
    assert_eq!(
        (c.ready, c.available),
        (1, 0),
        "ready after 1s, available after 6s"
    );
    run.now += Duration::from_secs(4);
    run.reconcile(&spec);
    assert_eq!(run.counts(&spec).available, 1);

    let spec = spec_of(&deployment(1, strategy, "api:2", extra));
    run.reconcile(&spec);
    run.now += Duration::from_secs(2);
    run.reconcile(&spec);
    // The new pod is ready but not yet available: the old one must stay.
    assert_eq!(
        run.counts(&spec),
        Counts {
            replicas: 2,
            updated: 1,
            ready: 2,
            available: 1
        }
    );
    run.now += Duration::from_secs(4);
    run.reconcile(&spec);
    assert_eq!(
        run.counts(&spec),
        Counts {
            replicas: 1,
            updated: 1,
            ready: 1,
            available: 1
        }
    );
}

#[test]
fn scaling_mid_rollout_is_proportional() {
    // The Kubernetes documentation's example: 10 replicas, maxSurge 3, maxUnavailable 2, a new
    // image that never becomes ready, then a scale to 15.
    let strategy = rolling(json!(3), json!(2));
    let mut run = Run::new();
    run.settle(&spec_of(&deployment(
        10,
        strategy.clone(),
        "api:1",
        json!({}),
    )));
    let mut bad = deployment(10, strategy, "api:broken", json!({}));
    bad["spec"]["template"]["metadata"]["annotations"] = json!({NEVER_READY: "true"});
    run.reconcile(&spec_of(&bad));
    let sizes = |run: &Run| {
        run.revisions
            .sets
            .iter()
            .map(|rs| rs.replicas)
            .collect::<Vec<_>>()
    };
    assert_eq!(sizes(&run), [8, 5]);
    bad["spec"]["replicas"] = json!(15);
    run.reconcile(&spec_of(&bad));
    assert_eq!(sizes(&run), [11, 7]);
}

#[test]
fn a_paused_deployment_keeps_its_old_template() {
    let mut run = Run::new();
    run.settle(&spec_of(&deployment(2, json!({}), "api:1", json!({}))));
    let paused = spec_of(&deployment(2, json!({}), "api:2", json!({"paused": true})));
    run.settle(&paused);
    assert_eq!(run.counts(&paused).updated, 0);
    assert_eq!(
        run.revisions.sets.len(),
        1,
        "no ReplicaSet for the new template"
    );
    let resumed = spec_of(&deployment(2, json!({}), "api:2", json!({})));
    run.settle(&resumed);
    assert!(run.revisions.complete(&resumed, run.now));
}

#[test]
fn unready_pods_are_removed_before_ready_ones() {
    let mut run = Run::new();
    let spec = spec_of(&deployment(2, json!({}), "api:1", json!({})));
    run.settle(&spec);
    let scaled = spec_of(&deployment(4, json!({}), "api:1", json!({})));
    run.reconcile(&scaled);
    run.reconcile(&spec);
    let c = run.counts(&spec);
    assert_eq!((c.replicas, c.ready), (2, 2), "the two unready pods went");
}
