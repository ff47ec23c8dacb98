//! Unit tests of server-side apply (`apply.rs`).

use super::*;
use serde_json::json;

fn deployment(spec: Value) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
           "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}}, "spec": spec})
}

fn fields(object: &Value, manager: &str) -> Value {
    let entries = object["metadata"]["managedFields"].as_array().unwrap();
    let mut own = entries.iter().filter(|e| e["manager"] == manager);
    let entry = own.next().expect("manager has an entry");
    assert!(own.next().is_none(), "one entry per manager");
    entry["fieldsV1"].clone()
}

#[test]
fn ssa_create_records_managed_fields_in_kubernetes_shape() {
    let applied = deployment(json!({"replicas": 2, "selector": {"matchLabels": {"app": "web"}}}));
    let created = server_side_apply(None, &applied, "ctl", "2024-01-01T00:00:00Z").unwrap();
    assert_eq!(created["spec"], applied["spec"]);
    assert_eq!(
        created["metadata"]["managedFields"],
        json!([{
            "manager": "ctl", "operation": "Apply", "apiVersion": "apps/v1",
            "time": "2024-01-01T00:00:00Z", "fieldsType": "FieldsV1",
            "fieldsV1": {"f:metadata": {"f:labels": {"f:app": {}}},
                         "f:spec": {"f:replicas": {}, "f:selector": {"f:matchLabels": {"f:app": {}}}}}
        }])
    );
}

#[test]
fn ssa_second_apply_prunes_dropped_fields_only() {
    let first = deployment(
        json!({"replicas": 2, "paused": false, "template": {"metadata": {"labels": {"app": "web"}}}}),
    );
    let mut live = server_side_apply(None, &first, "ctl", "t1").unwrap();
    // Set by someone else (e.g. a merge patch): not this manager's to prune.
    live["metadata"]["labels"]["team"] = json!("ops");
    live["spec"]["minReadySeconds"] = json!(5);
    live["metadata"]["uid"] = json!("u-1");
    live["status"] = json!({"replicas": 2});
    live["metadata"]["managedFields"]
        .as_array_mut()
        .unwrap()
        .push(json!({"manager": "other", "operation": "Update"}));

    let second = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "default"},
                        "spec": {"replicas": 3}});
    let updated = server_side_apply(Some(&live), &second, "ctl", "t2").unwrap();
    assert_eq!(
        updated["spec"],
        json!({"replicas": 3, "minReadySeconds": 5})
    );
    assert_eq!(updated["metadata"]["labels"], json!({"team": "ops"}));
    assert_eq!(updated["metadata"]["uid"], "u-1");
    assert_eq!(updated["status"], json!({"replicas": 2}));
    assert_eq!(
        fields(&updated, "ctl"),
        json!({"f:spec": {"f:replicas": {}}})
    );
    let entries = updated["metadata"]["managedFields"].as_array().unwrap();
    assert_eq!((entries.len(), &entries[0]["time"]), (2, &json!("t2")));
    assert_eq!(entries[1]["manager"], "other");
}

#[test]
fn ssa_prunes_maps_emptied_by_pruning_but_not_maps_another_manager_uses() {
    let first = deployment(
        json!({"template": {"metadata": {"annotations": {"a": "1"}}, "spec": {"x": 1}}}),
    );
    let mut live = server_side_apply(None, &first, "ctl", "t1").unwrap();
    live["spec"]["template"]["spec"]["y"] = json!(2);
    let second = deployment(json!({"replicas": 1}));
    let updated = server_side_apply(Some(&live), &second, "ctl", "t2").unwrap();
    assert_eq!(
        updated["spec"],
        json!({"replicas": 1, "template": {"spec": {"y": 2}}})
    );
}

