//! The sandbox's outward contracts beside the Kubernetes API:
//!
//! - the command, `sluice-sandbox up --port P --kubeconfig FILE [--prometheus] [--env-file FILE]
//!   [--seed N] [--image-behavior SPEC]`, run as the real binary: what it writes, what it serves,
//!   a clean exit on SIGTERM and SIGINT, and clear errors on bad arguments;
//! - its own HTTP endpoints (`/sandbox/faults`, `/sandbox/watches/cut`, `/sandbox/history`,
//!   `/sandbox/pods`, `/metrics`), spoken to over real HTTP.
//!
//! Every spawned process is owned by a guard that stops it (SIGTERM, then SIGKILL) when the test
//! ends, passed or failed; every temporary directory goes with its test.

mod common;

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use common::{eventually, sandbox};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Service};
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::config::Kubeconfig;
use kube::{Client, ResourceExt};
use regex::Regex;
use serde_json::{Value, json};
use sluice_sandbox::Sandbox;
use sluice_sandbox::prometheus::http_get_status;
use tokio::time::Instant;

const BINARY: &str = env!("CARGO_BIN_EXE_sluice-sandbox");
/// Longest the command may take to write its files (Prometheus's start included).
const START_LIMIT: Duration = Duration::from_secs(30);
/// Longest the command may take to exit after a signal, or after bad arguments.
const EXIT_LIMIT: Duration = Duration::from_secs(10);
/// Longest any one kubectl call may run.
const KUBECTL_LIMIT: Duration = Duration::from_secs(30);
const NS: &str = "erp-system";
/// The alphabet of generated names (pod-template-hash and pod suffixes).
const SAFE_ALPHABET: &str = "bcdfghjklmnpqrstvwxz2456789";

// ---------------------------------------------------------------------------------------------
// Helpers

struct TempDir(PathBuf);

impl TempDir {
    fn new(test: &str) -> TempDir {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = std::env::temp_dir().join(format!(
            "sluice-command-{test}-{}-{}-{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        TempDir(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A port that was free a moment ago: the test picks it so it knows what to expect.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port on 127.0.0.1")
        .port()
}

/// Sends a signal with the system's `kill`, as a supervisor would.
fn send_signal(pid: u32, signal: &str) {
    let status = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -{signal} {pid}: {status}");
}

/// The command, running in its own directory with its output in `sandbox.log` there. Dropping it
/// stops it: SIGTERM first, so that it stops its Prometheus too, then SIGKILL.
struct Running {
    child: Child,
    log: PathBuf,
}

impl Running {
    fn spawn(dir: &Path, args: &[&str]) -> Running {
        let log = dir.join("sandbox.log");
        let out = File::create(&log).expect("the log file is created");
        let err = out.try_clone().expect("the log file is cloned");
        let child = std::process::Command::new(BINARY)
            .args(args)
            .current_dir(dir)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {BINARY}: {e}"));
        Running { child, log }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("the child can be waited for")
    }

    /// The exit status, if the command exits within `limit`.
    async fn wait_for_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.exited() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The content of `path` once it exists (the command writes its files whole); fails early if
    /// the command exits instead.
    async fn wait_for_file(&mut self, path: &Path, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(text) = std::fs::read_to_string(path) {
                return text;
            }
            if let Some(status) = self.exited() {
                panic!(
                    "the command exited ({status}) before writing {}; its log:\n{}",
                    path.display(),
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "{} did not appear within {limit:?}; the command's log:\n{}",
                path.display(),
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if !matches!(self.child.try_wait(), Ok(None)) {
            return;
        }
        let _ = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        for _ in 0..100 {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Prometheus directories (`sluice-sandbox-prometheus-<pid>-<n>`) the process `pid` has made.
fn prometheus_dirs(pid: u32) -> Vec<PathBuf> {
    let prefix = format!("sluice-sandbox-prometheus-{pid}-");
    std::fs::read_dir(std::env::temp_dir())
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

fn kubectl_binary() -> PathBuf {
    std::env::var_os("KUBECTL")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("kubectl"))
}

/// `kubectl get namespaces -o name` with this kubeconfig only, in a cache of the test's own.
async fn kubectl_namespaces(kubeconfig: &Path, dir: &Path) -> Vec<String> {
    let mut command = tokio::process::Command::new(kubectl_binary());
    command
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--cache-dir")
        .arg(dir.join("kubectl-cache"))
        .args(["--request-timeout=10s", "get", "namespaces", "-o", "name"])
        .env_remove("KUBECONFIG")
        .env("HOME", dir)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(KUBECTL_LIMIT, command.output())
        .await
        .expect("kubectl finishes in time")
        .expect("kubectl runs (set KUBECTL if it is not on PATH)");
    assert!(
        output.status.success(),
        "kubectl get namespaces: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// A kube client from a kubeconfig file, as sluice itself would load one.
async fn client_from_file(path: &Path) -> Client {
    let yaml = std::fs::read_to_string(path).expect("the kubeconfig file is readable");
    sluice_sandbox::testing::client_from_kubeconfig(&yaml)
        .await
        .expect("kube accepts the kubeconfig")
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("an HTTP client")
}

/// Status and JSON body of one request.
async fn json_of(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.send().await.expect("the sandbox answers");
    let status = response.status().as_u16();
    let text = response.text().await.expect("a body");
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("status {status}: the body is not JSON ({e}): {text:?}"));
    (status, body)
}

async fn status_of(request: reqwest::RequestBuilder) -> u16 {
    request
        .send()
        .await
        .expect("the sandbox answers")
        .status()
        .as_u16()
}

fn api_code(err: kube::Error) -> u16 {
    match err {
        kube::Error::Api(status) => status.code,
        other => panic!("expected an API error with a Status, got {other:?}"),
    }
}

async fn namespace(client: &Client) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": NS}})).unwrap();
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .expect("namespace created");
}

fn config_map(name: &str, data: Value) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}, "data": data})).unwrap()
}

fn deployment(name: &str, replicas: u32, image: &str, annotations: Value) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}, "annotations": annotations},
                "spec": {"containers": [{"name": name, "image": image, "ports": [{"containerPort": 8080}]}]},
            },
        },
    }))
    .unwrap()
}

