//! The Kubernetes REST surface: paths parsed into a resource request, dispatched to the store,
//! answered with the bodies and codes kube-apiserver gives.

mod discovery;
mod request;
mod table;
mod watch;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::control;
use crate::faults::{Faults, Verb};
use crate::store::{
    ApiError, DeleteOptions, FieldSelector, LabelSelector, ListQuery, PatchBody, ResourceKind,
    Store, Subresource, WriteOptions, scale_of,
};
use crate::workload::Workloads;
use request::{ResourcePath, parse_path};

/// What every handler shares.
pub struct ApiState {
    pub store: Arc<Store>,
    pub faults: Arc<Faults>,
    pub workloads: Arc<Workloads>,
    pub metrics: Arc<dyn Fn() -> String + Send + Sync>,
    /// How often an idle watch with `allowWatchBookmarks` gets a BOOKMARK.
    pub bookmark_interval: Duration,
    /// The ServiceAccount tokens issued, and what RBAC decided for the requests that carried one.
    pub authority: Arc<crate::rbac::Authority>,
}

pub fn router(state: Arc<ApiState>) -> Router {
    Router::new()
        .merge(control::router())
        .fallback(handle)
        .with_state(state)
}

pub fn json_response(code: StatusCode, body: &Value) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    (code, [(header::CONTENT_TYPE, "application/json")], bytes).into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        json_response(code, &self.status_body())
    }
}

async fn handle(
    State(api): State<Arc<ApiState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let query: HashMap<String, String> = Query::try_from_uri(&uri)
        .map(|Query(q)| q)
        .unwrap_or_default();
    // No token: the sandbox's own kubeconfig, a cluster admin. A token: the ServiceAccount it was
    // issued for, under RBAC.
    let user = match authenticate(&api, &headers) {
        Ok(user) => user,
        Err(err) => return err.into_response(),
    };
    // Discovery is open to every authenticated user (the default system:discovery binding).
    if let Some(response) = discovery::answer(&api, &method, &path, &headers) {
        return response;
    }
    if let Some(response) = token_request(&api, user.as_ref(), &method, &path) {
        return response;
    }
    let kinds = api.store.kinds();
    let request = match parse_path(&kinds, &path) {
        Ok(request) => request,
        Err(err) => return err.into_response(),
    };
    let verb = Verb::of(
        &method,
        request.name.is_some(),
        query.get("watch").is_some_and(|w| w == "true" || w == "1"),
    );
    let Some(verb) = verb else {
        return ApiError::method_not_allowed(format!("{method} is not supported on {path}"))
            .into_response();
    };
    if let Some(user) = &user {
        if let Err(err) = authorize(&api, user, verb, &request) {
            return err.into_response();
        }
        // A server-side apply of an object that does not exist creates it, and kube-apiserver
        // asks RBAC for `create` too (patch.go: forceAllowCreate, createAuthorizerAttributes).
        let applying = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.starts_with("application/apply-patch"));
        let creates = verb == Verb::Patch
            && applying
            && api
                .store
                .get(
                    &request.kind,
                    request.namespace.as_deref().unwrap_or_default(),
                    request.name.as_deref().unwrap_or_default(),
                )
                .is_err();
        if creates && let Err(err) = authorize(&api, user, Verb::Create, &request) {
            return err.into_response();
        }
    }
    let fault = api.faults.check(verb, &request.kind.plural);
    if !fault.delay.is_zero() {
        tokio::time::sleep(fault.delay).await;
    }
    if let Some(err) = fault.error {
        return err.into_response();
    }
    let writer = headers
        .get(axum::http::header::USER_AGENT)
        .and_then(|agent| agent.to_str().ok());
    let served = crate::store::written_by(writer, || {
        serve(&api, verb, &request, &query, &headers, body)
    });
    match served {
        Ok(response) => response,
        Err(err) => err.into_response(),
    }
}

/// The user of a request's bearer token; None without one (the sandbox's admin). A token the
/// sandbox did not issue is a 401, as kube-apiserver answers it.
fn authenticate(
    api: &ApiState,
    headers: &HeaderMap,
) -> Result<Option<crate::rbac::User>, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match token.and_then(|t| api.authority.user_of(t)) {
        Some(user) => Ok(Some(user)),
        None => Err(ApiError {
            code: 401,
            reason: "Unauthorized",
            message: "Unauthorized".into(),
            details: None,
        }),
    }
}

