//! CRDs through the store: structural schemas only, and custom objects pruned, defaulted and
//! validated against theirs with kube-apiserver's wording.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::store::{ApiError, PatchBody, ResourceKind, Store, Subresource, WriteOptions};

fn crds(store: &Store) -> Arc<ResourceKind> {
    store
        .resolve("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        .expect("builtin")
}

fn crd(schema: Value) -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "rollouts.sluice.dev"},
        "spec": {
            "group": "sluice.dev",
            "scope": "Namespaced",
            "names": {"kind": "Rollout", "plural": "rollouts", "singular": "rollout"},
            "versions": [{
                "name": "v1alpha1", "served": true, "storage": true,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": schema},
            }],
        },
    })
}

/// A schema with what sluice's Rollout uses: Rust's unsigned formats, defaults, patterns,
/// nullable enums, int-or-string, date-times.
fn rollout_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "required": ["service", "targetRef"],
                "properties": {
                    "targetRef": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string", "maxLength": 10}}},
                    "service": {"type": "object", "required": ["name"], "properties": {
                        "name": {"type": "string"},
                        "port": {"type": "integer", "format": "uint16", "minimum": 1.0, "maximum": 65535.0, "default": 80},
                        "targetPort": {"x-kubernetes-int-or-string": true, "nullable": true},
                    }},
                    "minRequests": {"type": "integer", "format": "uint32", "minimum": 0.0, "nullable": true},
                    "interval": {"type": "string", "pattern": "^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$", "nullable": true},
                    "promotion": {"type": "string", "enum": ["auto", "manual"], "nullable": true},
                    "steps": {"type": "array", "minItems": 1, "maxItems": 3, "items": {"type": "integer", "format": "uint8", "maximum": 100.0}},
                    "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                },
            },
            "status": {
                "type": "object",
                "properties": {
                    "phase": {"type": "string", "default": "Initializing", "enum": ["Initializing", "Ready"]},
                    "failedChecks": {"type": "integer", "format": "uint32", "default": 0},
                    "lastCheckAt": {"type": "string", "format": "date-time", "nullable": true},
                },
            },
        },
    })
}

fn setup() -> (Store, Arc<ResourceKind>) {
    let store = Store::new(1000);
    store
        .create(
            &crds(&store),
            "",
            crd(rollout_schema()),
            &WriteOptions::default(),
        )
        .expect("a structural CRD");
    let rollouts = store
        .resolve("sluice.dev", "v1alpha1", "rollouts")
        .expect("the CRD serves its kind");
    (store, rollouts)
}

fn rollout(spec: Value) -> Value {
    json!({"apiVersion": "sluice.dev/v1alpha1", "kind": "Rollout", "metadata": {"name": "reporting"}, "spec": spec})
}

fn valid_spec() -> Value {
    json!({"targetRef": {"name": "reporting"}, "service": {"name": "reporting"}})
}

/// Creates a Rollout of `spec` that must be refused: the error and its causes, sorted.
fn refused(
    store: &Store,
    rollouts: &Arc<ResourceKind>,
    spec: Value,
    why: &str,
) -> (ApiError, Vec<String>) {
    let err = store
        .create(rollouts, "default", rollout(spec), &WriteOptions::default())
        .expect_err(why);
    let mut got = messages(&err);
    got.sort();
    (err, got)
}

fn messages(err: &ApiError) -> Vec<String> {
    assert_eq!(err.code, 422, "{err:?}");
    err.details.as_ref().expect("details")["causes"]
        .as_array()
        .expect("causes")
        .iter()
        .map(|c| {
            format!(
                "{}: {}",
                c["field"].as_str().unwrap_or(""),
                c["message"].as_str().unwrap_or("")
            )
        })
        .collect()
}

