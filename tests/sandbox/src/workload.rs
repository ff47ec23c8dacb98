//! The workload simulator: each Deployment gets simulated pods that become ready after the delay
//! its pod template asks for, and a status that follows, as the Deployment and ReplicaSet
//! controllers and the kubelet would report it.
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

pub const READY_AFTER: &str = "sandbox.sluice.dev/ready-after";
pub const NEVER_READY: &str = "sandbox.sluice.dev/never-ready";
const DEFAULT_READY_AFTER: Duration = Duration::from_secs(1);
/// The alphabet Kubernetes uses for generated name suffixes (no vowels, no look-alikes).
const SAFE_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

type Key = (String, String);

#[derive(Debug, Clone)]
struct SimPod {
    name: String,
    hash: String,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    images: Vec<String>,
    /// None: never ready.
    ready_at: Option<Instant>,
}

#[derive(Debug)]
struct DeploymentSim {
    generation: i64,
    hash: String,
    desired: usize,
    pods: Vec<SimPod>,
    progress_since: Instant,
    progress_deadline: Duration,
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

impl Inner {
    fn new_pod(&mut self, deployment: &str, hash: &str, template: &Value, now: Instant) -> SimPod {
        self.pod_counter += 1;
        let mixed = self.pod_counter.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (self.pod_counter >> 7);
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
            name: format!("{deployment}-{hash}-{}", safe_string(mixed, 5)),
            hash: hash.into(),
            labels,
            annotations,
            images,
            ready_at,
        }
    }

    /// Brings the simulated pods in line with the Deployment's spec.
    fn observe(&mut self, deployment: &Value, now: Instant) -> Key {
        let ns = deployment
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let name = deployment
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let key = (ns, name.clone());
        let template = deployment
            .pointer("/spec/template")
            .cloned()
            .unwrap_or(json!({}));
        let hash = template_hash(&template);
        let desired = deployment
            .pointer("/spec/replicas")
            .and_then(Value::as_u64)
            .unwrap_or(1) as usize;
        let generation = deployment
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let deadline = deployment
            .pointer("/spec/progressDeadlineSeconds")
            .and_then(Value::as_u64)
            .unwrap_or(600);
        let mut sim = self.deployments.remove(&key).unwrap_or(DeploymentSim {
            generation: -1,
            hash: String::new(),
            desired: 0,
            pods: Vec::new(),
            progress_since: now,
            progress_deadline: Duration::from_secs(deadline),
        });
        sim.progress_deadline = Duration::from_secs(deadline);
        if sim.generation != generation {
            sim.generation = generation;
            sim.progress_since = now;
        }
        if sim.hash != hash {
            // A new revision: pods of revisions that never became ready go at once; ready ones
            // keep serving until the new revision is fully ready (a surge rollout).
            sim.pods.retain(|p| p.ready_at.is_some_and(|t| t <= now));
            sim.hash = hash.clone();
        }
        let current: Vec<usize> = (0..sim.pods.len())
            .filter(|&i| sim.pods[i].hash == hash)
            .collect();
        if current.len() > desired {
            // Scale down: not-ready pods first, then the newest.
            let mut doomed: Vec<usize> = current.clone();
            doomed.sort_by_key(|&i| {
                (
                    sim.pods[i].ready_at.is_some_and(|t| t <= now),
                    std::cmp::Reverse(i),
                )
            });
            let doomed: BTreeSet<usize> =
                doomed.into_iter().take(current.len() - desired).collect();
            let mut index = 0;
            sim.pods.retain(|_| {
                let keep = !doomed.contains(&index);
                index += 1;
                keep
            });
        }
        for _ in current.len()..desired {
            let pod = self.new_pod(&name, &hash, &template, now);
            if let Some(at) = pod.ready_at {
                self.timers.insert((at, key.clone()));
            }
            sim.pods.push(pod);
        }
        sim.desired = desired;
        self.timers
            .insert((sim.progress_since + sim.progress_deadline, key.clone()));
        self.deployments.insert(key.clone(), sim);
        key
    }

