//! Where the simulated ingress-nginx is as strict as the real one: class filtering, metrics
//! for undeclared hosts, and canary annotation values that fail their checks.

use std::io::Write;
use std::sync::Mutex;

use super::*;

fn with_options(view: &ClusterView, options: IngressOptions) -> Vec<Sample> {
    let mut engine = TrafficEngine::with_options(7, Vec::new(), options);
    engine.advance(view, Duration::from_secs(1));
    parse_exposition(&engine.render_metrics())
}

/// `ingress` with its class set by `edit`.
fn reclassed(ingress: &Arc<Value>, edit: impl FnOnce(&mut Value)) -> Arc<Value> {
    let mut copy = (**ingress).clone();
    edit(&mut copy);
    Arc::new(copy)
}

fn no_class(ingress: &mut Value) {
    ingress["spec"]
        .as_object_mut()
        .expect("test Ingresses have a spec")
        .remove("ingressClassName");
}

fn weighted_canary() -> Arc<Value> {
    canary_ingress(
        "shop-canary",
        "",
        "shop-canary",
        &[(a("canary-weight"), "100")],
    )
}

fn served_by_pods(samples: &[Sample]) -> f64 {
    sum(samples, "http_requests_total", &[])
}

#[test]
fn a_canary_without_a_class_gets_nothing_unless_class_less_ingresses_are_watched() {
    let canary = reclassed(&weighted_canary(), no_class);
    let v = view(vec![main_ingress(&[]), canary.clone()]);
    let strict = with_options(&v, IngressOptions::default());
    assert_eq!(sum(&strict, REQS, &[("canary", CANARY_UPSTREAM)]), 0.0);
    assert_eq!(sum(&strict, REQS, &[("canary", "")]), 1000.0);

    let watching = IngressOptions {
        watch_without_class: true,
        ..IngressOptions::default()
    };
    let lenient = with_options(&v, watching);
    assert_eq!(sum(&lenient, REQS, &[("canary", CANARY_UPSTREAM)]), 1000.0);

    // A default IngressClass of ours is what admission would have written into the canary.
    let mut defaulted = view(vec![main_ingress(&[]), canary]);
    let mut class = (*defaulted.ingress_classes[0]).clone();
    class["metadata"]["annotations"] = json!({class::IS_DEFAULT_CLASS: "true"});
    defaulted.ingress_classes = vec![Arc::new(class)];
    let samples = with_options(&defaulted, IngressOptions::default());
    assert_eq!(sum(&samples, REQS, &[("canary", CANARY_UPSTREAM)]), 1000.0);
}

#[test]
fn ingresses_of_other_controllers_are_not_routed() {
    let mut v = view(Vec::new());
    v.ingress_classes.push(Arc::new(json!({
        "metadata": {"name": "traefik"}, "spec": {"controller": "traefik.io/ingress-controller"}
    })));
    let foreign = |edit: fn(&mut Value)| reclassed(&main_ingress(&[]), edit);
    type Edit = fn(&mut Value);
    let cases: [(Edit, f64); 5] = [
        (|i| i["spec"]["ingressClassName"] = json!("traefik"), 0.0),
        (
            |i| i["spec"]["ingressClassName"] = json!("no-such-class"),
            0.0,
        ),
        (no_class, 0.0),
        (
            |i| {
                no_class(i);
                i["metadata"]["annotations"][class::LEGACY_ANNOTATION] = json!("nginx");
            },
            1000.0,
        ),
        (
            |i| {
                no_class(i);
                i["metadata"]["annotations"][class::LEGACY_ANNOTATION] = json!("traefik");
            },
            0.0,
        ),
    ];
    for (i, (edit, expected)) in cases.into_iter().enumerate() {
        v.ingresses = vec![foreign(edit)];
        let samples = with_options(&v, IngressOptions::default());
        assert_eq!(sum(&samples, REQS, &[]), expected, "case {i}");
        assert_eq!(served_by_pods(&samples), expected, "case {i}");
    }
    // A canary of ours for a main Ingress of another controller has nothing to merge into.
    v.ingresses = vec![
        foreign(|i| i["spec"]["ingressClassName"] = json!("traefik")),
        weighted_canary(),
    ];
    assert_eq!(
        served_by_pods(&with_options(&v, IngressOptions::default())),
        0.0
    );
}

/// A main Ingress (rps 1000) and a weight-100 canary on a rule with `host`.
fn on_host(host: Option<&str>) -> ClusterView {
    let set_host = |ingress: &Arc<Value>| {
        reclassed(ingress, |i| match host {
            Some(h) => i["spec"]["rules"][0]["host"] = json!(h),
            None => {
                let rule = i["spec"]["rules"][0].as_object_mut().expect("one rule");
                rule.remove("host");
            }
        })
    };
    view(vec![
        set_host(&main_ingress(&[])),
        set_host(&weighted_canary()),
    ])
}

