//! Scenario tests of the canary machine (and the simulated world blue/green's tests share) against a simulated world that does what it is told.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use serde_json::{Value, json};

use super::*;
use crate::analysis::CheckOutcome;
use crate::presets::Presets;
use crate::spec::RolloutSpec;
use crate::status::{ConditionStatus, Phase, RollbackCause, Verdict};

pub(super) fn plan(extra: Value) -> ReleasePlan {
    let mut spec = json!({
        "targetRef": {"name": "reporting"},
        "service": {"name": "reporting-service", "port": 80},
        "strategy": {"canary": {"ingressRef": {"name": "erp-ingress"}, "steps": [10, 50], "stepInterval": "1m"}},
        "analysis": {"interval": "1m", "failureLimit": 1, "inconclusiveLimit": 2, "errorLimit": 2,
                     "metrics": [{"name": "error-rate", "max": 1}]},
    });
    merge(&mut spec, extra);
    let spec: RolloutSpec = serde_json::from_value(spec).expect("a valid spec");
    crate::plan::resolve(&spec, &Presets::embedded().expect("presets load")).expect("resolves")
}

pub(super) fn merge(base: &mut Value, extra: Value) {
    match (base, extra) {
        (Value::Object(base), Value::Object(extra)) => {
            for (key, value) in extra {
                merge(base.entry(key).or_insert(Value::Null), value);
            }
        }
        (base, extra) => *base = extra,
    }
}

pub(super) fn template(image: &str) -> Value {
    json!({"metadata": {"labels": {"app": "reporting"}}, "spec": {"containers": [{"name": "reporting", "image": image}]}})
}

pub(super) fn outcome(verdict: Verdict) -> CheckOutcome {
    CheckOutcome {
        verdict,
        requests: Some(100.0),
        reason: None,
        metrics: Vec::new(),
    }
}

/// A world that applies whatever is desired, with pods ready at once unless told otherwise.
pub(super) struct Sim {
    pub plan: ReleasePlan,
    pub world: World,
    pub status: RolloutStatus,
    pub never_ready: bool,
    /// Pods of a new template, or added by a scale-up, become ready only at [`Sim::pods_catch_up`]
    /// (when time passes), as a real Deployment's do; otherwise at once.
    pub pods_lag: bool,
    pub last: Option<Decision>,
}

impl Sim {
    pub fn new(plan: ReleasePlan) -> Sim {
        let selector = BTreeMap::from([("app".to_string(), "reporting".to_string())]);
        let world = World {
            now: Utc.with_ymd_and_hms(2026, 11, 21, 12, 0, 0).unwrap(),
            generation: 1,
            target: TargetView {
                template: template("erp/reporting:1.0"),
                replicas: 2,
                selector: selector.clone(),
            },
            blue: None,
            green: None,
            service_selector: Some(selector),
            canary_weight: None,
            canary_matching: false,
            present: Default::default(),
            stable_record: None,
            command: None,
            check: None,
        };
        Sim {
            plan,
            world,
            status: RolloutStatus::default(),
            never_ready: false,
            pods_lag: false,
            last: None,
        }
    }

    /// One reconcile after `secs`, with this verdict if a check is due.
    pub fn tick(&mut self, secs: i64, verdict: Verdict) -> &Decision {
        self.world.now += chrono::Duration::seconds(secs);
        self.world.check =
            analysis_due(&self.plan, &self.status, self.world.now).then(|| outcome(verdict));
        let decision = reconcile(&self.plan, &self.status, &self.world);
        self.status = decision.status.clone();
        self.world.command = None;
        self.apply(&decision.desired);
        self.last = Some(decision);
        self.last.as_ref().unwrap()
    }

