//! Objects kept in the caches as their compact JSON text, and read back when a reconcile asks.
//!
//! A typed Kubernetes object takes two to three times its JSON in memory: every label map is a
//! whole B-tree node, every optional field its own allocation. With seven cached objects a
//! Rollout (its target, slots, Services, Ingresses and template record), that is most of a large
//! controller's memory. A reconcile reads a handful of objects, so parsing them again costs
//! microseconds where keeping them typed costs tens of KiB a Rollout (docs/performance.md).

use std::borrow::Cow;
use std::marker::PhantomData;

use kube::Resource;
use kube::runtime::reflector::Lookup;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// One object of kind `K` as its JSON text, with the name and namespace its cache is keyed by.
pub struct Compact<K> {
    name: Box<str>,
    namespace: Option<Box<str>>,
    text: Box<str>,
    kind: PhantomData<fn() -> K>,
}

impl<K> Clone for Compact<K> {
    fn clone(&self) -> Self {
        Compact {
            name: self.name.clone(),
            namespace: self.namespace.clone(),
            text: self.text.clone(),
            kind: PhantomData,
        }
    }
}

impl<K> std::fmt::Debug for Compact<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compact")
            .field("name", &self.name)
            .field("namespace", &self.namespace)
            .field("bytes", &self.text.len())
            .finish()
    }
}

impl<K: Resource<DynamicType = ()> + Serialize + DeserializeOwned> Compact<K> {
    /// The object as text. Objects the API server sent always serialize (their maps have string
    /// keys); one that somehow did not is kept as nothing, read back as absent.
    pub fn new(object: &K) -> Compact<K> {
        let meta = object.meta();
        let text = serde_json::to_string(object).unwrap_or_else(|error| {
            tracing::warn!(
                kind = %K::kind(&()),
                name = meta.name.as_deref().unwrap_or_default(),
                %error,
                "an object could not be cached"
            );
            String::new()
        });
        Compact {
            name: meta.name.clone().unwrap_or_default().into_boxed_str(),
            namespace: meta.namespace.clone().map(String::into_boxed_str),
            text: text.into_boxed_str(),
            kind: PhantomData,
        }
    }

    /// The object again, as it was cached.
    pub fn object(&self) -> Option<K> {
        serde_json::from_str(&self.text).ok()
    }

    /// The bytes the text takes.
    pub fn text_len(&self) -> usize {
        self.text.len()
    }
}

impl<K: Resource<DynamicType = ()>> Lookup for Compact<K> {
    type DynamicType = ();

    fn kind(dyntype: &()) -> Cow<'_, str> {
        K::kind(dyntype)
    }

    fn group(dyntype: &()) -> Cow<'_, str> {
        K::group(dyntype)
    }

    fn version(dyntype: &()) -> Cow<'_, str> {
        K::version(dyntype)
    }

    fn plural(dyntype: &()) -> Cow<'_, str> {
        K::plural(dyntype)
    }

    fn name(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Borrowed(&self.name))
    }

    fn namespace(&self) -> Option<Cow<'_, str>> {
        self.namespace.as_deref().map(Cow::Borrowed)
    }

    // The store's keys hold what these return: they are looked up by name and namespace alone,
    // so a copy of the version and uid in every key would only cost memory. Readers get both
    // from the object.
    fn resource_version(&self) -> Option<Cow<'_, str>> {
        None
    }

    fn uid(&self) -> Option<Cow<'_, str>> {
        None
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::Service;
    use kube::runtime::reflector::{self, ObjectRef};
    use kube::runtime::watcher::Event;
    use serde_json::json;

    use super::*;

    fn service() -> Service {
        serde_json::from_value(json!({
            "metadata": {"name": "finance", "namespace": "erp-system", "uid": "u-1",
                         "resourceVersion": "42", "labels": {"app": "finance"},
                         "annotations": {"team": "erp"}},
            "spec": {"selector": {"app": "finance"}, "ports": [{"port": 80, "targetPort": 8080}]},
        }))
        .expect("a Service")
    }

    #[test]
    fn an_object_reads_back_as_it_was_cached() {
        let compact = Compact::new(&service());
        assert_eq!(compact.object(), Some(service()));
        assert!(compact.text_len() < 400, "{compact:?}");
    }

    #[test]
    fn a_store_of_compact_objects_finds_them_by_namespace_and_name() {
        let (store, mut writer) = reflector::store::<Compact<Service>>();
        writer.apply_watcher_event(&Event::Apply(Compact::new(&service())));
        let key = ObjectRef::new("finance").within("erp-system");
        let found = store.get(&key).and_then(|c| c.object());
        assert_eq!(
            found.and_then(|s| s.metadata.resource_version),
            Some("42".to_string())
        );
        assert!(
            store
                .get(&ObjectRef::new("finance").within("shop"))
                .is_none()
        );
        writer.apply_watcher_event(&Event::Delete(Compact::new(&service())));
        assert!(store.get(&key).is_none());
    }

    #[test]
    fn text_that_does_not_read_as_the_kind_is_absent() {
        let broken = Compact::<Service> {
            name: "finance".into(),
            namespace: None,
            text: "{\"spec\": 3}".into(),
            kind: PhantomData,
        };
        assert_eq!(broken.object(), None);
    }
}
