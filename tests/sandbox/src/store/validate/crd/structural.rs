//! Whether a CRD's `openAPIV3Schema` is structural, by the rules apiextensions-apiserver applies
//! before it accepts an `apiextensions.k8s.io/v1` CRD: every specified node has a `type` (unless
//! it is int-or-string or preserves unknown fields), arrays have `items`, the value validations
//! in `anyOf`/`allOf`/`oneOf`/`not` set no types, descriptions or defaults and name only fields
//! the structural part also has, and `metadata` constrains only `name` and `generateName`.

use serde_json::{Map, Value};

use super::super::Cause;

#[derive(Clone, Copy, PartialEq)]
enum Level {
    Root,
    Item,
    Field,
}

fn flag(node: &Map<String, Value>, key: &str) -> bool {
    node.get(key).and_then(Value::as_bool).unwrap_or(false)
}

fn push(causes: &mut Vec<Cause>, field: String, message: impl Into<String>) {
    causes.push((field, message.into()));
}

/// The int-or-string idiom the real server tolerates: `anyOf: [{type: integer}, {type: string}]`.
fn is_int_or_string_any_of(node: &Map<String, Value>) -> bool {
    flag(node, "x-kubernetes-int-or-string")
        && node.get("anyOf") == Some(&serde_json::json!([{"type": "integer"}, {"type": "string"}]))
}

fn is_int_or_string_all_of(node: &Map<String, Value>) -> bool {
    flag(node, "x-kubernetes-int-or-string")
        && node
            .get("allOf")
            .and_then(Value::as_array)
            .and_then(|all| all.first())
            .and_then(Value::as_object)
            .is_some_and(|first| {
                first.len() == 1
                    && first.get("anyOf")
                        == Some(&serde_json::json!([{"type": "integer"}, {"type": "string"}]))
            })
}

pub fn check(schema: &Value, path: &str, causes: &mut Vec<Cause>) {
    node(schema, Level::Root, path, causes);
}

