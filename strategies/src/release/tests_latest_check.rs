//! A step or phase advances only on a passing *latest* check, and a canary step only once the
//! weight it set was read back (review of issue 8, item 1).

use serde_json::json;

use super::tests::{Sim, plan};
use super::*;
use crate::status::Verdict;

/// The blue-green preset's shape: preview 5m, checks every minute, failures and errors tolerated.
fn blue_green() -> ReleasePlan {
    plan(json!({
        "strategy": {"canary": null, "blueGreen": {"previewDuration": "5m"}},
        "analysis": {"failureLimit": 3, "errorLimit": 3,
                     "metrics": [{"name": "app-error-rate", "max": 1}]},
    }))
}

#[test]
fn a_preview_that_passed_once_then_failed_does_not_switch() {
    let mut sim = Sim::taken_over(blue_green());
    sim.release("erp/reporting:1.1");
    sim.run_until(Stage::Previewing, 1, Verdict::Pass, 5);
    for verdict in [
        Verdict::Pass,
        Verdict::Fail,
        Verdict::Fail,
        Verdict::Error,
        Verdict::Error,
    ] {
        sim.tick(60, verdict);
        assert_eq!(sim.stage(), Stage::Previewing, "after a {verdict} check");
    }
    sim.tick(1, Verdict::Pass);
    assert_eq!(
        sim.stage(),
        Stage::Previewing,
        "5m held, but the latest check was an error: no switch"
    );
    sim.tick(60, Verdict::Pass);
    assert_eq!(
        sim.stage(),
        Stage::PromotingScale,
        "the next passing check ends it"
    );
}

#[test]
fn a_canary_step_that_passed_then_came_out_inconclusive_holds() {
    let extra = json!({"strategy": {"canary": {"stepInterval": "3m"}},
                       "analysis": {"inconclusiveLimit": 5}});
    let mut sim = Sim::taken_over(plan(extra));
    sim.release("erp/reporting:1.1");
    sim.run_until(Stage::Stepping, 1, Verdict::Pass, 5);
    sim.tick(60, Verdict::Pass);
    sim.tick(60, Verdict::Pass);
    sim.tick(60, Verdict::Inconclusive);
    sim.tick(1, Verdict::Pass);
    assert_eq!(
        sim.status.step,
        Some(1),
        "held 3m, but the latest check was inconclusive"
    );
    sim.tick(60, Verdict::Pass);
    assert_eq!(sim.status.step, Some(2));
}

#[test]
fn a_canary_step_advances_only_once_its_weight_was_read_back() {
    let mut sim = Sim::taken_over(plan(json!({})));
    sim.release("erp/reporting:1.1");
    sim.run_until(Stage::Stepping, 1, Verdict::Pass, 5);
    // The write of step 1's weight never reached the canary Ingress.
    sim.world.canary_weight = Some(0);
    sim.world.now += chrono::Duration::seconds(60);
    sim.world.check = analysis_due(&sim.plan, &sim.status, sim.world.now)
        .then(|| super::tests::outcome(Verdict::Pass));
    let decision = reconcile(&sim.plan, &sim.status, &sim.world);
    assert_eq!(
        (decision.status.step, decision.status.stage),
        (Some(1), Some(Stage::Stepping)),
        "10% was never read back: step 1 has not been served"
    );
    assert_eq!(
        decision.desired.canary_route.map(|r| r.weight),
        Some(10),
        "the weight is written again"
    );
}

#[test]
fn a_rollback_from_the_match_phase_waits_for_the_match_to_be_read_back_gone() {
    let header = json!({"strategy": {"canary": {"match": {"header": {"name": "x-canary", "value": "insider"}}}}});
    let mut sim = Sim::taken_over(plan(header));
    sim.release("erp/reporting:1.1");
    sim.run_until(Stage::Matching, 1, Verdict::Pass, 5);
    assert!(sim.world.canary_matching);
    sim.tick(60, Verdict::Fail);
    sim.tick(60, Verdict::Fail);
    assert_eq!(sim.stage(), Stage::RollingBack);
    // The match is still on the canary Ingress as read back, at weight 0.
    sim.world.canary_matching = true;
    let decision = sim.reconcile_now();
    assert_eq!(
        decision.status.stage,
        Some(Stage::RollingBack),
        "header requests still reach the candidate: no scale-down yet"
    );
    assert_eq!(
        decision.desired.slot(Slot::Green).map(|s| s.replicas),
        Some(2)
    );
}

#[test]
fn the_queries_name_the_candidate_slot_of_the_release_in_flight() {
    let mut sim = Sim::taken_over(plan(json!({})));
    sim.release("erp/reporting:1.1");
    sim.run_until(Stage::Stepping, 1, Verdict::Pass, 5);
    let vars = template_vars("erp-system", &sim.plan, &sim.status);
    assert_eq!(
        (
            vars.namespace.as_str(),
            vars.name.as_str(),
            vars.ingress.as_deref()
        ),
        ("erp-system", "reporting", Some("erp-ingress"))
    );
    assert_eq!(
        (vars.stable_slot.as_str(), vars.candidate_slot.as_str()),
        ("blue", "green"),
        "analysis judges green, the slot the weight goes to"
    );
    assert_eq!(vars.interval, "1m");
}

#[test]
fn a_paused_preview_resumes_and_ends_on_its_next_passing_check() {
    let mut sim = Sim::taken_over(blue_green());
    sim.release("erp/reporting:1.1");
    sim.run_until(Stage::Previewing, 1, Verdict::Pass, 5);
    sim.command(CommandVerb::Pause, "p");
    for _ in 0..6 {
        sim.tick(60, Verdict::Pass);
    }
    assert_eq!(
        sim.stage(),
        Stage::Previewing,
        "paused past previewDuration"
    );
    sim.command(CommandVerb::Resume, "r");
    sim.tick(1, Verdict::Pass);
    assert!(!sim.status.paused);
    sim.run_until(Stage::PromotingScale, 60, Verdict::Pass, 3);
}
