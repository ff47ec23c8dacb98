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

/// The cookie that holds the viewer's token.
pub const SESSION_COOKIE: &str = "sluice_session";
/// How long a browser keeps the session: a working day.
const SESSION_SECONDS: u32 = 12 * 3600;
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

/// The viewer of a request: the `Authorization` header if it has one, else the session cookie.
fn viewer(state: &ApiState, headers: &HeaderMap) -> Viewer {
    if matches!(*state.auth, Auth::Insecure) {
        return allowed(state, String::new());
    }
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let from_cookie = || session_token(headers).map(|token| format!("Bearer {token}"));
    match bearer.or_else(from_cookie) {
        Some(credential) => allowed(state, credential),
        None => Viewer::Anonymous,
    }
}

fn allowed(state: &ApiState, credential: String) -> Viewer {
    let caller = match state.auth.authenticate(Some(&credential)) {
        Ok(caller) if caller.may_read_somewhere() => caller,
        Ok(caller) => {
            return Viewer::Refused(ApiError::forbidden(format!(
                "token {} may not read Rollouts",
                caller.name
            )));
        }
        Err(err) => return Viewer::Refused(err),
    };
    match state.limiter.take(&caller.name, Instant::now()) {
        Ok(()) => Viewer::Allowed { caller, credential },
        Err(err) => Viewer::Refused(err),
    }
}

/// The token in the session cookie, if the request carries one.
fn session_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| percent_decode(value))
        .filter(|token| !token.is_empty())
}

/// A cookie value holds no `;`, `,`, space or quote: anything but the URL-safe characters is
/// escaped as `%XX`.
fn percent_encode(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                decoded.push(byte);
                i += 3;
            }
            (byte, _) => {
                decoded.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

/// `Set-Cookie` for a session (or, with no token, for ending it). `Secure` when the request came
/// through HTTPS, so that a plain-HTTP port-forward still works.
fn session_cookie(token: Option<&str>, headers: &HeaderMap) -> HeaderValue {
    let secure = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|proto| proto.eq_ignore_ascii_case("https"));
    let (value, age) = match token {
        Some(token) => (percent_encode(token), SESSION_SECONDS),
        None => (String::new(), 0),
    };
    let cookie = format!(
        "{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={age}{}",
        if secure { "; Secure" } else { "" }
    );
    // Built from URL-safe characters and fixed text only.
    HeaderValue::from_str(&cookie).unwrap_or_else(|_| HeaderValue::from_static(""))
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
    if matches!(*state.auth, Auth::Insecure) {
        return see_other("/");
    }
    // Guessing tokens is slowed for everyone alike: the form has no caller yet to limit.
    if let Err(err) = state.limiter.take("sign-in form", Instant::now()) {
        return page(err.status, html::sign_in(Some(&err.message)));
    }
    let token = form.token.trim();
    match allowed(&state, format!("Bearer {token}")) {
        Viewer::Allowed { caller, .. } => {
            tracing::info!(token = %caller.name, "signed in to the status page");
            let mut response = see_other("/");
            response
                .headers_mut()
                .insert(header::SET_COOKIE, session_cookie(Some(token), &headers));
            response
        }
        Viewer::Refused(err) => page(err.status, html::sign_in(Some(&err.message))),
        Viewer::Anonymous => page(
            StatusCode::UNAUTHORIZED,
            html::sign_in(Some("enter a token")),
        ),
    }
}

async fn sign_out(headers: HeaderMap) -> Response {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_survives_the_cookie_whatever_its_characters() {
        for token in ["plain-token_1.2~x", "with space;and,comma=\"q\"%", "ünï"] {
            let encoded = percent_encode(token);
            assert!(
                encoded
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._~%".contains(&b))
            );
            assert_eq!(percent_decode(&encoded), token);
        }
        assert_eq!(percent_decode("50%"), "50%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }

    #[test]
    fn the_session_token_is_found_among_other_cookies() {
        let mut headers = HeaderMap::new();
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; sluice_session=t%3Bk; b=2"),
        );
        assert_eq!(session_token(&headers).as_deref(), Some("t;k"));
        let mut empty = HeaderMap::new();
        empty.append(header::COOKIE, HeaderValue::from_static("sluice_session="));
        assert_eq!(session_token(&empty), None);
        assert_eq!(session_token(&HeaderMap::new()), None);
    }

    #[test]
    fn the_session_cookie_is_http_only_strict_and_secure_behind_https() {
        let plain = session_cookie(Some("tok en"), &HeaderMap::new());
        assert_eq!(
            plain.to_str().unwrap(),
            "sluice_session=tok%20en; Path=/; HttpOnly; SameSite=Strict; Max-Age=43200"
        );
        let mut forwarded = HeaderMap::new();
        forwarded.insert("x-forwarded-proto", HeaderValue::from_static("HTTPS"));
        let ended = session_cookie(None, &forwarded);
        assert_eq!(
            ended.to_str().unwrap(),
            "sluice_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0; Secure"
        );
    }
}
