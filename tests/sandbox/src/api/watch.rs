//! Watch streams: newline-delimited JSON events, live from the store's log, with bookmarks,
//! timeouts, selector-aware ADDED/DELETED transitions, and cuts injected by the fault API.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;

use super::request::ResourcePath;
use super::{ApiState, table};
use crate::store::{
    ApiError, EventType, FieldSelector, LabelSelector, ResourceKind, WatchEvent, WatchStart,
    labels_of,
};

/// kube-apiserver's default: a watch ends after about half an hour and the client re-watches.
const DEFAULT_WATCH_TIMEOUT: Duration = Duration::from_secs(1800);

struct Filter {
    kind: Arc<ResourceKind>,
    version: String,
    namespace: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
    as_table: bool,
}

impl Filter {
    fn selects(&self, obj: &Value) -> bool {
        self.labels.matches(labels_of(obj)) && self.fields.matches(obj)
    }

    /// What a client watching with these selectors sees of one change, if anything.
    fn translate(&self, event: &WatchEvent) -> Option<(&'static str, Arc<Value>)> {
        if event.resource != self.kind.key()
            || self
                .namespace
                .as_ref()
                .is_some_and(|ns| *ns != event.namespace)
        {
            return None;
        }
        let now = self.selects(&event.object);
        let before = event.previous.as_ref().is_some_and(|p| self.selects(p));
        let kind = match (event.event_type, before, now) {
            (EventType::Deleted, _, true) => "DELETED",
            (EventType::Deleted, _, false) => return None,
            (_, true, true) => "MODIFIED",
            (_, false, true) => "ADDED",
            (_, true, false) => "DELETED",
            (_, false, false) => return None,
        };
        Some((kind, event.object.clone()))
    }

    /// One event line, `type` first as kube-apiserver writes it (a client can then decode the
    /// object without buffering it).
    fn frame(&self, event_type: &str, obj: &Arc<Value>) -> Bytes {
        let api_version = self.kind.api_version(&self.version);
        let mut line = Vec::with_capacity(1024);
        line.extend_from_slice(b"{\"type\":");
        let _ = serde_json::to_writer(&mut line, event_type);
        line.extend_from_slice(b",\"object\":");
        if self.as_table {
            let table =
                table::of_objects(&self.kind, &self.version, std::slice::from_ref(obj), None);
            let _ = serde_json::to_writer(&mut line, &table);
        } else if obj.get("apiVersion").and_then(Value::as_str) == Some(api_version.as_str()) {
            // Stored as served: written in place. Copying the object for every watcher of every
            // event was most of the cost of a wide watch fan-out.
            let _ = serde_json::to_writer(&mut line, obj.as_ref());
        } else {
            let mut obj = (**obj).clone();
            obj["apiVersion"] = json!(api_version);
            let _ = serde_json::to_writer(&mut line, &obj);
        }
        line.extend_from_slice(b"}\n");
        Bytes::from(line)
    }

