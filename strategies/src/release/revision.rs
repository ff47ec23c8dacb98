//! Revisions and slots: what a revision is (a hash of the pod template's canonical JSON) and how a
//! slot's pod template and selector derive from the user's Deployment.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::status::Slot;

/// Pod label telling the slots apart (contract).
pub const SLOT_LABEL: &str = "sluice.dev/slot";
/// Annotation on a slot Deployment naming the revision it runs.
pub const REVISION_ANNOTATION: &str = "sluice.dev/revision";
/// Pod label carrying the revision, so that dashboards and people can tell blue from green (the
/// seed's Deployments label their versions the same way).
pub const VERSION_LABEL: &str = "version";

/// JSON with object keys sorted at every depth and no insignificant whitespace: the same template
/// gives the same text whatever order a client or a library wrote its keys in (Flagger hashed a
/// debug dump and re-released everything after upgrades).
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(&map[key], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// The revision of a pod template: FNV-1a (64 bit) of its canonical JSON, 10 hex digits.
pub fn template_hash(template: &Value) -> String {
    crate::names::short_hash(&canonical_json(template))
}

/// The pod template a slot runs for a revision: the user's template with the slot label added, and
/// the `version` label set to the revision, unless the user's selector selects on `version` (then
/// the pods must keep the user's value to match it).
pub fn slot_template(
    target_template: &Value,
    target_selector: &BTreeMap<String, String>,
    slot: Slot,
) -> Value {
    let revision = template_hash(target_template);
    let mut template = target_template.clone();
    if !template.is_object() {
        template = Value::Object(Default::default());
    }
    let labels = template
        .as_object_mut()
        .map(|t| {
            t.entry("metadata")
                .or_insert_with(|| Value::Object(Default::default()))
        })
        .and_then(|m| {
            if !m.is_object() {
                *m = Value::Object(Default::default());
            }
            m.as_object_mut()
        })
        .map(|m| {
            m.entry("labels")
                .or_insert_with(|| Value::Object(Default::default()))
        });
    if let Some(labels) = labels {
        if !labels.is_object() {
            *labels = Value::Object(Default::default());
        }
        if let Some(labels) = labels.as_object_mut() {
            labels.insert(SLOT_LABEL.into(), Value::String(slot.as_str().into()));
            if !target_selector.contains_key(VERSION_LABEL) {
                labels.insert(VERSION_LABEL.into(), Value::String(revision));
            }
        }
    }
    template
}

/// The selector of a slot (and of the Services pointing at it): the user's selector plus the slot.
pub fn slot_selector(
    target_selector: &BTreeMap<String, String>,
    slot: Slot,
) -> BTreeMap<String, String> {
    let mut selector = target_selector.clone();
    selector.insert(SLOT_LABEL.into(), slot.as_str().into());
    selector
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_json_is_sorted_and_compact() {
        let value: Value =
            serde_json::from_str(r#"{"b": {"d": null, "c": [1, "x", true]}, "a": []}"#).unwrap();
        assert_eq!(
            canonical_json(&value),
            r#"{"a":[],"b":{"c":[1,"x",true],"d":null}}"#
        );
    }

    #[test]
    fn the_hash_ignores_key_order_and_sees_every_change() {
        let a = json!({"metadata": {"labels": {"app": "x", "version": "v1"}}, "spec": {"containers": [{"name": "x", "image": "x:1"}]}});
        let b: Value = serde_json::from_str(
            r#"{"spec": {"containers": [{"image": "x:1", "name": "x"}]}, "metadata": {"labels": {"version": "v1", "app": "x"}}}"#,
        )
        .unwrap();
        assert_eq!(template_hash(&a), template_hash(&b));
        assert_eq!(template_hash(&a).len(), 10);
        let mut c = a.clone();
        c["spec"]["containers"][0]["image"] = json!("x:2");
        assert_ne!(template_hash(&a), template_hash(&c));
    }

    #[test]
    fn slots_add_their_label_and_the_revision_and_keep_the_users() {
        let template =
            json!({"metadata": {"labels": {"app": "reporting", "version": "v1"}}, "spec": {}});
        let selector = BTreeMap::from([("app".to_string(), "reporting".to_string())]);
        let blue = slot_template(&template, &selector, Slot::Blue);
        assert_eq!(
            blue["metadata"]["labels"],
            json!({"app": "reporting", "sluice.dev/slot": "blue", "version": template_hash(&template)})
        );
        let mut by_version = selector.clone();
        by_version.insert("version".into(), "v1".into());
        assert_eq!(
            slot_template(&template, &by_version, Slot::Blue)["metadata"]["labels"]["version"],
            "v1",
            "a selector on version keeps the user's value, or the pods would not match it"
        );
        assert_eq!(
            slot_selector(&selector, Slot::Green)
                .get(SLOT_LABEL)
                .map(String::as_str),
            Some("green")
        );
        assert_eq!(
            slot_template(&json!({}), &selector, Slot::Green)["metadata"]["labels"][SLOT_LABEL],
            "green"
        );
    }
}
