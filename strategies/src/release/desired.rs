//! The world as it should be for the stage the canary machine reached, and when to look again.

use std::time::Duration;

use super::canary::Machine;
use super::{CanaryRoute, Desired, SlotSpec, next_check_at, revision};
use crate::status::Stage;

const POLL: Duration = Duration::from_secs(2);
const FAST_POLL: Duration = Duration::from_secs(1);
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

        let stable_template = match self.world.slot(stable) {
            Some(view) if stage != Stage::TakingOver && view.revision == self.s.stable_revision => {
                view.template.clone()
            }
            _ => revision::slot_template(&target.template, stable),
        };
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

        let in_flight = matches!(
            stage,
            Stage::Starting
                | Stage::Matching
                | Stage::Stepping
                | Stage::AwaitingPromotion
                | Stage::PromotingScale
                | Stage::PromotingSwitch
                | Stage::PromotingDrain
        );
        let observed = self.world.slot(candidate);
        let candidate_spec =
            if in_flight && self.s.candidate_revision.as_ref() == Some(&self.target_revision) {
                Some((
                    self.target_revision.clone(),
                    revision::slot_template(&target.template, candidate),
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

        let serving = if matches!(stage, Stage::PromotingSwitch | Stage::PromotingDrain) {
            candidate
        } else {
            stable
        };
        let stable_ready = self.world.slot(stable).is_some_and(|v| {
            v.ready_replicas >= full && v.revision.as_deref() == Some(&desired.slots[0].revision)
        });
        let moved = self.world.service_slot() == Some(stable);
        if stage != Stage::TakingOver || stable_ready || moved {
            desired.service_selector = Some(revision::slot_selector(&target.selector, serving));
        }
        if stage != Stage::TakingOver || moved {
            desired.target_replicas = Some(0);
        }
        desired.canary_route = match stage {
            Stage::TakingOver => None,
            Stage::Matching => Some(CanaryRoute {
                weight: 0,
                traffic_match: self.canary.traffic_match.clone(),
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

    pub(super) fn requeue_after(&self) -> Duration {
        match self.s.stage {
            Some(Stage::Matching | Stage::Stepping | Stage::AwaitingPromotion) => {
                let check = next_check_at(self.plan, &self.s);
                let step_end = self.s.stage_started_at.and_then(|at| {
                    Some(at + chrono::Duration::from_std(self.canary.step_interval).ok()?)
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
            Some(
                Stage::PromotingSwitch
                | Stage::PromotingDrain
                | Stage::RollingBack
                | Stage::RollingBackScaleDown
                | Stage::Superseding,
            ) => FAST_POLL,
            _ => POLL,
        }
    }
}
