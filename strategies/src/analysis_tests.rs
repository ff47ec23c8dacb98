use super::*;
use std::time::Duration;

fn metric(name: &str, unit: &str, max: Option<f64>, min: Option<f64>) -> MetricPlan {
    MetricPlan {
        name: name.into(),
        query: "up".into(),
        unit: unit.into(),
        max,
        min,
    }
}

fn plan() -> AnalysisPlan {
    AnalysisPlan {
        interval: Duration::from_secs(60),
        failure_limit: 2,
        inconclusive_limit: 5,
        error_limit: 3,
        min_requests: 50,
        requests_query: "up".into(),
        metrics: vec![
            metric("error-rate", "percent", Some(1.0), None),
            metric("latency-p99", "ms", Some(500.0), None),
        ],
    }
}

fn readings(error_rate: Reading, p99: Reading) -> Vec<(String, Reading)> {
    vec![
        ("error-rate".into(), error_rate),
        ("latency-p99".into(), p99),
    ]
}

fn verdicts(outcome: &CheckOutcome) -> Vec<Verdict> {
    outcome.metrics.iter().map(|m| m.verdict).collect()
}

use Reading::{Failed, NoData, Value};

#[test]
fn a_healthy_candidate_passes() {
    let outcome = judge_check(&plan(), &Value(800.0), &readings(Value(0.3), Value(212.4)));
    assert_eq!(outcome.verdict, Verdict::Pass);
    assert_eq!(outcome.requests, Some(800.0));
    assert_eq!(
        one_line(&outcome),
        "error-rate 0.3% <= 1%, latency-p99 212.4ms <= 500ms"
    );
    let results = outcome.results(None);
    assert_eq!(results[0].bound, "<= 1%");
    assert_eq!(results[1].value, Some(212.4));
    assert_eq!(results[1].verdict, Verdict::Pass);
}

#[test]
fn a_crossed_bound_fails() {
    let outcome = judge_check(&plan(), &Value(800.0), &readings(Value(1.7), Value(212.0)));
    assert_eq!(outcome.verdict, Verdict::Fail);
    assert_eq!(verdicts(&outcome), vec![Verdict::Fail, Verdict::Pass]);
    assert_eq!(
        one_line(&outcome),
        "error-rate 1.7% > 1% (fail), latency-p99 212ms <= 500ms"
    );
    let at_bound = judge_check(&plan(), &Value(800.0), &readings(Value(1.0), Value(500.0)));
    assert_eq!(at_bound.verdict, Verdict::Pass, "the bound itself passes");
}

#[test]
fn an_infinite_answer_is_an_error_never_a_pass_whatever_the_bound() {
    for infinite in [f64::INFINITY, f64::NEG_INFINITY] {
        let outcome = judge_check(
            &plan(),
            &Value(800.0),
            &readings(Value(0.0), Value(infinite)),
        );
        assert_eq!(outcome.verdict, Verdict::Error, "{infinite}");
        let latency = &outcome.metrics[1];
        assert_eq!((latency.verdict, latency.value), (Verdict::Error, None));
        assert!(
            latency
                .reason
                .as_deref()
                .is_some_and(|r| r.contains("Inf, which is no measurement")),
            "{:?}",
            latency.reason
        );
    }
    // Against a min, +Inf would have passed.
    let mut floor = plan();
    floor.metrics[0].max = None;
    floor.metrics[0].min = Some(99.0);
    let outcome = judge_check(
        &floor,
        &Value(800.0),
        &readings(Value(f64::INFINITY), Value(1.0)),
    );
    assert_eq!(outcome.metrics[0].verdict, Verdict::Error);
    // A request count of +Inf opens no gate: the whole check is an error.
    let counted = judge_check(
        &plan(),
        &Value(f64::INFINITY),
        &readings(Value(0.0), Value(1.0)),
    );
    assert_eq!(counted.verdict, Verdict::Error);
    assert_eq!(counted.requests, None);
    assert!(
        counted
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("+Inf, which is no count"))
    );
}

#[test]
fn too_little_traffic_is_inconclusive_for_every_metric() {
    let outcome = judge_check(&plan(), &Value(12.0), &readings(Value(50.0), Value(9000.0)));
    assert_eq!(outcome.verdict, Verdict::Inconclusive);
    assert_eq!(verdicts(&outcome), vec![Verdict::Inconclusive; 2]);
    assert_eq!(
        outcome.reason.as_deref(),
        Some("12 candidate requests < minRequests 50")
    );
    assert_eq!(
        one_line(&outcome),
        "inconclusive: 12 candidate requests < minRequests 50"
    );
    assert_eq!(
        outcome.metrics[0].value,
        Some(50.0),
        "the value is still shown"
    );

    let edge = judge_check(&plan(), &Value(49.6), &readings(Value(0.1), Value(1.0)));
    assert_eq!(edge.verdict, Verdict::Inconclusive, "49.6 is fewer than 50");
    for requests in [NoData, Value(f64::NAN)] {
        let outcome = judge_check(&plan(), &requests, &readings(Value(0.1), Value(1.0)));
        assert_eq!(outcome.verdict, Verdict::Inconclusive);
        assert!(
            one_line(&outcome).contains("no data for candidate requests"),
            "{outcome:?}"
        );
        assert_eq!(outcome.requests, None);
    }
}

#[test]
fn without_min_requests_the_count_is_not_needed() {
    let mut plan = plan();
    plan.min_requests = 0;
    let outcome = judge_check(
        &plan,
        &Failed("timeout".into()),
        &readings(Value(0.1), Value(1.0)),
    );
    assert_eq!(outcome.verdict, Verdict::Pass);
}

