use super::*;
use crate::spec::{AnalysisSpec, HeaderMatch, MetricSpec, Weight};

/// The Rollout of DESIGN.md section 3, as a user writes it.
const DESIGN_ROLLOUT: &str = r#"
apiVersion: sluice.dev/v1alpha1
kind: Rollout
metadata: {name: reporting, namespace: erp-system}
spec:
  targetRef: {name: reporting}          # Deployment (apps/v1) in the same namespace
  service: {name: reporting, port: 80, targetPort: 8080}
  strategy:                             # exactly one of canary | blueGreen
    preset: nginx-canary                # optional
    canary:
      ingressRef: {name: erp-ingress}
      steps: [5, 10, 25, 50]
      stepInterval: 1m
      match:
        header: {name: x-canary, value: insider}
  analysis:
    interval: 1m
    failureLimit: 2
    minRequests: 50
    metrics:
      - {name: error-rate, max: 1}
      - {name: latency-p99, max: 500}
      - name: queue-depth
        query: 'max(app_queue_depth{namespace="{{ namespace }}",slot="{{ candidate_slot }}"})'
        max: 100
  promotion: auto
  progressDeadline: 10m
"#;

fn design_spec() -> RolloutSpec {
    let rollout: serde_json::Value = serde_saphyr::from_str(DESIGN_ROLLOUT).unwrap();
    assert!(RolloutSpec::unknown_fields(&rollout["spec"]).is_empty());
    serde_json::from_value(rollout["spec"].clone()).unwrap()
}

fn presets() -> Presets {
    Presets::embedded().unwrap()
}

#[test]
fn the_design_example_resolves() {
    let plan = resolve(&design_spec(), &presets()).unwrap();
    assert_eq!(plan.target, "reporting");
    assert_eq!(
        plan.service,
        ServicePlan {
            name: "reporting".into(),
            port: 80,
            target_port: Some(IntOrString::Int(8080)),
        }
    );
    let StrategyPlan::Canary(canary) = &plan.strategy else {
        panic!("canary expected: {plan:?}");
    };
    assert_eq!(canary.ingress, "erp-ingress");
    assert_eq!(canary.steps, vec![5, 10, 25, 50]);
    assert_eq!(canary.step_interval, Duration::from_secs(60));
    assert_eq!(
        canary.scale_down_delay,
        Duration::from_secs(30),
        "from the preset"
    );
    let header = canary
        .traffic_match
        .as_ref()
        .unwrap()
        .header
        .as_ref()
        .unwrap();
    assert_eq!(header.value.as_deref(), Some("insider"));
    let a = &plan.analysis;
    assert_eq!(a.interval, Duration::from_secs(60));
    assert_eq!(
        (a.failure_limit, a.inconclusive_limit, a.error_limit),
        (2, 5, 3)
    );
    assert_eq!(a.min_requests, 50);
    assert!(
        a.requests_query
            .contains("nginx_ingress_controller_requests")
    );
    let names: Vec<_> = a
        .metrics
        .iter()
        .map(|m| (m.name.as_str(), m.unit.as_str(), m.max))
        .collect();
    assert_eq!(
        names,
        vec![
            ("error-rate", "percent", Some(1.0)),
            ("latency-p99", "ms", Some(500.0)),
            ("queue-depth", "", Some(100.0)),
        ]
    );
    assert!(a.metrics[2].query.starts_with("max(app_queue_depth{"));
    assert_eq!(plan.promotion, Promotion::Auto);
    assert_eq!(plan.progress_deadline, Duration::from_secs(600));
}

fn minimal_canary() -> RolloutSpec {
    let mut spec = design_spec();
    spec.strategy.preset = None;
    spec.analysis = None;
    spec.promotion = None;
    spec.progress_deadline = None;
    let canary = spec.strategy.canary.as_mut().unwrap();
    canary.steps = None;
    canary.step_interval = None;
    canary.match_ = None;
    spec
}

#[test]
fn a_canary_without_preset_gets_nginx_canary() {
    let plan = resolve(&minimal_canary(), &presets()).unwrap();
    let StrategyPlan::Canary(canary) = &plan.strategy else {
        panic!()
    };
    assert_eq!(canary.steps, vec![5, 10, 25, 50]);
    assert_eq!(plan.analysis.metrics.len(), 2);
    assert_eq!(plan.analysis.min_requests, 50);
}

