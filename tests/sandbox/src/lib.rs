//! sluice-sandbox: a simulated Kubernetes cluster on 127.0.0.1 that the real `kube` client and the
//! real `kubectl` drive, with simulated workloads, ingress-nginx traffic and metrics, and a real
//! Prometheus scraping them. See README.md beside this crate for what is faithful and what is not.

pub mod api;
pub mod control;
pub mod faults;
pub mod prometheus;
pub mod rbac;
pub mod store;
pub mod testing;
pub mod traffic;
pub mod workload;

use std::collections::BTreeSet;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use faults::Faults;
use prometheus::{Prometheus, PrometheusError};
use store::Store;
use traffic::{ClusterView, ImageBehavior, IngressOptions, TrafficEngine};
use workload::Workloads;

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("the API server stopped: {0}")]
    Serve(std::io::Error),
    #[error(transparent)]
    Prometheus(#[from] PrometheusError),
    #[error("invalid sandbox configuration: {0}")]
    Config(String),
    #[error("cannot create {what}: {source}")]
    Setup {
        what: &'static str,
        source: store::ApiError,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

/// How a sandbox runs.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// 0: any free port.
    pub port: u16,
    /// Seed of the traffic simulator: same seed, same outcomes.
    pub seed: u64,
    pub image_behaviors: Vec<ImageBehavior>,
    /// Start a real Prometheus scraping the sandbox's metrics every second.
    pub prometheus: bool,
    /// How often simulated traffic is generated.
    pub traffic_tick: Duration,
    /// How often idle watches with bookmarks get one.
    pub bookmark_interval: Duration,
    /// Events kept for watch resumption and history.
    pub log_capacity: usize,
    /// ingress-nginx's `--watch-ingress-without-class`: also route Ingresses that name no class.
    pub watch_ingress_without_class: bool,
    /// ingress-nginx's `--metrics-per-host`: request metrics carry a `host` label, and (unless
    /// `metrics_per_undefined_host`) only requests for a host some Ingress declares are counted.
    pub metrics_per_host: bool,
    /// ingress-nginx's `--metrics-per-undefined-host`: count requests for undeclared hosts too.
    pub metrics_per_undefined_host: bool,
}

impl SandboxConfig {
    fn ingress_options(&self) -> Result<IngressOptions, SandboxError> {
        // ingress-nginx refuses to start with this combination.
        if self.metrics_per_undefined_host && !self.metrics_per_host {
            return Err(SandboxError::Config(
                "metrics_per_undefined_host requires metrics_per_host".into(),
            ));
        }
        Ok(IngressOptions {
            watch_without_class: self.watch_ingress_without_class,
            metrics_per_host: self.metrics_per_host,
            metrics_per_undefined_host: self.metrics_per_undefined_host,
        })
    }
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            port: 0,
            seed: 1,
            image_behaviors: Vec::new(),
            prometheus: false,
            traffic_tick: Duration::from_millis(200),
            bookmark_interval: Duration::from_secs(5),
            log_capacity: store::DEFAULT_LOG_CAPACITY,
            watch_ingress_without_class: false,
            metrics_per_host: true,
            metrics_per_undefined_host: false,
        }
    }
}