fn node(schema: &Value, level: Level, path: &str, causes: &mut Vec<Cause>) {
    let Some(s) = schema.as_object() else {
        push(
            causes,
            path.into(),
            "Invalid value: must be a schema object",
        );
        return;
    };
    let ty = s.get("type").and_then(Value::as_str).unwrap_or("");
    let int_or_string = flag(s, "x-kubernetes-int-or-string");
    let preserve = flag(s, "x-kubernetes-preserve-unknown-fields");
    let embedded = flag(s, "x-kubernetes-embedded-resource");

    if s.contains_key("$ref") {
        push(
            causes,
            format!("{path}.$ref"),
            "Forbidden: $ref is not supported",
        );
    }
    if s.get("uniqueItems") == Some(&Value::Bool(true)) {
        push(
            causes,
            format!("{path}.uniqueItems"),
            "Forbidden: uniqueItems cannot be set to true since the runtime complexity becomes quadratic",
        );
    }
    if s.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(false)) {
        push(
            causes,
            format!("{path}.x-kubernetes-preserve-unknown-fields"),
            "Invalid value: false: must be true or undefined",
        );
    }
    if s.contains_key("properties") && s.contains_key("additionalProperties") {
        push(
            causes,
            format!("{path}.additionalProperties"),
            "Forbidden: additionalProperties and properties are mutual exclusive",
        );
    }
    if int_or_string && preserve {
        push(
            causes,
            format!("{path}.x-kubernetes-preserve-unknown-fields"),
            "Invalid value: true: must be false if x-kubernetes-int-or-string is true",
        );
    }

    match s.get("items") {
        Some(items @ Value::Object(_)) => {
            node(items, Level::Item, &format!("{path}.items"), causes)
        }
        Some(Value::Array(_)) => push(
            causes,
            format!("{path}.items"),
            "Forbidden: items must be a schema object and not an array",
        ),
        _ if ty == "array" => push(
            causes,
            format!("{path}.items"),
            "Required value: must be specified",
        ),
        _ => {}
    }
    if let Some(properties) = s.get("properties").and_then(Value::as_object) {
        for (key, child) in properties {
            node(
                child,
                Level::Field,
                &format!("{path}.properties[{key}]"),
                causes,
            );
        }
    }
    if let Some(additional) = s.get("additionalProperties") {
        if level == Level::Root {
            push(
                causes,
                format!("{path}.additionalProperties"),
                "Forbidden: must not be used at the root",
            );
        }
        if additional.is_object() {
            node(
                additional,
                Level::Field,
                &format!("{path}.additionalProperties"),
                causes,
            );
        }
        if embedded {
            push(
                causes,
                format!("{path}.additionalProperties"),
                "Forbidden: must not be used if x-kubernetes-embedded-resource is set",
            );
        }
    }

    let skip_any_of = is_int_or_string_any_of(s);
    let skip_first_all_of = is_int_or_string_all_of(s);
    value_validations(s, skip_any_of, skip_first_all_of, path, causes);

    if embedded && ty != "object" {
        let message = if ty.is_empty() {
            "Required value: must be object if x-kubernetes-embedded-resource is true".to_string()
        } else {
            format!(
                "Invalid value: {ty:?}: must be object if x-kubernetes-embedded-resource is true"
            )
        };
        push(causes, format!("{path}.type"), message);
    } else if ty.is_empty() && !int_or_string && !preserve {
        let message = match level {
            Level::Root => "Required value: must not be empty at the root",
            Level::Item => "Required value: must not be empty for specified array items",
            Level::Field => "Required value: must not be empty for specified object fields",
        };
        push(causes, format!("{path}.type"), message);
    }
    if level == Level::Root && !ty.is_empty() && ty != "object" {
        push(
            causes,
            format!("{path}.type"),
            format!("Invalid value: {ty:?}: must be object at the root"),
        );
    }
    let properties = s.get("properties").and_then(Value::as_object);
    if level == Level::Root || embedded {
        for (field, want) in [
            ("kind", "string"),
            ("apiVersion", "string"),
            ("metadata", "object"),
        ] {
            if let Some(prop) = properties.and_then(|p| p.get(field)) {
                let got = prop.get("type").and_then(Value::as_str).unwrap_or("");
                if got != want {
                    push(
                        causes,
                        format!("{path}.properties[{field}].type"),
                        format!("Invalid value: {got:?}: must be {want}"),
                    );
                }
            }
        }
    }
    if level == Level::Root
        && let Some(metadata) = properties.and_then(|p| p.get("metadata"))
        && !metadata_only_names(metadata)
    {
        push(
            causes,
            format!("{path}.properties[metadata]"),
            "Forbidden: must not specify anything other than name and generateName, but metadata is implicitly specified",
        );
    }
    if embedded && !preserve && properties.is_none_or(Map::is_empty) {
        push(
            causes,
            format!("{path}.properties"),
            "Required value: must not be empty if x-kubernetes-embedded-resource is true without x-kubernetes-preserve-unknown-fields",
        );
    }
}

/// `metadata` may have a type and default (both ignored) and schemas for name and generateName.
fn metadata_only_names(metadata: &Value) -> bool {
    let Some(m) = metadata.as_object() else {
        return false;
    };
    m.iter().all(|(key, value)| match key.as_str() {
        "type" | "default" => true,
        "properties" => value
            .as_object()
            .is_some_and(|p| p.keys().all(|k| k == "name" || k == "generateName")),
        _ => false,
    })
}

fn value_validations(
    s: &Map<String, Value>,
    skip_any_of: bool,
    skip_first_all_of: bool,
    path: &str,
    causes: &mut Vec<Cause>,
) {
    for key in ["anyOf", "allOf", "oneOf"] {
        let Some(list) = s.get(key).and_then(Value::as_array) else {
            continue;
        };
        for (i, nested_schema) in list.iter().enumerate() {
            let skip =
                (key == "anyOf" && skip_any_of) || (key == "allOf" && skip_first_all_of && i == 0);
            let at = format!("{path}.{key}[{i}]");
            if !skip {
                nested(nested_schema, &at, causes);
            }
            completeness(s, nested_schema, path, &at, causes);
        }
    }
    if let Some(not) = s.get("not") {
        let at = format!("{path}.not");
        nested(not, &at, causes);
        completeness(s, not, path, &at, causes);
    }
}

