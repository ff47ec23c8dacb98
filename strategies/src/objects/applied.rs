//! Whether an object sluice applies already is what it would apply, so that a Rollout at rest
//! makes no API writes (each one would go through ingress-nginx's admission webhook, and through
//! etcd, for nothing).
//!
//! Server-side apply makes the object hold every field of the body (with the server's defaults
//! beside them) and drops the fields sluice applied before and no longer sends. The second part
//! cannot be seen in the object alone: a canary Ingress that still carries `canary-by-header`
//! after the match phase looks the same as one sluice means to keep so. So each body carries a
//! digest of itself in [`APPLIED_ANNOTATION`]: the object is as sluice wants it when its
//! annotation is the digest of the body now, and it still holds every field of the body (nobody
//! edited one by hand since).

use serde_json::Value;

use crate::names::short_hash;
use crate::release::canonical_json;

/// Annotation on every object sluice applies: the digest of the body it applied (contract).
pub const APPLIED_ANNOTATION: &str = "sluice.dev/applied";

/// Puts the digest of `body` (without the annotation) into its annotations.
pub fn stamp(body: &mut Value) {
    if let Some(annotations) = body
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
    {
        annotations.remove(APPLIED_ANNOTATION);
    }
    let digest = short_hash(&canonical_json(body));
    let Some(metadata) = body.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    let annotations = metadata
        .entry("annotations")
        .or_insert_with(|| Value::Object(Default::default()));
    if let Some(annotations) = annotations.as_object_mut() {
        annotations.insert(APPLIED_ANNOTATION.into(), Value::String(digest));
    }
}

/// The fields that name an object's type: a cache of one kind may not repeat them in each object
/// (a struct deriving `kube::Resource` does not), and they cannot differ within it.
const TYPE_FIELDS: [&str; 2] = ["apiVersion", "kind"];

/// Whether `current` (the object as cached) already is the stamped `body`: the same digest, and
/// every field of the body but its type there with its value.
pub fn already_applied(current: &Value, body: &Value) -> bool {
    let digest = |object: &Value| {
        object
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(APPLIED_ANNOTATION))
            .cloned()
    };
    let (Some(have), Some(want)) = (current.as_object(), body.as_object()) else {
        return false;
    };
    digest(body).is_some()
        && digest(current) == digest(body)
        && want
            .iter()
            .filter(|(key, _)| !TYPE_FIELDS.contains(&key.as_str()))
            .all(|(key, want)| match have.get(key) {
                Some(have) => contains(have, want),
                None => is_empty(want),
            })
}

/// What was changed by hand in `current`, an object that still carries the digest of `body`
/// (so sluice's intent for it has not changed since it applied it): the first field of the body
/// it no longer holds, as a path (`spec.replicas`). None when it holds them all, or carries
/// another digest (then the write to come is a change of plan, not a repair).
pub fn edited_field(current: &Value, body: &Value) -> Option<String> {
    let digest = |object: &Value| {
        object
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(APPLIED_ANNOTATION))
            .cloned()
    };
    if digest(body).is_none() || digest(current) != digest(body) {
        return None;
    }
    let (have, want) = (current.as_object()?, body.as_object()?);
    want.iter()
        .filter(|(key, _)| !TYPE_FIELDS.contains(&key.as_str()))
        .find_map(|(key, want)| match have.get(key) {
            Some(have) => first_difference(have, want, key),
            None if is_empty(want) => None,
            None => Some(key.clone()),
        })
}

/// The path of the first field of `want` that `have` does not hold, under `path`.
fn first_difference(have: &Value, want: &Value, path: &str) -> Option<String> {
    match (have, want) {
        (Value::Object(have), Value::Object(want)) => want.iter().find_map(|(key, want)| {
            let at = format!("{path}.{key}");
            match have.get(key) {
                Some(have) => first_difference(have, want, &at),
                None if is_empty(want) => None,
                None => Some(at),
            }
        }),
        _ if contains(have, want) => None,
        _ => Some(path.to_string()),
    }
}

