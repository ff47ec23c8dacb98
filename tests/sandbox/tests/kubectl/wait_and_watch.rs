//! Following objects as they change: wait, rollout status and `get --watch`, then deletion.

use std::time::Duration;

use tokio::time::Instant;

use crate::harness::{Cluster, WATCH_LIMIT, Watch, condition, row, table, text};
use crate::manifests::{NAMESPACE_YAML, NS, SERVICE_YAML};

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
