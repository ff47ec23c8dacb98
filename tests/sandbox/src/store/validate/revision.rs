//! ControllerRevision (`apps/v1`): any JSON in `data`, kept as sent, and a `revision` number.
//! `ValidateControllerRevision` and its update check: `data` is mandatory and immutable,
//! `revision` non-negative. The real update check compares `data` only (its comment says the
//! revision too, its code does not), so a revision may be renumbered, as on a real cluster.

use serde_json::{Value, json};

use super::Cause;

/// `revision` is an int64 the real server always serialises, 0 when the client sent none.
pub fn apply_defaults(obj: &mut Value) {
    if let Some(map) = obj.as_object_mut() {
        map.entry("revision").or_insert(json!(0));
    }
}

fn shown(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(200) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text,
    }
}

pub fn validate(obj: &Value, old: Option<&Value>, causes: &mut Vec<Cause>) {
    match obj.get("data") {
        None | Some(Value::Null) => {
            causes.push(("data".into(), "Required value: data is mandatory".into()));
        }
        Some(_) => {}
    }
    match obj.get("revision") {
        Some(revision) if revision.is_i64() => {
            if revision.as_i64().is_some_and(|r| r < 0) {
                causes.push((
                    "revision".into(),
                    format!("Invalid value: {revision}: must be greater than or equal to 0"),
                ));
            }
        }
        other => causes.push((
            "revision".into(),
            format!(
                "Invalid value: {}: must be an integer (int64)",
                other.map(shown).unwrap_or_else(|| "null".into())
            ),
        )),
    }
    if let Some(old) = old
        && old.get("data") != obj.get("data")
    {
        causes.push((
            "data".into(),
            format!(
                "Invalid value: {}: field is immutable",
                shown(obj.get("data").unwrap_or(&Value::Null))
            ),
        ));
    }
}
