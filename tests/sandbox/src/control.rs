//! The sandbox's own endpoints, beside the Kubernetes API: fault injection, the event history,
//! the simulated pods and the ingress metrics Prometheus scrapes.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::api::{ApiState, json_response};
use crate::faults::FaultRule;

pub fn router() -> Router<Arc<ApiState>> {
    Router::new()
        .route("/metrics", get(metrics))
        .route(
            "/sandbox/faults",
            get(list_faults).post(add_fault).delete(clear_faults),
        )
        .route("/sandbox/faults/{id}", delete(remove_fault))
        .route("/sandbox/watches/cut", post(cut_watches))
        .route("/sandbox/history", get(history))
        .route("/sandbox/pods", get(pods))
}

async fn metrics(State(api): State<Arc<ApiState>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        (api.metrics)(),
    )
        .into_response()
}

async fn list_faults(State(api): State<Arc<ApiState>>) -> Response {
    json_response(StatusCode::OK, &json!(api.faults.list()))
}

async fn add_fault(State(api): State<Arc<ApiState>>, body: axum::body::Bytes) -> Response {
    match serde_json::from_slice::<FaultRule>(&body) {
        Ok(rule) => json_response(StatusCode::CREATED, &json!({"id": api.faults.add(rule)})),
        Err(e) => json_response(
            StatusCode::BAD_REQUEST,
            &json!({"error": format!("a fault is {{\"verb\"?, \"resource\"?, \"action\": \"delay\"|\"fail\"|\"conflict\", \"millis\"|\"code\", \"times\"?}}: {e}")}),
        ),
    }
}

async fn clear_faults(State(api): State<Arc<ApiState>>) -> StatusCode {
    api.faults.clear();
    StatusCode::NO_CONTENT
}

async fn remove_fault(State(api): State<Arc<ApiState>>, Path(id): Path<u64>) -> StatusCode {
    if api.faults.remove(id) {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::NOT_FOUND
    }
}

async fn cut_watches(State(api): State<Arc<ApiState>>) -> StatusCode {
    api.faults.cut_watches();
    StatusCode::NO_CONTENT
}

/// `?resource=deployments&group=apps&namespace=x&name=y&since=RV`, every filter optional.
async fn history(
    State(api): State<Arc<ApiState>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let since: u64 = q.get("since").and_then(|s| s.parse().ok()).unwrap_or(0);
    let events: Vec<Value> = api
        .store
        .history()
        .iter()
        .filter(|e| e.resource_version > since)
        .filter(|e| q.get("group").is_none_or(|g| *g == e.resource.0))
        .filter(|e| q.get("resource").is_none_or(|r| *r == e.resource.1))
        .filter(|e| q.get("namespace").is_none_or(|n| *n == e.namespace))
        .filter(|e| q.get("name").is_none_or(|n| *n == e.name))
        .map(|e| {
            json!({
                "resourceVersion": e.resource_version,
                "type": e.event_type,
                "time": e.time.to_rfc3339(),
                "group": e.resource.0,
                "resource": e.resource.1,
                "namespace": e.namespace,
                "name": e.name,
                "writer": e.writer.as_deref(),
                "object": e.object.as_ref(),
            })
        })
        .collect();
    json_response(StatusCode::OK, &Value::Array(events))
}

async fn pods(State(api): State<Arc<ApiState>>) -> Json<Value> {
    let pods: Vec<Value> = api
        .workloads
        .pods()
        .into_iter()
        .map(|p| json!({"namespace": p.namespace, "name": p.name, "ready": p.ready, "labels": p.labels, "images": p.images}))
        .collect();
    Json(Value::Array(pods))
}
