//! Benchmark (not a test): one controller carrying thousands of Rollouts.
//!
//! ```sh
//! scripts/bench-scale                       # 1,000 and 10,000 Rollouts, 3 runs each
//! scripts/bench-scale --rollouts 2000 --runs 1
//! ```
//!
//! Each run starts the sandbox in its own process (with the real Prometheus) and creates N
//! Rollouts over ten namespaces, each with its Deployment, Service and Ingress. A first controller
//! takes them all over (slots, canary Service, canary Ingress, records), with its client limits
//! lifted so the setup is quick, and is killed. Then, measured, a second controller is started
//! cold with its defaults, in its own process, against that cluster at rest:
//! - the time until it has reconciled every Rollout once (all Ready), and its API requests a
//!   second meanwhile;
//! - at rest: its resident memory (VmRSS from /proc), API writes per minute (its Lease's renewals,
//!   one a retry period whatever the number of Rollouts, shown apart) and CPU seconds per minute;
//! - with `--releases` of them released at once (half a good image, half one whose error rate
//!   fails the first check): how late each analysis check ran against its due time (from the
//!   controller's `sluice_analysis_check_lateness_seconds`) and the time from a failed check to
//!   its traffic read back on stable (the status's firstFailureAt to the first status showing the
//!   rollback's scale-down stage, which the controller enters only once weight 0 is read back).
//!
//! Figures are printed per run and as medians; `--json FILE` writes them too.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use chrono::Utc;
use clap::Parser;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, CustomResourceExt};
use serde_json::{Value, json};
use sluice::crd::Rollout;
use sluice::metrics::WRITE_VERBS;
use sluice_strategies::status::{Phase, Stage};
use tokio::time::Instant;

type Error = Box<dyn std::error::Error + Send + Sync>;

#[derive(Parser, Debug, Clone)]
#[command(about = "Scale benchmark of the sluice controller against the sandbox")]
struct Args {
    /// Rollouts per run (several: one series of runs each).
    #[arg(long, value_delimiter = ',', default_value = "1000,10000")]
    rollouts: Vec<usize>,
    /// Runs of each size.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Releases started at once among the Rollouts, half of them failing.
    #[arg(long, default_value_t = 100)]
    releases: usize,
    /// Seconds at rest over which writes and CPU are counted.
    #[arg(long, default_value_t = 60)]
    rest_secs: u64,
    /// Also write the figures as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// An argument for the measured controller (repeatable), e.g. `--controller-arg=--concurrency=32`.
    #[arg(long = "controller-arg", allow_hyphen_values = true)]
    controller_args: Vec<String>,
}

#[path = "bench/objects.rs"]
mod objects;

use objects::{NAMESPACES, app, namespace, objects};

const GOOD_IMAGE: &str = "bench/app:2.0";
const BAD_IMAGE: &str = "bench/app:2.0-bad";

/// The built binaries beside this example (`target/release/examples/scale`).
fn binary(name: &str) -> Result<PathBuf, Error> {
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or("the example's directory")?;
    let path = dir.join(name);
    if !path.exists() {
        return Err(format!(
            "{} is missing: build it first (scripts/bench-scale does)",
            path.display()
        )
        .into());
    }
    Ok(path)
}

/// A child process killed when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct SandboxProcess {
    process: Process,
    kubeconfig: PathBuf,
    prometheus: String,
}