/// Inside `anyOf`/`allOf`/`oneOf`/`not`: value validations only.
fn nested(schema: &Value, path: &str, causes: &mut Vec<Cause>) {
    let Some(v) = schema.as_object() else {
        push(
            causes,
            path.into(),
            "Invalid value: must be a schema object",
        );
        return;
    };
    value_validations(v, false, false, path, causes);
    if let Some(items) = v.get("items") {
        nested(items, &format!("{path}.items"), causes);
    }
    if let Some(properties) = v.get("properties").and_then(Value::as_object) {
        for (key, child) in properties {
            nested(child, &format!("{path}.properties[{key}]"), causes);
        }
    }
    let forbidden: [(&str, &str); 12] = [
        ("type", "must be empty to be structural"),
        ("additionalProperties", "must be undefined to be structural"),
        ("default", "must be undefined to be structural"),
        ("title", "must be empty to be structural"),
        ("description", "must be empty to be structural"),
        ("nullable", "must be false to be structural"),
        (
            "x-kubernetes-preserve-unknown-fields",
            "must be undefined to be structural",
        ),
        (
            "x-kubernetes-embedded-resource",
            "must be false to be structural",
        ),
        (
            "x-kubernetes-int-or-string",
            "must be false to be structural",
        ),
        (
            "x-kubernetes-list-map-keys",
            "must be empty to be structural",
        ),
        (
            "x-kubernetes-list-type",
            "must be undefined to be structural",
        ),
        (
            "x-kubernetes-map-type",
            "must be undefined to be structural",
        ),
    ];
    for (key, why) in forbidden {
        let set = match v.get(key) {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b || key.starts_with("x-kubernetes-preserve"),
            Some(Value::String(text)) => !text.is_empty(),
            Some(Value::Array(list)) => !list.is_empty(),
            Some(_) => true,
        };
        if set {
            push(causes, format!("{path}.{key}"), format!("Forbidden: {why}"));
        }
    }
    if v.get("properties")
        .and_then(|p| p.get("metadata"))
        .is_some()
    {
        push(
            causes,
            format!("{path}.properties[metadata]"),
            "Forbidden: must not be specified in a nested context",
        );
    }
}

/// What a value validation names must exist in the structural schema beside it.
fn completeness(
    structural: &Map<String, Value>,
    nested_schema: &Value,
    path: &str,
    nested_path: &str,
    causes: &mut Vec<Cause>,
) {
    let properties = structural.get("properties").and_then(Value::as_object);
    if let Some(named) = nested_schema.get("properties").and_then(Value::as_object) {
        for (key, child) in named {
            match properties
                .and_then(|p| p.get(key))
                .and_then(Value::as_object)
            {
                None => push(
                    causes,
                    format!("{path}.properties[{key}]"),
                    format!(
                        "Required value: because it is defined in {nested_path}.properties[{key}]"
                    ),
                ),
                Some(inner) => completeness(
                    inner,
                    child,
                    &format!("{path}.properties[{key}]"),
                    &format!("{nested_path}.properties[{key}]"),
                    causes,
                ),
            }
        }
    }
    if let Some(items) = nested_schema.get("items") {
        match structural.get("items").and_then(Value::as_object) {
            None => push(
                causes,
                format!("{path}.items"),
                format!("Required value: because it is defined in {nested_path}.items"),
            ),
            Some(inner) => completeness(
                inner,
                items,
                &format!("{path}.items"),
                &format!("{nested_path}.items"),
                causes,
            ),
        }
    }
    for key in ["anyOf", "allOf", "oneOf"] {
        for (i, deeper) in nested_schema
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            completeness(
                structural,
                deeper,
                path,
                &format!("{nested_path}.{key}[{i}]"),
                causes,
            );
        }
    }
}
