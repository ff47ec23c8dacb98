//! The Deployment and ReplicaSet controllers' arithmetic, on simulated ReplicaSets: rolling
//! updates stepped by maxSurge/maxUnavailable, Recreate, proportional scaling, pause, and
//! availability after minReadySeconds. It follows `pkg/controller/deployment` (rolling.go,
//! recreate.go, sync.go, util/deployment_util.go) of Kubernetes 1.33, with two liberties:
//! pods are created and removed at once (no API round trips, no termination grace period),
//! and each decision is taken on live pod counts rather than on a lagging ReplicaSet status.

use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

/// ReplicaSets kept with no pods, for rollbacks (`revisionHistoryLimit` default).
const DEFAULT_HISTORY_LIMIT: usize = 10;

#[derive(Debug, Clone)]
pub struct SimPod {
    pub name: String,
    pub labels: std::collections::BTreeMap<String, String>,
    pub annotations: std::collections::BTreeMap<String, String>,
    pub images: Vec<String>,
    /// None: never ready.
    pub ready_at: Option<Instant>,
    /// Creation order, for the ReplicaSet controller's "newest first" deletions.
    pub serial: u64,
}

impl SimPod {
    pub fn ready(&self, now: Instant) -> bool {
        self.ready_at.is_some_and(|t| t <= now)
    }

    /// Ready for at least `min_ready`, which is what the ReplicaSet controller counts.
    pub fn available(&self, now: Instant, min_ready: Duration) -> bool {
        self.ready_at.is_some_and(|t| t + min_ready <= now)
    }
}

/// A `maxSurge`/`maxUnavailable` value: an int or a percent of the desired replicas.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum IntOrPercent {
    Int(i64),
    Percent(i64),
}

impl IntOrPercent {
    /// `None` for what the API server would refuse (a string that is not `N%`).
    pub fn parse(value: Option<&Value>) -> Option<Self> {
        match value? {
            Value::Number(n) => n.as_i64().map(IntOrPercent::Int),
            Value::String(s) => s.strip_suffix('%')?.parse().ok().map(IntOrPercent::Percent),
            _ => None,
        }
    }

