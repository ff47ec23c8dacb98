//! Scenario tests of the whole engine: views in, exposition out.

use std::time::Instant;

use serde_json::json;

use super::metrics::{Sample, parse_exposition};
use super::*;

mod blue_green;
mod strictness;

const CANARY_UPSTREAM: &str = "prod-shop-canary-80";

/// The IngressClass the sandbox creates at start.
fn nginx_class() -> Vec<Arc<Value>> {
    vec![Arc::new(json!({
        "metadata": {"name": "nginx", "creationTimestamp": "2024-01-01T00:00:00Z"},
        "spec": {"controller": class::CONTROLLER}
    }))]
}

fn a(key: &str) -> String {
    format!("nginx.ingress.kubernetes.io/{key}")
}

fn service(name: &str, track: &str) -> Arc<Value> {
    Arc::new(json!({
        "metadata": {"name": name, "namespace": "prod", "uid": format!("uid-{name}")},
        "spec": {"selector": {"app": "shop", "track": track},
                 "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}
    }))
}

fn pod(name: &str, track: &str, annotations: &[(&str, &str)], ready: bool) -> PodView {
    let map = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    PodView {
        namespace: "prod".into(),
        name: name.into(),
        labels: map(&[
            ("app", "shop"),
            ("track", track),
            ("pod-template-hash", "x"),
        ]),
        annotations: map(annotations),
        images: vec![format!("registry.example/shop:{track}")],
        ready,
    }
}

fn path(p: &str, ty: &str, svc: &str, port: Value) -> Value {
    json!({"path": p, "pathType": ty, "backend": {"service": {"name": svc, "port": port}}})
}

fn ingress(name: &str, created: &str, annotations: Value, paths: Value) -> Arc<Value> {
    Arc::new(json!({
        "metadata": {"name": name, "namespace": "prod", "uid": format!("uid-{name}"),
                     "creationTimestamp": created, "annotations": annotations},
        "spec": {"ingressClassName": "nginx",
                 "rules": [{"host": "shop.example", "http": {"paths": paths}}]}
    }))
}

fn main_ingress(extra: &[(&str, &str)]) -> Arc<Value> {
    let mut ann = json!({source::RPS: "1000"});
    for (k, v) in extra {
        ann[*k] = json!(v);
    }
    ingress(
        "shop",
        "2024-01-01T00:00:00Z",
        ann,
        json!([path("/", "Prefix", "shop", json!({"number": 80}))]),
    )
}

fn canary_ingress(name: &str, created: &str, target: &str, extra: &[(String, &str)]) -> Arc<Value> {
    let mut ann = json!({a("canary"): "true"});
    for (k, v) in extra {
        ann[k.as_str()] = json!(v);
    }
    ingress(
        name,
        created,
        ann,
        json!([path("/", "Prefix", target, json!({"name": "http"}))]),
    )
}

/// Stable (two pods) and canary (one pod) Services behind `ingresses`.
fn view(ingresses: Vec<Arc<Value>>) -> ClusterView {
    ClusterView {
        ingress_classes: nginx_class(),
        ingresses,
        services: vec![service("shop", "stable"), service("shop-canary", "canary")],
        pods: vec![
            pod("shop-aaa-1", "stable", &[], true),
            pod("shop-aaa-2", "stable", &[], true),
            pod("shop-bbb-1", "canary", &[], true),
        ],
    }
}

fn run(view: &ClusterView, seconds: u64) -> (TrafficEngine, Vec<Sample>) {
    let mut engine = TrafficEngine::new(7, Vec::new());
    engine.advance(view, Duration::from_secs(seconds));
    let samples = parse_exposition(&engine.render_metrics());
    (engine, samples)
}

fn sum(samples: &[Sample], name: &str, filter: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| {
            s.name == name
                && filter
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).is_some_and(|l| l == v))
        })
        .map(|s| s.value)
        .sum()
}

const REQS: &str = "nginx_ingress_controller_requests";

/// Share of 2,000 main-Ingress requests that the canary served.
fn canary_share(main_extra: &[(&str, &str)], canary_extra: &[(String, &str)]) -> f64 {
    let canary = canary_ingress(
        "shop-canary",
        "2024-01-02T00:00:00Z",
        "shop-canary",
        canary_extra,
    );
    let (_, samples) = run(&view(vec![main_ingress(main_extra), canary]), 2);
    assert_eq!(sum(&samples, REQS, &[]), 2000.0);
    sum(&samples, REQS, &[("canary", CANARY_UPSTREAM)]) / 2000.0
}

fn near(share: f64, expected: f64, tolerance: f64) -> bool {
    (share - expected).abs() <= tolerance
}

