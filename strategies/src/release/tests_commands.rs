//! Commands and take-over paths the mutation run found untested: each test fails when the line
//! it names is changed.

use serde_json::json;

use super::tests::{Sim, plan};
use super::*;
use crate::status::{Phase, RollbackCause, Verdict};

#[test]
fn a_paused_canary_step_holds_until_resumed() {
    let mut sim = Sim::taken_over(plan(json!({})));
    sim.release("erp/reporting:1.1");
    sim.run_until(Stage::Stepping, 1, Verdict::Pass, 5);
    sim.command(CommandVerb::Pause, "p");
    for _ in 0..3 {
        sim.tick(60, Verdict::Pass);
    }
    assert_eq!(
        (sim.status.step, sim.status.phase),
        (Some(1), Phase::Paused)
    );
    sim.command(CommandVerb::Resume, "r");
    sim.tick(1, Verdict::Pass);
    sim.tick(60, Verdict::Pass);
    assert_eq!(
        sim.status.step,
        Some(2),
        "resumed: the next passing check advances"
    );
}

#[test]
fn promote_full_skips_the_remaining_steps() {
    let mut sim = Sim::taken_over(plan(
        json!({"strategy": {"canary": {"steps": [10, 20, 50]}}}),
    ));
    sim.release("erp/reporting:1.1");
    sim.run_until(Stage::Stepping, 1, Verdict::Pass, 5);
    sim.command(CommandVerb::PromoteFull, "f");
    sim.tick(1, Verdict::Pass);
    assert_eq!(sim.stage(), Stage::PromotingScale);
}

#[test]
fn a_promote_at_the_last_step_of_a_manual_release_promotes_at_once() {
    let mut sim = Sim::taken_over(plan(json!({"promotion": "manual"})));
    sim.release("erp/reporting:1.1");
    sim.run_until(Stage::Stepping, 1, Verdict::Pass, 5);
    sim.tick(60, Verdict::Pass);
    assert_eq!((sim.stage(), sim.status.step), (Stage::Stepping, Some(2)));
    sim.command(CommandVerb::Promote, "go");
    sim.tick(1, Verdict::Pass);
    assert_eq!(
        sim.stage(),
        Stage::PromotingScale,
        "the person decided: no wait"
    );
}

#[test]
fn an_auto_release_never_waits_for_a_promote() {
    let mut sim = Sim::taken_over(plan(json!({})));
    sim.release("erp/reporting:1.1");
    let mut stages = Vec::new();
    for _ in 0..20 {
        sim.tick(30, Verdict::Pass);
        stages.push(sim.stage());
        if sim.status.phase == Phase::Succeeded {
            break;
        }
    }
    assert_eq!(sim.status.phase, Phase::Succeeded);
    assert!(!stages.contains(&Stage::AwaitingPromotion), "{stages:?}");
}

#[test]
fn a_paused_release_does_not_promote_when_its_spec_turns_auto() {
    let mut sim = Sim::taken_over(plan(json!({"promotion": "manual"})));
    sim.release("erp/reporting:1.1");
    sim.run_until(Stage::AwaitingPromotion, 60, Verdict::Pass, 10);
    sim.command(CommandVerb::Pause, "p");
    sim.tick(1, Verdict::Pass);
    sim.plan = plan(json!({}));
    sim.tick(60, Verdict::Pass);
    assert_eq!(sim.stage(), Stage::AwaitingPromotion, "paused by a person");
    sim.command(CommandVerb::Resume, "r");
    sim.tick(60, Verdict::Pass);
    assert_eq!(sim.stage(), Stage::PromotingScale);
}

#[test]
fn take_over_moves_the_service_only_once_every_stable_pod_of_its_revision_is_ready() {
    let mut sim = Sim::new(plan(json!({})));
    sim.tick(0, Verdict::Pass);
    // blue exists with 1 of 2 pods ready.
    if let Some(blue) = sim.world.blue.as_mut() {
        blue.ready_replicas = 1;
    }
    let decision = sim.reconcile_now();
    assert_eq!(decision.status.stage, Some(Stage::TakingOver));
    assert!(
        decision.desired.service_selector.is_none(),
        "not at 1/2 ready"
    );
    assert!(
        decision.desired.target_replicas.is_none(),
        "the target keeps serving"
    );
    // All ready, but of another revision (the target changed meanwhile).
    if let Some(blue) = sim.world.blue.as_mut() {
        blue.ready_replicas = 2;
        blue.revision = Some("another".into());
    }
    assert!(sim.reconcile_now().desired.service_selector.is_none());
}