#[test]
fn no_data_is_inconclusive_never_a_failure() {
    let outcome = judge_check(&plan(), &Value(800.0), &readings(NoData, Value(f64::NAN)));
    assert_eq!(outcome.verdict, Verdict::Inconclusive);
    assert_eq!(verdicts(&outcome), vec![Verdict::Inconclusive; 2]);
    assert_eq!(outcome.metrics[1].value, None);
    assert_eq!(
        one_line(&outcome),
        "error-rate: no data (inconclusive), latency-p99: no data (NaN) (inconclusive)"
    );
}

#[test]
fn failed_queries_are_errors() {
    let outcome = judge_check(
        &plan(),
        &Value(800.0),
        &readings(Failed("connection refused".into()), Value(1.0)),
    );
    assert_eq!(outcome.verdict, Verdict::Error);
    assert_eq!(
        one_line(&outcome),
        "error-rate: query failed: connection refused (error), latency-p99 1ms <= 500ms"
    );
    // A failed query stays an error even when traffic is too low to judge the rest.
    let low = judge_check(
        &plan(),
        &Value(3.0),
        &readings(Failed("bad".into()), Value(1.0)),
    );
    assert_eq!(verdicts(&low), vec![Verdict::Error, Verdict::Inconclusive]);
    assert_eq!(low.verdict, Verdict::Error);
    // The count itself failing makes every metric an error.
    let count = judge_check(
        &plan(),
        &Failed("timeout".into()),
        &readings(Value(0.1), Value(1.0)),
    );
    assert_eq!(count.verdict, Verdict::Error);
    assert_eq!(
        one_line(&count),
        "error: candidate request count query failed: timeout"
    );
    // A metric the controller did not query is an error, not a pass.
    let missing = judge_check(
        &plan(),
        &Value(800.0),
        &readings(Value(0.1), Value(1.0))[..1],
    );
    assert_eq!(verdicts(&missing), vec![Verdict::Pass, Verdict::Error]);
}

#[test]
fn fail_outranks_error_outranks_inconclusive() {
    let outcome = judge_check(
        &plan(),
        &Value(800.0),
        &readings(Value(5.0), Failed("x".into())),
    );
    assert_eq!(outcome.verdict, Verdict::Fail);
    let outcome = judge_check(
        &plan(),
        &Value(800.0),
        &readings(NoData, Failed("x".into())),
    );
    assert_eq!(outcome.verdict, Verdict::Error);
}

#[test]
fn min_bounds() {
    let mut plan = plan();
    plan.metrics = vec![
        metric("success", "", None, Some(99.0)),
        metric("q", "jobs", Some(5.0), Some(1.0)),
    ];
    let outcome = judge_check(
        &plan,
        &Value(800.0),
        &[("success".into(), Value(97.5)), ("q".into(), Value(0.0))],
    );
    assert_eq!(verdicts(&outcome), vec![Verdict::Fail, Verdict::Fail]);
    assert_eq!(outcome.metrics[0].bound, ">= 99");
    assert_eq!(outcome.metrics[1].bound, ">= 1 jobs and <= 5 jobs");
    assert_eq!(
        one_line(&outcome),
        "success 97.5 < 99 (fail), q 0 jobs < 1 jobs (fail)"
    );
}

#[test]
fn numbers_read_well() {
    for (value, text) in [
        (0.0, "0"),
        (1.0, "1"),
        (0.3, "0.3"),
        (0.30000000000000004, "0.3"),
        (212.456, "212.46"),
        (0.001234, "0.00123"),
        (-0.0, "0"),
        (1e-20, "0"),
        (f64::NAN, "NaN"),
        (f64::NEG_INFINITY, "-Inf"),
    ] {
        assert_eq!(format_number(value), text, "{value}");
    }
    assert_eq!(format_value(0.3, "percent"), "0.3%");
    assert_eq!(format_value(212.0, "ms"), "212ms");
    assert_eq!(
        bound_text(&metric("x", "ms", Some(500.0), None)),
        "<= 500ms"
    );
}

#[test]
fn no_metrics_still_gates_on_traffic() {
    let mut plan = plan();
    plan.metrics.clear();
    assert_eq!(
        judge_check(&plan, &Value(100.0), &[]).verdict,
        Verdict::Pass
    );
    let low = judge_check(&plan, &Value(1.0), &[]);
    assert_eq!(low.verdict, Verdict::Inconclusive);
    assert_eq!(
        one_line(&low),
        "inconclusive: 1 candidate requests < minRequests 50"
    );
}

#[test]
fn the_bounds_themselves_pass_a_min_and_the_request_floor() {
    // Exactly minRequests candidate requests are enough.
    let enough = judge_check(&plan(), &Value(50.0), &readings(Value(0.5), Value(100.0)));
    assert_eq!(enough.verdict, Verdict::Pass, "{enough:?}");
    let short = judge_check(&plan(), &Value(49.9), &readings(Value(0.5), Value(100.0)));
    assert_eq!(short.verdict, Verdict::Inconclusive);
    // A value exactly at its min passes; just below fails.
    let mut floor = plan();
    floor.metrics[0] = metric("error-rate", "percent", None, Some(99.0));
    let at_min = judge_check(&floor, &Value(800.0), &readings(Value(99.0), Value(100.0)));
    assert_eq!(at_min.metrics[0].verdict, Verdict::Pass, "{at_min:?}");
    let below = judge_check(&floor, &Value(800.0), &readings(Value(98.9), Value(100.0)));
    assert_eq!(below.metrics[0].verdict, Verdict::Fail);
    assert_eq!(below.metrics[0].reason.as_deref(), Some("98.9% < 99%"));
}