/// Whether `have` holds every field of `want` with its value. Lists must match item by item, as
/// apply replaces them whole (the server may add defaults inside an item). Empty values the
/// server drops (an empty map or list, null) count as held when absent.
fn contains(have: &Value, want: &Value) -> bool {
    match (have, want) {
        (Value::Object(have), Value::Object(want)) => {
            want.iter().all(|(key, want)| match have.get(key) {
                Some(have) => contains(have, want),
                None => is_empty(want),
            })
        }
        (Value::Array(have), Value::Array(want)) => {
            have.len() == want.len() && have.iter().zip(want).all(|(h, w)| contains(h, w))
        }
        (Value::Null, want) => is_empty(want),
        (have, want) => have == want,
    }
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Object(map) => map.is_empty(),
        Value::Array(items) => items.is_empty(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn canary_ingress(annotations: Value) -> Value {
        let mut body = json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": "erp-ingress-reporting-canary", "namespace": "erp-system",
                         "annotations": annotations, "labels": {"app.kubernetes.io/managed-by": "sluice"}},
            "spec": {"rules": [{"host": "erp.example.com", "http": {"paths": [
                {"path": "/reports", "pathType": "Prefix",
                 "backend": {"service": {"name": "reporting-canary", "port": {"number": 80}}}}]}}]},
        });
        stamp(&mut body);
        body
    }

    /// The object as the API server keeps it after the apply: the body, the server's fields and
    /// defaults beside it.
    fn as_stored(body: &Value) -> Value {
        let mut stored = body.clone();
        stored["metadata"]["uid"] = json!("u-1");
        stored["metadata"]["resourceVersion"] = json!("42");
        stored["metadata"]["annotations"]["team"] = json!("reports");
        stored["spec"]["ingressClassName"] = json!("nginx");
        stored["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["port"]["name"] =
            json!(null);
        stored["status"] = json!({"loadBalancer": {}});
        stored
    }

    #[test]
    fn a_field_edited_by_hand_is_named_and_a_new_intent_is_no_edit() {
        let body = canary_ingress(json!({"nginx.ingress.kubernetes.io/canary-weight": "10"}));
        let stored = as_stored(&body);
        assert_eq!(edited_field(&stored, &body), None, "as applied");
        let mut edited = stored.clone();
        edited["metadata"]["annotations"]["nginx.ingress.kubernetes.io/canary-weight"] =
            json!("90");
        assert_eq!(
            edited_field(&edited, &body).as_deref(),
            Some("metadata.annotations.nginx.ingress.kubernetes.io/canary-weight")
        );
        let mut retargeted = stored.clone();
        retargeted["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"] =
            json!("reporting");
        assert_eq!(
            edited_field(&retargeted, &body).as_deref(),
            Some("spec.rules")
        );
        let mut unlabelled = stored.clone();
        unlabelled["metadata"]
            .as_object_mut()
            .expect("metadata")
            .remove("labels");
        assert_eq!(
            edited_field(&unlabelled, &body).as_deref(),
            Some("metadata.labels")
        );
        // sluice now wants weight 20: the object carries the old digest, the write is a step.
        let next = canary_ingress(json!({"nginx.ingress.kubernetes.io/canary-weight": "20"}));
        assert_eq!(edited_field(&edited, &next), None);
        assert_eq!(edited_field(&stored, &next), None);
        // An object without sluice's digest was not applied by it as this body.
        let mut unstamped = edited.clone();
        unstamped["metadata"]["annotations"]
            .as_object_mut()
            .expect("annotations")
            .remove(APPLIED_ANNOTATION);
        assert_eq!(edited_field(&unstamped, &body), None);
    }

    #[test]
    fn an_object_as_applied_with_the_servers_additions_needs_no_write() {
        let body = canary_ingress(json!({"nginx.ingress.kubernetes.io/canary-weight": "10"}));
        assert!(already_applied(&as_stored(&body), &body));
    }

    #[test]
    fn a_cache_that_does_not_repeat_the_type_in_each_object_still_matches() {
        let body = canary_ingress(json!({"nginx.ingress.kubernetes.io/canary-weight": "10"}));
        let mut cached = as_stored(&body);
        cached.as_object_mut().map(|o| o.remove("apiVersion"));
        cached.as_object_mut().map(|o| o.remove("kind"));
        assert!(already_applied(&cached, &body));
        let mut other_metadata = cached.clone();
        other_metadata["metadata"]["labels"] = json!({});
        assert!(
            !already_applied(&other_metadata, &body),
            "the rest still counts"
        );
        assert!(!already_applied(&json!([]), &body));
    }

    #[test]
    fn a_field_sluice_no_longer_sends_is_seen_through_the_digest() {
        let matching = canary_ingress(json!({
            "nginx.ingress.kubernetes.io/canary-weight": "0",
            "nginx.ingress.kubernetes.io/canary-by-header": "x-canary",
        }));
        let weighted = canary_ingress(json!({"nginx.ingress.kubernetes.io/canary-weight": "0"}));
        assert!(
            !already_applied(&as_stored(&matching), &weighted),
            "the header match must be removed by an apply"
        );
    }

    #[test]
    fn a_hand_edit_of_a_field_sluice_applies_is_written_back() {
        let body = canary_ingress(json!({"nginx.ingress.kubernetes.io/canary-weight": "10"}));
        let mut edited = as_stored(&body);
        edited["metadata"]["annotations"]["nginx.ingress.kubernetes.io/canary-weight"] =
            json!("90");
        assert!(!already_applied(&edited, &body));
        let mut removed = as_stored(&body);
        removed["spec"]["rules"][0]["http"]["paths"] = json!([]);
        assert!(!already_applied(&removed, &body), "a list cut short");
        let mut unstamped = as_stored(&body);
        unstamped["metadata"]["annotations"]
            .as_object_mut()
            .map(|a| a.remove(APPLIED_ANNOTATION));
        assert!(
            !already_applied(&unstamped, &body),
            "applied by an older sluice"
        );
    }

    #[test]
    fn the_digest_covers_the_body_and_not_itself() {
        let ten = canary_ingress(json!({"nginx.ingress.kubernetes.io/canary-weight": "10"}));
        let twenty = canary_ingress(json!({"nginx.ingress.kubernetes.io/canary-weight": "20"}));
        let digest = |b: &Value| b["metadata"]["annotations"][APPLIED_ANNOTATION].clone();
        assert_ne!(digest(&ten), digest(&twenty));
        let mut again = ten.clone();
        stamp(&mut again);
        assert_eq!(again, ten, "stamping twice changes nothing");
        assert!(digest(&ten).is_string());
        assert!(!already_applied(&json!({}), &json!({"metadata": {}})));
    }

    #[test]
    fn empty_values_the_server_drops_count_as_held() {
        let have = json!({"spec": {"a": 1}});
        assert!(contains(
            &have,
            &json!({"spec": {"a": 1, "tolerations": [], "extra": {}, "none": null}})
        ));
        assert!(!contains(&have, &json!({"spec": {"a": 2}})));
        assert!(!contains(&have, &json!({"spec": {"b": 0}})));
        assert!(contains(&json!({"x": null}), &json!({"x": {}})));
        assert!(!contains(&json!({"x": null}), &json!({"x": 1})));
        assert!(!contains(&json!({"x": [1, 2]}), &json!({"x": [1]})));
    }
}