    pub fn apply(&mut self, desired: &Desired) {
        for spec in &desired.slots {
            let observed = match spec.slot {
                Slot::Blue => self.world.blue.as_ref(),
                Slot::Green => self.world.green.as_ref(),
            };
            let ready = if self.never_ready
                && Some(&spec.revision) == self.status.candidate_revision.as_ref()
            {
                0
            } else if self.pods_lag {
                match observed {
                    Some(view) if view.revision.as_ref() == Some(&spec.revision) => {
                        view.ready_replicas.min(spec.replicas)
                    }
                    _ => 0,
                }
            } else {
                spec.replicas
            };
            let view = SlotView {
                revision: Some(spec.revision.clone()),
                template: spec.template.clone(),
                replicas: spec.replicas,
                ready_replicas: ready,
            };
            match spec.slot {
                Slot::Blue => self.world.blue = Some(view),
                Slot::Green => self.world.green = Some(view),
            }
        }
        if let Some(selector) = &desired.service_selector {
            self.world.service_selector = Some(selector.clone());
        }
        if let Some(route) = &desired.canary_route {
            self.world.canary_weight = Some(route.weight);
            self.world.canary_matching = route.traffic_match.is_some();
        } else if !desired.remove.ingresses.is_empty() {
            // Blue/green reads back the canary Ingresses left from a canary spec: gone now.
            self.world.canary_weight = None;
            self.world.canary_matching = false;
        }
        // Every canary object the status records exists, but those just deleted.
        let kept = |recorded: &[String], removed: &[String]| -> Vec<String> {
            recorded
                .iter()
                .filter(|n| !removed.contains(n))
                .cloned()
                .collect()
        };
        let recorded = &self.status.canary_objects;
        self.world.present = crate::status::CanaryObjects {
            ingresses: kept(&recorded.ingresses, &desired.remove.ingresses),
            services: kept(&recorded.services, &desired.remove.services),
        };
        if let Some(replicas) = desired.target_replicas {
            self.world.target.replicas = replicas;
        }
    }

    /// With `pods_lag`: time passed, and every slot's pods of its template are ready.
    pub fn pods_catch_up(&mut self) {
        let candidate = self.status.candidate_revision.clone();
        let never_ready = self.never_ready;
        for view in [self.world.blue.as_mut(), self.world.green.as_mut()]
            .into_iter()
            .flatten()
        {
            if !(never_ready && view.revision == candidate) {
                view.ready_replicas = view.replicas;
            }
        }
    }

    /// The decision for the world as it is now, without applying it.
    pub fn reconcile_now(&self) -> Decision {
        reconcile(&self.plan, &self.status, &self.world)
    }

    pub fn release(&mut self, image: &str) {
        self.world.target.template = template(image);
    }

    pub fn command(&mut self, verb: CommandVerb, nonce: &str) {
        self.world.command = Some(Command {
            verb,
            nonce: nonce.into(),
            reason: None,
        });
    }

    pub fn message(&self) -> String {
        self.status.message.clone().unwrap_or_default()
    }

    pub fn stage(&self) -> Stage {
        self.status.stage.expect("a stage")
    }

    pub fn weight(&self) -> u8 {
        self.last
            .as_ref()
            .and_then(|d| d.desired.canary_route.as_ref())
            .map(|r| r.weight)
            .unwrap_or(0)
    }

    pub fn condition(&self, type_: &str) -> ConditionStatus {
        self.status
            .conditions
            .iter()
            .find(|c| c.type_ == type_)
            .map(|c| c.status)
            .expect("condition set")
    }

    /// Runs until the stage is `until`, at most `limit` ticks.
    pub fn run_until(&mut self, until: Stage, secs: i64, verdict: Verdict, limit: usize) {
        for _ in 0..limit {
            if self.status.stage == Some(until) {
                return;
            }
            self.tick(secs, verdict);
        }
        panic!(
            "never reached {until:?}; stuck at {:?}: {:?}",
            self.status.stage, self.status.message
        );
    }

    pub fn taken_over(plan: ReleasePlan) -> Sim {
        let mut sim = Sim::new(plan);
        sim.run_until(Stage::Steady, 1, Verdict::Pass, 10);
        sim
    }
}

#[test]
fn take_over_moves_the_service_only_to_a_ready_slot_then_scales_the_target_down() {
    let mut sim = Sim::new(plan(json!({})));
    sim.never_ready = false;
    let first = reconcile(&sim.plan, &sim.status, &sim.world);
    assert_eq!(first.status.phase, Phase::Initializing);
    assert_eq!(first.desired.slot(Slot::Blue).map(|s| s.replicas), Some(2));
    assert!(
        first.desired.service_selector.is_none(),
        "the Service waits for a ready slot"
    );
    assert!(
        first.desired.target_replicas.is_none(),
        "the target keeps serving until the Service moved"
    );
    sim.tick(0, Verdict::Pass);
    let second = sim.tick(1, Verdict::Pass);
    assert_eq!(
        second
            .desired
            .service_selector
            .as_ref()
            .and_then(|s| s.get(SLOT_LABEL))
            .map(String::as_str),
        Some("blue")
    );
    sim.run_until(Stage::Steady, 1, Verdict::Pass, 5);
    assert_eq!(sim.world.target.replicas, 0);
    assert_eq!(sim.status.phase, Phase::Ready);
    assert_eq!(
        sim.status.original_selector.as_ref().map(|s| s.len()),
        Some(1)
    );
    assert_eq!(sim.condition("Promoted"), ConditionStatus::True);
}

