//! Deleting a Rollout hands traffic back to the user's Deployment without a dropped request: the
//! Deployment scales back up and must be ready before the Service selects it again; only then does
//! sluice let its own objects go.

use std::collections::BTreeMap;

use super::World;
use crate::status::RolloutStatus;

/// One step of the hand-back.
#[derive(Debug, Clone, PartialEq)]
pub struct HandBack {
    /// `spec.replicas` of the user's Deployment.
    pub target_replicas: i32,
    /// The Service's selector to restore, once the Deployment is ready.
    pub service_selector: Option<BTreeMap<String, String>>,
    /// Everything is back: the controller may remove its objects and the finalizer.
    pub done: bool,
    /// For a person.
    pub message: String,
}

/// The next step of handing traffic back. `target_ready` is the user's Deployment's ready pods of
/// its current template.
pub fn hand_back(status: &RolloutStatus, world: &World, target_ready: i32) -> HandBack {
    let replicas = status
        .replicas
        .unwrap_or(world.target.replicas)
        .max(world.target.replicas);
    let selector = status
        .original_selector
        .clone()
        .unwrap_or_else(|| world.target.selector.clone());
    if status.stage.is_none() {
        // Never taken over: nothing of the user's was changed.
        return HandBack {
            target_replicas: world.target.replicas,
            service_selector: None,
            done: true,
            message: "nothing to hand back".into(),
        };
    }
    if target_ready < replicas {
        return HandBack {
            target_replicas: replicas,
            service_selector: None,
            done: false,
            message: format!(
                "handing back: the target scales to {replicas}, {target_ready}/{replicas} ready"
            ),
        };
    }
    let restored = world.service_selector.as_ref() == Some(&selector);
    HandBack {
        target_replicas: replicas,
        service_selector: Some(selector),
        done: restored,
        message: if restored {
            "handed back to the target".into()
        } else {
            "handing back: the Service selects the target again".into()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{Sim, plan};
    use super::*;
    use crate::status::Verdict;

    #[test]
    fn the_service_moves_back_only_once_the_target_is_ready() {
        let mut sim = Sim::taken_over(plan(serde_json::json!({})));
        sim.tick(1, Verdict::Pass);
        let first = hand_back(&sim.status, &sim.world, 0);
        assert_eq!(
            (
                first.target_replicas,
                first.service_selector.is_some(),
                first.done
            ),
            (2, false, false)
        );
        let second = hand_back(&sim.status, &sim.world, 2);
        assert_eq!(
            second.service_selector.as_ref().map(|s| s.len()),
            Some(1),
            "the original selector, without the slot"
        );
        assert!(!second.done);
        sim.world.service_selector = second.service_selector.clone();
        assert!(hand_back(&sim.status, &sim.world, 2).done);
    }
}
