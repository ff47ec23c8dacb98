//! The object store: every object of every kind, one global resourceVersion, and the event log
//! that serves watches and the history tests read. All writes go through `commit`, under one lock,
//! so the order of events is the order of resourceVersions.

pub mod error;
pub mod kinds;
pub mod objects;
pub mod patch;
pub mod selector;
pub mod validate;
mod write;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::broadcast;

pub use error::ApiError;
pub use kinds::{Kinds, ResourceKey, ResourceKind};
pub use selector::{FieldSelector, LabelSelector};
pub use write::{DeleteOptions, PatchBody, Subresource, WriteOptions, scale_of};

/// How many events the log keeps by default: enough for a test's whole history and for watches
/// to resume after a cut; older resourceVersions answer 410 Gone, as after etcd compaction.
pub const DEFAULT_LOG_CAPACITY: usize = 50_000;
/// Watch fan-out buffer per subscriber; a subscriber that falls further behind is cut and resumes.
const BROADCAST_CAPACITY: usize = 16_384;
/// Paged lists kept for `continue` tokens.
const MAX_LIST_SNAPSHOTS: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

/// One committed change. `previous` lets filtered watches turn "stopped matching" into DELETED.
#[derive(Debug, Clone)]
pub struct WatchEvent {
    pub resource_version: u64,
    pub event_type: EventType,
    pub resource: ResourceKey,
    pub namespace: String,
    pub name: String,
    pub object: Arc<Value>,
    pub previous: Option<Arc<Value>>,
    pub time: DateTime<Utc>,
    /// The User-Agent of the request that made the change (or whose change caused it, as a
    /// cascade of deletes); None for the simulators' own writes. Audit logs record it so.
    pub writer: Option<Arc<str>>,
}

thread_local! {
    static WRITER: std::cell::RefCell<Option<Arc<str>>> = const { std::cell::RefCell::new(None) };
}

/// Runs `write` with every change it commits attributed to `writer`. The store's writes are
/// synchronous, so the thread that serves the request is the one that commits its changes.
pub fn written_by<T>(writer: Option<&str>, write: impl FnOnce() -> T) -> T {
    let previous = WRITER.with(|w| w.replace(writer.map(Arc::from)));
    let result = write();
    WRITER.with(|w| w.replace(previous));
    result
}

fn current_writer() -> Option<Arc<str>> {
    WRITER.with(|w| w.borrow().clone())
}

/// A list request's options.
#[derive(Debug, Default, Clone)]
pub struct ListQuery {
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    pub limit: Option<usize>,
    pub continue_token: Option<String>,
}

#[derive(Debug)]
pub struct ListResult {
    pub items: Vec<Arc<Value>>,
    pub resource_version: u64,
    pub continue_token: Option<String>,
    pub remaining: Option<usize>,
}

/// Where a watch starts.
#[derive(Debug, Clone, Copy)]
pub enum WatchStart {
    /// No resourceVersion (or "0"): synthetic ADDED for every current object, then live changes.
    Current,
    /// Every change after this resourceVersion.
    After(u64),
}

pub struct WatchSubscription {
    pub initial: Vec<Arc<Value>>,
    pub backlog: Vec<Arc<WatchEvent>>,
    pub live: broadcast::Receiver<Arc<WatchEvent>>,
    pub resource_version: u64,
}

type ObjectKey = (String, String);

struct ListSnapshot {
    token: u64,
    items: Vec<Arc<Value>>,
    resource_version: u64,
}

struct State {
    resource_version: u64,
    kinds: Kinds,
    objects: HashMap<ResourceKey, BTreeMap<ObjectKey, Arc<Value>>>,
    log: VecDeque<Arc<WatchEvent>>,
    log_capacity: usize,
    /// Events with a resourceVersion at or below this have left the log.
    compacted_through: u64,
    uid_state: u64,
    /// uids of live objects, for garbage collection's "is any owner left".
    uids: HashSet<String>,
    cluster_ips_allocated: u32,
    snapshots: VecDeque<ListSnapshot>,
    next_snapshot: u64,
}

pub struct Store {
    state: Mutex<State>,
    events: broadcast::Sender<Arc<WatchEvent>>,
}

pub fn now_rfc3339() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true)
}