#[test]
fn a_healthy_release_steps_through_every_weight_and_flips_the_stable_slot() {
    let mut sim = Sim::taken_over(plan(json!({})));
    sim.release("erp/reporting:1.1");
    sim.tick(1, Verdict::Pass);
    assert_eq!(sim.stage(), Stage::Starting);
    assert_eq!(sim.condition("Promoted"), ConditionStatus::False);
    sim.tick(1, Verdict::Pass);
    assert_eq!((sim.stage(), sim.weight()), (Stage::Stepping, 10));
    let mut weights = vec![sim.weight()];
    for _ in 0..20 {
        sim.tick(30, Verdict::Pass);
        if weights.last() != Some(&sim.weight()) {
            weights.push(sim.weight());
        }
        if sim.stage() == Stage::Steady {
            break;
        }
    }
    assert_eq!(weights, [10, 50, 0]);
    assert_eq!(sim.status.phase, Phase::Succeeded);
    assert_eq!(sim.status.stable_slot, Some(Slot::Green));
    assert_eq!(sim.world.service_slot(), Some(Slot::Green));
    assert_eq!(sim.condition("Promoted"), ConditionStatus::True);
    assert_eq!(
        sim.world.blue.as_ref().unwrap().replicas,
        2,
        "the old slot stays warm for scaleDownDelay"
    );
    sim.tick(31, Verdict::Pass);
    assert_eq!(
        sim.world.blue.as_ref().unwrap().replicas,
        0,
        "then scales down"
    );
}

#[test]
fn failed_checks_roll_back_with_the_weight_at_zero_before_any_scale_down() {
    let mut sim = Sim::taken_over(plan(json!({})));
    sim.release("erp/reporting:1.1");
    sim.run_until(Stage::Stepping, 1, Verdict::Pass, 5);
    assert_eq!(sim.status.first_failure_at, None);
    sim.tick(60, Verdict::Fail);
    let first_failure = sim.world.now;
    assert_eq!(sim.status.failed_checks, 1);
    assert_eq!(sim.status.first_failure_at, Some(first_failure));
    assert_eq!(sim.stage(), Stage::Stepping, "failureLimit 1 tolerates one");
    let decision = sim.tick(60, Verdict::Fail).clone();
    assert_eq!(
        sim.status.first_failure_at,
        Some(first_failure),
        "the first failure stays the first"
    );
    assert_eq!(sim.stage(), Stage::RollingBack);
    assert_eq!(
        decision.desired.canary_route.as_ref().map(|r| r.weight),
        Some(0)
    );
    assert_eq!(
        decision.desired.slot(Slot::Green).map(|s| s.replicas),
        Some(2),
        "no scale-down before the weight is read back"
    );
    sim.tick(1, Verdict::Pass);
    assert_eq!(sim.stage(), Stage::RollingBackScaleDown);
    assert_eq!(sim.world.green.as_ref().unwrap().replicas, 0);
    sim.tick(1, Verdict::Pass);
    assert_eq!(sim.status.phase, Phase::RolledBack);
    assert!(
        sim.status
            .message
            .as_deref()
            .unwrap()
            .contains("failureLimit 1"),
        "{:?}",
        sim.status.message
    );
    assert_eq!(sim.condition("Promoted"), ConditionStatus::False);
    assert_eq!(sim.status.rollback_cause, Some(RollbackCause::FailedChecks));

    sim.tick(600, Verdict::Pass);
    assert_eq!(
        sim.stage(),
        Stage::Steady,
        "a rolled-back revision is not retried"
    );
    sim.command(CommandVerb::Retry, "n1");
    sim.tick(1, Verdict::Pass);
    assert_eq!(sim.stage(), Stage::Starting, "until retry");
    assert_eq!(
        sim.status.first_failure_at, None,
        "a new release, no failure yet"
    );
}

