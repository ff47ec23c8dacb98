//! CustomResourceDefinition schemas: refused unless structural, then enforced on their custom
//! objects on every write (pruning, defaulting, value validation with kube-apiserver's wording).
//! Value checks are the `jsonschema` crate's; this module translates schemas into its terms and
//! its errors into the Kubernetes field errors a client sees.

mod convert;
mod prune;
mod structural;

use std::fmt;

use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::paths::LocationSegment;
use jsonschema::{Draft, JsonType, PatternOptions, ValidationError, Validator};
use serde_json::{Value, json};

use super::Cause;

/// The schema of a custom kind's storage version, compiled once when its CRD is written.
pub struct CustomSchema {
    /// The `openAPIV3Schema` as the CRD gives it (pruning and defaulting read it directly).
    raw: Value,
    validator: Validator,
}

impl fmt::Debug for CustomSchema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CustomSchema")
            .field("raw", &self.raw)
            .finish()
    }
}

impl PartialEq for CustomSchema {
    fn eq(&self, other: &Self) -> bool {
        self.raw == other.raw
    }
}

fn build(schema: &Value) -> Result<Validator, String> {
    jsonschema::options()
        .with_draft(Draft::Draft7)
        .should_validate_formats(true)
        .with_format(convert::DATE_TIME_FORMAT, convert::is_date_time)
        // RE2-like, as Go's regexp that the real server compiles `pattern` with.
        .with_pattern_options(PatternOptions::regex())
        .build(&convert::to_json_schema(schema))
        .map_err(|e| e.to_string())
}

/// Checks every version's schema of a CRD and compiles the storage version's: the one whose
/// objects the sandbox stores (and validates, whichever version a client writes).
pub fn compile(crd: &Value) -> Result<Option<CustomSchema>, Vec<Cause>> {
    let versions = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut causes = Vec::new();
    let mut storage = None;
    for (i, version) in versions.iter().enumerate() {
        let path = format!("spec.versions[{i}].schema.openAPIV3Schema");
        let Some(schema) = version.pointer("/schema/openAPIV3Schema") else {
            causes.push((path, "Required value: schemas are required".into()));
            continue;
        };
        let before = causes.len();
        structural::check(schema, &path, &mut causes);
        check_defaults(schema, &path, &mut causes);
        if causes.len() > before {
            continue;
        }
        match build(schema) {
            Ok(validator) => {
                let is_storage = version.get("storage").and_then(Value::as_bool) == Some(true);
                if is_storage || storage.is_none() {
                    storage = Some(CustomSchema {
                        raw: schema.clone(),
                        validator,
                    });
                }
            }
            Err(why) => causes.push((path, format!("Invalid value: {why}"))),
        }
    }
    if causes.is_empty() {
        Ok(storage)
    } else {
        Err(causes)
    }
}

/// A `default` must itself be valid for its node, as the real server checks at CRD creation.
fn check_defaults(schema: &Value, path: &str, causes: &mut Vec<Cause>) {
    let Some(node) = schema.as_object() else {
        return;
    };
    if let Some(default) = node.get("default") {
        match build(schema) {
            Ok(validator) => {
                for error in validator.iter_errors(default) {
                    let (_, message) = field_error(&error);
                    causes.push((
                        format!("{path}.default"),
                        message.replacen("<root>", "default", 1),
                    ));
                }
            }
            Err(why) => causes.push((path.to_string(), format!("Invalid value: {why}"))),
        }
    }
    if let Some(properties) = node.get("properties").and_then(Value::as_object) {
        for (key, child) in properties {
            check_defaults(child, &format!("{path}.properties[{key}]"), causes);
        }
    }
    if let Some(items) = node.get("items") {
        check_defaults(items, &format!("{path}.items"), causes);
    }
    if let Some(additional) = node.get("additionalProperties") {
        check_defaults(additional, &format!("{path}.additionalProperties"), causes);
    }
}

impl CustomSchema {
    /// What the real server does to a custom object before validating it, on create, update,
    /// patch and status writes alike.
    pub fn prune_and_default(&self, obj: &mut Value) {
        prune::prune(obj, &self.raw, "", &mut Vec::new());
        prune::apply_defaults(obj, &self.raw);
    }

    /// The fields pruning would remove: what `fieldValidation=Strict` refuses.
    pub fn unknown_fields(&self, obj: &Value) -> Vec<String> {
        let mut removed = Vec::new();
        prune::prune(&mut obj.clone(), &self.raw, "", &mut removed);
        removed
    }

    /// The object's field errors. On update, an error at a value the update left as it was is
    /// not reported: the real server ratchets, so objects stored before a schema tightened stay
    /// writable.
    pub fn validate(&self, obj: &Value, old: Option<&Value>, causes: &mut Vec<Cause>) {
        for error in self.validator.iter_errors(obj) {
            let pointer = error.instance_path().as_str().to_string();
            if let Some(old) = old
                && old.pointer(&pointer).is_some()
                && old.pointer(&pointer) == obj.pointer(&pointer)
            {
                continue;
            }
            causes.push(field_error(&error));
        }
    }
}

