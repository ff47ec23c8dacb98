//! ControllerRevisions through the store.

use serde_json::json;

use crate::store::{PatchBody, Store, Subresource, WriteOptions};

#[test]
fn data_is_kept_as_sent_and_immutable() {
    let store = Store::new(100);
    let revisions = store
        .resolve("apps", "v1", "controllerrevisions")
        .expect("controllerrevisions is a builtin kind");
    assert!(revisions.namespaced);
    let data = json!({"spec": {"template": {"metadata": {"labels": {"app": "r"}}, "spec": {"containers": [{"name": "r", "image": "r:1", "x-unknown": [1, {"a": null}]}]}}}});
    let created = store
        .create(
            &revisions,
            "default",
            json!({"apiVersion": "apps/v1", "kind": "ControllerRevision", "metadata": {"name": "r-1"}, "data": data, "revision": 5_000_000_000i64}),
            &WriteOptions::default(),
        )
        .expect("a ControllerRevision");
    assert_eq!(created["data"], data, "data is any JSON, kept as sent");
    assert_eq!(created["revision"], 5_000_000_000i64);

    let err = store
        .patch(
            &revisions,
            "default",
            "r-1",
            PatchBody::Merge(json!({"data": {"spec": {"template": {"spec": {"containers": []}}}}})),
            Subresource::Main,
            &WriteOptions::default(),
        )
        .expect_err("data is immutable");
    assert_eq!(err.code, 422);
    assert!(
        err.message
            .starts_with("ControllerRevision.apps \"r-1\" is invalid: data: Invalid value: {"),
        "{}",
        err.message
    );
    assert!(
        err.message.ends_with(": field is immutable"),
        "{}",
        err.message
    );

    // The real update check leaves the revision number alone.
    let (renumbered, _) = store
        .patch(
            &revisions,
            "default",
            "r-1",
            PatchBody::Merge(json!({"revision": 6})),
            Subresource::Main,
            &WriteOptions::default(),
        )
        .expect("a revision may be renumbered");
    assert_eq!(renumbered["revision"], 6);
}

#[test]
fn data_is_mandatory_and_revision_an_integer() {
    let store = Store::new(100);
    let revisions = store
        .resolve("apps", "v1", "controllerrevisions")
        .expect("builtin");
    let err = store
        .create(
            &revisions,
            "default",
            json!({"metadata": {"name": "r-1"}, "revision": -1}),
            &WriteOptions::default(),
        )
        .expect_err("no data, negative revision");
    assert_eq!(
        err.message,
        "ControllerRevision.apps \"r-1\" is invalid: [data: Required value: data is mandatory, revision: Invalid value: -1: must be greater than or equal to 0]"
    );
    let created = store
        .create(
            &revisions,
            "default",
            json!({"metadata": {"name": "r-2"}, "data": {}}),
            &WriteOptions::default(),
        )
        .expect("revision defaults to 0 as the real server serialises it");
    assert_eq!(created["revision"], 0);
}
