//! Writing objects: create, apply (create, configure, unchanged), patch, label, annotate and
//! scale, read back as JSON and as tables; and the generator subcommands the sandbox refuses.

use crate::harness::{Cluster, describe, int_at, kubectl_binary, row, str_at, table, text};
use crate::manifests::{NS, SERVICE_YAML, deployment_yaml};

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
    // Available comes before the end of the rolling update the template patch above started: a
    // surge pod of the old template can still be ready then, as on a real cluster.
    let mut ready = cluster.deployment().await;
    for _ in 0..100 {
        if ready["status"]["readyReplicas"] == 3 && ready["status"]["updatedReplicas"] == 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        ready = cluster.deployment().await;
    }
    assert_eq!(ready["spec"]["replicas"], 3, "{ready:#}");
    assert_eq!(ready["status"]["readyReplicas"], 3, "{:#}", ready["status"]);
    assert_eq!(
        ready["status"]["updatedReplicas"], 3,
        "{:#}",
        ready["status"]
    );

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