impl Store {
    pub fn new(log_capacity: usize) -> Self {
        let (events, _) = broadcast::channel(BROADCAST_CAPACITY);
        let seed = Utc::now().timestamp_nanos_opt().unwrap_or_default() as u64;
        let store = Store {
            state: Mutex::new(State {
                resource_version: 0,
                kinds: Kinds::with_builtins(),
                objects: HashMap::new(),
                log: VecDeque::new(),
                log_capacity: log_capacity.max(1),
                compacted_through: 0,
                uid_state: seed,
                uids: HashSet::new(),
                cluster_ips_allocated: 0,
                snapshots: VecDeque::new(),
                next_snapshot: 1,
            }),
            events,
        };
        let namespaces = store
            .resolve("", "v1", "namespaces")
            .expect("namespaces is a builtin kind");
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            let body = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
            store
                .create(&namespaces, "", body, &WriteOptions::default())
                .expect("the built-in namespaces are valid and created once");
        }
        store
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock would be a bug in the store itself; the data is still
        // consistent per object, so keep serving rather than poisoning every later request.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn kinds(&self) -> Kinds {
        self.lock().kinds.clone()
    }

    pub fn resolve(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceKind>> {
        self.lock().kinds.resolve(group, version, plural)
    }

    pub fn resource_version(&self) -> u64 {
        self.lock().resource_version
    }

    pub fn get(
        &self,
        kind: &ResourceKind,
        namespace: &str,
        name: &str,
    ) -> Result<Arc<Value>, ApiError> {
        let state = self.lock();
        state.get(kind, namespace, name).cloned()
    }

    /// All objects of one kind, optionally in one namespace (no selectors, no paging): for the
    /// simulators, which read the store directly.
    pub fn list_all(&self, group: &str, plural: &str, namespace: Option<&str>) -> Vec<Arc<Value>> {
        let state = self.lock();
        let Some(objects) = state.objects.get(&(group.to_string(), plural.to_string())) else {
            return Vec::new();
        };
        match namespace {
            None => objects.values().cloned().collect(),
            Some(ns) => objects
                .range((ns.to_string(), String::new())..)
                .take_while(|((n, _), _)| n == ns)
                .map(|(_, v)| v.clone())
                .collect(),
        }
    }

    pub fn list(
        &self,
        kind: &ResourceKind,
        namespace: Option<&str>,
        query: &ListQuery,
    ) -> Result<ListResult, ApiError> {
        let mut state = self.lock();
        let (items, resource_version) = match &query.continue_token {
            Some(token) => state.resume_snapshot(token)?,
            None => {
                // Under the store's lock: read only the namespace asked for, and look inside
                // objects only when a selector needs it (without a selector, looking up every
                // object's labels was most of the time a 10,000-object list held the lock).
                let select_all = query.labels.is_empty() && query.fields.is_empty();
                let selected = |obj: &&Arc<Value>| {
                    select_all
                        || (query.labels.matches(labels_of(obj)) && query.fields.matches(obj))
                };
                let objects = state.objects.get(&kind.key());
                let matching: Vec<Arc<Value>> = match (objects, namespace) {
                    (None, _) => Vec::new(),
                    (Some(objects), None) => objects.values().filter(selected).cloned().collect(),
                    (Some(objects), Some(ns)) => objects
                        .range((ns.to_string(), String::new())..)
                        .take_while(|((n, _), _)| n == ns)
                        .map(|(_, obj)| obj)
                        .filter(selected)
                        .cloned()
                        .collect(),
                };
                (matching, state.resource_version)
            }
        };
        match query.limit {
            Some(limit) if limit > 0 && items.len() > limit => {
                let rest = items[limit..].to_vec();
                let remaining = rest.len();
                let token = state.store_snapshot(rest, resource_version);
                let mut page = items;
                page.truncate(limit);
                Ok(ListResult {
                    items: page,
                    resource_version,
                    continue_token: Some(token),
                    remaining: Some(remaining),
                })
            }
            _ => Ok(ListResult {
                items,
                resource_version,
                continue_token: None,
                remaining: None,
            }),
        }
    }

    /// Everything a watch needs, taken under one lock so no event falls between list and stream.
    pub fn watch(
        &self,
        kind: &ResourceKind,
        namespace: Option<&str>,
        start: WatchStart,
    ) -> Result<WatchSubscription, ApiError> {
        let state = self.lock();
        let live = self.events.subscribe();
        let key = kind.key();
        let in_scope = |ns: &str| namespace.is_none_or(|want| ns == want);
        match start {
            WatchStart::Current => {
                let initial = state
                    .objects
                    .get(&key)
                    .into_iter()
                    .flat_map(|m| m.iter())
                    .filter(|((ns, _), _)| in_scope(ns))
                    .map(|(_, obj)| obj.clone())
                    .collect();
                Ok(WatchSubscription {
                    initial,
                    backlog: Vec::new(),
                    live,
                    resource_version: state.resource_version,
                })
            }
            WatchStart::After(since) => {
                if since < state.compacted_through {
                    return Err(ApiError::gone(format!(
                        "too old resource version: {since} ({})",
                        state.compacted_through + 1
                    )));
                }
                let first = state.log.partition_point(|e| e.resource_version <= since);
                let backlog = state
                    .log
                    .range(first..)
                    .filter(|e| e.resource == key && in_scope(&e.namespace))
                    .cloned()
                    .collect();
                Ok(WatchSubscription {
                    initial: Vec::new(),
                    backlog,
                    live,
                    resource_version: state.resource_version,
                })
            }
        }
    }

    /// Every change still in the log, oldest first: what tests read to prove an order of events.
    pub fn history(&self) -> Vec<Arc<WatchEvent>> {
        self.lock().log.iter().cloned().collect()
    }

    /// Live changes from now on (the simulators' feed).
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<WatchEvent>> {
        self.events.subscribe()
    }
}

