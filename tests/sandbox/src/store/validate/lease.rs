//! Lease (`coordination.k8s.io/v1`), as kube-apiserver's `ValidateLeaseSpec` checks it: a
//! positive `leaseDurationSeconds`, a non-negative `leaseTransitions`, a known coordinated
//! `strategy`, `preferredHolder` only beside one, and times in MicroTime's RFC 3339 form (the
//! server's decoder refuses anything else before validation).

use serde_json::Value;

use super::Cause;

/// The only coordinated leader election strategy of kube-apiserver.
const STRATEGIES: [&str; 1] = ["OldestEmulationVersion"];

pub fn validate(obj: &Value, causes: &mut Vec<Cause>) {
    let Some(spec) = obj.get("spec").and_then(Value::as_object) else {
        return;
    };
    let mut cause = |field: &str, message: String| causes.push((format!("spec.{field}"), message));
    if let Some(duration) = spec.get("leaseDurationSeconds").filter(|v| !v.is_null()) {
        match duration.as_i64() {
            Some(seconds) if seconds > 0 && seconds <= i64::from(i32::MAX) => {}
            _ => cause(
                "leaseDurationSeconds",
                format!("Invalid value: {duration}: must be greater than 0"),
            ),
        }
    }
    if let Some(transitions) = spec.get("leaseTransitions").filter(|v| !v.is_null()) {
        match transitions.as_i64() {
            Some(count) if (0..=i64::from(i32::MAX)).contains(&count) => {}
            _ => cause(
                "leaseTransitions",
                format!("Invalid value: {transitions}: must be greater than or equal to 0"),
            ),
        }
    }
    let strategy = spec.get("strategy").and_then(Value::as_str).unwrap_or("");
    if spec.get("strategy").is_some_and(|s| !s.is_null()) && !STRATEGIES.contains(&strategy) {
        cause(
            "strategy",
            format!(
                "Unsupported value: {strategy:?}: supported values: \"OldestEmulationVersion\""
            ),
        );
    }
    let preferred = spec
        .get("preferredHolder")
        .and_then(Value::as_str)
        .unwrap_or("");
    if !preferred.is_empty() && strategy.is_empty() {
        cause(
            "preferredHolder",
            "Forbidden: may only be specified if `strategy` is defined".into(),
        );
    }
    for field in ["acquireTime", "renewTime"] {
        match spec.get(field) {
            None | Some(Value::Null) => {}
            Some(Value::String(text)) if chrono::DateTime::parse_from_rfc3339(text).is_ok() => {}
            Some(other) => cause(
                field,
                format!(
                    "Invalid value: {other}: not a MicroTime (RFC 3339, e.g. 2026-12-02T01:00:00.000000Z)"
                ),
            ),
        }
    }
}