#[test]
fn once_taken_over_the_target_stays_at_zero_whatever_the_service_selects() {
    let mut sim = Sim::taken_over(plan(json!({})));
    // Someone points the Service at green by hand and scales the target up.
    sim.world.service_selector = Some(slot_selector(&sim.world.target.selector, Slot::Green));
    sim.world.target.replicas = 3;
    let decision = sim.reconcile_now();
    assert_eq!(decision.desired.target_replicas, Some(0));
    assert_eq!(
        decision.status.replicas,
        Some(3),
        "the slots follow the new size"
    );
}

#[test]
fn while_taking_over_the_stable_slot_follows_the_target_template() {
    let mut sim = Sim::new(plan(json!({})));
    sim.tick(0, Verdict::Pass);
    // The target changes before the Service moved: blue must run the new template, not keep its own.
    sim.release("erp/reporting:1.0.1");
    let decision = sim.reconcile_now();
    let blue = decision.desired.slot(Slot::Blue).expect("blue");
    assert_eq!(
        blue.template["spec"]["containers"][0]["image"],
        "erp/reporting:1.0.1"
    );
}

#[test]
fn a_stable_slot_running_another_revision_is_put_back_from_the_record() {
    let mut sim = Sim::taken_over(plan(json!({})));
    let stable = super::tests::template("erp/reporting:1.0");
    sim.release("erp/reporting:rejected");
    sim.run_until(Stage::Stepping, 1, Verdict::Pass, 5);
    sim.run_until(Stage::Steady, 60, Verdict::Fail, 10);
    // Someone edited blue's template by hand.
    if let Some(blue) = sim.world.blue.as_mut() {
        blue.revision = Some("hand-edited".into());
        blue.template = super::tests::template("erp/reporting:hand");
    }
    sim.world.stable_record = Some(stable.clone());
    let decision = sim.reconcile_now();
    let blue = decision.desired.slot(Slot::Blue).expect("blue");
    assert_eq!(
        blue.template["spec"]["containers"][0]["image"],
        "erp/reporting:1.0"
    );
    assert_eq!(blue.revision, template_hash(&stable));
}

#[test]
fn requeues_follow_the_stage() {
    // Idle: a long resync only.
    let mut sim = Sim::taken_over(plan(
        json!({"strategy": {"canary": {"stepInterval": "90s"}},
                                               "analysis": {"interval": "1m"}}),
    ));
    assert_eq!(
        sim.reconcile_now().requeue_after,
        std::time::Duration::from_secs(300)
    );
    // A step of 90s checked every minute: look again at the check, then at the step's end.
    sim.release("erp/reporting:1.1");
    sim.run_until(Stage::Stepping, 1, Verdict::Pass, 5);
    assert_eq!(
        sim.last.as_ref().map(|d| d.requeue_after),
        Some(std::time::Duration::from_secs(60))
    );
    sim.tick(60, Verdict::Pass);
    assert_eq!(
        sim.last.as_ref().map(|d| d.requeue_after),
        Some(std::time::Duration::from_secs(30)),
        "the step ends before the next check"
    );
    // Waiting on the world (a rollback's read-back): the watch of the canary Ingress wakes it;
    // the timer is only the deadline should an event be lost.
    sim.tick(30, Verdict::Pass);
    sim.command(CommandVerb::Abort, "a");
    let aborted = sim.tick(1, Verdict::Pass).clone();
    assert_eq!(aborted.status.stage, Some(Stage::RollingBack));
    assert_eq!(aborted.requeue_after, std::time::Duration::from_secs(10));
}

#[test]
fn a_stage_waiting_on_the_world_looks_again_when_its_progress_deadline_runs_out() {
    let mut sim = Sim::taken_over(plan(json!({"progressDeadline": "4s"})));
    sim.release("erp/reporting:1.1");
    sim.run_until(Stage::Stepping, 1, Verdict::Pass, 5);
    sim.command(CommandVerb::Abort, "a");
    let aborted = sim.tick(1, Verdict::Pass).clone();
    assert_eq!(aborted.status.stage, Some(Stage::RollingBack));
    assert_eq!(aborted.requeue_after, std::time::Duration::from_secs(4));
}

