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

/// The longest object name Kubernetes takes (a DNS subdomain).
const MAX_NAME: usize = 253;
/// The longest label value Kubernetes takes.
pub const MAX_LABEL_VALUE: usize = 63;

/// `<ingress>-<svc>-canary`: the user's rules for the Service, pointed at `<svc>-canary`. One per
/// Service, so that several Rollouts can share one user Ingress. Shortened with a hash past 253
/// characters.
pub fn canary_ingress_name(ingress: &str, service: &str) -> String {
    shortened(&format!("{ingress}-{service}{CANARY_SUFFIX}"), MAX_NAME)
}

/// `<rollout>-<revision>`: the ControllerRevision holding the pod template of one of the Rollout's
/// revisions, as the user wrote it (shortened with a hash past 253 characters).
pub fn template_record_name(rollout: &str, revision: &str) -> String {
    shortened(&format!("{rollout}-{revision}"), MAX_NAME)
}

/// `<ingress>-canary`, the canary Ingress's name before several Rollouts could share an Ingress: a
/// Rollout whose status records no canary objects yet may still own one of that name.
pub fn legacy_canary_ingress_name(ingress: &str) -> String {
    format!("{ingress}{CANARY_SUFFIX}")
}

/// `text` as a label value: itself when it fits in 63 characters, else a prefix and a hash of the
/// whole, so that two long names still get different values.
pub fn label_value(text: &str) -> String {
    shortened(text, MAX_LABEL_VALUE)
}

/// `text` if it has at most `max` characters; else its first characters (up to the last letter or
/// digit), `-` and 10 hex digits of a hash of the whole text.
fn shortened(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let hash = short_hash(text);
    let keep = max - hash.len() - 1;
    // Names and label values are ASCII; `get` keeps a multi-byte text from panicking all the same.
    let prefix = text
        .get(..keep)
        .unwrap_or_default()
        .trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
    format!("{prefix}-{hash}")
}

/// FNV-1a (64 bit) of `text`, 10 hex digits.
pub(crate) fn short_hash(text: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{:010x}", hash >> 24)
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
        assert_eq!(
            canary_ingress_name("erp-ingress", "gateway-service"),
            "erp-ingress-gateway-service-canary"
        );
        assert!(is_slot_of("reporting-blue", "reporting"));
        assert!(!is_slot_of("reporting-canary", "reporting"));
    }

    #[test]
    fn long_names_are_shortened_with_a_hash_and_stay_apart() {
        let ingress = "i".repeat(240);
        let a = canary_ingress_name(&ingress, "reporting-service");
        let b = canary_ingress_name(&ingress, "gateway-service");
        assert_eq!((a.len(), b.len()), (253, 253));
        assert_ne!(a, b);
        assert!(a.starts_with("iiii") && a.as_bytes()[242] == b'-', "{a}");
        let rollout = format!("{}-x", "a".repeat(62));
        let value = label_value(&rollout);
        assert_eq!(value.len(), 63);
        assert_ne!(value, label_value(&format!("{}-y", "a".repeat(62))));
        assert!(
            value
                .chars()
                .last()
                .is_some_and(|c| c.is_ascii_alphanumeric())
        );
        assert_eq!(label_value("reporting"), "reporting");
        // A prefix cut at a '-' loses it: values end with a letter or digit.
        let dashed = format!("{}-{}", "b".repeat(51), "c".repeat(20));
        assert!(
            !label_value(&dashed).contains("--"),
            "{}",
            label_value(&dashed)
        );
    }
}