/// The field path kube-openapi names: `spec.steps[0].weight`.
fn field_path(error: &ValidationError<'_>) -> String {
    let mut path = String::new();
    for segment in error.instance_path().iter() {
        match segment {
            LocationSegment::Property(name) => {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(&name);
            }
            LocationSegment::Index(i) => path.push_str(&format!("[{i}]")),
        }
    }
    if path.is_empty() {
        "<root>".to_string()
    } else {
        path
    }
}

/// A number as Go's `%v` prints a float64 limit: `65535`, not `65535.0`.
fn number(value: &Value) -> String {
    match value.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", f as i64),
        _ => value.to_string(),
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn expected_types(kind: &TypeKind) -> String {
    let names: Vec<&str> = match kind {
        TypeKind::Single(t) => vec![t.as_str()],
        TypeKind::Multiple(set) => set
            .iter()
            .filter(|t| *t != JsonType::Null)
            .map(JsonType::as_str)
            .collect(),
    };
    names.join(",")
}

/// One validator error as the Kubernetes field error kube-apiserver reports for it.
fn field_error(error: &ValidationError<'_>) -> Cause {
    let path = field_path(error);
    let value: &Value = error.instance();
    let shown = match value {
        Value::Number(_) => number(value),
        other => other.to_string(),
    };
    let message = match error.kind() {
        ValidationErrorKind::Required { property } => {
            let name = property.as_str().unwrap_or_default();
            let field = if path == "<root>" {
                name.to_string()
            } else {
                format!("{path}.{name}")
            };
            return (field, "Required value".into());
        }
        ValidationErrorKind::Enum { options } => {
            let supported: Vec<String> = options
                .as_array()
                .into_iter()
                .flatten()
                .map(|o| match o.as_str() {
                    Some(s) => json!(s).to_string(),
                    None => json!(o.to_string()).to_string(),
                })
                .collect();
            format!(
                "Unsupported value: {shown}: supported values: {}",
                supported.join(", ")
            )
        }
        ValidationErrorKind::Type { kind } => {
            let actual = type_name(value);
            format!(
                "Invalid value: \"{actual}\": {path} in body must be of type {}: \"{actual}\"",
                expected_types(kind)
            )
        }
        ValidationErrorKind::Maximum { limit } => format!(
            "Invalid value: {shown}: {path} in body should be less than or equal to {}",
            number(limit)
        ),
        ValidationErrorKind::ExclusiveMaximum { limit } => format!(
            "Invalid value: {shown}: {path} in body should be less than {}",
            number(limit)
        ),
        ValidationErrorKind::Minimum { limit } => format!(
            "Invalid value: {shown}: {path} in body should be greater than or equal to {}",
            number(limit)
        ),
        ValidationErrorKind::ExclusiveMinimum { limit } => format!(
            "Invalid value: {shown}: {path} in body should be greater than {}",
            number(limit)
        ),
        ValidationErrorKind::Pattern { pattern } => {
            format!("Invalid value: {shown}: {path} in body should match '{pattern}'")
        }
        ValidationErrorKind::MinLength { limit } => {
            format!("Invalid value: {shown}: {path} in body should be at least {limit} chars long")
        }
        ValidationErrorKind::MaxLength { limit } => {
            format!("Too long: may not be more than {limit} bytes")
        }
        ValidationErrorKind::MinItems { limit } => format!(
            "Invalid value: {}: {path} in body should have at least {limit} items",
            value.as_array().map_or(0, Vec::len)
        ),
        ValidationErrorKind::MaxItems { limit } => format!(
            "Too many: {}: must have at most {limit} items",
            value.as_array().map_or(0, Vec::len)
        ),
        ValidationErrorKind::MinProperties { limit } => format!(
            "Invalid value: {}: {path} in body should have at least {limit} properties",
            value.as_object().map_or(0, serde_json::Map::len)
        ),
        ValidationErrorKind::MaxProperties { limit } => format!(
            "Too many: {}: must have at most {limit} items",
            value.as_object().map_or(0, serde_json::Map::len)
        ),
        ValidationErrorKind::MultipleOf { .. } => {
            format!("Invalid value: {shown}: {path} in body {error}")
        }
        // `date-time` is the only format checked (see convert.rs).
        ValidationErrorKind::Format { .. } => {
            format!("Invalid value: {shown}: {path} in body must be of type date-time: {shown}")
        }
        ValidationErrorKind::AnyOf { .. } => {
            format!(
                "Invalid value: {shown}: {path} in body must validate at least one schema (anyOf)"
            )
        }
        ValidationErrorKind::OneOfNotValid { .. }
        | ValidationErrorKind::OneOfMultipleValid { .. } => {
            format!(
                "Invalid value: {shown}: {path} in body must validate one and only one schema (oneOf)"
            )
        }
        ValidationErrorKind::Not { .. } => {
            format!("Invalid value: {shown}: {path} in body must not validate the schema (not)")
        }
        _ => format!("Invalid value: {shown}: {error}"),
    };
    (path, message)
}
