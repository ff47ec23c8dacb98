//! The four PATCH flavours kube-apiserver accepts, applied to untyped objects.
//!
//! The sandbox has no OpenAPI schemas, so strategic merge patch and
//! server-side apply work from field names alone (see each function).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

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

/// Kubernetes strategic merge patch (application/strategic-merge-patch+json), simplified.
///
/// Merge keys are chosen by field name wherever the field appears (see
/// [`merge_key`]); every other list is replaced whole. Supports the directives
/// `$patch` (`merge`, `replace`, `delete`, in maps and keyed lists),
/// `$retainKeys`, `$setElementOrder/<list>` and `$deleteFromPrimitiveList/<list>`.
/// On error `target` is left untouched.
pub fn strategic_merge_patch(target: &mut Value, patch: &Value) -> Result<(), PatchError> {
    let Value::Object(patch) = patch else {
        return Err(PatchError::NotAnObject("a strategic merge patch"));
    };
    let Value::Object(original) = target else {
        return Err(PatchError::NotAnObject("the object being patched"));
    };
    // Work on a copy so that a directive error halfway through changes nothing.
    match merge_map(original.clone(), patch)? {
        Some(merged) => *original = merged,
        None => {
            return Err(PatchError::InvalidStrategicPatch(
                "`$patch: delete` at the top level would delete the whole object".into(),
            ));
        }
    }
    Ok(())
}

/// The merge key kube-apiserver's built-in schemas declare for a list field.
fn merge_key<'a>(
    field: &str,
    mut elements: impl Iterator<Item = &'a Value>,
) -> Option<&'static str> {
    match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets" => Some("name"),
        "volumeMounts" => Some("mountPath"),
        "conditions" => Some("type"),
        "ownerReferences" => Some("uid"),
        // Container ports and Service ports share the field name.
        "ports" if elements.any(|e| e.get("containerPort").is_some()) => Some("containerPort"),
        "ports" => Some("port"),
        _ => None,
    }
}

fn invalid(reason: String) -> PatchError {
    PatchError::InvalidStrategicPatch(reason)
}

fn directive(value: &Value) -> Option<&Value> {
    value.get("$patch")
}

/// Merges `patch` into `original`; `None` means the map is to be deleted.
fn merge_map(
    mut original: Map<String, Value>,
    patch: &Map<String, Value>,
) -> Result<Option<Map<String, Value>>, PatchError> {
    match patch.get("$patch") {
        None => {}
        Some(Value::String(d)) if d == "merge" => {}
        Some(Value::String(d)) if d == "replace" => original = Map::new(),
        Some(Value::String(d)) if d == "delete" => return Ok(None),
        Some(other) => return Err(invalid(format!("unknown `$patch` directive {other}"))),
    }

    let mut retain_keys = None;
    let mut element_orders = Vec::new();
    for (key, value) in patch.iter().filter(|(k, _)| k.starts_with('$')) {
        if let Some(list) = key.strip_prefix("$deleteFromPrimitiveList/") {
            let Value::Array(doomed) = value else {
                return Err(invalid(format!("`{key}` must be a list")));
            };
            // Deletions apply to the live list, before the patch's own value
            // for that list (if any) is merged, as kube-apiserver does.
            if let Some(Value::Array(items)) = original.get_mut(list) {
                items.retain(|item| !doomed.contains(item));
            }
        } else if let Some(list) = key.strip_prefix("$setElementOrder/") {
            let Value::Array(order) = value else {
                return Err(invalid(format!("`{key}` must be a list")));
            };
            element_orders.push((list, order));
        } else if key == "$retainKeys" {
            let keys: Option<Vec<&str>> = match value {
                Value::Array(keys) => keys.iter().map(Value::as_str).collect(),
                _ => None,
            };
            retain_keys = Some(
                keys.ok_or_else(|| invalid("`$retainKeys` must be a list of strings".into()))?,
            );
        } else if key != "$patch" {
            return Err(invalid(format!("unknown directive `{key}`")));
        }
    }

    for (key, value) in patch.iter().filter(|(k, _)| !k.starts_with('$')) {
        let current = original.get_mut(key).map(std::mem::take);
        match merge_field(key, current, value)? {
            // Inserting over the existing key keeps its position in ordered maps.
            Some(merged) => {
                original.insert(key.clone(), merged);
            }
            None => {
                original.remove(key);
            }
        }
    }

    for (list, order) in element_orders {
        if let Some(Value::Array(items)) = original.get_mut(list) {
            reorder(list, items, order);
        }
    }
    if let Some(keep) = retain_keys {
        original.retain(|key, _| keep.contains(&key.as_str()));
    }
    Ok(Some(original))
}

