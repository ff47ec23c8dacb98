//! Scenario tests of blue/green: every transition, against the simulated world of tests.rs.

use std::time::Duration;

use serde_json::{Value, json};

use super::tests::{Sim, merge, plan};
use super::*;
use crate::status::{ConditionStatus, Phase, Verdict};

/// Preview 2m, verify 1m after the switch, old slot warm for 30s; checks every minute.
fn blue_green(extra: Value) -> ReleasePlan {
    let mut spec = json!({
        "strategy": {"canary": null, "blueGreen": {
            "previewDuration": "2m", "postSwitchDuration": "1m", "scaleDownDelay": "30s"}},
        "analysis": {"metrics": [{"name": "app-error-rate", "max": 1}]},
    });
    merge(&mut spec, extra);
    plan(spec)
}

fn selected(decision: &Decision) -> Option<&str> {
    decision
        .desired
        .service_selector
        .as_ref()
        .and_then(|s| s.get(SLOT_LABEL))
        .map(String::as_str)
}

fn replicas(decision: &Decision, slot: Slot) -> Option<i32> {
    decision.desired.slot(slot).map(|s| s.replicas)
}

/// A taken-over blue/green Rollout with revision 1.1 released and ready in its preview.
fn previewing(extra: Value) -> Sim {
    let mut sim = Sim::taken_over(blue_green(extra));
    sim.release("erp/reporting:1.1");
    sim.run_until(Stage::Previewing, 1, Verdict::Pass, 5);
    sim
}

#[test]
fn a_healthy_release_is_previewed_switched_verified_and_the_old_slot_scaled_down_later() {
    let mut sim = Sim::taken_over(blue_green(json!({})));
    sim.release("erp/reporting:1.1");
    let starting = sim.tick(1, Verdict::Pass).clone();
    assert_eq!(sim.stage(), Stage::Starting);
    assert_eq!(
        replicas(&starting, Slot::Green),
        Some(2),
        "full size at once"
    );
    assert_eq!(starting.desired.canary_service, Some(Slot::Green));
    assert_eq!(starting.desired.canary_route, None, "no canary Ingress");

    sim.tick(1, Verdict::Pass);
    assert_eq!(sim.stage(), Stage::Previewing);
    assert_eq!(sim.status.canary_weight, None);
    assert!(sim.message().contains("previewing"));
    for _ in 0..2 {
        let decision = sim.tick(60, Verdict::Pass);
        assert_eq!(
            selected(decision),
            Some("blue"),
            "the preview serves no users"
        );
    }
    sim.tick(1, Verdict::Pass);
    assert_eq!(sim.stage(), Stage::PromotingSwitch);
    assert_eq!(selected(sim.last.as_ref().unwrap()), Some("green"));
    sim.tick(1, Verdict::Pass);
    assert_eq!(sim.stage(), Stage::Verifying, "the switch was read back");
    assert_eq!(sim.status.phase, Phase::Progressing);
    assert_eq!(
        sim.status.stable_slot,
        Some(Slot::Blue),
        "not stable until verified"
    );
    assert_eq!(
        sim.world.blue.as_ref().unwrap().replicas,
        2,
        "blue stays warm"
    );

    sim.tick(30, Verdict::Pass);
    assert!(
        sim.status.step_passed,
        "checks every interval/2 after the switch"
    );
    sim.tick(30, Verdict::Pass);
    assert_eq!(sim.stage(), Stage::Steady);
    assert_eq!(sim.status.phase, Phase::Succeeded);
    assert_eq!(sim.status.stable_slot, Some(Slot::Green));
    assert_eq!(sim.condition("Promoted"), ConditionStatus::True);
    assert_eq!(
        sim.world.blue.as_ref().unwrap().replicas,
        2,
        "warm for scaleDownDelay"
    );
    sim.tick(31, Verdict::Pass);
    assert_eq!(sim.world.blue.as_ref().unwrap().replicas, 0);
    assert_eq!(sim.world.service_slot(), Some(Slot::Green));
}

#[test]
fn without_post_switch_analysis_the_switch_read_back_promotes() {
    let mut sim = previewing(json!({"strategy": {"blueGreen": {"postSwitchDuration": "0s"}}}));
    sim.run_until(Stage::PromotingSwitch, 60, Verdict::Pass, 5);
    sim.tick(1, Verdict::Pass);
    assert_eq!(
        (sim.stage(), sim.status.phase),
        (Stage::Steady, Phase::Succeeded)
    );
}