#[test]
fn values_are_checked_with_the_real_wording() {
    let (store, rollouts) = setup();
    let mut spec = valid_spec();
    spec["service"]["port"] = json!(70000);
    spec["interval"] = json!("soon");
    spec["promotion"] = json!("sometimes");
    spec["steps"] = json!([10, 200, 30, 40]);
    spec["targetRef"]["name"] = json!("a-very-long-name");
    spec.as_object_mut().expect("spec").remove("service");
    spec["service"] = json!({"port": 70000});
    let (err, got) = refused(&store, &rollouts, spec, "invalid values");
    let mut want = vec![
        "spec.service.name: Required value".to_string(),
        "spec.service.port: Invalid value: 70000: spec.service.port in body should be less than or equal to 65535".to_string(),
        "spec.interval: Invalid value: \"soon\": spec.interval in body should match '^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$'".to_string(),
        "spec.promotion: Unsupported value: \"sometimes\": supported values: \"auto\", \"manual\"".to_string(),
        "spec.steps[1]: Invalid value: 200: spec.steps[1] in body should be less than or equal to 100".to_string(),
        "spec.steps: Too many: 4: must have at most 3 items".to_string(),
        "spec.targetRef.name: Too long: may not be more than 10 bytes".to_string(),
    ];
    want.sort();
    assert_eq!(got, want);
    assert!(
        err.message
            .starts_with("Rollout.sluice.dev \"reporting\" is invalid: "),
        "{}",
        err.message
    );

    let mut spec = valid_spec();
    spec["service"]["port"] = json!("eighty");
    spec["steps"] = json!([]);
    let (_, got) = refused(&store, &rollouts, spec, "wrong type, too few items");
    assert_eq!(
        got,
        vec![
            "spec.service.port: Invalid value: \"string\": spec.service.port in body must be of type integer: \"string\"",
            "spec.steps: Invalid value: 0: spec.steps in body should have at least 1 items",
        ]
    );
    let (_, got) = refused(&store, &rollouts, json!({}), "required fields");
    assert_eq!(
        got,
        vec![
            "spec.service: Required value",
            "spec.targetRef: Required value"
        ]
    );
}

#[test]
fn unsigned_formats_are_not_range_checked_and_int_or_string_takes_both() {
    let (store, rollouts) = setup();
    let mut spec = valid_spec();
    spec["minRequests"] = json!(5_000_000_000u64);
    spec["service"]["targetPort"] = json!("http");
    let created = store
        .create(
            &rollouts,
            "default",
            rollout(spec),
            &WriteOptions::default(),
        )
        .expect("uint32 has no range on the real server");
    assert_eq!(created["spec"]["minRequests"], 5_000_000_000u64);
    let (patched, _) = store
        .patch(
            &rollouts,
            "default",
            "reporting",
            PatchBody::Merge(json!({"spec": {"service": {"targetPort": 8080}}})),
            Subresource::Main,
            &WriteOptions::default(),
        )
        .expect("an int where int-or-string");
    assert_eq!(patched["spec"]["service"]["targetPort"], 8080);
    let err = store
        .patch(
            &rollouts,
            "default",
            "reporting",
            PatchBody::Merge(json!({"spec": {"service": {"targetPort": true}}})),
            Subresource::Main,
            &WriteOptions::default(),
        )
        .expect_err("a bool is neither");
    assert_eq!(
        messages(&err),
        vec![
            "spec.service.targetPort: Invalid value: \"boolean\": spec.service.targetPort in body must be of type integer,string: \"boolean\""
        ]
    );
}

