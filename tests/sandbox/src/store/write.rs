//! Writes: create, update, patch, delete, with the semantics a controller relies on
//! (resourceVersion preconditions, status subresource rules, generation, finalizers, garbage
//! collection, CRDs that start serving their kind).

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::Utc;
use serde_json::{Value, json};

use super::kinds::{ResourceKey, ResourceKind, kind_from_crd};
use super::objects::{Cause, apply_defaults, spec_changed, validate, validate_name};
use super::patch::{self, PatchError};
use super::validate::{self, service};
use super::{ApiError, EventType, State, Store, WatchEvent, name_of, now_rfc3339};

/// Which part of an object a write addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subresource {
    Main,
    Status,
    Scale,
}

#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    /// `dryRun=All`: validate and answer, persist nothing.
    pub dry_run: bool,
    /// `fieldValidation=Strict`: unknown fields of a custom object are a 400, not pruned.
    pub strict_fields: bool,
}

/// With `fieldValidation=Strict` the real server refuses a custom object's unknown fields with
/// the decoder's words rather than prune them.
fn check_unknown_fields(
    kind: &ResourceKind,
    obj: &Value,
    opts: &WriteOptions,
) -> Result<(), ApiError> {
    let Some(schema) = kind.schema.as_ref().filter(|_| opts.strict_fields) else {
        return Ok(());
    };
    let unknown = schema.unknown_fields(obj);
    if unknown.is_empty() {
        return Ok(());
    }
    let fields: Vec<String> = unknown
        .iter()
        .map(|f| format!("unknown field {f:?}"))
        .collect();
    Err(ApiError::bad_request(format!(
        "{kind} in version {version:?} cannot be handled as a {kind}: strict decoding error: {}",
        fields.join(", "),
        kind = kind.kind,
        version = kind.preferred_version(),
    )))
}

#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    pub dry_run: bool,
    /// `Orphan` keeps dependents (their ownerReferences to this object are removed).
    pub orphan: bool,
    pub precondition_uid: Option<String>,
    pub precondition_resource_version: Option<String>,
}

/// A PATCH body by its content type.
#[derive(Debug, Clone)]
pub enum PatchBody {
    Merge(Value),
    Json(Value),
    Strategic(Value),
    Apply {
        config: Value,
        manager: String,
        force: bool,
    },
}

fn patch_error(kind: &ResourceKind, name: &str, err: PatchError) -> ApiError {
    ApiError::invalid(
        &kind.kind,
        &kind.group,
        name,
        &[("patch".into(), err.to_string())],
    )
}

fn conflict_modified(kind: &ResourceKind, name: &str) -> ApiError {
    ApiError::conflict(
        &kind.group,
        &kind.plural,
        name,
        "the object has been modified; please apply your changes to the latest version and try again",
    )
}

fn metadata_mut(obj: &mut Value) -> &mut serde_json::Map<String, Value> {
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    obj["metadata"]
        .as_object_mut()
        .expect("metadata was just made an object")
}

fn resource_version_of(obj: &Value) -> Option<&str> {
    obj.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// Whether a write changes nothing: the objects are equal but for `metadata.resourceVersion`.
/// Compared in place: a copy of the object to strip that field cost every update a deep clone.
fn same_but_resource_version(current: &Value, next: &Value) -> bool {
    let (Some(current), Some(next)) = (current.as_object(), next.as_object()) else {
        return current == next;
    };
    let fields = |m: &serde_json::Map<String, Value>| {
        m.iter()
            .filter(|(key, _)| key.as_str() != "resourceVersion")
            .count()
    };
    let same_metadata = |a: &Value, b: &Value| match (a.as_object(), b.as_object()) {
        (Some(a), Some(b)) => {
            fields(a) == fields(b)
                && a.iter()
                    .filter(|(key, _)| key.as_str() != "resourceVersion")
                    .all(|(key, value)| b.get(key) == Some(value))
        }
        _ => a == b,
    };
    current.len() == next.len()
        && current.iter().all(|(key, value)| match next.get(key) {
            None => false,
            Some(other) if key == "metadata" => same_metadata(value, other),
            Some(other) => value == other,
        })
}

fn finalizers_empty(obj: &Value) -> bool {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty)
}