#[test]
fn the_preview_needs_a_passing_check_not_just_time() {
    let mut sim = previewing(json!({"analysis": {"inconclusiveLimit": 10}}));
    for _ in 0..5 {
        sim.tick(60, Verdict::Inconclusive);
        assert_eq!(sim.stage(), Stage::Previewing);
    }
    sim.tick(60, Verdict::Pass);
    assert_eq!(sim.stage(), Stage::PromotingScale);
}

#[test]
fn a_faulty_preview_is_never_switched_to() {
    let mut sim = previewing(json!({}));
    let mut selectors = Vec::new();
    for _ in 0..10 {
        let decision = sim.tick(60, Verdict::Fail);
        selectors.extend(selected(decision).map(str::to_string));
        if sim.stage() == Stage::Steady {
            break;
        }
    }
    assert_eq!(sim.status.phase, Phase::RolledBack);
    assert!(selectors.iter().all(|s| s == "blue"), "{selectors:?}");
    assert_eq!(sim.world.green.as_ref().unwrap().replicas, 0);
    assert!(sim.message().contains("failureLimit 1"));
}

#[test]
fn a_failure_after_the_switch_switches_back_at_once_before_any_scale_down() {
    let mut sim = previewing(json!({}));
    sim.run_until(Stage::Verifying, 60, Verdict::Pass, 6);
    assert_eq!(sim.world.service_slot(), Some(Slot::Green));
    assert!(
        !analysis_due(
            &sim.plan,
            &sim.status,
            sim.world.now + chrono::Duration::seconds(29)
        ),
        "no check before interval/2"
    );
    let decision = sim.tick(30, Verdict::Fail).clone();
    assert_eq!(
        sim.status.failed_checks, 1,
        "failureLimit 1 would tolerate one before"
    );
    assert_eq!(sim.stage(), Stage::RollingBack);
    assert_eq!(
        selected(&decision),
        Some("blue"),
        "switched back in the same decision"
    );
    assert_eq!(
        replicas(&decision, Slot::Green),
        Some(2),
        "green serves until read back"
    );
    sim.tick(1, Verdict::Pass);
    assert_eq!(sim.stage(), Stage::RollingBackScaleDown);
    assert_eq!(sim.world.green.as_ref().unwrap().replicas, 0);
    sim.tick(1, Verdict::Pass);
    assert_eq!(sim.status.phase, Phase::RolledBack);
    assert_eq!(sim.status.stable_slot, Some(Slot::Blue));
    assert!(sim.message().contains("after the switch"));
}

#[test]
fn manual_promotion_waits_after_the_preview_with_analysis_going_on() {
    let mut sim = previewing(json!({"promotion": "manual"}));
    sim.run_until(Stage::AwaitingPromotion, 60, Verdict::Pass, 5);
    assert_eq!(sim.status.phase, Phase::Paused);
    assert!(sim.message().contains("waiting for promote"));
    sim.tick(600, Verdict::Pass);
    assert_eq!(sim.stage(), Stage::AwaitingPromotion);
    assert_eq!(sim.world.service_slot(), Some(Slot::Blue));
    assert!(analysis_due(
        &sim.plan,
        &sim.status,
        sim.world.now + chrono::Duration::seconds(60)
    ));
    sim.command(CommandVerb::Promote, "go");
    sim.tick(1, Verdict::Pass);
    sim.run_until(Stage::Verifying, 1, Verdict::Pass, 5);
    assert_eq!(sim.world.service_slot(), Some(Slot::Green));
}

#[test]
fn a_failure_while_waiting_for_promotion_still_rolls_back() {
    let mut sim = previewing(json!({"promotion": "manual"}));
    sim.run_until(Stage::AwaitingPromotion, 60, Verdict::Pass, 5);
    sim.tick(60, Verdict::Fail);
    sim.tick(60, Verdict::Fail);
    sim.run_until(Stage::Steady, 1, Verdict::Pass, 5);
    assert_eq!(sim.status.phase, Phase::RolledBack);
    assert_eq!(sim.world.service_slot(), Some(Slot::Blue));
}

#[test]
fn the_switch_waits_for_every_candidate_pod_to_be_ready() {
    let mut sim = previewing(json!({"progressDeadline": "3m"}));
    sim.run_until(Stage::PromotingScale, 60, Verdict::Pass, 5);
    sim.tick(1, Verdict::Pass);
    assert_eq!(sim.stage(), Stage::PromotingSwitch);
    // The switch was not written yet (a failed write), and a candidate pod restarted meanwhile.
    let selector = sim.world.target.selector.clone();
    sim.world.service_selector = Some(slot_selector(&selector, Slot::Blue));
    sim.world.green.as_mut().unwrap().ready_replicas = 1;
    let decision = sim.reconcile_now();
    assert_eq!(selected(&decision), Some("blue"), "1/2 ready: no switch");
    sim.world.green.as_mut().unwrap().ready_replicas = 2;
    assert_eq!(selected(&sim.reconcile_now()), Some("green"));

    sim.never_ready = true;
    sim.world.green.as_mut().unwrap().ready_replicas = 0;
    sim.status = sim.reconcile_now().status;
    sim.tick(181, Verdict::Pass);
    assert_eq!(sim.stage(), Stage::RollingBack, "{:?}", sim.status.message);
    assert_eq!(sim.world.service_slot(), Some(Slot::Blue));
}

