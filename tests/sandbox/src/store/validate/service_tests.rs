//! Services through the store: node ports allocated and refused as kube-apiserver does, and the
//! type-dependent fields of `ValidateService`.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::store::{ApiError, PatchBody, ResourceKind, Store, Subresource, WriteOptions};

fn services(store: &Store) -> Arc<ResourceKind> {
    store
        .resolve("", "v1", "services")
        .expect("services is a builtin kind")
}

fn create(store: &Store, body: Value) -> Result<Arc<Value>, ApiError> {
    store.create(&services(store), "default", body, &WriteOptions::default())
}

fn service(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec})
}

fn merge(store: &Store, name: &str, patch: Value) -> Result<Arc<Value>, ApiError> {
    store
        .patch(
            &services(store),
            "default",
            name,
            PatchBody::Merge(patch),
            Subresource::Main,
            &WriteOptions::default(),
        )
        .map(|(obj, _)| obj)
}

fn node_ports(obj: &Value) -> Vec<i64> {
    obj["spec"]["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .filter_map(|p| p.get("nodePort").and_then(Value::as_i64))
        .collect()
}

fn causes(err: &ApiError) -> Vec<(String, String)> {
    assert_eq!(err.code, 422, "{err:?}");
    err.details.as_ref().expect("details")["causes"]
        .as_array()
        .expect("causes")
        .iter()
        .map(|c| {
            (
                c["field"].as_str().unwrap_or("").to_string(),
                c["message"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[test]
fn a_node_port_on_a_cluster_ip_service_is_forbidden() {
    let store = Store::new(100);
    let err = create(
        &store,
        service(
            "web",
            json!({"ports": [{"port": 80}, {"port": 81, "nodePort": 30080}]}),
        ),
    )
    .expect_err("nodePort on ClusterIP");
    assert_eq!(
        err.message,
        "Service \"web\" is invalid: spec.ports[1].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"
    );
}

#[test]
fn node_port_and_load_balancer_services_get_unique_node_ports() {
    let store = Store::new(100);
    let a = create(
        &store,
        service(
            "a",
            json!({"type": "NodePort", "ports": [{"name": "http", "port": 80}, {"name": "grpc", "port": 81}]}),
        ),
    )
    .expect("NodePort service");
    let b = create(
        &store,
        service(
            "b",
            json!({"type": "LoadBalancer", "ports": [{"port": 80}]}),
        ),
    )
    .expect("LoadBalancer service");
    let mut all = node_ports(&a);
    all.extend(node_ports(&b));
    assert_eq!(all.len(), 3, "{a} {b}");
    assert!(all.iter().all(|p| (30000..=32767).contains(p)), "{all:?}");
    let unique: std::collections::BTreeSet<_> = all.iter().collect();
    assert_eq!(unique.len(), 3, "{all:?}");
    assert_eq!(b["spec"]["externalTrafficPolicy"], "Cluster");
    assert_eq!(b["spec"]["allocateLoadBalancerNodePorts"], true);
    assert!(a["spec"].get("allocateLoadBalancerNodePorts").is_none());

    // A port another Service holds, and one out of range, are the allocator's 422s.
    let taken = all[0];
    let err = create(
        &store,
        service(
            "c",
            json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": taken}]}),
        ),
    )
    .expect_err("taken port");
    assert_eq!(
        causes(&err),
        vec![(
            "spec.ports[0].nodePort".to_string(),
            format!("Invalid value: {taken}: provided port is already allocated")
        )]
    );
    let err = create(
        &store,
        service(
            "d",
            json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 8080}]}),
        ),
    )
    .expect_err("out of range");
    assert_eq!(
        err.message,
        "Service \"d\" is invalid: spec.ports[0].nodePort: Invalid value: 8080: provided port is not in the valid range. The range of valid ports is 30000-32767"
    );

    // Deleting a Service frees its ports.
    store
        .delete(&services(&store), "default", "a", &Default::default())
        .expect("delete a");
    create(
        &store,
        service(
            "e",
            json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": taken}]}),
        ),
    )
    .expect("a freed port can be taken");
}

#[test]
fn an_update_that_leaves_node_ports_out_keeps_them() {
    let store = Store::new(100);
    let created = create(
        &store,
        service(
            "web",
            json!({"type": "NodePort", "ports": [{"name": "http", "port": 80}]}),
        ),
    )
    .expect("create");
    let mut body = (*created).clone();
    body["spec"]["ports"] = json!([{"name": "http", "port": 80}]);
    body["spec"].as_object_mut().map(|s| s.remove("clusterIP"));
    let updated = store
        .update(
            &services(&store),
            "default",
            "web",
            body,
            Subresource::Main,
            &WriteOptions::default(),
        )
        .expect("an update without the allocated values");
    assert_eq!(node_ports(&updated), node_ports(&created));
    assert_eq!(updated["spec"]["clusterIP"], created["spec"]["clusterIP"]);
}

#[test]
fn leaving_load_balancer_drops_what_only_it_needs() {
    let store = Store::new(100);
    let created = create(
        &store,
        service(
            "gateway",
            json!({"type": "LoadBalancer", "externalTrafficPolicy": "Local", "ports": [{"port": 80}]}),
        ),
    )
    .expect("create");
    assert!(created["spec"]["healthCheckNodePort"].as_i64().is_some());
    let health = created["spec"]["healthCheckNodePort"].as_i64();
    let freed = node_ports(&created)[0];
    let updated = merge(&store, "gateway", json!({"spec": {"type": "ClusterIP"}}))
        .expect("LoadBalancer -> ClusterIP, fields left as they were");
    let spec = &updated["spec"];
    assert_eq!(node_ports(&updated), Vec::<i64>::new(), "{spec}");
    for gone in [
        "healthCheckNodePort",
        "externalTrafficPolicy",
        "allocateLoadBalancerNodePorts",
    ] {
        assert!(spec.get(gone).is_none(), "{gone} stayed: {spec}");
    }
    // Both ports are free again.
    let again = create(
        &store,
        service(
            "other",
            json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": freed}, {"port": 81, "nodePort": health}]}),
        ),
    );
    assert!(again.is_ok(), "{again:?}");

    // Changing the type and keeping a node port explicitly is refused as on a real cluster.
    create(
        &store,
        service(
            "lb",
            json!({"type": "LoadBalancer", "ports": [{"port": 80}]}),
        ),
    )
    .expect("create lb");
    let current = store
        .get(&services(&store), "default", "lb")
        .expect("lb exists");
    let mut body = (*current).clone();
    body["spec"]["type"] = json!("ClusterIP");
    body["spec"]["ports"][0]["nodePort"] = json!(31999);
    let err = store
        .update(
            &services(&store),
            "default",
            "lb",
            body,
            Subresource::Main,
            &WriteOptions::default(),
        )
        .expect_err("a changed nodePort on ClusterIP");
    assert!(
        causes(&err).contains(&(
            "spec.ports[0].nodePort".to_string(),
            "Forbidden: may not be used when `type` is 'ClusterIP'".to_string()
        )),
        "{err:?}"
    );
}

#[test]
fn load_balancer_fields_on_a_cluster_ip_service_are_refused() {
    let store = Store::new(100);
    let err = create(
        &store,
        service(
            "web",
            json!({
                "ports": [{"port": 80}],
                "healthCheckNodePort": 30500,
                "loadBalancerSourceRanges": ["10.0.0.0/8"],
                "loadBalancerClass": "example.com/lb",
                "allocateLoadBalancerNodePorts": true,
                "externalTrafficPolicy": "Local",
                "loadBalancerIP": "10.1.2.3",
            }),
        ),
    )
    .expect_err("LoadBalancer fields on ClusterIP");
    let got = causes(&err);
    let want = [
        (
            "spec.LoadBalancerSourceRanges",
            "Forbidden: may only be used when `type` is 'LoadBalancer'",
        ),
        (
            "spec.allocateLoadBalancerNodePorts",
            "Forbidden: may only be used when `type` is 'LoadBalancer'",
        ),
        (
            "spec.loadBalancerClass",
            "Forbidden: may only be used when `type` is 'LoadBalancer'",
        ),
        (
            "spec.externalTrafficPolicy",
            "Invalid value: \"Local\": may only be set for externally-accessible services",
        ),
        (
            "spec.healthCheckNodePort",
            "Invalid value: 30500: may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'",
        ),
    ];
    for (field, message) in want {
        assert!(
            got.contains(&(field.to_string(), message.to_string())),
            "missing {field}: {message} in {got:?}"
        );
    }
    // loadBalancerIP is not checked against the type by the real server either.
    assert!(
        !got.iter().any(|(f, _)| f.contains("loadBalancerIP")),
        "{got:?}"
    );
    assert_eq!(got.len(), want.len(), "{got:?}");
}

#[test]
fn service_selector_values_are_label_values() {
    let store = Store::new(100);
    let err = create(
        &store,
        service(
            "web",
            json!({"selector": {"app": "erp/reporting"}, "ports": [{"port": 80}]}),
        ),
    )
    .expect_err("a selector value with a slash");
    let got = causes(&err);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].0, "spec.selector");
    assert!(
        got[0]
            .1
            .starts_with("Invalid value: \"erp/reporting\": a valid label must be an empty string")
    );
}
