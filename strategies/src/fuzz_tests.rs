//! The core fed arbitrary input, as a Rollout anyone can write reaches it: specs and statuses
//! generated from the CRD's own JSON schema (the schema `RolloutSpec` and `RolloutStatus` derive,
//! which kube-apiserver enforces), mostly valid, sometimes with a value of the wrong type or out
//! of range in any place; and worlds with any slots, selector, weight and command. Nothing may
//! panic; every spec that deserializes either resolves to a plan or says what to fix.

use std::collections::BTreeMap;

use chrono::{TimeZone, Utc};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

use crate::release::{self, Command, CommandVerb, SlotView, TargetView, World};
use crate::spec::RolloutSpec;
use crate::status::{RolloutStatus, Slot};
use crate::{Presets, resolve};

/// Strings that mean something somewhere in a spec: durations, names, presets, metric names,
/// templates, selectors, and a few that mean nothing.
const WORDS: [&str; 24] = [
    "",
    "0s",
    "1s",
    "5m",
    "1h",
    "-1m",
    "1.5m",
    "99999h",
    "reporting",
    "erp-ingress",
    "web",
    "nginx-canary",
    "blue-green",
    "error-rate",
    "latency-p99",
    "app-error-rate",
    "auto",
    "manual",
    "x-canary",
    "{{ namespace }}",
    "{{ nope }}",
    "sum(rate(x[1m]))",
    "Reporting_Service",
    "🦀",
];

/// Names as Kubernetes takes them, and one in eight as it refuses them.
const NAMES: [&str; 8] = [
    "reporting",
    "erp-ingress",
    "reporting-service",
    "web",
    "nginx-canary",
    "error-rate",
    "Reporting_Service",
    "-1",
];
/// Durations as a spec writes them, and some it should not.
const DURATIONS: [&str; 10] = [
    "1s", "6s", "30s", "1m", "5m", "1h", "0s", "-1m", "1.5m", "99999h",
];

/// A string for a property called `hint`: a name, a duration, or any word.
fn string_for(hint: &str) -> BoxedStrategy<Value> {
    let lower = hint.to_ascii_lowercase();
    let timed = ["interval", "duration", "delay", "deadline", "timeout"];
    if lower == "preset" {
        proptest::sample::select(vec!["nginx-canary", "blue-green", "nope"])
            .prop_map(|w| json!(w))
            .boxed()
    } else if lower == "name" || lower.ends_with("name") {
        prop_oneof![7 => proptest::sample::select(&NAMES[..6]).prop_map(|w| json!(w)), 1 => word()]
            .boxed()
    } else if timed.iter().any(|t| lower.contains(t)) {
        prop_oneof![7 => proptest::sample::select(&DURATIONS[..7]).prop_map(|w| json!(w)), 1 => proptest::sample::select(&DURATIONS[..]).prop_map(|w| json!(w)), 1 => word()].boxed()
    } else {
        word()
    }
}

/// A time around the worlds' (2026-12-01), in RFC 3339 as the API server writes it.
fn time() -> BoxedStrategy<Value> {
    (-100_000i64..1_100_000)
        .prop_map(|seconds| {
            let at = Utc
                .with_ymd_and_hms(2026, 12, 1, 0, 0, 0)
                .single()
                .expect("a time")
                + chrono::Duration::seconds(seconds);
            json!(at.to_rfc3339())
        })
        .boxed()
}

fn word() -> BoxedStrategy<Value> {
    prop_oneof![
        4 => proptest::sample::select(&WORDS[..]).prop_map(|w| json!(w)),
        1 => "[a-z0-9.{}_ -]{0,24}".prop_map(Value::String),
    ]
    .boxed()
}

fn number(integer: bool) -> BoxedStrategy<Value> {
    const INTERESTING: [i64; 14] = [
        0i64,
        1,
        2,
        5,
        50,
        99,
        100,
        101,
        255,
        256,
        1000,
        -1,
        i32::MAX as i64,
        i64::MAX,
    ];
    if integer {
        prop_oneof![
            3 => proptest::sample::select(&INTERESTING[..]).prop_map(|n| json!(n)),
            1 => any::<i64>().prop_map(|n| json!(n)),
        ]
        .boxed()
    } else {
        prop_oneof![
            2 => proptest::sample::select(&INTERESTING[..]).prop_map(|n| json!(n)),
            1 => any::<f64>().prop_filter("JSON has no NaN or infinity", |n| n.is_finite()).prop_map(|n| json!(n)),
            1 => (0.0f64..200.0).prop_map(|n| json!(n)),
        ]
        .boxed()
    }
}

