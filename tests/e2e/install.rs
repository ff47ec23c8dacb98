//! sluice installed as a user installs it: `kubectl apply -k deploy/manifests`, the ERP system of
//! the seeds as deployed and its Rollouts from deploy/examples/erp-system, then the real binary
//! run with exactly the rendered Deployment's arguments (the addresses and URLs of this machine
//! put in) under its ServiceAccount's token, so that every request it makes is judged by the
//! sandbox's RBAC as kube-apiserver judges it. One canary (reporting) and one blue/green
//! (finance) release go end to end; no request is refused; and every rule of the ClusterRole is
//! the only one that allowed some request, so removing any rule would refuse one. Limited to the
//! ERP system's namespace, the same holds with a Role there, and nothing outside it is touched.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use kube::api::Api;
use serde_json::{Value, json};
use sluice::crd::Rollout;
use sluice_sandbox::{Sandbox, SandboxConfig};
use sluice_strategies::status::{Phase, Stage};

use crate::harness::{eventually, promoted, secs, status};

const NS: &str = "erp-system";

/// Verbs the ClusterRole grants for paths this scenario does not reach, and why sluice needs them.
const RARELY_USED: [(&str, &str, &str); 2] = [
    (
        "rollouts",
        "get",
        "the API reads a Rollout again when its command met a conflict",
    ),
    (
        "events",
        "patch",
        "a repeated Event is one series, whose count the recorder patches",
    ),
];
const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn kubectl(kubeconfig: &Path, args: &[&str]) -> String {
    let output = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .expect("kubectl runs (scripts/ensure-deps installs it)");
    let said = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "kubectl {args:?}: {said}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    said
}

/// The arguments and environment of the rendered controller Deployment.
fn rendered_controller() -> (Vec<String>, Vec<(String, String)>) {
    let text = std::fs::read_to_string(Path::new(ROOT).join("deploy/manifests/sluice.yaml"))
        .expect("deploy/manifests/sluice.yaml");
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text).expect("YAML");
    let deployment = docs
        .iter()
        .find(|d| d["kind"] == "Deployment")
        .expect("the controller's Deployment");
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    let args = container["args"]
        .as_array()
        .expect("args")
        .iter()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect();
    let env = container["env"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| {
            // The downward API's fields, as the kubelet fills them in for the pod sluice-0.
            let value = match e["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
                Some("metadata.namespace") => "sluice",
                Some("metadata.name") => "sluice-0",
                _ => e["value"].as_str()?,
            };
            Some((e["name"].as_str()?.to_string(), value.to_string()))
        })
        .collect();
    (args, env)
}

/// The chart's arguments with this machine's addresses: ports of 127.0.0.1, the sandbox's
/// Prometheus, a tokens file here. Every other argument is kept as rendered.
fn localized(args: &[String], prometheus: &str, tokens: &Path) -> Vec<String> {
    args.iter()
        .map(|arg| match arg.split_once('=') {
            Some(("--prometheus-url", _)) => format!("--prometheus-url={prometheus}"),
            Some(("--listen", _)) => "--listen=127.0.0.1:0".to_string(),
            Some(("--api-listen", _)) => "--api-listen=127.0.0.1:0".to_string(),
            Some(("--api-tokens-file", _)) => format!("--api-tokens-file={}", tokens.display()),
            _ => arg.clone(),
        })
        .collect()
}

/// The controller process, killed when the test ends however it ends.
struct Controller(Child);

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn scratch(name: &str, sandbox: &Sandbox) -> PathBuf {
    std::env::temp_dir().join(format!(
        "sluice-install-{}-{name}",
        sandbox.api_url().replace([':', '/', '.'], "_")
    ))
}

/// `rps` requests a second of simulated users through an Ingress or straight to a Service.
fn traffic(kubeconfig: &Path, kind: &str, name: &str, rps: u32) {
    let annotation = format!("sandbox.sluice.dev/rps={rps}");
    kubectl(kubeconfig, &["-n", NS, "annotate", kind, name, &annotation]);
}

/// Speeds a Rollout of the examples up to test time: the same shape, seconds instead of minutes.
fn fast(kubeconfig: &Path, rollout: &str, strategy: Value) {
    let patch = json!({"spec": {
        "strategy": strategy,
        "analysis": {"interval": "6s", "minRequests": 10},
        "progressDeadline": "60s",
    }});
    kubectl(
        kubeconfig,
        &[
            "-n",
            NS,
            "patch",
            "rollout",
            rollout,
            "--type",
            "merge",
            "-p",
            &patch.to_string(),
        ],
    );
}

