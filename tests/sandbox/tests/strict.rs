//! What the sandbox refuses as kube-apiserver does, through the real `kube` client: builtin
//! ControllerRevisions, and custom objects checked against their CRD's schema.

mod common;

use common::sandbox;
use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use kube::discovery::{Discovery, Scope};
use serde_json::{Value, json};

fn invalid_message(err: kube::Error) -> String {
    match err {
        kube::Error::Api(status) => {
            assert_eq!(status.code, 422, "{status:?}");
            status.message
        }
        other => panic!("expected a 422 Status, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_revisions_are_served_discovered_and_keep_data() {
    let (sandbox, client) = sandbox().await;
    let discovery = Discovery::new(client.clone())
        .run()
        .await
        .expect("discovery");
    let (resource, caps) = discovery
        .groups()
        .find(|g| g.name() == "apps")
        .and_then(|g| {
            g.recommended_resources()
                .into_iter()
                .find(|(r, _)| r.plural == "controllerrevisions")
        })
        .expect("apps/v1 controllerrevisions is discovered");
    assert_eq!(resource.kind, "ControllerRevision");
    assert_eq!(caps.scope, Scope::Namespaced);

    let revisions: Api<ControllerRevision> = Api::namespaced(client.clone(), "default");
    let revision: ControllerRevision = serde_json::from_value(json!({
        "metadata": {"name": "reporting-7d9f"},
        "data": {"template": {"spec": {"containers": [{"name": "r", "image": "erp/reporting:1.1.0"}]}}},
        "revision": 3,
    }))
    .expect("a ControllerRevision");
    let created = revisions
        .create(&PostParams::default(), &revision)
        .await
        .expect("created");
    assert_eq!(created.revision, 3);
    assert_eq!(created.data, revision.data);
    let err = revisions
        .patch(
            "reporting-7d9f",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"template": null}})),
        )
        .await
        .expect_err("data is immutable");
    let message = invalid_message(err);
    assert!(
        message.starts_with(
            "ControllerRevision.apps \"reporting-7d9f\" is invalid: data: Invalid value:"
        ) && message.ends_with("field is immutable"),
        "{message}"
    );
    sandbox.shutdown().await;
}

/// A Rollout-like CRD with what trips controllers: Rust's unsigned formats (no range on the real
/// server), a u16 port with a maximum and a default, a status subresource with an enum.
fn rollout_crd() -> CustomResourceDefinition {
    serde_json::from_value(json!({
        "metadata": {"name": "rollouts.sluice.dev"},
        "spec": {
            "group": "sluice.dev",
            "scope": "Namespaced",
            "names": {"kind": "Rollout", "plural": "rollouts", "singular": "rollout", "listKind": "RolloutList"},
            "versions": [{
                "name": "v1alpha1", "served": true, "storage": true,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "properties": {
                        "spec": {"type": "object", "required": ["service"], "properties": {
                            "service": {"type": "object", "required": ["name"], "properties": {
                                "name": {"type": "string"},
                                "port": {"type": "integer", "format": "uint16", "minimum": 1.0, "maximum": 65535.0, "default": 80},
                            }},
                            "minRequests": {"type": "integer", "format": "uint32", "minimum": 0.0, "nullable": true},
                        }},
                        "status": {"type": "object", "properties": {
                            "phase": {"type": "string", "enum": ["Initializing", "Ready"], "default": "Initializing"},
                            "failedChecks": {"type": "integer", "format": "uint32", "minimum": 0.0, "default": 0},
                        }},
                    },
                }},
            }],
        },
    }))
    .expect("a CRD")
}

fn rollout(name: &str, spec: Value) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "sluice.dev/v1alpha1", "kind": "Rollout",
        "metadata": {"name": name}, "spec": spec,
    }))
    .expect("a Rollout")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_objects_are_pruned_defaulted_and_validated() {
    let (sandbox, client) = sandbox().await;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(&PostParams::default(), &rollout_crd())
        .await
        .expect("a structural CRD is accepted");
    let gvk = GroupVersionKind::gvk("sluice.dev", "v1alpha1", "Rollout");
    let resource = ApiResource::from_gvk_with_plural(&gvk, "rollouts");
    let rollouts: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &resource);

    let err = rollouts
        .create(
            &PostParams::default(),
            &rollout(
                "reporting",
                json!({"service": {"name": "reporting", "port": 70000}}),
            ),
        )
        .await
        .expect_err("port above the maximum");
    assert_eq!(
        invalid_message(err),
        "Rollout.sluice.dev \"reporting\" is invalid: spec.service.port: Invalid value: 70000: spec.service.port in body should be less than or equal to 65535"
    );

    let created = rollouts
        .create(
            &PostParams::default(),
            &rollout(
                "reporting",
                json!({"service": {"name": "reporting", "tyop": 1}, "minRequests": 5_000_000_000u64}),
            ),
        )
        .await
        .expect("a u32 field without a maximum takes 5000000000, as on a real cluster");
    assert_eq!(created.data["spec"]["minRequests"], 5_000_000_000u64);
    assert_eq!(
        created.data["spec"]["service"],
        json!({"name": "reporting", "port": 80})
    );

    let err = rollouts
        .patch_status(
            "reporting",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Done"}})),
        )
        .await
        .expect_err("status is validated");
    assert_eq!(
        invalid_message(err),
        "Rollout.sluice.dev \"reporting\" is invalid: status.phase: Unsupported value: \"Done\": supported values: \"Initializing\", \"Ready\""
    );
    let status = rollouts
        .patch_status(
            "reporting",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"failedChecks": 5_000_000_000u64}})),
        )
        .await
        .expect("a valid status");
    assert_eq!(
        status.data["status"],
        json!({"phase": "Initializing", "failedChecks": 5_000_000_000u64})
    );
    sandbox.shutdown().await;
}