#[test]
fn a_candidate_that_never_becomes_ready_is_rolled_back_at_the_deadline() {
    let mut sim = Sim::taken_over(plan(json!({"progressDeadline": "2m"})));
    sim.never_ready = true;
    sim.release("erp/reporting:broken");
    sim.tick(1, Verdict::Pass);
    sim.tick(60, Verdict::Pass);
    assert_eq!(sim.stage(), Stage::Starting);
    sim.tick(61, Verdict::Pass);
    assert_eq!(sim.stage(), Stage::RollingBack);
    sim.run_until(Stage::Steady, 1, Verdict::Pass, 5);
    let message = sim.status.message.clone().unwrap();
    assert!(
        message.contains("not ready after progressDeadline 2m: 0/2 ready"),
        "{message}"
    );
    assert_eq!(
        sim.status.rollback_cause,
        Some(RollbackCause::ProgressDeadline)
    );
}

#[test]
fn a_new_revision_mid_release_supersedes_the_old_from_step_one() {
    let mut sim = Sim::taken_over(plan(json!({})));
    sim.release("erp/reporting:1.1");
    sim.run_until(Stage::Stepping, 1, Verdict::Pass, 5);
    sim.tick(60, Verdict::Pass);
    sim.tick(1, Verdict::Pass);
    assert_eq!(sim.weight(), 50);
    sim.release("erp/reporting:1.2");
    sim.tick(1, Verdict::Pass);
    assert_eq!((sim.stage(), sim.weight()), (Stage::Superseding, 0));
    sim.tick(1, Verdict::Pass);
    assert_eq!(sim.stage(), Stage::Starting);
    assert_eq!(
        sim.status.candidate_revision.as_deref(),
        Some(template_hash(&template("erp/reporting:1.2")).as_str())
    );
    sim.tick(1, Verdict::Pass);
    assert_eq!(
        (sim.stage(), sim.status.step, sim.weight()),
        (Stage::Stepping, Some(1), 10)
    );
    assert!(
        sim.status.rolled_back_revision.is_none(),
        "a superseded revision is not a rolled-back one"
    );
}

#[test]
fn manual_promotion_waits_at_the_last_step_and_commands_apply_once() {
    let mut sim = Sim::taken_over(plan(json!({"promotion": "manual"})));
    sim.release("erp/reporting:1.1");
    sim.run_until(Stage::AwaitingPromotion, 60, Verdict::Pass, 10);
    assert_eq!((sim.status.phase, sim.weight()), (Phase::Paused, 50));
    sim.tick(600, Verdict::Pass);
    assert_eq!(
        sim.stage(),
        Stage::AwaitingPromotion,
        "no promotion without a command"
    );
    sim.command(CommandVerb::Promote, "a");
    sim.tick(1, Verdict::Pass);
    assert_eq!(sim.stage(), Stage::PromotingScale);
    sim.run_until(Stage::Steady, 1, Verdict::Pass, 5);
    assert_eq!(sim.status.phase, Phase::Succeeded);

    sim.release("erp/reporting:1.2");
    sim.run_until(Stage::Stepping, 1, Verdict::Pass, 5);
    sim.command(CommandVerb::Promote, "b");
    sim.tick(1, Verdict::Pass);
    assert_eq!(sim.status.step, Some(2));
    sim.command(CommandVerb::Promote, "b");
    sim.tick(1, Verdict::Pass);
    assert_eq!(
        (sim.stage(), sim.status.step),
        (Stage::Stepping, Some(2)),
        "the same command is not applied twice"
    );
}

#[test]
fn abort_and_pause() {
    let mut sim = Sim::taken_over(plan(json!({})));
    sim.release("erp/reporting:1.1");
    sim.run_until(Stage::Stepping, 1, Verdict::Pass, 5);
    sim.command(CommandVerb::Pause, "p");
    sim.tick(600, Verdict::Pass);
    assert_eq!(
        (sim.stage(), sim.status.phase, sim.status.step),
        (Stage::Stepping, Phase::Paused, Some(1))
    );
    sim.command(CommandVerb::Abort, "x");
    sim.tick(1, Verdict::Pass);
    assert_eq!((sim.stage(), sim.weight()), (Stage::RollingBack, 0));
    sim.run_until(Stage::Steady, 1, Verdict::Pass, 5);
    assert_eq!(sim.status.phase, Phase::RolledBack);
    assert!(sim.message().contains("aborted by command"));
    assert_eq!(sim.status.rollback_cause, Some(RollbackCause::Aborted));
}

