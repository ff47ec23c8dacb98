//! Kubernetes strategic merge patch, with merge keys chosen by field name
//! because the sandbox has no OpenAPI schemas to look them up in.

use serde_json::{Map, Value};

use super::PatchError;

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

#[cfg(test)]
#[path = "strategic_tests.rs"]
mod tests;