/// The new value of field `name`; `None` removes the field.
fn merge_field(
    name: &str,
    original: Option<Value>,
    patch: &Value,
) -> Result<Option<Value>, PatchError> {
    match patch {
        Value::Null => Ok(None),
        Value::Object(patch) => {
            let base = match original {
                Some(Value::Object(map)) => map,
                _ => Map::new(),
            };
            Ok(merge_map(base, patch)?.map(Value::Object))
        }
        Value::Array(patch) => {
            let base = match original {
                Some(Value::Array(items)) => items,
                _ => Vec::new(),
            };
            merge_list(name, base, patch).map(|items| Some(Value::Array(items)))
        }
        scalar => Ok(Some(scalar.clone())),
    }
}

fn merge_list(
    name: &str,
    mut items: Vec<Value>,
    patch: &[Value],
) -> Result<Vec<Value>, PatchError> {
    let key = merge_key(name, patch.iter().chain(&items));
    // Lists of scalars carry no merge key whatever their name.
    let Some(key) = key.filter(|_| patch.iter().all(Value::is_object)) else {
        return clean_list(patch);
    };
    if patch
        .iter()
        .any(|p| directive(p).and_then(Value::as_str) == Some("replace"))
    {
        let kept: Vec<Value> = patch
            .iter()
            .filter(|p| directive(p).is_none())
            .cloned()
            .collect();
        return clean_list(&kept);
    }
    for element in patch.iter().filter_map(Value::as_object) {
        let Some(wanted) = element.get(key) else {
            return Err(invalid(format!(
                "an element of list `{name}` lacks its merge key `{key}`"
            )));
        };
        let position = items.iter().position(|item| item.get(key) == Some(wanted));
        let base = match position.map(|i| std::mem::take(&mut items[i])) {
            Some(Value::Object(map)) => map,
            _ => Map::new(),
        };
        match (merge_map(base, element)?, position) {
            (Some(merged), Some(i)) => items[i] = Value::Object(merged),
            (Some(merged), None) => items.push(Value::Object(merged)),
            (None, Some(i)) => {
                items.remove(i);
            }
            (None, None) => {}
        }
    }
    Ok(items)
}

/// A list stored as the patch gives it, minus any directives inside it.
fn clean_list(patch: &[Value]) -> Result<Vec<Value>, PatchError> {
    let mut cleaned = Vec::with_capacity(patch.len());
    for element in patch {
        let value = match element {
            Value::Object(map) => merge_map(Map::new(), map)?.map(Value::Object),
            Value::Array(inner) => Some(Value::Array(clean_list(inner)?)),
            scalar => Some(scalar.clone()),
        };
        cleaned.extend(value);
    }
    Ok(cleaned)
}

/// Listed elements first in the listed order; the rest keep their relative order.
fn reorder(list: &str, items: &mut Vec<Value>, order: &[Value]) {
    let key = merge_key(list, order.iter().chain(items.iter()));
    let identity = |v: &Value| -> Option<Value> {
        match key {
            Some(key) => v.get(key).cloned(),
            None => Some(v.clone()),
        }
    };
    let mut rest = std::mem::take(items);
    for wanted in order.iter().filter_map(identity) {
        let (matching, others): (Vec<Value>, Vec<Value>) = rest
            .into_iter()
            .partition(|item| identity(item).as_ref() == Some(&wanted));
        items.extend(matching);
        rest = others;
    }
    items.extend(rest);
}

/// The fields one manager sets: a tree whose leaves are empty nodes.
#[derive(Debug, Default, PartialEq)]
struct FieldSet(BTreeMap<String, FieldSet>);

/// Fields the server owns, or that identify the object, which kube-apiserver
/// never records in managedFields.
fn is_unmanaged(path_prefix: &[&str], name: &str) -> bool {
    match path_prefix {
        [] => matches!(name, "apiVersion" | "kind" | "status"),
        ["metadata"] => matches!(
            name,
            "name"
                | "namespace"
                | "managedFields"
                | "resourceVersion"
                | "uid"
                | "creationTimestamp"
                | "generation"
                | "selfLink"
        ),
        _ => false,
    }
}

