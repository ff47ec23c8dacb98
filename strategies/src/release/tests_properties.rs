//! Properties of the release machine, canary and blue/green, over arbitrary sequences of time,
//! verdicts, commands, new revisions, pods losing readiness, and a world that applies what it is
//! told late or not at all.

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
    /// A slot's pods are not ready when the controller looks (they come back after).
    Unready(Slot),
    /// Someone points the Service at a slot by hand.
    Repoint(Slot),
    /// The last command's annotations are read again, nonce and all (a reconcile from a cache
    /// that has not seen their removal).
    Replay,
    /// Only the slots' writes reach the world this time; the Service and the canary Ingress
    /// keep what they had.
    Partial(i64),
    /// Someone edits the spec's promotion to manual (true) or auto (false).
    Promotion(bool),
    /// Someone scales the user's Deployment (an HPA, `kubectl scale`).
    Rescale(i32),
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
    let slot = prop_oneof![Just(Slot::Blue), Just(Slot::Green)];
    prop_oneof![
        8 => (0i64..90, verdict).prop_map(|(s, v)| Act::Wait(s, v)),
        1 => verb.prop_map(Act::Command),
        1 => (0u8..3).prop_map(Act::Release),
        2 => (0i64..30).prop_map(Act::Lost),
        1 => slot.clone().prop_map(Act::Unready),
        1 => slot.prop_map(Act::Repoint),
        1 => Just(Act::Replay),
        1 => (0i64..30).prop_map(Act::Partial),
        1 => any::<bool>().prop_map(Act::Promotion),
        1 => (1i32..4).prop_map(Act::Rescale),
    ]
}

/// Whether `before -> after` moved the release on by itself: a later step, the end of a step or
/// phase, or a promotion.
fn advanced(before: &RolloutStatus, after: &RolloutStatus) -> bool {
    use Stage::*;
    match (before.stage, after.stage) {
        (Some(Matching | Stepping), Some(Matching | Stepping)) => after.step > before.step,
        (Some(Matching | Stepping), Some(AwaitingPromotion | PromotingScale)) => true,
        (Some(Previewing), Some(AwaitingPromotion | PromotingScale)) => true,
        (Some(AwaitingPromotion), Some(PromotingScale)) => true,
        (Some(Verifying), Some(Steady)) => after.phase == Phase::Succeeded,
        _ => false,
    }
}

fn canary_plan() -> ReleasePlan {
    plan(json!({"strategy": {"canary": {"steps": [5, 20, 60]}}}))
}

fn blue_green_plan() -> ReleasePlan {
    plan(json!({
        "strategy": {"canary": null, "blueGreen": {
            "previewDuration": "2m", "postSwitchDuration": "1m", "scaleDownDelay": "30s"}},
        "analysis": {"metrics": [{"name": "app-error-rate", "max": 1}]},
    }))
}

fn selected_slot(desired: &Desired) -> Option<Slot> {
    match desired.service_selector.as_ref()?.get(SLOT_LABEL)?.as_str() {
        "blue" => Some(Slot::Blue),
        "green" => Some(Slot::Green),
        _ => None,
    }
}

