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