impl FieldSet {
    /// Every leaf path of an apply configuration. Lists are atomic leaves:
    /// the sandbox does not track ownership of individual list elements.
    fn of_config<'a>(object: &'a Map<String, Value>, prefix: &mut Vec<&'a str>) -> FieldSet {
        let mut set = BTreeMap::new();
        for (name, value) in object {
            if value.is_null() || is_unmanaged(prefix, name) {
                continue;
            }
            let child = match value {
                Value::Object(map) if !map.is_empty() => {
                    prefix.push(name);
                    let child = FieldSet::of_config(map, prefix);
                    prefix.pop();
                    // Everything beneath was unmanaged: not an owned empty map.
                    if child.0.is_empty() {
                        continue;
                    }
                    child
                }
                _ => FieldSet::default(),
            };
            set.insert(name.clone(), child);
        }
        FieldSet(set)
    }

    /// Reads `fieldsV1`. Only `f:` entries exist in sets this module writes;
    /// list-element (`k:`, `v:`, `i:`) and `.` entries from elsewhere are
    /// ignored, and lost if the entry is rewritten after a takeover.
    fn from_fields_v1(value: &Value) -> FieldSet {
        let children = value.as_object().into_iter().flatten();
        FieldSet(
            children
                .filter_map(|(k, v)| {
                    Some((
                        k.strip_prefix("f:")?.to_owned(),
                        FieldSet::from_fields_v1(v),
                    ))
                })
                .collect(),
        )
    }

    fn to_fields_v1(&self) -> Value {
        Value::Object(
            self.0
                .iter()
                .map(|(k, v)| (format!("f:{k}"), v.to_fields_v1()))
                .collect(),
        )
    }

    /// Adds `other`'s paths to `self`.
    fn union_with(&mut self, other: &FieldSet) {
        for (name, child) in &other.0 {
            self.0.entry(name.clone()).or_default().union_with(child);
        }
    }

    /// The leaves of `self` at which `applied` differs from `live`.
    fn changed(&self, applied: Option<&Value>, live: Option<&Value>) -> FieldSet {
        let children = self.0.iter().filter_map(|(name, child)| {
            let (applied, live) = (
                applied.and_then(|v| v.get(name)),
                live.and_then(|v| v.get(name)),
            );
            let changed = if child.0.is_empty() {
                (applied != live).then(FieldSet::default)?
            } else {
                Some(child.changed(applied, live)).filter(|c| !c.0.is_empty())?
            };
            Some((name.clone(), changed))
        });
        FieldSet(children.collect())
    }

    /// Drops the leaves `taken` holds; true when anything was dropped.
    fn subtract(&mut self, taken: &FieldSet) -> bool {
        let mut dropped = false;
        for (name, taken_child) in &taken.0 {
            let Some(mine) = self.0.get_mut(name) else {
                continue;
            };
            // A leaf goes only when taken as a leaf, a map only once emptied.
            let emptied = if taken_child.0.is_empty() {
                mine.0.is_empty()
            } else {
                let dropped_below = mine.subtract(taken_child);
                dropped |= dropped_below;
                dropped_below && mine.0.is_empty()
            };
            if emptied {
                self.0.remove(name);
                dropped = true;
            }
        }
        dropped
    }

    /// Removes from `object` what `self` owns and `protected` does not.
    fn prune(&self, object: &mut Map<String, Value>, protected: &FieldSet) {
        for (name, old) in &self.0 {
            let kept = protected.0.get(name);
            if old.0.is_empty() {
                // A leaf stays while someone owns it or anything beneath it.
                if kept.is_none() {
                    object.remove(name);
                }
                continue;
            }
            let Some(Value::Object(child)) = object.get_mut(name) else {
                continue;
            };
            let was_empty = child.is_empty();
            old.prune(child, kept.unwrap_or(&FieldSet::default()));
            if kept.is_none() && !was_empty && child.is_empty() {
                object.remove(name);
            }
        }
    }
}

