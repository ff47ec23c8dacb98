//! The sandbox through the real `kube` client: CRUD, conflicts, selectors, every patch type, the
//! status and scale subresources, finalizers, garbage collection, watches (live, after a cut, after
//! compaction) and injected faults.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{eventually, sandbox, sandbox_with};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Service};
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use sluice_sandbox::SandboxConfig;
use sluice_sandbox::faults::{FaultAction, FaultRule, Verb};

const NS: &str = "erp-system";

fn api_code(err: kube::Error) -> u16 {
    match err {
        kube::Error::Api(status) => status.code,
        other => panic!("expected an API error with a Status, got {other:?}"),
    }
}

async fn namespace(client: &Client) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": NS}})).unwrap();
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .expect("namespace created");
}

fn config_map(name: &str, labels: &[(&str, &str)]) -> ConfigMap {
    let labels: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}, "data": {"ASPNETCORE_ENVIRONMENT": "Production"}})).unwrap()
}

fn deployment(name: &str, image: &str) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name, "version": "v1"}, "annotations": {"sandbox.sluice.dev/ready-after": "200ms"}},
                "spec": {"containers": [{"name": name, "image": image, "ports": [{"containerPort": 8080}]}]},
            },
        },
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_get_replace_delete_with_conflicts() {
    let (sandbox, client) = sandbox().await;
    namespace(&client).await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), NS);

    let created = cms
        .create(&PostParams::default(), &config_map("erp-config", &[]))
        .await
        .expect("created");
    assert!(created.uid().is_some(), "a uid is assigned");
    assert!(
        created.creation_timestamp().is_some(),
        "a creationTimestamp is assigned"
    );
    let rv1: u64 = created.resource_version().unwrap().parse().unwrap();
    assert_eq!(
        api_code(
            cms.create(&PostParams::default(), &config_map("erp-config", &[]))
                .await
                .unwrap_err()
        ),
        409
    );

    let mut changed = created.clone();
    changed
        .data
        .get_or_insert_default()
        .insert("DAPR_HTTP_PORT".into(), "3500".into());
    let replaced = cms
        .replace("erp-config", &PostParams::default(), &changed)
        .await
        .expect("replace with the current resourceVersion");
    let rv2: u64 = replaced.resource_version().unwrap().parse().unwrap();
    assert!(rv2 > rv1, "resourceVersion increases: {rv1} then {rv2}");
    // The same stale body again: its resourceVersion is no longer current.
    let stale = cms
        .replace("erp-config", &PostParams::default(), &changed)
        .await
        .unwrap_err();
    assert_eq!(api_code(stale), 409);

    let namespaces: Api<Namespace> = Api::all(client.clone());
    let missing = Api::<ConfigMap>::namespaced(client.clone(), "no-such-namespace")
        .create(&PostParams::default(), &config_map("x", &[]))
        .await
        .unwrap_err();
    assert_eq!(
        api_code(missing),
        404,
        "creating in a namespace that does not exist is refused"
    );
    assert!(namespaces.get(NS).await.is_ok());

    let invalid = cms
        .create(&PostParams::default(), &config_map("Not_A_Name", &[]))
        .await
        .unwrap_err();
    assert_eq!(api_code(invalid), 422);

    cms.delete("erp-config", &DeleteParams::default())
        .await
        .expect("deleted");
    assert_eq!(api_code(cms.get("erp-config").await.unwrap_err()), 404);
    assert_eq!(
        api_code(
            cms.delete("erp-config", &DeleteParams::default())
                .await
                .unwrap_err()
        ),
        404
    );
    sandbox.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn label_and_field_selectors_and_paging() {
    let (sandbox, client) = sandbox().await;
    namespace(&client).await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), NS);
    for (name, tier, env) in [
        ("finance", "backend", "prod"),
        ("inventory", "backend", "staging"),
        ("gateway", "edge", "prod"),
    ] {
        cms.create(
            &PostParams::default(),
            &config_map(name, &[("tier", tier), ("env", env)]),
        )
        .await
        .unwrap();
    }
    cms.create(&PostParams::default(), &config_map("unlabelled", &[]))
        .await
        .unwrap();
    let names = |selector: &str| {
        let cms = cms.clone();
        let selector = selector.to_string();
        async move {
            let list = cms
                .list(&ListParams::default().labels(&selector))
                .await
                .unwrap();
            let mut names: Vec<String> = list.items.iter().map(|c| c.name_any()).collect();
            names.sort();
            names
        }
    };
    assert_eq!(names("tier=backend").await, ["finance", "inventory"]);
    assert_eq!(names("tier==edge").await, ["gateway"]);
    assert_eq!(names("tier!=backend").await, ["gateway", "unlabelled"]);
    assert_eq!(
        names("env in (prod, staging),tier=backend").await,
        ["finance", "inventory"]
    );
    assert_eq!(names("env notin (prod)").await, ["inventory", "unlabelled"]);
    assert_eq!(names("tier").await, ["finance", "gateway", "inventory"]);
    assert_eq!(names("!tier").await, ["unlabelled"]);
    let by_field = cms
        .list(&ListParams::default().fields("metadata.name=gateway"))
        .await
        .unwrap();
    assert_eq!(
        by_field
            .items
            .iter()
            .map(|c| c.name_any())
            .collect::<Vec<_>>(),
        ["gateway"]
    );
    let all_but_system = Api::<ConfigMap>::all(client.clone())
        .list(&ListParams::default().fields("metadata.namespace!=erp-system"))
        .await
        .unwrap();
    assert!(all_but_system.items.is_empty());
    let bad = cms
        .list(&ListParams::default().labels("tier in (backend"))
        .await
        .unwrap_err();
    assert_eq!(api_code(bad), 400);

    let first = cms.list(&ListParams::default().limit(3)).await.unwrap();
    assert_eq!(first.items.len(), 3);
    let token = first
        .metadata
        .continue_
        .clone()
        .expect("a continue token when more remain");
    let rest = cms
        .list(&ListParams::default().limit(3).continue_token(&token))
        .await
        .unwrap();
    assert_eq!(rest.items.len(), 1);
    assert!(
        rest.metadata.continue_.as_deref().unwrap_or("").is_empty(),
        "the last page has no continue token"
    );
    assert_eq!(
        first.metadata.resource_version, rest.metadata.resource_version,
        "pages are one consistent snapshot"
    );
    sandbox.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_patch_type() {
    let (sandbox, client) = sandbox().await;
    namespace(&client).await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
    deployments
        .create(
            &PostParams::default(),
            &deployment("reporting", "erp/reporting:1.0"),
        )
        .await
        .unwrap();

    let merged = deployments
        .patch(
            "reporting",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"team": "finance"}}})),
        )
        .await
        .unwrap();
    assert_eq!(
        merged.labels().get("team").map(String::as_str),
        Some("finance")
    );
    assert_eq!(
        merged.labels().get("app").map(String::as_str),
        Some("reporting"),
        "a merge patch keeps other labels"
    );

    let ops: json_patch::Patch =
        serde_json::from_value(json!([{"op": "replace", "path": "/spec/replicas", "value": 3}, {"op": "remove", "path": "/metadata/labels/team"}])).unwrap();
    let patched = deployments
        .patch(
            "reporting",
            &PatchParams::default(),
            &Patch::Json::<()>(ops),
        )
        .await
        .unwrap();
    assert_eq!(patched.spec.as_ref().unwrap().replicas, Some(3));
    assert!(!patched.labels().contains_key("team"));
    let failing: json_patch::Patch =
        serde_json::from_value(json!([{"op": "test", "path": "/spec/replicas", "value": 7}]))
            .unwrap();
    assert_eq!(
        api_code(
            deployments
                .patch(
                    "reporting",
                    &PatchParams::default(),
                    &Patch::Json::<()>(failing)
                )
                .await
                .unwrap_err()
        ),
        422
    );

    // Strategic merge: containers merge by name, so adding a sidecar keeps the app container.
    let sidecar = json!({"spec": {"template": {"spec": {"containers": [{"name": "daprd", "image": "daprio/daprd:1.14"}]}}}});
    let strategic = deployments
        .patch(
            "reporting",
            &PatchParams::default(),
            &Patch::Strategic(sidecar),
        )
        .await
        .unwrap();
    let containers: Vec<String> = strategic
        .spec
        .unwrap()
        .template
        .spec
        .unwrap()
        .containers
        .iter()
        .map(|c| c.name.clone())
        .collect();
    assert_eq!(containers, ["reporting", "daprd"]);

    // Server-side apply creates when absent, and drops what the same manager stops applying.
    let apply = PatchParams::apply("sluice").force();
    let services: Api<Service> = Api::namespaced(client.clone(), NS);
    let svc = |annotations: Value| {
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "reporting-canary", "annotations": annotations},
               "spec": {"selector": {"app": "reporting", "sluice.dev/slot": "green"}, "ports": [{"port": 80, "targetPort": 8080}]}})
    };
    let created = services
        .patch(
            "reporting-canary",
            &apply,
            &Patch::Apply(svc(json!({"a": "1", "b": "2"}))),
        )
        .await
        .unwrap();
    assert_eq!(created.annotations().len(), 2);
    assert!(
        created.spec.as_ref().unwrap().cluster_ip.is_some(),
        "defaults are applied to applied objects"
    );
    let managed = created.metadata.managed_fields.clone().unwrap_or_default();
    assert!(
        managed
            .iter()
            .any(|m| m.manager.as_deref() == Some("sluice")
                && m.operation.as_deref() == Some("Apply"))
    );
    let reapplied = services
        .patch(
            "reporting-canary",
            &apply,
            &Patch::Apply(svc(json!({"a": "1"}))),
        )
        .await
        .unwrap();
    assert_eq!(
        reapplied.annotations().keys().collect::<Vec<_>>(),
        ["a"],
        "a field the manager no longer applies is removed"
    );
    assert_eq!(
        reapplied.spec.as_ref().unwrap().cluster_ip,
        created.spec.as_ref().unwrap().cluster_ip
    );

    let unsupported = services
        .patch(
            "reporting-canary",
            &PatchParams::default(),
            &Patch::Merge(json!("not an object")),
        )
        .await;
    assert!(
        unsupported.is_err(),
        "a patch that is not an object is refused"
    );
    sandbox.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_subresource_generation_and_scale() {
    let (sandbox, client) = sandbox().await;
    namespace(&client).await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
    let created = deployments
        .create(
            &PostParams::default(),
            &deployment("finance", "erp/finance:1.0"),
        )
        .await
        .unwrap();
    assert_eq!(created.metadata.generation, Some(1));

    // The workload simulator makes the pods ready and reports it in status.
    let ready = eventually(
        Duration::from_secs(10),
        "finance to have 2 ready replicas",
        || async {
            let d = deployments.get("finance").await.ok()?;
            let status = d.status.clone()?;
            (status.ready_replicas == Some(2) && status.observed_generation == Some(1)).then_some(d)
        },
    )
    .await;
    let available = ready
        .status
        .unwrap()
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "Available")
        .unwrap();
    assert_eq!(available.status, "True");

    // Writes to the main resource ignore status; writes to status ignore the rest.
    let main = deployments
        .patch(
            "finance",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}, "status": {"replicas": 99}})),
        )
        .await
        .unwrap();
    assert_ne!(main.status.as_ref().unwrap().replicas, Some(99));
    assert_eq!(
        main.metadata.generation,
        Some(1),
        "a metadata change does not bump generation"
    );
    let status = deployments
        .patch_status(
            "finance",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 7}, "status": {"observedGeneration": 42}})),
        )
        .await
        .unwrap();
    assert_eq!(status.spec.as_ref().unwrap().replicas, Some(2));
    assert_eq!(
        status.status.as_ref().unwrap().observed_generation,
        Some(42)
    );

    let image = json!({"spec": {"template": {"spec": {"containers": [{"name": "finance", "image": "erp/finance:2.0"}]}}}});
    let bumped = deployments
        .patch("finance", &PatchParams::default(), &Patch::Strategic(image))
        .await
        .unwrap();
    assert_eq!(
        bumped.metadata.generation,
        Some(2),
        "a spec change bumps generation"
    );

    let scale = deployments.get_scale("finance").await.unwrap();
    assert_eq!(scale.spec.unwrap().replicas, Some(2));
    deployments
        .patch_scale(
            "finance",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 4}})),
        )
        .await
        .unwrap();
    assert_eq!(
        deployments
            .get("finance")
            .await
            .unwrap()
            .spec
            .unwrap()
            .replicas,
        Some(4)
    );
    eventually(
        Duration::from_secs(10),
        "4 ready replicas of the new template",
        || async {
            let status = deployments.get("finance").await.ok()?.status?;
            (status.ready_replicas == Some(4)
                && status.updated_replicas == Some(4)
                && status.replicas == Some(4))
            .then_some(())
        },
    )
    .await;

    let immutable = deployments
        .patch(
            "finance",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"selector": {"matchLabels": {"app": "other"}}}})),
        )
        .await
        .unwrap_err();
    assert_eq!(
        api_code(immutable),
        422,
        "a Deployment's selector is immutable"
    );
    sandbox.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finalizers_hold_deletion_and_owners_collect_dependents() {
    let (sandbox, client) = sandbox().await;
    namespace(&client).await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), NS);
    let mut guarded = config_map("guarded", &[]);
    guarded.metadata.finalizers = Some(vec!["sluice.dev/cleanup".into()]);
    cms.create(&PostParams::default(), &guarded).await.unwrap();
    cms.delete("guarded", &DeleteParams::default())
        .await
        .unwrap();
    let terminating = cms
        .get("guarded")
        .await
        .expect("still there while a finalizer remains");
    assert!(terminating.metadata.deletion_timestamp.is_some());
    cms.patch(
        "guarded",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    assert_eq!(
        api_code(cms.get("guarded").await.unwrap_err()),
        404,
        "removing the last finalizer completes the deletion"
    );

    let owner = cms
        .create(&PostParams::default(), &config_map("owner", &[]))
        .await
        .unwrap();
    let other_owner = cms
        .create(&PostParams::default(), &config_map("other-owner", &[]))
        .await
        .unwrap();
    let reference = |o: &ConfigMap| json!({"apiVersion": "v1", "kind": "ConfigMap", "name": o.name_any(), "uid": o.uid().unwrap()});
    for (name, owners) in [
        ("only-child", vec![reference(&owner)]),
        (
            "shared-child",
            vec![reference(&owner), reference(&other_owner)],
        ),
    ] {
        let child: ConfigMap =
            serde_json::from_value(json!({"metadata": {"name": name, "ownerReferences": owners}}))
                .unwrap();
        cms.create(&PostParams::default(), &child).await.unwrap();
    }
    cms.delete("owner", &DeleteParams::background())
        .await
        .unwrap();
    eventually(
        Duration::from_secs(5),
        "the garbage collector to delete only-child",
        || async { cms.get("only-child").await.is_err().then_some(()) },
    )
    .await;
    let shared = cms
        .get("shared-child")
        .await
        .expect("a dependent with another owner stays");
    assert_eq!(shared.owner_references().len(), 1);
    sandbox.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watcher_sees_changes_live_and_across_a_cut_stream() {
    let (sandbox, client) = sandbox().await;
    namespace(&client).await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), NS);
    cms.create(&PostParams::default(), &config_map("before", &[]))
        .await
        .unwrap();

    let (seen_tx, mut seen) = tokio::sync::mpsc::unbounded_channel::<String>();
    let stream = watcher(cms.clone(), watcher::Config::default());
    let watching = tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            let line = match event {
                Ok(watcher::Event::InitApply(o)) => format!("init {}", o.name_any()),
                Ok(watcher::Event::Apply(o)) => format!(
                    "apply {} {}",
                    o.name_any(),
                    o.data.unwrap_or_default().len()
                ),
                Ok(watcher::Event::Delete(o)) => format!("delete {}", o.name_any()),
                Ok(watcher::Event::InitDone) => "ready".into(),
                Ok(watcher::Event::Init) => continue,
                Err(e) => format!("error {e}"),
            };
            if seen_tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut expect = async |want: &str| {
        let found = tokio::time::timeout(Duration::from_secs(10), async {
            while let Some(line) = seen.recv().await {
                if line == want {
                    return true;
                }
            }
            false
        })
        .await;
        assert_eq!(found, Ok(true), "the watcher never reported {want:?}");
    };
    expect("init before").await;
    expect("ready").await;
    cms.create(&PostParams::default(), &config_map("live", &[]))
        .await
        .unwrap();
    expect("apply live 1").await;
    cms.patch(
        "live",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"DAPR_GRPC_PORT": "50001"}})),
    )
    .await
    .unwrap();
    expect("apply live 2").await;

    sandbox.faults().cut_watches();
    tokio::time::sleep(Duration::from_millis(200)).await;
    cms.patch(
        "live",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"REDIS": "redis:6379"}})),
    )
    .await
    .unwrap();
    expect("apply live 3").await;
    cms.delete("live", &DeleteParams::default()).await.unwrap();
    expect("delete live").await;
    watching.abort();
    sandbox.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_semantics_bookmarks_selectors_and_gone() {
    let config = SandboxConfig {
        log_capacity: 20,
        bookmark_interval: Duration::from_millis(200),
        ..SandboxConfig::default()
    };
    let (sandbox, client) = sandbox_with(config).await;
    namespace(&client).await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), NS);
    let start = cms
        .create(
            &PostParams::default(),
            &config_map("a", &[("watched", "yes")]),
        )
        .await
        .unwrap();
    let start_rv = start.resource_version().unwrap();

    // A label-filtered watch: a change that makes the object stop matching arrives as DELETED.
    let params = WatchParams::default().labels("watched=yes").timeout(5);
    let mut events = cms.watch(&params, &start_rv).await.unwrap().boxed();
    cms.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"watched": "no"}}})),
    )
    .await
    .unwrap();
    let mut kinds = Vec::new();
    while let Some(event) = tokio::time::timeout(Duration::from_secs(3), events.try_next())
        .await
        .unwrap()
        .unwrap()
    {
        match event {
            WatchEvent::Deleted(o) => {
                kinds.push(format!("deleted {}", o.name_any()));
            }
            WatchEvent::Bookmark(b) => {
                kinds.push("bookmark".into());
                assert!(
                    b.metadata.resource_version.parse::<u64>().unwrap()
                        > start_rv.parse::<u64>().unwrap()
                );
                break;
            }
            other => kinds.push(format!("{other:?}")),
        }
    }
    assert_eq!(kinds, ["deleted a", "bookmark"]);

    // Push the start resourceVersion out of the (deliberately tiny) log: 410 Gone in an ERROR event.
    for i in 0..30 {
        cms.patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"n": i.to_string()}})),
        )
        .await
        .unwrap();
    }
    let mut gone = cms
        .watch(&WatchParams::default(), &start_rv)
        .await
        .unwrap()
        .boxed();
    match tokio::time::timeout(Duration::from_secs(3), gone.try_next())
        .await
        .unwrap()
        .unwrap()
    {
        Some(WatchEvent::Error(status)) => assert_eq!(status.code, 410),
        other => panic!("expected an ERROR event with 410, got {other:?}"),
    }
    sandbox.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_faults_reach_the_client() {
    let (sandbox, client) = sandbox().await;
    namespace(&client).await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), NS);
    cms.create(&PostParams::default(), &config_map("erp-config", &[]))
        .await
        .unwrap();
    let faults = sandbox.faults();
    faults.add(FaultRule {
        verb: Some(Verb::Patch),
        resource: Some("configmaps".into()),
        action: FaultAction::Conflict,
        times: Some(3),
    });
    let merge = Patch::Merge(json!({"data": {"k": "v"}}));
    for _ in 0..3 {
        assert_eq!(
            api_code(
                cms.patch("erp-config", &PatchParams::default(), &merge)
                    .await
                    .unwrap_err()
            ),
            409
        );
    }
    cms.patch("erp-config", &PatchParams::default(), &merge)
        .await
        .expect("the storm is over after its 3 requests");

    let id = faults.add(FaultRule {
        verb: Some(Verb::Get),
        resource: None,
        action: FaultAction::Fail { code: 500 },
        times: None,
    });
    assert_eq!(api_code(cms.get("erp-config").await.unwrap_err()), 500);
    faults.remove(id);
    // kube's client retries 503s by itself: two of them are absorbed, and the fault is used up.
    faults.add(FaultRule {
        verb: Some(Verb::Get),
        resource: None,
        action: FaultAction::Fail { code: 503 },
        times: Some(2),
    });
    cms.get("erp-config")
        .await
        .expect("kube retried past two 503s");
    assert!(faults.list().is_empty(), "both 503s were served");
    faults.add(FaultRule {
        verb: Some(Verb::Get),
        resource: None,
        action: FaultAction::Delay { millis: 300 },
        times: Some(1),
    });
    let started = std::time::Instant::now();
    cms.get("erp-config").await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "the delay was applied"
    );
    sandbox.shutdown().await;
}