/// A running sandbox. Dropping it stops everything; `shutdown` waits for it.
pub struct Sandbox {
    addr: SocketAddr,
    store: Arc<Store>,
    faults: Arc<Faults>,
    workloads: Arc<Workloads>,
    authority: Arc<rbac::Authority>,
    traffic: Arc<Mutex<TrafficEngine>>,
    prometheus: Option<Prometheus>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Sandbox {
    /// Binds 127.0.0.1:`config.port` and starts the API server, the simulators and (if asked)
    /// Prometheus.
    pub async fn start(config: SandboxConfig) -> Result<Sandbox, SandboxError> {
        let ingress_options = config.ingress_options()?;
        let addr = SocketAddr::from(([127, 0, 0, 1], config.port));
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| SandboxError::Bind { addr, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| SandboxError::Bind { addr, source })?;
        let store = Arc::new(Store::new(config.log_capacity));
        install_ingress_class(&store)?;
        let faults = Arc::new(Faults::default());
        let workloads = Arc::new(Workloads::default());
        let authority = Arc::new(rbac::Authority::default());
        let traffic = Arc::new(Mutex::new(TrafficEngine::with_options(
            config.seed,
            config.image_behaviors.clone(),
            ingress_options,
        )));
        let (stop, stopped) = watch::channel(false);

        let metrics_source = traffic.clone();
        let api_state = Arc::new(api::ApiState {
            store: store.clone(),
            faults: faults.clone(),
            workloads: workloads.clone(),
            metrics: Arc::new(move || lock(&metrics_source).render_metrics()),
            bookmark_interval: config.bookmark_interval,
            authority: authority.clone(),
        });
        let mut tasks = Vec::new();
        let server_stop = wait_for_stop(stopped.clone());
        tasks.push(tokio::spawn(async move {
            if let Err(err) = serve(listener, api_state, server_stop).await {
                tracing::error!(error = %err, "sandbox API server stopped");
            }
        }));
        tasks.push(tokio::spawn(
            workloads.clone().run(store.clone(), stopped.clone()),
        ));
        tasks.push(tokio::spawn(drive_traffic(
            store.clone(),
            workloads.clone(),
            traffic.clone(),
            config.traffic_tick,
            stopped.clone(),
        )));
        let mut sandbox = Sandbox {
            addr,
            store,
            faults,
            workloads,
            authority,
            traffic,
            prometheus: None,
            stop,
            tasks,
        };
        if config.prometheus {
            sandbox.prometheus = Some(Prometheus::start(&addr.to_string(), "/metrics").await?);
        }
        tracing::info!(api = %sandbox.api_url(), "sandbox listening");
        Ok(sandbox)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn api_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn metrics_url(&self) -> String {
        format!("http://{}/metrics", self.addr)
    }

    pub fn prometheus_url(&self) -> Option<String> {
        self.prometheus.as_ref().map(|p| p.url())
    }

    /// Has the sandbox's Prometheus, if it runs one, scrape the controller's `/metrics` at
    /// `target` (job `sluice`).
    pub fn scrape_controller(&self, target: &str) -> std::io::Result<()> {
        match &self.prometheus {
            Some(prometheus) => prometheus.scrape_controller(target),
            None => Ok(()),
        }
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    pub fn faults(&self) -> &Arc<Faults> {
        &self.faults
    }

    /// The RBAC decisions on requests that carried a ServiceAccount token, oldest first.
    pub fn authorizations(&self) -> Vec<rbac::Decision> {
        self.authority.decisions()
    }

    /// A token for ServiceAccount `namespace/name`, as `kubectl create token` gets one.
    pub fn service_account_token(&self, namespace: &str, name: &str) -> String {
        self.authority.issue(namespace, name)
    }

    pub fn workloads(&self) -> &Arc<Workloads> {
        &self.workloads
    }

    pub fn total_requests(&self) -> u64 {
        lock(&self.traffic).total_requests()
    }

    /// A kubeconfig whose one context points at this sandbox (plain HTTP, no credentials).
    pub fn kubeconfig(&self) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: sluice-sandbox\n  cluster:\n    server: {}\ncontexts:\n- name: sluice-sandbox\n  context:\n    cluster: sluice-sandbox\n    user: sluice-sandbox\n    namespace: default\ncurrent-context: sluice-sandbox\nusers:\n- name: sluice-sandbox\n  user: {{}}\n",
            self.api_url()
        )
    }

    pub fn write_kubeconfig(&self, path: &Path) -> Result<(), SandboxError> {
        write_file(path, &self.kubeconfig())
    }

    /// `KEY=value` lines for scripts: KUBECONFIG, SANDBOX_API_URL, SANDBOX_METRICS_URL, PROMETHEUS_URL.
    pub fn env_file(&self, kubeconfig: &Path) -> String {
        let mut lines = format!(
            "KUBECONFIG={}\nSANDBOX_API_URL={}\nSANDBOX_METRICS_URL={}\n",
            kubeconfig.display(),
            self.api_url(),
            self.metrics_url()
        );
        if let Some(url) = self.prometheus_url() {
            lines.push_str(&format!("PROMETHEUS_URL={url}\n"));
        }
        lines
    }

    /// Stops the server, the simulators and Prometheus, and waits for them.
    pub async fn shutdown(mut self) {
        // Open watches would hold graceful shutdown for up to their timeout: end them first.
        self.faults.cut_watches();
        let _ = self.stop.send(true);
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
        if let Some(prometheus) = self.prometheus.take() {
            prometheus.stop().await;
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.faults.cut_watches();
        let _ = self.stop.send(true);
    }
}

/// Writes `text` to `path` all at once (a temporary file beside it, renamed): a script or test
/// that waits for the kubeconfig or the env file to appear never reads it half written.
pub fn write_file(path: &Path, text: &str) -> Result<(), SandboxError> {
    let failed = |source| SandboxError::Write {
        path: path.display().to_string(),
        source,
    };
    let mut partial = path.as_os_str().to_owned();
    partial.push(format!(".{}.partial", std::process::id()));
    let partial = std::path::PathBuf::from(partial);
    std::fs::write(&partial, text).map_err(failed)?;
    std::fs::rename(&partial, path).map_err(|source| {
        let _ = std::fs::remove_file(&partial);
        failed(source)
    })
}

/// The IngressClass that installing ingress-nginx creates (its chart does not mark it default).
fn install_ingress_class(store: &Store) -> Result<(), SandboxError> {
    let setup = |source| SandboxError::Setup {
        what: "IngressClass nginx",
        source,
    };
    let kind = store
        .resolve("networking.k8s.io", "v1", "ingressclasses")
        .ok_or_else(|| {
            setup(store::ApiError::not_found(
                "networking.k8s.io",
                "ingressclasses",
                "nginx",
            ))
        })?;
    let body = serde_json::json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "IngressClass",
        "metadata": {
            "name": traffic::class::DEFAULT_CLASS,
            "labels": {"app.kubernetes.io/name": "ingress-nginx", "app.kubernetes.io/component": "controller"},
        },
        "spec": {"controller": traffic::class::CONTROLLER},
    });
    store
        .create(&kind, "", body, &store::WriteOptions::default())
        .map(|_| ())
        .map_err(setup)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

async fn wait_for_stop(mut stopped: watch::Receiver<bool>) {
    // Either the flag flips or the sender is gone: both mean stop.
    let _ = stopped.wait_for(|stop| *stop).await;
}

/// Serves the API on `listener` until `shutdown` completes (mini-redis style, so tests can run it
/// on port 0 and stop it when they like).
pub async fn serve(
    listener: TcpListener,
    state: Arc<api::ApiState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), SandboxError> {
    use axum::serve::ListenerExt;
    // Watch events are small writes on a long-lived response: with Nagle's algorithm one could
    // wait for the client's delayed ACK (40 ms on Linux) before it left.
    let listener = listener.tap_io(|tcp| {
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::debug!(error = %err, "cannot set TCP_NODELAY on a connection");
        }
    });
    axum::serve(listener, api::router(state))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(SandboxError::Serve)
}