/// `GET /sandbox/pods`, only those of `deployment` in NS.
async fn pods_of(http: &reqwest::Client, sandbox: &Sandbox, deployment: &str) -> Vec<Value> {
    let (status, pods) = json_of(http.get(format!("{}/sandbox/pods", sandbox.api_url()))).await;
    assert_eq!(status, 200, "{pods}");
    pods.as_array()
        .expect("the pods are a JSON array")
        .iter()
        .filter(|p| p["namespace"] == NS && p["labels"]["app"] == deployment)
        .cloned()
        .collect()
}

fn is_safe_string(text: &str, len: usize) -> bool {
    text.len() == len && text.chars().all(|c| SAFE_ALPHABET.contains(c))
}

/// Checks `<deployment>-<hash>-<suffix>`, hash = the pod's pod-template-hash; returns the hash.
fn template_hash_of(deployment: &str, pod: &Value) -> String {
    let name = pod["name"].as_str().expect("a pod name");
    let hash = pod["labels"]["pod-template-hash"]
        .as_str()
        .unwrap_or_else(|| panic!("{name} has a pod-template-hash label: {pod}"));
    assert!(is_safe_string(hash, 10), "pod-template-hash {hash:?}");
    let suffix = name
        .strip_prefix(&format!("{deployment}-{hash}-"))
        .unwrap_or_else(|| panic!("{name} is not {deployment}-{hash}-<suffix>"));
    assert!(is_safe_string(suffix, 5), "suffix {suffix:?} of {name}");
    hash.to_string()
}

