//! Unit tests of strategic merge patch (`strategic.rs`).

use super::*;
use serde_json::json;

fn smp(mut target: Value, patch: Value) -> Value {
    strategic_merge_patch(&mut target, &patch).unwrap();
    target
}

fn smp_err(patch: Value) -> String {
    let mut target = json!({"spec": {"containers": [{"name": "a"}]}, "keep": 1});
    let before = target.clone();
    let err = strategic_merge_patch(&mut target, &patch).unwrap_err();
    assert_eq!(target, before, "a failed patch must not change the object");
    err.to_string()
}

#[test]
fn smp_merges_maps_and_replaces_scalars_and_plain_lists() {
    let target =
        json!({"metadata": {"labels": {"a": "1", "b": "2"}, "finalizers": ["x", "y"]}, "n": 1});
    let patch = json!({"metadata": {"labels": {"a": null, "c": "3"}, "finalizers": ["z"]}, "n": 2, "new": {"k": true}});
    let expected = json!({"metadata": {"labels": {"b": "2", "c": "3"}, "finalizers": ["z"]}, "n": 2, "new": {"k": true}});
    assert_eq!(smp(target, patch), expected);
}

#[test]
fn smp_merges_keyed_lists_by_their_merge_keys() {
    let target = json!({"spec": {"containers": [
        {"name": "app", "image": "app:1", "env": [{"name": "A", "value": "1"}],
         "ports": [{"containerPort": 80, "protocol": "TCP"}],
         "volumeMounts": [{"mountPath": "/data", "name": "data"}]},
        {"name": "sidecar", "image": "side:1"}
    ]}});
    let patch = json!({"spec": {"containers": [
        {"name": "app", "image": "app:2", "env": [{"name": "B", "value": "2"}],
         "ports": [{"containerPort": 80, "name": "http"}],
         "volumeMounts": [{"mountPath": "/data", "readOnly": true}]},
        {"name": "new", "image": "new:1"}
    ]}});
    let expected = json!({"spec": {"containers": [
        {"name": "app", "image": "app:2",
         "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
         "ports": [{"containerPort": 80, "protocol": "TCP", "name": "http"}],
         "volumeMounts": [{"mountPath": "/data", "name": "data", "readOnly": true}]},
        {"name": "sidecar", "image": "side:1"},
        {"name": "new", "image": "new:1"}
    ]}});
    assert_eq!(smp(target, patch), expected);
}

#[test]
fn smp_other_merge_keys() {
    let service = json!({"spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443}]}});
    let patched = smp(
        service,
        json!({"spec": {"ports": [{"port": 443, "name": "https"}]}}),
    );
    assert_eq!(
        patched["spec"]["ports"],
        json!([{"port": 80, "targetPort": 8080}, {"port": 443, "name": "https"}])
    );

    let status = json!({"status": {"conditions": [{"type": "Ready", "status": "False"}, {"type": "Progressing", "status": "True"}]}});
    let patched = smp(
        status,
        json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
    );
    assert_eq!(
        patched["status"]["conditions"][0],
        json!({"type": "Ready", "status": "True"})
    );
    assert_eq!(patched["status"]["conditions"].as_array().unwrap().len(), 2);

    let owned = json!({"metadata": {"ownerReferences": [{"uid": "u1", "name": "a"}]}});
    let patched = smp(
        owned,
        json!({"metadata": {"ownerReferences": [{"uid": "u1", "controller": true}]}}),
    );
    assert_eq!(
        patched["metadata"]["ownerReferences"],
        json!([{"uid": "u1", "name": "a", "controller": true}])
    );
}

#[test]
fn smp_replaces_keyed_field_names_that_hold_scalars() {
    let patched = smp(json!({"ports": [80, 443]}), json!({"ports": [8080]}));
    assert_eq!(patched, json!({"ports": [8080]}));
    let patched = smp(json!({"env": [{"name": "A"}]}), json!({"env": []}));
    assert_eq!(
        patched,
        json!({"env": [{"name": "A"}]}),
        "an empty keyed list changes nothing"
    );
}

#[test]
fn smp_delete_directive_in_keyed_list_removes_the_element() {
    let target = json!({"spec": {"volumes": [{"name": "a"}, {"name": "b"}], "imagePullSecrets": [{"name": "s"}]}});
    let patch = json!({"spec": {"volumes": [{"name": "a", "$patch": "delete"}, {"name": "gone", "$patch": "delete"}],
                                 "imagePullSecrets": [{"$patch": "delete", "name": "s"}]}});
    assert_eq!(
        smp(target, patch),
        json!({"spec": {"volumes": [{"name": "b"}], "imagePullSecrets": []}})
    );
}

#[test]
fn smp_replace_directive_in_keyed_list_replaces_the_list() {
    let target = json!({"env": [{"name": "A", "value": "1"}, {"name": "B"}]});
    let patch = json!({"env": [{"$patch": "replace"}, {"name": "C", "value": "3"}]});
    assert_eq!(
        smp(target, patch),
        json!({"env": [{"name": "C", "value": "3"}]})
    );
}

#[test]
fn smp_replace_directive_in_map_replaces_the_map() {
    let target = json!({"spec": {"selector": {"a": "1", "b": "2"}, "other": 1}});
    let patch = json!({"spec": {"selector": {"$patch": "replace", "c": "3", "gone": null}}});
    assert_eq!(
        smp(target, patch),
        json!({"spec": {"selector": {"c": "3"}, "other": 1}})
    );
}

#[test]
fn smp_delete_directive_on_map_deletes_it() {
    let target = json!({"spec": {"strategy": {"rollingUpdate": {"maxSurge": 1}}, "replicas": 1}});
    let patch = json!({"spec": {"strategy": {"$patch": "delete"}}});
    assert_eq!(smp(target, patch), json!({"spec": {"replicas": 1}}));
}

#[test]
fn smp_retain_keys_drops_unlisted_keys() {
    let target = json!({"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}});
    let patch = json!({"strategy": {"$retainKeys": ["type"], "type": "Recreate"}});
    assert_eq!(
        smp(target, patch),
        json!({"strategy": {"type": "Recreate"}})
    );
}

#[test]
fn smp_delete_from_primitive_list() {
    let target = json!({"metadata": {"finalizers": ["a", "b", "c", "b"]}});
    let patch = json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["b", "zz"]}});
    assert_eq!(
        smp(target, patch),
        json!({"metadata": {"finalizers": ["a", "c"]}})
    );
}

#[test]
fn smp_kubectl_apply_shaped_patch_with_set_element_order() {
    let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
    "spec": {"replicas": 1, "template": {"spec": {"containers": [
        {"name": "app", "image": "app:1"},
        {"name": "extra", "image": "extra:1"},
        {"name": "proxy", "image": "proxy:1"}
    ]}}}});
    // What `kubectl apply` sends after the user reordered, edited and dropped containers.
    let patch = json!({
        "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
        "spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "proxy"}, {"name": "app"}, {"name": "log"}],
            "containers": [
                {"name": "app", "image": "app:2"},
                {"name": "log", "image": "log:1"},
                {"$patch": "delete", "name": "extra"}
            ]
        }}}
    });
    let patched = smp(deployment, patch);
    assert_eq!(
        patched["spec"]["template"]["spec"],
        json!({"containers": [
            {"name": "proxy", "image": "proxy:1"},
            {"name": "app", "image": "app:2"},
            {"name": "log", "image": "log:1"}
        ]})
    );
    assert_eq!(patched["spec"]["replicas"], 1);
    assert!(patched["metadata"]["annotations"].is_object());
}