    fn bookmark(&self, resource_version: u64, initial_events_end: bool) -> Bytes {
        let mut metadata = json!({"resourceVersion": resource_version.to_string()});
        if initial_events_end {
            metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let object = json!({"kind": self.kind.kind, "apiVersion": self.kind.api_version(&self.version), "metadata": metadata});
        let mut line =
            serde_json::to_vec(&json!({"type": "BOOKMARK", "object": object})).unwrap_or_default();
        line.push(b'\n');
        Bytes::from(line)
    }
}

fn expired_frame(err: &ApiError) -> Bytes {
    let mut line = serde_json::to_vec(&json!({"type": "ERROR", "object": err.status_body()}))
        .unwrap_or_default();
    line.push(b'\n');
    Bytes::from(line)
}

pub fn serve(
    api: &Arc<ApiState>,
    req: &ResourcePath,
    query: &HashMap<String, String>,
    as_table: bool,
) -> Result<Response, ApiError> {
    let filter = Filter {
        kind: req.kind.clone(),
        version: req.version.clone(),
        namespace: req.namespace.clone(),
        labels: LabelSelector::parse(query.get("labelSelector").map(String::as_str).unwrap_or(""))
            .map_err(|e| ApiError::bad_request(format!("unable to parse requirement: {e}")))?,
        fields: FieldSelector::parse(query.get("fieldSelector").map(String::as_str).unwrap_or(""))
            .map_err(|e| ApiError::bad_request(e.to_string()))?,
        as_table,
    };
    let send_initial = query.get("sendInitialEvents").is_some_and(|v| v == "true");
    let start = match query.get("resourceVersion").map(String::as_str) {
        None | Some("") | Some("0") => WatchStart::Current,
        Some(_) if send_initial => WatchStart::Current,
        Some(rv) => WatchStart::After(rv.parse().map_err(|_| {
            ApiError::bad_request(format!(
                "resourceVersion {rv:?} is not a valid resource version"
            ))
        })?),
    };
    let timeout =
        match query.get("timeoutSeconds") {
            Some(t) => Duration::from_secs(t.parse().map_err(|_| {
                ApiError::bad_request(format!("timeoutSeconds {t:?} is not a number"))
            })?),
            None => DEFAULT_WATCH_TIMEOUT,
        };
    let bookmarks = query
        .get("allowWatchBookmarks")
        .is_some_and(|v| v == "true");
    let subscription = match api.store.watch(&req.kind, req.namespace.as_deref(), start) {
        Ok(subscription) => subscription,
        // As the etcd-backed path does: the watch opens, then says 410 in an ERROR event, which is
        // what makes reflectors re-list.
        Err(err) if err.code == 410 => {
            let body = Body::from(expired_frame(&err));
            return Ok(stream_response(body));
        }
        Err(err) => return Err(err),
    };

    let mut preamble: Vec<Bytes> = Vec::new();
    for obj in subscription.initial.iter().filter(|o| filter.selects(o)) {
        preamble.push(filter.frame("ADDED", obj));
    }
    if send_initial && bookmarks {
        preamble.push(filter.bookmark(subscription.resource_version, true));
    }
    let mut last_sent = subscription.resource_version;
    for event in &subscription.backlog {
        if let Some((kind, obj)) = filter.translate(event) {
            preamble.push(filter.frame(kind, &obj));
        }
        last_sent = last_sent.max(event.resource_version);
    }

    let stream = WatchStream {
        filter,
        pending: preamble.into_iter(),
        live: subscription.live,
        cut: api.faults.watch_cuts(),
        last_sent,
        deadline: Instant::now() + timeout,
        bookmark_every: bookmarks.then_some(api.bookmark_interval),
        next_bookmark: bookmarks.then(|| Instant::now() + api.bookmark_interval),
    };
    let body = futures::stream::unfold(stream, |mut s| async move {
        let next = s.next().await?;
        Some((Ok::<Bytes, std::convert::Infallible>(next), s))
    });
    Ok(stream_response(Body::from_stream(body)))
}

fn stream_response(body: Body) -> Response {
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CACHE_CONTROL, "no-cache, private")
        .body(body)
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

struct WatchStream {
    filter: Filter,
    pending: std::vec::IntoIter<Bytes>,
    live: tokio::sync::broadcast::Receiver<Arc<WatchEvent>>,
    cut: tokio::sync::watch::Receiver<u64>,
    last_sent: u64,
    deadline: Instant,
    bookmark_every: Option<Duration>,
    next_bookmark: Option<Instant>,
}

impl WatchStream {
    async fn next(&mut self) -> Option<Bytes> {
        if let Some(frame) = self.pending.next() {
            return Some(frame);
        }
        loop {
            let bookmark_at = self.next_bookmark;
            tokio::select! {
                received = self.live.recv() => match received {
                    Ok(event) => {
                        if event.resource_version <= self.last_sent {
                            continue;
                        }
                        self.last_sent = event.resource_version;
                        if let Some((kind, obj)) = self.filter.translate(&event) {
                            return Some(self.filter.frame(kind, &obj));
                        }
                    }
                    // Fell behind the fan-out buffer or the store is gone: end the stream; the
                    // client re-watches from its last resourceVersion, still in the log.
                    Err(RecvError::Lagged(_)) | Err(RecvError::Closed) => return None,
                },
                _ = tokio::time::sleep_until(bookmark_at.unwrap_or(self.deadline)), if bookmark_at.is_some() => {
                    self.next_bookmark = self.bookmark_every.map(|every| Instant::now() + every);
                    return Some(self.filter.bookmark(self.last_sent, false));
                }
                _ = tokio::time::sleep_until(self.deadline) => return None,
                _ = self.cut.changed() => return None,
            }
        }
    }
}
