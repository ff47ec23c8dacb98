//! What blue/green release tests rely on: direct Service traffic with its own
//! metric, and pods whose capacity production load can exceed.

use super::*;

const SERVICE_REQS: &str = "sandbox_service_requests_total";
const APP_REQS: &str = "http_requests_total";

/// A Service selecting `track` that receives `rps` direct requests.
fn direct(name: &str, track: &str, rps: &str) -> Arc<Value> {
    let mut svc = (*service(name, track)).clone();
    svc["metadata"]["annotations"] = json!({source::RPS: rps});
    Arc::new(svc)
}

/// An Ingress sending `rps` requests to Service `svc`.
fn ingress_to(svc: &str, rps: &str) -> Arc<Value> {
    ingress(
        "shop",
        "",
        json!({source::RPS: rps}),
        json!([path("/", "Prefix", svc, json!({"number": 80}))]),
    )
}

fn capped(name: &str, track: &str, max_rps: &str) -> PodView {
    pod(name, track, &[(behavior::MAX_RPS, max_rps)], true)
}

/// One pod capped at `max_rps` behind Service `shop`, to which an Ingress
/// sends `rps`.
fn capped_shop(max_rps: &str, rps: &str, shop: Arc<Value>) -> ClusterView {
    ClusterView {
        ingress_classes: nginx_class(),
        ingresses: vec![ingress_to("shop", rps)],
        services: vec![shop],
        pods: vec![capped("shop-aaa-1", "stable", max_rps)],
    }
}

/// `seconds` of 200 ms ticks, the sandbox's default, which is what the load
/// estimate of a capped pod is tuned for.
fn ticks(engine: &mut TrafficEngine, view: &ClusterView, seconds: u32) -> Vec<Sample> {
    for _ in 0..seconds * 5 {
        engine.advance(view, Duration::from_millis(200));
    }
    parse_exposition(&engine.render_metrics())
}

/// Requests and 503s of family `name` between two expositions.
fn delta_503(before: &[Sample], after: &[Sample], name: &str) -> (f64, f64) {
    // ingress-nginx calls the code `status`.
    let code = if name == REQS { "status" } else { "code" };
    let count = |filter: &[(&str, &str)]| sum(after, name, filter) - sum(before, name, filter);
    (count(&[]), count(&[(code, "503")]))
}

#[test]
fn direct_requests_are_counted_per_serving_pod_and_code() {
    let mut v = view(Vec::new());
    v.services[0] = direct("shop", "stable", "100");
    for p in &mut v.pods {
        p.annotations
            .insert(behavior::ERROR_RATE.into(), "0.1".into());
    }
    let (engine, samples) = run(&v, 20);
    assert_eq!(engine.total_requests(), 2000);
    assert_eq!(sum(&samples, SERVICE_REQS, &[("service", "shop")]), 2000.0);
    for pod in ["shop-aaa-1", "shop-aaa-2"] {
        let served = sum(&samples, SERVICE_REQS, &[("pod", pod)]);
        assert!(near(served / 2000.0, 0.5, 0.05), "{pod} {served}");
        // The Service is the pod's only client, so the two views agree.
        for code in ["200", "500", "503"] {
            let via_service = sum(&samples, SERVICE_REQS, &[("pod", pod), ("code", code)]);
            let at_pod = sum(&samples, APP_REQS, &[("pod", pod), ("code", code)]);
            assert_eq!(via_service, at_pod, "{pod} {code}");
            assert!(via_service > 0.0, "{pod} {code}");
        }
    }
    let ok = sum(&samples, SERVICE_REQS, &[("code", "200")]);
    assert!(near(1.0 - ok / 2000.0, 0.1, 0.02), "{ok}");
    assert_eq!(sum(&samples, SERVICE_REQS, &[("pod", "")]), 0.0);
}

#[test]
fn a_service_without_ready_pods_counts_503s_without_a_pod() {
    let mut v = view(Vec::new());
    v.services[0] = direct("shop", "stable", "100");
    v.pods.iter_mut().for_each(|p| p.ready = false);
    let (engine, samples) = run(&v, 2);
    assert_eq!(engine.total_requests(), 200);
    let series: Vec<(&str, &str, f64)> = samples
        .iter()
        .filter(|s| s.name == SERVICE_REQS)
        .map(|s| (s.labels["pod"].as_str(), s.labels["code"].as_str(), s.value))
        .collect();
    assert_eq!(series, [("", "503", 200.0)]);
    assert_eq!(sum(&samples, APP_REQS, &[]), 0.0);
}

