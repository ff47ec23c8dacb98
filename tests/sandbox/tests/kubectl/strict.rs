//! What kube-apiserver refuses, refused to kubectl too: the ERP manifests (with their
//! LoadBalancer gateway) apply and re-apply cleanly with node ports allocated, while a node port
//! on a ClusterIP Service and a custom object against its schema are 422s kubectl prints.

use crate::harness::{Cluster, int_at, str_at};
use crate::manifests::{CRD_YAML, NS, report_schedule_yaml};

const ERP_SYSTEM: &str = include_str!("../../fixtures/erp-system.yaml");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_erp_system_applies_twice_and_its_load_balancer_gets_a_node_port() {
    let cluster = Cluster::start("strict-apply").await;
    let file = cluster.manifest("erp-system.yaml", ERP_SYSTEM);
    let first = cluster.kubectl(&["apply", "-f", &file]).await;
    let first = String::from_utf8_lossy(&first.stdout).to_string();
    assert!(first.contains("service/gateway-service created"), "{first}");
    let gateway = cluster
        .get_json(&["get", "service", "gateway-service", "-n", NS])
        .await;
    assert_eq!(str_at(&gateway, "/spec/type"), "LoadBalancer");
    let node_port = int_at(&gateway, "/spec/ports/0/nodePort");
    assert!((30000..=32767).contains(&node_port), "{gateway:#}");
    assert_eq!(str_at(&gateway, "/spec/externalTrafficPolicy"), "Cluster");

    // kubectl's three-way merge leaves the allocated port alone: nothing changes.
    let second = cluster.kubectl(&["apply", "-f", &file]).await;
    let second = String::from_utf8_lossy(&second.stdout).to_string();
    assert!(
        second.contains("service/gateway-service unchanged"),
        "{second}"
    );
    assert!(!second.contains("configured"), "{second}");
    let again = cluster
        .get_json(&["get", "service", "gateway-service", "-n", NS])
        .await;
    assert_eq!(int_at(&again, "/spec/ports/0/nodePort"), node_port);

    // A copy of its port list on a ClusterIP Service carries the node port: refused.
    let copy = format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: gateway-copy\n  namespace: {NS}\nspec:\n  ports: [{{name: http, port: 80, targetPort: 8080, nodePort: {node_port}}}]\n"
    );
    let copy_file = cluster.manifest("copy.yaml", &copy);
    cluster
        .fails_with(
            &["apply", "-f", &copy_file],
            "The Service \"gateway-copy\" is invalid: spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'",
        )
        .await;
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_object_is_checked_against_its_schema() {
    let cluster = Cluster::start("strict-crd").await;
    cluster.create_namespace().await;
    let crd = cluster.manifest("crd.yaml", CRD_YAML);
    cluster.kubectl(&["apply", "-f", &crd]).await;
    let wrong = report_schedule_yaml("5");
    let wrong_file = cluster.manifest("wrong.yaml", &wrong);
    cluster
        .fails_with(
            &["apply", "-f", &wrong_file],
            "The ReportSchedule \"month-end-close\" is invalid: spec.format: Invalid value: \"integer\": spec.format in body must be of type string: \"integer\"",
        )
        .await;
    // kubectl asks for fieldValidation=Strict: an unknown field is refused, not pruned.
    let typo = report_schedule_yaml("pdf").replace("  report:", "  reprot:");
    let typo_file = cluster.manifest("typo.yaml", &typo);
    cluster
        .fails_with(
            &["apply", "-f", &typo_file],
            "ReportSchedule in version \"v1alpha1\" cannot be handled as a ReportSchedule: strict decoding error: unknown field \"spec.reprot\"",
        )
        .await;
    // Without it the field is pruned, as the real server does.
    cluster
        .kubectl(&["apply", "--validate=false", "-f", &typo_file])
        .await;
    let pruned = cluster
        .get_json(&["get", "reportschedule", "month-end-close", "-n", NS])
        .await;
    assert!(pruned["spec"].get("reprot").is_none(), "{pruned:#}");
    let fine = cluster.manifest("fine.yaml", &report_schedule_yaml("pdf"));
    cluster.kubectl(&["apply", "-f", &fine]).await;

    let not_structural = CRD_YAML
        .replace("reportschedules", "otherschedules")
        .replace("ReportSchedule", "OtherSchedule")
        .replace("rsched", "osched")
        .replace(
            "          spec:\n            type: object\n",
            "          spec:\n",
        );
    let file = cluster.manifest("not-structural.yaml", &not_structural);
    cluster
        .fails_with(
            &["apply", "-f", &file],
            "spec.versions[0].schema.openAPIV3Schema.properties[spec].type: Required value: must not be empty for specified object fields",
        )
        .await;
    cluster.stop().await;
}