/// Plays `acts` on a taken-over Rollout, checking after every decision what must always hold.
fn play(plan: &ReleasePlan, acts: Vec<Act>, pods_lag: bool) -> Result<Sim, TestCaseError> {
    let steps = [5u8, 20, 60];
    let mut sim = Sim::taken_over(plan.clone());
    sim.pods_lag = pods_lag;
    let mut nonce = 0;
    let mut last_command = None;
    // The verdict of the latest check in the current step or phase, as delivered.
    let mut latest: Option<Verdict> = None;
    for act in acts {
        let mut lost = false;
        let mut partial = false;
        let mut unready = None;
        sim.world.check = None;
        let replayed = matches!(act, Act::Replay);
        match act {
            Act::Wait(secs, verdict) => {
                sim.world.now += chrono::Duration::seconds(secs);
                if secs > 0 {
                    sim.pods_catch_up();
                }
                sim.world.check =
                    analysis_due(&sim.plan, &sim.status, sim.world.now).then(|| outcome(verdict));
            }
            Act::Command(verb) => {
                nonce += 1;
                sim.command(verb, &nonce.to_string());
                last_command = sim.world.command.clone();
            }
            Act::Replay => sim.world.command = last_command.clone(),
            Act::Partial(secs) => {
                sim.world.now += chrono::Duration::seconds(secs);
                partial = true;
            }
            Act::Rescale(replicas) => sim.world.target.replicas = replicas,
            Act::Promotion(manual) => {
                sim.plan.promotion = if manual {
                    crate::spec::Promotion::Manual
                } else {
                    crate::spec::Promotion::Auto
                };
            }
            Act::Release(n) => sim.world.target.template = template(&format!("erp/reporting:{n}")),
            Act::Lost(secs) => {
                sim.world.now += chrono::Duration::seconds(secs);
                lost = true;
            }
            Act::Unready(slot) => unready = Some(slot),
            Act::Repoint(slot) => {
                let selector = slot_selector(&sim.world.target.selector, slot);
                sim.world.service_selector = Some(selector);
            }
        }
        if let Some(view) = unready.and_then(|slot| match slot {
            Slot::Blue => sim.world.blue.as_mut(),
            Slot::Green => sim.world.green.as_mut(),
        }) {
            view.ready_replicas = 0;
        }
        let before = sim.world.clone();
        let decision = reconcile(&sim.plan, &sim.status, &sim.world);
        // The history only grows at its end, with ids that only grow, and stays bounded.
        let (old, new) = (&sim.status.history, &decision.status.history);
        prop_assert!(new.len() <= 2 * crate::release::TRANSITIONS_PER_RELEASE);
        prop_assert!(new.windows(2).all(|w| w[0].seq < w[1].seq));
        prop_assert!(new.last().map(|t| t.seq) >= old.last().map(|t| t.seq));
        if decision.status.stage != sim.status.stage || decision.status.step != sim.status.step {
            prop_assert!(
                new.last().map(|t| t.seq) > old.last().map(|t| t.seq),
                "a move is recorded"
            );
        }
        if replayed {
            // A command's nonce already in the status changes nothing.
            let mut without = sim.world.clone();
            without.command = None;
            prop_assert_eq!(
                &decision,
                &reconcile(&sim.plan, &sim.status, &without),
                "a replayed command was applied again"
            );
        }
        let commanded = before.command.as_ref().is_some_and(|c| {
            sim.status.last_command.as_deref() != Some(c.nonce.as_str())
                && matches!(c.verb, CommandVerb::Promote | CommandVerb::PromoteFull)
        });
        if before.check.is_some() && machine::analysing(sim.status.stage) {
            latest = before.check.as_ref().map(|c| c.verdict);
        }
        // A step or phase ends only on a passing latest check (or a person's promote), and a
        // canary step only once its weight was read back.
        if advanced(&sim.status, &decision.status) && !commanded {
            prop_assert_eq!(
                latest,
                Some(Verdict::Pass),
                "{:?} -> {:?} on a latest check of {:?}",
                sim.status.stage,
                decision.status.stage,
                latest
            );
            if let StrategyPlan::Canary(_) = plan.strategy {
                prop_assert_eq!(
                    before.canary_weight,
                    Some(sim.status.canary_weight.unwrap_or(0)),
                    "advanced before the step's weight was read back"
                );
            }
        }
        if (decision.status.stage, decision.status.step) != (sim.status.stage, sim.status.step) {
            latest = None;
        }
        // Weight reaches the candidate slot only while it runs the candidate revision.
        if let Some(route) = decision
            .desired
            .canary_route
            .as_ref()
            .filter(|r| r.weight > 0)
        {
            let running = before.slot(decision.status.stable_slot.unwrap_or(Slot::Blue).other());
            prop_assert!(
                running.is_some_and(|v| v.revision == decision.status.candidate_revision),
                "weight {} on a candidate slot running {:?}, candidate {:?}",
                route.weight,
                running.map(|v| &v.revision),
                decision.status.candidate_revision
            );
        }
        // A revision given up is not started again without `retry` or another template.
        let restarted = decision.status.stage == Some(Stage::Starting)
            && sim.status.stage != Some(Stage::Starting);
        if restarted && decision.status.candidate_revision == sim.status.rolled_back_revision {
            prop_assert!(
                before
                    .command
                    .as_ref()
                    .is_some_and(|c| c.verb == CommandVerb::Retry),
                "rolled-back {:?} restarted without retry",
                decision.status.candidate_revision
            );
        }
        let stable = decision.status.stable_slot.unwrap_or(Slot::Blue);
        let candidate = stable.other();
        let full = decision.status.replicas.unwrap_or(2);
        let serving = before.service_slot();

        // Weights only ever come from the declared steps (or zero); blue/green has none.
        match (&plan.strategy, &decision.desired.canary_route) {
            (StrategyPlan::BlueGreen(_), route) => prop_assert!(route.is_none()),
            (_, Some(route)) => prop_assert!(
                route.weight == 0 || steps.contains(&route.weight),
                "weight {} not a step",
                route.weight
            ),
            _ => {}
        }
        // The Service moves only to a slot with ready pods; to a candidate, only when all its
        // pods of its revision are.
        if let Some(slot) = selected_slot(&decision.desired).filter(|s| Some(*s) != serving) {
            let view = before.slot(slot);
            let ready = view.map_or(0, |v| v.ready_replicas);
            prop_assert!(ready > 0, "Service moved to {slot} with no ready pod");
            if slot == candidate {
                prop_assert!(
                    ready >= full,
                    "Service moved to candidate {slot} at {ready}/{full}"
                );
                prop_assert_eq!(
                    view.and_then(|v| v.revision.clone()),
                    decision.status.candidate_revision.clone()
                );
            }
        }
        // The slot the Service selects is never scaled down.
        if let Some(slot) = serving {
            let observed = before.slot(slot).map_or(0, |v| v.replicas);
            if let Some(spec) = decision.desired.slot(slot) {
                prop_assert!(
                    spec.replicas >= observed,
                    "{slot} scaled {observed} -> {} while selected",
                    spec.replicas
                );
            }
        }
        // Given up (rolling back, rolled back): no weight, and the Service heads to stable
        // whenever stable has a ready pod.
        let given_up = matches!(
            decision.status.stage,
            Some(Stage::RollingBack | Stage::RollingBackScaleDown)
        ) || (decision.status.stage == Some(Stage::Steady)
            && decision.status.phase == Phase::RolledBack);
        if given_up {
            if let Some(route) = &decision.desired.canary_route {
                prop_assert_eq!(route.weight, 0);
            }
            if before.slot(stable).is_some_and(|v| v.ready_replicas > 0) {
                prop_assert_eq!(selected_slot(&decision.desired), Some(stable));
            }
        }
        // The candidate goes below full size only once no traffic reaches it, as read back (a
        // new full size, when the target was rescaled, is not giving it up).
        let shrinking = decision
            .desired
            .slot(candidate)
            .zip(before.slot(candidate))
            .is_some_and(|(d, w)| d.replicas < w.replicas && d.replicas < full);
        let promoted_now = decision.status.stable_slot != sim.status.stable_slot;
        if shrinking && !promoted_now {
            prop_assert!(
                before.canary_weight.is_none_or(|w| w == 0) && !before.canary_matching,
                "candidate scaled down with weight {:?} on it",
                before.canary_weight
            );
            prop_assert_ne!(
                serving,
                Some(candidate),
                "candidate scaled down while selected"
            );
        }

        sim.status = decision.status.clone();
        sim.world.command = None;
        if partial {
            let slots_only = Desired {
                slots: decision.desired.slots.clone(),
                ..Desired::default()
            };
            sim.apply(&slots_only);
        } else if !lost {
            sim.apply(&decision.desired);
        }
    }
    Ok(sim)
}

