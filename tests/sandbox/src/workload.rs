//! The workload simulator: each Deployment gets simulated ReplicaSets and pods that become ready
//! after the delay its pod template asks for, rolled out as the Deployment controller does (see
//! [`rollout`]), and a status that follows, as the Deployment and ReplicaSet controllers and the
//! kubelet would report it.
//!
//! Pod template annotations (contract): `sandbox.sluice.dev/ready-after` (duration, default 1s),
//! `sandbox.sluice.dev/never-ready: "true"`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;

use crate::store::{EventType, ResourceKind, Store, WatchEvent, now_rfc3339};
use crate::traffic::PodView;

mod rollout;
use rollout::{Counts, PodFactory, Revisions, SimPod, Spec};

pub const READY_AFTER: &str = "sandbox.sluice.dev/ready-after";
pub const NEVER_READY: &str = "sandbox.sluice.dev/never-ready";
const DEFAULT_READY_AFTER: Duration = Duration::from_secs(1);
/// The alphabet Kubernetes uses for generated name suffixes (no vowels, no look-alikes).
const SAFE_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

type Key = (String, String);

#[derive(Debug)]
struct DeploymentSim {
    generation: i64,
    spec: Spec,
    revisions: Revisions,
    /// When the rollout last made progress (or was resumed, or got a new ReplicaSet): the
    /// progress deadline counts from here, as from the Progressing condition's lastUpdateTime.
    progress_at: Instant,
    progress_deadline: Duration,
    /// A Progressing reason set outside of status updates (new ReplicaSet, resume), shown until
    /// progress, completion or the deadline replaces it.
    note: Option<(&'static str, String)>,
}

#[derive(Default)]
struct Inner {
    deployments: HashMap<Key, DeploymentSim>,
    timers: BTreeSet<(Instant, Key)>,
    pod_counter: u64,
}

#[derive(Default)]
pub struct Workloads {
    inner: Mutex<Inner>,
}

/// Parses the durations the annotations use: `500ms`, `1s`, `1.5s`, `2m`.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let seconds = match unit {
        "ms" => number / 1000.0,
        "s" => number,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        _ => return None,
    };
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds))
}

