//! The IngressClass ingress-nginx installs, and class filtering seen through the real kube
//! client: a class-less Ingress gets no traffic until an IngressClass of ours is the default.

mod common;

use std::time::Duration;

use common::{eventually, sandbox};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use sluice_sandbox::testing::{create, ingress, slot_deployment, slot_service};

const NS: &str = "erp-system";

/// The `ingress` label values of the nginx request counters, scraped from /metrics.
async fn counted_ingresses(metrics_url: &str) -> Vec<String> {
    let text = reqwest::get(metrics_url)
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("a metrics body");
    let mut names: Vec<String> = text
        .lines()
        .filter(|l| l.starts_with("nginx_ingress_controller_requests{"))
        .filter_map(|l| l.split("ingress=\"").nth(1)?.split('"').next())
        .map(str::to_owned)
        .collect();
    names.sort();
    names.dedup();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn class_less_ingresses_are_served_only_once_the_nginx_class_is_default() {
    let (sandbox, client) = sandbox().await;
    let classes: Api<IngressClass> = Api::all(client.clone());
    let nginx = classes
        .get("nginx")
        .await
        .expect("the sandbox installs IngressClass nginx");
    let controller = nginx.spec.and_then(|s| s.controller);
    assert_eq!(controller.as_deref(), Some("k8s.io/ingress-nginx"));
    assert!(
        nginx.metadata.annotations.unwrap_or_default().is_empty(),
        "not the default"
    );

    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": NS}})).unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .expect("namespace created");
    let fast = json!({"sandbox.sluice.dev/ready-after": "100ms"});
    create::<Deployment>(&client, NS, slot_deployment("reporting", "blue", fast)).await;
    create::<Service>(
        &client,
        NS,
        slot_service("reporting", "reporting", "blue", json!({})),
    )
    .await;
    let rps = json!({"sandbox.sluice.dev/rps": "50"});
    create::<Ingress>(
        &client,
        NS,
        ingress("classed", "/a", "reporting", rps.clone()),
    )
    .await;
    let mut class_less = ingress("class-less", "/b", "reporting", rps);
    class_less["spec"]
        .as_object_mut()
        .unwrap()
        .remove("ingressClassName");
    create::<Ingress>(&client, NS, class_less).await;

    // Once the classed Ingress has been served, the class-less one has had as many chances.
    let metrics = sandbox.metrics_url();
    let served = eventually(
        Duration::from_secs(20),
        "traffic on the classed Ingress",
        || async {
            let names = counted_ingresses(&metrics).await;
            names.contains(&"classed".to_owned()).then_some(names)
        },
    )
    .await;
    assert_eq!(served, ["classed"]);

    let default = json!({"metadata": {"annotations": {"ingressclass.kubernetes.io/is-default-class": "true"}}});
    classes
        .patch("nginx", &PatchParams::default(), &Patch::Merge(&default))
        .await
        .expect("IngressClass nginx marked default");
    eventually(
        Duration::from_secs(20),
        "traffic on the class-less Ingress",
        || async {
            let names = counted_ingresses(&metrics).await;
            (names == ["class-less", "classed"]).then_some(())
        },
    )
    .await;
    sandbox.shutdown().await;
}
