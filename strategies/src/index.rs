//! Which Rollouts an object concerns, and which objects a Rollout owns, without a scan.
//!
//! ```text
//!   Rollout shop/web ──references──▶ Deployment shop/web, shop/web-blue, shop/web-green
//!                                   Service    shop/web, shop/web-canary
//!                                   Ingress    shop/edge, shop/edge-web-canary
//!   Service shop/web-canary ──controlled by──▶ Rollout uid 7f3…
//! ```
//!
//! The controller keeps both relations from its watch streams (as linkerd's policy controller
//! keeps its index): a Rollout event replaces the names it references, an object event replaces
//! its owner. An event then costs the number of Rollouts it concerns, not the number of Rollouts
//! in the cluster. Nothing here reads the cluster: the shell feeds it.

use std::collections::{BTreeSet, HashMap};
use std::hash::Hash;

use crate::names;
use crate::status::Slot;

/// The kinds of objects a release reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Deployment,
    Service,
    Ingress,
}

/// An object by kind, namespace and name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
}

impl ObjectKey {
    pub fn new(kind: Kind, namespace: &str, name: &str) -> ObjectKey {
        ObjectKey {
            kind,
            namespace: namespace.to_string(),
            name: name.to_string(),
        }
    }
}

/// The objects whose changes a Rollout in `namespace` must see: its target and both slots, its
/// Service and canary Service, and (canary strategy) its Ingress and canary Ingress. The names
/// are the ones sluice writes (see [`names`]), so a trigger never misses an object it made.
pub fn referenced_objects(
    namespace: &str,
    target: &str,
    service: &str,
    ingress: Option<&str>,
) -> Vec<ObjectKey> {
    let deployment = |name: &str| ObjectKey::new(Kind::Deployment, namespace, name);
    let mut keys = vec![
        deployment(target),
        deployment(&names::slot_name(target, Slot::Blue)),
        deployment(&names::slot_name(target, Slot::Green)),
        ObjectKey::new(Kind::Service, namespace, service),
        ObjectKey::new(
            Kind::Service,
            namespace,
            &names::canary_service_name(service),
        ),
    ];
    if let Some(ingress) = ingress {
        keys.push(ObjectKey::new(Kind::Ingress, namespace, ingress));
        keys.push(ObjectKey::new(
            Kind::Ingress,
            namespace,
            &names::canary_ingress_name(ingress, service),
        ));
    }
    keys
}

/// A many-to-many relation from members to what they point at, kept both ways so that either
/// side is found without a scan. Each side's sets are sorted vectors: they hold a handful of
/// keys, where a B-tree set takes a whole node (eleven keys' room) for one, and there are a few
/// sets per Rollout.
#[derive(Debug, Clone)]
pub struct Relation<Member, Target> {
    forward: HashMap<Member, Box<[Target]>>,
    backward: HashMap<Target, Vec<Member>>,
}

impl<M, T> Default for Relation<M, T> {
    fn default() -> Self {
        Relation {
            forward: HashMap::new(),
            backward: HashMap::new(),
        }
    }
}

impl<M, T> Relation<M, T>
where
    M: Clone + Eq + Hash + Ord,
    T: Clone + Eq + Hash + Ord,
{
    /// `member` now points at exactly `targets` (none: it is forgotten).
    pub fn set(&mut self, member: M, targets: impl IntoIterator<Item = T>) {
        self.remove(&member);
        let mut targets: Vec<T> = targets.into_iter().collect();
        targets.sort();
        targets.dedup();
        if targets.is_empty() {
            return;
        }
        for target in &targets {
            let members = self
                .backward
                .entry(target.clone())
                .or_insert_with(|| Vec::with_capacity(1));
            if let Err(at) = members.binary_search(&member) {
                members.insert(at, member.clone());
            }
        }
        self.forward.insert(member, targets.into_boxed_slice());
    }

    /// Forgets `member`.
    pub fn remove(&mut self, member: &M) {
        let Some(targets) = self.forward.remove(member) else {
            return;
        };
        for target in targets.into_vec() {
            if let Some(members) = self.backward.get_mut(&target) {
                if let Ok(at) = members.binary_search(member) {
                    members.remove(at);
                }
                if members.is_empty() {
                    self.backward.remove(&target);
                }
            }
        }
    }

    /// The members that point at `target`, in order.
    pub fn members_of(&self, target: &T) -> Vec<M> {
        self.backward
            .get(target)
            .map(|members| members.to_vec())
            .unwrap_or_default()
    }

    /// What `member` points at, in order.
    pub fn targets_of(&self, member: &M) -> Vec<T> {
        self.forward
            .get(member)
            .map(|targets| targets.to_vec())
            .unwrap_or_default()
    }

    /// Forgets every member `keep` refuses: what a fresh list of a watch did not show again.
    pub fn retain(&mut self, keep: impl Fn(&M) -> bool) {
        let gone: Vec<M> = self.forward.keys().filter(|m| !keep(m)).cloned().collect();
        for member in gone {
            self.remove(&member);
        }
    }

    /// How many members point at something.
    pub fn len(&self) -> usize {
        self.forward.len()
    }

    pub fn is_empty(&self) -> bool {
        self.forward.is_empty()
    }
}