#[test]
fn ssa_takes_over_changed_fields_and_shares_equal_ones() {
    let first =
        deployment(json!({"replicas": 1, "template": {"spec": {"containers": [{"name": "a"}]}}}));
    let live = server_side_apply(None, &first, "one", "t1").unwrap();
    let containers = json!({"f:template": {"f:spec": {"f:containers": {}}}});
    assert_eq!(
        fields(&live, "one")["f:spec"]["f:template"],
        containers["f:template"]
    );

    // "two" sets the same labels and replicas, but other containers (lists are atomic).
    let second =
        deployment(json!({"replicas": 1, "template": {"spec": {"containers": [{"name": "b"}]}}}));
    let live = server_side_apply(Some(&live), &second, "two", "t2").unwrap();
    assert_eq!(
        live["spec"]["template"]["spec"]["containers"],
        json!([{"name": "b"}])
    );
    let one = json!({"f:metadata": {"f:labels": {"f:app": {}}}, "f:spec": {"f:replicas": {}}});
    assert_eq!(fields(&live, "one"), one);
    assert_eq!(
        fields(&live, "two")["f:spec"],
        json!({"f:replicas": {}, "f:template": containers["f:template"]})
    );

    // Dropping everything: shared fields survive, fields "two" took over go.
    let bare = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}});
    let live = server_side_apply(Some(&live), &bare, "two", "t3").unwrap();
    assert_eq!(live["metadata"]["labels"], json!({"app": "web"}));
    assert_eq!(live["spec"], json!({"replicas": 1}));
    assert_eq!(fields(&live, "two"), json!({}));

    // A manager whose every field is taken over loses its entry.
    let mut alone = deployment(json!({"replicas": 5}));
    alone["metadata"]["labels"]["app"] = json!("other");
    let live = server_side_apply(Some(&live), &alone, "two", "t4").unwrap();
    let managers: Vec<&Value> = live["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["manager"])
        .collect();
    assert_eq!(managers, [&json!("two")]);
}

#[test]
fn ssa_keeps_status_and_honours_null_and_ignores_applied_managed_fields() {
    let mut applied = deployment(json!({"replicas": 1}));
    applied["status"] = json!({"readyReplicas": 1});
    applied["metadata"]["managedFields"] = json!([{"manager": "forged"}]);
    let live = server_side_apply(None, &applied, "ctl", "t1").unwrap();
    assert_eq!(live["status"], json!({"readyReplicas": 1}));
    assert_eq!(
        live["metadata"]["managedFields"].as_array().unwrap().len(),
        1
    );
    assert!(fields(&live, "ctl").get("f:status").is_none());

    let again = deployment(json!({"replicas": null}));
    let updated = server_side_apply(Some(&live), &again, "ctl", "t2").unwrap();
    assert!(updated["spec"].get("replicas").is_none());
}

#[test]
fn ssa_adopts_objects_created_without_apply() {
    let created = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "uid": "u"},
                         "data": {"a": "1", "b": "2"}});
    let applied = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"b": "3"}});
    let live = server_side_apply(Some(&created), &applied, "ctl", "t1").unwrap();
    assert_eq!(live["data"], json!({"a": "1", "b": "3"}));
    assert_eq!(fields(&live, "ctl"), json!({"f:data": {"f:b": {}}}));

    // An empty map is owned as a whole, so the keys owned beneath it go.
    let emptied =
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {}});
    let live = server_side_apply(Some(&live), &emptied, "ctl", "t2").unwrap();
    assert_eq!(live["data"], json!({"a": "1"}));
    assert_eq!(fields(&live, "ctl"), json!({"f:data": {}}));
}

#[test]
fn ssa_rejects_incomplete_configs() {
    let cases = [
        (json!([1]), "the apply configuration is not a JSON object"),
        (
            json!({"kind": "Pod", "metadata": {"name": "a"}}),
            "apiVersion is missing",
        ),
        (
            json!({"apiVersion": "v1", "metadata": {"name": "a"}}),
            "kind is missing",
        ),
        (
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {}}),
            "metadata.name is missing",
        ),
        (
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": ""}}),
            "metadata.name is missing",
        ),
    ];
    for (config, message) in cases {
        let err = server_side_apply(None, &config, "m", "t").unwrap_err();
        assert!(err.to_string().ends_with(message), "{err}");
    }
    let config = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a"}});
    assert!(server_side_apply(Some(&json!(3)), &config, "m", "t").is_err());
}

#[test]
fn ssa_reapplying_the_same_config_is_a_no_op() {
    let applied = deployment(json!({"replicas": 2}));
    let created = server_side_apply(None, &applied, "ctl", "t1").unwrap();
    let again = server_side_apply(Some(&created), &applied, "ctl", "t2").unwrap();
    assert_eq!(again, created, "the entry keeps its time: nothing changed");

    let changed = deployment(json!({"replicas": 3}));
    let updated = server_side_apply(Some(&created), &changed, "ctl", "t3").unwrap();
    assert_eq!(updated["metadata"]["managedFields"][0]["time"], "t3");
    // The same values, but a field more owned: a change of the entry, with a new time.
    let mut owning_more = created.clone();
    owning_more["spec"]["paused"] = json!(false);
    let more = deployment(json!({"replicas": 2, "paused": false}));
    let taken = server_side_apply(Some(&owning_more), &more, "ctl", "t4").unwrap();
    assert_eq!(taken["metadata"]["managedFields"][0]["time"], "t4");
}
