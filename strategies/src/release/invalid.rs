//! A spec that turns invalid mid-release: traffic goes back to stable first (the canary Ingresses
//! are deleted, `<svc>` is pointed back at the stable slot), then the Rollout reports InvalidSpec.
//! Nothing is left on a candidate that no plan judges any more, and no deadline runs out on it.
//! Once the spec is fixed, the release starts again from its first step.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::machine::in_flight;
use super::report::invalid_spec_status;
use super::{Note, SlotView};
use crate::status::{CanaryObjects, RolloutStatus, Slot, Stage};

/// What the controller could observe for a Rollout whose spec cannot work.
#[derive(Debug, Clone, Copy)]
pub struct InvalidView<'a> {
    pub now: DateTime<Utc>,
    pub generation: i64,
    /// This Rollout's canary objects that exist.
    pub present: &'a CanaryObjects,
    /// `<svc>`'s selector, if the spec names a Service that exists.
    pub service_selector: Option<&'a BTreeMap<String, String>>,
    /// The selector of the stable slot and the slot as observed; None when the target or the
    /// slot cannot be found.
    pub stable: Option<(&'a BTreeMap<String, String>, &'a SlotView)>,
}

/// What to do about it.
#[derive(Debug, Clone, PartialEq)]
pub struct InvalidDecision {
    pub status: RolloutStatus,
    /// Canary objects to delete: a canary Ingress gone sends its share back to the main one.
    pub remove: CanaryObjects,
    /// Point `<svc>` at the stable slot.
    pub service_selector: Option<BTreeMap<String, String>>,
    pub notes: Vec<Note>,
}

/// The decision for a Rollout whose spec has `problems`.
pub fn invalid_spec(
    status: &RolloutStatus,
    view: InvalidView<'_>,
    problems: &str,
) -> InvalidDecision {
    let mut next = invalid_spec_status(status, view.now, view.generation, problems);
    let mut notes = Vec::new();
    if in_flight(status.stage) {
        next.stage = Some(Stage::Superseding);
        next.stage_started_at = Some(view.now);
        next.step_passed = false;
        notes.push(Note {
            reason: "InvalidSpec",
            message: format!(
                "the spec became invalid mid-release: traffic goes back to {}; {} starts again once it is fixed",
                status.stable_slot.unwrap_or(Slot::Blue),
                status.candidate_revision.clone().unwrap_or_default()
            ),
            warning: true,
        });
    }
    super::history::record_history(status, &mut next, view.now);
    let heading_to_stable = matches!(
        next.stage,
        Some(Stage::Superseding | Stage::RollingBack | Stage::RollingBackScaleDown)
    );
    if !heading_to_stable {
        return InvalidDecision {
            status: next,
            remove: CanaryObjects::default(),
            service_selector: None,
            notes,
        };
    }
    let candidate = status.stable_slot.unwrap_or(Slot::Blue).other();
    let on_candidate = view
        .service_selector
        .and_then(|s| s.get(super::SLOT_LABEL))
        .is_some_and(|slot| slot == candidate.as_str());
    // Back to stable only onto a ready pod of the stable revision, as `<svc>` moves anywhere.
    let service_selector = view
        .stable
        .filter(|(_, slot)| slot.ready_replicas > 0 && slot.revision == status.stable_revision)
        .filter(|_| on_candidate)
        .map(|(selector, _)| selector.clone());
    InvalidDecision {
        status: next,
        remove: CanaryObjects {
            ingresses: view.present.ingresses.clone(),
            services: Vec::new(),
        },
        service_selector,
        notes,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::tests::{Sim, plan};
    use super::super::*;
    use super::*;
    use crate::status::{Phase, Verdict};

    fn view<'a>(
        sim: &'a Sim,
        stable: Option<(&'a BTreeMap<String, String>, &'a SlotView)>,
    ) -> InvalidView<'a> {
        InvalidView {
            now: sim.world.now,
            generation: 2,
            present: &sim.world.present,
            service_selector: sim.world.service_selector.as_ref(),
            stable,
        }
    }

    #[test]
    fn a_canary_step_made_invalid_deletes_the_canary_ingress_then_starts_again_once_fixed() {
        let mut sim = Sim::taken_over(plan(json!({})));
        sim.release("erp/reporting:1.1");
        sim.run_until(Stage::Stepping, 1, Verdict::Pass, 5);
        assert_eq!(sim.world.canary_weight, Some(10));
        let decision = invalid_spec(
            &sim.status,
            view(&sim, None),
            "spec.strategy.canary.steps: ...",
        );
        assert_eq!(decision.status.phase, Phase::Failed);
        assert_eq!(decision.status.stage, Some(Stage::Superseding));
        let ready = decision
            .status
            .conditions
            .iter()
            .find(|c| c.type_ == "Ready");
        assert_eq!(
            ready.map(|c| (c.status, c.reason.as_str())),
            Some((crate::status::ConditionStatus::False, "InvalidSpec")),
            "kubectl wait and people see why"
        );
        assert_eq!(
            decision.remove.ingresses,
            ["erp-ingress-reporting-service-canary"],
            "the weight goes with the canary Ingress"
        );
        assert!(
            decision.service_selector.is_none(),
            "the Service is on stable already"
        );
        assert_eq!(decision.notes.len(), 1);

        // The Ingress is gone; the spec is fixed: the revision starts again from step 1.
        sim.status = decision.status;
        sim.world.canary_weight = None;
        sim.world.present.ingresses.clear();
        sim.tick(1, Verdict::Pass);
        assert_eq!(sim.stage(), Stage::Starting);
        sim.run_until(Stage::Stepping, 1, Verdict::Pass, 5);
        assert_eq!((sim.status.step, sim.weight()), (Some(1), 10));
    }

    #[test]
    fn a_blue_green_switch_made_invalid_switches_back_to_a_ready_stable_slot() {
        let bg = plan(json!({
            "strategy": {"canary": null, "blueGreen": {"previewDuration": "1m", "postSwitchDuration": "5m"}},
            "analysis": {"metrics": [{"name": "app-error-rate", "max": 1}]},
        }));
        let mut sim = Sim::taken_over(bg);
        sim.release("erp/reporting:1.1");
        sim.run_until(Stage::Verifying, 60, Verdict::Pass, 8);
        assert_eq!(sim.world.service_slot(), Some(Slot::Green));
        let blue = slot_selector(&sim.world.target.selector, Slot::Blue);
        let ready = sim.world.blue.clone().expect("blue");
        let unready_slot = SlotView {
            ready_replicas: 0,
            ..ready.clone()
        };
        let decision = invalid_spec(&sim.status, view(&sim, Some((&blue, &ready))), "bad");
        assert_eq!(decision.service_selector.as_ref(), Some(&blue));
        let unready = invalid_spec(&sim.status, view(&sim, Some((&blue, &unready_slot))), "bad");
        assert!(
            unready.service_selector.is_none(),
            "never onto a slot without a ready pod"
        );
    }

    #[test]
    fn an_invalid_spec_at_rest_touches_nothing() {
        let sim = Sim::taken_over(plan(json!({})));
        let decision = invalid_spec(&sim.status, view(&sim, None), "bad");
        assert_eq!(decision.status.stage, Some(Stage::Steady));
        assert!(decision.remove.is_empty() && decision.service_selector.is_none());
        assert!(decision.notes.is_empty());
    }
}
