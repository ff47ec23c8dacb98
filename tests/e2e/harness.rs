//! One ERP cluster per test: a sandbox (with the real Prometheus when asked), the Rollout CRD, the
//! reporting service of the ERP system loaded from the sandbox's fixture, a Rollout with fast
//! timings, and the real controller running in-process until the test stops it.

use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::{Client, CustomResourceExt};
use serde_json::{Value, json};
use sluice::ControllerConfig;
use sluice::crd::Rollout;
pub use sluice_sandbox::testing::{create, eventually};
use sluice_sandbox::{Sandbox, SandboxConfig};
use sluice_strategies::status::{CONDITION_PROMOTED, ConditionStatus, Phase, RolloutStatus, Slot};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::history::History;

pub const NS: &str = "erp-system";
/// The Rollout, the user's Deployment and the app label all have this name.
pub const APP: &str = "reporting";
pub const SERVICE: &str = "reporting-service";
pub const INGRESS: &str = "erp-ingress";
pub const CANARY_INGRESS: &str = "erp-ingress-reporting-service-canary";
pub const CANARY_SERVICE: &str = "reporting-service-canary";
/// The ERP system as deployed in the seed notes.
const FIXTURE: &str = include_str!("../sandbox/fixtures/erp-system.yaml");
/// The bound on every test.
pub const TEST_LIMIT: Duration = Duration::from_secs(120);

pub fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Runs a test's scenario with the bound every test has.
pub async fn bounded(scenario: impl Future<Output = ()>) {
    bounded_by(TEST_LIMIT, scenario).await;
}

/// Runs a scenario longer than most (several releases back to back) with its own bound.
pub async fn bounded_by(limit: Duration, scenario: impl Future<Output = ()>) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let started = std::time::Instant::now();
    tokio::time::timeout(limit, scenario)
        .await
        .expect("the scenario finishes within its bound");
    println!("scenario finished in {:?}", started.elapsed());
}

/// How a test's cluster is set up.
pub struct Setup {
    /// Start the real Prometheus (the controller then queries it).
    pub prometheus: bool,
    pub seed: u64,
    /// `sandbox.sluice.dev/request-headers` on the user's Ingress.
    pub request_headers: Option<&'static str>,
    /// Requests per second per path through the user's Ingress (None: no ingress traffic).
    pub ingress_rps: Option<u32>,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            prometheus: true,
            seed: 7,
            request_headers: None,
            ingress_rps: Some(60),
        }
    }
}

struct Running {
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), sluice::Error>>,
}

/// A test's cluster and controller.
pub struct Env {
    pub sandbox: Sandbox,
    pub client: Client,
    pub prometheus_url: String,
    controller: Option<Running>,
    /// Where the running controller serves /healthz, /readyz and /metrics.
    pub probes: Option<std::net::SocketAddr>,
    /// `--ingress-class` of the controllers started from now on.
    pub ingress_class: Option<String>,
}

/// How the controller serves its API in a test.
pub struct ApiSetup {
    /// The tokens file's text; None: `--api-insecure`.
    pub tokens: Option<String>,
    /// Requests per second per token (the burst is twice as many).
    pub rate: u32,
}

pub async fn client_for(sandbox: &Sandbox) -> Client {
    sandbox
        .client()
        .await
        .expect("a kube client for the sandbox")
}

/// A URL where no Prometheus answers: a port bound by us, then released.
pub fn dead_prometheus_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let port = listener.local_addr().expect("its address").port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

/// One object of the ERP fixture, by kind and name.
pub fn fixture(kind: &str, name: &str) -> Value {
    let docs: Vec<Value> = serde_saphyr::from_multiple(FIXTURE).expect("the fixture parses");
    docs.into_iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("{kind} {name} in the fixture"))
}

/// A Deployment of the fixture whose pods are ready 300ms after they start.
pub fn fast_deployment(name: &str) -> Value {
    let mut deployment = fixture("Deployment", name);
    deployment["spec"]["template"]["metadata"]["annotations"]["sandbox.sluice.dev/ready-after"] =
        json!("300ms");
    deployment
}

