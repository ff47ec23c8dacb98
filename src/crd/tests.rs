//! Every spec the CRD's schema accepts is one the controller can read: otherwise one Rollout's
//! value would fail the decoding of the list all Rollouts are watched through.

use proptest::prelude::*;
use serde_json::{Map, Value, json};

use super::*;

/// The schema of `spec` in the CRD as the API server gets it.
fn spec_schema() -> Value {
    let crd = serde_json::to_value(Rollout::crd()).expect("the CRD serializes");
    crd.pointer("/spec/versions/0/schema/openAPIV3Schema/properties/spec")
        .cloned()
        .expect("a spec schema")
}

/// Values that a schema accepts, as kube-apiserver checks them: types, minimum and maximum,
/// enums, patterns, required properties and nullable; extremes of each range on purpose.
fn valid(schema: &Value) -> BoxedStrategy<Value> {
    let nullable = schema["nullable"] == json!(true);
    let values = valid_non_null(schema);
    if nullable {
        prop_oneof![1 => Just(Value::Null), 4 => values].boxed()
    } else {
        values
    }
}

fn valid_non_null(schema: &Value) -> BoxedStrategy<Value> {
    if schema["x-kubernetes-int-or-string"] == json!(true) {
        return prop_oneof![
            any::<i64>().prop_map(Value::from),
            "[a-z][a-z0-9-]{0,14}".prop_map(Value::from),
        ]
        .boxed();
    }
    if let Some(choices) = schema["enum"].as_array().filter(|c| !c.is_empty()) {
        return prop::sample::select(choices.clone()).boxed();
    }
    match schema["type"].as_str() {
        Some("object") => object(schema),
        Some("array") => {
            let items = valid(&schema["items"]);
            let min = schema["minItems"].as_u64().unwrap_or(0) as usize;
            let max = schema["maxItems"].as_u64().map_or(min + 3, |m| m as usize);
            prop::collection::vec(items, min..=max.min(min + 3))
                .prop_map(Value::Array)
                .boxed()
        }
        Some("integer") => {
            // schemars writes bounds as floats (`minimum: 0.0`); the API server compares numbers.
            let bound = |key: &str, unbounded: i64| {
                schema[key].as_f64().map_or(unbounded, |b| {
                    b.clamp(i64::MIN as f64, i64::MAX as f64) as i64
                })
            };
            let (min, max) = (bound("minimum", i64::MIN), bound("maximum", i64::MAX));
            prop_oneof![Just(min), Just(max), min..=max]
                .prop_map(Value::from)
                .boxed()
        }
        Some("number") => prop_oneof![Just(-1e300), Just(1e300), -1e6f64..1e6]
            .prop_map(Value::from)
            .boxed(),
        Some("boolean") => any::<bool>().prop_map(Value::from).boxed(),
        Some("string") => string(schema),
        other => panic!("a schema node of type {other:?}: {schema}"),
    }
}

fn string(schema: &Value) -> BoxedStrategy<Value> {
    let min = schema["minLength"].as_u64().unwrap_or(0) as usize;
    match schema["pattern"].as_str() {
        Some(pattern) => {
            // The generator anchors on its own.
            let inner = pattern.trim_start_matches('^').trim_end_matches('$');
            proptest::string::string_regex(inner)
                .unwrap_or_else(|e| panic!("pattern {pattern}: {e}"))
                .prop_filter("minLength", move |s| s.chars().count() >= min)
                .prop_map(Value::from)
                .boxed()
        }
        None => proptest::string::string_regex(&format!(".{{{min},12}}"))
            .expect("a literal regex")
            .prop_map(Value::from)
            .boxed(),
    }
}

fn object(schema: &Value) -> BoxedStrategy<Value> {
    let required: Vec<&str> = schema["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let Some(properties) = schema["properties"].as_object() else {
        return Just(json!({})).boxed();
    };
    let fields: Vec<BoxedStrategy<Option<(String, Value)>>> = properties
        .iter()
        .map(|(name, property)| {
            let name = name.clone();
            let value = valid(property);
            if required.contains(&name.as_str()) {
                value.prop_map(move |v| Some((name.clone(), v))).boxed()
            } else {
                prop::option::of(value.prop_map(move |v| (name.clone(), v))).boxed()
            }
        })
        .collect();
    fields
        .prop_map(|fields| Value::Object(fields.into_iter().flatten().collect::<Map<_, _>>()))
        .boxed()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn every_spec_the_schema_accepts_is_readable(spec in valid(&spec_schema())) {
        let read = serde_json::from_value::<Spec>(spec.clone());
        prop_assert!(read.is_ok(), "{spec} is schema-valid but unreadable: {:?}", read.err());
    }
}

#[test]
fn an_unreadable_spec_is_kept_and_does_not_fail_the_object() {
    let rollout = json!({
        "apiVersion": "sluice.dev/v1alpha1", "kind": "Rollout",
        "metadata": {"name": "odd", "namespace": "erp-system"},
        "spec": {"targetRef": {"name": "reporting"}, "service": {"name": "reporting-service", "port": 80},
                 "strategy": {"canary": {"steps": "all of them"}}},
    });
    let read: Rollout = serde_json::from_value(rollout.clone()).expect("the object reads");
    let reason = read.spec.readable().expect_err("the spec does not");
    assert!(reason.contains("invalid type"), "{reason}");
    assert_eq!(
        serde_json::to_value(&read).expect("serializes")["spec"],
        rollout["spec"],
        "written back as it was"
    );
    assert_eq!(
        read.spec.names(),
        Some(SpecNames {
            target: "reporting".into(),
            service: "reporting-service".into(),
            ingress: None,
        }),
        "enough to hand back"
    );
}

#[test]
fn the_printed_crd_reads_back_as_the_one_the_controller_serves() {
    let yaml = crd_yaml().expect("the CRD prints");
    let printed: k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition =
        serde_saphyr::from_str(&yaml).expect("it parses");
    assert_eq!(printed, Rollout::crd());
}
