//! Leases through the store, as kube-apiserver validates them.

use serde_json::{Value, json};

use crate::store::{Store, WriteOptions};

fn create(store: &Store, name: &str, spec: Value) -> Result<std::sync::Arc<Value>, String> {
    let leases = store
        .resolve("coordination.k8s.io", "v1", "leases")
        .expect("leases is a builtin kind");
    assert!(leases.namespaced);
    store
        .create(
            &leases,
            "default",
            json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": name}, "spec": spec}),
            &WriteOptions::default(),
        )
        .map_err(|e| format!("{} {}", e.code, e.message))
}

#[test]
fn a_lease_as_client_go_writes_it_is_taken() {
    let store = Store::new(100);
    let created = create(
        &store,
        "sluice",
        json!({"holderIdentity": "a_1", "leaseDurationSeconds": 15, "leaseTransitions": 0,
               "acquireTime": "2026-12-02T01:00:00.000000Z", "renewTime": "2026-12-02T01:00:02.123456Z"}),
    )
    .expect("a valid Lease");
    assert_eq!(created["spec"]["holderIdentity"], "a_1");
    create(&store, "empty", json!({})).expect("every field is optional");
}

#[test]
fn what_kube_apiserver_refuses_the_sandbox_refuses() {
    let store = Store::new(100);
    let refused = [
        (
            json!({"leaseDurationSeconds": 0}),
            "spec.leaseDurationSeconds",
        ),
        (
            json!({"leaseDurationSeconds": -15}),
            "spec.leaseDurationSeconds",
        ),
        (json!({"leaseTransitions": -1}), "spec.leaseTransitions"),
        (json!({"strategy": "Newest"}), "spec.strategy"),
        (json!({"preferredHolder": "b"}), "spec.preferredHolder"),
        (json!({"renewTime": "yesterday"}), "spec.renewTime"),
        (json!({"acquireTime": 1764637200}), "spec.acquireTime"),
    ];
    for (i, (spec, field)) in refused.into_iter().enumerate() {
        let err = create(&store, &format!("l{i}"), spec.clone()).expect_err(&spec.to_string());
        assert!(
            err.starts_with("422") && err.contains(field),
            "{spec}: {err}"
        );
    }
    create(
        &store,
        "coordinated",
        json!({"strategy": "OldestEmulationVersion", "preferredHolder": "b"}),
    )
    .expect("a preferred holder beside a strategy");
}
