//! The core's relations ([`sluice_strategies::index`]) kept from the watch streams: which Rollouts
//! an object concerns, and which canary objects each Rollout controls.

use std::sync::{Arc, Mutex, MutexGuard};

use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher::Event;
use kube::{Resource, ResourceExt};
use sluice_strategies::index::{Kind, ObjectKey, Relation, Relist, referenced_objects};
use sluice_strategies::objects::MANAGED_BY;

use super::observe;
use crate::crd::Rollout;

/// A Rollout by namespace and name.
type RolloutKey = (String, String);

/// Both relations, shared by the watch streams that feed them and the reconciles that read them.
#[derive(Default)]
pub struct Index {
    references: Mutex<Relation<RolloutKey, ObjectKey>>,
    /// Canary objects (labelled as sluice's) by the uid of the Rollout that controls them.
    owned: Mutex<Relation<ObjectKey, String>>,
}

/// A poisoned lock only means a feed panicked mid-update; the relation is still whole between
/// two calls of its methods, so it is used as it is.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Index {
    /// The Rollouts a change of this object concerns.
    pub fn rollouts_for(&self, kind: Kind, namespace: &str, name: &str) -> Vec<ObjectRef<Rollout>> {
        lock(&self.references)
            .members_of(&ObjectKey::new(kind, namespace, name))
            .into_iter()
            .map(|(namespace, name)| ObjectRef::new(&name).within(&namespace))
            .collect()
    }

    /// The names of the objects of `kind` that the Rollout `uid` controls.
    pub fn owned_by(&self, uid: &str, kind: Kind) -> Vec<String> {
        lock(&self.owned)
            .members_of(&uid.to_string())
            .into_iter()
            .filter(|key| key.kind == kind)
            .map(|key| key.name)
            .collect()
    }

    /// How many Rollouts reference something: what the index holds.
    pub fn rollouts(&self) -> usize {
        lock(&self.references).len()
    }

    /// Keeps the references from a Rollout watch covering `scope` (None: every namespace).
    pub fn rollout_feed(
        self: &Arc<Self>,
        scope: Option<String>,
    ) -> impl FnMut(&Event<Rollout>) + Send + 'static {
        let index = self.clone();
        feed(scope, move |rollout: &Rollout| {
            let namespace = rollout.namespace().unwrap_or_default();
            let targets = rollout
                .spec
                .names()
                .map(|names| {
                    referenced_objects(
                        &namespace,
                        &names.target,
                        &names.service,
                        names.ingress.as_deref(),
                    )
                })
                .unwrap_or_default();
            ((namespace, rollout.name_any()), targets)
        })
        .with(move |change| change.apply(&mut lock(&index.references), |(ns, _)| ns))
    }

    /// Keeps the owners from a watch of Services or Ingresses covering `scope`.
    pub fn owned_feed<K>(
        self: &Arc<Self>,
        kind: Kind,
        scope: Option<String>,
    ) -> impl FnMut(&Event<K>) + Send + 'static
    where
        K: Resource + Send + 'static,
    {
        let index = self.clone();
        feed(scope, move |object: &K| {
            let meta = object.meta();
            let namespace = meta.namespace.clone().unwrap_or_default();
            let key = ObjectKey::new(kind, &namespace, meta.name.as_deref().unwrap_or_default());
            let ours = meta
                .labels
                .as_ref()
                .and_then(|l| l.get(MANAGED_BY))
                .is_some_and(|v| v == "sluice");
            let owner = observe::rollout_controller(meta)
                .filter(|_| ours)
                .map(|o| o.uid.clone());
            (key, owner.into_iter().collect())
        })
        .with(move |change| change.apply(&mut lock(&index.owned), |key| &key.namespace))
    }
}

/// What one watch event does to a relation.
enum Change<M, T> {
    Set(M, Vec<T>),
    Remove(M),
    /// A fresh list is complete: members of this scope it did not show are gone.
    Relisted(Relist<M>, Option<String>),
}

impl<M, T> Change<M, T>
where
    M: Clone + Eq + std::hash::Hash + Ord,
    T: Clone + Eq + std::hash::Hash + Ord,
{
    fn apply(self, relation: &mut Relation<M, T>, namespace_of: impl Fn(&M) -> &String) {
        match self {
            Change::Set(member, targets) => relation.set(member, targets),
            Change::Remove(member) => relation.remove(&member),
            Change::Relisted(relist, scope) => relist.finish(relation, |member| {
                scope.as_ref().is_none_or(|s| namespace_of(member) == s)
            }),
        }
    }
}

/// Turns a watch's events into changes: `entry` reads an object's member and targets.
struct Feed<K, M, T, E> {
    scope: Option<String>,
    entry: E,
    relist: Option<Relist<M>>,
    _kind: std::marker::PhantomData<fn(&K) -> T>,
}

fn feed<K, M, T, E>(scope: Option<String>, entry: E) -> Feed<K, M, T, E>
where
    E: Fn(&K) -> (M, Vec<T>),
{
    Feed {
        scope,
        entry,
        relist: None,
        _kind: std::marker::PhantomData,
    }
}

