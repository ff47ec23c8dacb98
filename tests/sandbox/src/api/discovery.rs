//! Discovery: what kubectl and kube's clients read to learn which resources exist.
//! Served in the legacy (non-aggregated) form, which every client falls back to.

use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{ApiState, json_response};
use crate::store::{ApiError, Kinds, ResourceKind};

/// The Kubernetes version the sandbox claims: the oldest one sluice supports.
pub const KUBERNETES_MINOR: &str = "33";

pub fn answer(
    api: &ApiState,
    method: &Method,
    path: &str,
    _headers: &HeaderMap,
) -> Option<Response> {
    if method != Method::GET {
        return None;
    }
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let body = match segments.as_slice() {
        ["version"] => version(),
        ["healthz"] | ["readyz"] | ["livez"] => {
            return Some((StatusCode::OK, "ok").into_response());
        }
        ["api"] => json!({
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}],
        }),
        ["apis"] => group_list(&api.store.kinds()),
        ["apis", group] => {
            let groups = group_list(&api.store.kinds());
            let found = groups["groups"]
                .as_array()
                .and_then(|g| g.iter().find(|g| g["name"] == *group).cloned());
            match found {
                Some(mut g) => {
                    g["kind"] = json!("APIGroup");
                    g["apiVersion"] = json!("v1");
                    g
                }
                None => return Some(ApiError::not_found_path(path).into_response()),
            }
        }
        ["api", "v1"] => resource_list(&api.store.kinds(), "", "v1"),
        ["apis", group, version] => {
            let kinds = api.store.kinds();
            if kinds.in_group_version(group, version).next().is_none() {
                return Some(ApiError::not_found_path(path).into_response());
            }
            resource_list(&kinds, group, version)
        }
        ["openapi", "v3"] => openapi_root(&api.store.kinds()),
        ["openapi", "v3", "api", "v1"] => openapi_group_version(&api.store.kinds(), "", "v1"),
        ["openapi", "v3", "apis", group, version] => {
            let kinds = api.store.kinds();
            if kinds.in_group_version(group, version).next().is_none() {
                return Some(ApiError::not_found_path(path).into_response());
            }
            openapi_group_version(&kinds, group, version)
        }
        // No OpenAPI v2 document: kubectl falls back to its compiled-in types (see the README).
        ["openapi", ..] => return Some(ApiError::not_found_path(path).into_response()),
        _ => return None,
    };
    Some(json_response(StatusCode::OK, &body))
}

fn version() -> Value {
    json!({
        "major": "1",
        "minor": KUBERNETES_MINOR,
        "gitVersion": format!("v1.{KUBERNETES_MINOR}.0-sluice-sandbox"),
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.24.0",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

fn group_list(kinds: &Kinds) -> Value {
    let groups: Vec<Value> = kinds
        .groups()
        .into_iter()
        .map(|(name, versions)| {
            let entries: Vec<Value> = versions
                .iter()
                .map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v}))
                .collect();
            json!({"name": name, "versions": entries, "preferredVersion": entries[0]})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

fn resource_entry(kind: &ResourceKind) -> Value {
    let mut entry = json!({
        "name": kind.plural,
        "singularName": kind.singular,
        "namespaced": kind.namespaced,
        "kind": kind.kind,
        "verbs": kind.verbs(),
    });
    if !kind.short_names.is_empty() {
        entry["shortNames"] = json!(kind.short_names);
    }
    let mut categories = kind.categories.clone();
    if matches!(kind.plural.as_str(), "deployments" | "services") && !kind.custom {
        categories.push("all".into());
    }
    if !categories.is_empty() {
        entry["categories"] = json!(categories);
    }
    entry
}

fn resource_list(kinds: &Kinds, group: &str, version: &str) -> Value {
    let mut resources = Vec::new();
    for kind in kinds.in_group_version(group, version) {
        resources.push(resource_entry(kind));
        if kind.status_subresource {
            resources.push(json!({
                "name": format!("{}/status", kind.plural), "singularName": "", "namespaced": kind.namespaced,
                "kind": kind.kind, "verbs": ["get", "patch", "update"],
            }));
        }
        if kind.scale_subresource {
            resources.push(json!({
                "name": format!("{}/scale", kind.plural), "singularName": "", "namespaced": kind.namespaced,
                "group": "autoscaling", "version": "v1", "kind": "Scale", "verbs": ["get", "patch", "update"],
            }));
        }
    }
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources})
}

/// The OpenAPI v3 index: one document per group-version, as kubectl's validation looks them up.
fn openapi_root(kinds: &Kinds) -> Value {
    let mut paths = serde_json::Map::new();
    paths.insert(
        "api/v1".into(),
        json!({"serverRelativeURL": "/openapi/v3/api/v1"}),
    );
    for (group, versions) in kinds.groups() {
        for version in versions {
            let key = format!("apis/{group}/{version}");
            paths.insert(
                key.clone(),
                json!({"serverRelativeURL": format!("/{}/{key}", "openapi/v3")}),
            );
        }
    }
    json!({"paths": paths})
}

/// A group-version's OpenAPI v3 document, reduced to what clients consult: the PATCH operation of
/// every kind, tagged with its group-version-kind and declaring the `fieldValidation` parameter
/// (so kubectl validates on the server, which accepts the parameter; no schemas are served).
fn openapi_group_version(kinds: &Kinds, group: &str, version: &str) -> Value {
    let mut paths = serde_json::Map::new();
    let prefix = if group.is_empty() {
        format!("/api/{version}")
    } else {
        format!("/apis/{group}/{version}")
    };
    for kind in kinds.in_group_version(group, version) {
        let path = if kind.namespaced {
            format!("{prefix}/namespaces/{{namespace}}/{}/{{name}}", kind.plural)
        } else {
            format!("{prefix}/{}/{{name}}", kind.plural)
        };
        let parameters: Vec<Value> = ["dryRun", "fieldManager", "fieldValidation", "force"]
            .iter()
            .map(|name| json!({"name": name, "in": "query", "schema": {"type": "string"}}))
            .collect();
        paths.insert(
            path,
            json!({"patch": {
                "operationId": format!("patch{}", kind.kind),
                "x-kubernetes-action": "patch",
                "x-kubernetes-group-version-kind": {"group": group, "version": version, "kind": kind.kind},
                "parameters": parameters,
                "responses": {"200": {"description": "OK"}},
            }}),
        );
    }
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": format!("v1.{KUBERNETES_MINOR}.0")},
        "paths": paths,
        "components": {"schemas": {}},
    })
}