#[test]
fn overrides_win_and_bounds_fall_back_to_the_preset() {
    let mut spec = minimal_canary();
    spec.strategy.canary.as_mut().unwrap().steps = Some(vec![Weight(20), Weight(100)]);
    spec.analysis = Some(AnalysisSpec {
        min_requests: Some(0),
        metrics: vec![MetricSpec {
            name: "latency-p99".into(),
            query: None,
            max: None,
            min: None,
        }],
        ..AnalysisSpec::default()
    });
    spec.promotion = Some(Promotion::Manual);
    let plan = resolve(&spec, &presets()).unwrap();
    let StrategyPlan::Canary(canary) = &plan.strategy else {
        panic!()
    };
    assert_eq!(canary.steps, vec![20, 100]);
    assert_eq!(plan.analysis.min_requests, 0);
    assert_eq!(plan.analysis.failure_limit, 2, "from the preset");
    assert_eq!(plan.analysis.metrics.len(), 1);
    assert_eq!(plan.analysis.metrics[0].max, Some(500.0));
    assert_eq!(plan.promotion, Promotion::Manual);
}

#[test]
fn blue_green_resolves_with_app_metrics() {
    let mut spec = minimal_canary();
    spec.strategy.canary = None;
    spec.strategy.blue_green = Some(BlueGreenSpec {
        preview_duration: Some("2m".into()),
        ..BlueGreenSpec::default()
    });
    let plan = resolve(&spec, &presets()).unwrap();
    assert_eq!(
        plan.strategy,
        StrategyPlan::BlueGreen(BlueGreenPlan {
            preview_duration: Duration::from_secs(120),
            post_switch_duration: Duration::ZERO,
            scale_down_delay: Duration::from_secs(30),
        })
    );
    assert!(plan.analysis.requests_query.contains("http_requests_total"));
    assert_eq!(plan.analysis.metrics[0].name, "app-error-rate");
}

/// Resolves a spec changed by `change` and returns the error message.
fn problems(change: impl FnOnce(&mut RolloutSpec)) -> String {
    let mut spec = design_spec();
    change(&mut spec);
    resolve(&spec, &presets())
        .expect_err("spec must be invalid")
        .to_string()
}

fn canary(spec: &mut RolloutSpec) -> &mut CanarySpec {
    spec.strategy.canary.as_mut().unwrap()
}

fn metric(spec: &mut RolloutSpec, i: usize) -> &mut MetricSpec {
    &mut spec.analysis.as_mut().unwrap().metrics[i]
}