#[test]
fn an_invalid_spec_heading_to_stable_leaves_a_service_already_there_alone() {
    let mut sim = Sim::taken_over(plan(json!({})));
    sim.release("erp/reporting:1.1");
    sim.run_until(Stage::Stepping, 1, Verdict::Pass, 5);
    let blue = slot_selector(&sim.world.target.selector, Slot::Blue);
    let blue_slot = sim.world.blue.clone().expect("blue");
    let decision = invalid_spec(
        &sim.status,
        InvalidView {
            now: sim.world.now,
            generation: 2,
            present: &sim.world.present,
            service_selector: sim.world.service_selector.as_ref(),
            stable: Some((&blue, &blue_slot)),
        },
        "bad",
    );
    assert!(
        decision.service_selector.is_none(),
        "no write: it selects blue already"
    );
}

#[test]
fn inconclusive_checks_roll_back_one_past_their_limit_and_are_told() {
    // inconclusiveLimit 2 (the test plan's), steps long enough to count them.
    let mut sim = Sim::taken_over(plan(
        json!({"strategy": {"canary": {"stepInterval": "10m"}}}),
    ));
    sim.release("erp/reporting:1.1");
    sim.run_until(Stage::Stepping, 1, Verdict::Pass, 5);
    for n in 1..=2 {
        let decision = sim.tick(60, Verdict::Inconclusive).clone();
        assert_eq!(sim.status.inconclusive_checks, n);
        assert_eq!(
            sim.stage(),
            Stage::Stepping,
            "{n} inconclusive: within the limit"
        );
        assert!(
            decision
                .notes
                .iter()
                .any(|n| n.reason == "AnalysisCheck" && n.warning),
            "each one is an Event: {:?}",
            decision.notes
        );
    }
    sim.tick(60, Verdict::Inconclusive);
    assert_eq!(
        sim.stage(),
        Stage::RollingBack,
        "the third is one past inconclusiveLimit 2"
    );
    assert!(
        sim.message().contains("inconclusiveLimit 2"),
        "{}",
        sim.message()
    );
    assert_eq!(sim.status.rollback_cause, Some(RollbackCause::Inconclusive));
}

#[test]
fn a_candidate_that_cannot_reach_full_size_for_promotion_is_rolled_back_at_the_deadline() {
    let mut sim = Sim::taken_over(plan(json!({"progressDeadline": "2m"})));
    sim.release("erp/reporting:1.1");
    sim.run_until(Stage::Stepping, 1, Verdict::Pass, 5);
    sim.command(CommandVerb::PromoteFull, "f");
    sim.tick(1, Verdict::Pass);
    assert_eq!(sim.stage(), Stage::PromotingScale);
    // Its pods stop being ready.
    sim.never_ready = true;
    if let Some(green) = sim.world.green.as_mut() {
        green.ready_replicas = 0;
    }
    sim.tick(60, Verdict::Pass);
    assert_eq!(
        sim.stage(),
        Stage::PromotingScale,
        "within progressDeadline"
    );
    sim.tick(61, Verdict::Pass);
    assert_eq!(sim.stage(), Stage::RollingBack);
}

#[test]
fn the_old_slot_is_kept_warm_for_the_delay_then_forgotten() {
    let mut sim = Sim::taken_over(plan(json!({})));
    sim.release("erp/reporting:1.1");
    for _ in 0..20 {
        sim.tick(30, Verdict::Pass);
        if sim.status.phase == crate::status::Phase::Succeeded {
            break;
        }
    }
    assert!(sim.status.scale_down.is_some());
    sim.tick(10, Verdict::Pass);
    assert_eq!(
        sim.world.blue.as_ref().map(|b| b.replicas),
        Some(2),
        "warm within 30s"
    );
    sim.tick(25, Verdict::Pass);
    assert_eq!(
        sim.world.blue.as_ref().map(|b| b.replicas),
        Some(0),
        "down after it"
    );
    let settled = sim.tick(1, Verdict::Pass).clone();
    assert!(
        settled.status.scale_down.is_none(),
        "nothing pending any more"
    );
    assert_eq!(settled.requeue_after, std::time::Duration::from_secs(300));
}

#[test]
fn a_release_withdrawn_by_the_target_going_back_to_stable_ends_ready_not_rolled_back() {
    let mut sim = Sim::taken_over(plan(json!({})));
    sim.release("erp/reporting:1.1");
    sim.run_until(Stage::Stepping, 1, Verdict::Pass, 5);
    sim.release("erp/reporting:1.0");
    sim.tick(1, Verdict::Pass);
    assert_eq!(sim.stage(), Stage::RollingBack);
    assert_eq!(sim.status.rollback_cause, Some(RollbackCause::Withdrawn));
    sim.run_until(Stage::Steady, 1, Verdict::Pass, 6);
    assert_eq!(sim.status.phase, Phase::Ready);
    assert!(sim.status.rolled_back_revision.is_none());
    assert_eq!(
        sim.status.rollback_cause, None,
        "a withdrawn release is no rollback"
    );
}

