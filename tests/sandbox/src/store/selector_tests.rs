//! Unit tests of label and field selectors (`selector.rs`).

use super::*;
use serde_json::json;

fn labels(value: Value) -> Map<String, Value> {
    value.as_object().unwrap().clone()
}

fn selects(selector: &str, value: Value) -> bool {
    LabelSelector::parse(selector)
        .unwrap()
        .matches(Some(&labels(value)))
}

#[test]
fn empty_label_selector_matches_everything() {
    for text in ["", "   "] {
        let selector = LabelSelector::parse(text).unwrap();
        assert!(selector.is_empty());
        assert!(selector.matches(None));
        assert!(selector.matches(Some(&labels(json!({"a": "b"})))));
    }
    assert!(!LabelSelector::parse("a").unwrap().is_empty());
}

#[test]
fn equality_operators() {
    let pod = json!({"app": "web", "tier": "front"});
    assert!(selects("app=web", pod.clone()));
    assert!(selects("app==web", pod.clone()));
    assert!(selects(" app = web , tier==front ", pod.clone()));
    assert!(!selects("app=web,tier=back", pod.clone()));
    assert!(selects("app!=db", pod.clone()));
    assert!(!selects("app!=web", pod.clone()));
    assert!(
        selects("missing!=x", pod.clone()),
        "!= selects objects without the label"
    );
    assert!(!selects("missing=x", pod.clone()));
    assert!(selects(
        "app.kubernetes.io/name=",
        json!({"app.kubernetes.io/name": ""})
    ));
    assert!(!LabelSelector::parse("app=web").unwrap().matches(None));
}

#[test]
fn set_operators() {
    let pod = json!({"env": "prod", "tier": "front"});
    assert!(selects("env in (prod, staging)", pod.clone()));
    assert!(selects("env in(prod)", pod.clone()));
    assert!(!selects("env in (dev)", pod.clone()));
    assert!(!selects("missing in (dev)", pod.clone()));
    assert!(selects("env notin (dev,staging)", pod.clone()));
    assert!(!selects("env notin (prod)", pod.clone()));
    assert!(selects("missing notin (prod)", pod.clone()));
    assert!(selects(
        "env in (prod,x),tier notin (back),tier",
        pod.clone()
    ));
}

#[test]
fn existence_operators() {
    let pod = json!({"app": "web"});
    assert!(selects("app", pod.clone()));
    assert!(!selects("other", pod.clone()));
    assert!(selects("!other", pod.clone()));
    assert!(selects("! other", pod.clone()));
    assert!(!selects("!app", pod.clone()));
    assert!(selects("app,!other", pod));
}

#[test]
fn non_string_label_values_compare_by_text() {
    assert!(selects("n=1", json!({"n": 1})));
    assert!(selects("b in (true)", json!({"b": true})));
}

#[test]
fn malformed_label_selectors_are_rejected_with_their_text() {
    for (text, reason) in [
        ("a=b,", "empty requirement"),
        (",a", "empty requirement"),
        ("=b", "empty label key"),
        ("!", "empty label key"),
        ("a in (x", "unbalanced parentheses"),
        ("a in x)", "unbalanced parentheses"),
        ("a in ((x))", "nested parentheses"),
        ("a in ()", "must not be empty"),
        ("a in x", "parenthesised value set"),
        ("a > 1", "unknown operator"),
        ("a inside (x)", "unknown operator"),
        ("a b", "unknown operator"),
        ("a=b c", "invalid label value"),
        ("a=(b)", "invalid label value"),
        ("!a=b", "invalid label key"),
    ] {
        let err = LabelSelector::parse(text).unwrap_err();
        let message = err.to_string();
        assert!(message.contains(&format!("{text:?}")), "{message}");
        assert!(message.contains(reason), "{text}: {message}");
    }
}

