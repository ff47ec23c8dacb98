//! The traffic simulator seen through the real Prometheus: canary weight, header routing and pod
//! error rates, computed in PromQL from the exported ingress-nginx and app metrics.

mod common;

use std::time::Duration;

use common::{eventually, sandbox_with};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, PostParams};
use prometheus_http_query::response::Data;
use serde_json::json;
use sluice_sandbox::SandboxConfig;
use sluice_sandbox::testing::{create, ingress, slot_deployment, slot_service};

const NS: &str = "erp-system";

async fn scalar(prometheus: &prometheus_http_query::Client, query: &str, at: i64) -> Option<f64> {
    let result = prometheus.query(query).at(at).get().await.ok()?;
    match result.data() {
        Data::Vector(samples) => samples
            .first()
            .map(|s| s.sample().value())
            .filter(|v| v.is_finite()),
        Data::Scalar(sample) => Some(sample.value()).filter(|v| v.is_finite()),
        _ => None,
    }
}

/// The ratio over three consecutive 10s windows ending at `end`; their median is what is judged,
/// so one unlucky window of binomial noise cannot fail the test alone.
async fn median_of_windows(
    prometheus: &prometheus_http_query::Client,
    ratio: &str,
    end: i64,
) -> (f64, Vec<f64>) {
    let mut values = Vec::new();
    for back in [0, 10, 20] {
        let value = scalar(prometheus, ratio, end - back)
            .await
            .unwrap_or_else(|| panic!("no value for {ratio} at {}", end - back));
        values.push(value);
    }
    let mut sorted = values.clone();
    sorted.sort_by(f64::total_cmp);
    (sorted[1], values)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_weight_header_share_and_error_rate_as_prometheus_sees_them() {
    let config = SandboxConfig {
        prometheus: true,
        seed: 7,
        ..SandboxConfig::default()
    };
    let (sandbox, client) = sandbox_with(config).await;
    let prometheus: prometheus_http_query::Client = sandbox
        .prometheus_url()
        .expect("Prometheus is running")
        .parse()
        .unwrap();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": NS}})).unwrap(),
        )
        .await
        .unwrap();

    let fast = json!({"sandbox.sluice.dev/ready-after": "100ms"});
    create::<Deployment>(
        &client,
        NS,
        slot_deployment("reporting", "blue", fast.clone()),
    )
    .await;
    create::<Deployment>(&client, NS, slot_deployment("reporting", "green", json!({"sandbox.sluice.dev/ready-after": "100ms", "sandbox.sluice.dev/error-rate": "0.1"}))).await;
    create::<Deployment>(
        &client,
        NS,
        slot_deployment("finance", "blue", fast.clone()),
    )
    .await;
    create::<Deployment>(
        &client,
        NS,
        slot_deployment("finance", "green", fast.clone()),
    )
    .await;
    create::<Service>(
        &client,
        NS,
        slot_service("reporting", "reporting", "blue", json!({})),
    )
    .await;
    // Direct traffic on the canary Service, as a blue/green preview gets: it makes the green pods'
    // error rate measurable on many requests.
    create::<Service>(
        &client,
        NS,
        slot_service(
            "reporting-canary",
            "reporting",
            "green",
            json!({"sandbox.sluice.dev/rps": "200"}),
        ),
    )
    .await;
    create::<Service>(
        &client,
        NS,
        slot_service("finance", "finance", "blue", json!({})),
    )
    .await;
    create::<Service>(
        &client,
        NS,
        slot_service("finance-canary", "finance", "green", json!({})),
    )
    .await;

    // Weighted canary: 100 rps, 20% to the canary.
    create::<Ingress>(
        &client,
        NS,
        ingress(
            "erp-reporting",
            "/reporting",
            "reporting",
            json!({"sandbox.sluice.dev/rps": "100"}),
        ),
    )
    .await;
    create::<Ingress>(&client, NS,
        ingress(
            "erp-reporting-canary",
            "/reporting",
            "reporting-canary",
            json!({"nginx.ingress.kubernetes.io/canary": "true", "nginx.ingress.kubernetes.io/canary-weight": "20"}),
        ),
    )
    .await;
    // Header canary: 30% of requests carry x-canary: insider; only those reach the canary.
    create::<Ingress>(&client, NS,
        ingress(
            "erp-finance",
            "/finance",
            "finance",
            json!({"sandbox.sluice.dev/rps": "100", "sandbox.sluice.dev/request-headers": "x-canary=insider:0.3,x-canary-other=1:0.5"}),
        ),
    )
    .await;
    create::<Ingress>(
        &client,
        NS,
        ingress(
            "erp-finance-canary",
            "/finance",
            "finance-canary",
            json!({
                "nginx.ingress.kubernetes.io/canary": "true",
                "nginx.ingress.kubernetes.io/canary-by-header": "x-canary",
                "nginx.ingress.kubernetes.io/canary-by-header-value": "insider",
            }),
        ),
    )
    .await;

    // Three full 10s windows of traffic, then one scrape more.
    let started = chrono::Utc::now().timestamp();
    eventually(
        Duration::from_secs(60),
        "Prometheus to hold 35s of sandbox traffic",
        || async {
            let now = chrono::Utc::now().timestamp();
            let scraped =
                scalar(&prometheus, "count(nginx_ingress_controller_requests)", now).await;
            (now - started >= 35 && scraped.is_some()).then_some(())
        },
    )
    .await;
    let end = chrono::Utc::now().timestamp() - 2;

    let canary_share = r#"sum(increase(nginx_ingress_controller_requests{namespace="erp-system",ingress="erp-reporting",canary!=""}[10s]))
        / sum(increase(nginx_ingress_controller_requests{namespace="erp-system",ingress="erp-reporting"}[10s]))"#;
    let (share, windows) = median_of_windows(&prometheus, canary_share, end).await;
    assert!(
        (share - 0.20).abs() <= 0.03,
        "canary share {share:.3} (windows {windows:?}) is not 20% ± 3 points"
    );
    let label = scalar(
        &prometheus,
        r#"count(nginx_ingress_controller_requests{ingress="erp-reporting",service="reporting",canary="erp-system-reporting-canary-80"})"#,
        end,
    )
    .await;
    assert!(
        label.is_some_and(|n| n >= 1.0),
        "canary requests carry the main Ingress's labels and canary=<ns>-<svc>-<port>"
    );

    let header_share = r#"sum(increase(nginx_ingress_controller_requests{ingress="erp-finance",canary!=""}[10s]))
        / sum(increase(nginx_ingress_controller_requests{ingress="erp-finance"}[10s]))"#;
    let (share, windows) = median_of_windows(&prometheus, header_share, end).await;
    assert!(
        (share - 0.30).abs() <= 0.03,
        "header-routed share {share:.3} (windows {windows:?}) is not 30% ± 3 points"
    );

    let error_share = r#"sum(increase(http_requests_total{namespace="erp-system",pod=~"reporting-green-.*",code=~"5.."}[10s]))
        / sum(increase(http_requests_total{namespace="erp-system",pod=~"reporting-green-.*"}[10s]))"#;
    let (share, windows) = median_of_windows(&prometheus, error_share, end).await;
    assert!(
        (share - 0.10).abs() <= 0.03,
        "5xx share of the green pods {share:.3} (windows {windows:?}) is not 10% ± 3 points"
    );
    let stable_errors = scalar(
        &prometheus,
        r#"sum(increase(http_requests_total{pod=~"reporting-blue-.*",code=~"5.."}[30s])) or vector(0)"#,
        end,
    )
    .await;
    assert_eq!(
        stable_errors,
        Some(0.0),
        "pods without an error rate serve no 5xx"
    );

    let p99 = scalar(
        &prometheus,
        r#"histogram_quantile(0.99, sum by (le) (rate(nginx_ingress_controller_request_duration_seconds_bucket{ingress="erp-reporting"}[30s])))"#,
        end,
    )
    .await
    .expect("a p99 from the ingress histogram");
    assert!(
        (0.025..0.25).contains(&p99),
        "p99 {p99:.3}s for a 20ms median with a log-normal tail"
    );
    sandbox.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_runner_stops_with_the_sandbox() {
    let config = SandboxConfig {
        prometheus: true,
        ..SandboxConfig::default()
    };
    let (sandbox, _client) = sandbox_with(config).await;
    let url = sandbox.prometheus_url().expect("Prometheus is running");
    let addr = url.trim_start_matches("http://").to_string();
    assert_eq!(
        sluice_sandbox::prometheus::http_get_status(&addr, "/-/ready").await,
        Some(200)
    );
    sandbox.shutdown().await;
    assert_eq!(
        sluice_sandbox::prometheus::http_get_status(&addr, "/-/ready").await,
        None,
        "Prometheus is gone with the sandbox"
    );
}

/// A `/metrics` endpoint on a free port of 127.0.0.1 that serves `text` to every request.
async fn exporter(text: &'static str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let addr = listener.local_addr().expect("its address").to_string();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request).await;
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
                text.len()
            );
            let _ = stream.write_all(answer.as_bytes()).await;
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_the_controller_it_is_pointed_at_in_job_sluice() {
    let config = SandboxConfig {
        prometheus: true,
        ..SandboxConfig::default()
    };
    let (sandbox, _client) = sandbox_with(config).await;
    let prometheus = prometheus_http_query::Client::try_from(
        sandbox.prometheus_url().expect("Prometheus runs").as_str(),
    )
    .expect("a Prometheus client");
    let first = exporter("controller_probe 1\n").await;
    let second = exporter("controller_probe 2\n").await;
    let now = || chrono::Utc::now().timestamp();
    for (target, value) in [(first, 1.0), (second, 2.0)] {
        sandbox
            .scrape_controller(&target)
            .expect("the targets file is written");
        let query = format!(r#"controller_probe{{job="sluice",instance="{target}"}}"#);
        eventually(Duration::from_secs(20), &query, || async {
            (scalar(&prometheus, &query, now()).await == Some(value)).then_some(())
        })
        .await;
    }
    sandbox.shutdown().await;
}