#[test]
fn a_condition_keeps_its_transition_time_while_its_status_holds() {
    let mut sim = Sim::taken_over(plan(json!({})));
    let promoted = |sim: &Sim| {
        sim.status
            .conditions
            .iter()
            .find(|c| c.type_ == "Promoted")
            .cloned()
            .expect("Promoted")
    };
    let first = promoted(&sim);
    sim.tick(60, Verdict::Pass);
    assert_eq!(
        promoted(&sim).last_transition_time,
        first.last_transition_time
    );
    sim.release("erp/reporting:1.1");
    sim.tick(60, Verdict::Pass);
    let flipped = promoted(&sim);
    assert_ne!(flipped.status, first.status);
    assert_eq!(
        flipped.last_transition_time,
        Some(sim.world.now),
        "changed now"
    );
}

#[test]
fn every_decision_that_moves_traffic_says_so() {
    let mut sim = Sim::taken_over(plan(json!({})));
    sim.release("erp/reporting:1.1");
    let starting = sim.tick(1, Verdict::Pass).clone();
    assert!(
        starting.notes.iter().any(|n| n.reason == "ReleaseStarted"),
        "{:?}",
        starting.notes
    );
    let step = sim.tick(1, Verdict::Pass).clone();
    assert!(
        step.notes.iter().any(|n| n.reason == "Step"),
        "{:?}",
        step.notes
    );
}

#[test]
fn an_abort_says_why_in_the_rollback_reason_and_the_message() {
    let mut sim = Sim::taken_over(plan(json!({})));
    sim.release("erp/reporting:1.1");
    sim.run_until(Stage::Stepping, 1, Verdict::Pass, 5);
    sim.world.command = Some(Command {
        verb: CommandVerb::Abort,
        nonce: "abort@api-1".into(),
        reason: Some("p99 alarms in the gateway (by ci-erp)".into()),
    });
    sim.tick(1, Verdict::Pass);
    let reason = sim.status.rollback_reason.clone().unwrap_or_default();
    assert!(
        reason.ends_with("aborted by command: p99 alarms in the gateway (by ci-erp)"),
        "{reason}"
    );
    let last = sim
        .status
        .history
        .last()
        .expect("the abort is a transition");
    assert_eq!(last.stage, Some(Stage::RollingBack));
}

#[test]
fn a_target_back_on_a_revision_given_up_before_waits_for_retry_and_counts_no_new_rollback() {
    let mut sim = Sim::taken_over(plan(json!({})));
    sim.release("erp/reporting:1.1");
    sim.run_until(Stage::Stepping, 1, Verdict::Pass, 5);
    sim.tick(60, Verdict::Fail);
    sim.tick(60, Verdict::Fail);
    sim.run_until(Stage::Steady, 1, Verdict::Pass, 5);
    assert_eq!(sim.status.phase, Phase::RolledBack);
    // Another revision starts, then the target goes back to the one given up.
    sim.release("erp/reporting:1.2");
    sim.run_until(Stage::Stepping, 1, Verdict::Pass, 5);
    sim.release("erp/reporting:1.1");
    let mut notes = Vec::new();
    for _ in 0..6 {
        notes.extend(sim.tick(1, Verdict::Pass).notes.iter().map(|n| n.reason));
        if sim.status.stage == Some(Stage::Steady) {
            break;
        }
    }
    assert_eq!(sim.status.phase, Phase::RolledBack);
    assert!(notes.contains(&"Superseded"), "{notes:?}");
    assert!(notes.contains(&"AwaitingRetry"), "{notes:?}");
    assert!(
        !notes.contains(&"RolledBack"),
        "no second rollback of 1.1: {notes:?}"
    );
}

#[test]
fn a_release_given_up_with_no_failed_check_is_timed_from_the_decision() {
    let mut sim = Sim::taken_over(plan(json!({})));
    sim.release("erp/reporting:1.1");
    sim.run_until(Stage::Stepping, 1, Verdict::Pass, 5);
    assert_eq!(sim.status.first_failure_at, None);
    sim.command(CommandVerb::Abort, "a1");
    sim.tick(1, Verdict::Pass);
    assert_eq!(sim.stage(), Stage::RollingBack);
    assert_eq!(sim.status.first_failure_at, Some(sim.world.now));
}