#[test]
fn unknown_fields_are_pruned_and_defaults_applied() {
    let (store, rollouts) = setup();
    let mut spec = valid_spec();
    spec["typo"] = json!("dropped");
    spec["service"]["extraField"] = json!(1);
    spec["extra"] = json!({"kept": {"deep": true}});
    spec["interval"] = Value::Null;
    spec["steps"] = Value::Null;
    let mut body = rollout(spec);
    body["topLevel"] = json!("dropped too");
    let created = store
        .create(&rollouts, "default", body, &WriteOptions::default())
        .expect("create");
    let spec = &created["spec"];
    assert!(spec.get("typo").is_none(), "{spec}");
    assert!(created.get("topLevel").is_none());
    assert!(spec["service"].get("extraField").is_none());
    assert_eq!(spec["extra"], json!({"kept": {"deep": true}}));
    assert_eq!(spec["service"]["port"], 80, "default applied");
    assert_eq!(spec["interval"], Value::Null, "a nullable null stays");
    assert!(
        spec.get("steps").is_none(),
        "a non-nullable null without default goes"
    );

    // kube-openapi checks `enum` on null too, nullable or not: the real server refuses it.
    let mut spec = valid_spec();
    spec["promotion"] = Value::Null;
    let mut body = rollout(spec);
    body["metadata"]["name"] = json!("other");
    let err = store
        .create(&rollouts, "default", body, &WriteOptions::default())
        .expect_err("null is not in the enum");
    assert_eq!(
        messages(&err),
        vec!["spec.promotion: Unsupported value: null: supported values: \"auto\", \"manual\""]
    );

    // The status subresource: pruned, defaulted and validated too.
    let status = store
        .write_status(
            &rollouts,
            "default",
            "reporting",
            json!({"lastCheckAt": null, "unknown": 1}),
        )
        .expect("status write");
    assert_eq!(
        status["status"],
        json!({"lastCheckAt": null, "phase": "Initializing", "failedChecks": 0})
    );
    let err = store
        .patch(
            &rollouts,
            "default",
            "reporting",
            PatchBody::Merge(json!({"status": {"phase": "Exploded", "lastCheckAt": "yesterday"}})),
            Subresource::Status,
            &WriteOptions::default(),
        )
        .expect_err("status values are validated");
    let mut got = messages(&err);
    got.sort();
    assert_eq!(
        got,
        vec![
            "status.lastCheckAt: Invalid value: \"yesterday\": status.lastCheckAt in body must be of type date-time: \"yesterday\"",
            "status.phase: Unsupported value: \"Exploded\": supported values: \"Initializing\", \"Ready\"",
        ]
    );
}

#[test]
fn a_schema_change_applies_to_stored_objects_and_ratchets() {
    let (store, rollouts) = setup();
    let mut spec = valid_spec();
    spec["interval"] = json!("1m");
    store
        .create(
            &rollouts,
            "default",
            rollout(spec),
            &WriteOptions::default(),
        )
        .expect("create");
    let mut schema = rollout_schema();
    schema["properties"]["spec"]["properties"]["interval"]["maxLength"] = json!(1);
    schema["properties"]["spec"]["properties"]["stepInterval"] =
        json!({"type": "string", "default": "30s"});
    let current = store
        .get(&crds(&store), "", "rollouts.sluice.dev")
        .expect("crd");
    let mut next = (*current).clone();
    next["spec"]["versions"][0]["schema"]["openAPIV3Schema"] = schema;
    store
        .update(
            &crds(&store),
            "",
            "rollouts.sluice.dev",
            next,
            Subresource::Main,
            &WriteOptions::default(),
        )
        .expect("CRD update");
    let rollouts = store
        .resolve("sluice.dev", "v1alpha1", "rollouts")
        .expect("still served");
    let stored = store
        .get(&rollouts, "default", "reporting")
        .expect("stored");
    assert_eq!(
        stored["spec"]["stepInterval"], "30s",
        "defaults show on read"
    );
    // The now too long interval is tolerated while it is left alone...
    store
        .patch(
            &rollouts,
            "default",
            "reporting",
            PatchBody::Merge(json!({"spec": {"promotion": "manual"}})),
            Subresource::Main,
            &WriteOptions::default(),
        )
        .expect("an unchanged invalid value ratchets");
    // ...and refused once changed.
    let err = store
        .patch(
            &rollouts,
            "default",
            "reporting",
            PatchBody::Merge(json!({"spec": {"interval": "2m"}})),
            Subresource::Main,
            &WriteOptions::default(),
        )
        .expect_err("a changed value is checked");
    assert_eq!(
        messages(&err),
        vec!["spec.interval: Too long: may not be more than 1 bytes"]
    );
}