#[test]
fn the_match_phase_routes_by_header_before_the_weights() {
    let extra = json!({"strategy": {"canary": {"match": {"header": {"name": "x-canary", "value": "insider"}}}}});
    let mut sim = Sim::taken_over(plan(extra));
    sim.release("erp/reporting:1.1");
    sim.run_until(Stage::Matching, 1, Verdict::Pass, 5);
    let route = sim
        .last
        .as_ref()
        .unwrap()
        .desired
        .canary_route
        .clone()
        .unwrap();
    assert_eq!(route.weight, 0);
    assert_eq!(
        route.traffic_match.and_then(|m| m.header).map(|h| h.name),
        Some("x-canary".to_string())
    );
    sim.tick(60, Verdict::Pass);
    sim.tick(1, Verdict::Pass);
    assert_eq!((sim.stage(), sim.weight()), (Stage::Stepping, 10));
    assert!(
        sim.last
            .as_ref()
            .unwrap()
            .desired
            .canary_route
            .as_ref()
            .unwrap()
            .traffic_match
            .is_none()
    );
}

#[test]
fn unreachable_prometheus_never_promotes_and_says_why() {
    // Steps of 3m, so that a step is held long enough while its checks fail to reach Prometheus.
    let extra = json!({"strategy": {"canary": {"stepInterval": "3m"}}});
    let mut sim = Sim::taken_over(plan(extra));
    sim.release("erp/reporting:1.1");
    sim.run_until(Stage::Stepping, 1, Verdict::Pass, 5);
    sim.tick(60, Verdict::Pass);
    for _ in 0..2 {
        sim.tick(60, Verdict::Error);
        assert_eq!(
            (sim.stage(), sim.status.step),
            (Stage::Stepping, Some(1)),
            "a check that could not be made never passes a step, whatever passed before"
        );
    }
    sim.tick(60, Verdict::Error);
    assert_eq!(
        sim.stage(),
        Stage::RollingBack,
        "the third error is one over errorLimit 2"
    );
    sim.run_until(Stage::Steady, 1, Verdict::Pass, 5);
    assert_eq!(sim.status.phase, Phase::RolledBack);
    assert!(sim.message().contains("errorLimit 2"));
    assert_eq!(
        sim.status.rollback_cause,
        Some(RollbackCause::FailedQueries)
    );
}

#[test]
fn a_restarted_controller_decides_the_same_from_the_stored_status() {
    let mut sim = Sim::taken_over(plan(json!({})));
    sim.release("erp/reporting:1.1");
    sim.run_until(Stage::Stepping, 1, Verdict::Pass, 5);
    sim.tick(60, Verdict::Pass);
    let stored: RolloutStatus =
        serde_json::from_value(serde_json::to_value(&sim.status).unwrap()).unwrap();
    assert_eq!(stored, sim.status);
    let before = reconcile(&sim.plan, &sim.status, &sim.world);
    let after = reconcile(&sim.plan, &stored, &sim.world);
    assert_eq!(before, after);
}

#[test]
fn requeue_follows_the_next_due_check() {
    let mut sim = Sim::taken_over(plan(json!({})));
    sim.release("erp/reporting:1.1");
    sim.run_until(Stage::Stepping, 1, Verdict::Pass, 5);
    let decision = sim.tick(20, Verdict::Pass);
    assert_eq!(decision.requeue_after, Duration::from_secs(40));
}

#[test]
fn abort_gives_up_the_revision_the_target_asks_for_even_one_not_started_yet() {
    let mut sim = Sim::taken_over(plan(json!({})));
    sim.release("erp/reporting:1.1");
    sim.run_until(Stage::Stepping, 1, Verdict::Pass, 5);
    sim.release("erp/reporting:1.2");
    sim.command(CommandVerb::Abort, "a");
    sim.tick(1, Verdict::Pass);
    sim.run_until(Stage::Steady, 1, Verdict::Pass, 5);
    let newest = template_hash(&template("erp/reporting:1.2"));
    assert_eq!(sim.status.phase, Phase::RolledBack);
    assert_eq!(
        sim.status.rolled_back_revision.as_deref(),
        Some(newest.as_str())
    );
    sim.tick(600, Verdict::Pass);
    assert_eq!(sim.stage(), Stage::Steady, "not started until retry");

    sim.release("erp/reporting:1.3");
    sim.command(CommandVerb::Abort, "b");
    sim.tick(1, Verdict::Pass);
    assert_eq!(
        (sim.stage(), sim.status.phase),
        (Stage::Steady, Phase::RolledBack)
    );
    sim.command(CommandVerb::Retry, "c");
    sim.tick(1, Verdict::Pass);
    assert_eq!(sim.stage(), Stage::Starting);
}