/// The Rollout of reporting with fast timings; `overrides` is merged into it (JSON merge patch).
pub fn rollout_body(name: &str, overrides: Value) -> Value {
    let mut body = json!({
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "targetRef": {"name": APP},
            "service": {"name": SERVICE, "port": 80, "targetPort": 8080},
            "strategy": {"canary": {
                "ingressRef": {"name": INGRESS},
                "steps": [20, 50],
                "stepInterval": "6s",
                "scaleDownDelay": "3s",
            }},
            "analysis": {
                "interval": "6s",
                "failureLimit": 1,
                "minRequests": 10,
                "metrics": [{"name": "error-rate", "max": 5}, {"name": "latency-p99", "max": 500}],
            },
            "progressDeadline": "20s",
        },
    });
    json_patch::merge(&mut body, &overrides);
    body
}

pub fn status(rollout: &Rollout) -> RolloutStatus {
    rollout.status.clone().unwrap_or_default()
}

pub fn phase(rollout: &Rollout) -> Phase {
    status(rollout).phase
}

pub fn condition(rollout: &Rollout, type_: &str) -> Option<(ConditionStatus, String)> {
    status(rollout)
        .conditions
        .into_iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status, c.reason))
}

/// The release of `revision` finished: Succeeded, Promoted=True, `revision` stable.
pub fn promoted(rollout: &Rollout, revision: &str) -> bool {
    let s = status(rollout);
    s.phase == Phase::Succeeded
        && s.stable_revision.as_deref() == Some(revision)
        && condition(rollout, CONDITION_PROMOTED).is_some_and(|(c, _)| c == ConditionStatus::True)
}

impl Env {
    /// A sandbox with the CRD, namespace erp-system, Deployment reporting (2 replicas, ready
    /// 300ms after start) and reporting-service from the fixture, ready, then erp-ingress with
    /// `setup.ingress_rps` requests per second per path.
    pub async fn start(setup: Setup) -> Env {
        let config = SandboxConfig {
            prometheus: setup.prometheus,
            seed: setup.seed,
            image_behaviors: vec![
                "erp/reporting:.*-errors=error-rate:0.3"
                    .parse()
                    .expect("valid"),
                "erp/reporting:.*-slow=latency-ms:900"
                    .parse()
                    .expect("valid"),
                // Passes a preview's light traffic, fails under all of reporting's.
                "erp/reporting:.*-fragile=max-rps:12"
                    .parse()
                    .expect("valid"),
            ],
            ..SandboxConfig::default()
        };
        let sandbox = Sandbox::start(config).await.expect("the sandbox starts");
        let client = client_for(&sandbox).await;
        let prometheus_url = sandbox.prometheus_url().unwrap_or_else(dead_prometheus_url);
        let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
        crds.create(&PostParams::default(), &Rollout::crd())
            .await
            .expect("the Rollout CRD is created");
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let namespace = serde_json::from_value(fixture("Namespace", NS)).expect("a Namespace");
        namespaces
            .create(&PostParams::default(), &namespace)
            .await
            .expect("namespace created");
        let env = Env {
            sandbox,
            client,
            prometheus_url,
            controller: None,
            probes: None,
            ingress_class: None,
        };
        create::<Deployment>(&env.client, NS, fast_deployment(APP)).await;
        create::<Service>(&env.client, NS, fixture("Service", SERVICE)).await;
        env.wait_deployment_ready(APP, 2).await;
        // Traffic starts only once reporting is ready: no 503 before sluice is even there.
        let mut ingress = fixture("Ingress", INGRESS);
        let annotations = &mut ingress["metadata"]["annotations"];
        if let Some(rps) = setup.ingress_rps {
            annotations["sandbox.sluice.dev/rps"] = json!(rps.to_string());
        }
        if let Some(headers) = setup.request_headers {
            annotations["sandbox.sluice.dev/request-headers"] = json!(headers);
        }
        create::<Ingress>(&env.client, NS, ingress).await;
        env
    }