/// Server-side apply (application/apply-patch+yaml, already parsed to JSON), simplified.
/// `existing` is the live object or None (create). Returns the new object.
///
/// Fields `manager` set by its previous apply but left out of this one are
/// removed unless another `managedFields` entry still owns them, then
/// `applied` is merged in (maps recursively, lists replaced, `null` deletes).
/// Lists are owned atomically, as single leaves. There is no conflict
/// detection: every apply behaves as if `force=true`, taking over from other
/// managers the fields whose value it changes (a manager left with nothing
/// loses its entry) and sharing those it sets to their current value.
/// `status` in `applied` is merged like any other field but never owned.
pub fn server_side_apply(
    existing: Option<&Value>,
    applied: &Value,
    manager: &str,
    now_rfc3339: &str,
) -> Result<Value, PatchError> {
    let Value::Object(config) = applied else {
        return Err(PatchError::NotAnObject("the apply configuration"));
    };
    let non_empty = |v: Option<&Value>| {
        v.and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .is_some()
    };
    if !non_empty(config.get("apiVersion")) {
        return Err(PatchError::InvalidApplyConfig("apiVersion is missing"));
    }
    if !non_empty(config.get("kind")) {
        return Err(PatchError::InvalidApplyConfig("kind is missing"));
    }
    if !non_empty(applied.pointer("/metadata/name")) {
        return Err(PatchError::InvalidApplyConfig("metadata.name is missing"));
    }

    let mut object = match existing {
        None => Map::new(),
        Some(Value::Object(map)) => map.clone(),
        Some(_) => return Err(PatchError::NotAnObject("the live object")),
    };
    let is_own_apply = |entry: &Value| {
        entry.get("manager").and_then(Value::as_str) == Some(manager)
            && entry.get("operation").and_then(Value::as_str) == Some("Apply")
    };
    let entries = match object.get("metadata").and_then(|m| m.get("managedFields")) {
        Some(Value::Array(entries)) => entries.clone(),
        _ => Vec::new(),
    };
    let previously_owned = entries
        .iter()
        .find(|e| is_own_apply(e))
        .and_then(|e| e.get("fieldsV1"))
        .map(FieldSet::from_fields_v1)
        .unwrap_or_default();
    let owned = FieldSet::of_config(config, &mut Vec::new());

    // Forced apply takes over the fields it changes; fields it sets to their
    // current value stay shared with their other owners. A dropped field is
    // removed only when no other manager still owns it.
    let taken = owned.changed(Some(applied), existing);
    let mut protected = FieldSet::default();
    let mut others = Vec::with_capacity(entries.len());
    for mut entry in entries {
        if !is_own_apply(&entry)
            && let Some(mut fields) = entry.get("fieldsV1").map(FieldSet::from_fields_v1)
        {
            if fields.subtract(&taken) {
                // As in Kubernetes, a manager left owning nothing loses its entry.
                if fields.0.is_empty() {
                    continue;
                }
                // Cannot panic: `entry` is an object, as it has a fieldsV1 key.
                entry["fieldsV1"] = fields.to_fields_v1();
            }
            protected.union_with(&fields);
        }
        others.push(entry);
    }
    protected.union_with(&owned);
    previously_owned.prune(&mut object, &protected);

    let mut config = config.clone();
    if let Some(Value::Object(metadata)) = config.get_mut("metadata") {
        // managedFields are the server's to write, not the applier's.
        metadata.remove("managedFields");
    }
    let mut object = Value::Object(object);
    merge_patch(&mut object, &Value::Object(config));

    let entry = serde_json::json!({
        "manager": manager,
        "operation": "Apply",
        "apiVersion": applied["apiVersion"],
        "time": now_rfc3339,
        "fieldsType": "FieldsV1",
        "fieldsV1": owned.to_fields_v1(),
    });
    // The new entry takes the place of this manager's previous Apply entry.
    let mut entry = Some(entry);
    let mut entries: Vec<Value> = others
        .into_iter()
        .filter_map(|e| {
            if is_own_apply(&e) {
                entry.take()
            } else {
                Some(e)
            }
        })
        .collect();
    entries.extend(entry);
    // Cannot panic: metadata is an object, since `applied` has metadata.name
    // and merge_patch copied that map in.
    object["metadata"]["managedFields"] = Value::Array(entries);
    Ok(object)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn smp(mut target: Value, patch: Value) -> Value {
        strategic_merge_patch(&mut target, &patch).unwrap();
        target
    }

    fn smp_err(patch: Value) -> String {
        let mut target = json!({"spec": {"containers": [{"name": "a"}]}, "keep": 1});
        let before = target.clone();
        let err = strategic_merge_patch(&mut target, &patch).unwrap_err();
        assert_eq!(target, before, "a failed patch must not change the object");
        err.to_string()
    }

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

    #[test]
    fn smp_merges_maps_and_replaces_scalars_and_plain_lists() {
        let target =
            json!({"metadata": {"labels": {"a": "1", "b": "2"}, "finalizers": ["x", "y"]}, "n": 1});
        let patch = json!({"metadata": {"labels": {"a": null, "c": "3"}, "finalizers": ["z"]}, "n": 2, "new": {"k": true}});
        let expected = json!({"metadata": {"labels": {"b": "2", "c": "3"}, "finalizers": ["z"]}, "n": 2, "new": {"k": true}});
        assert_eq!(smp(target, patch), expected);
    }

    #[test]
    fn smp_merges_keyed_lists_by_their_merge_keys() {
        let target = json!({"spec": {"containers": [
            {"name": "app", "image": "app:1", "env": [{"name": "A", "value": "1"}],
             "ports": [{"containerPort": 80, "protocol": "TCP"}],
             "volumeMounts": [{"mountPath": "/data", "name": "data"}]},
            {"name": "sidecar", "image": "side:1"}
        ]}});
        let patch = json!({"spec": {"containers": [
            {"name": "app", "image": "app:2", "env": [{"name": "B", "value": "2"}],
             "ports": [{"containerPort": 80, "name": "http"}],
             "volumeMounts": [{"mountPath": "/data", "readOnly": true}]},
            {"name": "new", "image": "new:1"}
        ]}});
        let expected = json!({"spec": {"containers": [
            {"name": "app", "image": "app:2",
             "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
             "ports": [{"containerPort": 80, "protocol": "TCP", "name": "http"}],
             "volumeMounts": [{"mountPath": "/data", "name": "data", "readOnly": true}]},
            {"name": "sidecar", "image": "side:1"},
            {"name": "new", "image": "new:1"}
        ]}});
        assert_eq!(smp(target, patch), expected);
    }

    #[test]
    fn smp_other_merge_keys() {
        let service = json!({"spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443}]}});
        let patched = smp(
            service,
            json!({"spec": {"ports": [{"port": 443, "name": "https"}]}}),
        );
        assert_eq!(
            patched["spec"]["ports"],
            json!([{"port": 80, "targetPort": 8080}, {"port": 443, "name": "https"}])
        );

        let status = json!({"status": {"conditions": [{"type": "Ready", "status": "False"}, {"type": "Progressing", "status": "True"}]}});
        let patched = smp(
            status,
            json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
        );
        assert_eq!(
            patched["status"]["conditions"][0],
            json!({"type": "Ready", "status": "True"})
        );
        assert_eq!(patched["status"]["conditions"].as_array().unwrap().len(), 2);

        let owned = json!({"metadata": {"ownerReferences": [{"uid": "u1", "name": "a"}]}});
        let patched = smp(
            owned,
            json!({"metadata": {"ownerReferences": [{"uid": "u1", "controller": true}]}}),
        );
        assert_eq!(
            patched["metadata"]["ownerReferences"],
            json!([{"uid": "u1", "name": "a", "controller": true}])
        );
    }

    #[test]
    fn smp_replaces_keyed_field_names_that_hold_scalars() {
        let patched = smp(json!({"ports": [80, 443]}), json!({"ports": [8080]}));
        assert_eq!(patched, json!({"ports": [8080]}));
        let patched = smp(json!({"env": [{"name": "A"}]}), json!({"env": []}));
        assert_eq!(
            patched,
            json!({"env": [{"name": "A"}]}),
            "an empty keyed list changes nothing"
        );
    }

    #[test]
    fn smp_delete_directive_in_keyed_list_removes_the_element() {
        let target = json!({"spec": {"volumes": [{"name": "a"}, {"name": "b"}], "imagePullSecrets": [{"name": "s"}]}});
        let patch = json!({"spec": {"volumes": [{"name": "a", "$patch": "delete"}, {"name": "gone", "$patch": "delete"}],
                                     "imagePullSecrets": [{"$patch": "delete", "name": "s"}]}});
        assert_eq!(
            smp(target, patch),
            json!({"spec": {"volumes": [{"name": "b"}], "imagePullSecrets": []}})
        );
    }

    #[test]
    fn smp_replace_directive_in_keyed_list_replaces_the_list() {
        let target = json!({"env": [{"name": "A", "value": "1"}, {"name": "B"}]});
        let patch = json!({"env": [{"$patch": "replace"}, {"name": "C", "value": "3"}]});
        assert_eq!(
            smp(target, patch),
            json!({"env": [{"name": "C", "value": "3"}]})
        );
    }

    #[test]
    fn smp_replace_directive_in_map_replaces_the_map() {
        let target = json!({"spec": {"selector": {"a": "1", "b": "2"}, "other": 1}});
        let patch = json!({"spec": {"selector": {"$patch": "replace", "c": "3", "gone": null}}});
        assert_eq!(
            smp(target, patch),
            json!({"spec": {"selector": {"c": "3"}, "other": 1}})
        );
    }

    #[test]
    fn smp_delete_directive_on_map_deletes_it() {
        let target =
            json!({"spec": {"strategy": {"rollingUpdate": {"maxSurge": 1}}, "replicas": 1}});
        let patch = json!({"spec": {"strategy": {"$patch": "delete"}}});
        assert_eq!(smp(target, patch), json!({"spec": {"replicas": 1}}));
    }

    #[test]
    fn smp_retain_keys_drops_unlisted_keys() {
        let target =
            json!({"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}});
        let patch = json!({"strategy": {"$retainKeys": ["type"], "type": "Recreate"}});
        assert_eq!(
            smp(target, patch),
            json!({"strategy": {"type": "Recreate"}})
        );
    }

    #[test]
    fn smp_delete_from_primitive_list() {
        let target = json!({"metadata": {"finalizers": ["a", "b", "c", "b"]}});
        let patch = json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["b", "zz"]}});
        assert_eq!(
            smp(target, patch),
            json!({"metadata": {"finalizers": ["a", "c"]}})
        );
    }

    #[test]
    fn smp_kubectl_apply_shaped_patch_with_set_element_order() {
        let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 1, "template": {"spec": {"containers": [
            {"name": "app", "image": "app:1"},
            {"name": "extra", "image": "extra:1"},
            {"name": "proxy", "image": "proxy:1"}
        ]}}}});
        // What `kubectl apply` sends after the user reordered, edited and dropped containers.
        let patch = json!({
            "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
            "spec": {"template": {"spec": {
                "$setElementOrder/containers": [{"name": "proxy"}, {"name": "app"}, {"name": "log"}],
                "containers": [
                    {"name": "app", "image": "app:2"},
                    {"name": "log", "image": "log:1"},
                    {"$patch": "delete", "name": "extra"}
                ]
            }}}
        });
        let patched = smp(deployment, patch);
        assert_eq!(
            patched["spec"]["template"]["spec"],
            json!({"containers": [
                {"name": "proxy", "image": "proxy:1"},
                {"name": "app", "image": "app:2"},
                {"name": "log", "image": "log:1"}
            ]})
        );
        assert_eq!(patched["spec"]["replicas"], 1);
        assert!(patched["metadata"]["annotations"].is_object());
    }

    #[test]
    fn smp_set_element_order_keeps_unlisted_elements_after_listed_ones() {
        let target = json!({"containers": [{"name": "a"}, {"name": "b"}, {"name": "c"}, {"name": "d"}],
                            "args": ["x", "y", "z"]});
        let patch = json!({"$setElementOrder/containers": [{"name": "c"}, {"name": "a"}],
                           "$setElementOrder/args": ["z"]});
        assert_eq!(
            smp(target, patch),
            json!({
                "containers": [{"name": "c"}, {"name": "a"}, {"name": "b"}, {"name": "d"}],
                "args": ["z", "x", "y"]
            })
        );
    }

    #[test]
    fn smp_directives_never_reach_the_stored_object() {
        let patch = json!({"spec": {
            "template": {"$patch": "replace", "metadata": {"$retainKeys": ["labels"], "labels": {"a": "b"}}},
            "list": [{"$patch": "merge", "x": 1}],
            "fresh": {"$setElementOrder/volumes": [{"name": "v"}], "volumes": [{"name": "v", "$patch": "delete"}]}
        }});
        let patched = smp(json!({}), patch);
        assert_eq!(
            patched,
            json!({"spec": {
                "template": {"metadata": {"labels": {"a": "b"}}},
                "list": [{"x": 1}],
                "fresh": {"volumes": []}
            }})
        );
        assert!(!patched.to_string().contains('$'));
    }

    #[test]
    fn smp_errors_leave_the_target_untouched() {
        assert!(smp_err(json!({"keep": 2, "$bogus": 1})).contains("unknown directive `$bogus`"));
        assert!(
            smp_err(json!({"spec": {"$patch": "explode"}})).contains("unknown `$patch` directive")
        );
        assert!(
            smp_err(json!({"spec": {"containers": [{"image": "x"}]}})).contains("merge key `name`")
        );
        assert!(smp_err(json!({"$retainKeys": "keep"})).contains("$retainKeys"));
        assert!(smp_err(json!({"$setElementOrder/x": {}})).contains("must be a list"));
        assert!(smp_err(json!({"$deleteFromPrimitiveList/x": 1})).contains("must be a list"));
        assert!(smp_err(json!({"$patch": "delete"})).contains("top level"));
        let err = strategic_merge_patch(&mut json!({}), &json!([1])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "a strategic merge patch is not a JSON object"
        );
        assert!(strategic_merge_patch(&mut json!("x"), &json!({})).is_err());
    }

    fn deployment(spec: Value) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}}, "spec": spec})
    }

    fn fields(object: &Value, manager: &str) -> Value {
        let entries = object["metadata"]["managedFields"].as_array().unwrap();
        let mut own = entries.iter().filter(|e| e["manager"] == manager);
        let entry = own.next().expect("manager has an entry");
        assert!(own.next().is_none(), "one entry per manager");
        entry["fieldsV1"].clone()
    }

    #[test]
    fn ssa_create_records_managed_fields_in_kubernetes_shape() {
        let applied =
            deployment(json!({"replicas": 2, "selector": {"matchLabels": {"app": "web"}}}));
        let created = server_side_apply(None, &applied, "ctl", "2024-01-01T00:00:00Z").unwrap();
        assert_eq!(created["spec"], applied["spec"]);
        assert_eq!(
            created["metadata"]["managedFields"],
            json!([{
                "manager": "ctl", "operation": "Apply", "apiVersion": "apps/v1",
                "time": "2024-01-01T00:00:00Z", "fieldsType": "FieldsV1",
                "fieldsV1": {"f:metadata": {"f:labels": {"f:app": {}}},
                             "f:spec": {"f:replicas": {}, "f:selector": {"f:matchLabels": {"f:app": {}}}}}
            }])
        );
    }

    #[test]
    fn ssa_second_apply_prunes_dropped_fields_only() {
        let first = deployment(
            json!({"replicas": 2, "paused": false, "template": {"metadata": {"labels": {"app": "web"}}}}),
        );
        let mut live = server_side_apply(None, &first, "ctl", "t1").unwrap();
        // Set by someone else (e.g. a merge patch): not this manager's to prune.
        live["metadata"]["labels"]["team"] = json!("ops");
        live["spec"]["minReadySeconds"] = json!(5);
        live["metadata"]["uid"] = json!("u-1");
        live["status"] = json!({"replicas": 2});
        live["metadata"]["managedFields"]
            .as_array_mut()
            .unwrap()
            .push(json!({"manager": "other", "operation": "Update"}));

        let second = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "default"},
                            "spec": {"replicas": 3}});
        let updated = server_side_apply(Some(&live), &second, "ctl", "t2").unwrap();
        assert_eq!(
            updated["spec"],
            json!({"replicas": 3, "minReadySeconds": 5})
        );
        assert_eq!(updated["metadata"]["labels"], json!({"team": "ops"}));
        assert_eq!(updated["metadata"]["uid"], "u-1");
        assert_eq!(updated["status"], json!({"replicas": 2}));
        assert_eq!(
            fields(&updated, "ctl"),
            json!({"f:spec": {"f:replicas": {}}})
        );
        let entries = updated["metadata"]["managedFields"].as_array().unwrap();
        assert_eq!((entries.len(), &entries[0]["time"]), (2, &json!("t2")));
        assert_eq!(entries[1]["manager"], "other");
    }

    #[test]
    fn ssa_prunes_maps_emptied_by_pruning_but_not_maps_another_manager_uses() {
        let first = deployment(
            json!({"template": {"metadata": {"annotations": {"a": "1"}}, "spec": {"x": 1}}}),
        );
        let mut live = server_side_apply(None, &first, "ctl", "t1").unwrap();
        live["spec"]["template"]["spec"]["y"] = json!(2);
        let second = deployment(json!({"replicas": 1}));
        let updated = server_side_apply(Some(&live), &second, "ctl", "t2").unwrap();
        assert_eq!(
            updated["spec"],
            json!({"replicas": 1, "template": {"spec": {"y": 2}}})
        );
    }

    #[test]
    fn ssa_takes_over_changed_fields_and_shares_equal_ones() {
        let first = deployment(
            json!({"replicas": 1, "template": {"spec": {"containers": [{"name": "a"}]}}}),
        );
        let live = server_side_apply(None, &first, "one", "t1").unwrap();
        let containers = json!({"f:template": {"f:spec": {"f:containers": {}}}});
        assert_eq!(
            fields(&live, "one")["f:spec"]["f:template"],
            containers["f:template"]
        );

        // "two" sets the same labels and replicas, but other containers (lists are atomic).
        let second = deployment(
            json!({"replicas": 1, "template": {"spec": {"containers": [{"name": "b"}]}}}),
        );
        let live = server_side_apply(Some(&live), &second, "two", "t2").unwrap();
        assert_eq!(
            live["spec"]["template"]["spec"]["containers"],
            json!([{"name": "b"}])
        );
        let one = json!({"f:metadata": {"f:labels": {"f:app": {}}}, "f:spec": {"f:replicas": {}}});
        assert_eq!(fields(&live, "one"), one);
        assert_eq!(
            fields(&live, "two")["f:spec"],
            json!({"f:replicas": {}, "f:template": containers["f:template"]})
        );

        // Dropping everything: shared fields survive, fields "two" took over go.
        let bare =
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}});
        let live = server_side_apply(Some(&live), &bare, "two", "t3").unwrap();
        assert_eq!(live["metadata"]["labels"], json!({"app": "web"}));
        assert_eq!(live["spec"], json!({"replicas": 1}));
        assert_eq!(fields(&live, "two"), json!({}));

        // A manager whose every field is taken over loses its entry.
        let mut alone = deployment(json!({"replicas": 5}));
        alone["metadata"]["labels"]["app"] = json!("other");
        let live = server_side_apply(Some(&live), &alone, "two", "t4").unwrap();
        let managers: Vec<&Value> = live["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| &e["manager"])
            .collect();
        assert_eq!(managers, [&json!("two")]);
    }

    #[test]
    fn ssa_keeps_status_and_honours_null_and_ignores_applied_managed_fields() {
        let mut applied = deployment(json!({"replicas": 1}));
        applied["status"] = json!({"readyReplicas": 1});
        applied["metadata"]["managedFields"] = json!([{"manager": "forged"}]);
        let live = server_side_apply(None, &applied, "ctl", "t1").unwrap();
        assert_eq!(live["status"], json!({"readyReplicas": 1}));
        assert_eq!(
            live["metadata"]["managedFields"].as_array().unwrap().len(),
            1
        );
        assert!(fields(&live, "ctl").get("f:status").is_none());

        let again = deployment(json!({"replicas": null}));
        let updated = server_side_apply(Some(&live), &again, "ctl", "t2").unwrap();
        assert!(updated["spec"].get("replicas").is_none());
    }

    #[test]
    fn ssa_adopts_objects_created_without_apply() {
        let created = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "uid": "u"},
                             "data": {"a": "1", "b": "2"}});
        let applied = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"b": "3"}});
        let live = server_side_apply(Some(&created), &applied, "ctl", "t1").unwrap();
        assert_eq!(live["data"], json!({"a": "1", "b": "3"}));
        assert_eq!(fields(&live, "ctl"), json!({"f:data": {"f:b": {}}}));

        // An empty map is owned as a whole, so the keys owned beneath it go.
        let emptied =
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {}});
        let live = server_side_apply(Some(&live), &emptied, "ctl", "t2").unwrap();
        assert_eq!(live["data"], json!({"a": "1"}));
        assert_eq!(fields(&live, "ctl"), json!({"f:data": {}}));
    }

    #[test]
    fn ssa_rejects_incomplete_configs() {
        let cases = [
            (json!([1]), "the apply configuration is not a JSON object"),
            (
                json!({"kind": "Pod", "metadata": {"name": "a"}}),
                "apiVersion is missing",
            ),
            (
                json!({"apiVersion": "v1", "metadata": {"name": "a"}}),
                "kind is missing",
            ),
            (
                json!({"apiVersion": "v1", "kind": "Pod", "metadata": {}}),
                "metadata.name is missing",
            ),
            (
                json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": ""}}),
                "metadata.name is missing",
            ),
        ];
        for (config, message) in cases {
            let err = server_side_apply(None, &config, "m", "t").unwrap_err();
            assert!(err.to_string().ends_with(message), "{err}");
        }
        let config = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a"}});
        assert!(server_side_apply(Some(&json!(3)), &config, "m", "t").is_err());
    }
}
