//! What the tests drive kubectl with: a sandbox with its own kubeconfig and discovery cache
//! (`Cluster`), a running `kubectl get --watch` (`Watch`), and readers for kubectl's tables and
//! JSON.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use serde_json::Value;
use sluice_sandbox::{Sandbox, SandboxConfig};
use tokio::io::AsyncReadExt;
use tokio::process::{Child, ChildStdout, Command};
use tokio::time::Instant;

use crate::manifests::{NAMESPACE_YAML, NS, deployment_yaml};

/// Longest any one kubectl command may run before the test fails (and the process is killed).
const COMMAND_LIMIT: Duration = Duration::from_secs(30);
/// Longest a watch may take to show an expected event.
pub const WATCH_LIMIT: Duration = Duration::from_secs(20);

/// The kubectl these tests run: `$KUBECTL`, else `/usr/bin/kubectl`. Missing means failure.
pub fn kubectl_binary() -> PathBuf {
    let path = std::env::var_os("KUBECTL")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/kubectl"));
    assert!(
        path.is_file(),
        "kubectl is not installed at {}: these tests drive the real kubectl (v1.32 or later) and \
         cannot run without it. It is part of the machine image; install it there, or point \
         KUBECTL at a kubectl binary.",
        path.display()
    );
    path
}

/// A directory under the system temp dir, removed when dropped (even when a test fails).
struct TempDir(PathBuf);

