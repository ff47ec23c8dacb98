//! The caches of one kind across the namespaces the controller watches.
//!
//! A reflector's store holds what one watch lists: a watch of every namespace, or of one. With
//! `--namespaces a,b` each namespace has its own watch (a Role there is all it may read), so each
//! has its own store; a fresh list of one must not empty the others, as it would in one shared
//! store. [`Cache`] puts them behind one lookup.

use std::sync::Arc;

use kube::Resource;
use kube::runtime::reflector::{ObjectRef, Store};

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

/// The stores of one kind, by the namespace their watch covers (None: all).
pub struct Cache<K: Resource<DynamicType = ()> + 'static> {
    stores: Vec<(Option<String>, Store<K>)>,
}

impl<K: Resource<DynamicType = ()> + 'static> Clone for Cache<K> {
    fn clone(&self) -> Self {
        Cache {
            stores: self.stores.clone(),
        }
    }
}

impl<K: Resource<DynamicType = ()> + 'static> Default for Cache<K> {
    fn default() -> Self {
        Cache { stores: Vec::new() }
    }
}

impl<K> Cache<K>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    pub fn add(&mut self, namespace: Option<String>, store: Store<K>) {
        self.stores.push((namespace, store));
    }

    /// One object; None when it does not exist or no watch covers its namespace.
    pub fn get(&self, namespace: &str, name: &str) -> Option<Arc<K>> {
        let key = ObjectRef::new(name).within(namespace);
        self.stores
            .iter()
            .filter(|(scope, _)| scope.as_deref().is_none_or(|s| s == namespace))
            .find_map(|(_, store)| store.get(&key))
    }

    /// Every object cached.
    pub fn state(&self) -> Vec<Arc<K>> {
        self.stores
            .iter()
            .flat_map(|(_, store)| store.state())
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
    use k8s_openapi::api::core::v1::Service;
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
        shop_writer.apply_watcher_event(&Event::Apply(service("shop", "web")));
        erp_writer.apply_watcher_event(&Event::Apply(service("erp-system", "gateway")));
        // A store that somehow held another namespace's object is not asked for it.
        erp_writer.apply_watcher_event(&Event::Apply(service("shop", "stray")));
        let mut cache = Cache::default();
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
        writer.apply_watcher_event(&Event::Apply(service("shop", "web")));
        let mut cache = Cache::default();
        cache.add(None, all);
        assert!(cache.get("shop", "web").is_some());
        assert_eq!(
            Scope::Namespaces(vec!["a".into(), "b".into()]).watches(),
            vec![Some("a".to_string()), Some("b".to_string())]
        );
        assert_eq!(Scope::AllNamespaces.watches(), vec![None]);
    }
}
