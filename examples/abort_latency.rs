//! Benchmark: how long from an abort sent through the API to the canary weight 0 read back from
//! the canary Ingress. The real controller runs in-process against the sandbox with the ERP
//! system's reporting service; each round releases a new image through the API, waits until the
//! candidate has its step-1 weight, sends `POST .../abort`, and polls the canary Ingress (every
//! 2 ms) until it says 0. Prints p50, p99, min and max over the rounds.
//!
//! ```sh
//! cargo run --release --example abort_latency            # 50 aborts
//! ABORTS=10 cargo run --release --example abort_latency
//! ```

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, PostParams};
use kube::{Client, CustomResourceExt};
use serde_json::{Value, json};
use sluice::crd::Rollout;
use sluice_sandbox::testing::{create, eventually};
use sluice_sandbox::{Sandbox, SandboxConfig};

const FIXTURE: &str = include_str!("../tests/sandbox/fixtures/erp-system.yaml");
const NS: &str = "erp-system";
const APP: &str = "reporting";
const CANARY_INGRESS: &str = "erp-ingress-reporting-service-canary";
const WEIGHT: &str = "nginx.ingress.kubernetes.io/canary-weight";

fn fixture(kind: &str, name: &str) -> Value {
    let docs: Vec<Value> = serde_saphyr::from_multiple(FIXTURE).expect("the fixture parses");
    docs.into_iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("{kind} {name} in the fixture"))
}

async fn canary_weight(ingresses: &Api<Ingress>) -> Option<String> {
    let ingress = ingresses.get_opt(CANARY_INGRESS).await.ok()??;
    ingress.metadata.annotations?.get(WEIGHT).cloned()
}

async fn phase(rollouts: &Api<Rollout>) -> Option<String> {
    let rollout = rollouts.get(APP).await.ok()?;
    Some(format!("{:?}", rollout.status?.phase))
}

async fn setup(client: &Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(&PostParams::default(), &Rollout::crd())
        .await
        .expect("the CRD is created");
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let namespace = serde_json::from_value(fixture("Namespace", NS)).expect("a Namespace");
    namespaces
        .create(&PostParams::default(), &namespace)
        .await
        .expect("the namespace is created");
    let mut deployment = fixture("Deployment", APP);
    deployment["spec"]["template"]["metadata"]["annotations"]["sandbox.sluice.dev/ready-after"] =
        json!("200ms");
    create::<Deployment>(client, NS, deployment).await;
    create::<Service>(client, NS, fixture("Service", "reporting-service")).await;
    create::<Ingress>(client, NS, fixture("Ingress", "erp-ingress")).await;
    // No check ever comes due: each release holds at step 1 until it is aborted.
    let rollout = json!({
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": APP, "namespace": NS},
        "spec": {
            "targetRef": {"name": APP},
            "service": {"name": "reporting-service", "port": 80, "targetPort": 8080},
            "strategy": {"canary": {"ingressRef": {"name": "erp-ingress"}, "steps": [20, 50], "stepInterval": "1h"}},
            "analysis": {"interval": "1h", "metrics": [{"name": "error-rate", "max": 5}]},
            "progressDeadline": "2h",
        },
    });
    create::<Rollout>(client, NS, rollout).await;
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[tokio::main]
async fn main() {
    let rounds: usize = std::env::var("ABORTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(50);
    let sandbox = Sandbox::start(SandboxConfig::default())
        .await
        .expect("the sandbox starts");
    let client = sandbox.client().await.expect("a client");
    setup(&client).await;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let api_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let base = format!("http://{}", api_listener.local_addr().expect("an address"));
    let api = sluice::ApiServer {
        listener: api_listener,
        auth: sluice::api::Auth::configure(None, true).expect("insecure"),
        limiter: sluice::api::RateLimiter::new(10_000, 20_000),
    };
    let controller_client = sandbox.client().await.expect("a client");
    let config = sluice::ControllerConfig::new("http://127.0.0.1:9");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let controller = tokio::spawn(sluice::run(
        controller_client,
        config,
        listener,
        Some(api),
        async move {
            let _ = stopped.await;
        },
    ));

    let rollouts: Api<Rollout> = Api::namespaced(client.clone(), NS);
    let ingresses: Api<Ingress> = Api::namespaced(client.clone(), NS);
    eventually(Duration::from_secs(30), "the take-over", || async {
        (phase(&rollouts).await.as_deref() == Some("Ready")).then_some(())
    })
    .await;
    let http = reqwest::Client::new();
    let rollout_url = format!("{base}/api/v1/namespaces/{NS}/rollouts/{APP}");
    let mut latencies = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let image = format!("erp/reporting:bench-{round}");
        let released = http
            .post(format!("{rollout_url}/release"))
            .json(&json!({"image": image}))
            .send()
            .await
            .expect("the API answers");
        assert_eq!(released.status().as_u16(), 202, "release {round}");
        eventually(Duration::from_secs(30), "weight 20", || async {
            (canary_weight(&ingresses).await.as_deref() == Some("20")).then_some(())
        })
        .await;
        let sent = Instant::now();
        let aborted = http
            .post(format!("{rollout_url}/abort"))
            .json(&json!({"reason": "benchmark"}))
            .send()
            .await
            .expect("the API answers");
        assert_eq!(aborted.status().as_u16(), 202, "abort {round}");
        loop {
            if canary_weight(&ingresses).await.as_deref() != Some("20") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        latencies.push(sent.elapsed());
        eventually(Duration::from_secs(30), "rolled back", || async {
            (phase(&rollouts).await.as_deref() == Some("RolledBack")).then_some(())
        })
        .await;
    }
    let _ = stop.send(());
    let _ = controller.await;
    sandbox.shutdown().await;

    latencies.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "API abort to canary weight 0 read back, {} aborts: p50 {:.1} ms, p99 {:.1} ms, min {:.1} ms, max {:.1} ms",
        latencies.len(),
        ms(percentile(&latencies, 50.0)),
        ms(percentile(&latencies, 99.0)),
        ms(latencies[0]),
        ms(latencies[latencies.len() - 1]),
    );
}
