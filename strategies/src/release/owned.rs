//! The canary objects a Rollout owns, by the names the status records and by owner reference
//! rather than by the names the spec gives now: a change of `ingressRef`, `service` or strategy
//! leaves no orphan behind. A name enters the record before the object is written (the status is
//! written first), and leaves it once the object is seen gone; an object the record lost (a cache
//! that lagged behind our own create) is still found by its owner reference, so none is lost.

use super::machine::Machine;
use crate::names::{canary_ingress_name, canary_service_name};
use crate::status::CanaryObjects;

impl Machine<'_> {
    /// The canary objects the plan names.
    fn wanted_canary_objects(&self) -> CanaryObjects {
        let service = &self.plan.service.name;
        CanaryObjects {
            ingresses: self
                .canary()
                .map(|c| canary_ingress_name(&c.ingress, service))
                .into_iter()
                .collect(),
            services: vec![canary_service_name(service)],
        }
    }

    /// Records the wanted objects and forgets those seen gone; returns those to delete: every
    /// present object (the shell reports only those this Rollout controls) the plan no longer
    /// names.
    pub(super) fn track_canary_objects(&mut self) -> CanaryObjects {
        let wanted = self.wanted_canary_objects();
        let present = &self.world.present;
        let unwanted = |present: &[String], wanted: &[String]| -> Vec<String> {
            present
                .iter()
                .filter(|n| !wanted.contains(n))
                .cloned()
                .collect()
        };
        let remove = CanaryObjects {
            ingresses: unwanted(&present.ingresses, &wanted.ingresses),
            services: unwanted(&present.services, &wanted.services),
        };
        let keep = |removing: &[String], wanted: &[String]| -> Vec<String> {
            let mut names: Vec<String> = removing.iter().chain(wanted).cloned().collect();
            names.sort();
            names.dedup();
            names
        };
        self.s.canary_objects = CanaryObjects {
            ingresses: keep(&remove.ingresses, &wanted.ingresses),
            services: keep(&remove.services, &wanted.services),
        };
        remove
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::tests::{Sim, plan};
    use super::super::*;
    use crate::status::Verdict;

    fn objects(ingresses: &[&str], services: &[&str]) -> CanaryObjects {
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect();
        CanaryObjects {
            ingresses: names(ingresses),
            services: names(services),
        }
    }

    #[test]
    fn changing_the_ingress_and_the_service_deletes_the_old_canary_objects() {
        let mut sim = Sim::taken_over(plan(json!({})));
        sim.release("erp/reporting:1.1");
        sim.run_until(Stage::Stepping, 1, Verdict::Pass, 5);
        let first = objects(
            &["erp-ingress-reporting-service-canary"],
            &["reporting-service-canary"],
        );
        assert_eq!(sim.status.canary_objects, first);

        // Mid-release, the spec names another Ingress and another Service.
        sim.plan = plan(json!({
            "service": {"name": "reports"},
            "strategy": {"canary": {"ingressRef": {"name": "public"}}},
        }));
        sim.world.present = first.clone();
        let decision = sim.reconcile_now();
        assert_eq!(decision.desired.remove, first, "both old ones go");
        assert_eq!(
            decision.status.canary_objects,
            objects(
                &[
                    "erp-ingress-reporting-service-canary",
                    "public-reports-canary"
                ],
                &["reporting-service-canary", "reports-canary"],
            ),
            "remembered until seen gone"
        );
        sim.status = decision.status;
        sim.world.present = objects(&["public-reports-canary"], &["reports-canary"]);
        let after = sim.reconcile_now();
        assert_eq!(after.desired.remove, CanaryObjects::default());
        assert_eq!(
            after.status.canary_objects,
            objects(&["public-reports-canary"], &["reports-canary"])
        );
    }

    #[test]
    fn a_name_recorded_but_never_made_is_forgotten_and_nothing_foreign_is_deleted() {
        let mut sim = Sim::taken_over(plan(json!({})));
        sim.status.canary_objects = objects(&["old-canary"], &[]);
        sim.world.present = CanaryObjects::default();
        let decision = sim.reconcile_now();
        assert!(
            decision.desired.remove.is_empty(),
            "not there: nothing to delete"
        );
        assert!(
            !decision
                .status
                .canary_objects
                .ingresses
                .contains(&"old-canary".to_string())
        );
    }

    #[test]
    fn an_owned_canary_object_the_record_lost_is_still_deleted() {
        let mut sim = Sim::taken_over(plan(json!({})));
        sim.release("erp/reporting:1.1");
        sim.run_until(Stage::Stepping, 1, Verdict::Pass, 5);
        // The record lost `public-reports-canary` (forgotten while a cache lagged behind its
        // create); the shell still reports it, found by its owner reference.
        sim.world.present = objects(
            &[
                "erp-ingress-reporting-service-canary",
                "public-reports-canary",
            ],
            &["reporting-service-canary", "reports-canary"],
        );
        let decision = sim.reconcile_now();
        assert_eq!(
            decision.desired.remove,
            objects(&["public-reports-canary"], &["reports-canary"])
        );
        assert!(
            decision
                .status
                .canary_objects
                .ingresses
                .contains(&"public-reports-canary".to_string()),
            "recorded again until seen gone"
        );
    }

    #[test]
    fn a_canary_ingress_of_the_older_name_is_found_and_deleted_on_upgrade() {
        let mut sim = Sim::taken_over(plan(json!({})));
        sim.release("erp/reporting:1.1");
        sim.run_until(Stage::Stepping, 1, Verdict::Pass, 5);
        // The status of a controller that named its canary Ingress <ingress>-canary.
        sim.status.canary_objects = CanaryObjects::default();
        sim.world.present = objects(&["erp-ingress-canary"], &[]);
        let decision = sim.reconcile_now();
        assert_eq!(decision.desired.remove.ingresses, ["erp-ingress-canary"]);
    }
}
