//! Deleting a Rollout hands traffic back to the user's Deployment without a dropped request: the
//! Deployment scales back up and must be ready before the Service selects it again; only then does
//! sluice delete its canary objects and let the Rollout go.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{TargetView, template_hash};
use crate::status::{CanaryObjects, RolloutStatus};

/// What the hand-back looks at.
#[derive(Debug, Clone, Copy)]
pub struct HandBackView<'a> {
    /// The user's Deployment; None when it is gone (nothing to hand back to).
    pub target: Option<&'a TargetView>,
    /// Its ready pods of its current template.
    pub target_ready: i32,
    /// The selector of Service `<svc>`; None when it does not exist.
    pub service_selector: Option<&'a BTreeMap<String, String>>,
    /// This Rollout's canary objects that exist.
    pub present: &'a CanaryObjects,
    /// The pod template recorded for the stable revision.
    pub stable_record: Option<&'a Value>,
}

/// One step of the hand-back.
#[derive(Debug, Clone, PartialEq)]
pub struct HandBack {
    /// The pod template to put back into the user's Deployment before it scales up: after a
    /// rollback it still asks for the rejected revision, which must not be what it serves.
    pub restore_template: Option<Value>,
    /// `spec.replicas` of the user's Deployment; None to leave it.
    pub target_replicas: Option<i32>,
    /// The Service's selector to restore, once the Deployment is ready.
    pub service_selector: Option<BTreeMap<String, String>>,
    /// The canary objects to delete: once nothing depends on them any more.
    pub remove: CanaryObjects,
    /// Everything is back: the controller may let the Rollout go once `remove` is deleted.
    pub done: bool,
    /// For a person.
    pub message: String,
}

