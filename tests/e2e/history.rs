//! Questions to the sandbox's log of every write: what the cluster looked like at each
//! resourceVersion, so that orderings are proven from what happened rather than assumed.

use std::sync::Arc;

use serde_json::Value;
use sluice_sandbox::store::{EventType, WatchEvent};
use sluice_strategies::status::RolloutStatus;

use crate::harness::{CANARY_INGRESS, NS};

pub const WEIGHT: &str = "nginx.ingress.kubernetes.io/canary-weight";

/// The resource of a kind as the store keys it: (group, plural).
fn key(kind: &str) -> (&'static str, &'static str) {
    match kind {
        "Deployment" => ("apps", "deployments"),
        "Service" => ("", "services"),
        "Ingress" => ("networking.k8s.io", "ingresses"),
        "Rollout" => ("sluice.dev", "rollouts"),
        other => panic!("no store key for {other}"),
    }
}

/// The sandbox's history, in resourceVersion order.
pub struct History {
    events: Vec<Arc<WatchEvent>>,
}

impl History {
    pub fn new(mut events: Vec<Arc<WatchEvent>>) -> History {
        events.sort_by_key(|e| e.resource_version);
        History { events }
    }

    /// Every change of one object of erp-system: (resourceVersion, object; Null once deleted).
    pub fn of(&self, kind: &str, name: &str) -> Vec<(u64, Value)> {
        let (group, plural) = key(kind);
        self.events
            .iter()
            .filter(|e| {
                e.resource.0 == group
                    && e.resource.1 == plural
                    && e.namespace == NS
                    && e.name == name
            })
            .map(|e| {
                let object = match e.event_type {
                    EventType::Deleted => Value::Null,
                    _ => (*e.object).clone(),
                };
                (e.resource_version, object)
            })
            .collect()
    }

    /// Every change of the slot a Service selects: (resourceVersion, time, slot), in order.
    pub fn selector_slots(
        &self,
        service: &str,
    ) -> Vec<(u64, chrono::DateTime<chrono::Utc>, String)> {
        let (group, plural) = key("Service");
        let mut changes: Vec<(u64, chrono::DateTime<chrono::Utc>, String)> = Vec::new();
        for e in &self.events {
            if e.resource.0 != group
                || e.resource.1 != plural
                || e.namespace != NS
                || e.name != service
            {
                continue;
            }
            let slot = e.object["spec"]["selector"]["sluice.dev/slot"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            if changes.last().is_none_or(|(_, _, last)| *last != slot) {
                changes.push((e.resource_version, e.time, slot));
            }
        }
        changes
    }

    /// Whether any object of this kind and name was ever written in erp-system.
    pub fn ever(&self, kind: &str, name: &str) -> bool {
        !self.of(kind, name).is_empty()
    }

    /// The object as it was just before `rv` (None: absent then).
    pub fn at(&self, kind: &str, name: &str, rv: u64) -> Option<Value> {
        self.of(kind, name)
            .into_iter()
            .rev()
            .find(|(at, _)| *at < rv)
            .map(|(_, obj)| obj)
            .filter(|obj| !obj.is_null())
    }

    /// The canary Ingress's weight at each of its changes: "" when it has none or is gone.
    pub fn canary_weights(&self) -> Vec<(u64, String)> {
        self.of("Ingress", CANARY_INGRESS)
            .into_iter()
            .map(|(rv, obj)| (rv, weight_of(&obj)))
            .collect()
    }

    /// The weights the canary Ingress changed to after `since`, in order (writes that left the
    /// weight as it was are not changes).
    pub fn weights_since(&self, since: u64) -> Vec<String> {
        let weights = self.canary_weights();
        let mut current = weights
            .iter()
            .rev()
            .find(|(rv, _)| *rv <= since)
            .map(|(_, w)| w.clone());
        let mut changes = Vec::new();
        for (_, weight) in weights.into_iter().filter(|(rv, _)| *rv > since) {
            if current.as_ref() != Some(&weight) {
                changes.push(weight.clone());
                current = Some(weight);
            }
        }
        changes
    }

    /// `spec.replicas` of a Deployment at each of its changes (None once deleted).
    pub fn replicas(&self, name: &str) -> Vec<(u64, Option<i64>)> {
        self.of("Deployment", name)
            .into_iter()
            .map(|(rv, obj)| (rv, obj.pointer("/spec/replicas").and_then(Value::as_i64)))
            .collect()
    }

    /// The first resourceVersion after `since` at which the Deployment's `spec.replicas` went
    /// down.
    pub fn first_decrease(&self, name: &str, since: u64) -> Option<u64> {
        let mut previous = None;
        for (rv, replicas) in self.replicas(name) {
            if rv > since
                && let (Some(before), Some(now)) = (previous, replicas)
                && now < before
            {
                return Some(rv);
            }
            previous = replicas;
        }
        None
    }

    /// The Rollout's status at each of its changes.
    pub fn statuses(&self, name: &str) -> Vec<(u64, RolloutStatus)> {
        self.of("Rollout", name)
            .into_iter()
            .filter_map(|(rv, obj)| {
                let status = serde_json::from_value(obj.get("status")?.clone()).ok()?;
                Some((rv, status))
            })
            .collect()
    }

    /// The rollback order, proven: the canary Ingress's weight was "0" (and had become so at an
    /// earlier resourceVersion) when the candidate slot's `spec.replicas` first went down after
    /// `since`. Returns (rv of the weight's last change to "0", rv of the scale-down).
    pub fn assert_weight_zero_before_scale_down(&self, candidate: &str, since: u64) -> (u64, u64) {
        let shrunk = self.first_decrease(candidate, since).unwrap_or_else(|| {
            panic!(
                "{candidate} never scaled down after rv {since}: {:?}",
                self.replicas(candidate)
            )
        });
        let before: Vec<(u64, String)> = self
            .canary_weights()
            .into_iter()
            .filter(|(rv, _)| *rv < shrunk)
            .collect();
        let Some((_, weight)) = before.last() else {
            panic!("no canary Ingress before {candidate} scaled down at rv {shrunk}");
        };
        assert_eq!(
            weight, "0",
            "canary weight when {candidate} scaled down at rv {shrunk}; weights: {before:?}"
        );
        // Where the trailing run of "0" began: the write that took traffic off the candidate.
        // It comes before the scale-down by construction (`before` ends there); what the caller
        // checks with it is that traffic was on the candidate until then.
        let zeroed = before
            .iter()
            .rev()
            .take_while(|(_, w)| w == "0")
            .last()
            .map(|(rv, _)| *rv)
            .expect("a weight of 0");
        (zeroed, shrunk)
    }
}

pub fn weight_of(ingress: &Value) -> String {
    ingress
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(WEIGHT))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

pub fn annotation<'a>(object: &'a Value, name: &str) -> Option<&'a str> {
    object
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(name))
        .and_then(Value::as_str)
}