#[test]
fn each_kind_of_invalid_spec_names_its_field() {
    type Change = Box<dyn FnOnce(&mut RolloutSpec)>;
    let cases: Vec<(Change, &str)> = vec![
        (
            Box::new(|s| s.strategy.blue_green = Some(BlueGreenSpec::default())),
            "spec.strategy: give exactly one of canary or blueGreen, not both",
        ),
        (
            Box::new(|s| {
                s.strategy.canary = None;
                s.strategy.preset = None;
            }),
            "spec.strategy: give exactly one of canary or blueGreen (or a preset)",
        ),
        (
            Box::new(|s| canary(s).steps = Some(vec![Weight(5), Weight(50), Weight(10)])),
            "spec.strategy.canary.steps: weights must rise strictly, each within 1..=100, got [5, 50, 10]",
        ),
        (
            Box::new(|s| canary(s).steps = Some(vec![Weight(0), Weight(101)])),
            "spec.strategy.canary.steps: weights must rise strictly, each within 1..=100, got [0, 101]",
        ),
        (
            Box::new(|s| canary(s).steps = Some(vec![])),
            "spec.strategy.canary.steps: give at least one weight",
        ),
        (
            Box::new(|s| metric(s, 1).name = "latancy-p99".into()),
            "spec.analysis.metrics[1]: unknown metric \"latancy-p99\": known preset metrics are app-error-rate, app-latency-p99, error-rate, latency-p99, or give a query",
        ),
        (
            Box::new(|s| s.strategy.preset = Some("nginx-canry".into())),
            "spec.strategy.preset: unknown preset \"nginx-canry\"; presets: blue-green, nginx-canary",
        ),
        (
            Box::new(|s| metric(s, 2).max = None),
            "spec.analysis.metrics[2]: queue-depth needs a bound: give max or min",
        ),
        (
            Box::new(|s| canary(s).step_interval = Some("1 minute".into())),
            "spec.strategy.canary.stepInterval: invalid duration \"1 minute\"",
        ),
        (
            Box::new(|s| s.progress_deadline = Some("10".into())),
            "spec.progressDeadline: invalid duration \"10\": \"10\" has no unit",
        ),
        (
            Box::new(|s| s.progress_deadline = Some("0s".into())),
            "spec.progressDeadline: must be above zero",
        ),
        (
            Box::new(|s| s.analysis.as_mut().unwrap().interval = Some("500ms".into())),
            "spec.analysis.interval: must be at least 1s, got 500ms",
        ),
        (
            Box::new(|s| metric(s, 2).query = Some("up{ns=\"{{ namespace }\"}".into())),
            "spec.analysis.metrics[2].query: unterminated",
        ),
        (
            Box::new(|s| metric(s, 2).query = Some("up{ns=\"{{ namespase }}\"}".into())),
            "spec.analysis.metrics[2].query: unknown template variable \"namespase\"",
        ),
        (
            Box::new(|s| metric(s, 1).name = "error-rate".into()),
            "spec.analysis.metrics[1]: metric \"error-rate\" is listed twice",
        ),
        (
            Box::new(|s| {
                metric(s, 0).min = Some(2.0);
            }),
            "spec.analysis.metrics[0]: min 2 is above max 1: no value could pass",
        ),
        (
            Box::new(|s| metric(s, 0).max = Some(f64::INFINITY)),
            "spec.analysis.metrics[0].max: must be a finite number",
        ),
        (
            Box::new(|s| metric(s, 0).name = " ".into()),
            "spec.analysis.metrics[0]: give the metric a name",
        ),
        (
            Box::new(|s| canary(s).ingress_ref = None),
            "spec.strategy.canary.ingressRef: the canary strategy needs the Ingress",
        ),
        (
            Box::new(|s| canary(s).ingress_ref.as_mut().unwrap().name = "Erp_Ingress".into()),
            "spec.strategy.canary.ingressRef.name: \"Erp_Ingress\" is not an Ingress name",
        ),
        (
            Box::new(|s| s.target_ref.name = "Reporting".into()),
            "spec.targetRef.name: \"Reporting\" is not a Deployment name",
        ),
        (
            Box::new(|s| s.service.name = "a".repeat(57)),
            "spec.service.name: \"aaaa",
        ),
        (
            Box::new(|s| s.service.name = "reporting.v2".into()),
            "spec.service.name: \"reporting.v2\" is not a Service name",
        ),
        (
            Box::new(|s| s.service.port = 0),
            "spec.service.port: must be 1..=65535, got 0",
        ),
        (
            Box::new(|s| s.service.target_port = Some(IntOrString::String("HTTP port".into()))),
            "spec.service.targetPort: \"HTTP port\" is not a port name",
        ),
        (
            Box::new(|s| {
                canary(s).match_ = Some(TrafficMatch {
                    header: None,
                    cookie: None,
                })
            }),
            "spec.strategy.canary.match: give a header or a cookie",
        ),
        (
            Box::new(|s| {
                canary(s).match_ = Some(TrafficMatch {
                    header: Some(HeaderMatch {
                        name: "x canary".into(),
                        value: Some("a".into()),
                        pattern: Some("b".into()),
                    }),
                    cookie: None,
                })
            }),
            "spec.strategy.canary.match.header.name: \"x canary\" is not a header name ingress-nginx accepts: letters, digits and -._~/: only; spec.strategy.canary.match.header: give value or pattern, not both",
        ),
        (
            Box::new(|s| {
                canary(s)
                    .match_
                    .as_mut()
                    .unwrap()
                    .header
                    .as_mut()
                    .unwrap()
                    .value = Some("a\nb".into())
            }),
            "spec.strategy.canary.match.header.value: \"a\\nb\" is not a header value ingress-nginx accepts: letters, digits and -._~/: only",
        ),
        (
            Box::new(|s| {
                canary(s).match_ = Some(TrafficMatch {
                    header: Some(HeaderMatch {
                        name: "x-canary".into(),
                        value: Some("insider users".into()),
                        pattern: None,
                    }),
                    cookie: None,
                })
            }),
            "spec.strategy.canary.match.header.value: \"insider users\" is not a header value ingress-nginx accepts",
        ),
        (
            Box::new(|s| {
                canary(s).match_ = Some(TrafficMatch {
                    header: Some(HeaderMatch {
                        name: "x-canary".into(),
                        value: None,
                        pattern: Some("^(insider".into()),
                    }),
                    cookie: None,
                })
            }),
            "spec.strategy.canary.match.header.pattern: \"^(insider\" is not a regular expression",
        ),
        (
            Box::new(|s| {
                canary(s).match_ = Some(TrafficMatch {
                    header: Some(HeaderMatch {
                        name: "x-canary".into(),
                        value: None,
                        pattern: Some("insider, beta".into()),
                    }),
                    cookie: None,
                })
            }),
            "spec.strategy.canary.match.header.pattern: \"insider, beta\" is not a pattern ingress-nginx accepts",
        ),
        (
            Box::new(|s| {
                canary(s).match_ = Some(TrafficMatch {
                    header: None,
                    cookie: Some(crate::spec::CookieMatch {
                        name: "beta=1".into(),
                    }),
                })
            }),
            "spec.strategy.canary.match.cookie.name: \"beta=1\" is not a cookie name ingress-nginx accepts",
        ),
        (
            Box::new(|s| {
                s.strategy.canary = None;
                s.strategy.blue_green = Some(BlueGreenSpec::default());
            }),
            "spec.strategy.preset: preset \"nginx-canary\" is a canary strategy, but spec.strategy gives blueGreen",
        ),
        (
            Box::new(|s| {
                s.strategy.preset = None;
                s.strategy.canary = None;
                s.strategy.blue_green = Some(BlueGreenSpec::default());
            }),
            "spec.analysis.metrics[0]: error-rate measures ingress traffic, which blueGreen has none of; use app-error-rate or a query",
        ),
        (
            Box::new(|s| {
                s.strategy.preset = None;
                s.strategy.canary = None;
                s.strategy.blue_green = Some(BlueGreenSpec::default());
                let a = s.analysis.as_mut().unwrap();
                a.metrics.truncate(0);
                a.metrics.push(MetricSpec {
                    name: "x".into(),
                    query: Some("up{i=\"{{ ingress }}\"}".into()),
                    max: Some(1.0),
                    min: None,
                });
            }),
            "spec.analysis.metrics[0]: x uses {{ ingress }}, which blueGreen has none of",
        ),
        (
            Box::new(|s| {
                s.strategy.blue_green = Some(BlueGreenSpec {
                    scale_down_delay: Some("x".into()),
                    ..Default::default()
                })
            }),
            "spec.strategy: give exactly one",
        ),
        (
            Box::new(|s| {
                s.strategy.preset = None;
                s.strategy.canary = None;
                s.strategy.blue_green = Some(BlueGreenSpec::default());
                metric(s, 0).name = "app-error-rat".into();
            }),
            "spec.analysis.metrics[0]: unknown metric \"app-error-rat\": known preset metrics are app-error-rate, app-latency-p99, or give a query",
        ),
    ];
    for (change, expected) in cases {
        let message = problems(change);
        assert!(
            message.contains(expected),
            "expected {expected:?} in:\n{message}"
        );
        assert!(!message.contains('\n'), "one line: {message}");
    }
}