/// An integer in the range the schema gives (its `minimum` and `maximum`, or its format's), at
/// its ends more often than not; out of range now and then.
fn integer(schema: &Value) -> BoxedStrategy<Value> {
    let (low, high) = match schema.get("format").and_then(Value::as_str) {
        Some("uint8") => (0, 255),
        Some("uint16") => (0, 65_535),
        Some("uint32") | Some("uint") => (0, i64::from(u32::MAX)),
        Some("int32") => (i64::from(i32::MIN), i64::from(i32::MAX)),
        Some("uint64") => (0, i64::MAX),
        _ => (i64::MIN, i64::MAX),
    };
    let bound = |key: &str| schema.get(key).and_then(Value::as_f64).map(|b| b as i64);
    let low = bound("minimum").map_or(low, |b| b.max(low));
    let high = bound("maximum").map_or(high, |b| b.min(high));
    if low > high {
        return number(true);
    }
    let small = low.max(0).min(high)..=high.min(low.max(0).saturating_add(120));
    prop_oneof![
        3 => small.prop_map(|n| json!(n)),
        1 => proptest::sample::select(vec![low, high]).prop_map(|n| json!(n)),
        1 => (low..=high).prop_map(|n| json!(n)),
        1 => number(true),
    ]
    .boxed()
}

/// Any JSON scalar: what a hand-written manifest may put where the schema wants something else.
fn wrong() -> BoxedStrategy<Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number(false),
        word(),
    ]
    .boxed()
}

/// A value for `schema` (a JSON schema of schemars' draft 2020-12), resolving `$ref` in `defs`.
/// How rough the generated values are: one in `wrong` breaks the schema where it stands, and a
/// required property is there with probability `required`.
#[derive(Clone, Copy)]
struct Roughness {
    wrong: u32,
    required: f64,
}

/// Specs, as people write them: one value in twenty of the wrong type.
const SPECS: Roughness = Roughness {
    wrong: 20,
    required: 0.95,
};
/// Statuses, as the controller wrote them or someone edited one: rarely broken, so that most
/// reach the release machine.
const STATUSES: Roughness = Roughness {
    wrong: 400,
    required: 0.995,
};

fn from_schema(
    schema: &Value,
    defs: &Map<String, Value>,
    depth: u32,
    hint: &str,
    rough: Roughness,
) -> BoxedStrategy<Value> {
    if depth > 8 {
        return wrong();
    }
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        let name = reference.rsplit('/').next().unwrap_or_default();
        return match defs.get(name) {
            Some(target) => from_schema(target, defs, depth + 1, hint, rough),
            None => wrong(),
        };
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(choices) = schema.get(key).and_then(Value::as_array) {
            let strategies: Vec<BoxedStrategy<Value>> = choices
                .iter()
                .map(|c| from_schema(c, defs, depth + 1, hint, rough))
                .collect();
            return proptest::strategy::Union::new(strategies).boxed();
        }
    }
    if let Some(values) = schema
        .get("enum")
        .and_then(Value::as_array)
        .filter(|v| !v.is_empty())
    {
        return proptest::sample::select(values.clone()).boxed();
    }
    if let Some(value) = schema.get("const") {
        return Just(value.clone()).boxed();
    }
    let types: Vec<&str> = match schema.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ if schema.get("properties").is_some() => vec!["object"],
        _ => vec![],
    };
    let typed: Vec<BoxedStrategy<Value>> = types
        .iter()
        .map(|t| match *t {
            "object" => object(schema, defs, depth, rough),
            "array" => {
                let items = schema.get("items").cloned().unwrap_or(Value::Bool(true));
                proptest::collection::vec(from_schema(&items, defs, depth + 1, hint, rough), 0..4)
                    .prop_map(Value::Array)
                    .boxed()
            }
            "string" if schema.get("format").and_then(Value::as_str) == Some("date-time") => time(),
            "string" => string_for(hint),
            "integer" => integer(schema),
            "number" => number(false),
            "boolean" => any::<bool>().prop_map(Value::Bool).boxed(),
            _ => Just(Value::Null).boxed(),
        })
        .collect();
    if typed.is_empty() {
        return wrong();
    }
    let conforming = proptest::strategy::Union::new(typed);
    prop_oneof![rough.wrong - 1 => conforming, 1 => wrong()].boxed()
}

