//! The world as it should be for the stage the machine reached, and when to look again. The guards
//! that hold whatever the stage says are here too: `<svc>` moves only to a slot with ready pods
//! (a candidate: all of them), and the slot `<svc>` selects is never scaled down.

use std::collections::BTreeMap;
use std::time::Duration;

use super::machine::{Machine, analysing, in_flight};
use super::{CanaryRoute, Desired, SlotSpec, TemplateRecord, next_check_at, revision};
use crate::status::{Slot, Stage};

/// The soonest a timer brings a Rollout back.
const FAST_POLL: Duration = Duration::from_secs(1);
/// How long a stage that waits on the world (a slot to be ready, a weight or a selector to be read
/// back) waits before it looks again by itself. The watch of what it waits on wakes it sooner;
/// this is the deadline should an event be lost.
const WORLD_WAIT: Duration = Duration::from_secs(10);
const IDLE: Duration = Duration::from_secs(300);

impl Machine<'_> {
    /// The world as it should be for the stage reached.
    pub(super) fn desired(&self) -> Desired {
        let stage = self.s.stage.unwrap_or(Stage::TakingOver);
        let full = self.full();
        let stable = self.stable();
        let candidate = self.candidate();
        let target = &self.world.target;
        let mut desired = Desired {
            canary_service: Some(candidate),
            ..Desired::default()
        };

        let stable_template = self.stable_template(stage);
        let stable_revision = self
            .s
            .stable_revision
            .clone()
            .unwrap_or_else(|| self.target_revision.clone());
        desired.slots.push(SlotSpec {
            slot: stable,
            revision: stable_revision,
            template: stable_template,
            replicas: full,
        });

        let in_flight = in_flight(Some(stage));
        let observed = self.world.slot(candidate);
        let candidate_spec =
            if in_flight && self.s.candidate_revision.as_ref() == Some(&self.target_revision) {
                Some((
                    self.target_revision.clone(),
                    revision::slot_template(&target.template, &target.selector, candidate),
                    full,
                ))
            } else if let Some(view) = observed {
                let keep_warm = self
                    .s
                    .scale_down
                    .is_some_and(|p| p.slot == candidate && self.now() < p.at);
                let replicas = match stage {
                    _ if in_flight => full,
                    Stage::RollingBack | Stage::Superseding => view.replicas,
                    _ if keep_warm => full,
                    _ => 0,
                };
                Some((
                    view.revision.clone().unwrap_or_default(),
                    view.template.clone(),
                    replicas,
                ))
            } else {
                None
            };
        if let Some((revision, template, replicas)) = candidate_spec {
            desired.slots.push(SlotSpec {
                slot: candidate,
                revision,
                template,
                replicas,
            });
        }

        let serving = match stage {
            Stage::PromotingSwitch | Stage::PromotingDrain | Stage::Verifying => candidate,
            _ => stable,
        };
        let moved = self.world.service_slot() == Some(stable);
        desired.service_selector = if stage == Stage::TakingOver && !moved {
            let stable_ready = self.world.slot(stable).is_some_and(|v| {
                v.ready_replicas >= full
                    && v.revision.as_deref() == Some(&desired.slots[0].revision)
            });
            stable_ready.then(|| revision::slot_selector(&target.selector, stable))
        } else {
            self.selector_for(serving)
        };
        if stage != Stage::TakingOver || moved {
            desired.target_replicas = Some(0);
        }
        self.keep_the_selected_slot_up(&mut desired.slots);
        let recordable = Some(&self.target_revision) == self.s.stable_revision.as_ref()
            || (in_flight && Some(&self.target_revision) == self.s.candidate_revision.as_ref());
        desired.record = recordable.then(|| TemplateRecord {
            revision: self.target_revision.clone(),
            template: target.template.clone(),
            number: self.now().timestamp(),
        });
        desired.canary_route = match stage {
            _ if self.canary().is_none() => None,
            Stage::TakingOver => None,
            Stage::Matching => Some(CanaryRoute {
                weight: 0,
                traffic_match: self.canary().and_then(|c| c.traffic_match.clone()),
            }),
            Stage::Stepping
            | Stage::AwaitingPromotion
            | Stage::PromotingScale
            | Stage::PromotingSwitch => Some(CanaryRoute {
                weight: self.s.canary_weight.unwrap_or(0),
                traffic_match: None,
            }),
            _ => Some(CanaryRoute {
                weight: 0,
                traffic_match: None,
            }),
        };
        desired
    }

    /// The stable slot's pod template: the slot's own while it runs the stable revision; else the
    /// record of the stable revision (a lost slot comes back with the stable revision, not with
    /// whatever the target asks for); the target's only while taking over, when the target's is
    /// the stable revision, or when nothing was recorded (Rollouts from before records).
    fn stable_template(&self, stage: Stage) -> serde_json::Value {
        let target = &self.world.target;
        let stable = self.stable();
        match (self.world.slot(stable), &self.world.stable_record) {
            (Some(view), _)
                if stage != Stage::TakingOver && view.revision == self.s.stable_revision =>
            {
                view.template.clone()
            }
            (_, Some(record))
                if stage != Stage::TakingOver
                    && Some(&self.target_revision) != self.s.stable_revision.as_ref() =>
            {
                revision::slot_template(record, &target.selector, stable)
            }
            _ => revision::slot_template(&target.template, &target.selector, stable),
        }
    }

    /// The selector that moves `<svc>` to `serving`, or keeps it where it is while `serving` is
    /// not ready to take traffic: a candidate needs every pod of its revision ready; the stable
    /// slot, any ready pod (a candidate given up on is worse than a stable slot short of pods).
    fn selector_for(&self, serving: Slot) -> Option<BTreeMap<String, String>> {
        let selector = &self.world.target.selector;
        let current = self.world.service_slot();
        let ready = match self.world.slot(serving) {
            _ if current == Some(serving) => true,
            Some(view) if serving == self.stable() => {
                view.ready_replicas > 0 && view.revision == self.s.stable_revision
            }
            Some(_) => self.candidate_ready(),
            None => false,
        };
        if ready {
            Some(revision::slot_selector(selector, serving))
        } else {
            current.map(|slot| revision::slot_selector(selector, slot))
        }
    }

    /// Whatever the stage asks, the slot `<svc>` selects (as read back) keeps its replicas: it is
    /// serving.
    fn keep_the_selected_slot_up(&self, slots: &mut [SlotSpec]) {
        let Some(selected) = self.world.service_slot() else {
            return;
        };
        let observed = self.world.slot(selected).map_or(0, |v| v.replicas);
        for spec in slots.iter_mut().filter(|s| s.slot == selected) {
            spec.replicas = spec.replicas.max(observed);
        }
    }

    pub(super) fn requeue_after(&self) -> Duration {
        match self.s.stage {
            stage if analysing(stage) => {
                let check = next_check_at(self.plan, &self.s);
                let step_end = self.s.stage_started_at.and_then(|at| {
                    Some(at + chrono::Duration::from_std(self.stage_length()?).ok()?)
                });
                let next = [check, step_end]
                    .into_iter()
                    .flatten()
                    .filter(|t| *t > self.now())
                    .min();
                next.and_then(|t| (t - self.now()).to_std().ok())
                    .unwrap_or(FAST_POLL)
                    .clamp(FAST_POLL, self.plan.analysis.interval.max(FAST_POLL))
            }
            Some(Stage::Steady) => match self.s.scale_down {
                Some(pending) => (pending.at - self.now())
                    .to_std()
                    .unwrap_or(FAST_POLL)
                    .max(FAST_POLL),
                None => IDLE,
            },
            // Promoting, rolling back, superseding, taking over: each waits on the world, and a
            // stage with a progress deadline looks again when it runs out.
            _ => {
                let since = match self.s.stage {
                    Some(Stage::Starting) => self.s.release_started_at,
                    _ => self.s.stage_started_at,
                };
                let deadline = since.and_then(|at| {
                    let end = at + chrono::Duration::from_std(self.plan.progress_deadline).ok()?;
                    (end - self.now()).to_std().ok()
                });
                deadline
                    .map_or(WORLD_WAIT, |left| left.min(WORLD_WAIT))
                    .max(FAST_POLL)
            }
        }
    }

    /// How long the current analysing stage lasts at least.
    fn stage_length(&self) -> Option<Duration> {
        match (self.s.stage, self.canary(), self.blue_green()) {
            (Some(Stage::Previewing), _, Some(bg)) => Some(bg.preview_duration),
            (Some(Stage::Verifying), _, Some(bg)) => Some(bg.post_switch_duration),
            (Some(Stage::AwaitingPromotion), _, Some(_)) => None,
            (_, Some(canary), _) => Some(canary.step_interval),
            _ => None,
        }
    }
}
