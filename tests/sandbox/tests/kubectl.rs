//! The real `kubectl` against the sandbox: discovery, create, apply (create, configure,
//! unchanged), get as JSON and as tables, patch, label, annotate, scale, watch, wait, rollout
//! status, delete, and a CustomResourceDefinition with objects of its kind.
//!
//! Each test starts its own sandbox on a free port and runs kubectl with its own kubeconfig and
//! discovery cache in a fresh temporary directory, so runs never share state. kubectl is part of
//! the machine image (`/usr/bin/kubectl`, or set `KUBECTL`): when it is missing these tests fail.

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

/// Longest any one kubectl command may run before the test fails (and the process is killed).
const COMMAND_LIMIT: Duration = Duration::from_secs(30);
/// Longest a watch may take to show an expected event.
const WATCH_LIMIT: Duration = Duration::from_secs(20);
const NS: &str = "erp-system";

const NAMESPACE_YAML: &str = "\
apiVersion: v1
kind: Namespace
metadata:
  name: erp-system
  labels:
    erp.example.com/environment: staging
";

const SERVICE_YAML: &str = "\
apiVersion: v1
kind: Service
metadata:
  name: reporting
  namespace: erp-system
  labels:
    app.kubernetes.io/name: reporting
    app.kubernetes.io/part-of: erp
spec:
  selector:
    app.kubernetes.io/name: reporting
  ports:
  - name: http
    port: 80
";

/// The ERP reporting service, ready 200ms after each pod starts (instead of the default 1s).
fn deployment_yaml(image: &str, replicas: u32) -> String {
    format!(
        "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: reporting
  namespace: erp-system
  labels:
    app.kubernetes.io/name: reporting
    app.kubernetes.io/part-of: erp
spec:
  replicas: {replicas}
  selector:
    matchLabels:
      app.kubernetes.io/name: reporting
  template:
    metadata:
      labels:
        app.kubernetes.io/name: reporting
        app.kubernetes.io/part-of: erp
      annotations:
        sandbox.sluice.dev/ready-after: 200ms
    spec:
      containers:
      - name: reporting
        image: {image}
        ports:
        - name: http
          containerPort: 8080
"
    )
}

const CRD_YAML: &str = "\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: reportschedules.erp.sluice.dev
spec:
  group: erp.sluice.dev
  scope: Namespaced
  names:
    kind: ReportSchedule
    listKind: ReportScheduleList
    plural: reportschedules
    singular: reportschedule
    shortNames: [rsched]
  versions:
  - name: v1alpha1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              report: {type: string}
              schedule: {type: string}
              format: {type: string}
    additionalPrinterColumns:
    - name: Report
      type: string
      jsonPath: .spec.report
    - name: Format
      type: string
      jsonPath: .spec.format
";

fn report_schedule_yaml(format: &str) -> String {
    format!(
        "\
apiVersion: erp.sluice.dev/v1alpha1
kind: ReportSchedule
metadata:
  name: month-end-close
  namespace: erp-system
spec:
  report: general-ledger
  schedule: \"0 2 1 * *\"
  format: {format}
"
    )
}

