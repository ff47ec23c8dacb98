//! Profile (not a test): the bytes each kind of object takes in the controller's caches, as it
//! keeps them (trimmed; Rollouts typed, everything else as compact text), against the bytes of its JSON. Where memory at scale
//! goes, object by object.
//!
//! ```sh
//! cargo run --release --example cache_footprint [-- 200]
//! ```
//!
//! Starts the sandbox and the controller in-process, creates the scale benchmark's Rollouts
//! (examples/bench/objects.rs), waits until sluice has taken them all over, then lists each kind
//! and measures, with a counting allocator, what deserializing and trimming each object leaves
//! allocated.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ListParams, PostParams};
use kube::{Client, CustomResourceExt};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use sluice::controller::cache::Cacheable;
use sluice::controller::raw::{RawControllerRevision, RawDeployment};
use sluice::controller::{trim, trim_deployment};
use sluice::crd::Rollout;
use sluice_sandbox::{Sandbox, SandboxConfig};

#[path = "bench/objects.rs"]
mod objects;

/// The system allocator, counting the bytes live.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Average JSON bytes and cached bytes of the objects of `path` (a list URL).
async fn footprint<K>(client: &Client, path: &str, trimmed: fn(&mut K)) -> (usize, f64, f64)
where
    K: Cacheable + DeserializeOwned,
{
    let request = http::Request::get(path)
        .body(Vec::new())
        .expect("a request");
    let text = client.request_text(request).await.expect("the list");
    let list: Value = serde_json::from_str(&text).expect("JSON");
    let items: Vec<String> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| item.to_string())
        .collect();
    let json_bytes: usize = items.iter().map(String::len).sum();
    let before = LIVE.load(Ordering::Relaxed);
    let kept: Vec<K::Stored> = items
        .iter()
        .map(|item| {
            let mut object: K = serde_json::from_str(item).expect("the cached type");
            trimmed(&mut object);
            object.stored()
        })
        .collect();
    let after = LIVE.load(Ordering::Relaxed);
    let n = kept.len().max(1) as f64;
    let spine = (kept.capacity() * std::mem::size_of::<K::Stored>()) as f64;
    drop(kept);
    (
        items.len(),
        json_bytes as f64 / n,
        ((after - before) as f64 - spine) / n + std::mem::size_of::<K::Stored>() as f64,
    )
}

/// Bytes per Rollout of the controller's own metrics: every series a Rollout at rest has, from
/// the same calls the reconcile makes.
async fn metrics_footprint(client: &Client) -> f64 {
    let presets = sluice_strategies::Presets::embedded().expect("the presets");
    let rollouts = Api::<Rollout>::all(client.clone())
        .list(&ListParams::default())
        .await
        .expect("the Rollouts");
    let before = LIVE.load(Ordering::Relaxed);
    let metrics = sluice::metrics::Metrics::new();
    for rollout in &rollouts.items {
        let spec = rollout.spec.readable().expect("a readable spec");
        let plan = sluice_strategies::resolve(spec, &presets).expect("a valid spec");
        let status = rollout.status.clone().unwrap_or_default();
        let namespace = rollout.metadata.namespace.as_deref().unwrap_or_default();
        let name = rollout.metadata.name.as_deref().unwrap_or_default();
        metrics.observe_rollout(namespace, name, Some(&plan), &status);
    }
    let after = LIVE.load(Ordering::Relaxed);
    let series = metrics
        .encode()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .count();
    println!("({} series for {} Rollouts)", series, rollouts.items.len());
    (after - before) as f64 / rollouts.items.len().max(1) as f64
}

#[tokio::main]
async fn main() {
    let rollouts: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(200);
    let sandbox = Sandbox::start(SandboxConfig::default())
        .await
        .expect("the sandbox starts");
    let client = sandbox.client().await.expect("a client");
    Api::<CustomResourceDefinition>::all(client.clone())
        .create(&PostParams::default(), &Rollout::crd())
        .await
        .expect("the CRD");
    for n in 0..objects::NAMESPACES {
        let ns: Namespace =
            serde_json::from_value(json!({"metadata": {"name": format!("bench-{n:02}")}}))
                .expect("a Namespace");
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .expect("the namespace");
    }
    for i in 0..rollouts {
        for object in objects::objects(i, false) {
            let ns = object["metadata"]["namespace"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let kind = object["kind"].as_str().unwrap_or_default().to_string();
            let api = kube::api::ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk(
                match kind.as_str() {
                    "Deployment" => "apps",
                    "Ingress" => "networking.k8s.io",
                    "Rollout" => "sluice.dev",
                    _ => "",
                },
                if kind == "Rollout" { "v1alpha1" } else { "v1" },
                &kind,
            ));
            let dynamic: kube::api::DynamicObject =
                serde_json::from_value(object).expect("an object");
            Api::<kube::api::DynamicObject>::namespaced_with(client.clone(), &ns, &api)
                .create(&PostParams::default(), &dynamic)
                .await
                .expect("created");
        }
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let config = sluice::ControllerConfig::new("http://127.0.0.1:9");
    let controller_client = sandbox.client().await.expect("a client");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let controller = tokio::spawn(sluice::run(
        controller_client,
        config,
        listener,
        None,
        async {
            let _ = stopped.await;
        },
    ));
    let all: Api<Rollout> = Api::all(client.clone());
    loop {
        let list = all
            .list(&ListParams::default())
            .await
            .expect("the Rollouts");
        let ready = list
            .items
            .iter()
            .filter(|r| {
                r.status
                    .as_ref()
                    .is_some_and(|s| s.phase == sluice_strategies::status::Phase::Ready)
            })
            .count();
        if ready == rollouts {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Settled: the targets scaled down, the canary objects there.
    tokio::time::sleep(Duration::from_secs(5)).await;
    println!("{rollouts} Rollouts taken over; bytes per object, JSON as listed / as cached:");
    println!("| kind | objects | JSON | cached | cached per Rollout |");
    println!("| --- | --- | --- | --- | --- |");
    let mut per_rollout = 0.0;
    let kinds = [
        ("Rollout", "/apis/sluice.dev/v1alpha1/rollouts"),
        ("Deployment", "/apis/apps/v1/deployments"),
        ("Service", "/api/v1/services"),
        ("Ingress", "/apis/networking.k8s.io/v1/ingresses"),
        ("ControllerRevision", "/apis/apps/v1/controllerrevisions"),
    ];
    for (kind, path) in kinds {
        let (n, json, cached) = match kind {
            "Rollout" => footprint::<Rollout>(&client, path, trim).await,
            "Deployment" => footprint::<RawDeployment>(&client, path, trim_deployment).await,
            "Service" => footprint::<Service>(&client, path, trim).await,
            "Ingress" => footprint::<Ingress>(&client, path, trim).await,
            _ => footprint::<RawControllerRevision>(&client, path, trim).await,
        };
        let share = cached * n as f64 / rollouts as f64;
        per_rollout += share;
        println!("| {kind} | {n} | {json:.0} | {cached:.0} | {share:.0} |");
    }
    println!("| all caches | | | | {per_rollout:.0} |");
    let metrics = metrics_footprint(&client).await;
    println!("| sluice's own metrics | | | | {metrics:.0} |");
    let _ = stop.send(());
    let _ = controller.await;
    sandbox.shutdown().await;
}
