//! Scale benchmark of the sandbox (not a test): how it holds up with an ERP-sized cluster.
//!
//! ```text
//! cargo run --release -p sluice-sandbox --example scale [-- --objects 10000] [-- --help]
//! ```
//!
//! Starts a sandbox in-process on a free port and drives it through its real HTTP API with the real
//! `kube` client:
//! - load: N Deployments, N Services and N Ingresses over ERP-style namespaces, `--concurrency`
//!   creates in flight; then waits until the workload simulator has made every Deployment ready;
//! - idle CPU of the process with nothing asked of the API (the simulators' background cost);
//! - LIST of each kind across all namespaces, whole and paginated, read as bytes only (server and
//!   transfer) and decoded to typed objects (what a reflector pays), median and p90 of `--reps`;
//! - watch fan-out: W watches on Deployments from the current resourceVersion, then M annotation
//!   patches, each carrying a sequence number the watchers key on: once one at a time (the next
//!   after every watcher has the previous: latency), once as a burst (throughput);
//! - VmRSS and VmHWM at each stage, and the server's share: what the sandbox's shutdown frees.
//!
//! The client lives in the same process and on the same cores as the server, so every figure is
//! "sandbox + client"; the report says where it can tell the two apart. `--json FILE` also writes
//! the figures as JSON.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{ListParams, ObjectList, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use serde_json::json;
use sluice_sandbox::{Sandbox, SandboxConfig};
use tokio::sync::mpsc;
use tokio::time::Instant;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// The annotation whose value identifies one benchmark write.
const SEQ_ANNOTATION: &str = "bench.sluice.dev/seq";

#[derive(Parser, Debug, Clone)]
#[command(about = "Scale benchmark of the sluice sandbox through its real HTTP API")]
struct Args {
    /// Objects of each kind (Deployments, Services, Ingresses).
    #[arg(long, default_value_t = 10_000)]
    objects: usize,
    /// Namespaces the objects are spread over.
    #[arg(long, default_value_t = 10)]
    namespaces: usize,
    /// Creates in flight during the load.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Repetitions of each LIST.
    #[arg(long, default_value_t = 9)]
    reps: usize,
    /// Page size of the paginated LISTs.
    #[arg(long, default_value_t = 500)]
    page: u32,
    /// Concurrent watches on Deployments across all namespaces.
    #[arg(long, default_value_t = 50)]
    watchers: usize,
    /// Patches per watch round (one round one at a time, one round `--concurrency` at a time).
    #[arg(long, default_value_t = 200)]
    updates: usize,
    /// Seconds of idle time over which the idle CPU cost is measured.
    #[arg(long, default_value_t = 5)]
    idle_secs: u64,
    /// Events the sandbox's log keeps (its `SandboxConfig::log_capacity`).
    #[arg(long, default_value_t = sluice_sandbox::store::DEFAULT_LOG_CAPACITY)]
    log_capacity: usize,
    /// Also write the figures as JSON to this file.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
}

const NAMESPACES: &[&str] = &[
    "erp-finance",
    "erp-sales",
    "erp-inventory",
    "erp-hr",
    "erp-procurement",
    "erp-logistics",
    "erp-crm",
    "erp-billing",
    "erp-manufacturing",
    "erp-reporting",
];
const COMPONENTS: &[&str] = &[
    "invoice",
    "ledger",
    "payroll",
    "order",
    "stock",
    "shipment",
    "customer",
    "supplier",
    "quote",
    "tax",
    "pricing",
    "warehouse",
    "contract",
    "budget",
    "asset",
    "timesheet",
    "catalog",
    "returns",
    "forecast",
    "audit",
];
const ROLES: &[&str] = &["api", "worker", "gateway", "scheduler", "sync"];

fn namespace(args: &Args, i: usize) -> String {
    let ns = i % args.namespaces;
    match NAMESPACES.get(ns) {
        Some(name) => (*name).to_string(),
        None => format!("erp-unit-{ns:02}"),
    }
}

fn object_name(i: usize) -> String {
    let component = COMPONENTS[i % COMPONENTS.len()];
    let role = ROLES[(i / COMPONENTS.len()) % ROLES.len()];
    format!("{component}-{role}-{i:05}")
}