/// A watch's fresh list, as it arrives: the members it shows, so that those it no longer shows
/// can be forgotten when it ends.
#[derive(Debug)]
pub struct Relist<M> {
    seen: BTreeSet<M>,
}

impl<M: Clone + Eq + Hash + Ord> Relist<M> {
    pub fn start() -> Relist<M> {
        Relist {
            seen: BTreeSet::new(),
        }
    }

    pub fn saw(&mut self, member: &M) {
        self.seen.insert(member.clone());
    }

    /// The list is complete: of the members `in_scope` (the namespace a watch covers), those it
    /// did not show are gone.
    pub fn finish<T>(self, relation: &mut Relation<M, T>, in_scope: impl Fn(&M) -> bool)
    where
        T: Clone + Eq + Hash + Ord,
    {
        relation.retain(|member| !in_scope(member) || self.seen.contains(member));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Rollouts = Relation<(String, String), ObjectKey>;

    fn rollout(namespace: &str, name: &str) -> (String, String) {
        (namespace.to_string(), name.to_string())
    }

    fn key(kind: Kind, namespace: &str, name: &str) -> ObjectKey {
        ObjectKey::new(kind, namespace, name)
    }

    #[test]
    fn a_rollout_references_its_target_slots_services_and_ingresses_by_the_names_sluice_writes() {
        let keys = referenced_objects("shop", "web", "web-svc", Some("edge"));
        let expected = [
            key(Kind::Deployment, "shop", "web"),
            key(Kind::Deployment, "shop", "web-blue"),
            key(Kind::Deployment, "shop", "web-green"),
            key(Kind::Service, "shop", "web-svc"),
            key(Kind::Service, "shop", "web-svc-canary"),
            key(Kind::Ingress, "shop", "edge"),
            key(Kind::Ingress, "shop", "edge-web-svc-canary"),
        ];
        assert_eq!(keys, expected);
        let blue_green = referenced_objects("shop", "web", "web-svc", None);
        assert_eq!(blue_green, expected[..5]);
    }

    #[test]
    fn an_object_finds_every_rollout_that_references_it_and_no_other() {
        let mut index = Rollouts::default();
        let shared = key(Kind::Ingress, "shop", "edge");
        index.set(
            rollout("shop", "web"),
            referenced_objects("shop", "web", "web", Some("edge")),
        );
        index.set(
            rollout("shop", "api"),
            referenced_objects("shop", "api", "api", Some("edge")),
        );
        index.set(
            rollout("other", "web"),
            referenced_objects("other", "web", "web", Some("edge")),
        );
        assert_eq!(
            index.members_of(&shared),
            vec![rollout("shop", "api"), rollout("shop", "web")]
        );
        assert_eq!(
            index.members_of(&key(Kind::Deployment, "shop", "web-green")),
            vec![rollout("shop", "web")]
        );
        assert!(
            index
                .members_of(&key(Kind::Deployment, "shop", "web-red"))
                .is_empty()
        );
        assert_eq!(index.len(), 3);
        assert!(!index.is_empty());
    }

    #[test]
    fn a_changed_spec_replaces_what_the_rollout_references() {
        let mut index = Rollouts::default();
        index.set(
            rollout("shop", "web"),
            referenced_objects("shop", "web", "web", Some("edge")),
        );
        index.set(
            rollout("shop", "web"),
            referenced_objects("shop", "web", "web", Some("front")),
        );
        assert!(
            index
                .members_of(&key(Kind::Ingress, "shop", "edge"))
                .is_empty()
        );
        assert_eq!(
            index.members_of(&key(Kind::Ingress, "shop", "front-web-canary")),
            vec![rollout("shop", "web")]
        );
        assert_eq!(
            index.targets_of(&rollout("shop", "web")).len(),
            7,
            "old names gone, new ones there"
        );
    }

    #[test]
    fn a_removed_member_leaves_nothing_behind_and_setting_nothing_removes() {
        let mut index = Rollouts::default();
        let web = rollout("shop", "web");
        index.set(web.clone(), referenced_objects("shop", "web", "web", None));
        index.remove(&web);
        assert!(index.is_empty());
        assert!(index.backward.is_empty(), "no empty sets kept");
        index.set(web.clone(), referenced_objects("shop", "web", "web", None));
        index.set(web.clone(), Vec::new());
        assert!(index.is_empty() && index.backward.is_empty());
        assert!(index.targets_of(&web).is_empty());
    }

    #[test]
    fn a_relist_forgets_the_members_it_did_not_show_in_its_scope_only() {
        let mut index = Rollouts::default();
        for (namespace, name) in [("shop", "web"), ("shop", "api"), ("other", "web")] {
            index.set(
                rollout(namespace, name),
                referenced_objects(namespace, name, name, None),
            );
        }
        let mut relist = Relist::start();
        relist.saw(&rollout("shop", "api"));
        relist.finish(&mut index, |(namespace, _)| namespace == "shop");
        assert!(index.targets_of(&rollout("shop", "web")).is_empty());
        assert!(!index.targets_of(&rollout("shop", "api")).is_empty());
        assert!(
            !index.targets_of(&rollout("other", "web")).is_empty(),
            "another namespace's watch lists its own"
        );
        assert_eq!(index.len(), 2);
    }
}