/// The samples of `metric` in Prometheus text, as (labels, value).
fn samples(text: &str, metric: &str) -> Vec<(BTreeMap<String, String>, f64)> {
    let label = Regex::new(r#"(\w+)="((?:[^"\\]|\\.)*)""#).unwrap();
    text.lines()
        .filter_map(|line| line.strip_prefix(metric)?.strip_prefix('{'))
        .map(|rest| {
            let (labels, value) = rest.rsplit_once("} ").expect("a sample line");
            let labels = label
                .captures_iter(labels)
                .map(|c| (c[1].to_string(), c[2].to_string()))
                .collect();
            (labels, value.parse().expect("a sample value"))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The command

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_with_prometheus_serves_then_stops_cleanly_on_sigterm() {
    let dir = TempDir::new("sigterm");
    let port = free_port();
    let port_arg = port.to_string();
    // A relative kubeconfig path: the env file must name it absolutely.
    let mut up = Running::spawn(
        dir.path(),
        &[
            "up",
            "--port",
            &port_arg,
            "--kubeconfig",
            "kubeconfig",
            "--prometheus",
            "--env-file",
            "sandbox.env",
            "--seed",
            "7",
        ],
    );
    let env = up
        .wait_for_file(&dir.path().join("sandbox.env"), START_LIMIT)
        .await;

    let kubeconfig = dir.path().join("kubeconfig");
    assert!(kubeconfig.is_absolute());
    let api = format!("127.0.0.1:{port}");
    let lines: Vec<&str> = env.lines().collect();
    assert_eq!(lines.len(), 4, "the env file:\n{env}");
    assert_eq!(
        lines[..3],
        [
            format!("KUBECONFIG={}", kubeconfig.display()),
            format!("SANDBOX_API_URL=http://{api}"),
            format!("SANDBOX_METRICS_URL=http://{api}/metrics"),
        ],
        "the env file:\n{env}"
    );
    assert!(env.ends_with('\n'));
    let prometheus_port: u16 = lines[3]
        .strip_prefix("PROMETHEUS_URL=http://127.0.0.1:")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("not a PROMETHEUS_URL line: {:?}", lines[3]));
    assert_ne!(prometheus_port, port);
    let prometheus = format!("127.0.0.1:{prometheus_port}");

    // The kubeconfig: pointing at the chosen port, and working for kubectl and for kube.
    let config = Kubeconfig::read_from(&kubeconfig).expect("the kubeconfig parses");
    let servers: Vec<_> = config
        .clusters
        .iter()
        .map(|c| c.cluster.as_ref().and_then(|c| c.server.clone()))
        .collect();
    assert_eq!(servers, [Some(format!("http://{api}"))]);
    let namespaces = kubectl_namespaces(&kubeconfig, dir.path()).await;
    assert!(
        namespaces.iter().any(|n| n == "namespace/default"),
        "kubectl get namespaces: {namespaces:?}"
    );
    let client = client_from_file(&kubeconfig).await;
    let default = Api::<Namespace>::all(client)
        .get("default")
        .await
        .expect("kube reads the default namespace");
    assert_eq!(default.name_any(), "default");

    // Prometheus: ready, scraping this sandbox, in a directory of its own.
    assert_eq!(http_get_status(&prometheus, "/-/ready").await, Some(200));
    let query: prometheus_http_query::Client = format!("http://{prometheus}").parse().unwrap();
    let scraped = eventually(
        Duration::from_secs(20),
        "Prometheus to scrape the sandbox",
        || {
            let query = query.clone();
            async move {
                let result = query
                    .query(r#"up{job="sluice-sandbox"}"#)
                    .get()
                    .await
                    .ok()?;
                let samples = result.data().as_vector()?.to_vec();
                let instance = samples.first()?.metric().get("instance")?.clone();
                (samples.first()?.sample().value() == 1.0).then_some(instance)
            }
        },
    )
    .await;
    assert_eq!(scraped, api, "Prometheus scrapes the sandbox's port");
    let pid = up.pid();
    assert_eq!(
        prometheus_dirs(pid).len(),
        1,
        "one Prometheus directory while it runs"
    );

    send_signal(pid, "TERM");
    let status = up.wait_for_exit(EXIT_LIMIT).await.unwrap_or_else(|| {
        panic!(
            "still running {EXIT_LIMIT:?} after SIGTERM; its log:\n{}",
            up.log()
        )
    });
    assert!(
        status.success(),
        "exit status after SIGTERM: {status}; its log:\n{}",
        up.log()
    );
    assert_eq!(
        http_get_status(&api, "/version").await,
        None,
        "the API port still answers"
    );
    assert_eq!(
        http_get_status(&prometheus, "/-/ready").await,
        None,
        "Prometheus still answers"
    );
    assert_eq!(
        prometheus_dirs(pid),
        Vec::<PathBuf>::new(),
        "Prometheus's directory is left behind"
    );
    assert!(up.log().contains("stopping"), "log:\n{}", up.log());
}

/// SIGINT the moment the kubeconfig exists, as a script that waits for it would send it (a shell
/// spinning on `[ -e ]` with its builtin `kill`): the handlers must be in place before the command
/// tells anyone it is up, or the signal is lost (when inherited as ignored) or fatal. Handlers
/// installed just after the files were written leave a window of microseconds, which one round
/// hits only sometimes; a few rounds (about 30ms each) make missing it unlikely.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_stops_cleanly_on_sigint_sent_as_soon_as_the_kubeconfig_appears() {
    for round in 0..8 {
        sigint_as_soon_as_the_kubeconfig_appears(round).await;
    }
}

async fn sigint_as_soon_as_the_kubeconfig_appears(round: u32) {
    let dir = TempDir::new(&format!("sigint-{round}"));
    let port = free_port();
    let port_arg = port.to_string();
    let kubeconfig = dir.path().join("kubeconfig");
    let kubeconfig_arg = kubeconfig.to_str().expect("temp paths are UTF-8");
    let mut up = Running::spawn(
        dir.path(),
        &["up", "--port", &port_arg, "--kubeconfig", kubeconfig_arg],
    );
    // Gives up when the command exits first, or after its count (tens of seconds of spinning),
    // and is killed after START_LIMIT anyway.
    let signaller = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(
            r#"n=0; while [ ! -e "$1" ]; do n=$((n+1)); [ $((n % 4096)) -ne 0 ] || kill -0 "$2" || exit 3; [ $n -lt 20000000 ] || exit 4; done; kill -INT "$2""#,
        )
        .arg("signaller")
        .arg(&kubeconfig)
        .arg(up.pid().to_string())
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .status();
    let signalled = tokio::time::timeout(START_LIMIT, signaller)
        .await
        .unwrap_or_else(|_| panic!("no kubeconfig within {START_LIMIT:?}; log:\n{}", up.log()))
        .expect("sh runs");
    assert!(
        signalled.success(),
        "the signaller: {signalled}; log:\n{}",
        up.log()
    );
    let text = std::fs::read_to_string(&kubeconfig).expect("the kubeconfig is readable");
    let status = up.wait_for_exit(EXIT_LIMIT).await.unwrap_or_else(|| {
        panic!(
            "still running {EXIT_LIMIT:?} after SIGINT; its log:\n{}",
            up.log()
        )
    });
    assert!(
        status.success(),
        "round {round}: exit status after SIGINT: {status}; its log:\n{}",
        up.log()
    );
    assert!(
        text.contains(&format!("server: http://127.0.0.1:{port}\n")),
        "the kubeconfig:\n{text}"
    );
    assert_eq!(
        http_get_status(&format!("127.0.0.1:{port}"), "/version").await,
        None,
        "the API port still answers"
    );
    let log = up.log();
    assert!(
        log.contains(&format!("sandbox API on http://127.0.0.1:{port}"))
            && log.contains("stopping"),
        "log:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_rejects_bad_arguments_before_writing_anything() {
    // (extra arguments, exit code, what stderr must say)
    let cases: &[(&[&str], i32, &[&str])] = &[
        (
            &["--image-behavior", "bad[regex=error-rate:2"],
            2,
            &["--image-behavior", r#"invalid image regex "bad[regex""#],
        ),
        (
            &["--image-behavior", "reporting=speed:3"],
            2,
            &["--image-behavior", r#"unknown key "speed""#],
        ),
        (
            &["--image-behavior", "reporting=error-rate:2"],
            2,
            &[r#"error-rate value "2" is not a share in [0, 1]"#],
        ),
        (
            &["--image-behavior", "reporting"],
            2,
            &["expected REGEX=key:value"],
        ),
        (&["--seed", "minus-one"], 2, &["'minus-one'", "--seed"]),
        (&["--prometheus-port", "9090"], 2, &["'--prometheus-port'"]),
    ];
    for (extra, code, messages) in cases {
        let dir = TempDir::new("bad-args");
        let mut args = vec![
            "up",
            "--kubeconfig",
            "kubeconfig",
            "--env-file",
            "sandbox.env",
        ];
        args.extend_from_slice(extra);
        let mut up = Running::spawn(dir.path(), &args);
        let status = up
            .wait_for_exit(EXIT_LIMIT)
            .await
            .unwrap_or_else(|| panic!("{extra:?}: still running after {EXIT_LIMIT:?}"));
        let log = up.log();
        assert_eq!(status.code(), Some(*code), "{extra:?}: {status}\n{log}");
        for message in *messages {
            assert!(
                log.contains(message),
                "{extra:?}: no {message:?} in:\n{log}"
            );
        }
        assert!(!dir.path().join("kubeconfig").exists(), "{extra:?}");
        assert!(!dir.path().join("sandbox.env").exists(), "{extra:?}");
    }

    // A port already taken: a plain error naming it, nothing written.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let dir = TempDir::new("port-taken");
    let mut up = Running::spawn(
        dir.path(),
        &["up", "--port", &port, "--kubeconfig", "kubeconfig"],
    );
    let status = up
        .wait_for_exit(EXIT_LIMIT)
        .await
        .expect("exits when its port is taken");
    let log = up.log();
    assert_eq!(status.code(), Some(1), "{status}\n{log}");
    assert!(
        log.contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{log}"
    );
    assert!(!dir.path().join("kubeconfig").exists());
    drop(taken);
}

// ---------------------------------------------------------------------------------------------
// The control endpoints

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_rules_over_http_reach_the_kube_client() {
    let (sandbox, client) = sandbox().await;
    let http = http();
    let faults = format!("{}/sandbox/faults", sandbox.api_url());
    namespace(&client).await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), NS);
    cms.create(&PostParams::default(), &config_map("erp-config", json!({})))
        .await
        .unwrap();

    let rule =
        json!({"verb": "get", "resource": "configmaps", "action": "fail", "code": 500, "times": 1});
    let (status, created) = json_of(http.post(&faults).json(&rule)).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_u64().expect("an id");
    assert_eq!(created, json!({"id": id}));
    let (status, listed) = json_of(http.get(&faults)).await;
    assert_eq!(status, 200);
    assert_eq!(
        listed,
        json!([{"id": id, "verb": "get", "resource": "configmaps", "action": "fail", "code": 500, "times": 1}])
    );

    let err = cms.get("erp-config").await.unwrap_err();
    assert!(err.to_string().contains("injected fault"), "{err}");
    assert_eq!(api_code(err), 500);
    cms.get("erp-config")
        .await
        .expect("the rule fired its one time");
    assert_eq!(json_of(http.get(&faults)).await, (200, json!([])));
    assert_eq!(
        status_of(http.delete(format!("{faults}/{id}"))).await,
        404,
        "a used-up rule is gone"
    );

    // Unlimited until deleted.
    let (status, created) = json_of(
        http.post(&faults)
            .json(&json!({"verb": "patch", "resource": "configmaps", "action": "conflict"})),
    )
    .await;
    assert_eq!(status, 201);
    let storm = created["id"].as_u64().expect("an id");
    assert!(storm > id, "ids grow: {storm} after {id}");
    let merge = Patch::Merge(json!({"data": {"k": "v"}}));
    for _ in 0..3 {
        let err = cms
            .patch("erp-config", &PatchParams::default(), &merge)
            .await
            .unwrap_err();
        assert_eq!(api_code(err), 409);
    }
    assert_eq!(
        status_of(http.delete(format!("{faults}/{storm}"))).await,
        204
    );
    cms.patch("erp-config", &PatchParams::default(), &merge)
        .await
        .expect("the storm is over once deleted");
    assert_eq!(
        status_of(http.delete(format!("{faults}/{storm}"))).await,
        404
    );

    let (status, _) = json_of(
        http.post(&faults)
            .json(&json!({"action": "delay", "millis": 300, "times": 1})),
    )
    .await;
    assert_eq!(status, 201);
    let started = Instant::now();
    cms.get("erp-config").await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(300));

    // Malformed rules: 400 with a message, nothing added.
    for (body, says) in [
        (r#"{"action": "explode"}"#, "explode"),
        (r#"{"verb": "get", "action": "fail"}"#, "code"),
        (r#"{"verb": "fetch", "action": "conflict"}"#, "fetch"),
        (r#"{"action": "delay", "millis": "soon"}"#, "soon"),
        ("verb=get", "expected"),
    ] {
        let (status, answer) = json_of(
            http.post(&faults)
                .header("content-type", "application/json")
                .body(body),
        )
        .await;
        assert_eq!(status, 400, "{body}: {answer}");
        let message = answer["error"].as_str().unwrap_or_default();
        assert!(
            message.starts_with("a fault is {") && message.contains(says),
            "{body}: {message:?} should say {says:?}"
        );
    }
    assert_eq!(json_of(http.get(&faults)).await, (200, json!([])));
    assert_eq!(
        status_of(http.delete(format!("{faults}/not-a-number"))).await,
        400
    );

    // DELETE on the collection clears every rule.
    for _ in 0..2 {
        let (status, _) = json_of(
            http.post(&faults)
                .json(&json!({"action": "fail", "code": 503})),
        )
        .await;
        assert_eq!(status, 201);
    }
    assert_eq!(
        json_of(http.get(&faults)).await.1.as_array().map(Vec::len),
        Some(2)
    );
    assert_eq!(status_of(http.delete(&faults)).await, 204);
    assert_eq!(json_of(http.get(&faults)).await, (200, json!([])));
    cms.get("erp-config").await.expect("no rule is left");
    sandbox.shutdown().await;
}

/// A watch stream ends within 5s; whatever was still in flight may arrive first, but no error.
async fn expect_end<K: std::fmt::Debug>(
    what: &str,
    stream: &mut (impl futures::Stream<Item = kube::Result<WatchEvent<K>>> + Unpin),
) {
    let end = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(event) = stream.try_next().await.expect("a clean end") {
            if let WatchEvent::Error(status) = event {
                panic!("the {what} watch got an error: {status:?}");
            }
        }
    })
    .await;
    assert!(end.is_ok(), "the {what} watch still runs 5s after the cut");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cutting_watches_over_http_ends_open_streams_only() {
    let (sandbox, client) = sandbox().await;
    let http = http();
    namespace(&client).await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), NS);
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let mut cm_stream = cms
        .watch(&WatchParams::default(), "0")
        .await
        .unwrap()
        .boxed();
    let mut ns_stream = namespaces
        .watch(&WatchParams::default(), "0")
        .await
        .unwrap()
        .boxed();
    let created = cms
        .create(&PostParams::default(), &config_map("before-cut", json!({})))
        .await
        .unwrap();
    match tokio::time::timeout(Duration::from_secs(5), cm_stream.try_next()).await {
        Ok(Ok(Some(WatchEvent::Added(cm)))) => assert_eq!(cm.name_any(), "before-cut"),
        other => panic!("expected ADDED before-cut, got {other:?}"),
    }

    assert_eq!(
        status_of(http.post(format!("{}/sandbox/watches/cut", sandbox.api_url()))).await,
        204
    );
    expect_end("configmaps", &mut cm_stream).await;
    expect_end("namespaces", &mut ns_stream).await;

    // The cut is one event, not a state: a watch opened after it carries on.
    let mut after = cms
        .watch(
            &WatchParams::default(),
            &created.resource_version().unwrap(),
        )
        .await
        .unwrap()
        .boxed();
    cms.create(&PostParams::default(), &config_map("after-cut", json!({})))
        .await
        .unwrap();
    match tokio::time::timeout(Duration::from_secs(5), after.try_next()).await {
        Ok(Ok(Some(WatchEvent::Added(cm)))) => assert_eq!(cm.name_any(), "after-cut"),
        other => panic!("expected ADDED after-cut, got {other:?}"),
    }
    drop(after);
    sandbox.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_over_http_is_each_change_in_order_with_its_object() {
    let (sandbox, client) = sandbox().await;
    let http = http();
    namespace(&client).await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), NS);
    let elsewhere: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let created = cms
        .create(
            &PostParams::default(),
            &config_map("erp-config", json!({"A": "1"})),
        )
        .await
        .unwrap();
    cms.create(&PostParams::default(), &config_map("other", json!({})))
        .await
        .unwrap();
    elsewhere
        .create(&PostParams::default(), &config_map("erp-config", json!({})))
        .await
        .unwrap();
    let patched = cms
        .patch(
            "erp-config",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"B": "2"}})),
        )
        .await
        .unwrap();
    cms.delete("erp-config", &DeleteParams::default())
        .await
        .unwrap();

    let history = |query: String| {
        let http = http.clone();
        let url = format!("{}/sandbox/history?{query}", sandbox.api_url());
        async move {
            let (status, events) = json_of(http.get(url)).await;
            assert_eq!(status, 200, "{events}");
            events.as_array().expect("a JSON array").clone()
        }
    };
    let events = history(format!(
        "resource=configmaps&namespace={NS}&name=erp-config"
    ))
    .await;
    let types: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
    assert_eq!(types, ["ADDED", "MODIFIED", "DELETED"], "{events:#?}");
    let rvs: Vec<u64> = events
        .iter()
        .map(|e| {
            e["resourceVersion"]
                .as_u64()
                .expect("a numeric resourceVersion")
        })
        .collect();
    assert!(rvs.windows(2).all(|w| w[0] < w[1]), "{rvs:?}");
    assert_eq!(
        rvs[0].to_string(),
        created.resource_version().unwrap(),
        "ADDED is the create"
    );
    assert_eq!(
        rvs[1].to_string(),
        patched.resource_version().unwrap(),
        "MODIFIED is the patch"
    );
    for (event, rv) in events.iter().zip(&rvs) {
        assert_eq!(event["group"], "");
        assert_eq!(event["resource"], "configmaps");
        assert_eq!(event["namespace"], NS);
        assert_eq!(event["name"], "erp-config");
        assert_eq!(event["object"]["metadata"]["name"], "erp-config");
        assert_eq!(event["object"]["metadata"]["namespace"], NS);
        assert_eq!(
            event["object"]["metadata"]["resourceVersion"],
            rv.to_string()
        );
        let time = event["time"].as_str().expect("a time");
        chrono::DateTime::parse_from_rfc3339(time)
            .unwrap_or_else(|e| panic!("time {time:?} is not RFC 3339: {e}"));
    }
    assert_eq!(events[0]["object"]["data"], json!({"A": "1"}));
    assert_eq!(events[1]["object"]["data"], json!({"A": "1", "B": "2"}));
    assert_eq!(
        events[2]["object"]["data"],
        json!({"A": "1", "B": "2"}),
        "DELETED carries the last state"
    );

    // The filters: a namespace's configmaps only, and changes after a resourceVersion.
    let in_namespace = history(format!("resource=configmaps&namespace={NS}")).await;
    let changes: Vec<(String, String)> = in_namespace
        .iter()
        .map(|e| (e["type"].to_string(), e["name"].to_string()))
        .collect();
    let q = |s: &str| format!("\"{s}\"");
    assert_eq!(
        changes,
        [
            (q("ADDED"), q("erp-config")),
            (q("ADDED"), q("other")),
            (q("MODIFIED"), q("erp-config")),
            (q("DELETED"), q("erp-config")),
        ]
    );
    let since = history(format!(
        "resource=configmaps&namespace={NS}&name=erp-config&since={}",
        rvs[0]
    ))
    .await;
    assert_eq!(since, events[1..]);
    let core = history(format!(
        "group=&resource=configmaps&namespace={NS}&name=erp-config"
    ))
    .await;
    assert_eq!(core, events);
    assert_eq!(
        history(format!("group=apps&resource=configmaps&namespace={NS}")).await,
        Vec::<Value>::new()
    );
    sandbox.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_over_http_follow_their_deployments() {
    let (sandbox, client) = sandbox().await;
    let http = http();
    namespace(&client).await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
    let ready_after = Duration::from_millis(1500);
    let asked = Instant::now();
    deployments
        .create(
            &PostParams::default(),
            &deployment(
                "reporting",
                2,
                "erp/reporting:1.0",
                json!({"sandbox.sluice.dev/ready-after": "1500ms"}),
            ),
        )
        .await
        .unwrap();
    deployments
        .create(
            &PostParams::default(),
            &deployment(
                "ledger",
                1,
                "erp/ledger:1.0",
                json!({"sandbox.sluice.dev/never-ready": "true"}),
            ),
        )
        .await
        .unwrap();

    let pods = eventually(Duration::from_secs(10), "two reporting pods", || async {
        let pods = pods_of(&http, &sandbox, "reporting").await;
        (pods.len() == 2).then_some(pods)
    })
    .await;
    // The pods were made after `asked`: seen sooner than their delay, none can be ready yet.
    if asked.elapsed() < ready_after {
        assert!(
            pods.iter().all(|p| p["ready"] == false),
            "ready before their delay: {pods:#?}"
        );
    }
    let hash = template_hash_of("reporting", &pods[0]);
    assert_eq!(template_hash_of("reporting", &pods[1]), hash);
    assert_ne!(pods[0]["name"], pods[1]["name"]);
    for pod in &pods {
        assert_eq!(pod["images"], json!(["erp/reporting:1.0"]));
        assert_eq!(pod["labels"]["app"], "reporting");
    }

    let ready = eventually(Duration::from_secs(10), "reporting pods ready", || async {
        let pods = pods_of(&http, &sandbox, "reporting").await;
        pods.iter().all(|p| p["ready"] == true).then_some(pods)
    })
    .await;
    let names = |pods: &[Value]| {
        let mut names: Vec<String> = pods.iter().map(|p| p["name"].to_string()).collect();
        names.sort();
        names
    };
    assert_eq!(names(&ready), names(&pods), "the same pods became ready");
    let ledger = pods_of(&http, &sandbox, "ledger").await;
    assert_eq!(ledger.len(), 1, "{ledger:#?}");
    template_hash_of("ledger", &ledger[0]);
    assert_eq!(ledger[0]["ready"], false, "never-ready pods stay unready");

    // A new template: new pods under a new hash replace the old ones.
    deployments
        .patch(
            "reporting",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"template": {
                "metadata": {"annotations": {"sandbox.sluice.dev/ready-after": "200ms"}},
                "spec": {"containers": [{"name": "reporting", "image": "erp/reporting:1.1"}]},
            }}})),
        )
        .await
        .unwrap();
    let rolled = eventually(Duration::from_secs(15), "the rollout to finish", || async {
        let pods = pods_of(&http, &sandbox, "reporting").await;
        (pods.len() == 2
            && pods
                .iter()
                .all(|p| p["ready"] == true && p["images"] == json!(["erp/reporting:1.1"])))
        .then_some(pods)
    })
    .await;
    let new_hash = template_hash_of("reporting", &rolled[0]);
    assert_eq!(template_hash_of("reporting", &rolled[1]), new_hash);
    assert_ne!(new_hash, hash, "a new template, a new hash");

    deployments
        .delete("reporting", &DeleteParams::default())
        .await
        .unwrap();
    eventually(Duration::from_secs(10), "the pods to go", || async {
        pods_of(&http, &sandbox, "reporting")
            .await
            .is_empty()
            .then_some(())
    })
    .await;
    sandbox.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_over_http_count_ingress_traffic() {
    let (sandbox, client) = sandbox().await;
    let http = http();
    let metrics_url = sandbox.metrics_url();
    namespace(&client).await;
    let scrape = || {
        let http = http.clone();
        let url = metrics_url.clone();
        async move {
            let response = http.get(url).send().await.expect("/metrics answers");
            assert_eq!(response.status().as_u16(), 200);
            let content_type = response
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            assert!(
                content_type.starts_with("text/plain; version=0.0.4"),
                "{content_type}"
            );
            response.text().await.expect("a body")
        }
    };
    let before = scrape().await;
    assert!(
        !before.contains("ingress=\"erp-reporting\""),
        "traffic before any Ingress:\n{before}"
    );

    Api::<Deployment>::namespaced(client.clone(), NS)
        .create(
            &PostParams::default(),
            &deployment(
                "reporting",
                2,
                "erp/reporting:1.0",
                json!({"sandbox.sluice.dev/ready-after": "100ms"}),
            ),
        )
        .await
        .unwrap();
    let service: Service = serde_json::from_value(json!({
        "metadata": {"name": "reporting"},
        "spec": {"selector": {"app": "reporting"}, "ports": [{"port": 80, "targetPort": 8080}]},
    }))
    .unwrap();
    Api::<Service>::namespaced(client.clone(), NS)
        .create(&PostParams::default(), &service)
        .await
        .unwrap();
    let ingress: Ingress = serde_json::from_value(json!({
        "metadata": {"name": "erp-reporting", "annotations": {"sandbox.sluice.dev/rps": "50"}},
        "spec": {
            "ingressClassName": "nginx",
            "rules": [{"host": "erp.example.com", "http": {"paths": [
                {"path": "/reporting", "pathType": "Prefix", "backend": {"service": {"name": "reporting", "port": {"number": 80}}}}
            ]}}],
        },
    }))
    .unwrap();
    Api::<Ingress>::namespaced(client.clone(), NS)
        .create(&PostParams::default(), &ingress)
        .await
        .unwrap();

    let served = |text: &str| -> f64 {
        samples(text, "nginx_ingress_controller_requests")
            .iter()
            .filter(|(l, _)| l["ingress"] == "erp-reporting" && l["status"] == "200")
            .map(|(_, v)| v)
            .sum()
    };
    let first = eventually(Duration::from_secs(15), "requests served with 200", || {
        let scrape = scrape();
        async move {
            let text = scrape.await;
            (served(&text) > 0.0).then_some(text)
        }
    })
    .await;
    let at_first = Instant::now();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let second = scrape().await;
    let elapsed = at_first.elapsed().as_secs_f64();
    let rate = (served(&second) - served(&first)) / elapsed;
    assert!(
        (25.0..=75.0).contains(&rate),
        "{rate:.1} requests/s served at 50 rps over {elapsed:.2}s"
    );

    assert!(second.contains("# TYPE nginx_ingress_controller_requests counter\n"));
    let ours: Vec<_> = samples(&second, "nginx_ingress_controller_requests")
        .into_iter()
        .filter(|(l, _)| l["ingress"] == "erp-reporting" && l["status"] == "200")
        .collect();
    assert_eq!(ours.len(), 1, "{second}");
    let labels = &ours[0].0;
    for (key, value) in [
        ("namespace", NS),
        ("service", "reporting"),
        ("host", "erp.example.com"),
        ("path", "/reporting"),
        ("method", "GET"),
        ("canary", ""),
        ("controller_class", "k8s.io/ingress-nginx"),
    ] {
        assert_eq!(
            labels.get(key).map(String::as_str),
            Some(value),
            "{key} in {labels:?}"
        );
    }
    // The pods' own counters name the pods the sandbox lists, and add up to what they served.
    let mut pods: Vec<String> = pods_of(&http, &sandbox, "reporting")
        .await
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect();
    pods.sort();
    let app = samples(&second, "http_requests_total");
    let mut serving: Vec<String> = app
        .iter()
        .filter(|(l, _)| l["namespace"] == NS)
        .map(|(l, _)| l["pod"].clone())
        .collect();
    serving.sort();
    serving.dedup();
    assert_eq!(serving, pods);
    let by_pods: f64 = app
        .iter()
        .filter(|(l, _)| l["namespace"] == NS && l["code"] == "200")
        .map(|(_, v)| v)
        .sum();
    assert_eq!(by_pods, served(&second));
    sandbox.shutdown().await;
}
