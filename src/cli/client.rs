//! The HTTP client of the API: one method per endpoint, error answers turned into [`Failure`].
//! Kept thin: what to send is decided by the callers, what to print by the renderers.

use std::time::Duration;

use reqwest::{Method, RequestBuilder, Response, StatusCode, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::args::{ApiOptions, Target};
use crate::api::types::{CommandAccepted, ErrorBody, ReleaseAccepted, ReleaseRequest};

/// Bound on connecting to the API.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on every request but the event stream, which stays open.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a CLI call did not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// The API answered with an error, or with an answer that cannot be read.
    #[error("{message} ({code}, HTTP {status})")]
    Api {
        status: u16,
        code: String,
        message: String,
    },
    /// No answer: the API cannot be reached, or the connection broke.
    #[error("cannot connect to {server}: {detail}")]
    Connect { server: String, detail: String },
    /// The command line asks for something that cannot be sent.
    #[error("{0}")]
    Usage(String),
}

impl Failure {
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Usage(_) => 2,
            Failure::Api { .. } => 3,
            Failure::Connect { .. } => 4,
        }
    }
}

/// A client of one API server.
pub struct Api {
    http: reqwest::Client,
    base: Url,
    token: Option<String>,
}

impl Api {
    pub fn new(options: &ApiOptions) -> Result<Self, Failure> {
        let base = Url::parse(&options.server)
            .ok()
            .filter(|url| matches!(url.scheme(), "http" | "https"))
            .ok_or_else(|| {
                Failure::Usage(format!(
                    "--server {:?} is not an http:// or https:// URL",
                    options.server
                ))
            })?;
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("sluice/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|err| Failure::Usage(format!("cannot build the HTTP client: {err}")))?;
        Ok(Api {
            http,
            base,
            token: options.token.clone(),
        })
    }

    /// `GET /api/v1/rollouts[?namespace=NS]`, as JSON.
    pub async fn list(&self, namespace: Option<&str>) -> Result<serde_json::Value, Failure> {
        let mut url = self.url(&["rollouts"]);
        if let Some(namespace) = namespace {
            url.query_pairs_mut().append_pair("namespace", namespace);
        }
        self.json(self.request(Method::GET, url)).await
    }

    /// `GET /api/v1/namespaces/{ns}/rollouts/{name}`, as JSON.
    pub async fn detail_json(&self, target: &Target) -> Result<serde_json::Value, Failure> {
        self.json(self.request(Method::GET, self.rollout_url(target, None)))
            .await
    }

    /// `GET /api/v1/namespaces/{ns}/rollouts/{name}`.
    pub async fn detail<T: DeserializeOwned>(&self, target: &Target) -> Result<T, Failure> {
        self.json(self.request(Method::GET, self.rollout_url(target, None)))
            .await
    }

    /// `POST .../release`.
    pub async fn release(
        &self,
        target: &Target,
        request: &ReleaseRequest,
    ) -> Result<ReleaseAccepted, Failure> {
        let url = self.rollout_url(target, Some("release"));
        self.json(self.request(Method::POST, url).json(request))
            .await
    }

    /// `POST .../{command}` with the body and the `Idempotency-Key` given.
    pub async fn command(
        &self,
        target: &Target,
        command: &str,
        body: &impl Serialize,
        idempotency_key: &str,
    ) -> Result<CommandAccepted, Failure> {
        let request = self
            .request(Method::POST, self.rollout_url(target, Some(command)))
            .header("Idempotency-Key", idempotency_key)
            .json(body);
        self.json(request).await
    }

    /// `GET .../events`: the open event stream, resumed after `last_event_id` if given.
    pub async fn events(
        &self,
        target: &Target,
        last_event_id: Option<&str>,
    ) -> Result<Response, Failure> {
        let mut request = self
            .http
            .get(self.rollout_url(target, Some("events")))
            .header("Accept", "text/event-stream")
            .header("Cache-Control", "no-cache");
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id);
        }
        let response = request.send().await.map_err(|err| self.connect(&err))?;
        if response.status().is_success() {
            Ok(response)
        } else {
            let status = response.status();
            let body = response.bytes().await.unwrap_or_default();
            Err(error_answer(status, &body))
        }
    }

    fn request(&self, method: Method, url: Url) -> RequestBuilder {
        tracing::debug!(%method, %url, "API request");
        let request = self.http.request(method, url).timeout(REQUEST_TIMEOUT);
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    async fn json<T: DeserializeOwned>(&self, request: RequestBuilder) -> Result<T, Failure> {
        let response = request.send().await.map_err(|err| self.connect(&err))?;
        let status = response.status();
        tracing::debug!(status = status.as_u16(), url = %response.url(), "API answer");
        let body = response.bytes().await.map_err(|err| self.connect(&err))?;
        if !status.is_success() {
            return Err(error_answer(status, &body));
        }
        serde_json::from_slice(&body).map_err(|err| Failure::Api {
            status: status.as_u16(),
            code: "unreadable_answer".to_string(),
            message: format!("the API's answer cannot be read: {err}"),
        })
    }

    /// `{server}/api/v1/{segments...}`, each segment percent-encoded.
    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        // `new` admits only http(s) URLs, which always have a path to extend.
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(["api", "v1"]).extend(segments);
        }
        url
    }

    fn rollout_url(&self, target: &Target, action: Option<&str>) -> Url {
        let mut segments = vec![
            "namespaces",
            target.namespace.as_str(),
            "rollouts",
            target.name.as_str(),
        ];
        segments.extend(action);
        self.url(&segments)
    }

    fn connect(&self, err: &reqwest::Error) -> Failure {
        Failure::Connect {
            server: self.base.as_str().trim_end_matches('/').to_string(),
            detail: error_chain(err),
        }
    }
}

