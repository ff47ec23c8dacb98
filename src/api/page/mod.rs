//! The status page at `/` on the API address, for people with a browser: every Rollout the
//! viewer may read with its phase, weight and step, and the current release as a chart. It is
//! rendered on the server (HTML and SVG, no front-end build, nothing fetched from elsewhere) and
//! kept live by one small script that swaps in the cards the server streams on `/page/events`.
//!
//! Who may look: with `--api-insecure` anyone; otherwise a token with the `read` action, entered
//! once in the sign-in form and kept in an HttpOnly, SameSite=Strict cookie (no script can read
//! it, no other site can send it, and it never appears in a URL). The cookie opens these pages
//! only: the API itself still wants the `Authorization` header, so a forged cross-site request
//! can never issue a command.

mod chart;
mod html;
mod session;
mod stream;

use std::time::Instant;

use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use kube::ResourceExt;
use serde::Deserialize;

use super::auth::Caller;
use super::error::ApiError;
use super::rollouts::plan;
use super::{ApiState, Auth};
use crate::crd::Rollout;
use session::{from_the_page_itself, session_cookie, session_token};

/// Cards on one page: past this, the viewer chooses a namespace.
const MOST_CARDS: usize = 200;
/// No page may load anything from another origin, nor run a script inline.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The page's routes, merged into the API's router.
pub fn routes() -> axum::Router<ApiState> {
    axum::Router::new()
        .route("/", get(overview))
        .route("/sign-in", post(sign_in))
        .route("/sign-out", post(sign_out))
        .route("/page/events", get(stream::cards))
        .route("/page/live.js", get(script))
        .route("/page/style.css", get(style))
        .route("/page/icon.svg", get(icon))
        .route("/favicon.ico", get(icon))
}

#[derive(Debug, Deserialize)]
pub struct PageQuery {
    /// Only the Rollouts of this namespace.
    pub namespace: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct SignIn {
    token: String,
}

/// How a request to the page identified itself.
enum Viewer {
    /// Allowed: the caller, and the credential to check again while a stream lasts.
    Allowed { caller: Caller, credential: String },
    /// Nothing presented: the sign-in form.
    Anonymous,
    /// A credential that no longer opens the page (revoked, or cannot read).
    Refused(ApiError),
}

/// The viewer of a request: a bearer token in `Authorization` if there is one, else the session
/// cookie (a proxy in front may use `Authorization` for its own scheme).
fn viewer(state: &ApiState, headers: &HeaderMap) -> Viewer {
    if matches!(*state.auth, Auth::Insecure) {
        return admitted(state, String::new());
    }
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.starts_with("Bearer "))
        .map(str::to_string);
    let from_cookie = || session_token(headers).map(|token| format!("Bearer {token}"));
    match bearer.or_else(from_cookie) {
        Some(credential) => admitted(state, credential),
        None => Viewer::Anonymous,
    }
}

fn admitted(state: &ApiState, credential: String) -> Viewer {
    match reader(state, &credential) {
        Ok(caller) => match state.limiter.take(&caller.name, Instant::now()) {
            Ok(()) => Viewer::Allowed { caller, credential },
            Err(err) => Viewer::Refused(err),
        },
        Err(err) => Viewer::Refused(err),
    }
}

/// The caller of `credential` if it may read somewhere: what the page needs, checked again as a
/// stream goes on.
fn reader(state: &ApiState, credential: &str) -> Result<Caller, ApiError> {
    let caller = state.auth.authenticate(Some(credential))?;
    if caller.may_read_somewhere() {
        Ok(caller)
    } else {
        Err(ApiError::forbidden(format!(
            "token {} may not read Rollouts",
            caller.name
        )))
    }
}