impl TempDir {
    fn new(test: &str) -> TempDir {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = std::env::temp_dir().join(format!(
            "sluice-kubectl-{test}-{}-{}-{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn describe(args: &[&str], output: &Output) -> String {
    format!(
        "kubectl {}\n{}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).trim().to_string()
}

/// A sandbox and a kubectl pointed at it.
pub struct Cluster {
    sandbox: Sandbox,
    kubectl: PathBuf,
    kubeconfig: PathBuf,
    cache: PathBuf,
    dir: TempDir,
}

impl Cluster {
    pub async fn start(test: &str) -> Cluster {
        let kubectl = kubectl_binary();
        let sandbox = Sandbox::start(SandboxConfig::default())
            .await
            .expect("the sandbox starts on 127.0.0.1");
        let dir = TempDir::new(test);
        let kubeconfig = dir.0.join("kubeconfig");
        sandbox
            .write_kubeconfig(&kubeconfig)
            .expect("the kubeconfig is written");
        Cluster {
            sandbox,
            kubectl,
            kubeconfig,
            cache: dir.0.join("cache"),
            dir,
        }
    }

    /// Writes a manifest into the test's directory; returns its path for `-f`.
    pub fn manifest(&self, name: &str, yaml: &str) -> String {
        let path = self.dir.0.join(name);
        std::fs::write(&path, yaml).unwrap_or_else(|e| panic!("cannot write {name}: {e}"));
        path.to_str().expect("temp paths are UTF-8").to_string()
    }

    /// The flags every kubectl call of this test carries, for shell pipelines.
    pub fn flags(&self) -> Vec<String> {
        vec![
            format!("--kubeconfig={}", self.kubeconfig.display()),
            format!("--cache-dir={}", self.cache.display()),
        ]
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.kubectl);
        command
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(&self.cache)
            .args(args)
            // Only this test's kubeconfig, and no user preferences (~/.kube/kuberc).
            .env_remove("KUBECONFIG")
            .env("HOME", &self.dir.0)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        command
    }

    /// Runs kubectl to completion (at most COMMAND_LIMIT), whatever its exit status.
    pub async fn run(&self, args: &[&str]) -> Output {
        let output = self
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output();
        match tokio::time::timeout(COMMAND_LIMIT, output).await {
            Ok(Ok(output)) => output,
            Ok(Err(e)) => panic!("cannot run {}: {e}", self.kubectl.display()),
            // Dropping the future killed the process (kill_on_drop).
            Err(_) => panic!(
                "kubectl {} did not finish within {COMMAND_LIMIT:?}",
                args.join(" ")
            ),
        }
    }

    /// Runs kubectl and asserts it succeeded.
    pub async fn kubectl(&self, args: &[&str]) -> Output {
        let output = self.run(args).await;
        assert!(
            output.status.success(),
            "kubectl failed:\n{}",
            describe(args, &output)
        );
        output
    }

    /// Runs kubectl and asserts it failed; returns its output to check the error.
    async fn kubectl_fails(&self, args: &[&str]) -> Output {
        let output = self.run(args).await;
        assert!(
            !output.status.success(),
            "kubectl should have failed:\n{}",
            describe(args, &output)
        );
        output
    }

    /// Runs kubectl, asserts it failed saying `message` on stderr.
    pub async fn fails_with(&self, args: &[&str], message: &str) -> Output {
        let output = self.kubectl_fails(args).await;
        assert!(
            String::from_utf8_lossy(&output.stderr).contains(message),
            "kubectl should have said {message:?}:\n{}",
            describe(args, &output)
        );
        output
    }

    /// Runs kubectl, asserts it succeeded and printed exactly `expected` (trimmed) on stdout.
    pub async fn expect_stdout(&self, args: &[&str], expected: &str) {
        let output = self.kubectl(args).await;
        assert_eq!(
            text(&output.stdout),
            expected,
            "unexpected stdout of:\n{}",
            describe(args, &output)
        );
    }

    /// `kubectl <args> -o json`, parsed.
    pub async fn get_json(&self, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.extend(["-o", "json"]);
        let output = self.kubectl(&args).await;
        serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
            panic!(
                "kubectl printed something that is not JSON ({e}):\n{}",
                describe(&args, &output)
            )
        })
    }

    pub async fn deployment(&self) -> Value {
        self.get_json(&["get", "deployment", "reporting", "-n", NS])
            .await
    }

    /// The namespace, created from a manifest with `kubectl create -f`.
    pub async fn create_namespace(&self) {
        let file = self.manifest("namespace.yaml", NAMESPACE_YAML);
        self.expect_stdout(&["create", "-f", &file], "namespace/erp-system created")
            .await;
    }

    /// The reporting Deployment, created with `kubectl apply -f`.
    pub async fn apply_reporting(&self, image: &str, replicas: u32) {
        let file = self.manifest("deployment.yaml", &deployment_yaml(image, replicas));
        self.expect_stdout(&["apply", "-f", &file], "deployment.apps/reporting created")
            .await;
    }

    pub async fn stop(self) {
        let Cluster { sandbox, dir, .. } = self;
        tokio::time::timeout(Duration::from_secs(10), sandbox.shutdown())
            .await
            .expect("the sandbox stops within 10s");
        drop(dir);
    }
}

/// The rows of a kubectl table, each cell under its header; columns are cut where headers start.
pub fn table(stdout: &[u8]) -> Vec<BTreeMap<String, String>> {
    let text = String::from_utf8_lossy(stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let mut columns: Vec<(usize, String)> = Vec::new();
    let mut previous = ' ';
    for (i, c) in header.char_indices() {
        if !c.is_whitespace() && previous.is_whitespace() {
            columns.push((i, String::new()));
        }
        if let Some((_, name)) = columns.last_mut().filter(|_| !c.is_whitespace()) {
            name.push(c);
        }
        previous = c;
    }
    lines
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            columns
                .iter()
                .enumerate()
                .map(|(i, (start, name))| {
                    let end = columns.get(i + 1).map_or(line.len(), |(s, _)| *s);
                    let cell = line.get(*start..end.min(line.len())).unwrap_or("");
                    (name.clone(), cell.trim().to_string())
                })
                .collect()
        })
        .collect()
}

pub fn row<'a>(rows: &'a [BTreeMap<String, String>], name: &str) -> &'a BTreeMap<String, String> {
    rows.iter()
        .find(|r| r.get("NAME").map(String::as_str) == Some(name))
        .unwrap_or_else(|| panic!("no row named {name} in {rows:#?}"))
}

#[test]
fn table_cells_fall_under_their_headers() {
    let line = |cells: [&str; 5]| {
        format!(
            "{:<12}{:<13}{:<25}{:<13}{}\n",
            cells[0], cells[1], cells[2], cells[3], cells[4]
        )
    };
    let printed = [
        line(["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]),
        line(["leases", "", "coordination.k8s.io/v1", "true", "Lease"]),
        line(["deployments", "deploy", "apps/v1", "true", "Deployment"]),
    ]
    .concat();
    let rows = table(printed.as_bytes());
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["NAME"], "leases");
    assert_eq!(rows[0]["SHORTNAMES"], "", "an empty cell stays empty");
    assert_eq!(rows[0]["APIVERSION"], "coordination.k8s.io/v1");
    assert_eq!(row(&rows, "deployments")["SHORTNAMES"], "deploy");
    assert_eq!(row(&rows, "deployments")["KIND"], "Deployment");
}

pub fn condition<'a>(obj: &'a Value, kind: &str) -> &'a Value {
    obj.pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|c| c.iter().find(|c| c["type"] == kind))
        .unwrap_or_else(|| panic!("no {kind} condition in {:#}", obj["status"]))
}