/// The next step of handing traffic back.
pub fn hand_back(status: &RolloutStatus, view: HandBackView<'_>) -> HandBack {
    let finished = |message: &str| HandBack {
        restore_template: None,
        target_replicas: None,
        service_selector: None,
        remove: view.present.clone(),
        done: true,
        message: message.into(),
    };
    let Some(target) = view.target else {
        // Nothing to scale, but the Service must not stay on slots that go with the Rollout: a
        // Deployment re-created under the target's name would never be selected.
        let selector = view
            .service_selector
            .zip(status.original_selector.as_ref())
            .filter(|(current, original)| current != original)
            .map(|(_, original)| original.clone());
        return HandBack {
            service_selector: selector,
            ..finished("the target is gone: the Service gets its own selector back")
        };
    };
    if status.stage.is_none() {
        // Never taken over: nothing of the user's was changed.
        return finished("nothing to hand back");
    }
    let replicas = status
        .replicas
        .unwrap_or(target.replicas)
        .max(target.replicas);
    let selector = status
        .original_selector
        .clone()
        .unwrap_or_else(|| target.selector.clone());
    // Whatever the target asks for that is not the stable revision was never promoted: it gets
    // the stable template back (once written, its hash is the stable revision and this is None).
    let restore_template = view.stable_record.filter(|_| {
        status.stable_revision.as_deref() != Some(template_hash(&target.template).as_str())
    });
    if let Some(template) = restore_template {
        return HandBack {
            restore_template: Some(template.clone()),
            target_replicas: None,
            service_selector: None,
            remove: CanaryObjects::default(),
            done: false,
            message: format!(
                "handing back: the target gets the pod template of the stable revision {} back, not {}",
                status.stable_revision.clone().unwrap_or_default(),
                template_hash(&target.template)
            ),
        };
    }
    if view.target_ready < replicas {
        return HandBack {
            restore_template: None,
            target_replicas: Some(replicas),
            service_selector: None,
            remove: CanaryObjects::default(),
            done: false,
            message: format!(
                "handing back: the target scales to {replicas}, {}/{replicas} ready",
                view.target_ready
            ),
        };
    }
    let restored = view.service_selector.is_none_or(|s| *s == selector);
    HandBack {
        restore_template: None,
        target_replicas: Some(replicas),
        service_selector: view.service_selector.is_some().then_some(selector),
        remove: if restored {
            view.present.clone()
        } else {
            CanaryObjects::default()
        },
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
    use super::super::slot_selector;
    use super::super::tests::{Sim, plan};
    use super::*;
    use crate::status::Verdict;

    #[test]
    fn the_service_moves_back_only_once_the_target_is_ready_and_the_canary_objects_go_last() {
        let mut sim = Sim::taken_over(plan(serde_json::json!({})));
        sim.tick(1, Verdict::Pass);
        let present = sim.status.canary_objects.clone();
        assert!(!present.is_empty());
        let view = |ready, selector| HandBackView {
            target: Some(&sim.world.target),
            target_ready: ready,
            service_selector: selector,
            present: &present,
            stable_record: None,
        };
        let first = hand_back(&sim.status, view(0, sim.world.service_selector.as_ref()));
        assert_eq!(
            (
                first.target_replicas,
                first.service_selector.is_some(),
                first.done
            ),
            (Some(2), false, false)
        );
        assert!(
            first.remove.is_empty(),
            "nothing goes while users depend on it"
        );
        let second = hand_back(&sim.status, view(2, sim.world.service_selector.as_ref()));
        assert_eq!(
            second.service_selector.as_ref().map(|s| s.len()),
            Some(1),
            "the original selector, without the slot"
        );
        assert!(!second.done && second.remove.is_empty());
        let restored = second.service_selector.clone();
        let third = hand_back(&sim.status, view(2, restored.as_ref()));
        assert!(third.done);
        assert_eq!(third.remove, present);
    }

    #[test]
    fn without_a_target_only_the_canary_objects_go() {
        let sim = Sim::taken_over(plan(serde_json::json!({})));
        let present = sim.status.canary_objects.clone();
        let step = hand_back(
            &sim.status,
            HandBackView {
                target: None,
                target_ready: 0,
                service_selector: None,
                present: &present,
                stable_record: None,
            },
        );
        assert!(step.done && step.target_replicas.is_none());
        assert_eq!(step.remove, present);
        assert!(
            step.service_selector.is_none(),
            "no Service: nothing to restore"
        );
        let on_a_slot = slot_selector(&sim.world.target.selector, crate::status::Slot::Blue);
        let with_service = hand_back(
            &sim.status,
            HandBackView {
                target: None,
                target_ready: 0,
                service_selector: Some(&on_a_slot),
                present: &present,
                stable_record: None,
            },
        );
        assert_eq!(
            with_service.service_selector, sim.status.original_selector,
            "the Service selects what it did before sluice"
        );
    }

    #[test]
    fn after_a_rollback_the_target_gets_the_stable_template_back_before_it_scales_up() {
        let mut sim = Sim::taken_over(plan(serde_json::json!({})));
        let stable_template = sim.world.target.template.clone();
        sim.release("erp/reporting:rejected");
        sim.run_until(super::super::Stage::Stepping, 1, Verdict::Pass, 5);
        sim.run_until(super::super::Stage::Steady, 60, Verdict::Fail, 10);
        let present = sim.status.canary_objects.clone();
        let view = |record| HandBackView {
            target: Some(&sim.world.target),
            target_ready: 0,
            service_selector: sim.world.service_selector.as_ref(),
            present: &present,
            stable_record: record,
        };
        let first = hand_back(&sim.status, view(Some(&stable_template)));
        assert_eq!(first.restore_template.as_ref(), Some(&stable_template));
        assert_eq!(
            first.target_replicas, None,
            "not scaled up with the rejected template"
        );
        assert!(
            first.message.contains("stable revision"),
            "{}",
            first.message
        );
        let mut restored = sim.world.target.clone();
        restored.template = stable_template.clone();
        let after = hand_back(
            &sim.status,
            HandBackView {
                target: Some(&restored),
                ..view(Some(&stable_template))
            },
        );
        assert_eq!(
            (after.restore_template, after.target_replicas),
            (None, Some(2))
        );
    }
}
