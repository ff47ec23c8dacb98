//! Server-side apply and the managedFields bookkeeping it needs: which
//! manager owns which fields, so that an apply can prune what it dropped.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::{PatchError, merge_patch};

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

    // As in Kubernetes, an apply that changes neither the object nor what its manager owns is a
    // no-op: the entry keeps its time, so the write keeps the resourceVersion.
    let previous_time = entries_time(existing, is_own_apply);
    let unchanged = previous_time.is_some()
        && previously_owned == owned
        && existing.is_some_and(|live| same_but_managed_fields(live, &object));
    let time = match previous_time {
        Some(time) if unchanged => time,
        _ => Value::from(now_rfc3339),
    };
    let entry = serde_json::json!({
        "manager": manager,
        "operation": "Apply",
        "apiVersion": applied["apiVersion"],
        "time": time,
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

/// The time of `manager`'s Apply entry in the live object's managedFields.
fn entries_time(existing: Option<&Value>, is_own_apply: impl Fn(&Value) -> bool) -> Option<Value> {
    let entries = existing?.pointer("/metadata/managedFields")?.as_array()?;
    let entry = entries.iter().find(|e| is_own_apply(e))?;
    entry.get("time").cloned()
}

/// Whether two objects are equal but for `metadata.managedFields`.
fn same_but_managed_fields(a: &Value, b: &Value) -> bool {
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
        return a == b;
    };
    let metadata = |m: &Map<String, Value>| -> Option<Map<String, Value>> {
        let mut metadata = m.get("metadata")?.as_object()?.clone();
        metadata.remove("managedFields");
        Some(metadata)
    };
    a.len() == b.len()
        && metadata(a) == metadata(b)
        && a.iter()
            .filter(|(key, _)| key.as_str() != "metadata")
            .all(|(key, value)| b.get(key) == Some(value))
}

#[cfg(test)]
#[path = "apply_tests.rs"]
mod tests;
