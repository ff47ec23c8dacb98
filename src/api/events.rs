//! The event stream of one Rollout: Server-Sent Events of its release transitions as they happen
//! (phase, step, weight, each check), for CI logs and `sluice watch`. Each event's id is the
//! transition's `seq`, so a client that lost the stream resumes with `Last-Event-ID` and misses
//! nothing the status still holds (the current and the previous release).

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use sluice_strategies::status::Transition;

use super::auth::{Action, Caller};
use super::error::ApiError;
use super::rollouts::{find, transition};
use super::{ApiState, ErrorAnswers};
use crate::controller::observe::get;

/// How often the stream looks at the cache for new transitions.
const POLL: Duration = Duration::from_millis(100);

/// The Rollout's transitions: those after `Last-Event-ID` first, then each new one.
#[utoipa::path(
    get,
    path = "/api/v1/namespaces/{namespace}/rollouts/{name}/events",
    tag = "rollouts",
    params(
        ("namespace" = String, Path, description = "The Rollout's namespace", example = "erp-system"),
        ("name" = String, Path, description = "The Rollout's name", example = "reporting"),
        ("Last-Event-ID" = Option<u64>, Header, description = "Resume after this transition"),
    ),
    responses(
        (status = 200, description = "`text/event-stream`: events `transition` (data: a TransitionView, id: its seq); `gone` when the Rollout is deleted", content_type = "text/event-stream", body = String),
        ErrorAnswers,
    ),
    security(("bearer" = []))
)]
pub async fn rollout_events(
    State(state): State<ApiState>,
    caller: Caller,
    Path((namespace, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    caller.allow(&namespace, Action::Read)?;
    find(&state, &namespace, &name)?;
    let after = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    let stream = futures::stream::unfold(
        (state, after, Vec::<Event>::new(), false),
        move |(state, mut after, mut queued, ended)| {
            let (namespace, name) = (namespace.clone(), name.clone());
            async move {
                loop {
                    if let Some(event) = queued.pop() {
                        return Some((Ok(event), (state, after, queued, ended)));
                    }
                    if ended || *state.stopping.borrow() {
                        return None;
                    }
                    let Some(rollout) = get(&state.rollouts, &namespace, &name) else {
                        let gone = Event::default()
                            .event("gone")
                            .data(format!("{namespace}/{name}"));
                        return Some((Ok(gone), (state, after, queued, true)));
                    };
                    let history = rollout
                        .status
                        .as_ref()
                        .map(|s| s.history.as_slice())
                        .unwrap_or_default();
                    let new: Vec<&Transition> = history.iter().filter(|t| t.seq > after).collect();
                    if let Some(last) = new.last() {
                        after = last.seq;
                        // Queued newest first: popped oldest first.
                        queued = new.iter().rev().map(|t| event_of(t)).collect();
                        continue;
                    }
                    let mut stopping = state.stopping.clone();
                    tokio::select! {
                        _ = tokio::time::sleep(POLL) => {}
                        _ = stopping.changed() => {}
                    }
                }
            }
        },
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

fn event_of(t: &Transition) -> Event {
    let data = serde_json::to_string(&transition(t)).unwrap_or_else(|_| "{}".into());
    Event::default()
        .event("transition")
        .id(t.seq.to_string())
        .data(data)
}