async fn drive_traffic(
    store: Arc<Store>,
    workloads: Arc<Workloads>,
    traffic: Arc<Mutex<TrafficEngine>>,
    tick: Duration,
    mut stopped: watch::Receiver<bool>,
) {
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last = Instant::now();
    // Traffic starts only at Ingresses and Services with an rps annotation, and never leaves their
    // namespace, so a tick reads only those namespaces. Finding them takes a scan of every Ingress
    // and Service, redone only when the store has changed: at 10,000s of objects, scanning and
    // copying everything on every tick kept an idle sandbox busy.
    let mut sourced: BTreeSet<String> = BTreeSet::new();
    let mut scanned_at: Option<u64> = None;
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            _ = stopped.changed() => return,
        }
        let resource_version = store.resource_version();
        if scanned_at != Some(resource_version) {
            sourced = source_namespaces(&store);
            scanned_at = Some(resource_version);
        }
        // Namespaces in order, objects in store order: the same sources in the same order as a
        // view of the whole cluster, so the same seed still gives the same outcomes.
        let mut view = ClusterView {
            ingress_classes: store.list_all("networking.k8s.io", "ingressclasses", None),
            ingresses: Vec::new(),
            services: Vec::new(),
            pods: Vec::new(),
        };
        for ns in &sourced {
            view.ingresses
                .extend(store.list_all("networking.k8s.io", "ingresses", Some(ns)));
            view.services
                .extend(store.list_all("", "services", Some(ns)));
        }
        if !sourced.is_empty() {
            view.pods = workloads.pods_in(|ns| sourced.contains(ns));
        }
        let now = Instant::now();
        lock(&traffic).advance(&view, now - last);
        last = now;
    }
}

/// Namespaces holding an Ingress or a Service that generates traffic.
fn source_namespaces(store: &Store) -> BTreeSet<String> {
    let ingresses = store.list_all("networking.k8s.io", "ingresses", None);
    let services = store.list_all("", "services", None);
    ingresses
        .iter()
        .chain(&services)
        .filter(|obj| traffic::source::rps(obj).is_some())
        .map(|obj| store::namespace_of(obj).to_string())
        .collect()
}