    /// A cluster set up as `setup` says, Rollout reporting (the fast defaults with `overrides`)
    /// and the controller running, once sluice has taken reporting over; with the stable revision.
    pub async fn taken_over(setup: Setup, overrides: Value) -> (Env, String) {
        let mut env = Env::start(setup).await;
        env.create_rollout(APP, overrides).await;
        env.start_controller().await;
        let stable = env.wait_taken_over().await;
        (env, stable)
    }

    pub async fn wait_deployment_ready(&self, name: &str, replicas: i32) {
        let api: Api<Deployment> = Api::namespaced(self.client.clone(), NS);
        eventually(secs(15), &format!("Deployment {name} ready"), || async {
            let d = api.get(name).await.ok()?;
            let ready = d.status.as_ref().and_then(|s| s.ready_replicas);
            (ready == Some(replicas)).then_some(())
        })
        .await;
    }

    /// Starts the controller against the sandbox's Prometheus (a dead URL without one).
    pub async fn start_controller(&mut self) {
        let url = self.prometheus_url.clone();
        self.start_controller_with(&url).await;
    }

    pub async fn start_controller_with(&mut self, prometheus_url: &str) {
        self.start_controller_serving(prometheus_url, None).await;
    }

    /// Starts the controller with its API on a free port of 127.0.0.1; its base URL.
    pub async fn start_controller_with_api(&mut self, setup: ApiSetup) -> String {
        let url = self.prometheus_url.clone();
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port for the API");
        let base = format!("http://{}", listener.local_addr().expect("its address"));
        let auth = match &setup.tokens {
            Some(tokens) => {
                let path = self.tokens_path();
                std::fs::write(&path, tokens).expect("the tokens file is written");
                sluice::api::Auth::configure(Some(&path), false).expect("the tokens load")
            }
            None => sluice::api::Auth::configure(None, true).expect("insecure"),
        };
        let api = sluice::ApiServer {
            listener,
            auth,
            limiter: sluice::api::RateLimiter::new(setup.rate, setup.rate * 2),
        };
        self.start_controller_serving(&url, Some(api)).await;
        base
    }

    /// Where this test's API tokens file lives (one per sandbox).
    pub fn tokens_path(&self) -> std::path::PathBuf {
        std::env::temp_dir().join(format!(
            "sluice-e2e-tokens-{}.yaml",
            self.sandbox.api_url().replace([':', '/', '.'], "_")
        ))
    }

    async fn start_controller_serving(
        &mut self,
        prometheus_url: &str,
        api: Option<sluice::ApiServer>,
    ) {
        assert!(self.controller.is_none(), "one controller at a time");
        let mut config = ControllerConfig::new(prometheus_url);
        config.query_timeout = secs(2);
        config.ingress_class = self.ingress_class.clone();
        // A client of its own, as a new process would have, counted in the controller's metrics.
        let kubeconfig = self
            .sandbox
            .client_config()
            .await
            .expect("the sandbox's kubeconfig");
        let client = sluice::metrics::metered_client(
            kubeconfig,
            &config.metrics,
            sluice::throttle::ApiLimits::default(),
            "e2e",
        )
        .expect("a kube client for the sandbox");
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port for the probes");
        self.probes = listener.local_addr().ok();
        if let Some(probes) = self.probes {
            self.sandbox
                .scrape_controller(&probes.to_string())
                .expect("Prometheus is told to scrape the controller");
        }
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(sluice::run(client, config, listener, api, async move {
            let _ = stopped.await;
        }));
        self.controller = Some(Running { stop, task });
    }

    /// Stops the controller and waits until it has returned.
    pub async fn stop_controller(&mut self) {
        let Some(running) = self.controller.take() else {
            return;
        };
        let _ = running.stop.send(());
        tokio::time::timeout(secs(15), running.task)
            .await
            .expect("the controller stops within 15s")
            .expect("the controller task did not panic")
            .expect("the controller returns Ok");
    }