fn string_map(value: Option<&Value>) -> BTreeMap<String, String> {
    value
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// A stable hash of the pod template, rendered like pod-template-hash.
fn template_hash(template: &Value) -> String {
    // serde_json's map is ordered by key, so this text is canonical.
    let text = serde_json::to_string(template).unwrap_or_default();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        h = (h ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    safe_string(h, 10)
}

fn safe_string(mut n: u64, len: usize) -> String {
    (0..len)
        .map(|_| {
            let c = SAFE_ALPHABET[(n % SAFE_ALPHABET.len() as u64) as usize] as char;
            n /= SAFE_ALPHABET.len() as u64;
            c
        })
        .collect()
}

/// Pods for one Deployment's ReplicaSets, named and timed as the kubelet would make them ready.
struct Pods<'a> {
    deployment: &'a str,
    counter: &'a mut u64,
}

impl PodFactory for Pods<'_> {
    fn pod(&mut self, hash: &str, template: &Value, now: Instant) -> SimPod {
        *self.counter += 1;
        let serial = *self.counter;
        let mixed = serial.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (serial >> 7);
        let annotations = string_map(template.pointer("/metadata/annotations"));
        let mut labels = string_map(template.pointer("/metadata/labels"));
        labels.insert("pod-template-hash".into(), hash.to_string());
        let ready_at = if annotations.get(NEVER_READY).is_some_and(|v| v == "true") {
            None
        } else {
            let delay = annotations
                .get(READY_AFTER)
                .and_then(|d| parse_duration(d))
                .unwrap_or(DEFAULT_READY_AFTER);
            Some(now + delay)
        };
        let images = template
            .pointer("/spec/containers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|c| c.get("image").and_then(Value::as_str).map(str::to_string))
            .collect();
        SimPod {
            name: format!("{}-{hash}-{}", self.deployment, safe_string(mixed, 5)),
            labels,
            annotations,
            images,
            ready_at,
            serial,
        }
    }
}

const DEFAULT_PROGRESS_DEADLINE_S: u64 = 600;

impl Inner {
    /// Takes in a new spec of a Deployment and lets the controllers act on it.
    fn observe(&mut self, deployment: &Value, now: Instant) -> Key {
        let key = key_of(deployment);
        let template = deployment
            .pointer("/spec/template")
            .cloned()
            .unwrap_or(json!({}));
        let spec = Spec::parse(deployment, template_hash(&template));
        let generation = deployment
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let deadline = deployment
            .pointer("/spec/progressDeadlineSeconds")
            .and_then(Value::as_u64)
            .unwrap_or(DEFAULT_PROGRESS_DEADLINE_S);
        let mut sim = self.deployments.remove(&key).unwrap_or(DeploymentSim {
            generation: -1,
            spec: spec.clone(),
            revisions: Revisions::default(),
            progress_at: now,
            progress_deadline: Duration::from_secs(deadline),
            note: None,
        });
        if sim.spec.paused && !spec.paused {
            sim.progress_at = now;
            sim.note = Some(("DeploymentResumed", "Deployment is resumed".into()));
        }
        sim.generation = generation;
        sim.progress_deadline = Duration::from_secs(deadline);
        sim.spec = spec;
        self.deployments.insert(key.clone(), sim);
        key
    }

    /// One step of the controllers for `key` at `now`, and a timer for its next pod change;
    /// true if the step changed anything (another may follow at the same instant).
    fn tick(&mut self, key: &Key, now: Instant) -> bool {
        let Some(sim) = self.deployments.get_mut(key) else {
            return false;
        };
        let had_new_set = sim.revisions.new_set(&sim.spec).is_some();
        let mut pods = Pods {
            deployment: &key.1,
            counter: &mut self.pod_counter,
        };
        let changed = sim.revisions.step(&sim.spec, now, &mut pods);
        if !had_new_set && sim.revisions.new_set(&sim.spec).is_some() {
            sim.progress_at = now;
            let name = format!("{}-{}", key.1, sim.spec.hash);
            sim.note = Some((
                "NewReplicaSetCreated",
                format!("Created new replica set \"{name}\""),
            ));
        }
        let mut next = sim.revisions.next_change(&sim.spec, now);
        if !sim.spec.paused && !sim.revisions.complete(&sim.spec, now) {
            let deadline = sim.progress_at + sim.progress_deadline;
            next = Some(next.map_or(deadline, |n| n.min(deadline)));
        }
        if let Some(at) = next.filter(|&at| at > now) {
            self.timers.insert((at, key.clone()));
        }
        changed
    }

    /// The status the Deployment should show now, as `syncDeploymentStatus` computes it.
    fn status(&mut self, key: &Key, deployment: &Value, now: Instant) -> Option<Value> {
        let sim = self.deployments.get_mut(key)?;
        let counts = sim.revisions.counts(&sim.spec, now);
        let previous = deployment.get("status");
        let conditions = previous
            .and_then(|s| s.get("conditions"))
            .and_then(Value::as_array);
        let old = |kind: &str| conditions.and_then(|c| c.iter().find(|c| c["type"] == kind));
        let available = if counts.available >= sim.spec.replicas - sim.spec.max_unavailable() {
            Condition::new(
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.",
            )
        } else {
            Condition::new(
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.",
            )
        };
        let progressing = progressing(sim, &key.1, counts, previous, old("Progressing"), now);
        let mut status = json!({
            "observedGeneration": sim.generation,
            "conditions": [
                available.render("Available", old("Available")),
                progressing.render("Progressing", old("Progressing")),
            ],
        });
        // The real status omits zero counts (omitempty): clients must treat absent as 0.
        for (field, count) in [
            ("replicas", counts.replicas),
            ("updatedReplicas", counts.updated),
            ("readyReplicas", counts.ready),
            ("availableReplicas", counts.available),
            (
                "unavailableReplicas",
                (sim.spec.replicas - counts.available).max(0),
            ),
        ] {
            if count > 0 {
                status[field] = json!(count);
            }
        }
        Some(status)
    }

    fn pod_views(&self, now: Instant, wanted: &dyn Fn(&str) -> bool) -> Vec<PodView> {
        self.deployments
            .iter()
            .filter(|((ns, _), _)| wanted(ns))
            .flat_map(|((ns, _), sim)| {
                sim.revisions
                    .sets
                    .iter()
                    .flat_map(|rs| rs.pods.iter())
                    .map(move |p| PodView {
                        namespace: ns.clone(),
                        name: p.name.clone(),
                        labels: p.labels.clone(),
                        annotations: p.annotations.clone(),
                        images: p.images.clone(),
                        ready: p.ready(now),
                    })
            })
            .collect()
    }
}

/// A Deployment condition before its timestamps are decided.
struct Condition {
    status: String,
    reason: String,
    message: String,
    /// Progress was just made: lastUpdateTime moves even though the reason stays.
    touched: bool,
}

impl Condition {
    fn new(status: &str, reason: &str, message: impl Into<String>) -> Self {
        Condition {
            status: status.into(),
            reason: reason.into(),
            message: message.into(),
            touched: false,
        }
    }

    /// lastTransitionTime moves with the status, lastUpdateTime with the reason (or progress).
    fn render(&self, kind: &str, old: Option<&Value>) -> Value {
        let same_status = old.is_some_and(|o| o["status"] == self.status.as_str());
        let same_reason = same_status && old.is_some_and(|o| o["reason"] == self.reason.as_str());
        let now_text = json!(now_rfc3339());
        let kept = |field: &str, keep: bool| match old {
            Some(o) if keep => o[field].clone(),
            _ => now_text.clone(),
        };
        json!({
            "type": kind, "status": self.status, "reason": self.reason, "message": self.message,
            "lastUpdateTime": kept("lastUpdateTime", same_reason && !self.touched),
            "lastTransitionTime": kept("lastTransitionTime", same_status),
        })
    }
}

/// The Progressing condition: `checkPausedConditions`, then `syncRolloutStatus` (complete,
/// progressing, timed out, else unchanged).
fn progressing(
    sim: &mut DeploymentSim,
    name: &str,
    counts: Counts,
    previous: Option<&Value>,
    old: Option<&Value>,
    now: Instant,
) -> Condition {
    let replica_set = format!("{name}-{}", sim.spec.hash);
    let old_reason = old.and_then(|c| c["reason"].as_str()).unwrap_or("");
    let timed_out = || {
        Condition::new(
            "False",
            "ProgressDeadlineExceeded",
            format!("ReplicaSet \"{replica_set}\" has timed out progressing."),
        )
    };
    if sim.spec.paused {
        // A reported lack of progress is not overwritten by the pause.
        if old_reason == "ProgressDeadlineExceeded" {
            return timed_out();
        }
        return Condition::new("Unknown", "DeploymentPaused", "Deployment is paused");
    }
    if sim.revisions.complete(&sim.spec, now) {
        sim.note = None;
        let message = format!("ReplicaSet \"{replica_set}\" has successfully progressed.");
        return Condition::new("True", "NewReplicaSetAvailable", message);
    }
    if counts.progressed_since(&Counts::of_status(previous)) {
        sim.note = None;
        sim.progress_at = now;
        let message = format!("ReplicaSet \"{replica_set}\" is progressing.");
        let mut condition = Condition::new("True", "ReplicaSetUpdated", message);
        condition.touched = true;
        return condition;
    }
    let deadline_passed = now >= sim.progress_at + sim.progress_deadline;
    if old_reason == "ProgressDeadlineExceeded"
        || (old_reason != "NewReplicaSetAvailable" && deadline_passed)
    {
        sim.note = None;
        return timed_out();
    }
    if let Some((reason, message)) = &sim.note {
        let status = if *reason == "DeploymentResumed" {
            "Unknown"
        } else {
            "True"
        };
        return Condition::new(status, reason, message.clone());
    }
    match old {
        Some(o) => Condition::new(
            o["status"].as_str().unwrap_or("True"),
            o["reason"].as_str().unwrap_or("ReplicaSetUpdated"),
            o["message"].as_str().unwrap_or(""),
        ),
        None => Condition::new(
            "True",
            "ReplicaSetUpdated",
            format!("ReplicaSet \"{replica_set}\" is progressing."),
        ),
    }
}

impl Workloads {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Every simulated pod, ready or not, as the traffic simulator and `/sandbox/pods` see them.
    pub fn pods(&self) -> Vec<PodView> {
        self.lock().pod_views(Instant::now(), &|_| true)
    }

    /// The simulated pods of the namespaces `wanted` accepts: the traffic simulator's view, which
    /// would otherwise copy every pod of a large cluster on every tick.
    pub fn pods_in(&self, wanted: impl Fn(&str) -> bool) -> Vec<PodView> {
        self.lock().pod_views(Instant::now(), &wanted)
    }

    /// Follows the store until `shutdown` says stop.
    pub async fn run(
        self: Arc<Self>,
        store: Arc<Store>,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        let Some(kind) = store.resolve("apps", "v1", "deployments") else {
            return;
        };
        let mut events = store.subscribe();
        self.resync(&store, &kind);
        loop {
            let next_timer = self.lock().timers.first().map(|(at, _)| *at);
            tokio::select! {
                received = events.recv() => match received {
                    Ok(event) => self.on_event(&store, &kind, &event),
                    Err(RecvError::Lagged(_)) => self.resync(&store, &kind),
                    Err(RecvError::Closed) => return,
                },
                _ = tokio::time::sleep_until(next_timer.unwrap_or_else(Instant::now)), if next_timer.is_some() => {
                    self.fire_timers(&store, &kind);
                }
                _ = shutdown.changed() => return,
            }
        }
    }

    fn resync(&self, store: &Store, kind: &Arc<ResourceKind>) {
        let deployments = store.list_all("apps", "deployments", None);
        let now = Instant::now();
        let keys: Vec<Key> = {
            let mut inner = self.lock();
            let live: BTreeSet<Key> = deployments.iter().map(|d| key_of(d)).collect();
            inner.deployments.retain(|k, _| live.contains(k));
            deployments.iter().map(|d| inner.observe(d, now)).collect()
        };
        for key in keys {
            self.settle(store, kind, &key, now);
        }
    }

    /// Steps the controllers for `key` until they rest at `now`, publishing the status after
    /// each step so the history shows every intermediate state a client could have read.
    fn settle(&self, store: &Store, kind: &Arc<ResourceKind>, key: &Key, now: Instant) {
        let limit = match self.lock().deployments.get(key) {
            Some(sim) => sim.revisions.step_limit(&sim.spec),
            None => return,
        };
        for _ in 0..limit {
            let changed = self.lock().tick(key, now);
            self.publish(store, kind, key);
            if !changed {
                return;
            }
        }
        tracing::warn!(
            "the rollout simulation of Deployment {}/{} did not settle in {limit} steps",
            key.0,
            key.1
        );
    }

    fn on_event(&self, store: &Store, kind: &Arc<ResourceKind>, event: &WatchEvent) {
        if event.resource.0 != "apps" || event.resource.1 != "deployments" {
            return;
        }
        let key = (event.namespace.clone(), event.name.clone());
        if event.event_type == EventType::Deleted {
            self.lock().deployments.remove(&key);
            return;
        }
        // Status-only changes (our own writes among them) change nothing in the pods.
        let spec_same = event
            .previous
            .as_ref()
            .is_some_and(|p| p.get("spec") == event.object.get("spec"));
        if spec_same {
            self.publish(store, kind, &key);
            return;
        }
        let now = Instant::now();
        self.lock().observe(&event.object, now);
        self.settle(store, kind, &key, now);
    }

    fn fire_timers(&self, store: &Store, kind: &Arc<ResourceKind>) {
        let now = Instant::now();
        let due: BTreeSet<Key> = {
            let mut inner = self.lock();
            let mut due = BTreeSet::new();
            while let Some((at, key)) = inner.timers.first().cloned() {
                if at > now {
                    break;
                }
                inner.timers.pop_first();
                due.insert(key);
            }
            due
        };
        for key in due {
            // A pod became ready or available, or a deadline passed: the controllers look again.
            self.settle(store, kind, &key, now);
        }
    }

    /// Writes the status the simulation implies, when it differs from what the object shows.
    fn publish(&self, store: &Store, kind: &Arc<ResourceKind>, key: &Key) {
        let Ok(current) = store.get(kind, &key.0, &key.1) else {
            self.lock().deployments.remove(key);
            return;
        };
        let Some(status) = self.lock().status(key, &current, Instant::now()) else {
            return;
        };
        if current.get("status") == Some(&status) {
            return;
        }
        // The deployment may have been deleted since the read; nothing to report then.
        let _ = store.write_status(kind, &key.0, &key.1, status);
    }
}

fn key_of(deployment: &Value) -> Key {
    (
        deployment
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        deployment
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_as_the_annotations_write_them() {
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("soon"), None);
        assert_eq!(parse_duration("5"), None);
    }

    /// Runs the controllers at `at` and returns the status, written back onto `d` as the
    /// store would, so the next status is computed against it.
    fn status_at(inner: &mut Inner, key: &Key, d: &mut Value, at: Instant) -> Value {
        loop {
            let changed = inner.tick(key, at);
            let status = inner.status(key, d, at).expect("simulated");
            d["status"] = status.clone();
            if !changed {
                return status;
            }
        }
    }

    fn counts(status: &Value) -> [i64; 4] {
        [
            "replicas",
            "updatedReplicas",
            "readyReplicas",
            "availableReplicas",
        ]
        .map(|f| status[f].as_i64().unwrap_or(0))
    }

    #[test]
    fn a_new_template_rolls_out_one_surge_pod_at_a_time() {
        let mut inner = Inner::default();
        let t0 = Instant::now();
        let secs = |s: u64| t0 + Duration::from_secs(s);
        let mut d = json!({
            "metadata": {"namespace": "erp", "name": "api", "generation": 1},
            "spec": {"replicas": 2, "template": {"metadata": {"labels": {"app": "api"}}, "spec": {"containers": [{"name": "c", "image": "api:1"}]}}},
        });
        let key = inner.observe(&d, t0);
        let created = status_at(&mut inner, &key, &mut d, t0);
        assert_eq!(counts(&created), [2, 2, 0, 0]);
        assert_eq!(
            counts(&status_at(&mut inner, &key, &mut d, secs(2))),
            [2, 2, 2, 2]
        );
        d["spec"]["template"]["spec"]["containers"][0]["image"] = json!("api:2");
        d["metadata"]["generation"] = json!(2);
        inner.observe(&d, secs(2));
        // 25% of 2: surge rounds up to 1, unavailable down to 0.
        let mid = status_at(&mut inner, &key, &mut d, secs(2));
        assert_eq!(mid["observedGeneration"], 2);
        assert_eq!(counts(&mid), [3, 1, 2, 2]);
        // More old pods than before and no new one ready: no progress yet, a new ReplicaSet.
        assert_eq!(mid["conditions"][1]["reason"], "NewReplicaSetCreated");
        // The first new pod is ready: one old pod goes, a second new one starts.
        let next = status_at(&mut inner, &key, &mut d, secs(3));
        assert_eq!(counts(&next), [3, 2, 2, 2]);
        assert_eq!(next["unavailableReplicas"], json!(null));
        assert_eq!(next["conditions"][1]["reason"], "ReplicaSetUpdated");
        let done = status_at(&mut inner, &key, &mut d, secs(4));
        assert_eq!(counts(&done), [2, 2, 2, 2]);
        assert_eq!(done["conditions"][1]["reason"], "NewReplicaSetAvailable");
    }

    #[test]
    fn paused_deployments_start_no_new_template_and_say_so() {
        let mut inner = Inner::default();
        let t0 = Instant::now();
        let secs = |s: u64| t0 + Duration::from_secs(s);
        let mut d = json!({
            "metadata": {"namespace": "erp", "name": "api", "generation": 1},
            "spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "c", "image": "api:1"}]}}},
        });
        let key = inner.observe(&d, t0);
        status_at(&mut inner, &key, &mut d, t0);
        status_at(&mut inner, &key, &mut d, secs(2));
        d["spec"]["paused"] = json!(true);
        d["spec"]["replicas"] = json!(3);
        d["spec"]["template"]["spec"]["containers"][0]["image"] = json!("api:2");
        d["metadata"]["generation"] = json!(2);
        inner.observe(&d, secs(2));
        status_at(&mut inner, &key, &mut d, secs(2));
        let paused = status_at(&mut inner, &key, &mut d, secs(10));
        // Scaling still happens while paused, on the old template.
        assert_eq!(counts(&paused), [3, 0, 3, 3]);
        assert_eq!(paused["observedGeneration"], 2);
        let progressing = &paused["conditions"][1];
        assert_eq!(
            (&progressing["status"], &progressing["reason"]),
            (&json!("Unknown"), &json!("DeploymentPaused"))
        );
        d["spec"]["paused"] = json!(false);
        d["metadata"]["generation"] = json!(3);
        inner.observe(&d, secs(10));
        let resumed = status_at(&mut inner, &key, &mut d, secs(10));
        assert_eq!(counts(&resumed)[1], 1, "the rollout starts on resume");
        let mut done = resumed;
        for half_seconds in 21..=40 {
            done = status_at(
                &mut inner,
                &key,
                &mut d,
                t0 + Duration::from_millis(500 * half_seconds),
            );
        }
        assert_eq!(counts(&done), [3, 3, 3, 3]);
    }

    #[test]
    fn never_ready_pods_stall_and_miss_the_deadline() {
        let mut inner = Inner::default();
        let t0 = Instant::now();
        let d = json!({
            "metadata": {"namespace": "erp", "name": "api", "generation": 1},
            "spec": {"replicas": 1, "progressDeadlineSeconds": 5, "template": {"metadata": {"annotations": {NEVER_READY: "true"}}, "spec": {}}},
        });
        let mut d = d;
        let key = inner.observe(&d, t0);
        let started = status_at(&mut inner, &key, &mut d, t0);
        assert_eq!(started["conditions"][1]["reason"], "ReplicaSetUpdated");
        let status = status_at(&mut inner, &key, &mut d, t0 + Duration::from_secs(6));
        assert!(
            status.get("readyReplicas").is_none(),
            "zero counts are omitted"
        );
        assert_eq!(status["conditions"][0]["status"], "False");
        assert_eq!(
            status["conditions"][1]["reason"],
            "ProgressDeadlineExceeded"
        );
    }
}
