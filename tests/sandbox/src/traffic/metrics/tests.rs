//! The exposition as a scraper reads it.

use super::*;

fn labels<'a>(canary: &'a str, path: &'a str) -> NginxLabels<'a> {
    NginxLabels {
        canary,
        host: "shop.example",
        ingress: "shop",
        namespace: "prod",
        path,
        service: "shop",
    }
}

#[test]
fn histogram_buckets_are_cumulative_and_le_inclusive() {
    let mut h = Histogram::default();
    for v in [0.005, 0.006, 0.3, 20.0] {
        h.observe(v);
    }
    let c = h.cumulative();
    assert_eq!(c[0], 1, "0.005 belongs to le=0.005");
    assert_eq!(c[1], 2);
    assert_eq!(c[6], 3);
    assert_eq!(c[10], 3);
    assert_eq!(c[11], 4);
    assert_eq!(h.count(), 4);
    assert!((h.sum() - 20.311).abs() < 1e-9);
}

#[test]
fn same_labels_reuse_one_series() {
    let mut m = Metrics::default();
    let a = m.route(labels("", "/"));
    let b = m.route(labels("", "/"));
    let c = m.route(labels("prod-shop-canary-80", "/"));
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert_eq!(m.pod("prod", "p1"), m.pod("prod", "p1"));
    let p1 = m.pod("prod", "p1");
    let p2 = m.pod("prod", "p2");
    assert_eq!(
        m.service("prod", "shop", Some(p1)),
        m.service("prod", "shop", Some(p1))
    );
    assert_ne!(
        m.service("prod", "shop", Some(p1)),
        m.service("prod", "shop", Some(p2))
    );
    assert_ne!(
        m.service("prod", "shop", Some(p1)),
        m.service("prod", "shop", None)
    );
    assert_ne!(
        m.service("prod", "shop", None),
        m.service("prod", "shop-preview", None)
    );
}

#[test]
fn render_is_valid_sorted_and_complete() {
    let mut m = Metrics::default();
    let z = m.route(labels("", "/z"));
    let a = m.route(labels("", "/a"));
    m.record_nginx(z, 200, 0.02);
    m.record_nginx(a, 503, 0.001);
    m.record_nginx(a, 200, 0.03);
    let p = m.pod("prod", "shop-abc-1");
    m.record_pod(p, 500, 0.2);
    m.record_pod(p, 200, 0.02);
    m.record_pod(p, 200, 0.04);
    let served = m.service("prod", "shop-preview", Some(p));
    let unserved = m.service("prod", "shop-preview", None);
    let other = m.service("prod", "shop", Some(p));
    for (series, code) in [(served, 503), (unserved, 503), (served, 200), (other, 200)] {
        m.record_service(series, code);
    }
    m.record_service(served, 200);
    let text = m.render();
    let samples = parse_exposition(&text);
    assert_eq!(text.matches("# TYPE ").count(), 5);

    let reqs: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.name == NGINX_REQUESTS)
        .collect();
    let order: Vec<(&str, &str)> = reqs
        .iter()
        .map(|s| (s.labels["path"].as_str(), s.labels["status"].as_str()))
        .collect();
    assert_eq!(order, [("/a", "200"), ("/a", "503"), ("/z", "200")]);
    let first = &reqs[0].labels;
    assert_eq!(first["controller_class"], "k8s.io/ingress-nginx");
    assert_eq!(first["controller_namespace"], "ingress-nginx");
    assert_eq!(first["controller_pod"], "ingress-nginx-controller-sandbox");
    assert_eq!(first["method"], "GET");
    assert_eq!(first["canary"], "");

    let inf = samples
        .iter()
        .find(|s| s.name == "http_request_duration_seconds_bucket" && s.labels["le"] == "+Inf")
        .unwrap();
    assert_eq!(inf.value, 3.0);
    let codes: Vec<(&str, f64)> = samples
        .iter()
        .filter(|s| s.name == APP_REQUESTS)
        .map(|s| (s.labels["code"].as_str(), s.value))
        .collect();
    assert_eq!(codes, [("200", 2.0), ("500", 1.0)]);

    let services: Vec<(&str, &str, &str, f64)> = samples
        .iter()
        .filter(|s| s.name == SERVICE_REQUESTS)
        .map(|s| {
            assert_eq!(s.labels["namespace"], "prod");
            let l = |k: &str| s.labels[k].as_str();
            (l("service"), l("pod"), l("code"), s.value)
        })
        .collect();
    assert_eq!(
        services,
        [
            ("shop", "shop-abc-1", "200", 1.0),
            ("shop-preview", "", "503", 1.0),
            ("shop-preview", "shop-abc-1", "200", 2.0),
            ("shop-preview", "shop-abc-1", "503", 1.0),
        ]
    );
}

#[test]
fn label_values_are_escaped() {
    let mut m = Metrics::default();
    let nasty = "a\\b\"c\nd";
    let r = m.route(labels("", nasty));
    m.record_nginx(r, 200, 0.01);
    let text = m.render();
    assert!(text.contains(r#"path="a\\b\"c\nd""#), "{text}");
    let samples = parse_exposition(&text);
    assert!(samples.iter().all(|s| s.labels["path"] == nasty));
}

#[test]
fn empty_metrics_render_nothing() {
    assert_eq!(Metrics::default().render(), "");
}