    /// Stops the controller, then the sandbox and its Prometheus.
    pub async fn finish(mut self) {
        self.stop_controller().await;
        self.sandbox.shutdown().await;
    }

    pub fn rollouts(&self) -> Api<Rollout> {
        Api::namespaced(self.client.clone(), NS)
    }

    pub async fn create_rollout(&self, name: &str, overrides: Value) {
        let rollout: Rollout =
            serde_json::from_value(rollout_body(name, overrides)).expect("a valid Rollout");
        self.rollouts()
            .create(&PostParams::default(), &rollout)
            .await
            .expect("Rollout created");
    }

    /// Deletes the Rollout and waits until the hand-back let it go.
    pub async fn delete_rollout(&self) {
        let rollouts = self.rollouts();
        rollouts
            .delete(APP, &DeleteParams::default())
            .await
            .expect("the Rollout is deleted");
        eventually(secs(30), "the Rollout gone", || async {
            rollouts.get_opt(APP).await.ok()?.is_none().then_some(())
        })
        .await;
    }

    pub async fn rollout(&self) -> Rollout {
        self.rollouts().get(APP).await.expect("the Rollout exists")
    }

    /// Polls Rollout `name` until `done` holds; panics with its last status after `limit`.
    pub async fn wait_for_named(
        &self,
        name: &str,
        what: &str,
        limit: Duration,
        done: impl Fn(&Rollout) -> bool,
    ) -> Rollout {
        let api = self.rollouts();
        let deadline = tokio::time::Instant::now() + limit;
        let mut last = None;
        loop {
            if let Ok(rollout) = api.get(name).await {
                if done(&rollout) {
                    return rollout;
                }
                last = Some(rollout);
            }
            if tokio::time::Instant::now() >= deadline {
                let status = last.as_ref().map(status);
                panic!("timed out after {limit:?} waiting for {what}; last status: {status:#?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn wait_for(
        &self,
        what: &str,
        limit: Duration,
        done: impl Fn(&Rollout) -> bool,
    ) -> Rollout {
        self.wait_for_named(APP, what, limit, done).await
    }

    pub async fn wait_phase(&self, want: Phase, limit: Duration) -> Rollout {
        self.wait_for(&format!("phase {want:?}"), limit, |r| phase(r) == want)
            .await
    }

    /// Waits until condition `type_` has this status and reason (`kubectl wait --for=condition`).
    pub async fn wait_condition(
        &self,
        type_: &str,
        want: ConditionStatus,
        reason: &str,
        limit: Duration,
    ) -> Rollout {
        let what = format!("condition {type_}={want:?} ({reason})");
        self.wait_for(&what, limit, |r| {
            condition(r, type_).is_some_and(|(status, why)| status == want && why == reason)
        })
        .await
    }

    /// Waits until sluice has taken reporting over; returns the stable revision.
    pub async fn wait_taken_over(&self) -> String {
        let rollout = self.wait_phase(Phase::Ready, secs(20)).await;
        let s = status(&rollout);
        assert_eq!(s.stable_slot, Some(Slot::Blue), "blue is stable first");
        s.stable_revision.expect("a stable revision")
    }

    /// Waits until the canary Ingress carries `weight` (the status says what sluice decided; the
    /// Ingress, what it has written).
    pub async fn wait_canary_weight(&self, weight: &str) {
        self.wait_canary_weight_for(weight, secs(10)).await;
    }

    pub async fn wait_canary_weight_for(&self, weight: &str, limit: Duration) {
        let ingresses: Api<Ingress> = Api::namespaced(self.client.clone(), NS);
        let what = format!("canary weight {weight}");
        eventually(limit, &what, || async {
            let canary = ingresses.get(CANARY_INGRESS).await.ok()?;
            let annotations = canary.metadata.annotations?;
            (annotations.get(crate::history::WEIGHT)? == weight).then_some(())
        })
        .await;
    }

    pub fn deployments(&self) -> Api<Deployment> {
        Api::namespaced(self.client.clone(), NS)
    }

    /// Patches the user's Deployment (what CI does); returns the resourceVersion of the write.
    pub async fn patch_target(&self, patch: Value) -> u64 {
        let written = self
            .deployments()
            .patch(APP, &PatchParams::default(), &Patch::Strategic(patch))
            .await
            .expect("the target is patched");
        written
            .metadata
            .resource_version
            .and_then(|rv| rv.parse().ok())
            .expect("a numeric resourceVersion")
    }

    /// `kubectl set image deployment/reporting reporting=IMAGE`; returns the write's
    /// resourceVersion.
    pub async fn set_image(&self, image: &str) -> u64 {
        self.patch_target(json!({"spec": {"template": {"spec": {"containers": [
            {"name": APP, "image": image}
        ]}}}}))
        .await
    }

    /// The revision sluice computes for the user's Deployment's template as stored now.
    pub async fn target_revision(&self) -> String {
        let target = self.deployments().get(APP).await.expect("the target");
        let template = serde_json::to_value(target.spec.expect("a spec").template)
            .expect("a template serializes");
        sluice_strategies::release::template_hash(&template)
    }

    /// Sends `rps` requests per second straight to Service `name` (`sandbox.sluice.dev/rps`).
    pub async fn send_to_service(&self, name: &str, rps: u32) {
        let services: Api<Service> = Api::namespaced(self.client.clone(), NS);
        let patch =
            json!({"metadata": {"annotations": {"sandbox.sluice.dev/rps": rps.to_string()}}});
        services
            .patch(name, &PatchParams::default(), &Patch::Merge(patch))
            .await
            .unwrap_or_else(|e| panic!("Service {name} annotated: {e}"));
    }

    /// The notes of erp-system's Events, of one reason or of all.
    pub async fn event_notes(&self, reason: Option<&str>) -> Vec<String> {
        let events: Api<k8s_openapi::api::events::v1::Event> =
            Api::namespaced(self.client.clone(), NS);
        events
            .list(&Default::default())
            .await
            .expect("Events")
            .items
            .into_iter()
            .filter(|e| reason.is_none_or(|r| e.reason.as_deref() == Some(r)))
            .filter_map(|e| e.note)
            .collect()
    }

    pub fn history(&self) -> History {
        History::new(self.sandbox.store().history())
    }

    /// The sandbox's simulated metrics, Prometheus text format.
    pub async fn metrics_text(&self) -> String {
        reqwest::get(self.sandbox.metrics_url())
            .await
            .expect("the sandbox serves /metrics")
            .text()
            .await
            .expect("a body")
    }
}

/// `nginx_ingress_controller_requests` samples of the metrics text: labels and value.
pub fn ingress_requests(text: &str) -> Vec<(std::collections::BTreeMap<String, String>, f64)> {
    samples(text, "nginx_ingress_controller_requests")
}

/// The samples of one metric in the metrics text: labels and value.
pub fn samples(text: &str, metric: &str) -> Vec<(std::collections::BTreeMap<String, String>, f64)> {
    let prefix = format!("{metric}{{");
    text.lines()
        .filter_map(|line| line.strip_prefix(prefix.as_str()))
        .filter_map(|rest| {
            let (labels, value) = rest.rsplit_once("} ")?;
            Some((parse_labels(labels), value.trim().parse().ok()?))
        })
        .collect()
}

/// `a="x",b="y"` as a map (values with `\"` escapes are unescaped).
fn parse_labels(text: &str) -> std::collections::BTreeMap<String, String> {
    let mut labels = std::collections::BTreeMap::new();
    let mut rest = text;
    while let Some((name, after)) = rest.split_once("=\"") {
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, escaped)) = chars.next() {
                        value.push(if escaped == 'n' { '\n' } else { escaped });
                    }
                }
                '"' => {
                    end = i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        labels.insert(name.trim_start_matches(',').to_string(), value);
        rest = &after[end..];
    }
    labels
}