#[test]
fn weight_20_of_100_lands_near_20_percent() {
    let (engine, samples) = {
        let canary = canary_ingress(
            "shop-canary",
            "",
            "shop-canary",
            &[(a("canary-weight"), "20")],
        );
        run(&view(vec![main_ingress(&[]), canary]), 10)
    };
    assert_eq!(engine.total_requests(), 10_000);
    let share = sum(&samples, REQS, &[("canary", CANARY_UPSTREAM)]) / 10_000.0;
    assert!(near(share, 0.20, 0.02), "{share}");
    // ingress-nginx reports canary requests under the main Ingress and Service.
    let canary_labels = &samples
        .iter()
        .find(|s| s.labels.get("canary").is_some_and(|c| !c.is_empty()))
        .unwrap()
        .labels;
    assert_eq!(
        (
            canary_labels["ingress"].as_str(),
            canary_labels["service"].as_str()
        ),
        ("shop", "shop")
    );
    let app = sum(&samples, "http_requests_total", &[("pod", "shop-bbb-1")]) / 10_000.0;
    assert_eq!(app, share);
}

#[test]
fn weight_total_1000_with_weight_50_is_5_percent() {
    let share = canary_share(
        &[],
        &[
            (a("canary-weight"), "50"),
            (a("canary-weight-total"), "1000"),
        ],
    );
    assert!(near(share, 0.05, 0.015), "{share}");
}

#[test]
fn header_rules_take_precedence_in_order() {
    let h = |v: &'static str| (a("canary-by-header"), v);
    let hdr = |v| (source::REQUEST_HEADERS, v);
    let exact = canary_share(
        &[hdr("X_Canary=insider:0.3,x-canary=other:0.5")],
        &[h("X-Canary"), (a("canary-by-header-value"), "insider")],
    );
    assert!(near(exact, 0.3, 0.04), "exact {exact}");
    let pattern = [h("x-canary"), (a("canary-by-header-pattern"), "^ins")];
    let by_pattern = canary_share(&[hdr("x-canary=insider:0.5")], &pattern);
    assert!(near(by_pattern, 0.5, 0.04), "pattern {by_pattern}");
    let always = canary_share(&[hdr("x-canary=always:0.25")], &[h("x-canary")]);
    assert!(near(always, 0.25, 0.04), "always {always}");
    let never = canary_share(
        &[hdr("x-canary=never:1")],
        &[h("x-canary"), (a("canary-weight"), "100")],
    );
    assert_eq!(never, 0.0);
    // A configured value that does not match falls through to the weight.
    let mismatch = [
        h("x-canary"),
        (a("canary-by-header-value"), "insider"),
        (a("canary-weight"), "100"),
    ];
    assert_eq!(canary_share(&[hdr("x-canary=never:1")], &mismatch), 1.0);
}

#[test]
fn cookie_rules_follow_header_and_beat_weight() {
    let ck = (a("canary-by-cookie"), "Canary");
    let cookies = |v| (source::REQUEST_COOKIES, v);
    let always = canary_share(&[cookies("canary=always:0.4")], std::slice::from_ref(&ck));
    assert!(near(always, 0.4, 0.04), "{always}");
    let never = canary_share(
        &[cookies("canary=never:1")],
        &[ck.clone(), (a("canary-weight"), "100")],
    );
    assert_eq!(never, 0.0);
    let both = [ck.clone(), (a("canary-by-header"), "x-canary")];
    let header_wins = canary_share(
        &[
            cookies("canary=never:1"),
            (source::REQUEST_HEADERS, "x-canary=always:1"),
        ],
        &both,
    );
    assert_eq!(header_wins, 1.0);
    let malformed = canary_share(
        &[
            cookies("canary=always"),
            (source::REQUEST_HEADERS, "x-canary"),
        ],
        &both,
    );
    assert_eq!(malformed, 0.0);
}

#[test]
fn canary_is_ignored_when_path_or_path_type_differs() {
    for (p, ty) in [
        ("/api", "Prefix"),
        ("/", "Exact"),
        ("/", "ImplementationSpecific"),
    ] {
        let canary = ingress(
            "shop-canary",
            "",
            json!({a("canary"): "true", a("canary-weight"): "100"}),
            json!([path(p, ty, "shop-canary", json!({"number": 80}))]),
        );
        let (_, samples) = run(&view(vec![main_ingress(&[]), canary]), 1);
        assert_eq!(sum(&samples, REQS, &[("canary", "")]), 1000.0, "{p} {ty}");
    }
}