#[test]
fn requests_for_undeclared_hosts_are_routed_but_not_counted() {
    for host in [None, Some("*.example.com")] {
        let samples = with_options(&on_host(host), IngressOptions::default());
        assert_eq!(sum(&samples, REQS, &[]), 0.0, "{host:?}");
        assert!(
            !samples.iter().any(|s| s.name.starts_with("nginx_")),
            "{host:?}"
        );
        // Routing is unchanged: the canary's pod served everything.
        let canary_pod = sum(&samples, "http_requests_total", &[("pod", "shop-bbb-1")]);
        assert_eq!(canary_pod, 1000.0, "{host:?}");
    }
}

#[test]
fn undefined_hosts_are_counted_under_the_host_they_were_sent_to_when_asked() {
    let options = IngressOptions {
        metrics_per_undefined_host: true,
        ..IngressOptions::default()
    };
    for (host, label) in [
        (None, HOST_OF_HOSTLESS_RULE),
        (Some("*.example.com"), "sandbox.example.com"),
    ] {
        let samples = with_options(&on_host(host), options);
        let counted = sum(
            &samples,
            REQS,
            &[("host", label), ("canary", CANARY_UPSTREAM)],
        );
        assert_eq!(counted, 1000.0, "{host:?}");
    }
}

#[test]
fn without_metrics_per_host_there_is_no_host_label_and_every_request_counts() {
    let options = IngressOptions {
        metrics_per_host: false,
        ..IngressOptions::default()
    };
    for host in [None, Some("*.example.com"), Some("shop.example")] {
        let samples = with_options(&on_host(host), options);
        assert_eq!(sum(&samples, REQS, &[]), 1000.0, "{host:?}");
        let nginx = samples.iter().filter(|s| s.name.starts_with("nginx_"));
        assert!(nginx.clone().count() > 0);
        assert!(nginx.into_iter().all(|s| !s.labels.contains_key("host")));
    }
}

/// Everything logged at WARN while `f` runs.
fn warnings_during(f: impl FnOnce()) -> String {
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);
    impl Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            let mut buffer = self.0.lock().unwrap_or_else(|p| p.into_inner());
            buffer.extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, f);
    let bytes = buffer.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
    String::from_utf8_lossy(&bytes).into_owned()
}

#[test]
fn refused_canary_values_fall_back_to_unset_with_one_warning_per_version() {
    let canary = canary_ingress(
        "shop-canary",
        "",
        "shop-canary",
        &[
            (a("canary-weight"), " 100"),
            (a("canary-by-header"), "x-canary;drop"),
        ],
    );
    let v = view(vec![
        main_ingress(&[(source::REQUEST_HEADERS, "x-canary;drop=always:1")]),
        canary.clone(),
    ]);
    let mut engine = TrafficEngine::new(7, Vec::new());
    let log = warnings_during(|| {
        for _ in 0..5 {
            engine.advance(&v, Duration::from_millis(200));
        }
    });
    let samples = parse_exposition(&engine.render_metrics());
    assert_eq!(sum(&samples, REQS, &[("canary", CANARY_UPSTREAM)]), 0.0);
    assert_eq!(sum(&samples, REQS, &[]), 1000.0);
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 2, "{log}");
    assert!(
        lines
            .iter()
            .all(|l| l.contains("WARN") && l.contains("prod/shop-canary"))
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("annotation canary-weight "))
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("annotation canary-by-header "))
    );

    // A new version of the Ingress is checked (and reported) again.
    let mut changed = (*canary).clone();
    changed["metadata"]["resourceVersion"] = json!("2");
    let v = view(vec![main_ingress(&[]), Arc::new(changed)]);
    let log = warnings_during(|| engine.advance(&v, Duration::from_millis(200)));
    assert_eq!(log.lines().count(), 2, "{log}");
}

#[test]
fn a_canary_flag_that_is_not_a_bool_makes_a_main_ingress_and_is_reported() {
    let mut not_bool = (*weighted_canary()).clone();
    not_bool["metadata"]["annotations"][a("canary")] = json!("yes");
    let v = view(vec![main_ingress(&[]), Arc::new(not_bool)]);
    let mut engine = TrafficEngine::new(7, Vec::new());
    let log = warnings_during(|| engine.advance(&v, Duration::from_secs(1)));
    let samples = parse_exposition(&engine.render_metrics());
    assert_eq!(sum(&samples, REQS, &[("canary", CANARY_UPSTREAM)]), 0.0);
    assert!(
        log.contains("annotation canary contains invalid value \"yes\""),
        "{log}"
    );
}
