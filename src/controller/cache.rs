//! The caches of one kind across the namespaces the controller watches.
//!
//! A reflector's store holds what one watch lists: a watch of every namespace, or of one. With
//! `--namespaces a,b` each namespace has its own watch (a Role there is all it may read), so each
//! has its own store; a fresh list of one must not empty the others, as it would in one shared
//! store. [`Cache`] puts them behind one lookup.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::Ingress;
use kube::Resource;
use kube::runtime::reflector::{Lookup, ObjectRef, Store};

use super::compact::Compact;
use super::raw::{RawControllerRevision, RawDeployment};
use crate::crd::Rollout;

/// Where the controller looks: every namespace, or only some.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    AllNamespaces,
    Namespaces(Vec<String>),
}

impl Scope {
    /// The scopes of the watches: None for all namespaces at once, else one per namespace.
    pub fn watches(&self) -> Vec<Option<String>> {
        match self {
            Scope::AllNamespaces => vec![None],
            Scope::Namespaces(namespaces) => namespaces.iter().cloned().map(Some).collect(),
        }
    }
}

/// How objects of a kind are kept in its stores: as they are (Rollouts, which the controller's
/// queue takes from its store), or as compact text (everything else, see [`Compact`]).
pub trait Cacheable: Resource<DynamicType = ()> + Clone + Send + Sync + 'static {
    type Stored: Lookup<DynamicType = ()> + Clone + Send + Sync + 'static;

    /// The object as its store keeps it.
    fn stored(&self) -> Self::Stored;

    /// The object again; None if what was kept does not read back.
    fn read(stored: Arc<Self::Stored>) -> Option<Arc<Self>>;
}

impl Cacheable for Rollout {
    type Stored = Rollout;

    fn stored(&self) -> Rollout {
        self.clone()
    }

    fn read(stored: Arc<Rollout>) -> Option<Arc<Rollout>> {
        Some(stored)
    }
}

macro_rules! cached_as_text {
    ($($kind:ty),*) => {$(
        impl Cacheable for $kind {
            type Stored = Compact<$kind>;

            fn stored(&self) -> Compact<$kind> {
                Compact::new(self)
            }

            fn read(stored: Arc<Compact<$kind>>) -> Option<Arc<$kind>> {
                stored.object().map(Arc::new)
            }
        }
    )*};
}

cached_as_text!(Service, Ingress, RawDeployment, RawControllerRevision);

/// The stores of one kind, by the namespace their watch covers (None: all).
pub struct Cache<K: Cacheable> {
    stores: Vec<(Option<String>, Store<K::Stored>)>,
}

impl<K: Cacheable> Clone for Cache<K> {
    fn clone(&self) -> Self {
        Cache {
            stores: self.stores.clone(),
        }
    }
}

impl<K: Cacheable> Default for Cache<K> {
    fn default() -> Self {
        Cache { stores: Vec::new() }
    }
}

impl<K: Cacheable> Cache<K> {
    pub fn add(&mut self, namespace: Option<String>, store: Store<K::Stored>) {
        self.stores.push((namespace, store));
    }

    /// One object; None when it does not exist or no watch covers its namespace.
    pub fn get(&self, namespace: &str, name: &str) -> Option<Arc<K>> {
        let key = ObjectRef::new(name).within(namespace);
        self.stores
            .iter()
            .filter(|(scope, _)| scope.as_deref().is_none_or(|s| s == namespace))
            .find_map(|(_, store)| store.get(&key))
            .and_then(K::read)
    }

    /// Every object cached.
    pub fn state(&self) -> Vec<Arc<K>> {
        self.stores
            .iter()
            .flat_map(|(_, store)| store.state())
            .filter_map(K::read)
            .collect()
    }

    /// Whether every store has its first full list (false if a watch has gone for good).
    pub async fn wait_until_ready(&self) -> bool {
        let ready = futures::future::join_all(
            self.stores
                .iter()
                .map(|(_, store)| store.wait_until_ready()),
        )
        .await;
        ready.iter().all(Result::is_ok)
    }
}

#[cfg(test)]
mod tests {
    use kube::api::ObjectMeta;
    use kube::runtime::reflector;
    use kube::runtime::watcher::Event;

    use super::*;

    fn service(namespace: &str, name: &str) -> Service {
        Service {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(namespace.into()),
                ..ObjectMeta::default()
            },
            ..Service::default()
        }
    }

    #[test]
    fn each_namespace_is_looked_up_in_the_store_of_its_own_watch() {
        let (shop, mut shop_writer) = reflector::store();
        let (erp, mut erp_writer) = reflector::store();
        shop_writer.apply_watcher_event(&Event::Apply(service("shop", "web").stored()));
        erp_writer.apply_watcher_event(&Event::Apply(service("erp-system", "gateway").stored()));
        // A store that somehow held another namespace's object is not asked for it.
        erp_writer.apply_watcher_event(&Event::Apply(service("shop", "stray").stored()));
        let mut cache = Cache::<Service>::default();
        cache.add(Some("shop".into()), shop);
        cache.add(Some("erp-system".into()), erp);
        assert!(cache.get("shop", "web").is_some());
        assert!(cache.get("erp-system", "gateway").is_some());
        assert!(cache.get("shop", "gateway").is_none());
        assert!(cache.get("shop", "stray").is_none());
        assert!(cache.get("elsewhere", "web").is_none());
        assert_eq!(cache.state().len(), 3);
    }

    #[test]
    fn one_watch_of_every_namespace_answers_for_all() {
        let (all, mut writer) = reflector::store();
        writer.apply_watcher_event(&Event::Apply(service("shop", "web").stored()));
        let mut cache = Cache::<Service>::default();
        cache.add(None, all);
        assert!(cache.get("shop", "web").is_some());
        assert_eq!(
            Scope::Namespaces(vec!["a".into(), "b".into()]).watches(),
            vec![Some("a".to_string()), Some("b".to_string())]
        );
        assert_eq!(Scope::AllNamespaces.watches(), vec![None]);
    }
}