#[test]
fn non_structural_schemas_are_refused() {
    let store = Store::new(100);
    let refused = |schema: Value| -> Vec<String> {
        let err = store
            .create(&crds(&store), "", crd(schema), &WriteOptions::default())
            .expect_err("not structural");
        messages(&err)
    };
    let base = "spec.versions[0].schema.openAPIV3Schema";
    assert_eq!(
        refused(
            json!({"type": "object", "properties": {"spec": {"properties": {"a": {"type": "string"}}}}})
        ),
        vec![format!(
            "{base}.properties[spec].type: Required value: must not be empty for specified object fields"
        )]
    );
    assert_eq!(
        refused(json!({"type": "object", "properties": {"spec": {"type": "array"}}})),
        vec![format!(
            "{base}.properties[spec].items: Required value: must be specified"
        )]
    );
    assert_eq!(
        refused(
            json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {"p": {"type": "string"}},
            "anyOf": [{"type": "object", "description": "d", "properties": {"q": {"default": 1}}}]}}})
        ),
        vec![
            format!(
                "{base}.properties[spec].anyOf[0].properties[q].default: Forbidden: must be undefined to be structural"
            ),
            format!(
                "{base}.properties[spec].anyOf[0].type: Forbidden: must be empty to be structural"
            ),
            format!(
                "{base}.properties[spec].anyOf[0].description: Forbidden: must be empty to be structural"
            ),
            format!(
                "{base}.properties[spec].properties[q]: Required value: because it is defined in {base}.properties[spec].anyOf[0].properties[q]"
            ),
        ]
    );
    assert_eq!(
        refused(
            json!({"type": "object", "properties": {"metadata": {"type": "object", "properties": {"labels": {"type": "object"}}}}})
        ),
        vec![format!(
            "{base}.properties[metadata]: Forbidden: must not specify anything other than name and generateName, but metadata is implicitly specified"
        )]
    );
    assert_eq!(
        refused(json!({"type": "string"})),
        vec![format!(
            "{base}.type: Invalid value: \"string\": must be object at the root"
        )]
    );
    assert_eq!(
        refused(
            json!({"type": "object", "properties": {"port": {"type": "integer", "maximum": 10, "default": 80}}})
        ),
        vec![format!(
            "{base}.properties[port].default: Invalid value: 80: default in body should be less than or equal to 10"
        )]
    );
    let mut no_schema = crd(json!({}));
    no_schema["spec"]["versions"][0]
        .as_object_mut()
        .expect("version")
        .remove("schema");
    let err = store
        .create(&crds(&store), "", no_schema, &WriteOptions::default())
        .expect_err("v1 needs a schema");
    assert_eq!(
        messages(&err),
        vec![format!("{base}: Required value: schemas are required")]
    );
    // The int-or-string idiom and preserved fields are structural.
    store
        .create(
            &crds(&store),
            "",
            crd(json!({"type": "object", "properties": {
                "port": {"x-kubernetes-int-or-string": true, "anyOf": [{"type": "integer"}, {"type": "string"}]},
                "free": {"x-kubernetes-preserve-unknown-fields": true},
            }})),
            &WriteOptions::default(),
        )
        .expect("structural");
}

#[test]
fn strict_field_validation_refuses_what_pruning_would_drop() {
    let (store, rollouts) = setup();
    let mut spec = valid_spec();
    spec["service"]["prot"] = json!(80);
    spec["steps"] = json!([10]);
    let strict = WriteOptions {
        strict_fields: true,
        ..Default::default()
    };
    let err = store
        .create(&rollouts, "default", rollout(spec.clone()), &strict)
        .expect_err("an unknown field with fieldValidation=Strict");
    assert_eq!(err.code, 400);
    assert_eq!(
        err.message,
        "Rollout in version \"v1alpha1\" cannot be handled as a Rollout: strict decoding error: unknown field \"spec.service.prot\""
    );
    store
        .create(
            &rollouts,
            "default",
            rollout(spec),
            &WriteOptions::default(),
        )
        .expect("pruned without it");
}