#[test]
fn smp_set_element_order_keeps_unlisted_elements_after_listed_ones() {
    let target = json!({"containers": [{"name": "a"}, {"name": "b"}, {"name": "c"}, {"name": "d"}],
                        "args": ["x", "y", "z"]});
    let patch = json!({"$setElementOrder/containers": [{"name": "c"}, {"name": "a"}],
                       "$setElementOrder/args": ["z"]});
    assert_eq!(
        smp(target, patch),
        json!({
            "containers": [{"name": "c"}, {"name": "a"}, {"name": "b"}, {"name": "d"}],
            "args": ["z", "x", "y"]
        })
    );
}

#[test]
fn smp_directives_never_reach_the_stored_object() {
    let patch = json!({"spec": {
        "template": {"$patch": "replace", "metadata": {"$retainKeys": ["labels"], "labels": {"a": "b"}}},
        "list": [{"$patch": "merge", "x": 1}],
        "fresh": {"$setElementOrder/volumes": [{"name": "v"}], "volumes": [{"name": "v", "$patch": "delete"}]}
    }});
    let patched = smp(json!({}), patch);
    assert_eq!(
        patched,
        json!({"spec": {
            "template": {"metadata": {"labels": {"a": "b"}}},
            "list": [{"x": 1}],
            "fresh": {"volumes": []}
        }})
    );
    assert!(!patched.to_string().contains('$'));
}

#[test]
fn smp_errors_leave_the_target_untouched() {
    assert!(smp_err(json!({"keep": 2, "$bogus": 1})).contains("unknown directive `$bogus`"));
    assert!(smp_err(json!({"spec": {"$patch": "explode"}})).contains("unknown `$patch` directive"));
    assert!(
        smp_err(json!({"spec": {"containers": [{"image": "x"}]}})).contains("merge key `name`")
    );
    assert!(smp_err(json!({"$retainKeys": "keep"})).contains("$retainKeys"));
    assert!(smp_err(json!({"$setElementOrder/x": {}})).contains("must be a list"));
    assert!(smp_err(json!({"$deleteFromPrimitiveList/x": 1})).contains("must be a list"));
    assert!(smp_err(json!({"$patch": "delete"})).contains("top level"));
    let err = strategic_merge_patch(&mut json!({}), &json!([1])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "a strategic merge patch is not a JSON object"
    );
    assert!(strategic_merge_patch(&mut json!("x"), &json!({})).is_err());
}
