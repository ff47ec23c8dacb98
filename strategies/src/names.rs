//! The names of the objects sluice makes for a Rollout (contract, DESIGN.md section 2). One place,
//! so that the controller's writes, its watch triggers and the PromQL variables always agree.

use crate::status::Slot;

/// Appended to the Service and the Ingress for the candidate's copies.
pub const CANARY_SUFFIX: &str = "-canary";

/// `<app>-blue` / `<app>-green`.
pub fn slot_name(target: &str, slot: Slot) -> String {
    format!("{target}-{slot}")
}

/// `<svc>-canary`: selects the candidate slot.
pub fn canary_service_name(service: &str) -> String {
    format!("{service}{CANARY_SUFFIX}")
}

/// `<ingress>-canary`: the user's rules for the Service, pointed at `<svc>-canary`.
pub fn canary_ingress_name(ingress: &str) -> String {
    format!("{ingress}{CANARY_SUFFIX}")
}

/// Whether `name` is one of the two slots of `target`.
pub fn is_slot_of(name: &str, target: &str) -> bool {
    [Slot::Blue, Slot::Green]
        .iter()
        .any(|slot| slot_name(target, *slot) == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_contract() {
        assert_eq!(slot_name("reporting", Slot::Green), "reporting-green");
        assert_eq!(
            canary_service_name("reporting-service"),
            "reporting-service-canary"
        );
        assert_eq!(canary_ingress_name("erp-ingress"), "erp-ingress-canary");
        assert!(is_slot_of("reporting-blue", "reporting"));
        assert!(!is_slot_of("reporting-canary", "reporting"));
    }
}