/// The kubectl these tests run: `$KUBECTL`, else `/usr/bin/kubectl`. Missing means failure.
fn kubectl_binary() -> PathBuf {
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

fn describe(args: &[&str], output: &Output) -> String {
    format!(
        "kubectl {}\n{}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).trim().to_string()
}

/// A sandbox and a kubectl pointed at it.
struct Cluster {
    sandbox: Sandbox,
    kubectl: PathBuf,
    kubeconfig: PathBuf,
    cache: PathBuf,
    dir: TempDir,
}

impl Cluster {
    async fn start(test: &str) -> Cluster {
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
    fn manifest(&self, name: &str, yaml: &str) -> String {
        let path = self.dir.0.join(name);
        std::fs::write(&path, yaml).unwrap_or_else(|e| panic!("cannot write {name}: {e}"));
        path.to_str().expect("temp paths are UTF-8").to_string()
    }

    /// The flags every kubectl call of this test carries, for shell pipelines.
    fn flags(&self) -> Vec<String> {
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
    async fn run(&self, args: &[&str]) -> Output {
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
    async fn kubectl(&self, args: &[&str]) -> Output {
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
    async fn fails_with(&self, args: &[&str], message: &str) -> Output {
        let output = self.kubectl_fails(args).await;
        assert!(
            String::from_utf8_lossy(&output.stderr).contains(message),
            "kubectl should have said {message:?}:\n{}",
            describe(args, &output)
        );
        output
    }

    /// Runs kubectl, asserts it succeeded and printed exactly `expected` (trimmed) on stdout.
    async fn expect_stdout(&self, args: &[&str], expected: &str) {
        let output = self.kubectl(args).await;
        assert_eq!(
            text(&output.stdout),
            expected,
            "unexpected stdout of:\n{}",
            describe(args, &output)
        );
    }

    /// `kubectl <args> -o json`, parsed.
    async fn get_json(&self, args: &[&str]) -> Value {
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

    async fn deployment(&self) -> Value {
        self.get_json(&["get", "deployment", "reporting", "-n", NS])
            .await
    }

    /// The namespace, created from a manifest with `kubectl create -f`.
    async fn create_namespace(&self) {
        let file = self.manifest("namespace.yaml", NAMESPACE_YAML);
        self.expect_stdout(&["create", "-f", &file], "namespace/erp-system created")
            .await;
    }

    /// The reporting Deployment, created with `kubectl apply -f`.
    async fn apply_reporting(&self, image: &str, replicas: u32) {
        let file = self.manifest("deployment.yaml", &deployment_yaml(image, replicas));
        self.expect_stdout(&["apply", "-f", &file], "deployment.apps/reporting created")
            .await;
    }

    async fn stop(self) {
        let Cluster { sandbox, dir, .. } = self;
        tokio::time::timeout(Duration::from_secs(10), sandbox.shutdown())
            .await
            .expect("the sandbox stops within 10s");
        drop(dir);
    }
}

/// The rows of a kubectl table, each cell under its header; columns are cut where headers start.
fn table(stdout: &[u8]) -> Vec<BTreeMap<String, String>> {
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

fn row<'a>(rows: &'a [BTreeMap<String, String>], name: &str) -> &'a BTreeMap<String, String> {
    rows.iter()
        .find(|r| r.get("NAME").map(String::as_str) == Some(name))
        .unwrap_or_else(|| panic!("no row named {name} in {rows:#?}"))
}

fn condition<'a>(obj: &'a Value, kind: &str) -> &'a Value {
    obj.pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|c| c.iter().find(|c| c["type"] == kind))
        .unwrap_or_else(|| panic!("no {kind} condition in {:#}", obj["status"]))
}

fn str_at<'a>(obj: &'a Value, pointer: &str) -> &'a str {
    obj.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no string at {pointer} in {obj:#}"))
}

fn int_at(obj: &Value, pointer: &str) -> i64 {
    obj.pointer(pointer)
        .and_then(Value::as_i64)
        .unwrap_or_else(|| panic!("no integer at {pointer} in {obj:#}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_resources_and_versions_list_what_sluice_uses() {
    let cluster = Cluster::start("discovery").await;

    let output = cluster.kubectl(&["api-resources"]).await;
    let rows = table(&output.stdout);
    let expect = |name: &str, short: &str, api_version: &str, namespaced: &str, kind: &str| {
        let found = rows
            .iter()
            .find(|r| r["NAME"] == name && r["APIVERSION"] == api_version)
            .unwrap_or_else(|| {
                panic!(
                    "api-resources does not list {name} ({api_version}):\n{}",
                    describe(&["api-resources"], &output)
                )
            });
        assert_eq!(found["SHORTNAMES"], short, "short names of {name}");
        assert_eq!(found["NAMESPACED"], namespaced, "scope of {name}");
        assert_eq!(found["KIND"], kind, "kind of {name}");
    };
    expect("deployments", "deploy", "apps/v1", "true", "Deployment");
    expect("services", "svc", "v1", "true", "Service");
    expect("namespaces", "ns", "v1", "false", "Namespace");
    expect(
        "ingresses",
        "ing",
        "networking.k8s.io/v1",
        "true",
        "Ingress",
    );
    expect("leases", "", "coordination.k8s.io/v1", "true", "Lease");
    expect(
        "customresourcedefinitions",
        "crd,crds",
        "apiextensions.k8s.io/v1",
        "false",
        "CustomResourceDefinition",
    );

    // Subresources (deployments/scale, */status) are served but not listed as resources.
    assert!(
        rows.iter().all(|r| !r["NAME"].contains('/')),
        "api-resources lists a subresource: {rows:#?}"
    );
    cluster
        .expect_stdout(
            &["api-resources", "--api-group=apps", "-o", "name"],
            "deployments.apps",
        )
        .await;

    let versions = cluster.kubectl(&["api-versions"]).await;
    let versions = text(&versions.stdout);
    for expected in [
        "v1",
        "apps/v1",
        "networking.k8s.io/v1",
        "coordination.k8s.io/v1",
        "apiextensions.k8s.io/v1",
    ] {
        assert!(
            versions.lines().any(|l| l == expected),
            "api-versions lacks {expected}:\n{versions}"
        );
    }

    let version = cluster.get_json(&["version"]).await;
    assert_eq!(version["serverVersion"]["major"], "1", "{version:#}");
    assert!(
        str_at(&version, "/serverVersion/gitVersion").starts_with("v1."),
        "{version:#}"
    );

    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_and_apply_then_read_back_as_json() {
    let cluster = Cluster::start("apply").await;
    cluster.create_namespace().await;

    // create -f: a Service, defaulted by the server.
    let service_file = cluster.manifest("service.yaml", SERVICE_YAML);
    cluster
        .expect_stdout(
            &["create", "-f", &service_file],
            "service/reporting created",
        )
        .await;
    let service = cluster
        .get_json(&["get", "service", "reporting", "-n", NS])
        .await;
    assert_eq!(service["spec"]["type"], "ClusterIP", "{service:#}");
    assert_eq!(service["spec"]["sessionAffinity"], "None", "{service:#}");
    let cluster_ip = str_at(&service, "/spec/clusterIP");
    assert!(
        cluster_ip.parse::<std::net::Ipv4Addr>().is_ok(),
        "the server allocates a cluster IP, got {cluster_ip:?}"
    );
    assert_eq!(
        service["spec"]["ports"][0]["protocol"], "TCP",
        "{service:#}"
    );
    assert_eq!(service["spec"]["ports"][0]["targetPort"], 80, "{service:#}");
    // Creating it again is refused.
    cluster
        .fails_with(
            &["create", "-f", &service_file],
            "Error from server (AlreadyExists): error when creating",
        )
        .await;
    // A merge patch that changes nothing is reported as such (the server leaves the object be).
    cluster
        .expect_stdout(
            &[
                "patch",
                "service",
                "reporting",
                "-n",
                NS,
                "--type=merge",
                "-p",
                r#"{"spec":{"sessionAffinity":"None"}}"#,
            ],
            "service/reporting patched (no change)",
        )
        .await;
    let unpatched = cluster
        .get_json(&["get", "service", "reporting", "-n", NS])
        .await;
    assert_eq!(
        unpatched["metadata"]["resourceVersion"], service["metadata"]["resourceVersion"],
        "a no-op patch must not write"
    );

    // apply: creates.
    let file = cluster.manifest(
        "deployment.yaml",
        &deployment_yaml("registry.example.com/erp/reporting:1.4.0", 2),
    );
    cluster
        .expect_stdout(&["apply", "-f", &file], "deployment.apps/reporting created")
        .await;
    let created = cluster.deployment().await;
    assert_eq!(created["apiVersion"], "apps/v1");
    assert_eq!(created["kind"], "Deployment");
    let uid = str_at(&created, "/metadata/uid").to_string();
    assert!(!uid.is_empty(), "no uid: {created:#}");
    let first_rv = str_at(&created, "/metadata/resourceVersion").to_string();
    assert!(!first_rv.is_empty(), "no resourceVersion: {created:#}");
    assert!(
        !str_at(&created, "/metadata/creationTimestamp").is_empty(),
        "{created:#}"
    );
    assert_eq!(int_at(&created, "/metadata/generation"), 1);
    assert!(
        str_at(
            &created,
            "/metadata/annotations/kubectl.kubernetes.io~1last-applied-configuration"
        )
        .contains("reporting:1.4.0"),
        "apply records the last applied configuration: {created:#}"
    );
    // What the server defaults.
    let spec = &created["spec"];
    assert_eq!(spec["replicas"], 2);
    assert_eq!(spec["revisionHistoryLimit"], 10);
    assert_eq!(spec["progressDeadlineSeconds"], 600);
    assert_eq!(spec["strategy"]["type"], "RollingUpdate");
    assert_eq!(spec["strategy"]["rollingUpdate"]["maxSurge"], "25%");
    assert_eq!(spec["strategy"]["rollingUpdate"]["maxUnavailable"], "25%");
    let pod = &spec["template"]["spec"];
    assert_eq!(pod["restartPolicy"], "Always");
    assert_eq!(pod["dnsPolicy"], "ClusterFirst");
    assert_eq!(pod["terminationGracePeriodSeconds"], 30);
    assert_eq!(pod["schedulerName"], "default-scheduler");
    let container = &pod["containers"][0];
    assert_eq!(
        container["image"],
        "registry.example.com/erp/reporting:1.4.0"
    );
    assert_eq!(container["imagePullPolicy"], "IfNotPresent");
    assert_eq!(container["terminationMessagePolicy"], "File");
    assert_eq!(container["ports"][0]["protocol"], "TCP");

    // apply: a new image is a spec change, so the generation moves.
    std::fs::write(
        &file,
        deployment_yaml("registry.example.com/erp/reporting:1.5.0", 2),
    )
    .expect("the manifest is rewritten");
    cluster
        .expect_stdout(
            &["apply", "-f", &file],
            "deployment.apps/reporting configured",
        )
        .await;
    let configured = cluster.deployment().await;
    assert_eq!(
        configured["spec"]["template"]["spec"]["containers"][0]["image"],
        "registry.example.com/erp/reporting:1.5.0"
    );
    assert_eq!(int_at(&configured, "/metadata/generation"), 2);
    assert_eq!(str_at(&configured, "/metadata/uid"), uid, "same object");
    assert_ne!(
        str_at(&configured, "/metadata/resourceVersion"),
        first_rv,
        "an update gets a new resourceVersion"
    );

    // apply again, unchanged: nothing to send.
    cluster
        .expect_stdout(
            &["apply", "-f", &file],
            "deployment.apps/reporting unchanged",
        )
        .await;
    let unchanged = cluster.deployment().await;
    assert_eq!(int_at(&unchanged, "/metadata/generation"), 2);
    assert_eq!(
        unchanged["spec"]["template"]["spec"]["containers"][0]["image"],
        "registry.example.com/erp/reporting:1.5.0"
    );

    // The Service as `kubectl get` prints it (a Table from the server).
    let services = cluster.kubectl(&["get", "services", "-n", NS]).await;
    let services = table(&services.stdout);
    let reporting = row(&services, "reporting");
    assert_eq!(reporting["TYPE"], "ClusterIP");
    assert_eq!(reporting["CLUSTER-IP"], cluster_ip);
    assert_eq!(reporting["PORTS"], "80/TCP");

    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patch_label_annotate_and_scale() {
    let cluster = Cluster::start("edit").await;
    cluster.create_namespace().await;
    cluster
        .apply_reporting("registry.example.com/erp/reporting:1.4.0", 2)
        .await;
    let before = cluster.deployment().await;
    assert_eq!(int_at(&before, "/metadata/generation"), 1);

    cluster
        .expect_stdout(
            &[
                "patch",
                "deployment",
                "reporting",
                "-n",
                NS,
                "--type=merge",
                "-p",
                r#"{"spec":{"minReadySeconds":5,"template":{"spec":{"containers":[{"name":"reporting","image":"registry.example.com/erp/reporting:1.4.1"}]}}}}"#,
            ],
            "deployment.apps/reporting patched",
        )
        .await;
    let patched = cluster.deployment().await;
    assert_eq!(patched["spec"]["minReadySeconds"], 5);
    assert_eq!(
        patched["spec"]["template"]["spec"]["containers"][0]["image"],
        "registry.example.com/erp/reporting:1.4.1"
    );
    // A JSON merge patch (unlike a strategic one) replaces lists whole: the container is what
    // the patch says, defaulted again, and its ports are gone.
    let container = &patched["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        container["imagePullPolicy"], "IfNotPresent",
        "{container:#}"
    );
    assert!(container.get("ports").is_none(), "{container:#}");
    assert_eq!(int_at(&patched, "/metadata/generation"), 2);

    cluster
        .expect_stdout(
            &[
                "label",
                "deployment",
                "reporting",
                "-n",
                NS,
                "erp.example.com/tier=backend",
            ],
            "deployment.apps/reporting labeled",
        )
        .await;
    cluster
        .expect_stdout(
            &[
                "annotate",
                "deployment",
                "reporting",
                "-n",
                NS,
                "erp.example.com/owner=finance",
            ],
            "deployment.apps/reporting annotated",
        )
        .await;
    let labeled = cluster.deployment().await;
    assert_eq!(
        labeled["metadata"]["labels"]["erp.example.com/tier"],
        "backend"
    );
    assert_eq!(
        labeled["metadata"]["labels"]["app.kubernetes.io/part-of"], "erp",
        "labelling keeps the other labels"
    );
    assert_eq!(
        labeled["metadata"]["annotations"]["erp.example.com/owner"],
        "finance"
    );
    assert_eq!(
        int_at(&labeled, "/metadata/generation"),
        2,
        "metadata changes leave the generation alone"
    );
    // Labels select.
    cluster
        .expect_stdout(
            &[
                "get",
                "deployments",
                "-n",
                NS,
                "-l",
                "erp.example.com/tier=backend",
                "-o",
                "name",
            ],
            "deployment.apps/reporting",
        )
        .await;
    cluster
        .expect_stdout(
            &[
                "get",
                "deployments",
                "-n",
                NS,
                "-l",
                "erp.example.com/tier=frontend",
                "-o",
                "name",
            ],
            "",
        )
        .await;
    // Relabelling needs --overwrite; removing a label works with `key-`.
    cluster
        .fails_with(
            &[
                "label",
                "deployment",
                "reporting",
                "-n",
                NS,
                "erp.example.com/tier=frontend",
            ],
            "--overwrite is false",
        )
        .await;
    cluster
        .expect_stdout(
            &[
                "label",
                "deployment",
                "reporting",
                "-n",
                NS,
                "erp.example.com/tier-",
            ],
            "deployment.apps/reporting unlabeled",
        )
        .await;
    let unlabeled = cluster.deployment().await;
    assert!(
        unlabeled["metadata"]["labels"]
            .get("erp.example.com/tier")
            .is_none(),
        "{:#}",
        unlabeled["metadata"]
    );

    // scale goes through the scale subresource and moves spec.replicas (and the generation).
    cluster
        .expect_stdout(
            &["scale", "deployment", "reporting", "-n", NS, "--replicas=3"],
            "deployment.apps/reporting scaled",
        )
        .await;
    cluster
        .expect_stdout(
            &[
                "get",
                "deployment",
                "reporting",
                "-n",
                NS,
                "-o",
                "jsonpath={.spec.replicas}",
            ],
            "3",
        )
        .await;
    let scaled = cluster.deployment().await;
    assert_eq!(scaled["spec"]["replicas"], 3);
    assert_eq!(int_at(&scaled, "/metadata/generation"), 3);
    // kubectl checks --current-replicas against the scale subresource before writing.
    cluster
        .fails_with(
            &[
                "scale",
                "deployment",
                "reporting",
                "-n",
                NS,
                "--current-replicas=2",
                "--replicas=5",
            ],
            "Expected replicas to be 2, was 3",
        )
        .await;

    // The simulated pods follow: all three become ready.
    cluster
        .expect_stdout(
            &[
                "wait",
                "--for=condition=Available",
                "deployment/reporting",
                "-n",
                NS,
                "--timeout=30s",
            ],
            "deployment.apps/reporting condition met",
        )
        .await;
    let ready = cluster.deployment().await;
    assert_eq!(ready["spec"]["replicas"], 3, "{ready:#}");
    assert_eq!(ready["status"]["readyReplicas"], 3, "{:#}", ready["status"]);

    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_for_available_then_delete() {
    let cluster = Cluster::start("wait").await;
    cluster.create_namespace().await;
    let service_file = cluster.manifest("service.yaml", SERVICE_YAML);
    cluster.kubectl(&["apply", "-f", &service_file]).await;
    cluster
        .apply_reporting("registry.example.com/erp/reporting:1.4.0", 2)
        .await;

    let started = Instant::now();
    cluster
        .expect_stdout(
            &[
                "wait",
                "--for=condition=Available",
                "deployment/reporting",
                "-n",
                NS,
                "--timeout=30s",
            ],
            "deployment.apps/reporting condition met",
        )
        .await;
    let waited = started.elapsed();
    let available = cluster.deployment().await;
    let condition = condition(&available, "Available");
    assert_eq!(condition["status"], "True", "{condition:#}");
    assert_eq!(condition["reason"], "MinimumReplicasAvailable");
    assert_eq!(available["status"]["readyReplicas"], 2);
    assert_eq!(available["status"]["availableReplicas"], 2);
    assert_eq!(
        available["status"]["observedGeneration"],
        available["metadata"]["generation"]
    );
    assert!(
        waited < Duration::from_secs(10),
        "pods ready after 200ms took {waited:?} to make the Deployment Available"
    );
    cluster
        .expect_stdout(
            &[
                "rollout",
                "status",
                "deployment/reporting",
                "-n",
                NS,
                "--timeout=30s",
            ],
            "deployment \"reporting\" successfully rolled out",
        )
        .await;
    let deployments = cluster.kubectl(&["get", "deployments", "-n", NS]).await;
    let deployments = table(&deployments.stdout);
    let reporting = row(&deployments, "reporting");
    assert_eq!(reporting["READY"], "2/2", "{deployments:#?}");
    assert_eq!(reporting["UP-TO-DATE"], "2", "{deployments:#?}");
    assert_eq!(reporting["AVAILABLE"], "2", "{deployments:#?}");

    cluster
        .expect_stdout(
            &[
                "delete",
                "deployment",
                "reporting",
                "-n",
                NS,
                "--timeout=30s",
            ],
            "deployment.apps \"reporting\" deleted",
        )
        .await;
    cluster
        .fails_with(
            &["get", "deployment", "reporting", "-n", NS],
            "Error from server (NotFound): deployments.apps \"reporting\" not found",
        )
        .await;
    let empty = cluster.kubectl(&["get", "deployments", "-n", NS]).await;
    assert_eq!(text(&empty.stdout), "");
    assert_eq!(
        text(&empty.stderr),
        "No resources found in erp-system namespace."
    );

    // Deleting the namespace takes what is left in it.
    let namespace_file = cluster.manifest("namespace.yaml", NAMESPACE_YAML);
    cluster
        .expect_stdout(
            &["delete", "-f", &namespace_file, "--timeout=30s"],
            "namespace \"erp-system\" deleted",
        )
        .await;
    cluster
        .fails_with(
            &["get", "namespace", "erp-system"],
            "Error from server (NotFound): namespaces \"erp-system\" not found",
        )
        .await;
    cluster
        .fails_with(
            &["get", "service", "reporting", "-n", NS],
            // kubectl 1.33 then names the missing namespace, older ones the missing service.
            "Error from server (NotFound)",
        )
        .await;
    let services = cluster
        .kubectl(&["get", "services", "--all-namespaces", "-o", "name"])
        .await;
    assert!(
        !text(&services.stdout).contains("service/reporting"),
        "the namespace's Service went with it:\n{}",
        text(&services.stdout)
    );

    cluster.stop().await;
}

/// A running `kubectl get -w --output-watch-events -o json`, read event by event.
struct Watch {
    child: Child,
    stdout: ChildStdout,
    stderr_file: PathBuf,
    command: String,
    unparsed: Vec<u8>,
    events: Vec<Value>,
    /// Events already offered to `next_matching`.
    seen: usize,
}

impl Watch {
    fn start(cluster: &Cluster, args: &[&str]) -> Watch {
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

    fn report(&self) -> String {
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
    async fn next_matching(
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

    async fn stop(mut self) {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_watch_prints_the_modification_made_while_watching() {
    let cluster = Cluster::start("watch").await;
    cluster.create_namespace().await;
    cluster
        .apply_reporting("registry.example.com/erp/reporting:1.4.0", 1)
        .await;

    let mut watch = Watch::start(
        &cluster,
        &[
            "get",
            "deployment",
            "reporting",
            "-n",
            NS,
            "--watch",
            "--output-watch-events",
            "-o",
            "json",
        ],
    );
    // The listed object comes first, as ADDED; the watch continues from the list's version.
    let added = watch
        .next_matching("ADDED event", WATCH_LIMIT, |e| e["type"] == "ADDED")
        .await;
    assert_eq!(
        added["object"]["metadata"]["name"], "reporting",
        "{added:#}"
    );
    assert_eq!(added["object"]["kind"], "Deployment", "{added:#}");
    assert!(
        added["object"]["metadata"]["labels"]
            .get("erp.example.com/release")
            .is_none(),
        "{added:#}"
    );

    cluster
        .expect_stdout(
            &[
                "label",
                "deployment",
                "reporting",
                "-n",
                NS,
                "erp.example.com/release=canary",
            ],
            "deployment.apps/reporting labeled",
        )
        .await;
    // Status updates by the workload simulator come as MODIFIED too: wait for ours.
    let modified = watch
        .next_matching("MODIFIED event with the new label", WATCH_LIMIT, |e| {
            e["type"] == "MODIFIED"
                && e["object"]["metadata"]["labels"]["erp.example.com/release"] == "canary"
        })
        .await;
    assert_eq!(
        modified["object"]["metadata"]["uid"], added["object"]["metadata"]["uid"],
        "{modified:#}"
    );
    assert!(
        watch
            .events
            .iter()
            .all(|e| e["type"] != "DELETED" && e["object"]["metadata"]["name"] == "reporting"),
        "only the watched Deployment, never deleted:\n{}",
        watch.report()
    );
    watch.stop().await;

    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_resource_definition_and_its_objects() {
    let cluster = Cluster::start("crd").await;
    cluster.create_namespace().await;
    // Discovery is cached before the CRD exists: kubectl must notice the new kind by itself.
    cluster.kubectl(&["get", "deployments", "-n", NS]).await;

    let crd_file = cluster.manifest("crd.yaml", CRD_YAML);
    cluster
        .expect_stdout(
            &["apply", "-f", &crd_file],
            "customresourcedefinition.apiextensions.k8s.io/reportschedules.erp.sluice.dev created",
        )
        .await;
    cluster
        .expect_stdout(
            &[
                "wait",
                "--for",
                "condition=established",
                "--timeout=30s",
                "crd/reportschedules.erp.sluice.dev",
            ],
            "customresourcedefinition.apiextensions.k8s.io/reportschedules.erp.sluice.dev condition met",
        )
        .await;
    let resources = cluster
        .kubectl(&["api-resources", "--api-group=erp.sluice.dev"])
        .await;
    let resources = table(&resources.stdout);
    let schedules = row(&resources, "reportschedules");
    assert_eq!(schedules["SHORTNAMES"], "rsched");
    assert_eq!(schedules["APIVERSION"], "erp.sluice.dev/v1alpha1");
    assert_eq!(schedules["NAMESPACED"], "true");
    assert_eq!(schedules["KIND"], "ReportSchedule");

    let file = cluster.manifest("schedule.yaml", &report_schedule_yaml("pdf"));
    cluster
        .expect_stdout(
            &["apply", "-f", &file],
            "reportschedule.erp.sluice.dev/month-end-close created",
        )
        .await;
    let listed = cluster.kubectl(&["get", "rsched", "-n", NS]).await;
    let listed = table(&listed.stdout);
    assert_eq!(listed.len(), 1, "{listed:#?}");
    let schedule = row(&listed, "month-end-close");
    assert_eq!(schedule["REPORT"], "general-ledger", "{listed:#?}");
    assert_eq!(schedule["FORMAT"], "pdf", "{listed:#?}");
    let created = cluster
        .get_json(&["get", "rsched", "month-end-close", "-n", NS])
        .await;
    assert_eq!(created["apiVersion"], "erp.sluice.dev/v1alpha1");
    assert_eq!(created["kind"], "ReportSchedule");
    assert_eq!(created["spec"]["schedule"], "0 2 1 * *");
    assert_eq!(int_at(&created, "/metadata/generation"), 1);
    let uid = str_at(&created, "/metadata/uid").to_string();

    std::fs::write(&file, report_schedule_yaml("xlsx")).expect("the manifest is rewritten");
    cluster
        .expect_stdout(
            &["apply", "-f", &file],
            "reportschedule.erp.sluice.dev/month-end-close configured",
        )
        .await;
    let updated = cluster
        .get_json(&[
            "get",
            "reportschedules.erp.sluice.dev",
            "month-end-close",
            "-n",
            NS,
        ])
        .await;
    assert_eq!(updated["spec"]["format"], "xlsx");
    assert_eq!(updated["spec"]["report"], "general-ledger");
    assert_eq!(int_at(&updated, "/metadata/generation"), 2);
    assert_eq!(str_at(&updated, "/metadata/uid"), uid);
    cluster
        .expect_stdout(
            &["apply", "-f", &file],
            "reportschedule.erp.sluice.dev/month-end-close unchanged",
        )
        .await;

    cluster
        .expect_stdout(
            &[
                "delete",
                "rsched",
                "month-end-close",
                "-n",
                NS,
                "--timeout=30s",
            ],
            "reportschedule.erp.sluice.dev \"month-end-close\" deleted",
        )
        .await;
    cluster
        .fails_with(
            &["get", "rsched", "month-end-close", "-n", NS],
            "Error from server (NotFound): reportschedules.erp.sluice.dev \"month-end-close\" not found",
        )
        .await;

    cluster
        .expect_stdout(
            &["delete", "-f", &crd_file, "--timeout=30s"],
            "customresourcedefinition.apiextensions.k8s.io \"reportschedules.erp.sluice.dev\" deleted",
        )
        .await;
    cluster
        .fails_with(
            &["get", "crd", "reportschedules.erp.sluice.dev"],
            "Error from server (NotFound): customresourcedefinitions.apiextensions.k8s.io \"reportschedules.erp.sluice.dev\" not found",
        )
        .await;
    let resources = cluster
        .kubectl(&["api-resources", "--api-group=erp.sluice.dev", "-o", "name"])
        .await;
    assert_eq!(text(&resources.stdout), "", "the kind is gone with its CRD");

    cluster.stop().await;
}

/// `kubectl create namespace|configmap|deployment ... NAME` (the generator subcommands) send
/// protobuf, which the sandbox cannot decode without schemas: it refuses with 415 and says what
/// works instead, and that alternative does work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generator_subcommands_get_a_clear_refusal_and_a_way_that_works() {
    let cluster = Cluster::start("protobuf").await;
    let refused = cluster.run(&["create", "namespace", "erp-system"]).await;
    assert!(
        !refused.status.success(),
        "{}",
        describe(&["create", "namespace"], &refused)
    );
    let stderr = text(&refused.stderr);
    assert!(
        stderr.contains("UnsupportedMediaType")
            && stderr.contains("--dry-run=client -o yaml | kubectl apply -f -"),
        "the refusal names the workaround: {stderr}"
    );
    let kubectl = kubectl_binary();
    let piped = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{k} {flags} create namespace erp-system --dry-run=client -o yaml | {k} {flags} apply -f -",
            k = kubectl.display(),
            flags = cluster.flags().join(" ")
        ))
        .output()
        .await
        .expect("sh runs");
    assert!(
        piped.status.success(),
        "{}",
        describe(&["create ... | apply -f -"], &piped)
    );
    assert_eq!(text(&piped.stdout).trim(), "namespace/erp-system created");
    cluster.stop().await;
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
