//! What the sandbox refuses as kube-apiserver does, through the real `kube` client: builtin
//! ControllerRevisions, and custom objects checked against their CRD's schema.

mod common;

use common::sandbox;
use k8s_openapi::api::apps::v1::ControllerRevision;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::discovery::{Discovery, Scope};
use serde_json::json;

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