/// RBAC's decision on one resource request of `user`, recorded; a 403 as kube-apiserver words it
/// when no rule allows it.
fn authorize(
    api: &ApiState,
    user: &crate::rbac::User,
    verb: Verb,
    request: &ResourcePath,
) -> Result<(), ApiError> {
    const RBAC: &str = "rbac.authorization.k8s.io";
    let list = |plural: &str| api.store.list_all(RBAC, plural, None);
    let (roles, cluster_roles, role_bindings, cluster_role_bindings) = (
        list("roles"),
        list("clusterroles"),
        list("rolebindings"),
        list("clusterrolebindings"),
    );
    let policy = crate::rbac::Policy {
        roles: &roles,
        cluster_roles: &cluster_roles,
        role_bindings: &role_bindings,
        cluster_role_bindings: &cluster_role_bindings,
    };
    let verb_word = verb.as_str();
    let attributes = crate::rbac::Attributes {
        verb: verb_word,
        group: &request.kind.group,
        resource: &request.kind.plural,
        subresource: match request.subresource {
            Subresource::Main => "",
            Subresource::Status => "status",
            Subresource::Scale => "scale",
        },
        namespace: request.namespace.as_deref().unwrap_or_default(),
        name: request.name.as_deref().unwrap_or_default(),
    };
    let allowed_by = crate::rbac::allowing_rules(&policy, user, &attributes);
    api.authority.record(crate::rbac::Decision {
        user: user.name.clone(),
        verb: verb_word.to_string(),
        group: attributes.group.to_string(),
        resource: attributes.resource.to_string(),
        subresource: attributes.subresource.to_string(),
        namespace: attributes.namespace.to_string(),
        name: attributes.name.to_string(),
        allowed_by: allowed_by.clone(),
    });
    if !allowed_by.is_empty() {
        return Ok(());
    }
    let mut details = json!({"kind": attributes.resource});
    if !attributes.group.is_empty() {
        details["group"] = json!(attributes.group);
    }
    if !attributes.name.is_empty() {
        details["name"] = json!(attributes.name);
    }
    Err(ApiError {
        code: 403,
        reason: "Forbidden",
        message: crate::rbac::forbidden_message(user, &attributes),
        details: Some(details),
    })
}

/// `POST /api/v1/namespaces/{ns}/serviceaccounts/{name}/token` (what `kubectl create token`
/// sends): a token for the ServiceAccount, for the sandbox's admin only.
fn token_request(
    api: &ApiState,
    user: Option<&crate::rbac::User>,
    method: &Method,
    path: &str,
) -> Option<Response> {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let [
        "api",
        "v1",
        "namespaces",
        namespace,
        "serviceaccounts",
        name,
        "token",
    ] = segments[..]
    else {
        return None;
    };
    if *method != Method::POST {
        return Some(
            ApiError::method_not_allowed(format!("{method} is not supported on {path}"))
                .into_response(),
        );
    }
    if let Some(user) = user {
        let message = format!(
            "serviceaccounts \"{name}\" is forbidden: User \"{}\" cannot create resource \"serviceaccounts/token\" in API group \"\" in the namespace \"{namespace}\"",
            user.name
        );
        let refused = ApiError {
            code: 403,
            reason: "Forbidden",
            message,
            details: Some(json!({"kind": "serviceaccounts", "name": name})),
        };
        return Some(refused.into_response());
    }
    if api
        .store
        .list_all("", "serviceaccounts", Some(namespace))
        .iter()
        .all(|sa| sa.pointer("/metadata/name").and_then(Value::as_str) != Some(name))
    {
        return Some(ApiError::not_found("", "serviceaccounts", name).into_response());
    }
    let token = api.authority.issue(namespace, name);
    let expires = chrono::Utc::now() + chrono::Duration::hours(1);
    let body = json!({
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"audiences": [], "expirationSeconds": 3600},
        "status": {"token": token, "expirationTimestamp": expires.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)},
    });
    Some(json_response(StatusCode::CREATED, &body))
}

