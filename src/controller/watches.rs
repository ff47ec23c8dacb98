//! The watches of one scope (every namespace, or one of `--namespaces`): a reflector per kind, the
//! objects trimmed of what sluice never reads before they are cached, and the index fed from the
//! same events.

use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource};
use serde::de::DeserializeOwned;
use sluice_strategies::index::Kind;
use sluice_strategies::objects::MANAGED_BY;

use super::cache::Cacheable;
use super::compact::Compact;
use super::index::Index;
use super::raw::{RawControllerRevision, RawDeployment};
use crate::crd::Rollout;

/// kubectl's copy of the whole object it applied: as large as the object, never read by sluice.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Changed objects of one kind, as they come in.
pub type Changes<K> = BoxStream<'static, Result<K, watcher::Error>>;

/// One scope's caches and the streams that wake its Rollouts.
pub struct ScopeWatches {
    pub namespace: Option<String>,
    pub rollouts: (Store<Rollout>, Changes<Rollout>),
    pub deployments: (Store<Compact<RawDeployment>>, Changes<RawDeployment>),
    pub services: (Store<Compact<Service>>, Changes<Service>),
    pub ingresses: (Store<Compact<Ingress>>, Changes<Ingress>),
    /// Records wake nothing: their reflector drains its stream in the background.
    pub revisions: Store<Compact<RawControllerRevision>>,
    pub records: tokio::task::JoinHandle<()>,
}

/// The API of a kind in one namespace, or in all of them (None).
pub(super) fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
{
    match namespace {
        Some(namespace) => Api::namespaced(client.clone(), namespace),
        None => Api::all(client.clone()),
    }
}

/// What no decision reads: the server's field ownership and kubectl's last-applied copy. They
/// are often most of an object's bytes.
pub fn trim<K: Resource>(object: &mut K) {
    let meta = object.meta_mut();
    meta.managed_fields = None;
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.remove(LAST_APPLIED);
    }
}

/// A Deployment's status conditions are never read either (readiness comes from its counts).
pub fn trim_deployment(deployment: &mut RawDeployment) {
    trim(deployment);
    if let Some(status) = deployment.status.as_mut() {
        status.conditions = None;
    }
}

/// A reflected watch of objects trimmed by `trimmed` whose events also reach `feed`; its store
/// keeps them as their kind is cached, its stream yields each object changed (applied or deleted).
fn watch<K>(
    api: Api<K>,
    config: watcher::Config,
    trimmed: fn(&mut K),
    mut feed: impl FnMut(&watcher::Event<K>) + Send + 'static,
) -> (
    Store<K::Stored>,
    impl futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send,
)
where
    K: Cacheable + DeserializeOwned + std::fmt::Debug,
{
    let (reader, mut writer) = reflector::store::<K::Stored>();
    let events = watcher(api, config)
        .default_backoff()
        .modify(trimmed)
        .inspect_ok(move |event| {
            writer.apply_watcher_event(&stored(event));
            feed(event);
        });
    (reader, events)
}

/// The event with its object as the store keeps it.
fn stored<K: Cacheable>(event: &watcher::Event<K>) -> watcher::Event<K::Stored> {
    use watcher::Event;
    match event {
        Event::Apply(object) => Event::Apply(object.stored()),
        Event::Delete(object) => Event::Delete(object.stored()),
        Event::Init => Event::Init,
        Event::InitApply(object) => Event::InitApply(object.stored()),
        Event::InitDone => Event::InitDone,
    }
}

impl ScopeWatches {
    /// Starts nothing yet: the streams run when the controller polls them (the records' at once).
    pub fn new(
        client: &Client,
        namespace: Option<String>,
        shard_selector: Option<&str>,
        index: &std::sync::Arc<Index>,
    ) -> ScopeWatches {
        let ns = namespace.as_deref();
        let mut rollouts_config = watcher::Config::default();
        if let Some(selector) = shard_selector {
            rollouts_config = rollouts_config.labels(selector);
        }
        let (rollout_store, rollout_events) = watch(
            api::<Rollout>(client, ns),
            rollouts_config,
            trim,
            index.rollout_feed(namespace.clone()),
        );
        let (deployment_store, deployment_events) = watch(
            api::<RawDeployment>(client, ns),
            watcher::Config::default(),
            trim_deployment,
            |_| {},
        );
        let (service_store, service_events) = watch(
            api::<Service>(client, ns),
            watcher::Config::default(),
            trim,
            index.owned_feed(Kind::Service, namespace.clone()),
        );
        let (ingress_store, ingress_events) = watch(
            api::<Ingress>(client, ns),
            watcher::Config::default(),
            trim,
            index.owned_feed(Kind::Ingress, namespace.clone()),
        );
        // Only sluice's own records, by label.
        let (revisions, record_events) = watch(
            api::<RawControllerRevision>(client, ns),
            watcher::Config::default().labels(&format!("{MANAGED_BY}=sluice")),
            trim,
            |_| {},
        );
        let records = tokio::spawn(record_events.for_each(|_| futures::future::ready(())));
        ScopeWatches {
            namespace,
            rollouts: (rollout_store, rollout_events.applied_objects().boxed()),
            deployments: (
                deployment_store,
                deployment_events.touched_objects().boxed(),
            ),
            services: (service_store, service_events.touched_objects().boxed()),
            ingresses: (ingress_store, ingress_events.touched_objects().boxed()),
            revisions,
            records,
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, ObjectMeta};

    use super::*;

    #[test]
    fn trimming_drops_field_ownership_and_the_last_applied_copy_only() {
        let mut service = Service {
            metadata: ObjectMeta {
                name: Some("web".into()),
                managed_fields: Some(vec![ManagedFieldsEntry::default()]),
                annotations: Some(
                    [
                        (LAST_APPLIED.to_string(), "{...}".to_string()),
                        ("team".to_string(), "shop".to_string()),
                    ]
                    .into(),
                ),
                ..ObjectMeta::default()
            },
            ..Service::default()
        };
        trim(&mut service);
        assert_eq!(service.metadata.managed_fields, None);
        assert_eq!(
            service.metadata.annotations,
            Some([("team".to_string(), "shop".to_string())].into())
        );
        assert_eq!(service.metadata.name.as_deref(), Some("web"));
    }
}