#[test]
fn all_problems_are_reported_at_once() {
    let err = {
        let mut spec = design_spec();
        canary(&mut spec).steps = Some(vec![Weight(50), Weight(10)]);
        metric(&mut spec, 1).name = "latancy-p99".into();
        spec.progress_deadline = Some("soon".into());
        resolve(&spec, &presets()).unwrap_err()
    };
    assert_eq!(err.problems.len(), 3, "{err}");
    assert!(
        err.problems[0].starts_with("spec.strategy.canary.steps"),
        "{err}"
    );
    assert!(
        err.problems[1].starts_with("spec.analysis.metrics[1]"),
        "{err}"
    );
    assert!(
        err.problems[2].starts_with("spec.progressDeadline"),
        "{err}"
    );
    assert_eq!(err.to_string(), err.problems.join("; "));
}

#[test]
fn durations_longer_than_a_year_are_refused() {
    let mut spec: RolloutSpec = serde_json::from_value(serde_json::json!({
        "targetRef": {"name": "reporting"},
        "service": {"name": "reporting-service", "port": 80},
        "strategy": {"blueGreen": {"previewDuration": "100000000000h"}},
    }))
    .expect("a spec");
    let problems = resolve(&spec, &Presets::embedded().expect("presets"))
        .expect_err("refused")
        .to_string();
    assert!(
        problems.contains("spec.strategy.blueGreen.previewDuration"),
        "{problems}"
    );
    assert!(problems.contains("at most 8760h"), "{problems}");
    spec.strategy.blue_green = None;
    spec.strategy.preset = Some("blue-green".into());
    assert!(resolve(&spec, &Presets::embedded().expect("presets")).is_ok());
}