/// An object with each of the schema's properties present or not (the required ones present
/// nearly always), and for a map (`additionalProperties`) a few entries.
fn object(
    schema: &Value,
    defs: &Map<String, Value>,
    depth: u32,
    rough: Roughness,
) -> BoxedStrategy<Value> {
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let fields: Vec<BoxedStrategy<Option<(String, Value)>>> = schema
        .get("properties")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(name, property)| {
            let name = name.clone();
            let present = if required.contains(&name.as_str()) {
                rough.required
            } else {
                0.5
            };
            proptest::option::weighted(
                present,
                from_schema(property, defs, depth + 1, &name, rough),
            )
            .prop_map(move |value| value.map(|v| (name.clone(), v)))
            .boxed()
        })
        .collect();
    let entries = match schema.get("additionalProperties") {
        Some(values @ Value::Object(_)) => proptest::collection::vec(
            (word(), from_schema(values, defs, depth + 1, "", rough)),
            0..3,
        )
        .boxed(),
        _ => Just(Vec::new()).boxed(),
    };
    (fields, entries)
        .prop_map(|(fields, entries)| {
            let mut map: Map<String, Value> = fields.into_iter().flatten().collect();
            for (key, value) in entries {
                map.insert(key.as_str().unwrap_or_default().to_string(), value);
            }
            Value::Object(map)
        })
        .boxed()
}

fn schema_of<T: schemars::JsonSchema>() -> (Value, Map<String, Value>) {
    let schema = serde_json::to_value(schemars::schema_for!(T)).expect("a schema serializes");
    let defs = schema
        .get("$defs")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    (schema, defs)
}

fn spec_json() -> BoxedStrategy<Value> {
    let (schema, defs) = schema_of::<RolloutSpec>();
    from_schema(&schema, &defs, 0, "", SPECS)
}

/// Specs that resolve, of both strategies, with generated steps and times: the release machine
/// then sees every status and world with a plan it would really run.
fn valid_spec() -> BoxedStrategy<Value> {
    let steps = proptest::collection::btree_set(1u8..=100, 1..5)
        .prop_map(|steps| steps.into_iter().collect::<Vec<u8>>());
    let interval = proptest::sample::select(&DURATIONS[..6]);
    let canary = (steps, interval.clone(), any::<bool>()).prop_map(|(steps, interval, matching)| {
        let mut canary = json!({"ingressRef": {"name": "erp-ingress"}, "steps": steps, "stepInterval": interval});
        if matching {
            canary["match"] = json!({"header": {"name": "x-canary", "value": "insider"}});
        }
        json!({"targetRef": {"name": "reporting"}, "service": {"name": "reporting-service", "port": 80},
               "strategy": {"canary": canary}, "analysis": {"interval": interval, "failureLimit": 1}})
    });
    let blue_green = (interval.clone(), interval, proptest::sample::select(vec!["auto", "manual"])).prop_map(
        |(preview, delay, promotion)| {
            json!({"targetRef": {"name": "reporting"}, "service": {"name": "reporting-service", "port": 80},
                   "strategy": {"blueGreen": {"previewDuration": preview, "scaleDownDelay": delay}},
                   "promotion": promotion})
        },
    );
    prop_oneof![canary, blue_green].boxed()
}

fn status_json() -> BoxedStrategy<Value> {
    let (schema, defs) = schema_of::<RolloutStatus>();
    from_schema(&schema, &defs, 0, "", STATUSES)
}

fn slot_view() -> impl Strategy<Value = Option<SlotView>> {
    let revision = proptest::option::of(proptest::sample::select(vec!["a1", "b2", ""]));
    proptest::option::of((revision, -1i32..5, -1i32..5).prop_map(|(revision, replicas, ready)| SlotView {
        revision: revision.map(str::to_string),
        template: json!({"metadata": {"labels": {"app": "reporting"}}, "spec": {"containers": [{"name": "r", "image": "r:1"}]}}),
        replicas,
        ready_replicas: ready,
    }))
}