fn serve(
    api: &Arc<ApiState>,
    verb: Verb,
    req: &ResourcePath,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let store = &api.store;
    let kind = &req.kind;
    let ns = req.namespace.as_deref().unwrap_or("");
    let name = req.name.as_deref().unwrap_or("");
    let write = WriteOptions {
        dry_run: query.get("dryRun").is_some_and(|d| d == "All"),
        strict_fields: query.get("fieldValidation").is_some_and(|v| v == "Strict"),
    };
    let respond = |code: StatusCode, obj: &Value| {
        object_response(code, kind, &req.version, req.subresource, obj)
    };
    match verb {
        Verb::Get => {
            let obj = store.get(kind, ns, name)?;
            if table::wanted(headers) && req.subresource == Subresource::Main {
                return Ok(json_response(
                    StatusCode::OK,
                    &table::of_objects(kind, &req.version, &[obj], None),
                ));
            }
            Ok(respond(StatusCode::OK, &obj))
        }
        Verb::List => {
            let list_query = list_query(query)?;
            let result = store.list(kind, req.namespace.as_deref(), &list_query)?;
            if table::wanted(headers) {
                let table = table::of_objects(kind, &req.version, &result.items, Some(&result));
                return Ok(json_response(StatusCode::OK, &table));
            }
            Ok(list_response(kind, &req.version, &result))
        }
        Verb::Watch => watch::serve(api, req, query, table::wanted(headers)),
        Verb::Create => {
            let obj = store.create(kind, ns, decode_body(headers, &body)?, &write)?;
            Ok(respond(StatusCode::CREATED, &obj))
        }
        Verb::Update => {
            let obj = store.update(
                kind,
                ns,
                name,
                decode_body(headers, &body)?,
                req.subresource,
                &write,
            )?;
            Ok(respond(StatusCode::OK, &obj))
        }
        Verb::Patch => {
            let patch = patch_body(headers, &body, query)?;
            let (obj, created) = store.patch(kind, ns, name, patch, req.subresource, &write)?;
            let code = if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            Ok(respond(code, &obj))
        }
        Verb::Delete => {
            let opts = delete_options(query, &body, write.dry_run)?;
            let obj = store.delete(kind, ns, name, &opts)?;
            Ok(respond(StatusCode::OK, &obj))
        }
        Verb::DeleteCollection => {
            let opts = delete_options(query, &body, write.dry_run)?;
            let result = store.list(kind, req.namespace.as_deref(), &list_query(query)?)?;
            let mut deleted = Vec::new();
            for obj in &result.items {
                let (ns, name) = (crate::store::namespace_of(obj), crate::store::name_of(obj));
                match store.delete(kind, ns, name, &opts) {
                    Ok(obj) => deleted.push(obj),
                    Err(err) if err.code == 404 => {}
                    Err(err) => return Err(err),
                }
            }
            let result = crate::store::ListResult {
                items: deleted,
                resource_version: store.resource_version(),
                continue_token: None,
                remaining: None,
            };
            Ok(list_response(kind, &req.version, &result))
        }
    }
}

/// The response carrying one object as served. Written in place when it is stored as served:
/// a copy of the object per response was a good part of the cost of a write.
fn object_response(
    code: StatusCode,
    kind: &ResourceKind,
    version: &str,
    sub: Subresource,
    obj: &Value,
) -> Response {
    let api_version = kind.api_version(version);
    if sub != Subresource::Scale
        && obj.get("apiVersion").and_then(Value::as_str) == Some(api_version.as_str())
    {
        return json_response(code, obj);
    }
    json_response(code, &versioned(kind, version, sub, obj))
}

/// The object as served at this version (and as a Scale for the scale subresource).
fn versioned(kind: &ResourceKind, version: &str, sub: Subresource, obj: &Value) -> Value {
    if sub == Subresource::Scale && obj.get("kind").and_then(Value::as_str) != Some("Scale") {
        return scale_of(obj);
    }
    let mut obj = obj.clone();
    if obj.get("kind").and_then(Value::as_str) != Some("Scale") {
        obj["apiVersion"] = json!(kind.api_version(version));
    }
    obj
}

fn list_response(
    kind: &ResourceKind,
    version: &str,
    result: &crate::store::ListResult,
) -> Response {
    let mut metadata = json!({"resourceVersion": result.resource_version.to_string()});
    if let Some(token) = &result.continue_token {
        metadata["continue"] = json!(token);
    }
    if let Some(remaining) = result.remaining {
        metadata["remainingItemCount"] = json!(remaining);
    }
    // Items are serialized straight into the body: a 10,000-object list costs one pass.
    let head = json!({"kind": kind.list_kind, "apiVersion": kind.api_version(version), "metadata": metadata});
    let mut out = serde_json::to_vec(&head).unwrap_or_default();
    out.pop(); // the closing brace: items follow
    out.extend_from_slice(b",\"items\":[");
    let api_version = kind.api_version(version);
    for (i, item) in result.items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        if item.get("apiVersion").and_then(Value::as_str) == Some(api_version.as_str()) {
            let _ = serde_json::to_writer(&mut out, item.as_ref());
        } else {
            let _ =
                serde_json::to_writer(&mut out, &versioned(kind, version, Subresource::Main, item));
        }
    }
    out.extend_from_slice(b"]}");
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(out))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

