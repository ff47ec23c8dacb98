//! What sluice puts back after someone edits by hand an object a release depends on, so that an
//! Event can name it. An object sluice applies carries the digest of the body it applied: one that
//! still carries the digest of the body sluice wants now, but not its fields, was edited (see
//! `objects::applied::edited_field`). A deleted one carries nothing, so each object's state as
//! last seen in place is remembered: a digest, or the Service's selector. Only what the cache
//! shows is remembered, never what sluice just wrote: a cache behind that write would look like an
//! edit. (An edit made before the cache showed the write is put back all the same, untold.)

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Mutex;

use serde_json::Value;
use sluice_strategies::objects::applied::{APPLIED_ANNOTATION, edited_field};
use sluice_strategies::release::Note;

/// One thing put back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repair {
    pub kind: &'static str,
    pub name: String,
    /// What had happened to it: `spec.replicas was changed`, `was deleted`.
    pub what: String,
}

impl Repair {
    pub fn note(&self) -> Note {
        Note {
            reason: "Repaired",
            message: format!(
                "{} {} {} by hand: put back as the release requires",
                self.kind, self.name, self.what
            ),
            warning: true,
        }
    }
}

/// The state of each object sluice writes as last seen in place, by a hash of its kind,
/// namespace and name: 16 bytes an object, not its text.
#[derive(Default)]
pub struct InPlace(Mutex<HashMap<u64, u64>>);

fn hash(parts: &[&str]) -> u64 {
    let mut hasher = DefaultHasher::new();
    parts.hash(&mut hasher);
    hasher.finish()
}

impl InPlace {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, u64>> {
        // A panic while holding it cannot leave an entry half-written.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The object is in place as `state` says.
    pub fn seen(&self, kind: &str, namespace: &str, name: &str, state: &str) {
        self.lock()
            .insert(hash(&[kind, namespace, name]), hash(&[state]));
    }

    /// Whether it was last seen in place as `state`.
    pub fn was(&self, kind: &str, namespace: &str, name: &str, state: &str) -> bool {
        self.lock().get(&hash(&[kind, namespace, name])) == Some(&hash(&[state]))
    }

    /// sluice removed it: a later object of that name is a new one, not a repair.
    pub fn forget(&self, kind: &str, namespace: &str, name: &str) {
        self.lock().remove(&hash(&[kind, namespace, name]));
    }
}

/// The digest a stamped body carries.
pub fn digest(body: &Value) -> &str {
    body.pointer("/metadata/annotations")
        .and_then(|a| a.get(APPLIED_ANNOTATION))
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// What applying `body` over `cached` repairs, if anything: a field edited by hand, or the whole
/// object deleted while it was in place as `body`.
pub fn of_apply<K: serde::Serialize>(
    in_place: &InPlace,
    kind: &'static str,
    namespace: &str,
    name: &str,
    cached: Option<&K>,
    body: &Value,
) -> Option<Repair> {
    let what = match cached {
        Some(object) => {
            let current = serde_json::to_value(object).ok()?;
            format!("{} was changed", edited_field(&current, body)?)
        }
        None if in_place.was(kind, namespace, name, digest(body)) => "was deleted".to_string(),
        None => return None,
    };
    Some(Repair {
        kind,
        name: name.to_string(),
        what,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn body(weight: &str) -> Value {
        let mut body = json!({"metadata": {"name": "c", "annotations": {"canary-weight": weight}}});
        sluice_strategies::objects::applied::stamp(&mut body);
        body
    }

    #[test]
    fn an_edit_and_a_deletion_of_what_is_in_place_are_repairs_a_new_plan_is_not() {
        let in_place = InPlace::default();
        let twenty = body("20");
        let mut edited = twenty.clone();
        edited["metadata"]["annotations"]["canary-weight"] = json!("90");
        let repair = of_apply(&in_place, "Ingress", "ns", "c", Some(&edited), &twenty);
        assert_eq!(
            repair.map(|r| r.note().message),
            Some("Ingress c metadata.annotations.canary-weight was changed by hand: put back as the release requires".to_string())
        );
        // Deleted: a repair only if it was in place as this very body.
        let none: Option<&Value> = None;
        assert_eq!(
            of_apply(&in_place, "Ingress", "ns", "c", none, &twenty),
            None
        );
        in_place.seen("Ingress", "ns", "c", digest(&twenty));
        let deleted = of_apply(&in_place, "Ingress", "ns", "c", none, &twenty).expect("a repair");
        assert_eq!(deleted.what, "was deleted");
        assert_eq!(
            of_apply(&in_place, "Ingress", "ns", "c", none, &body("50")),
            None,
            "the next step"
        );
        assert_eq!(
            of_apply(&in_place, "Ingress", "other", "c", none, &twenty),
            None
        );
        in_place.forget("Ingress", "ns", "c");
        assert_eq!(
            of_apply(&in_place, "Ingress", "ns", "c", none, &twenty),
            None,
            "removed by sluice"
        );
        // The step to 50 over the object at 20 is the plan moving on.
        assert_eq!(
            of_apply(&in_place, "Ingress", "ns", "c", Some(&twenty), &body("50")),
            None
        );
    }
}