pub fn labels_of(obj: &Value) -> Option<&serde_json::Map<String, Value>> {
    obj.pointer("/metadata/labels").and_then(Value::as_object)
}

pub fn name_of(obj: &Value) -> &str {
    obj.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
}

pub fn namespace_of(obj: &Value) -> &str {
    obj.pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("")
}

impl State {
    fn get(
        &self,
        kind: &ResourceKind,
        namespace: &str,
        name: &str,
    ) -> Result<&Arc<Value>, ApiError> {
        let ns = if kind.namespaced { namespace } else { "" };
        self.objects
            .get(&kind.key())
            .and_then(|m| m.get(&(ns.to_string(), name.to_string())))
            .ok_or_else(|| ApiError::not_found(&kind.group, &kind.plural, name))
    }

    fn store_snapshot(&mut self, items: Vec<Arc<Value>>, resource_version: u64) -> String {
        let token = self.next_snapshot;
        self.next_snapshot += 1;
        if self.snapshots.len() >= MAX_LIST_SNAPSHOTS {
            self.snapshots.pop_front();
        }
        self.snapshots.push_back(ListSnapshot {
            token,
            items,
            resource_version,
        });
        format!("sandbox-{token}")
    }

    fn resume_snapshot(&mut self, token: &str) -> Result<(Vec<Arc<Value>>, u64), ApiError> {
        let id = token
            .strip_prefix("sandbox-")
            .and_then(|t| t.parse::<u64>().ok());
        let Some(id) = id else {
            return Err(ApiError::bad_request(format!(
                "continue token {token:?} is malformed"
            )));
        };
        let position = self.snapshots.iter().position(|s| s.token == id).ok_or_else(|| {
            ApiError::gone("The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.")
        })?;
        let snapshot = self
            .snapshots
            .remove(position)
            .expect("position was just found");
        Ok((snapshot.items, snapshot.resource_version))
    }

    /// A fresh uid (random-looking, unique within the process).
    fn next_uid(&mut self) -> String {
        self.uid_state = self.uid_state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mix = |mut z: u64| {
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        let a = mix(self.uid_state);
        let b = mix(a ^ self.uid_state);
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0x0fff,
            0x8000 | (b >> 48) & 0x3fff,
            b & 0xffff_ffff_ffff
        )
    }

    fn next_cluster_ip(&mut self) -> String {
        self.cluster_ips_allocated += 1;
        let n = self.cluster_ips_allocated + 10;
        format!("10.96.{}.{}", (n >> 8) & 0xff, n & 0xff)
    }
}
