//! Template records: every released revision's pod template is kept, so that a lost stable slot
//! comes back with the stable revision (review of issue 8, item 2), and records that no revision
//! needs go.

use serde_json::json;

use super::tests::{Sim, plan, template};
use super::*;
use crate::status::{Phase, Verdict};

#[test]
fn a_lost_stable_slot_after_a_rollback_comes_back_with_the_stable_template() {
    let mut sim = Sim::taken_over(plan(json!({})));
    let stable = template("erp/reporting:1.0");
    sim.release("erp/reporting:rejected");
    sim.run_until(Stage::Stepping, 1, Verdict::Pass, 5);
    sim.run_until(Stage::Steady, 60, Verdict::Fail, 10);
    assert_eq!(sim.status.phase, Phase::RolledBack);

    // `kubectl delete deploy reporting-blue`: the stable slot is gone.
    sim.world.blue = None;
    sim.world.stable_record = Some(stable.clone());
    let decision = sim.reconcile_now();
    let blue = decision
        .desired
        .slot(Slot::Blue)
        .expect("the stable slot comes back");
    assert_eq!(blue.revision, template_hash(&stable));
    assert_eq!(
        blue.template,
        slot_template(&stable, &sim.world.target.selector, Slot::Blue)
    );
    assert_eq!(blue.replicas, 2);
    assert_eq!(
        blue.template["spec"]["containers"][0]["image"], "erp/reporting:1.0",
        "not the rejected revision the target still asks for"
    );
}

#[test]
fn revisions_are_recorded_while_they_are_released_and_forgotten_once_settled() {
    let mut sim = Sim::taken_over(plan(json!({})));
    let v1 = template_hash(&template("erp/reporting:1.0"));
    let steady = sim.reconcile_now();
    assert_eq!(
        steady.desired.record.as_ref().map(|r| &r.revision),
        Some(&v1),
        "the stable revision is on record"
    );
    sim.release("erp/reporting:1.1");
    let v2 = template_hash(&template("erp/reporting:1.1"));
    sim.tick(1, Verdict::Pass);
    let starting = sim.last.clone().expect("a decision");
    assert_eq!(
        starting.desired.record.map(|r| (r.revision, r.template)),
        Some((v2.clone(), template("erp/reporting:1.1"))),
        "the candidate is recorded as the user wrote it"
    );
    sim.run_until(Stage::Stepping, 1, Verdict::Pass, 5);
    let mut forgotten = Vec::new();
    for _ in 0..20 {
        sim.tick(30, Verdict::Pass);
        forgotten.extend(
            sim.last
                .as_ref()
                .map(|d| d.desired.forget.clone())
                .unwrap_or_default(),
        );
        if sim.status.phase == Phase::Succeeded {
            break;
        }
    }
    assert_eq!(
        forgotten,
        [v1],
        "the old stable revision's record goes at promotion"
    );

    sim.release("erp/reporting:bad");
    let bad = template_hash(&template("erp/reporting:bad"));
    sim.run_until(Stage::Stepping, 1, Verdict::Pass, 5);
    let mut forgotten = Vec::new();
    for _ in 0..20 {
        sim.tick(60, Verdict::Fail);
        forgotten.extend(
            sim.last
                .as_ref()
                .map(|d| d.desired.forget.clone())
                .unwrap_or_default(),
        );
        if sim.status.stage == Some(Stage::Steady) {
            break;
        }
    }
    assert_eq!(
        forgotten,
        [bad],
        "a rolled-back revision's record goes; the stable one stays"
    );
    assert!(
        sim.reconcile_now().desired.record.is_none(),
        "the target asks for the rolled-back revision: nothing to record"
    );
}