#[test]
fn oldest_of_two_canaries_wins() {
    let mut v = view(Vec::new());
    v.services.push(service("shop-v3", "v3"));
    v.pods.push(pod("shop-v3-1", "v3", &[], true));
    for (heavy, light, expect) in [
        ("2024-01-02T00:00:00Z", "2024-01-03T00:00:00Z", 1000.0),
        ("2024-01-04T00:00:00Z", "2024-01-03T00:00:00Z", 0.0),
    ] {
        v.ingresses = vec![
            main_ingress(&[]),
            canary_ingress(
                "heavy",
                heavy,
                "shop-canary",
                &[(a("canary-weight"), "100")],
            ),
            canary_ingress("light", light, "shop-v3", &[(a("canary-weight"), "0")]),
        ];
        let (_, samples) = run(&v, 1);
        assert_eq!(sum(&samples, REQS, &[("canary", CANARY_UPSTREAM)]), expect);
        assert_eq!(sum(&samples, REQS, &[("canary", "prod-shop-v3-80")]), 0.0);
    }
}

#[test]
fn no_ready_pod_means_503_from_the_ingress() {
    let mut v = view(vec![main_ingress(&[])]);
    v.pods.iter_mut().for_each(|p| p.ready = false);
    let (_, samples) = run(&v, 1);
    assert_eq!(
        sum(&samples, REQS, &[("status", "503"), ("service", "shop")]),
        1000.0
    );
    assert_eq!(sum(&samples, "http_requests_total", &[]), 0.0);
    let fast = sum(
        &samples,
        "nginx_ingress_controller_request_duration_seconds_bucket",
        &[("le", "0.005")],
    );
    assert_eq!(fast, 1000.0);

    v.services.clear();
    let (_, samples) = run(&v, 1);
    assert_eq!(sum(&samples, REQS, &[("status", "503")]), 1000.0);
}

#[test]
fn canary_without_ready_pods_leaves_traffic_on_main() {
    let mut v = view(vec![
        main_ingress(&[]),
        canary_ingress("c", "", "shop-canary", &[(a("canary-weight"), "100")]),
    ]);
    v.pods[2].ready = false;
    let (_, samples) = run(&v, 1);
    assert_eq!(
        sum(&samples, REQS, &[("canary", ""), ("status", "200")]),
        1000.0
    );
}

#[test]
fn named_ports_resolve_and_unknown_ones_fail() {
    let canary = canary_ingress("c", "", "shop-canary", &[(a("canary-weight"), "100")]);
    let named_main = ingress(
        "shop",
        "",
        json!({source::RPS: "10"}),
        json!([path("/", "Prefix", "shop", json!({"name": "http"}))]),
    );
    let (_, samples) = run(&view(vec![named_main, canary.clone()]), 1);
    // The canary label carries the resolved number even for a named port.
    assert_eq!(
        sum(
            &samples,
            REQS,
            &[("canary", CANARY_UPSTREAM), ("status", "200")]
        ),
        10.0
    );

    let bad_port = ingress(
        "shop",
        "",
        json!({source::RPS: "10"}),
        json!([path("/", "Prefix", "shop", json!({"name": "grpc"}))]),
    );
    let (_, samples) = run(&view(vec![bad_port]), 1);
    assert_eq!(sum(&samples, REQS, &[("status", "503")]), 10.0);
}

