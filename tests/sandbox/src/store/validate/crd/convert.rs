//! A CRD's OpenAPI v3 schema as the JSON Schema the validator crate checks values with, keeping
//! kube-openapi's semantics: `nullable` admits null, `x-kubernetes-int-or-string` admits both,
//! `exclusiveMaximum`/`exclusiveMinimum` are draft-4 booleans, and `format` constrains only the
//! formats kube-apiserver checks (`int32`, `uint16` and the like are annotations there: a value
//! out of their range is accepted).

use serde_json::{Map, Value, json};

/// The name the sandbox registers its RFC 3339 check under (kube-openapi's `date-time`).
pub const DATE_TIME_FORMAT: &str = "k8s-date-time";

fn flag(node: &Map<String, Value>, key: &str) -> bool {
    node.get(key).and_then(Value::as_bool).unwrap_or(false)
}

pub fn to_json_schema(node: &Value) -> Value {
    let Some(node) = node.as_object() else {
        return json!({});
    };
    let mut out = Map::new();
    let nullable = flag(node, "nullable");
    let mut types: Vec<Value> = Vec::new();
    if flag(node, "x-kubernetes-int-or-string") {
        types = vec![json!("integer"), json!("string")];
    } else if let Some(t) = node.get("type").and_then(Value::as_str) {
        types.push(json!(t));
    }
    if !types.is_empty() {
        if nullable {
            types.push(json!("null"));
        }
        out.insert("type".into(), Value::Array(types));
    }
    for key in [
        "minLength",
        "maxLength",
        "pattern",
        "minItems",
        "maxItems",
        "uniqueItems",
        "multipleOf",
        "minProperties",
        "maxProperties",
        "required",
        "enum",
    ] {
        if let Some(value) = node.get(key) {
            out.insert(key.into(), value.clone());
        }
    }
    for (bound, exclusive, draft7) in [
        ("maximum", "exclusiveMaximum", "exclusiveMaximum"),
        ("minimum", "exclusiveMinimum", "exclusiveMinimum"),
    ] {
        if let Some(limit) = node.get(bound) {
            let key = if flag(node, exclusive) { draft7 } else { bound };
            out.insert(key.into(), limit.clone());
        }
    }
    if let Some(format) = node.get("format").and_then(Value::as_str)
        && matches!(format, "date-time" | "datetime")
    {
        out.insert("format".into(), json!(DATE_TIME_FORMAT));
    }
    if let Some(properties) = node.get("properties").and_then(Value::as_object) {
        let converted: Map<String, Value> = properties
            .iter()
            .map(|(k, v)| (k.clone(), to_json_schema(v)))
            .collect();
        out.insert("properties".into(), Value::Object(converted));
    }
    match node.get("additionalProperties") {
        Some(Value::Bool(b)) => {
            out.insert("additionalProperties".into(), json!(b));
        }
        Some(schema @ Value::Object(_)) => {
            out.insert("additionalProperties".into(), to_json_schema(schema));
        }
        _ => {}
    }
    if let Some(items) = node.get("items").filter(|i| i.is_object()) {
        out.insert("items".into(), to_json_schema(items));
    }
    for key in ["anyOf", "allOf", "oneOf"] {
        if let Some(list) = node.get(key).and_then(Value::as_array) {
            out.insert(key.into(), list.iter().map(to_json_schema).collect());
        }
    }
    if let Some(not) = node.get("not") {
        out.insert("not".into(), to_json_schema(not));
    }
    Value::Object(out)
}

/// kube-openapi's `date-time`: RFC 3339, with or without fractions, or without a zone.
pub fn is_date_time(text: &str) -> bool {
    chrono::DateTime::parse_from_rfc3339(text).is_ok()
        || chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f").is_ok()
}