#[test]
fn abort_after_the_switch_returns_the_selector_to_stable_first() {
    let mut sim = previewing(json!({}));
    sim.run_until(Stage::Verifying, 60, Verdict::Pass, 6);
    sim.command(CommandVerb::Abort, "stop");
    let decision = sim.tick(1, Verdict::Pass).clone();
    assert_eq!(selected(&decision), Some("blue"));
    assert_eq!(replicas(&decision, Slot::Green), Some(2));
    sim.run_until(Stage::Steady, 1, Verdict::Pass, 5);
    assert_eq!(sim.status.phase, Phase::RolledBack);
    assert!(sim.message().contains("aborted by command"));
}

#[test]
fn promote_after_the_switch_finishes_now_and_pause_holds() {
    let mut sim = previewing(json!({}));
    sim.run_until(Stage::Verifying, 60, Verdict::Pass, 6);
    sim.command(CommandVerb::Pause, "p");
    sim.tick(30, Verdict::Pass);
    sim.tick(300, Verdict::Pass);
    assert_eq!(
        (sim.stage(), sim.status.phase),
        (Stage::Verifying, Phase::Paused)
    );
    sim.command(CommandVerb::Promote, "now");
    sim.tick(1, Verdict::Pass);
    assert_eq!(
        (sim.stage(), sim.status.phase),
        (Stage::Steady, Phase::Succeeded)
    );
}

#[test]
fn a_new_revision_after_the_switch_goes_back_to_stable_then_starts_over() {
    let mut sim = previewing(json!({}));
    sim.run_until(Stage::Verifying, 60, Verdict::Pass, 6);
    sim.release("erp/reporting:1.2");
    let decision = sim.tick(1, Verdict::Pass).clone();
    assert_eq!(sim.stage(), Stage::Superseding);
    assert_eq!(selected(&decision), Some("blue"));
    sim.tick(1, Verdict::Pass);
    assert_eq!(sim.stage(), Stage::Starting);
    assert_eq!(
        sim.status.candidate_revision.as_deref(),
        Some(template_hash(&super::tests::template("erp/reporting:1.2")).as_str())
    );
    sim.run_until(Stage::Previewing, 1, Verdict::Pass, 5);
}

#[test]
fn requeue_follows_the_faster_checks_after_the_switch() {
    let mut sim = previewing(json!({}));
    assert_eq!(
        sim.tick(20, Verdict::Pass).requeue_after,
        Duration::from_secs(40)
    );
    sim.run_until(Stage::Verifying, 60, Verdict::Pass, 6);
    assert_eq!(
        sim.tick(10, Verdict::Pass).requeue_after,
        Duration::from_secs(20)
    );
}

#[test]
fn slots_carry_the_revision_as_their_version_label() {
    let mut sim = previewing(json!({}));
    let decision = sim.tick(1, Verdict::Pass).clone();
    for spec in &decision.desired.slots {
        assert_eq!(
            spec.template["metadata"]["labels"][VERSION_LABEL],
            spec.revision.as_str(),
            "{:?}",
            spec.slot
        );
    }
    assert_ne!(
        decision.desired.slots[0].revision,
        decision.desired.slots[1].revision
    );
}

#[test]
fn a_canary_changed_to_blue_green_mid_release_goes_back_to_stable_and_starts_again() {
    let mut sim = Sim::taken_over(plan(json!({})));
    sim.release("erp/reporting:1.1");
    sim.run_until(Stage::Stepping, 1, Verdict::Pass, 5);
    assert_eq!(sim.world.canary_weight, Some(10));
    sim.plan = blue_green(json!({}));
    let decision = sim.tick(1, Verdict::Pass).clone();
    assert_eq!(sim.stage(), Stage::Superseding);
    assert_eq!(
        decision.desired.remove.ingresses,
        ["erp-ingress-reporting-service-canary"],
        "the old canary Ingress goes"
    );
    assert_eq!(selected(&decision), Some("blue"));
    // The deletion is not seen yet.
    leftover(&mut sim, 10);
    sim.tick(1, Verdict::Pass);
    assert_eq!(
        sim.stage(),
        Stage::Superseding,
        "until the canary Ingress is gone"
    );
    sim.tick(1, Verdict::Pass);
    assert_eq!(sim.stage(), Stage::Starting);
    assert_eq!(sim.status.canary_weight, None);
    assert!(
        sim.status.canary_objects.ingresses.is_empty(),
        "forgotten once gone"
    );
    sim.run_until(Stage::Previewing, 1, Verdict::Pass, 5);
}

