//! The four PATCH flavours kube-apiserver accepts, applied to untyped objects.
//!
//! The sandbox has no OpenAPI schemas, so strategic merge patch and
//! server-side apply work from field names alone (see each function).
//! Merge patch and JSON patch live here; the other two have a file each.

mod apply;
mod strategic;

use serde_json::Value;

pub use apply::server_side_apply;
pub use strategic::strategic_merge_patch;

#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    #[error("the body is not a valid JSON patch (RFC 6902) document: {0}")]
    InvalidJsonPatch(serde_json::Error),
    #[error("the JSON patch could not be applied: {0}")]
    JsonPatchFailed(json_patch::PatchError),
    #[error("invalid strategic merge patch: {0}")]
    InvalidStrategicPatch(String),
    #[error("{0} is not a JSON object")]
    NotAnObject(&'static str),
    #[error("invalid apply configuration: {0}")]
    InvalidApplyConfig(&'static str),
}

/// RFC 7386 JSON merge patch (application/merge-patch+json).
pub fn merge_patch(target: &mut Value, patch: &Value) {
    json_patch::merge(target, patch);
}

/// RFC 6902 JSON patch (application/json-patch+json). Uses the json-patch crate.
/// All operations apply or none do.
pub fn json_patch(target: &mut Value, patch: &Value) -> Result<(), PatchError> {
    let patch: json_patch::Patch =
        serde_json::from_value(patch.clone()).map_err(PatchError::InvalidJsonPatch)?;
    json_patch::patch(target, &patch).map_err(PatchError::JsonPatchFailed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_follows_rfc7386() {
        let mut target = json!({"a": {"b": 1, "c": 2}, "l": [1, 2], "d": 1});
        merge_patch(
            &mut target,
            &json!({"a": {"b": null, "e": 3}, "l": [3], "d": null}),
        );
        assert_eq!(target, json!({"a": {"c": 2, "e": 3}, "l": [3]}));
    }

    #[test]
    fn json_patch_applies_atomically() {
        let mut target = json!({"spec": {"replicas": 1, "list": ["a"]}});
        let ops = json!([
            {"op": "replace", "path": "/spec/replicas", "value": 3},
            {"op": "add", "path": "/spec/list/-", "value": "b"},
            {"op": "test", "path": "/spec/replicas", "value": 3}
        ]);
        json_patch(&mut target, &ops).unwrap();
        assert_eq!(target, json!({"spec": {"replicas": 3, "list": ["a", "b"]}}));

        let failing = json!([
            {"op": "remove", "path": "/spec/list"},
            {"op": "test", "path": "/spec/replicas", "value": 9}
        ]);
        let err = json_patch(&mut target, &failing).unwrap_err();
        assert!(matches!(err, PatchError::JsonPatchFailed(_)));
        assert!(err.to_string().contains("could not be applied"), "{err}");
        assert_eq!(target["spec"]["list"], json!(["a", "b"]));
    }

    #[test]
    fn json_patch_rejects_malformed_documents() {
        let mut target = json!({});
        for bad in [
            json!({"op": "add"}),
            json!([{"op": "frobnicate", "path": "/a"}]),
        ] {
            let err = json_patch(&mut target, &bad).unwrap_err();
            assert!(matches!(err, PatchError::InvalidJsonPatch(_)), "{err}");
        }
    }
}