fn world() -> impl Strategy<Value = World> {
    let verb = proptest::sample::select(vec![
        CommandVerb::Promote,
        CommandVerb::PromoteFull,
        CommandVerb::Abort,
        CommandVerb::Pause,
        CommandVerb::Resume,
        CommandVerb::Retry,
    ]);
    let command = proptest::option::of((verb, "[a-z0-9]{0,6}").prop_map(|(verb, nonce)| Command {
        verb,
        nonce,
        reason: None,
    }));
    let selector = proptest::option::of(proptest::option::of(prop_oneof![
        Just(Slot::Blue),
        Just(Slot::Green)
    ]));
    (slot_view(), slot_view(), selector, proptest::option::of(any::<u8>()), any::<bool>(), command, 0i64..1_000_000)
        .prop_map(|(blue, green, selector, weight, matching, command, seconds)| {
            let app = BTreeMap::from([("app".to_string(), "reporting".to_string())]);
            World {
                now: Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).single().expect("a time")
                    + chrono::Duration::seconds(seconds),
                generation: 1,
                target: TargetView {
                    template: json!({"metadata": {"labels": {"app": "reporting"}}, "spec": {"containers": [{"name": "r", "image": "r:2"}]}}),
                    replicas: 2,
                    selector: app.clone(),
                },
                blue,
                green,
                service_selector: selector.map(|slot| {
                    let mut selector = app.clone();
                    if let Some(slot) = slot {
                        selector.insert("sluice.dev/slot".into(), slot.as_str().into());
                    }
                    selector
                }),
                canary_weight: weight,
                canary_matching: matching,
                present: Default::default(),
                stable_record: None,
                command,
                check: None,
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn every_spec_resolves_or_says_what_to_fix(spec in spec_json()) {
        let presets = Presets::embedded().expect("the embedded presets load");
        if let Ok(spec) = serde_json::from_value::<RolloutSpec>(spec) {
            match resolve(&spec, &presets) {
                Ok(_) => {}
                Err(invalid) => prop_assert!(!invalid.to_string().trim().is_empty(), "an empty InvalidSpec"),
            }
        }
    }

    #[test]
    fn any_status_in_any_world_gets_a_decision(
        spec in prop_oneof![1 => spec_json(), 3 => valid_spec()],
        status in status_json(),
        world in world(),
    ) {
        let presets = Presets::embedded().expect("the embedded presets load");
        let Ok(spec) = serde_json::from_value::<RolloutSpec>(spec) else { return Ok(()) };
        let Ok(plan) = resolve(&spec, &presets) else { return Ok(()) };
        let status: RolloutStatus = serde_json::from_value(status).unwrap_or_default();
        let decision = release::reconcile(&plan, &status, &world);
        // What the machine says can be written back: a status that serializes.
        prop_assert!(serde_json::to_value(&decision.status).is_ok());
        let _ = release::next_check_at(&plan, &decision.status);
    }
}

#[test]
fn the_generator_makes_valid_specs_too() {
    // A generator that only ever broke the schema would test the error paths alone.
    use proptest::strategy::ValueTree;
    let presets = Presets::embedded().expect("the embedded presets load");
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = spec_json();
    let (mut parsed, mut resolved) = (0, 0);
    for _ in 0..2000 {
        let value = strategy.new_tree(&mut runner).expect("a value").current();
        if let Ok(spec) = serde_json::from_value::<RolloutSpec>(value) {
            parsed += 1;
            resolved += usize::from(resolve(&spec, &presets).is_ok());
        }
    }
    println!("of 2000 generated specs: {parsed} deserialize, {resolved} resolve");
    assert!(
        parsed > 100 && resolved > 20,
        "{parsed} deserialize, {resolved} resolve"
    );
    let statuses = status_json();
    let read = (0..2000)
        .filter(|_| {
            let value = statuses.new_tree(&mut runner).expect("a value").current();
            serde_json::from_value::<RolloutStatus>(value).is_ok()
        })
        .count();
    println!("of 2000 generated statuses: {read} deserialize");
    assert!(read > 400, "{read} statuses deserialize");
    let valid = valid_spec();
    for _ in 0..200 {
        let value = valid.new_tree(&mut runner).expect("a value").current();
        let spec: RolloutSpec =
            serde_json::from_value(value.clone()).expect("a valid spec deserializes");
        assert!(resolve(&spec, &presets).is_ok(), "resolves: {value}");
    }
}