fn deployment(args: &Args, i: usize) -> Result<Deployment, Error> {
    let name = object_name(i);
    let component = COMPONENTS[i % COMPONENTS.len()];
    Ok(serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": namespace(args, i),
            "labels": {"app": name, "erp.example/component": component, "erp.example/tier": "backend"},
            "annotations": {"erp.example/owner": format!("team-{component}")},
        },
        "spec": {
            "replicas": 1 + i % 3,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name, "erp.example/component": component}},
                "spec": {"containers": [{
                    "name": "app",
                    "image": format!("registry.erp.example/{component}:4.2.{}", i % 7),
                    "ports": [{"name": "http", "containerPort": 8080}],
                    "env": [{"name": "ERP_COMPONENT", "value": component}, {"name": "LOG_LEVEL", "value": "info"}],
                    "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}},
                    "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 5},
                }]},
            },
        },
    }))?)
}

fn service(args: &Args, i: usize) -> Result<Service, Error> {
    let name = object_name(i);
    Ok(serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace(args, i), "labels": {"app": name}},
        "spec": {
            "selector": {"app": name},
            "ports": [{"name": "http", "port": 80, "targetPort": 8080}],
        },
    }))?)
}

fn ingress(args: &Args, i: usize) -> Result<Ingress, Error> {
    let name = object_name(i);
    let ns = namespace(args, i);
    Ok(serde_json::from_value(json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": name}},
        "spec": {
            "ingressClassName": "nginx",
            "rules": [{
                "host": format!("{name}.{ns}.erp.example"),
                "http": {"paths": [{
                    "path": "/",
                    "pathType": "Prefix",
                    "backend": {"service": {"name": name, "port": {"number": 80}}},
                }]},
            }],
        },
    }))?)
}

// ---------------------------------------------------------------------------------------------
// Process facts: memory, CPU time, machine.

#[derive(Debug, Clone, Copy, Default)]
struct Memory {
    /// VmRSS as found, in KiB.
    rss: u64,
    /// VmRSS after glibc has returned its free pages (malloc_trim), in KiB: closer to live data.
    rss_trimmed: u64,
    /// VmHWM (peak RSS so far), in KiB.
    hwm: u64,
}

