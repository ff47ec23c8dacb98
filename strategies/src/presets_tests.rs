use super::*;
use crate::spec::{MetricSpec, Weight};

#[test]
fn the_embedded_presets_load() {
    let presets = Presets::embedded().expect("embedded presets are valid");
    assert_eq!(
        presets.strategy_names().collect::<Vec<_>>(),
        vec!["blue-green", "nginx-canary"]
    );
    assert_eq!(
        presets.metric_names().collect::<Vec<_>>(),
        vec![
            "app-error-rate",
            "app-latency-p99",
            "error-rate",
            "latency-p99"
        ]
    );
}

#[test]
fn nginx_canary_is_what_the_design_says() {
    let presets = Presets::embedded().unwrap();
    let preset = presets.strategy("nginx-canary").unwrap();
    let canary = preset.strategy.canary.as_ref().unwrap();
    assert_eq!(
        canary.steps,
        Some(vec![Weight(5), Weight(10), Weight(25), Weight(50)])
    );
    assert_eq!(canary.step_interval.as_deref(), Some("1m"));
    assert_eq!(canary.scale_down_delay.as_deref(), Some("30s"));
    let analysis = preset.analysis.as_ref().unwrap();
    assert_eq!(analysis.interval.as_deref(), Some("1m"));
    assert_eq!(
        (
            analysis.failure_limit,
            analysis.inconclusive_limit,
            analysis.error_limit,
            analysis.min_requests
        ),
        (Some(2), Some(5), Some(3), Some(50))
    );
    let bound = |name: &str, max: f64| MetricSpec {
        name: name.into(),
        query: None,
        max: Some(max),
        min: None,
    };
    assert_eq!(
        analysis.metrics,
        vec![bound("error-rate", 1.0), bound("latency-p99", 500.0)]
    );
    assert_eq!(preset.promotion, Some(Promotion::Auto));
    assert_eq!(preset.progress_deadline.as_deref(), Some("10m"));
}

#[test]
fn metric_templates_measure_the_candidate_on_the_main_ingress() {
    let presets = Presets::embedded().unwrap();
    let labels =
        r#"namespace="{{ namespace }}",ingress="{{ ingress }}",service="{{ service }}",canary!="""#;
    let error_rate = presets.metric("error-rate").unwrap();
    assert_eq!(error_rate.unit, "percent");
    assert!(error_rate.needs_ingress);
    assert!(error_rate.query.contains(labels), "{}", error_rate.query);
    assert!(error_rate.query.contains(r#"status=~"5..""#));
    assert!(error_rate.query.contains("[{{ interval }}]"));
    assert!(!error_rate.query.contains('\n'), "folded into one line");
    let p99 = presets.metric("latency-p99").unwrap();
    assert_eq!(p99.unit, "ms");
    assert!(
        p99.query
            .contains("histogram_quantile(0.99, sum by (le) (rate(")
    );
    assert!(
        p99.query
            .contains("nginx_ingress_controller_request_duration_seconds_bucket{")
    );
    assert!(p99.query.contains(labels));
    assert_eq!(
        presets.request_counts().ingress,
        format!("sum(increase(nginx_ingress_controller_requests{{{labels}}}[{{{{ interval }}}}]))")
    );
    for name in ["app-error-rate", "app-latency-p99"] {
        let metric = presets.metric(name).unwrap();
        assert!(!metric.needs_ingress);
        assert!(
            metric
                .query
                .contains(r#"pod=~"{{ name }}-{{ candidate_slot }}-.*""#)
        );
    }
    assert!(
        presets
            .request_counts()
            .pods
            .contains("http_requests_total{")
    );
}

const METRICS: (&str, &str) = METRICS_FILE;

fn with_strategy(text: &str) -> Result<Presets, PresetError> {
    Presets::from_yaml(&[("mine.yaml", text)], METRICS)
}

const MINE: &str = "name: mine\ndescription: d\nstrategy:\n  canary:\n    steps: [10]\n";

#[test]
fn a_small_preset_loads() {
    let presets = with_strategy(MINE).unwrap();
    assert!(presets.strategy("mine").unwrap().is_canary());
}

#[test]
fn preset_files_are_checked() {
    let cases = [
        (
            MINE.replace("steps", "stepz"),
            "unknown fields strategy.canary.stepz",
        ),
        (
            MINE.replace("name: mine", "name: other"),
            "must be the file's name",
        ),
        (
            MINE.replace("canary:\n    steps: [10]", "{}"),
            "exactly one of canary",
        ),
        (
            MINE.replace("[10]", "[10, 5]"),
            "weights must rise strictly",
        ),
        (
            MINE.replace("steps: [10]", "steps: [10]\n    stepInterval: 1y"),
            "unknown unit",
        ),
        (
            format!("{MINE}analysis:\n  metrics: [{{name: nope, max: 1}}]\n"),
            "unknown metric \"nope\"",
        ),
        (
            MINE.replace("steps: [10]", "steps: [10]\n    ingressRef: {name: x}"),
            "only a Rollout can name its Ingress",
        ),
        ("name: [".to_string(), "mine.yaml"),
    ];
    for (text, expected) in cases {
        let err = with_strategy(&text).unwrap_err().to_string();
        assert!(err.contains("mine.yaml"), "{err}");
        assert!(err.contains(expected), "{text}\n=> {err}");
    }
}

#[test]
fn metric_files_are_checked() {
    let bad_template = METRICS_FILE.1.replace("{{ namespace }}", "{{ namespaec }}");
    let err = Presets::from_yaml(&[], ("metrics.yaml", &bad_template)).unwrap_err();
    assert!(err.to_string().contains("namespaec"), "{err}");
    let twice = format!(
        "{}\n  - {{name: error-rate, unit: x, description: d, needsIngress: true, query: up}}\n",
        METRICS_FILE.1
    );
    let err = Presets::from_yaml(&[], ("metrics.yaml", &twice)).unwrap_err();
    assert!(err.to_string().contains("defined twice"), "{err}");
}