/// An answer with its type, how long it may be cached, and no type sniffing.
fn typed(
    status: StatusCode,
    content_type: &'static str,
    cache: &'static str,
    body: impl IntoResponse,
) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// An HTML answer with the headers every page carries.
fn page(status: StatusCode, body: String) -> Response {
    let mut response = typed(status, "text/html; charset=utf-8", "no-store", body);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

fn see_other(location: &'static str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    response
        .headers_mut()
        .insert(header::LOCATION, HeaderValue::from_static(location));
    response
}

fn refused_page(err: &ApiError, headers: &HeaderMap) -> Response {
    let mut response = page(err.status, html::sign_in(Some(&err.message)));
    // A session that no longer opens the page is ended, so the form does not come back forever.
    if session_token(headers).is_some() && err.status != StatusCode::TOO_MANY_REQUESTS {
        response
            .headers_mut()
            .insert(header::SET_COOKIE, session_cookie(None, headers));
    }
    response
}

/// The Rollouts a caller may read, in `namespace` if given, sorted by namespace and name.
fn visible(
    state: &ApiState,
    caller: &Caller,
    namespace: Option<&str>,
) -> Vec<std::sync::Arc<Rollout>> {
    let mut rollouts: Vec<_> = state
        .rollouts
        .state()
        .into_iter()
        .filter(|r| {
            let own = r.namespace().unwrap_or_default();
            namespace.is_none_or(|n| n == own) && caller.may_read(&own)
        })
        .collect();
    rollouts.sort_by_cached_key(|r| (r.namespace(), r.name_any()));
    rollouts
}

/// A Rollout's card as the page shows it now.
fn card_of(state: &ApiState, rollout: &Rollout, now: chrono::DateTime<chrono::Utc>) -> String {
    let status = rollout.status.clone().unwrap_or_default();
    let (strategy, step_count) = match plan(state, rollout).map(|p| p.strategy) {
        Some(sluice_strategies::plan::StrategyPlan::Canary(canary)) => {
            (Some("canary"), canary.steps.len() as u32)
        }
        Some(sluice_strategies::plan::StrategyPlan::BlueGreen(_)) => (Some("blue/green"), 0),
        None => (None, 0),
    };
    let (namespace, name) = (rollout.namespace().unwrap_or_default(), rollout.name_any());
    html::card(
        &html::CardData {
            namespace: &namespace,
            name: &name,
            strategy,
            step_count,
            status: &status,
        },
        now,
    )
}

async fn overview(
    State(state): State<ApiState>,
    Query(query): Query<PageQuery>,
    headers: HeaderMap,
) -> Response {
    let caller = match viewer(&state, &headers) {
        Viewer::Allowed { caller, .. } => caller,
        Viewer::Anonymous => return page(StatusCode::OK, html::sign_in(None)),
        Viewer::Refused(err) => return refused_page(&err, &headers),
    };
    if let Some(namespace) = &query.namespace
        && let Err(err) = caller.allow(namespace, super::auth::Action::Read)
    {
        return page(
            err.status,
            html::layout("sluice", "", &html::escape(&err.message), false),
        );
    }
    let rollouts = visible(&state, &caller, query.namespace.as_deref());
    let now = chrono::Utc::now();
    let cards: Vec<String> = rollouts
        .iter()
        .take(MOST_CARDS)
        .map(|r| card_of(&state, r, now))
        .collect();
    let signed_in = (!caller.insecure).then_some(caller.name.as_str());
    page(
        StatusCode::OK,
        html::overview(
            &cards,
            rollouts.len(),
            query.namespace.as_deref(),
            signed_in,
        ),
    )
}

async fn sign_in(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Form(form): Form<SignIn>,
) -> Response {
    if !from_the_page_itself(&headers) {
        return page(
            StatusCode::FORBIDDEN,
            html::sign_in(Some("sign in from this page")),
        );
    }
    if matches!(*state.auth, Auth::Insecure) {
        return see_other("/");
    }
    // No limiter here: a shared one would let anyone lock everyone out, and guessing a token of
    // the entropy the README asks for is hopeless anyway.
    let token = form.token.trim();
    match reader(&state, &format!("Bearer {token}")) {
        Ok(caller) => {
            tracing::info!(token_name = %caller.name, "signed in to the status page");
            let mut response = see_other("/");
            response
                .headers_mut()
                .insert(header::SET_COOKIE, session_cookie(Some(token), &headers));
            response
        }
        Err(err) => page(err.status, html::sign_in(Some(&err.message))),
    }
}

async fn sign_out(headers: HeaderMap) -> Response {
    if !from_the_page_itself(&headers) {
        return page(
            StatusCode::FORBIDDEN,
            html::sign_in(Some("sign out from this page")),
        );
    }
    let mut response = see_other("/");
    response
        .headers_mut()
        .insert(header::SET_COOKIE, session_cookie(None, &headers));
    response
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    typed(StatusCode::OK, content_type, "public, max-age=300", body)
}

async fn script() -> Response {
    asset("text/javascript; charset=utf-8", include_str!("live.js"))
}

async fn icon() -> Response {
    asset("image/svg+xml", include_str!("icon.svg"))
}

async fn style() -> Response {
    asset("text/css; charset=utf-8", include_str!("style.css"))
}
