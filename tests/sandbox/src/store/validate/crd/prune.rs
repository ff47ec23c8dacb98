//! Pruning and defaulting of custom objects by their structural schema, as kube-apiserver does
//! on every write and read: unknown fields go (unless `x-kubernetes-preserve-unknown-fields`),
//! nulls of non-nullable fields go (or take the field's default), missing fields take theirs.

use serde_json::{Map, Value};

fn flag(node: &Value, key: &str) -> bool {
    node.get(key).and_then(Value::as_bool).unwrap_or(false)
}

fn child_path(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Removes what the schema does not know, and names what it removed (`spec.tyop`) in `removed`.
/// `path` "" is the object itself, whose apiVersion, kind and metadata are the server's, not the
/// schema's.
pub fn prune(value: &mut Value, schema: &Value, path: &str, removed: &mut Vec<String>) {
    let root = path.is_empty();
    match value {
        Value::Object(map) => {
            let keep_type_meta = root || flag(schema, "x-kubernetes-embedded-resource");
            let properties = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties");
            let preserve = flag(schema, "x-kubernetes-preserve-unknown-fields");
            let keys: Vec<String> = map.keys().cloned().collect();
            for key in keys {
                if keep_type_meta && matches!(key.as_str(), "apiVersion" | "kind" | "metadata") {
                    continue;
                }
                let child_schema = properties.and_then(|p| p.get(&key));
                match (child_schema, additional) {
                    (Some(sub), _) | (None, Some(sub @ Value::Object(_))) => {
                        if let Some(child) = map.get_mut(&key) {
                            prune(child, sub, &child_path(path, &key), removed);
                        }
                    }
                    (None, Some(Value::Bool(true))) => {}
                    (None, _) if preserve => {}
                    (None, _) => {
                        map.remove(&key);
                        removed.push(child_path(path, &key));
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(sub) = schema.get("items").filter(|i| i.is_object()) {
                for (i, item) in items.iter_mut().enumerate() {
                    prune(item, sub, &format!("{path}[{i}]"), removed);
                }
            }
        }
        _ => {}
    }
}

fn default_fields(map: &mut Map<String, Value>, properties: &Map<String, Value>) {
    for (key, sub) in properties {
        let default = sub.get("default");
        match map.get(key) {
            None => {
                if let Some(default) = default {
                    map.insert(key.clone(), default.clone());
                }
            }
            Some(Value::Null) if !flag(sub, "nullable") => match default {
                Some(default) => {
                    map.insert(key.clone(), default.clone());
                }
                None => {
                    map.remove(key);
                }
            },
            Some(_) => {}
        }
        if let Some(child) = map.get_mut(key) {
            apply_defaults(child, sub);
        }
    }
}

/// Applies `default:` values (into defaults too, as the real defaulter does) and drops the nulls
/// of non-nullable fields that have none.
pub fn apply_defaults(value: &mut Value, schema: &Value) {
    match value {
        Value::Object(map) => {
            if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
                default_fields(map, properties);
            }
            if let Some(sub) = schema.get("additionalProperties").filter(|a| a.is_object()) {
                for child in map.values_mut() {
                    apply_defaults(child, sub);
                }
            }
        }
        Value::Array(items) => {
            if let Some(sub) = schema.get("items").filter(|i| i.is_object()) {
                for item in items {
                    apply_defaults(item, sub);
                }
            }
        }
        _ => {}
    }
}