fn list_query(query: &HashMap<String, String>) -> Result<ListQuery, ApiError> {
    let labels = LabelSelector::parse(query.get("labelSelector").map(String::as_str).unwrap_or(""))
        .map_err(|e| ApiError::bad_request(format!("unable to parse requirement: {e}")))?;
    let fields = FieldSelector::parse(query.get("fieldSelector").map(String::as_str).unwrap_or(""))
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let limit = match query.get("limit") {
        Some(l) => Some(
            l.parse::<usize>()
                .map_err(|_| ApiError::bad_request(format!("limit {l:?} is not a number")))?,
        ),
        None => None,
    };
    let continue_token = query.get("continue").filter(|c| !c.is_empty()).cloned();
    Ok(ListQuery {
        labels,
        fields,
        limit,
        continue_token,
    })
}

/// A create/update body: JSON, or YAML (kubectl sends JSON; people with curl may not).
fn decode_body(headers: &HeaderMap, body: &Bytes) -> Result<Value, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    if content_type.contains("protobuf") || content_type.contains("cbor") {
        return Err(ApiError::unsupported_body_encoding(content_type));
    }
    let value: Value = if content_type.contains("yaml") {
        let text = std::str::from_utf8(body)
            .map_err(|_| ApiError::bad_request("the body is not UTF-8"))?;
        serde_saphyr::from_str(text)
            .map_err(|e| ApiError::bad_request(format!("the body is not valid YAML: {e}")))?
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("the body is not valid JSON: {e}")))?
    };
    if !value.is_object() {
        return Err(ApiError::bad_request("the body must be a JSON object"));
    }
    Ok(value)
}

fn patch_body(
    headers: &HeaderMap,
    body: &Bytes,
    query: &HashMap<String, String>,
) -> Result<PatchBody, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media = content_type.split(';').next().unwrap_or("").trim();
    let json = || -> Result<Value, ApiError> {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("the patch is not valid JSON: {e}")))
    };
    match media {
        "application/merge-patch+json" => Ok(PatchBody::Merge(json()?)),
        "application/json-patch+json" => Ok(PatchBody::Json(json()?)),
        "application/strategic-merge-patch+json" => Ok(PatchBody::Strategic(json()?)),
        "application/apply-patch+yaml" => {
            let manager = query.get("fieldManager").filter(|m| !m.is_empty()).cloned().ok_or_else(|| {
                ApiError::bad_request("PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch")
            })?;
            let force = query.get("force").is_some_and(|f| f == "true");
            let mut headers_yaml = HeaderMap::new();
            headers_yaml.insert(
                header::CONTENT_TYPE,
                "application/yaml".parse().expect("static header value"),
            );
            let config = decode_body(&headers_yaml, body)?;
            Ok(PatchBody::Apply {
                config,
                manager,
                force,
            })
        }
        other => Err(ApiError::unsupported_media_type(other)),
    }
}

fn delete_options(
    query: &HashMap<String, String>,
    body: &Bytes,
    dry_run: bool,
) -> Result<DeleteOptions, ApiError> {
    let body: Value = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("DeleteOptions are not valid JSON: {e}")))?
    };
    let policy = query
        .get("propagationPolicy")
        .map(String::as_str)
        .or_else(|| body.get("propagationPolicy").and_then(Value::as_str))
        .or_else(|| {
            body.get("orphanDependents")
                .and_then(Value::as_bool)
                .filter(|o| *o)
                .map(|_| "Orphan")
        });
    let body_dry_run = body
        .get("dryRun")
        .and_then(Value::as_array)
        .is_some_and(|d| d.iter().any(|v| v == "All"));
    Ok(DeleteOptions {
        dry_run: dry_run || body_dry_run,
        orphan: policy == Some("Orphan"),
        precondition_uid: body
            .pointer("/preconditions/uid")
            .and_then(Value::as_str)
            .map(str::to_string),
        precondition_resource_version: body
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
            .map(str::to_string),
    })
}