/// An error answer: the API's `{"error": {...}}`, or whatever else came back.
pub fn error_answer(status: StatusCode, body: &[u8]) -> Failure {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(answer) => Failure::Api {
            status: status.as_u16(),
            code: answer.error.code,
            message: answer.error.message,
        },
        Err(_) => {
            let text = String::from_utf8_lossy(body);
            let text = text.trim();
            let message = if text.is_empty() {
                status
                    .canonical_reason()
                    .unwrap_or("no message")
                    .to_string()
            } else {
                text.chars().take(200).collect()
            };
            Failure::Api {
                status: status.as_u16(),
                code: "unknown".to_string(),
                message,
            }
        }
    }
}

/// An error and its sources, e.g. `error sending request: client error (Connect): Connection
/// refused`.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(server: &str) -> Api {
        Api::new(&ApiOptions {
            server: server.to_string(),
            token: None,
        })
        .expect("valid server")
    }

    fn target() -> Target {
        "shop/web".parse().expect("valid target")
    }

    #[test]
    fn urls_extend_the_server_path() {
        let plain = api("http://127.0.0.1:8443");
        assert_eq!(
            plain.rollout_url(&target(), Some("promote")).as_str(),
            "http://127.0.0.1:8443/api/v1/namespaces/shop/rollouts/web/promote"
        );
        let behind_proxy = api("https://example.com/sluice/");
        assert_eq!(
            behind_proxy.url(&["rollouts"]).as_str(),
            "https://example.com/sluice/api/v1/rollouts"
        );
    }

    #[test]
    fn a_server_that_is_not_http_is_a_usage_error() {
        let options = ApiOptions {
            server: "127.0.0.1:8443".to_string(),
            token: None,
        };
        assert!(matches!(Api::new(&options), Err(Failure::Usage(_))));
    }

    #[test]
    fn error_answers_keep_code_and_message() {
        let body = br#"{"error":{"code":"not_found","message":"rollout shop/web not found"}}"#;
        let failure = error_answer(StatusCode::NOT_FOUND, body);
        assert_eq!(
            failure.to_string(),
            "rollout shop/web not found (not_found, HTTP 404)"
        );
        assert_eq!(failure.exit_code(), 3);
        let proxy = error_answer(StatusCode::BAD_GATEWAY, b"");
        assert_eq!(proxy.to_string(), "Bad Gateway (unknown, HTTP 502)");
    }
}