#[test]
fn a_selector_switch_between_ready_slots_has_no_pod_less_samples() {
    let mut v = ClusterView {
        ingress_classes: nginx_class(),
        ingresses: Vec::new(),
        services: vec![direct("shop", "blue", "50")],
        pods: ["blue", "green"]
            .iter()
            .flat_map(|slot| {
                (1..=2).map(move |i| pod(&format!("shop-{slot}-{i}"), slot, &[], true))
            })
            .collect(),
    };
    let mut engine = TrafficEngine::new(7, Vec::new());
    ticks(&mut engine, &v, 5);
    // Same Service (same uid), new selector: the next tick routes to green.
    v.services[0] = direct("shop", "green", "50");
    let samples = ticks(&mut engine, &v, 5);
    assert_eq!(sum(&samples, SERVICE_REQS, &[]), 500.0);
    let slot = |prefix: &str| -> f64 {
        samples
            .iter()
            .filter(|s| s.name == SERVICE_REQS && s.labels["pod"].starts_with(prefix))
            .map(|s| s.value)
            .sum()
    };
    assert_eq!((slot("shop-blue-"), slot("shop-green-")), (250.0, 250.0));
    assert!(
        samples
            .iter()
            .all(|s| s.name != SERVICE_REQS || !s.labels["pod"].is_empty())
    );
}

#[test]
fn max_rps_10_under_40_rps_sheds_about_three_quarters() {
    let v = capped_shop("10", "40", service("shop", "stable"));
    let mut engine = TrafficEngine::new(7, Vec::new());
    // Past the estimate's ramp-up, then 100 s: 4,000 requests, so a share
    // off by 0.035 would be about five standard deviations.
    let warm = ticks(&mut engine, &v, 5);
    let samples = ticks(&mut engine, &v, 100);
    let (all, failed) = delta_503(&warm, &samples, APP_REQS);
    assert_eq!(all, 4000.0);
    assert!(near(failed / all, 0.75, 0.035), "{failed}");
    // The pod answered them, so nginx saw the same 503s, all fast.
    let nginx = delta_503(&warm, &samples, REQS);
    assert_eq!(nginx, (all, failed));
    let fast = sum(
        &samples,
        "nginx_ingress_controller_request_duration_seconds_bucket",
        &[("status", "503"), ("le", "0.01")],
    );
    assert_eq!(fast, sum(&samples, REQS, &[("status", "503")]));
}

#[test]
fn load_under_capacity_sheds_nothing() {
    let v = capped_shop("50", "40", service("shop", "stable"));
    let samples = ticks(&mut TrafficEngine::new(7, Vec::new()), &v, 30);
    assert_eq!(sum(&samples, APP_REQS, &[]), 1200.0);
    assert_eq!(sum(&samples, APP_REQS, &[("code", "503")]), 0.0);
}

#[test]
fn capacity_counts_ingress_and_direct_traffic_together() {
    // 20 rps through the Ingress plus 20 direct: 40 at a pod that serves 10.
    // Ingress sources run first; both must see the same overload.
    let v = capped_shop("10", "20", direct("shop", "stable", "20"));
    let mut engine = TrafficEngine::new(7, Vec::new());
    let warm = ticks(&mut engine, &v, 5);
    let samples = ticks(&mut engine, &v, 150);
    for name in [REQS, SERVICE_REQS] {
        let (all, failed) = delta_503(&warm, &samples, name);
        assert_eq!(all, 3000.0, "{name}");
        assert!(near(failed / all, 0.75, 0.035), "{name} {failed}");
    }
}

#[test]
fn an_unreached_capacity_changes_no_outcome() {
    let run = |max_rps: Option<&str>| {
        let mut v = view(vec![
            main_ingress(&[]),
            canary_ingress("c", "", "shop-canary", &[(a("canary-weight"), "30")]),
        ]);
        v.services[0] = direct("shop", "stable", "50");
        for p in v.pods.iter_mut() {
            if let Some(max_rps) = max_rps {
                p.annotations
                    .insert(behavior::MAX_RPS.into(), max_rps.into());
            }
        }
        ticks(&mut TrafficEngine::new(5, Vec::new()), &v, 3)
    };
    let (capped, free) = (run(Some("1e6")), run(None));
    assert_eq!(capped.len(), free.len());
    for (c, f) in capped.iter().zip(&free) {
        // Latency sums may differ in the last bits: capped pods' requests
        // are added up after the others'.
        let same = c.value == f.value || (c.value - f.value).abs() < 1e-9 * f.value;
        assert!(
            c.name == f.name && c.labels == f.labels && same,
            "{c:?} {f:?}"
        );
    }
}

#[test]
fn a_preview_that_passes_light_traffic_fails_under_production_load() {
    let mut v = ClusterView {
        ingress_classes: nginx_class(),
        ingresses: Vec::new(),
        services: vec![
            service("shop", "blue"),
            direct("shop-preview", "green", "5"),
        ],
        pods: vec![
            pod("shop-blue-1", "blue", &[], true),
            capped("shop-green-1", "green", "10"),
        ],
    };
    let mut engine = TrafficEngine::new(7, Vec::new());
    let preview = ticks(&mut engine, &v, 10);
    assert_eq!(
        sum(&preview, SERVICE_REQS, &[("service", "shop-preview")]),
        50.0
    );
    assert_eq!(sum(&preview, APP_REQS, &[("code", "503")]), 0.0);
    // Promotion: the production Service now selects green, under 40 rps.
    v.ingresses.push(ingress_to("shop", "40"));
    v.services[0] = service("shop", "green");
    let promoted = ticks(&mut engine, &v, 30);
    let (all, failed) = delta_503(&preview, &promoted, REQS);
    assert!(failed / all > 0.6, "{failed} of {all}");
}
