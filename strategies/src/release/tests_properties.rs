//! Properties of the canary machine over arbitrary sequences of time, verdicts, commands, new
//! revisions and a world that applies what it is told late or not at all.

use proptest::prelude::*;
use serde_json::json;

use super::tests::{Sim, outcome, plan, template};
use super::*;
use crate::status::{Phase, Verdict};

#[derive(Debug, Clone)]
enum Act {
    Wait(i64, Verdict),
    Command(CommandVerb),
    Release(u8),
    /// The controller's writes fail this time: nothing desired reaches the world.
    Lost(i64),
}

fn act() -> impl Strategy<Value = Act> {
    let verdict = prop_oneof![
        4 => Just(Verdict::Pass),
        2 => Just(Verdict::Fail),
        1 => Just(Verdict::Inconclusive),
        1 => Just(Verdict::Error),
    ];
    let verb = prop_oneof![
        Just(CommandVerb::Promote),
        Just(CommandVerb::PromoteFull),
        Just(CommandVerb::Abort),
        Just(CommandVerb::Pause),
        Just(CommandVerb::Resume),
        Just(CommandVerb::Retry),
    ];
    prop_oneof![
        8 => (0i64..90, verdict).prop_map(|(s, v)| Act::Wait(s, v)),
        1 => verb.prop_map(Act::Command),
        1 => (0u8..3).prop_map(Act::Release),
        2 => (0i64..30).prop_map(Act::Lost),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn traffic_follows_the_steps_and_never_stays_on_a_given_up_candidate(acts in prop::collection::vec(act(), 1..120)) {
        let plan = plan(json!({"strategy": {"canary": {"steps": [5, 20, 60]}}}));
        let steps = [5u8, 20, 60];
        let mut sim = Sim::taken_over(plan.clone());
        let mut nonce = 0;
        for act in acts {
            let lost = match act {
                Act::Wait(secs, verdict) => { sim.world.now += chrono::Duration::seconds(secs); sim.world.check = analysis_due(&plan, &sim.status, sim.world.now).then(|| outcome(verdict)); false }
                Act::Command(verb) => { nonce += 1; sim.world.command = Some(Command { verb, nonce: nonce.to_string() }); sim.world.check = None; false }
                Act::Release(n) => { sim.world.target.template = template(&format!("erp/reporting:{n}")); sim.world.check = None; false }
                Act::Lost(secs) => { sim.world.now += chrono::Duration::seconds(secs); sim.world.check = None; true }
            };
            let before = sim.world.clone();
            let decision = reconcile(&plan, &sim.status, &sim.world);
            let stable = decision.status.stable_slot.unwrap_or(Slot::Blue);
            let candidate = stable.other();
            let full = decision.status.replicas.unwrap_or(2);

            // Weights only ever come from the declared steps (or zero).
            if let Some(route) = &decision.desired.canary_route {
                prop_assert!(route.weight == 0 || steps.contains(&route.weight), "weight {} not a step", route.weight);
            }
            // Given up (rolling back, rolled back, aborted): no weight, the Service on stable.
            let given_up = matches!(decision.status.stage, Some(Stage::RollingBack | Stage::RollingBackScaleDown))
                || (decision.status.stage == Some(Stage::Steady) && decision.status.phase == Phase::RolledBack);
            if given_up {
                prop_assert_eq!(decision.desired.canary_route.as_ref().map(|r| r.weight), Some(0));
                let selected = decision.desired.service_selector.as_ref().and_then(|s| s.get(SLOT_LABEL)).cloned();
                prop_assert_eq!(selected.as_deref(), Some(stable.as_str()));
            }
            // The candidate loses replicas only once its weight is observed at zero.
            let shrinking = decision.desired.slot(candidate).zip(before.slot(candidate)).is_some_and(|(d, w)| d.replicas < w.replicas);
            let promoted_now = decision.status.stable_slot != sim.status.stable_slot;
            if shrinking && !promoted_now {
                prop_assert!(before.canary_weight.is_none_or(|w| w == 0), "candidate scaled down with weight {:?} on it", before.canary_weight);
            }
            // The Service only moves to a slot observed ready at full size.
            let target_slot = decision.desired.service_selector.as_ref().and_then(|s| s.get(SLOT_LABEL)).cloned();
            if let Some(slot) = target_slot.filter(|s| Some(s.as_str()) != before.service_slot().map(Slot::as_str)) {
                let slot = if slot == "blue" { Slot::Blue } else { Slot::Green };
                prop_assert!(before.slot(slot).is_some_and(|v| v.ready_replicas >= full), "Service moved to unready {slot}");
            }

            sim.status = decision.status.clone();
            sim.world.command = None;
            if !lost {
                sim.apply(&decision.desired);
            }
        }
    }
}
