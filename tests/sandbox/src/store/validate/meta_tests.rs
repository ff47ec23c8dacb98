//! Labels and annotations through the store, on every kind and inside a Deployment.

use serde_json::json;

use crate::store::{Store, WriteOptions};

#[test]
fn labels_are_checked_on_every_kind_with_the_field_path() {
    let store = Store::new(100);
    let configmaps = store.resolve("", "v1", "configmaps").expect("builtin");
    let long = "v".repeat(64);
    let err = store
        .create(
            &configmaps,
            "default",
            json!({"metadata": {"name": "c", "labels": {"release": long}}}),
            &WriteOptions::default(),
        )
        .expect_err("a 64-character label value");
    assert_eq!(err.code, 422);
    assert_eq!(
        err.message,
        format!(
            "ConfigMap \"c\" is invalid: metadata.labels: Invalid value: \"{long}\": must be no more than 63 characters"
        )
    );
    let err = store
        .create(
            &configmaps,
            "default",
            json!({"metadata": {"name": "c", "annotations": {"a b": "x"}}}),
            &WriteOptions::default(),
        )
        .expect_err("an annotation key with a space");
    assert!(
        err.message
            .starts_with("ConfigMap \"c\" is invalid: metadata.annotations: Invalid value: \"a b\": name part must consist of"),
        "{}",
        err.message
    );
}

#[test]
fn deployment_template_labels_and_selector_are_checked() {
    let store = Store::new(100);
    let deployments = store.resolve("apps", "v1", "deployments").expect("builtin");
    let hash = "0123456789abcdef".repeat(5);
    let body = json!({
        "metadata": {"name": "d"},
        "spec": {
            "selector": {"matchLabels": {"app": "d", "sluice.dev/revision": hash}},
            "template": {
                "metadata": {"labels": {"app": "d", "sluice.dev/revision": hash}},
                "spec": {"containers": [{"name": "c", "image": "i:1"}]}
            }
        }
    });
    let err = store
        .create(&deployments, "default", body, &WriteOptions::default())
        .expect_err("an 80-character label value");
    let fields: Vec<String> = err.details.expect("details")["causes"]
        .as_array()
        .expect("causes")
        .iter()
        .map(|c| c["field"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(
        fields,
        vec!["spec.template.metadata.labels", "spec.selector.matchLabels"]
    );
}