/// After `abort`, with a world that carries out what it is told, the Rollout settles with the
/// Service on the stable slot and nothing left on the candidate.
fn abort_ends_on_stable(
    plan: &ReleasePlan,
    acts: Vec<Act>,
    pods_lag: bool,
) -> Result<(), TestCaseError> {
    let mut sim = play(plan, acts, pods_lag)?;
    let in_flight = !matches!(sim.status.stage, Some(Stage::Steady) | None);
    sim.command(CommandVerb::Abort, "abort-at-the-end");
    for _ in 0..20 {
        sim.pods_catch_up();
        sim.tick(1, Verdict::Pass);
        if sim.status.stage == Some(Stage::Steady) {
            break;
        }
    }
    prop_assert_eq!(
        sim.status.stage,
        Some(Stage::Steady),
        "{:?}",
        sim.status.message
    );
    let stable = sim.status.stable_slot.unwrap_or(Slot::Blue);
    prop_assert_eq!(sim.world.service_slot(), Some(stable));
    prop_assert!(sim.world.canary_weight.is_none_or(|w| w == 0));
    if in_flight {
        prop_assert!(matches!(sim.status.phase, Phase::RolledBack | Phase::Ready));
        let candidate = sim.world.slot(stable.other()).map_or(0, |v| v.replicas);
        prop_assert_eq!(candidate, 0, "the aborted candidate is scaled down");
    }
    Ok(())
}

/// 300 cases, or `PROPTEST_CASES` when set (a deeper search, or a quicker one under a mutation
/// run).
fn cases() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(300);
    ProptestConfig::with_cases(cases)
}

proptest! {
    #![proptest_config(cases())]

    #[test]
    fn canary_traffic_follows_the_steps_and_never_stays_on_a_given_up_candidate(acts in prop::collection::vec(act(), 1..120), lag: bool) {
        play(&canary_plan(), acts, lag)?;
    }

    #[test]
    fn blue_green_never_selects_an_unready_slot_nor_scales_down_the_selected_one(acts in prop::collection::vec(act(), 1..120), lag: bool) {
        play(&blue_green_plan(), acts, lag)?;
    }

    #[test]
    fn canary_abort_always_ends_with_the_selector_on_stable(acts in prop::collection::vec(act(), 0..60), lag: bool) {
        abort_ends_on_stable(&canary_plan(), acts, lag)?;
    }

    #[test]
    fn blue_green_abort_always_ends_with_the_selector_on_stable(acts in prop::collection::vec(act(), 0..60), lag: bool) {
        abort_ends_on_stable(&blue_green_plan(), acts, lag)?;
    }
}