/// How the controller is installed: cluster-wide (the manifests as they are), or limited to the
/// ERP system's namespace as the chart's `watchNamespaces` makes it (a Role there instead of the
/// ClusterRole, with the same rules, and `--namespaces`).
#[derive(Clone, Copy, PartialEq)]
enum Install {
    ClusterWide,
    Namespaced,
}

/// Both installations, one after the other: two controller processes, two sandboxes and their
/// Prometheus side by side were seen to starve each other past the bound on a loaded machine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_manifests_install_a_controller_that_releases_the_erp_system_with_exactly_its_rbac() {
    install_and_release(Install::ClusterWide).await;
    // Limited to one namespace: it releases there with a Role, and touches nothing else.
    install_and_release(Install::Namespaced).await;
}

/// The chart's namespaced shape on top of the manifests: the ClusterRole's rules as a Role in
/// erp-system, bound to the same ServiceAccount; nothing cluster-wide left. A Rollout in another
/// namespace is there to be left alone.
fn limit_to_the_erp_namespace(admin: &Path) {
    let cluster_role = kubectl(admin, &["get", "clusterrole", "sluice", "-o", "json"]);
    let cluster_role: Value = serde_json::from_str(&cluster_role).expect("JSON");
    kubectl(admin, &["delete", "clusterrolebinding", "sluice"]);
    kubectl(admin, &["delete", "clusterrole", "sluice"]);
    let role = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "sluice", "namespace": NS},
        "rules": cluster_role["rules"],
    });
    let binding = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "sluice", "namespace": NS},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "sluice"},
        "subjects": [{"kind": "ServiceAccount", "name": "sluice", "namespace": "sluice"}],
    });
    let outsider = json!({
        "apiVersion": "sluice.dev/v1alpha1", "kind": "Rollout",
        "metadata": {"name": "outsider", "namespace": "shop"},
        "spec": {"targetRef": {"name": "outsider"}, "service": {"name": "outsider", "port": 80},
                 "strategy": {"preset": "blue-green"}},
    });
    let shop = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}});
    for object in [role, binding, shop, outsider] {
        let file = std::env::temp_dir().join(format!(
            "sluice-install-{}-{}.json",
            std::process::id(),
            object["kind"].as_str().unwrap_or_default()
        ));
        std::fs::write(&file, object.to_string()).expect("written");
        kubectl(admin, &["apply", "-f", &file.display().to_string()]);
        let _ = std::fs::remove_file(file);
    }
}