#[test]
fn field_selectors() {
    let pod = json!({"metadata": {"name": "web-1", "namespace": "prod"}});
    let node = json!({"metadata": {"name": "node-1"}});
    let check = |text: &str, object: &Value| FieldSelector::parse(text).unwrap().matches(object);
    assert!(check("", &pod) && FieldSelector::parse("").unwrap().is_empty());
    assert!(check("metadata.name=web-1", &pod));
    assert!(check("metadata.name==web-1,metadata.namespace=prod", &pod));
    assert!(!check("metadata.name=web-2", &pod));
    assert!(check(" metadata.namespace != kube-system ", &pod));
    assert!(!check("metadata.namespace!=prod", &pod));
    assert!(check("metadata.namespace=", &node));
    assert!(check("metadata.namespace!=prod", &node));
}

#[test]
fn malformed_or_unsupported_field_selectors_are_rejected() {
    let err = FieldSelector::parse("status.phase=Running").unwrap_err();
    assert_eq!(
        err,
        SelectorError::UnsupportedField {
            selector: "status.phase=Running".into(),
            field: "status.phase".into()
        }
    );
    assert!(err.to_string().contains("\"status.phase\""));
    for text in ["metadata.name", "metadata.name=a,", "=a"] {
        let err = FieldSelector::parse(text).unwrap_err();
        assert!(
            matches!(err, SelectorError::InvalidFieldSelector { .. }),
            "{err}"
        );
        assert!(err.to_string().contains(&format!("{text:?}")), "{err}");
    }
}

#[test]
fn selector_objects() {
    let pod = labels(json!({"app": "web", "env": "prod"}));
    let check = |selector: Value| label_selector_object_matches(&selector, Some(&pod)).unwrap();
    assert!(check(json!({"matchLabels": {"app": "web"}})));
    assert!(!check(json!({"matchLabels": {"app": "db"}})));
    assert!(check(json!({})), "an empty selector selects everything");
    assert!(!check(Value::Null), "a null selector selects nothing");
    assert!(check(
        json!({"matchExpressions": [{"key": "env", "operator": "In", "values": ["prod", "dev"]}]})
    ));
    assert!(!check(
        json!({"matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["prod"]}]})
    ));
    assert!(check(
        json!({"matchExpressions": [{"key": "app", "operator": "Exists"}]})
    ));
    assert!(check(
        json!({"matchExpressions": [{"key": "gpu", "operator": "DoesNotExist", "values": []}]})
    ));
    assert!(!check(json!({"matchLabels": {"app": "web"},
                           "matchExpressions": [{"key": "app", "operator": "DoesNotExist"}]})));
    assert!(!label_selector_object_matches(&json!({"matchLabels": {"app": "web"}}), None).unwrap());
}

#[test]
fn invalid_selector_objects_are_errors() {
    for (selector, reason) in [
        (
            json!({"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]}),
            "unknown matchExpressions operator \"Gt\"",
        ),
        (
            json!({"matchExpressions": [{"key": "a"}]}),
            "unknown matchExpressions operator \"\"",
        ),
        (
            json!({"matchExpressions": [{"key": "a", "operator": "In"}]}),
            "at least one value",
        ),
        (
            json!({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}),
            "take no values",
        ),
        (
            json!({"matchExpressions": [{"operator": "Exists"}]}),
            "no key",
        ),
        (json!({"matchExpressions": {}}), "not a list"),
        (json!({"matchLabels": []}), "not an object"),
        (json!({"matchLabels": {"a": 1}}), "must be strings"),
        (json!("app=web"), "not an object"),
    ] {
        let err = label_selector_object_matches(&selector, None).unwrap_err();
        let message = err.to_string();
        assert!(message.contains(reason), "{message}");
        assert!(message.contains(&selector.to_string()), "{message}");
    }
}

#[test]
fn service_style_map_selectors() {
    let pod = labels(json!({"app": "web", "env": "prod"}));
    let selector = labels(json!({"app": "web"}));
    assert!(map_selector_matches(Some(&selector), Some(&pod)));
    assert!(!map_selector_matches(
        Some(&labels(json!({"app": "web", "env": "dev"}))),
        Some(&pod)
    ));
    assert!(!map_selector_matches(Some(&selector), None));
    assert!(
        !map_selector_matches(Some(&Map::new()), Some(&pod)),
        "an empty selector selects nothing"
    );
    assert!(!map_selector_matches(None, Some(&pod)));
}