async fn start_sandbox(dir: &Path) -> Result<SandboxProcess, Error> {
    let kubeconfig = dir.join("kubeconfig");
    let env_file = dir.join("sandbox.env");
    let behaviour = format!("{}=error-rate:0.6", BAD_IMAGE.replace('.', "\\."));
    let child = Command::new(binary("sluice-sandbox")?)
        .args([
            "up",
            "--port",
            "0",
            "--prometheus",
            "--image-behavior",
            &behaviour,
        ])
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .arg("--env-file")
        .arg(&env_file)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let process = Process(child);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let env = std::fs::read_to_string(&env_file).unwrap_or_default();
        if let Some(url) = env.lines().find_map(|l| l.strip_prefix("PROMETHEUS_URL=")) {
            return Ok(SandboxProcess {
                process,
                kubeconfig,
                prometheus: url.to_string(),
            });
        }
        if Instant::now() > deadline {
            return Err("the sandbox did not start within 60 s".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn create(client: &Client, object: &Value) -> Result<(), Error> {
    let ns = object["metadata"]["namespace"].as_str().unwrap_or_default();
    let pp = PostParams::default();
    match object["kind"].as_str() {
        Some("Deployment") => drop(
            Api::<Deployment>::namespaced(client.clone(), ns)
                .create(&pp, &serde_json::from_value(object.clone())?)
                .await?,
        ),
        Some("Service") => drop(
            Api::<Service>::namespaced(client.clone(), ns)
                .create(&pp, &serde_json::from_value(object.clone())?)
                .await?,
        ),
        Some("Ingress") => drop(
            Api::<Ingress>::namespaced(client.clone(), ns)
                .create(&pp, &serde_json::from_value(object.clone())?)
                .await?,
        ),
        Some("Rollout") => drop(
            Api::<Rollout>::namespaced(client.clone(), ns)
                .create(&pp, &serde_json::from_value(object.clone())?)
                .await?,
        ),
        other => return Err(format!("no create for {other:?}").into()),
    }
    Ok(())
}

async fn populate(client: &Client, rollouts: usize, releases: usize) -> Result<(), Error> {
    Api::<CustomResourceDefinition>::all(client.clone())
        .create(&PostParams::default(), &Rollout::crd())
        .await?;
    for n in 0..NAMESPACES {
        let ns: Namespace =
            serde_json::from_value(json!({"metadata": {"name": format!("bench-{n:02}")}}))?;
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await?;
    }
    futures::stream::iter(0..rollouts)
        .map(|i| async move {
            for object in objects(i, i < releases) {
                create(client, &object).await?;
            }
            Ok::<(), Error>(())
        })
        .buffer_unordered(32)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

struct ControllerProcess {
    process: Process,
    metrics_url: String,
}

impl ControllerProcess {
    fn pid(&self) -> u32 {
        self.process.0.id()
    }

    async fn metrics(&self) -> Result<Scrape, Error> {
        Ok(Scrape::parse(&self.metrics_text().await?))
    }

    async fn metrics_text(&self) -> Result<String, Error> {
        Ok(reqwest::get(&self.metrics_url).await?.text().await?)
    }
}

fn start_controller(
    sandbox: &SandboxProcess,
    extra: &[&str],
    log: &Path,
) -> Result<ControllerProcess, Error> {
    use std::io::BufRead;
    let mut child = Command::new(binary("sluice")?)
        .args([
            "controller",
            "--listen",
            "127.0.0.1:0",
            "--api-listen",
            "127.0.0.1:0",
        ])
        .args(["--api-insecure", "--prometheus-url", &sandbox.prometheus])
        .args(extra)
        .env("KUBECONFIG", &sandbox.kubeconfig)
        .env(
            "RUST_LOG",
            std::env::var("SCALE_CONTROLLER_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log)?)
        .spawn()?;
    let stdout = child.stdout.take().ok_or("the controller's stdout")?;
    let process = Process(child);
    let mut lines = std::io::BufReader::new(stdout).lines();
    let first = lines.next().ok_or("the controller printed nothing")??;
    let address = first
        .strip_prefix("sluice probes and metrics on ")
        .ok_or_else(|| format!("unexpected first line {first:?}"))?;
    // Drained in the background, so that the controller never writes into a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Ok(ControllerProcess {
        process,
        metrics_url: format!("{address}/metrics"),
    })
}

/// The figures read from one scrape of the controller's `/metrics`.
#[derive(Debug, Default, Clone)]
struct Scrape {
    requests: f64,
    /// Writes of everything but the Lease.
    writes: f64,
    /// The Lease's renewals: a controller's, whatever its number of Rollouts.
    lease_writes: f64,
    reconciles: f64,
    cpu_seconds: f64,
    /// `le` → cumulative count of the check lateness histogram.
    lateness: Vec<(f64, f64)>,
}

impl Scrape {
    fn parse(text: &str) -> Scrape {
        let mut scrape = Scrape::default();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let Some((series, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let value: f64 = value.parse().unwrap_or(0.0);
            let label = |name: &str| {
                let start = series.find(&format!("{name}=\""))? + name.len() + 2;
                let end = series[start..].find('"')? + start;
                Some(series[start..end].to_string())
            };
            if series.starts_with("sluice_kubernetes_requests_total{") {
                scrape.requests += value;
                if label("verb").is_some_and(|v| WRITE_VERBS.contains(&v.as_str())) {
                    if label("resource").as_deref() == Some("leases") {
                        scrape.lease_writes += value;
                    } else {
                        scrape.writes += value;
                    }
                }
            } else if series == "sluice_reconcile_duration_seconds_count" {
                scrape.reconciles = value;
            } else if series == "process_cpu_seconds_total" {
                scrape.cpu_seconds = value;
            } else if series.starts_with("sluice_analysis_check_lateness_seconds_bucket{") {
                let le =
                    label("le").map_or(f64::INFINITY, |le| le.parse().unwrap_or(f64::INFINITY));
                scrape.lateness.push((le, value));
            }
        }
        scrape.lateness.sort_by(|a, b| a.0.total_cmp(&b.0));
        scrape
    }
}

/// A quantile of the observations between two cumulative histograms, interpolated inside its
/// bucket as Prometheus's histogram_quantile does.
fn histogram_quantile(before: &[(f64, f64)], after: &[(f64, f64)], q: f64) -> Option<f64> {
    let counts: Vec<(f64, f64)> = after
        .iter()
        .map(|(le, n)| {
            let earlier = before
                .iter()
                .find(|(b, _)| b == le)
                .map_or(0.0, |(_, n)| *n);
            (*le, n - earlier)
        })
        .collect();
    let total = counts.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut lower = (0.0, 0.0);
    for (le, count) in counts {
        if count >= rank {
            if le.is_infinite() {
                return Some(lower.0);
            }
            let share = if count > lower.1 {
                (rank - lower.1) / (count - lower.1)
            } else {
                0.0
            };
            return Some(lower.0 + (le - lower.0) * share);
        }
        lower = (le, count);
    }
    None
}

/// CPU seconds a process has used (user and system), from /proc: the sandbox shares the two
/// cores with the controller, and its share says how much of a figure is the machine's.
fn cpu_seconds(pid: u32) -> f64 {
    let ticks: f64 = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok()?.trim().parse().ok())
        .unwrap_or(100.0);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let field = |n: usize| {
        fields
            .get(n)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are the 14th and 15th fields of the line, the 12th and 13th after it.
    (field(11) + field(12)) / ticks
}

/// VmRSS and VmHWM of a process, in MiB.
fn memory_mib(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next()?.parse::<f64>().ok())
            .map_or(0.0, |kib| kib / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

async fn ready_rollouts(client: &Client) -> Result<usize, Error> {
    let rollouts = Api::<Rollout>::all(client.clone())
        .list(&ListParams::default())
        .await?;
    Ok(rollouts
        .items
        .iter()
        .filter(|r| r.status.as_ref().is_some_and(|s| s.phase == Phase::Ready))
        .count())
}

async fn until_all_ready(client: &Client, rollouts: usize, limit: Duration) -> Result<(), Error> {
    let deadline = Instant::now() + limit;
    loop {
        let ready = ready_rollouts(client).await?;
        if ready >= rollouts {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("only {ready}/{rollouts} Ready after {limit:?}").into());
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// What one run measured.
#[derive(Debug, Default, Clone, serde::Serialize)]
struct Figures {
    rollouts: usize,
    takeover_secs: f64,
    cold_start_secs: f64,
    cold_start_requests_per_sec: f64,
    rest_rss_mib: f64,
    rest_rss_kib_per_rollout: f64,
    rest_writes_per_min: f64,
    rest_cpu_secs_per_min: f64,
    /// The sandbox's CPU (cores used) at rest and while the releases ran.
    sandbox_cores_at_rest: f64,
    sandbox_cores_in_releases: f64,
    releases: usize,
    check_lateness_p50_secs: Option<f64>,
    check_lateness_p99_secs: Option<f64>,
    checks: f64,
    failed_to_stable_p50_secs: Option<f64>,
    failed_to_stable_p99_secs: Option<f64>,
    rollbacks_seen: usize,
    peak_rss_mib: f64,
    metric_series: usize,
    metrics_mib: f64,
}

/// The controller's requests by verb and resource, most first.
/// Sums and counts of the controller's timing histograms, by their labels.
fn sums_and_counts(text: &str) -> BTreeMap<String, (f64, f64)> {
    let mut found: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for line in text.lines() {
        for (histogram, name) in [
            ("sluice_kubernetes_request_duration_seconds", "API"),
            ("sluice_reconcile_duration_seconds", "reconcile"),
        ] {
            let Some(rest) = line.strip_prefix(histogram) else {
                continue;
            };
            let Some((series, value)) = rest.rsplit_once(' ') else {
                continue;
            };
            let value = value.parse::<f64>().unwrap_or(0.0);
            let (part, labels) = series.split_once('{').unwrap_or((series, ""));
            let key = format!("{name} {}", labels.trim_end_matches('}'));
            let entry = found.entry(key.trim_end().to_string()).or_default();
            match part {
                "_sum" => entry.0 += value,
                "_count" => entry.1 += value,
                _ => {}
            }
        }
    }
    found
}

/// The mean reconcile and the mean Kubernetes API answer by verb between two scrapes, with
/// their counts: where the time of the releases went.
fn mean_times(before: &str, after: &str) -> String {
    let before = sums_and_counts(before);
    sums_and_counts(after)
        .into_iter()
        .filter_map(|(key, (sum, count))| {
            let (sum0, count0) = before.get(&key).copied().unwrap_or_default();
            let n = count - count0;
            (n > 0.0).then(|| format!("{key} {:.1} ms x {n}", (sum - sum0) / n * 1000.0))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn requests_by_kind(text: &str) -> String {
    let mut counts: BTreeMap<String, f64> = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("sluice_kubernetes_requests_total{") else {
            continue;
        };
        let Some((labels, value)) = rest.rsplit_once("} ") else {
            continue;
        };
        let label = |name: &str| {
            let start = labels.find(&format!("{name}=\""))? + name.len() + 2;
            let end = labels[start..].find('"')? + start;
            Some(labels[start..end].to_string())
        };
        let key = format!(
            "{} {}",
            label("verb").unwrap_or_default(),
            label("resource").unwrap_or_default()
        );
        *counts.entry(key).or_default() += value.parse::<f64>().unwrap_or(0.0);
    }
    let mut counts: Vec<(String, f64)> = counts.into_iter().collect();
    counts.sort_by(|a, b| b.1.total_cmp(&a.1));
    counts
        .iter()
        .map(|(kind, n)| format!("{kind} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn percentile(values: &mut [f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    // Nearest rank.
    let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
    Some(values[rank - 1])
}

/// Releases `releases` Rollouts at once and follows them to their ends through a watch.
async fn release_many(
    client: &Client,
    controller: &ControllerProcess,
    releases: usize,
    figures: &mut Figures,
) -> Result<(), Error> {
    let before_text = controller.metrics_text().await?;
    let before = Scrape::parse(&before_text);
    let (events_tx, mut events) = tokio::sync::mpsc::unbounded_channel();
    let watch = tokio::spawn({
        let client = client.clone();
        async move {
            let stream = watcher(Api::<Rollout>::all(client), watcher::Config::default())
                .applied_objects()
                .boxed();
            let mut stream = stream;
            while let Some(Ok(rollout)) = stream.next().await {
                if events_tx.send((Utc::now(), rollout)).is_err() {
                    break;
                }
            }
        }
    });
    // The watch's first list arrives first; releases start after it.
    tokio::time::sleep(Duration::from_secs(2)).await;
    while events.try_recv().is_ok() {}
    let bad = |i: usize| i % 2 == 1;
    futures::stream::iter(0..releases)
        .map(|i| async move {
            let image = if bad(i) { BAD_IMAGE } else { GOOD_IMAGE };
            let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": image}]}}}});
            Api::<Deployment>::namespaced(client.clone(), &namespace(i))
                .patch(&app(i), &PatchParams::default(), &Patch::Strategic(patch))
                .await
                .map(|_| ())
        })
        .buffer_unordered(16)
        .try_collect::<Vec<()>>()
        .await?;
    let mut in_flight: std::collections::HashSet<String> = Default::default();
    let mut ended: HashMap<String, bool> = HashMap::new();
    let mut stable_at: BTreeMap<String, f64> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(600);
    while ended.len() < releases && Instant::now() < deadline {
        let Ok(Some((seen_at, rollout))) =
            tokio::time::timeout(Duration::from_secs(5), events.recv()).await
        else {
            continue;
        };
        let name = rollout.metadata.name.clone().unwrap_or_default();
        let Some(status) = rollout.status.as_ref() else {
            continue;
        };
        let index: usize = name
            .trim_start_matches("app-")
            .parse()
            .unwrap_or(usize::MAX);
        if index >= releases {
            continue;
        }
        if let (Some(Stage::RollingBackScaleDown), Some(failed)) =
            (status.stage, status.first_failure_at)
            && !stable_at.contains_key(&name)
        {
            stable_at.insert(name.clone(), (seen_at - failed).as_seconds_f64());
        }
        if status.phase.in_flight() {
            in_flight.insert(name);
        } else if in_flight.contains(&name) {
            ended.insert(name, status.phase == Phase::RolledBack);
        }
    }
    watch.abort();
    let text = controller.metrics_text().await?;
    eprintln!(
        "  releases: {} ended; requests since the start: {}",
        ended.len(),
        requests_by_kind(&text)
    );
    eprintln!(
        "  where the time went, mean over the releases: {}",
        mean_times(&before_text, &text)
    );
    let after = Scrape::parse(&text);
    figures.releases = ended.len();
    figures.check_lateness_p50_secs = histogram_quantile(&before.lateness, &after.lateness, 0.5);
    figures.check_lateness_p99_secs = histogram_quantile(&before.lateness, &after.lateness, 0.99);
    figures.checks =
        after.lateness.last().map_or(0.0, |b| b.1) - before.lateness.last().map_or(0.0, |b| b.1);
    let mut to_stable: Vec<f64> = stable_at.values().copied().collect();
    figures.rollbacks_seen = to_stable.len();
    figures.failed_to_stable_p50_secs = percentile(&mut to_stable, 0.5);
    figures.failed_to_stable_p99_secs = percentile(&mut to_stable, 0.99);
    if ended.len() < releases {
        eprintln!(
            "  only {}/{releases} releases ended within 10 minutes",
            ended.len()
        );
    }
    Ok(())
}

async fn one_run(args: &Args, rollouts: usize, run: usize) -> Result<Figures, Error> {
    let dir = std::env::temp_dir().join(format!(
        "sluice-scale-{}-{rollouts}-{run}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir)?;
    let sandbox = start_sandbox(&dir).await?;
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(&sandbox.kubeconfig)?,
        &kube::config::KubeConfigOptions::default(),
    )
    .await?;
    let client = Client::try_from(config)?;
    let mut figures = Figures {
        rollouts,
        ..Figures::default()
    };
    let releases = args.releases.min(rollouts);
    let loading = Instant::now();
    populate(&client, rollouts, releases).await?;
    eprintln!(
        "  {rollouts} Rollouts with their Deployments, Services and Ingresses in {:.1} s",
        loading.elapsed().as_secs_f64()
    );

    // Setup: everything taken over, by a controller with its limits lifted.
    let takeover = Instant::now();
    let first = start_controller(
        &sandbox,
        &[
            "--api-server-qps",
            "5000",
            "--api-server-burst",
            "5000",
            "--concurrency",
            "64",
            // Killed without releasing a Lease, which the measured controller would wait out.
            "--leader-elect=false",
        ],
        &dir.join("takeover.log"),
    )?;
    until_all_ready(&client, rollouts, Duration::from_secs(3600)).await?;
    figures.takeover_secs = takeover.elapsed().as_secs_f64();
    // Until its writes stop: the slots of the takeover scale the targets down after Ready.
    let mut writes = first.metrics().await?.writes;
    loop {
        tokio::time::sleep(Duration::from_secs(5)).await;
        let now = first.metrics().await?.writes;
        if now == writes {
            break;
        }
        writes = now;
    }
    drop(first);
    eprintln!("  taken over in {:.1} s", figures.takeover_secs);

    // Measured: a cold start with the defaults.
    let cold = Instant::now();
    let extra: Vec<&str> = args.controller_args.iter().map(String::as_str).collect();
    let controller = start_controller(&sandbox, &extra, &dir.join("controller.log"))?;
    loop {
        let scrape = controller.metrics().await.unwrap_or_default();
        if scrape.reconciles >= rollouts as f64 {
            figures.cold_start_secs = cold.elapsed().as_secs_f64();
            figures.cold_start_requests_per_sec = scrape.requests / figures.cold_start_secs;
            break;
        }
        if cold.elapsed() > Duration::from_secs(1800) {
            return Err("the cold start did not reconcile every Rollout in 30 minutes".into());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    until_all_ready(&client, rollouts, Duration::from_secs(60)).await?;
    eprintln!(
        "  cold start: every Rollout reconciled in {:.1} s",
        figures.cold_start_secs
    );

    tokio::time::sleep(Duration::from_secs(10)).await;
    let rest_start = controller.metrics().await?;
    let sandbox_pid = sandbox.process.0.id();
    let sandbox_cpu = cpu_seconds(sandbox_pid);
    tokio::time::sleep(Duration::from_secs(args.rest_secs)).await;
    let rest_end = controller.metrics().await?;
    figures.sandbox_cores_at_rest =
        (cpu_seconds(sandbox_pid) - sandbox_cpu) / args.rest_secs as f64;
    let minutes = args.rest_secs as f64 / 60.0;
    figures.rest_writes_per_min = (rest_end.writes - rest_start.writes) / minutes;
    figures.rest_cpu_secs_per_min = (rest_end.cpu_seconds - rest_start.cpu_seconds) / minutes;
    let (rss, _) = memory_mib(controller.pid());
    figures.rest_rss_mib = rss;
    let text = controller.metrics_text().await?;
    figures.metric_series = text.lines().filter(|l| !l.starts_with('#')).count();
    figures.metrics_mib = text.len() as f64 / (1024.0 * 1024.0);
    eprintln!(
        "  its /metrics: {} series, {:.1} MiB; requests since its start: {}",
        figures.metric_series,
        figures.metrics_mib,
        requests_by_kind(&text)
    );
    figures.rest_rss_kib_per_rollout = rss * 1024.0 / rollouts as f64;
    eprintln!(
        "  at rest: {rss:.0} MiB, {:.1} writes/min (and {:.1} of its Lease), {:.2} CPU s/min",
        figures.rest_writes_per_min,
        (rest_end.lease_writes - rest_start.lease_writes) / minutes,
        figures.rest_cpu_secs_per_min
    );

    if releases > 0 {
        let (cpu, started) = (cpu_seconds(sandbox_pid), Instant::now());
        release_many(&client, &controller, releases, &mut figures).await?;
        figures.sandbox_cores_in_releases =
            (cpu_seconds(sandbox_pid) - cpu) / started.elapsed().as_secs_f64();
    }
    figures.peak_rss_mib = memory_mib(controller.pid()).1;
    drop(controller);
    drop(sandbox);
    if std::env::var_os("SCALE_CONTROLLER_LOG").is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        eprintln!("  logs kept in {}", dir.display());
    }
    Ok(figures)
}

fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut values: Vec<f64> = values.collect();
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

fn print_table(rollouts: usize, runs: &[Figures]) {
    let opt = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.3}"));
    println!("\n{rollouts} Rollouts, {} runs", runs.len());
    println!(
        "| run | takeover s | cold start s | req/s | RSS MiB | KiB/Rollout | writes/min | CPU s/min | checks | late p50 s | late p99 s | rollbacks | to stable p50 s | to stable p99 s | peak MiB | sandbox cores rest/releases |"
    );
    println!(
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    );
    for (n, f) in runs.iter().enumerate() {
        println!(
            "| {} | {:.1} | {:.1} | {:.1} | {:.0} | {:.1} | {:.1} | {:.2} | {:.0} | {} | {} | {} | {} | {} | {:.0} | {:.2}/{:.2} |",
            n + 1,
            f.takeover_secs,
            f.cold_start_secs,
            f.cold_start_requests_per_sec,
            f.rest_rss_mib,
            f.rest_rss_kib_per_rollout,
            f.rest_writes_per_min,
            f.rest_cpu_secs_per_min,
            f.checks,
            opt(f.check_lateness_p50_secs),
            opt(f.check_lateness_p99_secs),
            f.rollbacks_seen,
            opt(f.failed_to_stable_p50_secs),
            opt(f.failed_to_stable_p99_secs),
            f.peak_rss_mib,
            f.sandbox_cores_at_rest,
            f.sandbox_cores_in_releases,
        );
    }
    let m = |f: fn(&Figures) -> f64| median(runs.iter().map(f));
    let mo = |f: fn(&Figures) -> Option<f64>| median(runs.iter().filter_map(f));
    println!(
        "| **median** | {:.1} | {:.1} | {:.1} | {:.0} | {:.1} | {:.1} | {:.2} | {:.0} | {:.3} | {:.3} | {:.0} | {:.3} | {:.3} | {:.0} | {:.2}/{:.2} |",
        m(|f| f.takeover_secs),
        m(|f| f.cold_start_secs),
        m(|f| f.cold_start_requests_per_sec),
        m(|f| f.rest_rss_mib),
        m(|f| f.rest_rss_kib_per_rollout),
        m(|f| f.rest_writes_per_min),
        m(|f| f.rest_cpu_secs_per_min),
        m(|f| f.checks),
        mo(|f| f.check_lateness_p50_secs),
        mo(|f| f.check_lateness_p99_secs),
        m(|f| f.rollbacks_seen as f64),
        mo(|f| f.failed_to_stable_p50_secs),
        mo(|f| f.failed_to_stable_p99_secs),
        m(|f| f.peak_rss_mib),
        m(|f| f.sandbox_cores_at_rest),
        m(|f| f.sandbox_cores_in_releases),
    );
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args = Args::parse();
    let mut all = Vec::new();
    for &rollouts in &args.rollouts {
        let mut runs = Vec::new();
        for run in 1..=args.runs {
            eprintln!("{rollouts} Rollouts, run {run}/{}", args.runs);
            runs.push(one_run(&args, rollouts, run).await?);
        }
        print_table(rollouts, &runs);
        all.extend(runs);
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&all)?)?;
    }
    Ok(())
}
