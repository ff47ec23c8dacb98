//! `/page/events`: the status page's live stream. It starts with every card the page shows, then
//! sends a card each time a Rollout changes (its resourceVersion moves) and, for a release in
//! flight, every few seconds so that its chart keeps reaching to now; `gone` when a Rollout leaves
//! the page, `signed-out` when the viewer's token stops opening it. The cards are the same
//! rendering as the page's, so the script only swaps them in.

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use kube::ResourceExt;
use serde_json::json;

use super::html::card_id;
use super::{MOST_CARDS, PageQuery, Viewer, card_of, reader, viewer, visible};
use crate::api::ApiState;
use crate::api::auth::Caller;

/// How often the stream looks at the cache.
const POLL: Duration = Duration::from_millis(250);
/// How often a release in flight is drawn again, its chart reaching to now.
const REDRAW_SECONDS: i64 = 5;

pub async fn cards(
    State(state): State<ApiState>,
    Query(query): Query<PageQuery>,
    headers: HeaderMap,
) -> Response {
    let (caller, credential) = match viewer(&state, &headers) {
        Viewer::Allowed { caller, credential } => (caller, credential),
        Viewer::Anonymous => {
            return crate::api::ApiError::unauthenticated("sign in first").into_response();
        }
        Viewer::Refused(err) => return err.into_response(),
    };
    if let Some(namespace) = &query.namespace
        && let Err(err) = caller.allow(namespace, crate::api::auth::Action::Read)
    {
        return err.into_response();
    }
    let watch = Watch {
        state,
        caller,
        credential,
        namespace: query.namespace,
        shown: HashMap::new(),
        queued: Vec::new(),
        ended: false,
    };
    Sse::new(events(watch))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

/// What one stream has sent, and what it has still to send.
struct Watch {
    state: ApiState,
    caller: Caller,
    credential: String,
    namespace: Option<String>,
    /// Card id → the fingerprint of the card last sent.
    shown: HashMap<String, String>,
    /// What to send, newest first: a card is rendered only as it goes out.
    queued: Vec<Pending>,
    ended: bool,
}

enum Pending {
    Card(std::sync::Arc<crate::crd::Rollout>),
    Gone(String),
    SignedOut,
}

impl Pending {
    fn event(self, state: &ApiState) -> Event {
        match self {
            Pending::Card(rollout) => {
                let id = card_id(
                    &rollout.namespace().unwrap_or_default(),
                    &rollout.name_any(),
                );
                let html = card_of(state, &rollout, chrono::Utc::now());
                let data = json!({ "id": id, "html": html }).to_string();
                Event::default().event("card").data(data)
            }
            Pending::Gone(id) => Event::default()
                .event("gone")
                .data(json!({ "id": id }).to_string()),
            Pending::SignedOut => Event::default().event("signed-out").data("{}"),
        }
    }
}

fn events(watch: Watch) -> impl Stream<Item = Result<Event, Infallible>> {
    futures::stream::unfold(watch, |mut watch| async move {
        loop {
            if let Some(pending) = watch.queued.pop() {
                let event = pending.event(&watch.state);
                return Some((Ok(event), watch));
            }
            if watch.ended || *watch.state.stopping.borrow() {
                return None;
            }
            watch.look();
            if !watch.queued.is_empty() {
                continue;
            }
            let mut stopping = watch.state.stopping.clone();
            tokio::select! {
                _ = tokio::time::sleep(POLL) => {}
                _ = stopping.changed() => {}
            }
        }
    })
}

impl Watch {
    /// Queues what changed since the last look, as the viewer may see it now: a token narrowed
    /// or revoked meanwhile narrows or ends the stream.
    fn look(&mut self) {
        if matches!(*self.state.auth, crate::api::Auth::Tokens(_)) {
            let now_allowed = reader(&self.state, &self.credential).and_then(|caller| {
                if let Some(namespace) = &self.namespace {
                    caller.allow(namespace, crate::api::auth::Action::Read)?;
                }
                Ok(caller)
            });
            match now_allowed {
                Ok(caller) => self.caller = caller,
                Err(_) => {
                    self.queued = vec![Pending::SignedOut];
                    self.ended = true;
                    return;
                }
            }
        }
        let now = chrono::Utc::now();
        let rollouts = visible(&self.state, &self.caller, self.namespace.as_deref());
        let mut current = HashMap::new();
        let mut found = Vec::new();
        for rollout in rollouts.into_iter().take(MOST_CARDS) {
            let id = card_id(
                &rollout.namespace().unwrap_or_default(),
                &rollout.name_any(),
            );
            let in_flight = rollout.status.as_ref().is_some_and(|s| s.phase.in_flight());
            let fingerprint = format!(
                "{}@{}",
                rollout.resource_version().unwrap_or_default(),
                if in_flight {
                    now.timestamp() / REDRAW_SECONDS
                } else {
                    0
                }
            );
            if self.shown.get(&id) != Some(&fingerprint) {
                found.push(Pending::Card(rollout));
            }
            current.insert(id, fingerprint);
        }
        for id in self.shown.keys().filter(|id| !current.contains_key(*id)) {
            found.push(Pending::Gone(id.clone()));
        }
        self.shown = current;
        // Queued newest first: popped in the order found.
        found.reverse();
        self.queued = found;
    }
}