    /// `GetScaledValueFromIntOrPercent`: percents round up or down as asked.
    pub fn scaled(self, total: i64, round_up: bool) -> i64 {
        match self {
            IntOrPercent::Int(n) => n,
            IntOrPercent::Percent(p) if round_up => (p * total + 99).div_euclid(100),
            IntOrPercent::Percent(p) => (p * total).div_euclid(100),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Strategy {
    Recreate,
    RollingUpdate {
        max_surge: IntOrPercent,
        max_unavailable: IntOrPercent,
    },
}

impl Strategy {
    pub fn parse(deployment: &Value) -> Self {
        let strategy = deployment.pointer("/spec/strategy");
        let kind = strategy.and_then(|s| s.get("type")).and_then(Value::as_str);
        if kind == Some("Recreate") {
            return Strategy::Recreate;
        }
        let rolling = strategy.and_then(|s| s.get("rollingUpdate"));
        let field = |name| IntOrPercent::parse(rolling.and_then(|r| r.get(name)));
        // Absent (or unparseable, which the API server would refuse) is the default 25%.
        Strategy::RollingUpdate {
            max_surge: field("maxSurge").unwrap_or(IntOrPercent::Percent(25)),
            max_unavailable: field("maxUnavailable").unwrap_or(IntOrPercent::Percent(25)),
        }
    }
}

/// What the simulation takes from a Deployment's spec.
#[derive(Debug, Clone)]
pub struct Spec {
    pub replicas: i64,
    pub hash: String,
    pub template: Value,
    pub strategy: Strategy,
    pub min_ready: Duration,
    pub paused: bool,
    pub history_limit: usize,
}

impl Spec {
    pub fn parse(deployment: &Value, hash: String) -> Self {
        let spec = |field: &str| deployment.pointer(&format!("/spec/{field}"));
        Spec {
            replicas: spec("replicas").and_then(Value::as_i64).unwrap_or(1).max(0),
            hash,
            template: spec("template").cloned().unwrap_or(Value::Null),
            strategy: Strategy::parse(deployment),
            min_ready: Duration::from_secs(
                spec("minReadySeconds").and_then(Value::as_u64).unwrap_or(0),
            ),
            paused: spec("paused").and_then(Value::as_bool).unwrap_or(false),
            history_limit: spec("revisionHistoryLimit")
                .and_then(Value::as_u64)
                .map_or(DEFAULT_HISTORY_LIMIT, |n| n as usize),
        }
    }

    /// `ResolveFenceposts`: (surge, unavailable); both resolving to 0 makes unavailable 1, or
    /// the rollout could never move.
    pub fn fenceposts(&self) -> (i64, i64) {
        match self.strategy {
            Strategy::Recreate => (0, 0),
            Strategy::RollingUpdate {
                max_surge,
                max_unavailable,
            } => {
                let surge = max_surge.scaled(self.replicas, true).max(0);
                let unavailable = max_unavailable.scaled(self.replicas, false).max(0);
                if surge == 0 && unavailable == 0 {
                    (0, 1)
                } else {
                    (surge, unavailable)
                }
            }
        }
    }

    /// `MaxSurge(deployment)`: 0 unless rolling.
    pub fn max_surge(&self) -> i64 {
        self.fenceposts().0
    }

    /// `MaxUnavailable(deployment)`: 0 unless rolling with replicas, never above replicas.
    pub fn max_unavailable(&self) -> i64 {
        if self.replicas == 0 {
            return 0;
        }
        match self.strategy {
            Strategy::Recreate => 0,
            Strategy::RollingUpdate { .. } => self.fenceposts().1.min(self.replicas),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ReplicaSet {
    pub hash: String,
    pub template: Value,
    /// `spec.replicas`.
    pub replicas: i64,
    pub pods: Vec<SimPod>,
    /// The `deployment.kubernetes.io/desired-replicas` and `max-replicas` annotations, set each
    /// time the Deployment controller scales this ReplicaSet.
    pub desired_annotation: i64,
    pub max_annotation: i64,
}

impl ReplicaSet {
    fn available(&self, now: Instant, min_ready: Duration) -> i64 {
        self.pods
            .iter()
            .filter(|p| p.available(now, min_ready))
            .count() as i64
    }
}

/// The pods and ReplicaSets of one Deployment; `sets` in creation order, oldest first.
#[derive(Debug, Default)]
pub struct Revisions {
    pub sets: Vec<ReplicaSet>,
}

/// Makes a pod of a template; the caller owns naming and readiness.
pub trait PodFactory {
    fn pod(&mut self, hash: &str, template: &Value, now: Instant) -> SimPod;
}

impl Revisions {
    pub fn new_set(&self, spec: &Spec) -> Option<usize> {
        self.sets.iter().position(|rs| rs.hash == spec.hash)
    }

    fn total(&self, which: impl Fn(usize) -> bool) -> i64 {
        (0..self.sets.len())
            .filter(|&i| which(i))
            .map(|i| self.sets[i].replicas)
            .sum()
    }

    /// One sync of the Deployment controller, then of the ReplicaSet controller; true if
    /// either changed something (the caller publishes a status after each step, as the
    /// controller writes one after each scaling).
    pub fn step(&mut self, spec: &Spec, now: Instant, pods: &mut dyn PodFactory) -> bool {
        let scaled = self.sync_deployment(spec, now);
        let churned = self.sync_replica_sets(now, pods);
        if self.complete(spec, now) || spec.paused {
            self.cleanup(spec);
        }
        scaled || churned
    }

    /// The most steps a reconcile at one instant can take: each changes a replica count or a
    /// pod, so this only guards against a bug looping forever.
    pub fn step_limit(&self, spec: &Spec) -> usize {
        4 * (spec.replicas as usize + spec.max_surge() as usize + self.sets.len() + 4)
    }

    /// The pods every ReplicaSet should have: new ones from its template, extra ones removed
    /// unready first, then the most recently ready, then the newest (`ActivePodsWithRanks`).
    fn sync_replica_sets(&mut self, now: Instant, pods: &mut dyn PodFactory) -> bool {
        let mut changed = false;
        for rs in &mut self.sets {
            let want = rs.replicas.max(0) as usize;
            while rs.pods.len() < want {
                let pod = pods.pod(&rs.hash, &rs.template, now);
                rs.pods.push(pod);
                changed = true;
            }
            if rs.pods.len() > want {
                rs.pods.sort_by_key(|p| {
                    let ready = p.ready(now);
                    let since = if ready { p.ready_at } else { None };
                    (!ready, since, p.serial)
                });
                rs.pods.truncate(want);
                changed = true;
            }
        }
        changed
    }

    /// One sync of the Deployment controller; true if it scaled or created a ReplicaSet.
    fn sync_deployment(&mut self, spec: &Spec, now: Instant) -> bool {
        if spec.paused || self.is_scaling_event(spec) {
            return self.scale(spec, now);
        }
        match spec.strategy {
            Strategy::Recreate => self.recreate(spec),
            Strategy::RollingUpdate { .. } => self.rolling(spec, now),
        }
    }

    fn annotate(&mut self, i: usize, spec: &Spec) {
        self.sets[i].desired_annotation = spec.replicas;
        self.sets[i].max_annotation = spec.replicas + spec.max_surge();
    }

    fn set_replicas(&mut self, i: usize, replicas: i64, spec: &Spec) -> bool {
        self.annotate(i, spec);
        let changed = self.sets[i].replicas != replicas;
        self.sets[i].replicas = replicas;
        changed
    }

    fn active(&self) -> Vec<usize> {
        (0..self.sets.len())
            .filter(|&i| self.sets[i].replicas > 0)
            .collect()
    }

    fn is_scaling_event(&self, spec: &Spec) -> bool {
        self.active()
            .iter()
            .any(|&i| self.sets[i].desired_annotation != spec.replicas)
    }

    /// `scale`: a lone active ReplicaSet takes the new size; a saturated new one retires the
    /// old ones; otherwise a rolling Deployment spreads the change in proportion to size.
    fn scale(&mut self, spec: &Spec, now: Instant) -> bool {
        let active = self.active();
        let new = self.new_set(spec);
        if active.len() <= 1 {
            let target = active
                .first()
                .copied()
                .or(new)
                .or(self.sets.len().checked_sub(1));
            return target.is_some_and(|i| self.set_replicas(i, spec.replicas, spec));
        }
        if let Some(n) = new {
            let rs = &self.sets[n];
            let saturated = rs.replicas == spec.replicas
                && rs.desired_annotation == spec.replicas
                && rs.available(now, spec.min_ready) == spec.replicas;
            if saturated {
                let mut changed = false;
                for i in active.into_iter().filter(|&i| i != n) {
                    changed |= self.set_replicas(i, 0, spec);
                }
                return changed;
            }
        }
        if spec.strategy == Strategy::Recreate {
            return false;
        }
        self.scale_proportionally(spec, active)
    }

    fn scale_proportionally(&mut self, spec: &Spec, mut active: Vec<usize>) -> bool {
        let surge = spec.max_surge();
        let allowed = if spec.replicas > 0 {
            spec.replicas + surge
        } else {
            0
        };
        let to_add = allowed - active.iter().map(|&i| self.sets[i].replicas).sum::<i64>();
        // Largest first; ties go to the newest when growing and the oldest when shrinking.
        active.sort_by(|&a, &b| {
            let by_size = self.sets[b].replicas.cmp(&self.sets[a].replicas);
            by_size.then(if to_add > 0 { b.cmp(&a) } else { a.cmp(&b) })
        });
        let mut added = 0;
        let mut sizes: Vec<(usize, i64)> = Vec::new();
        for &i in &active {
            let rs = &self.sets[i];
            let mut proportion = 0;
            if to_add != 0 && to_add != added {
                let fraction = if spec.replicas == 0 {
                    -rs.replicas
                } else {
                    let annotated = rs.max_annotation.max(1);
                    let size =
                        rs.replicas as f64 * (spec.replicas + surge) as f64 / annotated as f64;
                    (size + 0.5).floor() as i64 - rs.replicas
                };
                let left = to_add - added;
                proportion = if to_add > 0 {
                    fraction.min(left)
                } else {
                    fraction.max(left)
                };
            }
            added += proportion;
            sizes.push((i, rs.replicas + proportion));
        }
        if let Some(first) = sizes.first_mut() {
            first.1 = (first.1 + to_add - added).max(0);
        }
        let mut changed = false;
        for (i, size) in sizes {
            changed |= self.set_replicas(i, size, spec);
        }
        changed
    }

    /// A new ReplicaSet starts only once every old pod is gone.
    fn recreate(&mut self, spec: &Spec) -> bool {
        let new = self.new_set(spec);
        let mut changed = false;
        for i in self.active() {
            if Some(i) != new {
                changed |= self.set_replicas(i, 0, spec);
            }
        }
        let old_pods =
            (0..self.sets.len()).any(|i| Some(i) != new && !self.sets[i].pods.is_empty());
        if changed || old_pods {
            return changed;
        }
        let n = new.unwrap_or_else(|| self.create(spec, 0));
        self.set_replicas(n, spec.replicas, spec) || new.is_none()
    }

    fn create(&mut self, spec: &Spec, replicas: i64) -> usize {
        self.sets.push(ReplicaSet {
            hash: spec.hash.clone(),
            template: spec.template.clone(),
            replicas,
            pods: Vec::new(),
            desired_annotation: spec.replicas,
            max_annotation: spec.replicas + spec.max_surge(),
        });
        self.sets.len() - 1
    }

    /// `NewRSNewReplicas`: grow the new ReplicaSet as far as replicas + maxSurge allows.
    fn new_replicas(&self, spec: &Spec, current: i64) -> i64 {
        let total = self.total(|_| true);
        let max_total = spec.replicas + spec.max_surge();
        if total >= max_total {
            return current;
        }
        current + (max_total - total).min(spec.replicas - current)
    }

    fn rolling(&mut self, spec: &Spec, now: Instant) -> bool {
        let n = match self.new_set(spec) {
            Some(n) => n,
            None => {
                let replicas = self.new_replicas(spec, 0);
                self.create(spec, replicas);
                return true;
            }
        };
        let current = self.sets[n].replicas;
        if current != spec.replicas {
            let target = if current > spec.replicas {
                spec.replicas
            } else {
                self.new_replicas(spec, current)
            };
            if self.set_replicas(n, target, spec) {
                return true;
            }
        }
        self.scale_down_old(spec, n, now)
    }

    /// `reconcileOldReplicaSets`: unhealthy old pods go first, then available ones as far as
    /// replicas − maxUnavailable stay available.
    fn scale_down_old(&mut self, spec: &Spec, n: usize, now: Instant) -> bool {
        let old: Vec<usize> = (0..self.sets.len()).filter(|&i| i != n).collect();
        if self.total(|i| i != n) == 0 {
            return false;
        }
        let min_available = spec.replicas - spec.max_unavailable();
        let new_unavailable = self.sets[n].replicas - self.sets[n].available(now, spec.min_ready);
        let max_scaled_down = self.total(|_| true) - min_available - new_unavailable;
        if max_scaled_down <= 0 {
            return false;
        }
        let mut changed = false;
        let mut cleaned = 0;
        for &i in &old {
            if cleaned >= max_scaled_down {
                break;
            }
            let rs = &self.sets[i];
            let unhealthy = rs.replicas - rs.available(now, spec.min_ready);
            if rs.replicas == 0 || unhealthy <= 0 {
                continue;
            }
            let down = unhealthy.min(max_scaled_down - cleaned);
            cleaned += down;
            changed |= self.set_replicas(i, rs.replicas - down, spec);
        }
        // Counted against the replica counts just lowered, as the controller does.
        let available: i64 = (0..self.sets.len())
            .map(|i| {
                let rs = &self.sets[i];
                rs.available(now, spec.min_ready).min(rs.replicas)
            })
            .sum();
        if available <= min_available {
            return changed;
        }
        let mut budget = available - min_available;
        for &i in &old {
            if budget == 0 {
                break;
            }
            let replicas = self.sets[i].replicas;
            if replicas == 0 {
                continue;
            }
            let down = replicas.min(budget);
            budget -= down;
            changed |= self.set_replicas(i, replicas - down, spec);
        }
        changed
    }

    /// `cleanupDeployment`: old ReplicaSets without pods beyond revisionHistoryLimit go.
    fn cleanup(&mut self, spec: &Spec) {
        let new = self.new_set(spec);
        let idle: Vec<usize> = (0..self.sets.len())
            .filter(|&i| {
                Some(i) != new && self.sets[i].replicas == 0 && self.sets[i].pods.is_empty()
            })
            .collect();
        let excess = idle.len().saturating_sub(spec.history_limit);
        let doomed: Vec<usize> = idle.into_iter().take(excess).collect();
        let mut index = 0;
        self.sets.retain(|_| {
            let keep = !doomed.contains(&index);
            index += 1;
            keep
        });
    }

    pub fn counts(&self, spec: &Spec, now: Instant) -> Counts {
        let all = || self.sets.iter().flat_map(|rs| rs.pods.iter());
        Counts {
            replicas: all().count() as i64,
            updated: self
                .new_set(spec)
                .map_or(0, |n| self.sets[n].pods.len() as i64),
            ready: all().filter(|p| p.ready(now)).count() as i64,
            available: all().filter(|p| p.available(now, spec.min_ready)).count() as i64,
        }
    }

    /// `DeploymentComplete`: every desired replica updated and available, nothing else left.
    pub fn complete(&self, spec: &Spec, now: Instant) -> bool {
        let c = self.counts(spec, now);
        c.updated == spec.replicas && c.replicas == spec.replicas && c.available == spec.replicas
    }

    /// The next instant a pod becomes ready or available, which may let the rollout move.
    pub fn next_change(&self, spec: &Spec, now: Instant) -> Option<Instant> {
        self.sets
            .iter()
            .flat_map(|rs| rs.pods.iter())
            .filter_map(|p| p.ready_at)
            .flat_map(|t| [t, t + spec.min_ready])
            .filter(|&t| t > now)
            .min()
    }
}

/// A Deployment's status counts (`calculateStatus`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub replicas: i64,
    pub updated: i64,
    pub ready: i64,
    pub available: i64,
}

impl Counts {
    pub fn of_status(status: Option<&Value>) -> Self {
        let get = |f: &str| {
            status
                .and_then(|s| s.get(f))
                .and_then(Value::as_i64)
                .unwrap_or(0)
        };
        Counts {
            replicas: get("replicas"),
            updated: get("updatedReplicas"),
            ready: get("readyReplicas"),
            available: get("availableReplicas"),
        }
    }

    /// `DeploymentProgressing`: more updated, ready or available pods, or fewer old ones.
    pub fn progressed_since(&self, old: &Counts) -> bool {
        self.updated > old.updated
            || self.replicas - self.updated < old.replicas - old.updated
            || self.ready > old.ready
            || self.available > old.available
    }
}

#[cfg(test)]
#[path = "rollout_tests.rs"]
mod tests;
