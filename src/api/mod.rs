//! sluice's HTTP API (DESIGN.md section 4b): CI triggers releases and waits for their verdict,
//! people promote, abort, pause, resume and retry, and everyone reads where each release is. It
//! serves from the controller's caches and writes through the same paths as the controller (a
//! command is an annotation the release machine consumes exactly once). Its OpenAPI document is
//! generated from the handlers below and their types; `serve` takes its listener and shutdown
//! signal, so tests run it on port 0.

pub mod auth;
mod body;
mod commands;
mod error;
mod events;
mod page;
mod rollouts;
pub mod types;

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use crate::controller::Cache;
use axum::Json;
use axum::extract::{DefaultBodyLimit, FromRequestParts, State};
use axum::http::Uri;
use axum::http::request::Parts;
use axum::response::IntoResponse;
use tokio::net::TcpListener;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoResponses, Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use auth::{Auth, Caller, RateLimiter, TokensError, token_hash};
pub use error::ApiError;

use crate::controller::Context;
use crate::crd::Rollout;
use types::ErrorBody;

/// What every handler shares.
#[derive(Clone)]
pub struct ApiState {
    pub context: Arc<Context>,
    pub rollouts: Cache<Rollout>,
    pub auth: Arc<Auth>,
    pub limiter: Arc<RateLimiter>,
    /// Becomes true when the server shuts down: event streams end.
    pub stopping: tokio::sync::watch::Receiver<bool>,
    openapi: Arc<OnceLock<serde_json::Value>>,
}

impl ApiState {
    pub fn new(
        context: Arc<Context>,
        rollouts: Cache<Rollout>,
        auth: Auth,
        limiter: RateLimiter,
        stopping: tokio::sync::watch::Receiver<bool>,
    ) -> ApiState {
        ApiState {
            context,
            rollouts,
            auth: Arc::new(auth),
            limiter: Arc::new(limiter),
            stopping,
            openapi: Arc::new(OnceLock::new()),
        }
    }
}

/// Every authenticated request: the token checked, then its rate limit.
impl FromRequestParts<ApiState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ApiState,
    ) -> Result<Self, Self::Rejection> {
        let authorization = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let caller = state.auth.authenticate(authorization)?;
        state.limiter.take(&caller.name, Instant::now())?;
        Ok(caller)
    }
}

/// The error answers every endpoint may give.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum ErrorAnswers {
    #[response(status = 401, description = "No token, or one the API does not know")]
    Unauthenticated(ErrorBody),
    #[response(
        status = 403,
        description = "The token may not do this in this namespace"
    )]
    Forbidden(ErrorBody),
    #[response(status = 404, description = "No such Rollout")]
    NotFound(ErrorBody),
    #[response(
        status = 409,
        description = "It cannot apply now (no release to promote, nothing to retry, another command waiting, the object changed meanwhile)"
    )]
    Conflict(ErrorBody),
    #[response(status = 413, description = "The body is larger than 64 KiB")]
    TooLarge(ErrorBody),
    #[response(status = 415, description = "The body is not JSON")]
    UnsupportedMediaType(ErrorBody),
    #[response(
        status = 422,
        description = "A malformed body, image reference or header"
    )]
    Invalid(ErrorBody),
    #[response(
        status = 429,
        description = "Past the token's rate limit; `Retry-After` says when to come back"
    )]
    RateLimited(ErrorBody),
    #[response(
        status = 502,
        description = "The cluster failed the request; nothing changed"
    )]
    ClusterError(ErrorBody),
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "sluice",
        description = "Progressive delivery for Kubernetes: release, promote, abort and watch Rollouts."
    ),
    modifiers(&BearerAuth),
    components(schemas(ErrorBody, types::ErrorDetail)),
    tags(
        (name = "rollouts", description = "Where each release is"),
        (name = "commands", description = "Releases and the commands that steer them"),
        (name = "meta", description = "This document"),
    )
)]
struct ApiDoc;

/// This document.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "meta",
    responses((status = 200, description = "The OpenAPI 3.1 description of the API", body = Object))
)]
async fn openapi_json(State(state): State<ApiState>) -> Json<serde_json::Value> {
    Json(state.openapi.get().cloned().unwrap_or_default())
}

/// Every endpoint, each with its part of the document.
fn endpoints() -> OpenApiRouter<ApiState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(rollouts::list_rollouts))
        .routes(routes!(rollouts::get_rollout))
        .routes(routes!(events::rollout_events))
        .routes(routes!(commands::release))
        .routes(routes!(commands::promote))
        .routes(routes!(commands::abort))
        .routes(routes!(commands::pause))
        .routes(routes!(commands::resume))
        .routes(routes!(commands::retry))
        .routes(routes!(openapi_json))
}

/// The router and the OpenAPI document generated from the same routes.
pub fn router(state: ApiState) -> (axum::Router, utoipa::openapi::OpenApi) {
    let (router, doc) = endpoints().split_for_parts();
    let doc = versioned(doc);
    let _ = state
        .openapi
        .set(serde_json::to_value(&doc).unwrap_or_default());
    let router = router
        .merge(page::routes())
        .fallback(|uri: Uri| async move { ApiError::route_not_found(uri.path()).into_response() })
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed().into_response() })
        .layer(DefaultBodyLimit::max(body::MAX_BODY))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            measured,
        ))
        .with_state(state);
    (router, doc)
}

/// Counts and times each request by its route template (`sluice_api_requests_total`).
async fn measured(
    State(state): State<ApiState>,
    matched: Option<axum::extract::MatchedPath>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let method = request.method().to_string();
    // The template, never the path as sent: the label stays bounded.
    let route = matched.map_or_else(|| "unmatched".to_string(), |m| m.as_str().to_string());
    let started = Instant::now();
    let response = next.run(request).await;
    let code = response.status().as_u16();
    state
        .context
        .metrics
        .observe_api(&method, &route, code, started.elapsed());
    response
}

/// The OpenAPI document alone (`sluice openapi`).
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    versioned(endpoints().split_for_parts().1)
}

fn versioned(mut doc: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    doc
}

/// Serves the API on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    state: ApiState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    if matches!(*state.auth, Auth::Insecure) {
        tracing::warn!(
            "the API serves without authentication (--api-insecure): anyone who reaches it may release, promote and abort"
        );
    }
    let (router, _) = router(state);
    if let Err(err) = axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
    {
        tracing::error!(error = %err, "the API stopped");
    }
}