#[test]
fn error_rate_and_latency_come_from_the_serving_pod() {
    let mut v = view(vec![main_ingress(&[])]);
    for p in &mut v.pods {
        p.annotations = [(behavior::ERROR_RATE, "0.1"), (behavior::LATENCY_MS, "40")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
    }
    let (_, samples) = run(&v, 20);
    let errors =
        sum(&samples, REQS, &[("status", "500")]) + sum(&samples, REQS, &[("status", "503")]);
    assert!(near(errors / 20_000.0, 0.1, 0.01), "{errors}");
    assert_eq!(
        errors,
        sum(&samples, "http_requests_total", &[])
            - sum(&samples, "http_requests_total", &[("code", "200")])
    );

    // Median by linear interpolation within buckets, as histogram_quantile does.
    let family = "http_request_duration_seconds_bucket";
    let cumulative = |le: &str| sum(&samples, family, &[("le", le)]) / 20_000.0;
    let (lo, hi) = (cumulative("0.025"), cumulative("0.05"));
    assert!(lo < 0.5 && hi > 0.5, "{lo} {hi}");
    let median = 0.025 + (0.5 - lo) / (hi - lo) * 0.025;
    assert!(near(median, 0.04, 0.004), "median {median}");
    // The tail: about 1% of requests beyond 3.2 × the median.
    assert!(near(1.0 - cumulative("0.1"), 0.034, 0.008));
    let mean = sum(&samples, "http_request_duration_seconds_sum", &[]) / 20_000.0;
    assert!(near(mean, 0.04 * (0.125f64).exp(), 0.003), "mean {mean}");
}

#[test]
fn image_behaviors_override_pod_annotations() {
    let overrides = vec![
        "shop:canary$=error-rate:1".parse().unwrap(),
        "shop=error-rate:0,latency-ms:5".parse().unwrap(),
    ];
    let mut engine = TrafficEngine::new(1, overrides);
    let mut v = view(vec![
        main_ingress(&[]),
        canary_ingress("c", "", "shop-canary", &[(a("canary-weight"), "50")]),
    ]);
    v.pods[2]
        .annotations
        .insert(behavior::ERROR_RATE.into(), "0".into());
    engine.advance(&v, Duration::from_secs(1));
    let samples = parse_exposition(&engine.render_metrics());
    let canary_ok = sum(
        &samples,
        "http_requests_total",
        &[("pod", "shop-bbb-1"), ("code", "200")],
    );
    let stable_errors = sum(&samples, "http_requests_total", &[("pod", "shop-aaa-1")])
        - sum(
            &samples,
            "http_requests_total",
            &[("pod", "shop-aaa-1"), ("code", "200")],
        );
    assert_eq!((canary_ok, stable_errors), (0.0, 0.0));
}

#[test]
fn counts_are_exact_across_many_small_steps() {
    let two_paths = json!([
        path("/", "Prefix", "shop", json!({"number": 80})),
        path("/api", "Prefix", "shop", json!({"number": 80})),
    ]);
    let v = view(vec![ingress(
        "shop",
        "",
        json!({source::RPS: "7.3"}),
        two_paths,
    )]);
    let mut engine = TrafficEngine::new(3, Vec::new());
    for _ in 0..1000 {
        engine.advance(&v, Duration::from_millis(100));
    }
    let samples = parse_exposition(&engine.render_metrics());
    assert_eq!(sum(&samples, REQS, &[("path", "/")]), 730.0);
    assert_eq!(sum(&samples, REQS, &[("path", "/api")]), 730.0);
    assert_eq!(engine.total_requests(), 1460);
}

#[test]
fn canary_ingresses_are_not_sources_and_services_are() {
    let mut v = view(vec![canary_ingress(
        "c",
        "",
        "shop-canary",
        &[(source::RPS.into(), "100")],
    )]);
    v.services[1] = Arc::new(json!({
        "metadata": {"name": "shop-canary", "namespace": "prod",
                     "annotations": {source::RPS: "50"}},
        "spec": {"selector": {"app": "shop", "track": "canary"}}
    }));
    let (engine, samples) = run(&v, 2);
    assert_eq!(engine.total_requests(), 100);
    assert_eq!(sum(&samples, REQS, &[]), 0.0);
    assert_eq!(
        sum(&samples, "http_requests_total", &[("pod", "shop-bbb-1")]),
        100.0
    );
}

#[test]
fn same_seed_same_metrics_and_series_outlive_their_pods() {
    let v = view(vec![
        main_ingress(&[(source::REQUEST_HEADERS, "x=y:0.5")]),
        canary_ingress("c", "", "shop-canary", &[(a("canary-weight"), "30")]),
    ]);
    let render = |seed| {
        let mut engine = TrafficEngine::new(seed, Vec::new());
        for step in 1..=20 {
            engine.advance(&v, Duration::from_millis(37 * step));
        }
        engine.render_metrics()
    };
    assert_eq!(render(5), render(5));
    assert_ne!(render(5), render(6));

    let mut engine = TrafficEngine::new(5, Vec::new());
    engine.advance(&v, Duration::from_secs(1));
    let gone = ClusterView {
        ingress_classes: nginx_class(),
        ingresses: v.ingresses.clone(),
        services: v.services.clone(),
        pods: Vec::new(),
    };
    engine.advance(&gone, Duration::from_secs(1));
    let samples = parse_exposition(&engine.render_metrics());
    assert!(sum(&samples, "http_requests_total", &[("pod", "shop-bbb-1")]) > 0.0);
}

#[test]
fn idle_objects_are_cheap() {
    let mut v = view(vec![main_ingress(&[])]);
    for i in 0..10_000 {
        let name = format!("idle-{i}");
        v.ingresses.push(ingress(
            &name,
            "",
            json!({}),
            json!([path("/", "Prefix", &name, json!({"number": 80}))]),
        ));
        v.services.push(service(&name, &name));
    }
    let mut engine = TrafficEngine::new(9, Vec::new());
    let start = Instant::now();
    for _ in 0..10 {
        engine.advance(&v, Duration::from_secs(1));
    }
    let elapsed = start.elapsed();
    assert_eq!(engine.total_requests(), 10_000);
    // Generous for unoptimised builds on a busy CI machine.
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
}
