//! The order of the writes that carry out a decision: nothing sends traffic where nothing is
//! ready, and nothing is taken from under traffic. A reconcile's writes are not atomic and any of
//! them can fail; in this order, a prefix of them is always safe.

use std::collections::BTreeMap;

use super::{CanaryRoute, Desired, SlotSpec, TemplateRecord, World};
use crate::status::{CanaryObjects, Slot};

/// One write, as the controller carries it out.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// Keep a revision's pod template on record (before anything relies on it).
    Record(TemplateRecord),
    /// Apply a slot Deployment.
    Slot(SlotSpec),
    /// Replace `<svc>`'s selector.
    ServiceSelector(BTreeMap<String, String>),
    /// Apply `<svc>-canary`, selecting this slot.
    CanaryService(Slot),
    /// Apply the canary Ingress.
    CanaryRoute(CanaryRoute),
    /// Delete these canary objects.
    Remove(CanaryObjects),
    /// Scale the user's Deployment.
    TargetReplicas(i32),
    /// Delete these revisions' template records.
    Forget(Vec<String>),
}

/// `desired` as writes, in a safe order given the world it was decided from:
/// 1. the template record;
/// 2. less traffic to the candidate: a canary route that lowers the weight read back or drops a
///    match, and canary objects that go (deleting a canary Ingress sends its share back);
/// 3. slots that grow or keep their size (a new template included);
/// 4. the Service selector, then the canary Service;
/// 5. a canary route that sends more to the candidate;
/// 6. slots that shrink, then the user's Deployment;
/// 7. records no longer needed.
pub fn ordered_writes(desired: &Desired, world: &World) -> Vec<Write> {
    let mut writes = Vec::new();
    writes.extend(desired.record.clone().map(Write::Record));
    let route_lowers = desired.canary_route.as_ref().is_some_and(|route| {
        let weight_down = world.canary_weight.is_some_and(|w| route.weight < w);
        let match_off = world.canary_matching && route.traffic_match.is_none();
        weight_down || match_off
    });
    if route_lowers {
        writes.extend(desired.canary_route.clone().map(Write::CanaryRoute));
    }
    if !desired.remove.is_empty() {
        writes.push(Write::Remove(desired.remove.clone()));
    }
    let observed = |slot: Slot| world.slot(slot).map(|v| v.replicas);
    let (growing, shrinking): (Vec<&SlotSpec>, Vec<&SlotSpec>) = desired
        .slots
        .iter()
        .partition(|s| observed(s.slot).is_none_or(|replicas| s.replicas >= replicas));
    writes.extend(growing.into_iter().cloned().map(Write::Slot));
    writes.extend(desired.service_selector.clone().map(Write::ServiceSelector));
    writes.extend(desired.canary_service.map(Write::CanaryService));
    if !route_lowers {
        writes.extend(desired.canary_route.clone().map(Write::CanaryRoute));
    }
    writes.extend(shrinking.into_iter().cloned().map(Write::Slot));
    writes.extend(desired.target_replicas.map(Write::TargetReplicas));
    if !desired.forget.is_empty() {
        writes.push(Write::Forget(desired.forget.clone()));
    }
    writes
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::tests::{Sim, plan};
    use super::*;
    use crate::status::{Stage, Verdict};

    fn position(writes: &[Write], matches: impl Fn(&Write) -> bool) -> usize {
        writes
            .iter()
            .position(matches)
            .unwrap_or_else(|| panic!("not in {writes:?}"))
    }

    #[test]
    fn a_release_that_starts_grows_the_candidate_before_any_route_gives_it_traffic() {
        let mut sim = Sim::taken_over(plan(json!({})));
        sim.release("erp/reporting:1.1");
        sim.tick(1, Verdict::Pass);
        let decision = sim.reconcile_now();
        let writes = ordered_writes(&decision.desired, &sim.world);
        let green = position(
            &writes,
            |w| matches!(w, Write::Slot(s) if s.slot == Slot::Green),
        );
        let route = position(&writes, |w| matches!(w, Write::CanaryRoute(_)));
        assert!(green < route, "{writes:?}");
        assert!(matches!(writes[0], Write::Record(_)), "{writes:?}");
    }

    #[test]
    fn superseding_takes_the_weight_off_before_the_candidate_gets_a_new_template() {
        let mut sim = Sim::taken_over(plan(json!({})));
        sim.release("erp/reporting:1.1");
        sim.run_until(Stage::Stepping, 1, Verdict::Pass, 5);
        sim.release("erp/reporting:1.2");
        let decision = sim.reconcile_now();
        assert_eq!(decision.status.stage, Some(Stage::Superseding));
        let writes = ordered_writes(&decision.desired, &sim.world);
        let route = position(
            &writes,
            |w| matches!(w, Write::CanaryRoute(r) if r.weight == 0),
        );
        let candidate = position(
            &writes,
            |w| matches!(w, Write::Slot(s) if s.slot == Slot::Green),
        );
        assert!(route < candidate, "weight to 0 first: {writes:?}");
    }

    #[test]
    fn a_rollback_scales_the_candidate_down_after_the_route_and_the_target_last() {
        let mut sim = Sim::taken_over(plan(json!({})));
        sim.release("erp/reporting:1.1");
        sim.run_until(Stage::Stepping, 1, Verdict::Pass, 5);
        sim.run_until(Stage::RollingBackScaleDown, 60, Verdict::Fail, 5);
        sim.world.canary_weight = Some(0);
        // As seen when the weight was read back at 0: the candidate still at full size.
        if let Some(green) = sim.world.green.as_mut() {
            green.replicas = 2;
        }
        let decision = sim.reconcile_now();
        let writes = ordered_writes(&decision.desired, &sim.world);
        let shrink = position(
            &writes,
            |w| matches!(w, Write::Slot(s) if s.slot == Slot::Green && s.replicas == 0),
        );
        let route = position(&writes, |w| matches!(w, Write::CanaryRoute(_)));
        assert!(route < shrink, "{writes:?}");
        let target = position(&writes, |w| matches!(w, Write::TargetReplicas(_)));
        assert!(shrink < target, "{writes:?}");
    }
}