async fn install_and_release(install: Install) {
    let scenario = async {
        let config = SandboxConfig {
            prometheus: true,
            ..SandboxConfig::default()
        };
        let sandbox = Sandbox::start(config).await.expect("the sandbox starts");
        let admin = scratch("admin.kubeconfig", &sandbox);
        sandbox.write_kubeconfig(&admin).expect("written");
        let root = Path::new(ROOT);
        let path = |p: &str| root.join(p).display().to_string();

        // As a user installs it, then the ERP system as deployed, then its Rollouts.
        kubectl(&admin, &["apply", "-k", &path("deploy/manifests")]);
        kubectl(
            &admin,
            &[
                "apply",
                "-f",
                &path("tests/sandbox/fixtures/erp-system.yaml"),
            ],
        );
        kubectl(
            &admin,
            &["apply", "-k", &path("deploy/examples/erp-system")],
        );
        if install == Install::Namespaced {
            limit_to_the_erp_namespace(&admin);
        }
        fast(
            &admin,
            "reporting",
            json!({"canary": {"stepInterval": "6s"}}),
        );
        fast(
            &admin,
            "finance",
            json!({"blueGreen": {"previewDuration": "6s", "postSwitchDuration": "6s", "scaleDownDelay": "3s"}}),
        );
        // Users' traffic: through erp-ingress, and straight to finance-service (the gateway's
        // calls).
        traffic(&admin, "ingress", "erp-ingress", 40);
        traffic(&admin, "service", "finance-service", 40);

        // The controller's identity: its ServiceAccount's token, as `kubectl create token` gets it.
        let token = kubectl(&admin, &["-n", "sluice", "create", "token", "sluice"]);
        let kubeconfig = scratch("sluice.kubeconfig", &sandbox);
        std::fs::write(
            &kubeconfig,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: sandbox\n  cluster:\n    server: {}\ncontexts:\n- name: sluice\n  context:\n    cluster: sandbox\n    user: sluice\ncurrent-context: sluice\nusers:\n- name: sluice\n  user:\n    token: {}\n",
                sandbox.api_url(),
                token.trim()
            ),
        )
        .expect("written");
        let tokens = scratch("tokens.yaml", &sandbox);
        std::fs::write(&tokens, crate::api::tokens()).expect("written");

        let (args, env) = rendered_controller();
        let prometheus = sandbox.prometheus_url().expect("Prometheus runs");
        let mut args = localized(&args, &prometheus, &tokens);
        if install == Install::Namespaced {
            args.push(format!("--namespaces={NS}"));
        }
        let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(args)
            .envs(env)
            .env("KUBECONFIG", &kubeconfig)
            .stdout(Stdio::piped())
            // Kept beside the kubeconfigs, for a failure to be read.
            .stderr(std::fs::File::create(scratch("controller.log", &sandbox)).expect("log"))
            .spawn()
            .expect("the controller starts");
        let stdout = child.stdout.take().expect("its stdout");
        let controller = Controller(child);
        // Read to the end, so that the controller never writes into a closed pipe.
        let (lines, said) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = lines.send(line);
            }
        });
        let first_line = tokio::task::spawn_blocking(move || {
            said.recv_timeout(Duration::from_secs(30))
                .unwrap_or_default()
        })
        .await
        .expect("read");
        assert!(
            first_line.starts_with("sluice probes and metrics on http://127.0.0.1:"),
            "{first_line:?}"
        );

        let client = sandbox.client().await.expect("an admin client");
        let rollouts: Api<Rollout> = Api::namespaced(client.clone(), NS);
        for name in ["reporting", "finance"] {
            let deadline = tokio::time::Instant::now() + secs(40);
            loop {
                let r = rollouts.get(name).await.expect("the Rollout");
                if status(&r).phase == Phase::Ready {
                    break;
                }
                let refused: Vec<_> = sandbox
                    .authorizations()
                    .into_iter()
                    .filter(|d| d.allowed_by.is_empty())
                    .collect();
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{name} not taken over: {:?}; refused: {refused:#?}",
                    status(&r).message
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        traffic(&admin, "service", "finance-service-canary", 10);

        // CI pushes both images.
        for service in ["reporting", "finance"] {
            let deployment = format!("deployment/{service}");
            let image = format!("{service}=erp/{service}:1.1.0");
            kubectl(&admin, &["-n", NS, "set", "image", &deployment, &image]);
        }
        let target = |name: &'static str| {
            let client = client.clone();
            async move {
                let deployments: Api<k8s_openapi::api::apps::v1::Deployment> =
                    Api::namespaced(client, NS);
                let template = deployments
                    .get(name)
                    .await
                    .expect("the target")
                    .spec
                    .expect("a spec")
                    .template;
                sluice_strategies::release::template_hash(
                    &serde_json::to_value(template).expect("JSON"),
                )
            }
        };
        let (reporting, finance) = (target("reporting").await, target("finance").await);
        // Money moves on a person's word: finance waits after its preview.
        eventually(secs(60), "finance awaiting promotion", || async {
            let r = rollouts.get("finance").await.ok()?;
            (status(&r).stage == Some(Stage::AwaitingPromotion)).then_some(())
        })
        .await;
        kubectl(
            &admin,
            &[
                "-n",
                NS,
                "annotate",
                "rollout",
                "finance",
                "sluice.dev/command=promote",
                "--overwrite",
            ],
        );
        for (name, revision) in [("reporting", &reporting), ("finance", &finance)] {
            eventually(secs(90), &format!("{name} promoted"), || async {
                let r = rollouts.get(name).await.ok()?;
                promoted(&r, revision).then_some(())
            })
            .await;
        }

        // The seeds' pod settings reach the slots unchanged: Dapr annotations, probes, envFrom.
        let deployments: Api<k8s_openapi::api::apps::v1::Deployment> =
            Api::namespaced(client.clone(), NS);
        for (target, slot) in [
            ("reporting", "reporting-green"),
            ("finance", "finance-green"),
        ] {
            let of = |d: k8s_openapi::api::apps::v1::Deployment| {
                serde_json::to_value(d.spec.expect("a spec").template).expect("JSON")
            };
            let (user, running) = (
                of(deployments.get(target).await.expect("the target")),
                of(deployments.get(slot).await.expect("the slot")),
            );
            let dapr = |t: &Value| -> Vec<(String, Value)> {
                t["metadata"]["annotations"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .filter(|(k, _)| k.starts_with("dapr.io/"))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            };
            assert!(!dapr(&user).is_empty(), "{target} has Dapr annotations");
            assert_eq!(dapr(&running), dapr(&user), "{slot}'s Dapr annotations");
            for field in ["livenessProbe", "readinessProbe", "envFrom"] {
                let container = |t: &Value| t["spec"]["containers"][0][field].clone();
                assert!(!container(&user).is_null(), "{target} has {field}");
                assert_eq!(container(&running), container(&user), "{slot}'s {field}");
            }
        }

        // Deleted, reporting is handed back: its canary objects go, its Deployment is restored.
        kubectl(
            &admin,
            &[
                "-n",
                NS,
                "delete",
                "rollout",
                "reporting",
                "--wait=true",
                "--timeout=30s",
            ],
        );

        // Under RBAC all along, and never refused.
        let decisions = sandbox.authorizations();
        assert!(
            decisions.len() > 50,
            "the controller's requests were judged: {}",
            decisions.len()
        );
        assert!(
            decisions
                .iter()
                .all(|d| d.user == "system:serviceaccount:sluice:sluice")
        );
        let refused: Vec<_> = decisions
            .iter()
            .filter(|d| d.allowed_by.is_empty())
            .collect();
        assert!(refused.is_empty(), "refused: {refused:#?}");
        let role = if install == Install::Namespaced {
            // The Lease is in the controller's own namespace.
            let elsewhere: Vec<_> = decisions
                .iter()
                .filter(|d| d.namespace != NS && d.resource != "leases")
                .collect();
            assert!(elsewhere.is_empty(), "outside {NS}: {elsewhere:#?}");
            let outsider: Api<Rollout> = Api::namespaced(client.clone(), "shop");
            let outsider = outsider.get("outsider").await.expect("the other Rollout");
            assert!(
                outsider.status.is_none() && outsider.metadata.finalizers.is_none(),
                "a Rollout outside --namespaces is left alone: {:?}",
                outsider.metadata
            );
            kubectl(&admin, &["-n", NS, "get", "role", "sluice", "-o", "json"])
        } else {
            kubectl(&admin, &["get", "clusterrole", "sluice", "-o", "json"])
        };
        let lease_role = kubectl(
            &admin,
            &[
                "-n",
                "sluice",
                "get",
                "role",
                "sluice-leader-election",
                "-o",
                "json",
            ],
        );
        for role in [role, lease_role] {
            let role: Value = serde_json::from_str(&role).expect("JSON");
            each_rule_needed(&role, &decisions);
        }
        // The controller goes first: a client still retrying its watches can hold the sandbox's
        // shutdown past the bound.
        drop(controller);
        sandbox.shutdown().await;
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    tokio::time::timeout(Duration::from_secs(200), scenario)
        .await
        .expect("the installation releases within 200 s");
}

/// Each rule of `role` was the only one to allow some request: without it, that request is a 403.
fn each_rule_needed(role: &Value, decisions: &[sluice_sandbox::rbac::Decision]) {
    let name = role["metadata"]["name"].as_str().unwrap_or_default();
    let rules = role["rules"].as_array().expect("rules").len();
    let needed: BTreeSet<(usize, String)> = decisions
        .iter()
        .filter(|d| d.allowed_by.len() == 1 && d.allowed_by[0].name == name)
        .map(|d| (d.allowed_by[0].index, d.verb.clone()))
        .collect();
    let mut unneeded = Vec::new();
    for i in 0..rules {
        let rule = &role["rules"][i];
        assert!(
            needed.iter().any(|(at, _)| *at == i),
            "no request needed the rule {rule}"
        );
        let resource = rule["resources"][0].as_str().unwrap_or_default();
        let verbs = rule["verbs"].as_array().into_iter().flatten();
        for verb in verbs.filter_map(Value::as_str) {
            let rare = RARELY_USED
                .iter()
                .any(|(r, v, _)| *r == resource && *v == verb);
            if !rare && !needed.contains(&(i, verb.to_string())) {
                unneeded.push(format!("{verb} in {rule}"));
            }
        }
    }
    assert!(unneeded.is_empty(), "granted, never needed: {unneeded:#?}");
}