    /// The status the Deployment should show now (and finishes a rollout whose new pods are ready).
    fn status(&mut self, key: &Key, deployment: &Value, now: Instant) -> Option<Value> {
        let sim = self.deployments.get_mut(key)?;
        let is_ready = |p: &SimPod| p.ready_at.is_some_and(|t| t <= now);
        let updated_ready = sim
            .pods
            .iter()
            .filter(|p| p.hash == sim.hash && is_ready(p))
            .count();
        if updated_ready >= sim.desired {
            let hash = sim.hash.clone();
            sim.pods.retain(|p| p.hash == hash);
        }
        let replicas = sim.pods.len();
        let updated = sim.pods.iter().filter(|p| p.hash == sim.hash).count();
        let ready = sim.pods.iter().filter(|p| is_ready(p)).count();
        let desired = sim.desired;
        let max_unavailable = max_unavailable(deployment, desired);
        let complete = updated == desired && replicas == desired && updated_ready >= desired;
        let replica_set = format!("{}-{}", key.1, sim.hash);
        let available = if ready + max_unavailable >= desired {
            (
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.".to_string(),
            )
        } else {
            (
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.".to_string(),
            )
        };
        let progressing = if complete {
            (
                "True",
                "NewReplicaSetAvailable",
                format!("ReplicaSet \"{replica_set}\" has successfully progressed."),
            )
        } else if now >= sim.progress_since + sim.progress_deadline {
            (
                "False",
                "ProgressDeadlineExceeded",
                format!("ReplicaSet \"{replica_set}\" has timed out progressing."),
            )
        } else {
            (
                "True",
                "ReplicaSetUpdated",
                format!("ReplicaSet \"{replica_set}\" is progressing."),
            )
        };
        let previous = deployment
            .pointer("/status/conditions")
            .and_then(Value::as_array);
        let condition = |kind: &str, (status, reason, message): (&str, &str, String)| {
            let old = previous.and_then(|c| c.iter().find(|c| c["type"] == kind));
            let same_status = old.is_some_and(|o| o["status"] == status);
            let same_reason = same_status && old.is_some_and(|o| o["reason"] == reason);
            let now_text = now_rfc3339();
            json!({
                "type": kind, "status": status, "reason": reason, "message": message,
                "lastUpdateTime": if same_reason { old.map(|o| o["lastUpdateTime"].clone()).unwrap_or(json!(now_text)) } else { json!(now_text) },
                "lastTransitionTime": if same_status { old.map(|o| o["lastTransitionTime"].clone()).unwrap_or(json!(now_text)) } else { json!(now_text) },
            })
        };
        let mut status = json!({
            "observedGeneration": sim.generation,
            "conditions": [condition("Available", available), condition("Progressing", progressing)],
        });
        // The real status omits zero counts (omitempty): clients must treat absent as 0.
        for (field, count) in [
            ("replicas", replicas),
            ("updatedReplicas", updated),
            ("readyReplicas", ready),
            ("availableReplicas", ready),
            ("unavailableReplicas", desired.saturating_sub(ready)),
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
                sim.pods.iter().map(move |p| PodView {
                    namespace: ns.clone(),
                    name: p.name.clone(),
                    labels: p.labels.clone(),
                    annotations: p.annotations.clone(),
                    images: p.images.clone(),
                    ready: p.ready_at.is_some_and(|t| t <= now),
                })
            })
            .collect()
    }
}

/// `maxUnavailable` of a RollingUpdate strategy (an int or a percent rounded down; default 25%).
fn max_unavailable(deployment: &Value, desired: usize) -> usize {
    if deployment
        .pointer("/spec/strategy/type")
        .and_then(Value::as_str)
        == Some("Recreate")
    {
        return 0;
    }
    match deployment.pointer("/spec/strategy/rollingUpdate/maxUnavailable") {
        Some(Value::Number(n)) => n.as_u64().unwrap_or(0) as usize,
        Some(Value::String(percent)) => {
            let p: usize = percent.trim_end_matches('%').parse().unwrap_or(25);
            desired * p / 100
        }
        _ => desired / 4,
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
            self.publish(store, kind, &key);
        }
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
        if !spec_same {
            self.lock().observe(&event.object, Instant::now());
        }
        self.publish(store, kind, &key);
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
            self.publish(store, kind, &key);
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

    #[test]
    fn a_new_template_keeps_old_ready_pods_until_the_new_ones_are_ready() {
        let mut inner = Inner::default();
        let t0 = Instant::now();
        let mut d = json!({
            "metadata": {"namespace": "erp", "name": "api", "generation": 1},
            "spec": {"replicas": 2, "template": {"metadata": {"labels": {"app": "api"}}, "spec": {"containers": [{"name": "c", "image": "api:1"}]}}},
        });
        let key = inner.observe(&d, t0);
        let status = inner
            .status(&key, &d, t0 + Duration::from_secs(2))
            .expect("simulated");
        assert_eq!(status["readyReplicas"], 2);
        d["spec"]["template"]["spec"]["containers"][0]["image"] = json!("api:2");
        d["metadata"]["generation"] = json!(2);
        inner.observe(&d, t0 + Duration::from_secs(2));
        let mid = inner
            .status(&key, &d, t0 + Duration::from_millis(2500))
            .expect("simulated");
        assert_eq!(
            (
                mid["replicas"].clone(),
                mid["readyReplicas"].clone(),
                mid["updatedReplicas"].clone()
            ),
            (json!(4), json!(2), json!(2))
        );
        let done = inner
            .status(&key, &d, t0 + Duration::from_secs(4))
            .expect("simulated");
        assert_eq!(
            (done["replicas"].clone(), done["readyReplicas"].clone()),
            (json!(2), json!(2))
        );
        assert_eq!(done["conditions"][1]["reason"], "NewReplicaSetAvailable");
    }

    #[test]
    fn never_ready_pods_stall_and_miss_the_deadline() {
        let mut inner = Inner::default();
        let t0 = Instant::now();
        let d = json!({
            "metadata": {"namespace": "erp", "name": "api", "generation": 1},
            "spec": {"replicas": 1, "progressDeadlineSeconds": 5, "template": {"metadata": {"annotations": {NEVER_READY: "true"}}, "spec": {}}},
        });
        let key = inner.observe(&d, t0);
        let status = inner
            .status(&key, &d, t0 + Duration::from_secs(6))
            .expect("simulated");
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
