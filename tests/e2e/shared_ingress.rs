//! The seed's `erp-ingress` routes `/` to the gateway and `/api/*` to reporting: both services
//! are released at the same time through it, each with its own canary Ingress. The gateway's
//! Service is a LoadBalancer, as deployed in the seed notes; its canary Service must be a
//! ClusterIP Service a real API server accepts.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};
use sluice_strategies::status::Phase;

use crate::harness::{
    CANARY_INGRESS, Env, NS, Setup, bounded, create, fast_deployment, fixture, phase, secs, status,
};
use crate::history::weight_of;

const GATEWAY_CANARY_INGRESS: &str = "erp-ingress-gateway-service-canary";

/// Every backend Service an Ingress body sends to.
fn backends(ingress: &Value) -> Vec<String> {
    ingress["spec"]["rules"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|r| r["http"]["paths"].as_array().into_iter().flatten())
        .filter_map(|p| p["backend"]["service"]["name"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_and_reporting_are_released_at_once_behind_one_ingress() {
    bounded(async {
        let mut env = Env::start(Setup::default()).await;
        create::<Deployment>(&env.client, NS, fast_deployment("gateway")).await;
        create::<Service>(&env.client, NS, fixture("Service", "gateway-service")).await;
        env.wait_deployment_ready("gateway", 2).await;
        env.create_rollout("reporting", json!({})).await;
        let gateway = json!({"spec": {
            "targetRef": {"name": "gateway"},
            "service": {"name": "gateway-service", "port": 80, "targetPort": 8080},
        }});
        env.create_rollout("gateway", gateway).await;
        env.start_controller().await;
        for name in ["reporting", "gateway"] {
            env.wait_for_named(name, "taken over", secs(30), |r| phase(r) == Phase::Ready)
                .await;
        }

        let since = env.set_image("erp/reporting:1.1.0").await;
        let gateways: Api<Deployment> = Api::namespaced(env.client.clone(), NS);
        let image = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "gateway", "image": "erp/gateway:1.1.0"}
        ]}}}});
        gateways
            .patch("gateway", &PatchParams::default(), &Patch::Strategic(image))
            .await
            .expect("gateway patched");
        for name in ["reporting", "gateway"] {
            let done = env
                .wait_for_named(name, "Succeeded", secs(60), |r| {
                    phase(r) == Phase::Succeeded && status(r).candidate_revision.is_none()
                })
                .await;
            assert_eq!(phase(&done), Phase::Succeeded, "{name}");
        }

        let history = env.history();
        for (canary, service) in [
            (CANARY_INGRESS, "reporting-service-canary"),
            (GATEWAY_CANARY_INGRESS, "gateway-service-canary"),
        ] {
            let versions: Vec<(u64, Value)> = history
                .of("Ingress", canary)
                .into_iter()
                .filter(|(rv, o)| *rv > since && !o.is_null())
                .collect();
            let weights: Vec<String> = versions.iter().map(|(_, o)| weight_of(o)).collect();
            assert!(
                weights.contains(&"20".to_string()) && weights.contains(&"50".to_string()),
                "{canary} stepped through 20 and 50: {weights:?}"
            );
            for (rv, body) in &versions {
                let sent_to = backends(body);
                assert!(
                    !sent_to.is_empty() && sent_to.iter().all(|b| b == service),
                    "{canary} at {rv} carries only its own rules: {sent_to:?}"
                );
            }
        }
        let reporting_paths: Vec<Value> = history
            .of("Ingress", CANARY_INGRESS)
            .last()
            .map(|(_, o)| o["spec"]["rules"][0]["http"]["paths"].clone())
            .into_iter()
            .collect();
        assert_eq!(
            reporting_paths[0]
                .as_array()
                .map(|paths| paths.iter().map(|p| p["path"].clone()).collect::<Vec<_>>()),
            Some(vec![json!("/api/dashboard"), json!("/api/reports")]),
            "both of reporting's paths, none of the gateway's"
        );

        // The gateway's canary Service: ClusterIP, without the LoadBalancer's node port.
        let services: Api<Service> = Api::namespaced(env.client.clone(), NS);
        let canary = services
            .get("gateway-service-canary")
            .await
            .expect("the gateway's canary Service");
        let spec = canary.spec.expect("a spec");
        assert_eq!(spec.type_.as_deref(), Some("ClusterIP"));
        assert!(
            spec.ports.iter().flatten().all(|p| p.node_port.is_none()),
            "{:?}",
            spec.ports
        );
        env.finish().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changing_the_ingress_mid_release_leaves_no_canary_ingress_behind() {
    bounded(async {
        let (env, _) = Env::taken_over(Setup::default(), json!({})).await;
        // A second Ingress for reporting, on an internal host.
        let mut internal = fixture("Ingress", crate::harness::INGRESS);
        internal["metadata"] = json!({"name": "erp-internal", "namespace": NS,
                                      "annotations": {"sandbox.sluice.dev/rps": "60"}});
        internal["spec"]["rules"][0]["host"] = json!("erp.internal.example.com");
        create::<k8s_openapi::api::networking::v1::Ingress>(&env.client, NS, internal).await;
        env.set_image("erp/reporting:1.1.0").await;
        let v2 = env.target_revision().await;
        env.wait_canary_weight("20").await;

        let changed = env
            .rollouts()
            .patch(
                crate::harness::APP,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"strategy": {"canary": {"ingressRef": {"name": "erp-internal"}}}}})),
            )
            .await
            .expect("the Rollout names another Ingress")
            .metadata
            .resource_version
            .and_then(|rv| rv.parse::<u64>().ok())
            .expect("a resourceVersion");
        env.wait_for("v2 promoted", secs(60), |r| crate::harness::promoted(r, &v2))
            .await;
        let history = env.history();
        let old = history.of("Ingress", CANARY_INGRESS);
        assert!(
            old.iter().any(|(rv, o)| *rv > changed && o.is_null()),
            "the old canary Ingress was deleted: {:?}",
            old.iter().map(|(rv, o)| (rv, weight_of(o))).collect::<Vec<_>>()
        );
        assert!(
            history.ever("Ingress", "erp-internal-reporting-service-canary"),
            "the new one took over"
        );
        let rollout = env.rollout().await;
        assert_eq!(
            status(&rollout).canary_objects.ingresses,
            ["erp-internal-reporting-service-canary"],
            "only the one the spec names is remembered"
        );
        env.finish().await;
    })
    .await;
}
