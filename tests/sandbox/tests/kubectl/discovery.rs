//! Discovery: the API groups, resources and versions kubectl finds, including a kind that a
//! CustomResourceDefinition adds and takes away again.

use crate::harness::{Cluster, describe, int_at, row, str_at, table, text};
use crate::manifests::{CRD_YAML, NS, report_schedule_yaml};

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
    expect(
        "controllerrevisions",
        "",
        "apps/v1",
        "true",
        "ControllerRevision",
    );
    expect("services", "svc", "v1", "true", "Service");
    expect("namespaces", "ns", "v1", "false", "Namespace");
    expect(
        "ingresses",
        "ing",
        "networking.k8s.io/v1",
        "true",
        "Ingress",
    );
    expect(
        "ingressclasses",
        "",
        "networking.k8s.io/v1",
        "false",
        "IngressClass",
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
            "controllerrevisions.apps\ndeployments.apps",
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
