use super::*;
use proptest::prelude::*;

const ERROR_RATE: &str = r#"sum(rate(x{namespace="{{ namespace }}",ingress="{{ingress}}",service="{{  service  }}",canary!=""}[{{ interval }}]))"#;

fn vars() -> TemplateVars {
    TemplateVars::for_release(
        "erp-system",
        "reporting",
        "reporting",
        Some("erp-ingress"),
        Slot::Blue,
        Duration::from_secs(60),
    )
}

#[test]
fn renders_with_optional_whitespace() {
    assert_eq!(
        render(ERROR_RATE, &vars()).unwrap(),
        r#"sum(rate(x{namespace="erp-system",ingress="erp-ingress",service="reporting",canary!=""}[1m]))"#
    );
}

#[test]
fn for_release_derives_names() {
    let v = TemplateVars::for_release(
        "ns",
        "app",
        "svc",
        None,
        Slot::Green,
        Duration::from_secs(90),
    );
    assert_eq!(v.canary_service, "svc-canary");
    assert_eq!(v.stable_slot, "green");
    assert_eq!(v.candidate_slot, "blue");
    assert_eq!(v.interval, "90s");
    let q = render(
        r#"{pod=~"{{ name }}-{{ candidate_slot }}-.*"}[{{interval}}]"#,
        &v,
    )
    .unwrap();
    assert_eq!(q, r#"{pod=~"app-blue-.*"}[90s]"#);
}

#[test]
fn rejects_bad_values_naming_variable_and_value() {
    for (set, var, value) in [
        (0, "namespace", r#"erp"} or vector(1) or x{a=""#),
        (1, "service", "a b"),
        (2, "name", "a\\b"),
        (3, "name", "a\nb"),
        (4, "name", "{a}"),
        (5, "candidate_slot", "purple"),
        (6, "interval", "1m]) or vector(1"),
        (7, "interval", "0s"),
        (8, "namespace", "UPPER"),
    ] {
        let mut v = vars();
        match set {
            0 => v.namespace = value.into(),
            1 => v.service = value.into(),
            2..=4 => v.name = value.into(),
            5 => v.candidate_slot = value.into(),
            6 | 7 => v.interval = value.into(),
            _ => v.namespace = value.into(),
        }
        let template =
            r#"{{ namespace }}{{ service }}{{ name }}{{ candidate_slot }}{{ interval }}"#;
        let err = render(template, &v).unwrap_err();
        assert!(
            matches!(&err, TemplateError::InvalidValue { var: got, value: got_value, .. }
                if *got == var && got_value == value),
            "{value:?}: {err}"
        );
        let text = err.to_string();
        assert!(
            text.contains(var) && text.contains(&format!("{value:?}")),
            "{text}"
        );
    }
}

#[test]
fn a_name_too_long_is_rejected() {
    let mut v = vars();
    v.name = "a".repeat(254);
    assert!(render("{{ name }}", &v).is_err());
    v.name = "a".repeat(253);
    assert!(render("{{ name }}", &v).is_ok());
}

#[test]
fn only_used_variables_are_validated() {
    let mut v = vars();
    v.stable_slot = "bad\"".into();
    v.ingress = None;
    assert!(render("{{ namespace }}", &v).is_ok());
    let err = render("{{ ingress }}", &v).unwrap_err();
    assert!(
        err.to_string().contains("only the canary strategy"),
        "{err}"
    );
}

#[test]
fn syntax_errors() {
    assert_eq!(
        check_template("up{a=\"{{ namespce }}\"}"),
        Err(TemplateError::UnknownVariable {
            name: "namespce".into()
        })
    );
    assert_eq!(
        check_template("up{a=\"{{ namespace \"}"),
        Err(TemplateError::Unterminated { offset: 6 })
    );
    assert!(check_template("{{}}").is_err());
    assert!(check_template("up").is_ok());
    assert!(
        check_template("a }} b").is_ok(),
        "a lone closing pair is text"
    );
    let err = check_template("{{ x }}").unwrap_err().to_string();
    assert!(
        err.contains("\"x\"") && err.contains("candidate_slot"),
        "{err}"
    );
}

#[test]
fn lists_variables() {
    assert_eq!(
        template_variables(ERROR_RATE).unwrap(),
        vec![Var::Namespace, Var::Ingress, Var::Service, Var::Interval]
    );
}

/// A template that puts every variable in a label value or range, as real templates do.
const ALL_VARS: &str = r#"sum(rate(m{namespace="{{ namespace }}",pod=~"{{ name }}-{{ candidate_slot }}-.*",ingress="{{ ingress }}",service="{{ service }}",canary="{{ canary_service }}",stable="{{ stable_slot }}"}[{{ interval }}]))"#;

fn hostile() -> impl Strategy<Value = String> {
    prop_oneof![
        // Arbitrary text, including quotes, braces, backslashes, newlines and unicode.
        ".{0,12}",
        // Text from a PromQL-hostile alphabet, often close to valid.
        r#"[a-z0-9\-."'{}\[\]\\ \n=~,()|]{0,10}"#,
    ]
}

// Mostly valid values, so that whole renders succeed often enough to check their shape.
fn name_value() -> impl Strategy<Value = String> {
    prop_oneof![3 => "[a-z0-9]([-a-z0-9.]{0,6}[a-z0-9])?", 1 => hostile()]
}

fn slot_value() -> impl Strategy<Value = String> {
    prop_oneof![3 => "(blue|green)", 1 => hostile()]
}

fn interval_value() -> impl Strategy<Value = String> {
    prop_oneof![3 => "[0-9]{1,3}(ms|s|m|h|d|w|y)", 1 => hostile()]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn values_stay_inside_their_quotes(
        namespace in name_value(), name in name_value(), ingress in name_value(),
        service in name_value(), canary_service in name_value(),
        stable_slot in slot_value(), candidate_slot in slot_value(),
        interval in interval_value(),
    ) {
        let v = TemplateVars {
            namespace, name, ingress: Some(ingress), service, canary_service,
            stable_slot, candidate_slot, interval,
        };
        match render(ALL_VARS, &v) {
            Err(TemplateError::InvalidValue { var, value, .. }) => {
                // The error names a variable that really has that value.
                let actual = match var {
                    "namespace" => &v.namespace, "name" => &v.name,
                    "ingress" => v.ingress.as_ref().unwrap(), "service" => &v.service,
                    "canary_service" => &v.canary_service, "stable_slot" => &v.stable_slot,
                    "candidate_slot" => &v.candidate_slot, "interval" => &v.interval,
                    other => panic!("unexpected variable {other}"),
                };
                prop_assert_eq!(actual, &value);
            }
            Err(other) => prop_assert!(false, "unexpected error {}", other),
            Ok(query) => {
                // Walk the rendered query along the template: each value sits exactly where its
                // placeholder was, and removing the values leaves the template's own text.
                let mut rest = query.as_str();
                for segment in parse(ALL_VARS).unwrap() {
                    match segment {
                        Segment::Text(text) => {
                            prop_assert!(rest.starts_with(text), "{:?} !~ {:?}", rest, text);
                            rest = &rest[text.len()..];
                        }
                        Segment::Var(var) => {
                            let value = validated(var, &v).unwrap();
                            prop_assert!(rest.starts_with(value));
                            // A value is a plain token: nothing that ends a string, label set,
                            // range or call.
                            let hostile = ['"', '\\', '{', '}', '[', ']', '(', ')', ',', ' ', '\n', '\'', '`', '=', '~', '!'];
                            prop_assert!(!value.contains(hostile), "{:?}", value);
                            rest = &rest[value.len()..];
                        }
                    }
                }
                prop_assert_eq!(rest, "");
            }
        }
    }

    #[test]
    fn parsing_never_panics(template in ".{0,40}") {
        let _ = check_template(&template);
        let _ = render(&template, &vars());
    }
}