impl<K, M, T, E> Feed<K, M, T, E>
where
    M: Clone + Eq + std::hash::Hash + Ord,
    E: Fn(&K) -> (M, Vec<T>),
{
    fn change(&mut self, event: &Event<K>) -> Option<Change<M, T>> {
        match event {
            Event::Init => {
                self.relist = Some(Relist::start());
                None
            }
            Event::InitApply(object) => {
                let (member, targets) = (self.entry)(object);
                if let Some(relist) = self.relist.as_mut() {
                    relist.saw(&member);
                }
                Some(Change::Set(member, targets))
            }
            Event::InitDone => self
                .relist
                .take()
                .map(|relist| Change::Relisted(relist, self.scope.clone())),
            Event::Apply(object) => {
                let (member, targets) = (self.entry)(object);
                Some(Change::Set(member, targets))
            }
            Event::Delete(object) => Some(Change::Remove((self.entry)(object).0)),
        }
    }

    /// The feed as a callback for the watch stream, each change handed to `apply`.
    fn with(
        mut self,
        mut apply: impl FnMut(Change<M, T>) + Send + 'static,
    ) -> impl FnMut(&Event<K>) + Send + 'static
    where
        K: 'static,
        M: Send + 'static,
        T: 'static,
        E: Send + 'static,
    {
        move |event| {
            if let Some(change) = self.change(event) {
                apply(change);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::Service;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
    use serde_json::json;

    use super::*;

    fn rollout(namespace: &str, name: &str, target: &str) -> Rollout {
        serde_json::from_value(json!({
            "apiVersion": "sluice.dev/v1alpha1", "kind": "Rollout",
            "metadata": {"name": name, "namespace": namespace, "uid": format!("uid-{name}")},
            "spec": {"targetRef": {"name": target}, "service": {"name": target, "port": 80},
                     "strategy": {"canary": {"ingressRef": {"name": "edge"}, "steps": [10]}}},
        }))
        .expect("a Rollout")
    }

    fn canary_service(namespace: &str, name: &str, owner_uid: &str, labelled: bool) -> Service {
        Service {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(namespace.into()),
                labels: labelled.then(|| [(MANAGED_BY.to_string(), "sluice".to_string())].into()),
                owner_references: Some(vec![OwnerReference {
                    api_version: "sluice.dev/v1alpha1".into(),
                    kind: "Rollout".into(),
                    name: "web".into(),
                    uid: owner_uid.into(),
                    controller: Some(true),
                    ..OwnerReference::default()
                }]),
                ..ObjectMeta::default()
            },
            ..Service::default()
        }
    }

    #[test]
    fn rollout_events_keep_what_each_object_wakes() {
        let index = Arc::new(Index::default());
        let mut feed = index.rollout_feed(None);
        feed(&Event::Apply(rollout("shop", "web", "web")));
        feed(&Event::Apply(rollout("shop", "api", "api")));
        let wakes = |kind, name| index.rollouts_for(kind, "shop", name);
        assert_eq!(
            wakes(Kind::Ingress, "edge"),
            vec![
                ObjectRef::new("api").within("shop"),
                ObjectRef::new("web").within("shop")
            ]
        );
        assert_eq!(
            wakes(Kind::Deployment, "web-blue"),
            vec![ObjectRef::new("web").within("shop")]
        );
        feed(&Event::Apply(rollout("shop", "web", "storefront")));
        assert!(wakes(Kind::Deployment, "web-blue").is_empty());
        assert_eq!(wakes(Kind::Deployment, "storefront-green").len(), 1);
        feed(&Event::Delete(rollout("shop", "api", "api")));
        assert_eq!(wakes(Kind::Ingress, "edge").len(), 1);
        assert_eq!(index.rollouts(), 1);
    }

    #[test]
    fn a_relist_of_one_namespace_forgets_only_its_own_missing_rollouts() {
        let index = Arc::new(Index::default());
        let mut shop = index.rollout_feed(Some("shop".into()));
        let mut erp = index.rollout_feed(Some("erp-system".into()));
        shop(&Event::Apply(rollout("shop", "web", "web")));
        shop(&Event::Apply(rollout("shop", "gone", "gone")));
        erp(&Event::Apply(rollout("erp-system", "gateway", "gateway")));
        shop(&Event::Init);
        shop(&Event::InitApply(rollout("shop", "web", "web")));
        assert_eq!(
            index.rollouts(),
            3,
            "nothing forgotten before the list is whole"
        );
        shop(&Event::InitDone);
        assert_eq!(index.rollouts(), 2);
        assert!(
            index
                .rollouts_for(Kind::Deployment, "shop", "gone")
                .is_empty()
        );
        assert_eq!(
            index
                .rollouts_for(Kind::Deployment, "erp-system", "gateway")
                .len(),
            1
        );
    }

    #[test]
    fn only_labelled_objects_a_rollout_controls_count_as_owned() {
        let index = Arc::new(Index::default());
        let mut feed = index.owned_feed::<Service>(Kind::Service, None);
        feed(&Event::Apply(canary_service(
            "shop",
            "web-canary",
            "uid-web",
            true,
        )));
        feed(&Event::Apply(canary_service(
            "shop", "copied", "uid-web", false,
        )));
        feed(&Event::Apply(canary_service(
            "shop",
            "api-canary",
            "uid-api",
            true,
        )));
        assert_eq!(index.owned_by("uid-web", Kind::Service), vec!["web-canary"]);
        assert!(index.owned_by("uid-web", Kind::Ingress).is_empty());
        feed(&Event::Delete(canary_service(
            "shop",
            "web-canary",
            "uid-web",
            true,
        )));
        assert!(index.owned_by("uid-web", Kind::Service).is_empty());
        assert_eq!(index.owned_by("uid-api", Kind::Service), vec!["api-canary"]);
    }
}