pub fn str_at<'a>(obj: &'a Value, pointer: &str) -> &'a str {
    obj.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no string at {pointer} in {obj:#}"))
}

pub fn int_at(obj: &Value, pointer: &str) -> i64 {
    obj.pointer(pointer)
        .and_then(Value::as_i64)
        .unwrap_or_else(|| panic!("no integer at {pointer} in {obj:#}"))
}

/// A running `kubectl get -w --output-watch-events -o json`, read event by event.
pub struct Watch {
    child: Child,
    stdout: ChildStdout,
    stderr_file: PathBuf,
    command: String,
    unparsed: Vec<u8>,
    pub events: Vec<Value>,
    /// Events already offered to `next_matching`.
    seen: usize,
}

impl Watch {
    pub fn start(cluster: &Cluster, args: &[&str]) -> Watch {
        let stderr_file = cluster.dir.0.join("watch.stderr");
        let stderr = std::fs::File::create(&stderr_file).expect("the stderr file is created");
        let mut child = cluster
            .command(args)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start kubectl {}: {e}", args.join(" ")));
        let stdout = child.stdout.take().expect("stdout is piped");
        Watch {
            child,
            stdout,
            stderr_file,
            command: format!("kubectl {}", args.join(" ")),
            unparsed: Vec::new(),
            events: Vec::new(),
            seen: 0,
        }
    }

    pub fn report(&self) -> String {
        let stderr = std::fs::read_to_string(&self.stderr_file).unwrap_or_default();
        let types: Vec<&str> = self
            .events
            .iter()
            .map(|e| e["type"].as_str().unwrap_or("?"))
            .collect();
        format!(
            "{}\nevents so far: {types:?}\nunparsed output: {}\nstderr: {stderr}",
            self.command,
            String::from_utf8_lossy(&self.unparsed)
        )
    }

    /// The next event (after those already seen) that `wanted` accepts, within `limit`.
    pub async fn next_matching(
        &mut self,
        what: &str,
        limit: Duration,
        wanted: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            while self.seen < self.events.len() {
                self.seen += 1;
                if wanted(&self.events[self.seen - 1]) {
                    return self.events[self.seen - 1].clone();
                }
            }
            let mut chunk = [0u8; 16 * 1024];
            let read = match tokio::time::timeout_at(deadline, self.stdout.read(&mut chunk)).await {
                Ok(read) => read,
                Err(_) => panic!("no {what} within {limit:?} from:\n{}", self.report()),
            };
            match read {
                Ok(0) => panic!("the watch ended before {what}:\n{}", self.report()),
                Ok(n) => self.parse(&chunk[..n]),
                Err(e) => panic!("cannot read the watch ({e}):\n{}", self.report()),
            }
        }
    }

    /// Takes the complete JSON documents out of what kubectl printed so far.
    fn parse(&mut self, chunk: &[u8]) {
        self.unparsed.extend_from_slice(chunk);
        let mut stream = serde_json::Deserializer::from_slice(&self.unparsed).into_iter::<Value>();
        loop {
            match stream.next() {
                Some(Ok(event)) => self.events.push(event),
                // The rest of the document has not been printed yet.
                Some(Err(e)) if e.is_eof() => break,
                Some(Err(e)) => panic!("the watch printed something that is not JSON: {e}"),
                None => break,
            }
        }
        let consumed = stream.byte_offset();
        self.unparsed.drain(..consumed);
    }

    pub async fn stop(mut self) {
        assert!(
            self.child.try_wait().expect("the watch's status").is_none(),
            "the watch ended by itself:\n{}",
            self.report()
        );
        self.child.start_kill().expect("the watch is killed");
        tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .expect("the killed watch exits within 10s")
            .expect("the watch's exit status");
    }
}