fn proc_status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status.lines().find_map(|line| {
                let rest = line.strip_prefix(field)?.strip_prefix(':')?;
                rest.split_whitespace().next()?.parse().ok()
            })
        })
        .unwrap_or(0)
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim_heap() {
    unsafe extern "C" {
        fn malloc_trim(pad: usize) -> std::ffi::c_int;
    }
    // SAFETY: glibc's malloc_trim only releases free memory back to the kernel.
    unsafe {
        malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim_heap() {}

fn memory() -> Memory {
    let rss = proc_status_kib("VmRSS");
    let hwm = proc_status_kib("VmHWM");
    trim_heap();
    Memory {
        rss,
        rss_trimmed: proc_status_kib("VmRSS"),
        hwm,
    }
}

/// CPU time (user + system) of the whole process, in seconds (USER_HZ = 100 on Linux).
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    // After the command: state is field 3, utime 14, stime 15.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

fn machine() -> (usize, String, String) {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|k| k.trim().to_string())
        .unwrap_or_default();
    (cores, model, kernel)
}

// ---------------------------------------------------------------------------------------------
// Statistics.

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Nearest-rank percentile (p in 0..=100) of unsorted samples, in ms.
fn percentile(samples: &[Duration], p: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    let mut sorted = samples.to_vec();
    sorted.sort();
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    ms(sorted[rank.clamp(1, sorted.len()) - 1])
}

fn max_ms(samples: &[Duration]) -> f64 {
    samples.iter().max().map_or(f64::NAN, |d| ms(*d))
}

// ---------------------------------------------------------------------------------------------
// Load.

struct LoadFigures {
    kind: &'static str,
    count: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl LoadFigures {
    fn rate(&self) -> f64 {
        self.count as f64 / self.elapsed.as_secs_f64()
    }
}

async fn load<K, F>(
    client: &Client,
    args: &Args,
    kind: &'static str,
    make: F,
) -> Result<LoadFigures, Error>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
    F: Fn(&Args, usize) -> Result<K, Error>,
{
    // Bodies are built first so that the timed part is the API's work, not the benchmark's.
    let bodies: Vec<(String, K)> = (0..args.objects)
        .map(|i| Ok((namespace(args, i), make(args, i)?)))
        .collect::<Result<_, Error>>()?;
    let apis: HashMap<String, Api<K>> = (0..args.namespaces.min(args.objects))
        .map(|i| {
            let ns = namespace(args, i);
            (ns.clone(), Api::namespaced(client.clone(), &ns))
        })
        .collect();
    let post = PostParams::default();
    let started = Instant::now();
    let latencies: Vec<Duration> = futures::stream::iter(bodies)
        .map(|(ns, body)| {
            let api = &apis[&ns];
            let post = &post;
            async move {
                let sent = Instant::now();
                api.create(post, &body).await?;
                Ok::<_, Error>(sent.elapsed())
            }
        })
        .buffer_unordered(args.concurrency)
        .try_collect()
        .await?;
    Ok(LoadFigures {
        kind,
        count: latencies.len(),
        elapsed: started.elapsed(),
        latencies,
    })
}

/// Waits until the workload simulator has made every Deployment ready and the store is quiet
/// (read in-process, so that polling does not load the API being measured).
async fn wait_settled(sandbox: &Sandbox, expected: usize) -> Result<Duration, Error> {
    let started = Instant::now();
    let mut quiet_since: Option<(u64, Instant)> = None;
    loop {
        let deployments = sandbox.store().list_all("apps", "deployments", None);
        let ready = deployments
            .iter()
            .filter(|d| {
                let want = d.pointer("/spec/replicas").and_then(|v| v.as_u64());
                let have = d.pointer("/status/readyReplicas").and_then(|v| v.as_u64());
                want.is_some() && want == have
            })
            .count();
        drop(deployments);
        let rv = sandbox.store().resource_version();
        if ready == expected {
            match quiet_since {
                Some((seen, since)) if seen == rv => {
                    if since.elapsed() >= Duration::from_millis(500) {
                        return Ok(started.elapsed());
                    }
                }
                _ => quiet_since = Some((rv, Instant::now())),
            }
        }
        if started.elapsed() > Duration::from_secs(120) {
            return Err(format!(
                "only {ready} of {expected} Deployments became ready within 120 s"
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Process CPU over an idle stretch, as a share of one core.
async fn idle_cpu(secs: u64) -> f64 {
    let (cpu0, t0) = (cpu_seconds(), Instant::now());
    tokio::time::sleep(Duration::from_secs(secs)).await;
    (cpu_seconds() - cpu0) / t0.elapsed().as_secs_f64()
}

// ---------------------------------------------------------------------------------------------
// Lists.

#[derive(Default)]
struct ListFigures {
    /// (kind, variant) -> latencies
    samples: Vec<(&'static str, &'static str, Vec<Duration>)>,
    /// kind -> bytes of one full raw list
    bytes: HashMap<&'static str, usize>,
}

impl ListFigures {
    fn record(&mut self, kind: &'static str, variant: &'static str, d: Duration) {
        match self
            .samples
            .iter_mut()
            .find(|(k, v, _)| *k == kind && *v == variant)
        {
            Some((_, _, samples)) => samples.push(d),
            None => self.samples.push((kind, variant, vec![d])),
        }
    }
}

/// A full list, decoded to typed objects (what a controller's reflector does).
async fn typed_list<K>(api: &Api<K>, expected: usize) -> Result<Duration, Error>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let started = Instant::now();
    let list = api.list(&ListParams::default()).await?;
    let elapsed = started.elapsed();
    check_count(list.items.len(), expected)?;
    Ok(elapsed)
}

async fn typed_paged_list<K>(api: &Api<K>, page: u32, expected: usize) -> Result<Duration, Error>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let started = Instant::now();
    let mut params = ListParams::default().limit(page);
    let mut count = 0;
    loop {
        let list = api.list(&params).await?;
        count += list.items.len();
        match list.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => break,
        }
    }
    let elapsed = started.elapsed();
    check_count(count, expected)?;
    Ok(elapsed)
}

/// A full list read as bytes only: the server's work plus the transfer, without decoding.
async fn raw_list(client: &Client, path: &str) -> Result<(Duration, usize), Error> {
    let request = kube::core::Request::new(path).list(&ListParams::default())?;
    let started = Instant::now();
    let text = client.request_text(request).await?;
    Ok((started.elapsed(), text.len()))
}

/// Paginated, each page read as bytes and scanned only for its continue token.
async fn raw_paged_list(
    client: &Client,
    path: &str,
    page: u32,
    expected: usize,
) -> Result<Duration, Error> {
    let started = Instant::now();
    let mut params = ListParams::default().limit(page);
    let mut count = 0;
    loop {
        let request = kube::core::Request::new(path).list(&params)?;
        let list: ObjectList<serde::de::IgnoredAny> = client.request(request).await?;
        count += list.items.len();
        match list.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => break,
        }
    }
    let elapsed = started.elapsed();
    check_count(count, expected)?;
    Ok(elapsed)
}

fn check_count(got: usize, expected: usize) -> Result<(), Error> {
    if got == expected {
        Ok(())
    } else {
        Err(format!("a list returned {got} items, expected {expected}").into())
    }
}

async fn lists(client: &Client, args: &Args) -> Result<ListFigures, Error> {
    let n = args.objects;
    let mut figures = ListFigures::default();
    let deployments: Api<Deployment> = Api::all(client.clone());
    let services: Api<Service> = Api::all(client.clone());
    let ingresses: Api<Ingress> = Api::all(client.clone());
    let paths = [
        ("deployments", "/apis/apps/v1/deployments"),
        ("services", "/api/v1/services"),
        ("ingresses", "/apis/networking.k8s.io/v1/ingresses"),
    ];
    // One unmeasured round first (connections, allocator), then the repetitions, interleaved so
    // that no variant always runs right after the same other one.
    for rep in 0..=args.reps {
        for (kind, path) in paths {
            let (raw, bytes) = raw_list(client, path).await?;
            let raw_paged = raw_paged_list(client, path, args.page, n).await?;
            let typed = match kind {
                "deployments" => typed_list(&deployments, n).await?,
                "services" => typed_list(&services, n).await?,
                _ => typed_list(&ingresses, n).await?,
            };
            let typed_paged = match kind {
                "deployments" => typed_paged_list(&deployments, args.page, n).await?,
                "services" => typed_paged_list(&services, args.page, n).await?,
                _ => typed_paged_list(&ingresses, args.page, n).await?,
            };
            if rep == 0 {
                figures.bytes.insert(kind, bytes);
                continue;
            }
            figures.record(kind, "full, bytes only", raw);
            figures.record(kind, "full, typed", typed);
            figures.record(kind, "paged, bytes only", raw_paged);
            figures.record(kind, "paged, typed", typed_paged);
        }
    }
    Ok(figures)
}

// ---------------------------------------------------------------------------------------------
// Watch fan-out.

/// One delivery: (watcher, sequence number, when it arrived).
type Delivery = (usize, usize, Instant);

struct WatcherOutcome {
    rewatches: usize,
    errors: usize,
    events: usize,
}

/// Watches Deployments across all namespaces from `rv`, reporting every benchmark write it sees,
/// and re-watching from the last resourceVersion if the server ends the stream (as a reflector
/// would). Stops when `stop` flips.
async fn watcher(
    id: usize,
    api: Api<Deployment>,
    mut rv: String,
    ready: mpsc::UnboundedSender<()>,
    deliveries: mpsc::UnboundedSender<Delivery>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> WatcherOutcome {
    let params = WatchParams::default().timeout(290);
    let mut outcome = WatcherOutcome {
        rewatches: 0,
        errors: 0,
        events: 0,
    };
    let mut ready = Some(ready);
    loop {
        let stream = tokio::select! {
            opened = api.watch(&params, &rv) => opened,
            _ = stop.wait_for(|s| *s) => return outcome,
        };
        let stream = match stream {
            Ok(stream) => stream,
            Err(_) => {
                outcome.errors += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // The server has subscribed once the response has started.
        if let Some(ready) = ready.take() {
            let _ = ready.send(());
        }
        let mut stream = std::pin::pin!(stream);
        loop {
            let event = tokio::select! {
                event = stream.next() => event,
                _ = stop.wait_for(|s| *s) => return outcome,
            };
            let object = match event {
                None => break,
                Some(Ok(WatchEvent::Added(d) | WatchEvent::Modified(d))) => d,
                Some(Ok(WatchEvent::Deleted(d))) => {
                    if let Some(v) = d.metadata.resource_version {
                        rv = v;
                    }
                    continue;
                }
                Some(Ok(WatchEvent::Bookmark(b))) => {
                    rv = b.metadata.resource_version;
                    continue;
                }
                Some(Ok(WatchEvent::Error(_)) | Err(_)) => {
                    outcome.errors += 1;
                    break;
                }
            };
            let arrived = Instant::now();
            outcome.events += 1;
            if let Some(v) = &object.metadata.resource_version {
                rv.clone_from(v);
            }
            let seq = object
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(SEQ_ANNOTATION))
                .and_then(|s| s.parse::<usize>().ok());
            if let Some(seq) = seq {
                let _ = deliveries.send((id, seq, arrived));
            }
        }
        outcome.rewatches += 1;
    }
}

struct RoundFigures {
    name: String,
    updates: usize,
    elapsed: Duration,
    /// Write round trips (request sent -> response read).
    acks: Vec<Duration>,
    /// Every (watcher, update) delivery: write sent -> event decoded on that watcher.
    deliveries: Vec<Duration>,
    /// Per update: write sent -> the last watcher had it.
    all_delivered: Vec<Duration>,
    delivered: usize,
    expected: usize,
    duplicates: usize,
}

/// The i-th benchmark write goes to a Deployment spread over all of them.
fn update_target(args: &Args, seq: usize) -> usize {
    (seq * 7919 + 13) % args.objects
}

async fn patch_one(
    apis: &HashMap<String, Api<Deployment>>,
    args: &Args,
    seq: usize,
) -> Result<(usize, Instant, Instant), Error> {
    let i = update_target(args, seq);
    let patch = json!({"metadata": {"annotations": {SEQ_ANNOTATION: seq.to_string()}}});
    let sent = Instant::now();
    apis[&namespace(args, i)]
        .patch(
            &object_name(i),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await?;
    Ok((seq, sent, Instant::now()))
}

/// What the watchers have reported so far.
struct Seen {
    /// first[watcher][seq]: when that watcher first had that write.
    first: Vec<Vec<Option<Instant>>>,
    /// Watchers that have each write.
    per_seq: Vec<usize>,
    duplicates: usize,
}

impl Seen {
    /// Takes deliveries until `done` or `deadline`.
    async fn collect(
        &mut self,
        deliveries: &mut mpsc::UnboundedReceiver<Delivery>,
        deadline: Instant,
        done: impl Fn(&Seen) -> bool,
    ) {
        while !done(self) {
            let Ok(Some((w, seq, at))) = tokio::time::timeout_at(deadline, deliveries.recv()).await
            else {
                return;
            };
            let Some(slot) = self.first.get_mut(w).and_then(|s| s.get_mut(seq)) else {
                continue;
            };
            if slot.is_some() {
                self.duplicates += 1;
            } else {
                *slot = Some(at);
                self.per_seq[seq] += 1;
            }
        }
    }
}

fn round_figures(
    name: String,
    args: &Args,
    seqs: std::ops::Range<usize>,
    writes: Vec<(usize, Instant, Instant)>,
    elapsed: Duration,
    seen: &mut Seen,
) -> RoundFigures {
    let mut sent_at = HashMap::new();
    let mut acks = Vec::new();
    for (seq, sent, acked) in writes {
        sent_at.insert(seq, sent);
        acks.push(acked - sent);
    }
    let mut deliveries = Vec::new();
    let mut all_delivered = Vec::new();
    for seq in seqs.clone() {
        let Some(sent) = sent_at.get(&seq) else {
            continue;
        };
        let times: Vec<Duration> = seen
            .first
            .iter()
            .filter_map(|w| w[seq].map(|at| at.saturating_duration_since(*sent)))
            .collect();
        if times.len() == args.watchers
            && let Some(last) = times.iter().max()
        {
            all_delivered.push(*last);
        }
        deliveries.extend(times);
    }
    let duplicates = std::mem::take(&mut seen.duplicates);
    RoundFigures {
        name,
        updates: seqs.len(),
        elapsed,
        acks,
        delivered: deliveries.len(),
        expected: seqs.len() * args.watchers,
        deliveries,
        all_delivered,
        duplicates,
    }
}

async fn watch_fanout(
    client: &Client,
    args: &Args,
) -> Result<(Vec<RoundFigures>, usize, usize, usize), Error> {
    let all: Api<Deployment> = Api::all(client.clone());
    let rv = all
        .list_metadata(&ListParams::default().limit(1))
        .await?
        .metadata
        .resource_version
        .ok_or("a list without a resourceVersion")?;
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel();
    let (delivery_tx, mut delivery_rx) = mpsc::unbounded_channel::<Delivery>();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let watchers: Vec<_> = (0..args.watchers)
        .map(|id| {
            tokio::spawn(watcher(
                id,
                all.clone(),
                rv.clone(),
                ready_tx.clone(),
                delivery_tx.clone(),
                stop_rx.clone(),
            ))
        })
        .collect();
    drop((ready_tx, delivery_tx));
    for _ in 0..args.watchers {
        tokio::time::timeout(Duration::from_secs(30), ready_rx.recv())
            .await?
            .ok_or("a watcher stopped before its watch opened")?;
    }

    let apis: HashMap<String, Api<Deployment>> = (0..args.namespaces.min(args.objects))
        .map(|i| {
            let ns = namespace(args, i);
            (ns.clone(), Api::namespaced(client.clone(), &ns))
        })
        .collect();
    let m = args.updates;
    let mut seen = Seen {
        first: vec![vec![None; 2 * m]; args.watchers],
        per_seq: vec![0; 2 * m],
        duplicates: 0,
    };
    let mut rounds = Vec::new();
    let grace = Duration::from_secs(30);

    // Round 1: one write at a time, the next only once every watcher has the previous one: the
    // latency of a single change with nothing queued.
    let started = Instant::now();
    let mut writes = Vec::with_capacity(m);
    for seq in 0..m {
        writes.push(patch_one(&apis, args, seq).await?);
        let deadline = Instant::now() + Duration::from_secs(5);
        seen.collect(&mut delivery_rx, deadline, |s| {
            s.per_seq[seq] >= args.watchers
        })
        .await;
    }
    rounds.push(round_figures(
        "one at a time".into(),
        args,
        0..m,
        writes,
        started.elapsed(),
        &mut seen,
    ));

    // Round 2: a burst, `--concurrency` writes in flight: throughput of the fan-out.
    let started = Instant::now();
    let writes: Vec<(usize, Instant, Instant)> = futures::stream::iter(m..2 * m)
        .map(|seq| patch_one(&apis, args, seq))
        .buffer_unordered(args.concurrency)
        .try_collect()
        .await?;
    let deadline = Instant::now() + grace;
    seen.collect(&mut delivery_rx, deadline, |s| {
        s.per_seq[m..].iter().all(|&n| n >= args.watchers)
    })
    .await;
    rounds.push(round_figures(
        format!("burst, {} in flight", args.concurrency),
        args,
        m..2 * m,
        writes,
        started.elapsed(),
        &mut seen,
    ));
    let _ = stop_tx.send(true);
    let (mut rewatches, mut errors, mut events) = (0, 0, 0);
    for w in watchers {
        let outcome = w.await?;
        rewatches += outcome.rewatches;
        errors += outcome.errors;
        events += outcome.events;
    }
    Ok((rounds, rewatches, errors, events))
}

// ---------------------------------------------------------------------------------------------

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn print_memory(label: &str, m: &Memory) {
    println!(
        "  {label:<34} VmRSS {:>8.1} MiB   trimmed {:>8.1} MiB   VmHWM {:>8.1} MiB",
        mib(m.rss),
        mib(m.rss_trimmed),
        mib(m.hwm)
    );
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args = Args::parse();
    if args.objects == 0 || args.namespaces == 0 || args.concurrency == 0 {
        return Err("--objects, --namespaces and --concurrency must be at least 1".into());
    }
    let (cores, model, kernel) = machine();
    let n = args.objects;
    let total_started = Instant::now();
    println!(
        "sluice-sandbox scale benchmark: {n} each of Deployments, Services, Ingresses over {} namespaces",
        args.namespaces
    );
    println!("machine: {cores} cores, {model}, Linux {kernel}");
    if cfg!(debug_assertions) {
        println!("WARNING: a debug build; figures mean little. Use --release.");
    }

    let mem_start = memory();
    let sandbox = Sandbox::start(SandboxConfig {
        log_capacity: args.log_capacity,
        ..SandboxConfig::default()
    })
    .await?;
    let client = sandbox.client().await?;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    for i in 0..args.namespaces.min(n) {
        let ns: Namespace =
            serde_json::from_value(json!({"metadata": {"name": namespace(&args, i)}}))?;
        namespaces.create(&PostParams::default(), &ns).await?;
    }
    let idle_empty = idle_cpu(args.idle_secs.min(2)).await;
    let mem_empty = memory();

    // Load.
    println!("loading...");
    let load_started = Instant::now();
    let deployments = load(&client, &args, "Deployment", deployment).await?;
    let services = load(&client, &args, "Service", service).await?;
    let ingresses = load(&client, &args, "Ingress", ingress).await?;
    let load_elapsed = load_started.elapsed();
    let settle_after_load = wait_settled(&sandbox, n).await?;
    let converged = load_started.elapsed();
    let events_after_load = sandbox.store().resource_version();
    let mem_loaded = memory();
    println!("measuring idle CPU with {n} objects...");
    let idle_loaded = idle_cpu(args.idle_secs).await;

    // Lists.
    println!("listing...");
    let lists = lists(&client, &args).await?;
    let mem_listed = memory();

    // Watch fan-out.
    println!("watching...");
    let rv_before_watch = sandbox.store().resource_version();
    let (rounds, rewatches, watch_errors, watch_events) = watch_fanout(&client, &args).await?;
    let writes_during_watch = sandbox.store().resource_version() - rv_before_watch;
    let mem_watched = memory();

    // The server's share: what goes away when the sandbox does (the client stays).
    let log_len = sandbox.store().history().len();
    let store = Arc::downgrade(sandbox.store());
    sandbox.shutdown().await;
    // Connection tasks may hold the API state a little longer; wait until the store is gone.
    let shutdown_started = Instant::now();
    while store.strong_count() > 0 && shutdown_started.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let store_dropped = store.strong_count() == 0;
    // The last reference may have gone on another thread that is still freeing the objects:
    // measure until the figure holds still.
    let mut mem_after_shutdown = memory();
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let again = memory();
        let still = again.rss_trimmed.abs_diff(mem_after_shutdown.rss_trimmed) < 1024;
        mem_after_shutdown = again;
        if still {
            break;
        }
    }
    let total = total_started.elapsed();

    // Report.
    println!();
    println!(
        "== sluice-sandbox scale benchmark =========================================================="
    );
    println!(
        "machine   {cores} cores ({model}), Linux {kernel}; sandbox and kube client share one process"
    );
    println!(
        "objects   {n} Deployments (1-3 replicas), {n} Services, {n} Ingresses, {} namespaces",
        args.namespaces
    );
    println!();
    println!(
        "LOAD ({} creates in flight, typed kube create)        objects/s   p50 ms   p99 ms   wall s",
        args.concurrency
    );
    for l in [&deployments, &services, &ingresses] {
        println!(
            "  {:<50} {:>9.0} {:>8.2} {:>8.2} {:>8.2}",
            l.kind,
            l.rate(),
            percentile(&l.latencies, 50.0),
            percentile(&l.latencies, 99.0),
            l.elapsed.as_secs_f64()
        );
    }
    println!(
        "  all {} objects: {:.1} s; every Deployment ready (simulated) {:.1} s after the load ended, {:.1} s after it began",
        3 * n,
        load_elapsed.as_secs_f64(),
        settle_after_load.as_secs_f64(),
        converged.as_secs_f64()
    );
    println!(
        "  store resourceVersion after load: {events_after_load} (creates + simulated status writes)"
    );
    println!();
    println!(
        "LIST across all namespaces ({} reps; paged = limit {})  p50 ms   p90 ms   body",
        args.reps, args.page
    );
    for (kind, variant, samples) in &lists.samples {
        let body = if variant.starts_with("full") {
            format!("{:.1} MiB", lists.bytes[kind] as f64 / 1048576.0)
        } else {
            String::new()
        };
        println!(
            "  {:<50} {:>8.1} {:>8.1}   {body}",
            format!("{kind}, {variant}"),
            percentile(samples, 50.0),
            percentile(samples, 90.0)
        );
    }
    println!();
    println!(
        "WATCH fan-out: {} watches on deployments (all namespaces), {} annotation patches per round",
        args.watchers, args.updates
    );
    println!(
        "  latency: patch sent -> event decoded (typed) by a watcher; last: until the last watcher had it;\n  ack: the patch's own round trip"
    );
    println!(
        "  {:<32} {:>9} {:>8} {:>8} {:>8} {:>9} {:>9} {:>8}",
        "round", "delivered", "p50 ms", "p99 ms", "max ms", "last p50", "last p99", "ack p50"
    );
    for r in &rounds {
        println!(
            "  {:<32} {:>9} {:>8.2} {:>8.2} {:>8.2} {:>9.2} {:>9.2} {:>8.2}",
            r.name,
            format!("{}/{}", r.delivered, r.expected),
            percentile(&r.deliveries, 50.0),
            percentile(&r.deliveries, 99.0),
            max_ms(&r.deliveries),
            percentile(&r.all_delivered, 50.0),
            percentile(&r.all_delivered, 99.0),
            percentile(&r.acks, 50.0),
        );
    }
    for r in &rounds {
        println!(
            "  {}: {} writes delivered everywhere in {:.2} s ({:.0} writes/s, {:.0} deliveries/s), duplicates {}",
            r.name,
            r.updates,
            r.elapsed.as_secs_f64(),
            r.updates as f64 / r.elapsed.as_secs_f64(),
            r.delivered as f64 / r.elapsed.as_secs_f64(),
            r.duplicates
        );
    }
    println!(
        "  watch events decoded: {watch_events}; re-watches: {rewatches}; watch errors: {watch_errors}; store writes during the phase: {writes_during_watch}"
    );
    println!();
    println!("CPU (whole process, share of one core while nothing is asked of the API)");
    println!(
        "  empty sandbox                      {:>6.1} %",
        idle_empty * 100.0
    );
    println!(
        "  with {} objects               {:>6.1} %",
        3 * n,
        idle_loaded * 100.0
    );
    println!();
    println!("MEMORY (sandbox + client in one process; trimmed = after malloc_trim)");
    print_memory("start (nothing running)", &mem_start);
    print_memory("empty sandbox + client", &mem_empty);
    print_memory("after load (settled)", &mem_loaded);
    print_memory("after lists", &mem_listed);
    print_memory("after watch phase", &mem_watched);
    print_memory("after sandbox shutdown", &mem_after_shutdown);
    let server_share = mem_watched
        .rss_trimmed
        .saturating_sub(mem_after_shutdown.rss_trimmed);
    if !store_dropped {
        println!(
            "  WARNING: the store was still referenced 10 s after shutdown; the share below is not the server's"
        );
    }
    let json_bytes: usize = lists.bytes.values().sum();
    println!(
        "  server's share (trimmed RSS freed by the shutdown): {:.1} MiB for {} objects and {log_len} logged events",
        mib(server_share),
        3 * n
    );
    println!(
        "  for scale: the {} objects serialize to {:.1} MiB of JSON",
        3 * n,
        json_bytes as f64 / 1048576.0
    );
    println!();
    println!("total wall time {:.1} s", total.as_secs_f64());

    if let Some(path) = &args.json {
        let load_json = |l: &LoadFigures| json!({"objects_per_s": l.rate(), "p50_ms": percentile(&l.latencies, 50.0), "p99_ms": percentile(&l.latencies, 99.0)});
        let list_json: serde_json::Map<String, serde_json::Value> = lists
            .samples
            .iter()
            .map(|(k, v, s)| {
                (
                    format!("{k}, {v}"),
                    json!({"p50_ms": percentile(s, 50.0), "p90_ms": percentile(s, 90.0)}),
                )
            })
            .collect();
        let round_json: Vec<_> = rounds
            .iter()
            .map(|r| {
                json!({
                    "name": r.name, "delivered": r.delivered, "expected": r.expected,
                    "p50_ms": percentile(&r.deliveries, 50.0), "p99_ms": percentile(&r.deliveries, 99.0),
                    "max_ms": max_ms(&r.deliveries), "last_p50_ms": percentile(&r.all_delivered, 50.0),
                    "last_p99_ms": percentile(&r.all_delivered, 99.0), "ack_p50_ms": percentile(&r.acks, 50.0),
                    "writes_per_s": r.updates as f64 / r.elapsed.as_secs_f64(), "duplicates": r.duplicates,
                })
            })
            .collect();
        let mem_json = |m: &Memory| json!({"rss_mib": mib(m.rss), "rss_trimmed_mib": mib(m.rss_trimmed), "hwm_mib": mib(m.hwm)});
        let figures = json!({
            "objects": n, "cores": cores, "model": model,
            "load": {"deployments": load_json(&deployments), "services": load_json(&services), "ingresses": load_json(&ingresses),
                     "all_s": load_elapsed.as_secs_f64(), "settle_after_load_s": settle_after_load.as_secs_f64()},
            "lists": list_json,
            "list_bytes": lists.bytes,
            "watch": {"rounds": round_json, "rewatches": rewatches, "errors": watch_errors},
            "idle_cpu": {"empty": idle_empty, "loaded": idle_loaded},
            "memory": {"start": mem_json(&mem_start), "empty": mem_json(&mem_empty), "loaded": mem_json(&mem_loaded),
                       "listed": mem_json(&mem_listed), "watched": mem_json(&mem_watched),
                       "after_shutdown": mem_json(&mem_after_shutdown), "server_share_mib": mib(server_share)},
            "total_s": total.as_secs_f64(),
        });
        std::fs::write(path, serde_json::to_vec_pretty(&figures)?)?;
    }
    Ok(())
}