fn owner_uids(obj: &Value) -> Vec<&str> {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|r| r.get("uid").and_then(Value::as_str))
        .collect()
}

impl Store {
    pub fn create(
        &self,
        kind: &Arc<ResourceKind>,
        namespace: &str,
        body: Value,
        opts: &WriteOptions,
    ) -> Result<Arc<Value>, ApiError> {
        let mut state = self.lock();
        self.create_locked(&mut state, kind, namespace, body, opts)
    }

    fn create_locked(
        &self,
        state: &mut State,
        kind: &Arc<ResourceKind>,
        namespace: &str,
        mut body: Value,
        opts: &WriteOptions,
    ) -> Result<Arc<Value>, ApiError> {
        if !body.is_object() {
            return Err(ApiError::bad_request(format!(
                "the body of a {} must be a JSON object",
                kind.kind
            )));
        }
        check_type_meta(kind, &body)?;
        body["apiVersion"] = json!(kind.api_version(kind.preferred_version()));
        body["kind"] = json!(kind.kind);
        let meta = metadata_mut(&mut body);
        if meta
            .get("name")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            match meta.get("generateName").and_then(Value::as_str) {
                Some(prefix) if !prefix.is_empty() => {
                    let suffix = state.next_uid().replace('-', "");
                    let name = format!("{prefix}{}", &suffix[..5]);
                    meta.insert("name".into(), json!(name));
                }
                _ => {
                    return Err(ApiError::invalid(
                        &kind.kind,
                        &kind.group,
                        "",
                        &[(
                            "metadata.name".into(),
                            "Required value: name or generateName is required".into(),
                        )],
                    ));
                }
            }
        }
        let name = meta
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if kind.namespaced {
            let body_ns = meta.get("namespace").and_then(Value::as_str).unwrap_or("");
            if !body_ns.is_empty() && body_ns != namespace {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            meta.insert("namespace".into(), json!(namespace));
        } else {
            meta.remove("namespace");
        }
        if let Some(cause) = validate_name(kind, &name) {
            return Err(ApiError::invalid(&kind.kind, &kind.group, &name, &[cause]));
        }
        if kind.namespaced {
            let namespaces = state
                .kinds
                .get("", "namespaces")
                .cloned()
                .expect("namespaces is a builtin kind");
            match state.get(&namespaces, "", namespace) {
                Err(_) => return Err(ApiError::not_found("", "namespaces", namespace)),
                Ok(ns) if ns.pointer("/metadata/deletionTimestamp").is_some() => {
                    return Err(ApiError::injected(
                        403,
                        format!(
                            "{} \"{name}\" is forbidden: unable to create new content in namespace {namespace} because it is being terminated",
                            kind.plural
                        ),
                    ));
                }
                Ok(_) => {}
            }
        }
        if state.get(kind, namespace, &name).is_ok() {
            return Err(ApiError::already_exists(&kind.group, &kind.plural, &name));
        }
        let uid = state.next_uid();
        let meta = metadata_mut(&mut body);
        for system_field in [
            "resourceVersion",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "selfLink",
        ] {
            meta.remove(system_field);
        }
        meta.insert("uid".into(), json!(uid));
        meta.insert("creationTimestamp".into(), json!(now_rfc3339()));
        if body.get("spec").is_some() && kind.plural != "namespaces" {
            metadata_mut(&mut body).insert("generation".into(), json!(1));
        }
        if kind.status_subresource
            && kind.plural != "namespaces"
            && let Some(map) = body.as_object_mut()
        {
            map.remove("status");
        }
        check_unknown_fields(kind, &body, opts)?;
        let mut next_ip = || state.next_cluster_ip();
        apply_defaults(kind, &mut body, &mut next_ip);
        let mut causes = state.allocate_node_ports(kind, &mut body);
        if causes.is_empty() {
            causes = validate(kind, &body, None);
        }
        if !causes.is_empty() {
            return Err(ApiError::invalid(&kind.kind, &kind.group, &name, &causes));
        }
        let crd_kind = if is_crd(kind) {
            let declared = declared_kind(kind, &body, &name)?;
            body["status"] = crd_status(&declared);
            Some(declared)
        } else {
            None
        };
        if opts.dry_run {
            return Ok(Arc::new(body));
        }
        if let Some(declared) = crd_kind {
            state.kinds.insert(declared);
        }
        Ok(self.commit(state, kind, EventType::Added, body))
    }