/// A canary Ingress of this Rollout still there with `weight`, deleted but not yet seen gone.
fn leftover(sim: &mut Sim, weight: u8) {
    let name = "erp-ingress-reporting-service-canary".to_string();
    sim.world.canary_weight = Some(weight);
    sim.world.present.ingresses = vec![name.clone()];
    if !sim.status.canary_objects.ingresses.contains(&name) {
        sim.status.canary_objects.ingresses.push(name);
    }
}

#[test]
fn a_blue_green_changed_to_canary_after_the_switch_goes_back_to_stable_and_starts_again() {
    let mut sim = previewing(json!({}));
    sim.run_until(Stage::Verifying, 60, Verdict::Pass, 6);
    sim.plan = plan(json!({}));
    let decision = sim.tick(1, Verdict::Pass).clone();
    assert_eq!(sim.stage(), Stage::Superseding);
    assert_eq!(selected(&decision), Some("blue"));
    assert_eq!(
        replicas(&decision, Slot::Green),
        Some(2),
        "green serves until read back"
    );
    sim.run_until(Stage::Stepping, 1, Verdict::Pass, 5);
    assert_eq!(sim.weight(), 10);
}

#[test]
fn a_strategy_change_while_waiting_for_promotion_starts_again_the_new_way() {
    let mut sim = previewing(json!({"promotion": "manual"}));
    sim.run_until(Stage::AwaitingPromotion, 60, Verdict::Pass, 5);
    sim.plan = plan(json!({"promotion": "manual"}));
    sim.tick(1, Verdict::Pass);
    assert_eq!(
        sim.stage(),
        Stage::Superseding,
        "no step ran: it is not the canary's wait"
    );
    sim.run_until(Stage::Stepping, 1, Verdict::Pass, 5);
    assert_eq!((sim.status.step, sim.weight()), (Some(1), 10));
}

#[test]
fn manual_changed_to_auto_while_waiting_promotes() {
    let mut sim = previewing(json!({"promotion": "manual"}));
    sim.run_until(Stage::AwaitingPromotion, 60, Verdict::Pass, 5);
    sim.plan = blue_green(json!({}));
    sim.tick(60, Verdict::Fail);
    assert_eq!(
        sim.stage(),
        Stage::AwaitingPromotion,
        "auto promotes only on a passing latest check"
    );
    sim.tick(60, Verdict::Pass);
    assert_eq!(sim.stage(), Stage::PromotingScale);
}

#[test]
fn a_pause_ends_with_a_promote_so_verification_can_finish() {
    let mut sim = previewing(json!({}));
    sim.command(CommandVerb::Pause, "p");
    sim.tick(1, Verdict::Pass);
    sim.command(CommandVerb::Promote, "go");
    sim.tick(1, Verdict::Pass);
    assert!(!sim.status.paused);
    sim.run_until(Stage::Verifying, 1, Verdict::Pass, 5);
    sim.run_until(Stage::Steady, 30, Verdict::Pass, 5);
    assert_eq!(sim.status.phase, Phase::Succeeded);
}

#[test]
fn a_leftover_canary_ingress_holds_the_restart_even_at_weight_zero() {
    // A canary in its header phase: weight 0, but matching requests reach the candidate.
    let header = json!({"strategy": {"canary": {"match": {"header": {"name": "x-canary", "value": "insider"}}}}});
    let mut sim = Sim::taken_over(plan(header));
    sim.release("erp/reporting:1.1");
    sim.run_until(Stage::Matching, 1, Verdict::Pass, 5);
    assert_eq!(sim.world.canary_weight, Some(0));
    sim.plan = blue_green(json!({}));
    let decision = sim.tick(1, Verdict::Pass).clone();
    assert_eq!(sim.stage(), Stage::Superseding);
    assert_eq!(decision.desired.remove.ingresses.len(), 1);
    leftover(&mut sim, 0);
    sim.tick(1, Verdict::Pass);
    assert_eq!(
        sim.stage(),
        Stage::Superseding,
        "at weight 0 its header match still routes: no restart while it is there"
    );
    sim.tick(1, Verdict::Pass);
    assert_eq!(
        sim.stage(),
        Stage::Starting,
        "gone: the release starts again"
    );
}