    /// PUT: replace the main resource or one of its subresources.
    pub fn update(
        &self,
        kind: &Arc<ResourceKind>,
        namespace: &str,
        name: &str,
        body: Value,
        sub: Subresource,
        opts: &WriteOptions,
    ) -> Result<Arc<Value>, ApiError> {
        let mut state = self.lock();
        let current = state.get(kind, namespace, name)?.clone();
        if sub == Subresource::Scale {
            return self.write_scale(&mut state, kind, &current, &body, opts);
        }
        if let Some(body_name) = body.pointer("/metadata/name").and_then(Value::as_str)
            && body_name != name
        {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        self.replace_locked(&mut state, kind, &current, body, sub, opts)
    }

    /// Status of an object, written directly by the simulators (no HTTP round trip, no precondition).
    pub fn write_status(
        &self,
        kind: &Arc<ResourceKind>,
        namespace: &str,
        name: &str,
        status: Value,
    ) -> Result<Arc<Value>, ApiError> {
        let mut state = self.lock();
        let current = state.get(kind, namespace, name)?.clone();
        // A status write reads only the body's status: no need to copy the whole object into it.
        self.replace_locked(
            &mut state,
            kind,
            &current,
            json!({ "status": status }),
            Subresource::Status,
            &WriteOptions::default(),
        )
    }

    pub fn patch(
        &self,
        kind: &Arc<ResourceKind>,
        namespace: &str,
        name: &str,
        body: PatchBody,
        sub: Subresource,
        opts: &WriteOptions,
    ) -> Result<(Arc<Value>, bool), ApiError> {
        let mut state = self.lock();
        let current = match state.get(kind, namespace, name) {
            Ok(current) => current.clone(),
            Err(not_found) => {
                return match body {
                    PatchBody::Apply {
                        config, manager, ..
                    } if sub == Subresource::Main => {
                        check_type_meta(kind, &config)?;
                        let created =
                            patch::server_side_apply(None, &config, &manager, &now_rfc3339())
                                .map_err(|e| patch_error(kind, name, e))?;
                        if name_of(&created) != name {
                            return Err(ApiError::bad_request(format!(
                                "the name of the object ({}) does not match the name on the URL ({name})",
                                name_of(&created)
                            )));
                        }
                        Ok((
                            self.create_locked(&mut state, kind, namespace, created, opts)?,
                            true,
                        ))
                    }
                    _ => Err(not_found),
                };
            }
        };
        let target = if sub == Subresource::Scale {
            scale_of(&current)
        } else {
            (*current).clone()
        };
        let patched = match body {
            PatchBody::Merge(p) => {
                let mut t = target;
                patch::merge_patch(&mut t, &p);
                t
            }
            PatchBody::Json(p) => {
                let mut t = target;
                patch::json_patch(&mut t, &p).map_err(|e| patch_error(kind, name, e))?;
                t
            }
            PatchBody::Strategic(p) => {
                if kind.custom {
                    return Err(ApiError::unsupported_media_type(
                        "application/strategic-merge-patch+json is not supported for custom resources; use a merge patch",
                    ));
                }
                let mut t = target;
                patch::strategic_merge_patch(&mut t, &p).map_err(|e| patch_error(kind, name, e))?;
                t
            }
            PatchBody::Apply {
                config,
                manager,
                force: _,
            } => {
                check_type_meta(kind, &config)?;
                patch::server_side_apply(Some(&target), &config, &manager, &now_rfc3339())
                    .map_err(|e| patch_error(kind, name, e))?
            }
        };
        if sub == Subresource::Scale {
            return Ok((
                self.write_scale(&mut state, kind, &current, &patched, opts)?,
                false,
            ));
        }
        // A patch applies to the object as it is now; only a resourceVersion the patch itself
        // carries is a precondition.
        Ok((
            self.replace_locked(&mut state, kind, &current, patched, sub, opts)?,
            false,
        ))
    }

    fn write_scale(
        &self,
        state: &mut State,
        kind: &Arc<ResourceKind>,
        current: &Arc<Value>,
        scale: &Value,
        opts: &WriteOptions,
    ) -> Result<Arc<Value>, ApiError> {
        let name = name_of(current).to_string();
        let replicas = scale
            .pointer("/spec/replicas")
            .and_then(Value::as_i64)
            .ok_or_else(|| {
                ApiError::invalid(
                    "Scale",
                    "autoscaling",
                    &name,
                    &[("spec.replicas".into(), "Required value".into())],
                )
            })?;
        let mut body = (**current).clone();
        body["spec"]["replicas"] = json!(replicas);
        if let Some(rv) = resource_version_of(scale) {
            metadata_mut(&mut body).insert("resourceVersion".into(), json!(rv));
        }
        let updated = self.replace_locked(state, kind, current, body, Subresource::Main, opts)?;
        Ok(Arc::new(scale_of(&updated)))
    }

    /// The one path every update goes through: preconditions, subresource rules, defaults,
    /// validation, generation, no-op detection, finalizer completion.
    fn replace_locked(
        &self,
        state: &mut State,
        kind: &Arc<ResourceKind>,
        current: &Arc<Value>,
        mut body: Value,
        sub: Subresource,
        opts: &WriteOptions,
    ) -> Result<Arc<Value>, ApiError> {
        let name = name_of(current).to_string();
        if !body.is_object() {
            return Err(ApiError::bad_request(format!(
                "the body of a {} must be a JSON object",
                kind.kind
            )));
        }
        check_type_meta(kind, &body)?;
        if let Some(rv) = resource_version_of(&body)
            && Some(rv) != resource_version_of(current)
        {
            return Err(conflict_modified(kind, &name));
        }
        if let Some(uid) = body.pointer("/metadata/uid").and_then(Value::as_str)
            && Some(uid) != current.pointer("/metadata/uid").and_then(Value::as_str)
        {
            return Err(ApiError::conflict(
                &kind.group,
                &kind.plural,
                &name,
                "Precondition failed: UID in precondition does not match the UID in the object",
            ));
        }
        let mut next = match sub {
            Subresource::Status => {
                let mut next = (**current).clone();
                next["status"] = body.get("status").cloned().unwrap_or(Value::Null);
                if next["status"].is_null() {
                    next.as_object_mut().map(|m| m.remove("status"));
                }
                next
            }
            _ => {
                if kind.status_subresource {
                    match current.get("status") {
                        Some(status) => body["status"] = status.clone(),
                        None => {
                            body.as_object_mut().map(|m| m.remove("status"));
                        }
                    }
                }
                body
            }
        };
        next["apiVersion"] = current["apiVersion"].clone();
        next["kind"] = current["kind"].clone();
        let meta = metadata_mut(&mut next);
        for system_field in [
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
        ] {
            match current.pointer(&format!("/metadata/{system_field}")) {
                Some(value) => meta.insert(system_field.into(), value.clone()),
                None => meta.remove(system_field),
            };
        }
        meta.remove("resourceVersion");
        if !meta.contains_key("managedFields")
            && let Some(managed) = current.pointer("/metadata/managedFields")
        {
            meta.insert("managedFields".into(), managed.clone());
        }
        if kind.group.is_empty() && kind.plural == "services" {
            service::carry_over(&mut next, current);
        }
        check_unknown_fields(kind, &next, opts)?;
        let mut next_ip = || state.next_cluster_ip();
        apply_defaults(kind, &mut next, &mut next_ip);
        let mut causes = state.allocate_node_ports(kind, &mut next);
        if causes.is_empty() {
            causes = validate(kind, &next, Some(current));
        }
        if !causes.is_empty() {
            return Err(ApiError::invalid(&kind.kind, &kind.group, &name, &causes));
        }
        if spec_changed(current, &next) {
            let generation = current
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            metadata_mut(&mut next).insert("generation".into(), json!(generation + 1));
        }
        // A CRD whose spec changes serves its kind anew (a new schema applies from now on).
        let crd_kind = if is_crd(kind) && current.get("spec") != next.get("spec") {
            Some(declared_kind(kind, &next, &name)?)
        } else {
            None
        };
        if same_but_resource_version(current, &next) {
            return Ok(current.clone());
        }
        if opts.dry_run {
            return Ok(Arc::new(next));
        }
        if next.pointer("/metadata/deletionTimestamp").is_some()
            && finalizers_empty(&next)
            && kind.plural != "namespaces"
        {
            let deleted = self.commit(state, kind, EventType::Modified, next);
            return Ok(self.remove_locked(state, kind, &deleted, false));
        }
        let committed = self.commit(state, kind, EventType::Modified, next);
        if let Some(declared) = crd_kind {
            state.reprune_objects(&declared);
            state.kinds.insert(declared);
        }
        Ok(committed)
    }

    pub fn delete(
        &self,
        kind: &Arc<ResourceKind>,
        namespace: &str,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<Arc<Value>, ApiError> {
        let mut state = self.lock();
        let current = state.get(kind, namespace, name)?.clone();
        if let Some(uid) = &opts.precondition_uid
            && Some(uid.as_str()) != current.pointer("/metadata/uid").and_then(Value::as_str)
        {
            return Err(ApiError::conflict(
                &kind.group,
                &kind.plural,
                name,
                "Precondition failed: UID in precondition does not match the UID in the object",
            ));
        }
        if let Some(rv) = &opts.precondition_resource_version
            && Some(rv.as_str()) != resource_version_of(&current)
        {
            return Err(conflict_modified(kind, name));
        }
        if opts.dry_run {
            return Ok(current);
        }
        Ok(self.delete_locked(&mut state, kind, &current, opts.orphan))
    }

    /// Deletes now, or marks for deletion while finalizers remain (namespaces: while content remains).
    fn delete_locked(
        &self,
        state: &mut State,
        kind: &Arc<ResourceKind>,
        current: &Arc<Value>,
        orphan: bool,
    ) -> Arc<Value> {
        let terminating = current.pointer("/metadata/deletionTimestamp").is_some();
        if kind.plural == "namespaces" {
            let marked = if terminating {
                current.clone()
            } else {
                let mut next = (**current).clone();
                metadata_mut(&mut next).insert("deletionTimestamp".into(), json!(now_rfc3339()));
                next["status"]["phase"] = json!("Terminating");
                self.commit(state, kind, EventType::Modified, next)
            };
            self.empty_namespace(state, name_of(current));
            return self
                .finish_namespace(state, name_of(current))
                .unwrap_or(marked);
        }
        if !finalizers_empty(current) {
            if terminating {
                return current.clone();
            }
            let mut next = (**current).clone();
            let meta = metadata_mut(&mut next);
            meta.insert("deletionTimestamp".into(), json!(now_rfc3339()));
            meta.insert("deletionGracePeriodSeconds".into(), json!(0));
            return self.commit(state, kind, EventType::Modified, next);
        }
        self.remove_locked(state, kind, current, orphan)
    }

    /// Removes an object for good, then what depended on it: garbage collection (background
    /// cascade, done at once), the kind of a CRD, the contents of a namespace.
    fn remove_locked(
        &self,
        state: &mut State,
        kind: &Arc<ResourceKind>,
        current: &Arc<Value>,
        orphan: bool,
    ) -> Arc<Value> {
        let removed = self.commit(state, kind, EventType::Deleted, (**current).clone());
        let uid = current
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if kind.plural == "customresourcedefinitions"
            && let Ok(declared) = kind_from_crd(current)
        {
            self.drop_kind(state, &declared.key());
        }
        self.collect_dependents(state, &uid, orphan);
        if kind.namespaced {
            let ns = current
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            self.finish_namespace(state, &ns);
        }
        removed
    }

    fn collect_dependents(&self, state: &mut State, owner_uid: &str, orphan: bool) {
        if owner_uid.is_empty() {
            return;
        }
        let mut dependents = Vec::new();
        for (key, objects) in &state.objects {
            for obj in objects.values() {
                if owner_uids(obj).contains(&owner_uid) {
                    dependents.push((key.clone(), obj.clone()));
                }
            }
        }
        for (key, obj) in dependents {
            let Some(kind) = state.kinds.get(&key.0, &key.1).cloned() else {
                continue;
            };
            let mut next = (*obj).clone();
            if let Some(refs) = next
                .pointer_mut("/metadata/ownerReferences")
                .and_then(Value::as_array_mut)
            {
                refs.retain(|r| r.get("uid").and_then(Value::as_str) != Some(owner_uid));
            }
            let owners_left = owner_uids(&next).iter().any(|uid| state.uid_exists(uid));
            if orphan || owners_left {
                // As the real garbage collector does: the dangling reference goes, the object stays.
                self.commit(state, &kind, EventType::Modified, next);
                continue;
            }
            self.delete_locked(state, &kind, &obj, false);
        }
    }

    fn drop_kind(&self, state: &mut State, key: &ResourceKey) {
        let Some(kind) = state.kinds.get(&key.0, &key.1).cloned() else {
            return;
        };
        let objects: Vec<Arc<Value>> = state
            .objects
            .get(key)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default();
        for obj in objects {
            self.remove_locked(state, &kind, &obj, false);
        }
        state.kinds.remove(key);
        state.objects.remove(key);
    }

    fn empty_namespace(&self, state: &mut State, namespace: &str) {
        let namespaced: Vec<Arc<ResourceKind>> = state
            .kinds
            .all()
            .filter(|k| k.namespaced)
            .cloned()
            .collect();
        for kind in namespaced {
            let objects: Vec<Arc<Value>> = state
                .objects
                .get(&kind.key())
                .into_iter()
                .flat_map(|m| {
                    m.range((namespace.to_string(), String::new())..)
                        .take_while(|((ns, _), _)| ns == namespace)
                })
                .map(|(_, obj)| obj.clone())
                .collect();
            for obj in objects {
                self.delete_locked(state, &kind, &obj, false);
            }
        }
    }

    /// A terminating namespace goes once nothing is left in it.
    fn finish_namespace(&self, state: &mut State, namespace: &str) -> Option<Arc<Value>> {
        let kind = state.kinds.get("", "namespaces").cloned()?;
        let ns = state.get(&kind, "", namespace).ok()?.clone();
        ns.pointer("/metadata/deletionTimestamp")?;
        let has_content = state.objects.iter().any(|((_, plural), objects)| {
            plural != "namespaces"
                && objects
                    .range((namespace.to_string(), String::new())..)
                    .next()
                    .is_some_and(|((n, _), _)| n == namespace)
        });
        if has_content {
            return None;
        }
        Some(self.commit(state, &kind, EventType::Deleted, (*ns).clone()))
    }

    /// Stamps the next resourceVersion, stores (or removes) the object, logs and broadcasts.
    fn commit(
        &self,
        state: &mut State,
        kind: &ResourceKind,
        event_type: EventType,
        mut obj: Value,
    ) -> Arc<Value> {
        state.resource_version += 1;
        let rv = state.resource_version;
        metadata_mut(&mut obj).insert("resourceVersion".into(), json!(rv.to_string()));
        let obj = Arc::new(obj);
        let namespace = if kind.namespaced {
            super::namespace_of(&obj).to_string()
        } else {
            String::new()
        };
        let name = name_of(&obj).to_string();
        let objects = state.objects.entry(kind.key()).or_default();
        let key = (namespace.clone(), name.clone());
        let previous = match event_type {
            EventType::Deleted => objects.remove(&key),
            _ => objects.insert(key, obj.clone()),
        };
        match (&previous, event_type) {
            (_, EventType::Deleted) => state.forget_uid(&obj),
            (None, _) => state.remember_uid(&obj),
            _ => {}
        }
        let event = Arc::new(WatchEvent {
            resource_version: rv,
            event_type,
            resource: kind.key(),
            namespace,
            name,
            object: obj.clone(),
            previous,
            time: Utc::now(),
            writer: super::current_writer(),
        });
        if state.log.len() >= state.log_capacity
            && let Some(dropped) = state.log.pop_front()
        {
            state.compacted_through = dropped.resource_version;
        }
        state.log.push_back(event.clone());
        // No subscriber is fine: nobody is watching.
        let _ = self.events.send(event);
        obj
    }
}

impl State {
    /// The real server prunes and defaults custom objects when it reads them, so a schema
    /// change shows in objects stored before it. Stored here once, in place: no event, the same
    /// resourceVersion, as a read-time change is on a real cluster.
    fn reprune_objects(&mut self, kind: &ResourceKind) {
        let Some(schema) = &kind.schema else { return };
        let Some(objects) = self.objects.get_mut(&kind.key()) else {
            return;
        };
        for obj in objects.values_mut() {
            let mut next = (**obj).clone();
            schema.prune_and_default(&mut next);
            if next != **obj {
                *obj = Arc::new(next);
            }
        }
    }

    /// Node ports for a Service that needs them, unique among all Services but itself.
    fn allocate_node_ports(&self, kind: &ResourceKind, obj: &mut Value) -> Vec<Cause> {
        let is_service = kind.group.is_empty() && kind.plural == "services";
        if !(is_service && service::allocates_node_ports(obj)) {
            return Vec::new();
        }
        let me = (
            super::namespace_of(obj).to_string(),
            name_of(obj).to_string(),
        );
        let taken: BTreeSet<i64> = self
            .objects
            .get(&kind.key())
            .into_iter()
            .flat_map(|services| services.iter())
            .filter(|(key, _)| **key != me)
            .flat_map(|(_, other)| service::node_ports_held(other))
            .collect();
        service::allocate_node_ports(obj, &taken)
    }

    fn uid_exists(&self, uid: &str) -> bool {
        self.uids.contains(uid)
    }

    fn remember_uid(&mut self, obj: &Value) {
        if let Some(uid) = obj.pointer("/metadata/uid").and_then(Value::as_str) {
            self.uids.insert(uid.to_string());
        }
    }

    fn forget_uid(&mut self, obj: &Value) {
        if let Some(uid) = obj.pointer("/metadata/uid").and_then(Value::as_str) {
            self.uids.remove(uid);
        }
    }
}

fn is_crd(kind: &ResourceKind) -> bool {
    kind.group == "apiextensions.k8s.io" && kind.plural == "customresourcedefinitions"
}

/// The kind a CRD declares, its schema compiled; 422 when the CRD or its schema is refused.
fn declared_kind(kind: &ResourceKind, crd: &Value, name: &str) -> Result<ResourceKind, ApiError> {
    let invalid = |causes: &[Cause]| ApiError::invalid(&kind.kind, &kind.group, name, causes);
    let mut declared = kind_from_crd(crd).map_err(|why| invalid(&[("spec".into(), why)]))?;
    if format!("{}.{}", declared.plural, declared.group) != name {
        let why = format!("Invalid value: {name:?}: must be spec.names.plural+\".\"+spec.group");
        return Err(invalid(&[("metadata.name".into(), why)]));
    }
    declared.schema = validate::crd::compile(crd)
        .map_err(|causes| invalid(&causes))?
        .map(Arc::new);
    Ok(declared)
}

/// A body's apiVersion/kind, when given, must name the kind of the URL.
fn check_type_meta(kind: &ResourceKind, body: &Value) -> Result<(), ApiError> {
    if let Some(body_kind) = body.get("kind").and_then(Value::as_str)
        && body_kind != kind.kind
        && !(kind.plural == "deployments" && body_kind == "Scale")
    {
        return Err(ApiError::bad_request(format!(
            "the kind of the object ({body_kind}) does not match the resource {} ({})",
            kind.plural, kind.kind
        )));
    }
    if let Some(api_version) = body.get("apiVersion").and_then(Value::as_str) {
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        if body.get("kind").and_then(Value::as_str) != Some("Scale")
            && (group != kind.group || !kind.serves(version))
        {
            return Err(ApiError::bad_request(format!(
                "the apiVersion of the object ({api_version}) is not served for {}",
                kind.plural
            )));
        }
    }
    Ok(())
}

fn crd_status(kind: &ResourceKind) -> Value {
    let now = now_rfc3339();
    json!({
        "acceptedNames": {"kind": kind.kind, "listKind": kind.list_kind, "plural": kind.plural, "singular": kind.singular, "shortNames": kind.short_names},
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": now},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": now},
        ],
        "storedVersions": [kind.preferred_version()],
    })
}

/// The `autoscaling/v1` Scale view of a Deployment.
pub fn scale_of(obj: &Value) -> Value {
    let meta = &obj["metadata"];
    let selector = obj
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .map(|labels| {
            labels
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"],
            "resourceVersion": meta["resourceVersion"], "creationTimestamp": meta["creationTimestamp"],
        },
        "spec": {"replicas": obj.pointer("/spec/replicas").cloned().unwrap_or(json!(0))},
        "status": {"replicas": obj.pointer("/status/replicas").cloned().unwrap_or(json!(0)), "selector": selector},
    })
}
