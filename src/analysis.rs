//! The Prometheus side of analysis: render each query of a plan, ask Prometheus, turn every
//! answer (or failure) into a [`Reading`], and let the core judge them. Nothing is decided here:
//! a failed query is a reading like any other, so that one check always yields one outcome and
//! the release machine, not this module, decides what an unreachable Prometheus means.

use std::error::Error as StdError;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use futures::future::join_all;
use prometheus_http_query::Error as PromError;
use prometheus_http_query::error::PrometheusErrorType;
use prometheus_http_query::response::Data;
use sluice_strategies::analysis::{CheckOutcome, Reading, judge_check, one_line};
use sluice_strategies::duration;
use sluice_strategies::plan::AnalysisPlan;
use sluice_strategies::promql::{TemplateVars, render};
use tracing::Instrument;

/// What the request-count query is called in messages, where a metric's name would be.
const REQUESTS: &str = "candidate requests";

/// How sluice proves who it is to Prometheus: a credential read from a file (a mounted Secret) at
/// every query, so that a rotated Secret is used as soon as the kubelet updates the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrometheusAuth {
    /// `Authorization: Bearer <the file's content>`.
    BearerTokenFile(std::path::PathBuf),
    /// `Authorization: Basic`, from a file holding `user:password`.
    BasicAuthFile(std::path::PathBuf),
}

impl PrometheusAuth {
    /// The `Authorization` header's value, or why there is none.
    pub fn header(&self) -> Result<String, String> {
        let (path, basic) = match self {
            PrometheusAuth::BearerTokenFile(path) => (path, false),
            PrometheusAuth::BasicAuthFile(path) => (path, true),
        };
        let read = std::fs::read_to_string(path).map_err(|e| {
            format!(
                "cannot read the Prometheus credential file {}: {e}",
                path.display()
            )
        })?;
        // A Secret's value often ends with the newline of the editor that wrote it.
        let credential = read.trim_end_matches(['\n', '\r']);
        if credential.is_empty() {
            return Err(format!(
                "the Prometheus credential file {} is empty",
                path.display()
            ));
        }
        if basic {
            if !credential.contains(':') {
                return Err(format!(
                    "the Prometheus basic auth file {} must hold user:password",
                    path.display()
                ));
            }
            Ok(format!("Basic {}", base64_encode(credential.as_bytes())))
        } else {
            Ok(format!("Bearer {credential}"))
        }
    }
}

/// How sluice's connection to an https:// Prometheus is verified and how it identifies itself: the
/// `tls_config` of Prometheus's own scrape configuration. The files are read once, at start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrometheusTls {
    /// PEM certificates of the CAs that sign Prometheus's certificate, trusted instead of the
    /// system's (as Prometheus's `ca_file`).
    pub ca_file: Option<std::path::PathBuf>,
    /// A PEM client certificate and its key, for a Prometheus that asks for one (mutual TLS).
    pub client_cert_file: Option<std::path::PathBuf>,
    pub client_key_file: Option<std::path::PathBuf>,
    /// Accept any certificate (`insecure_skip_verify`): for a trial, never for production.
    pub insecure_skip_verify: bool,
}

impl PrometheusTls {
    fn is_default(&self) -> bool {
        *self == PrometheusTls::default()
    }

    /// A client with these settings, bounded by `timeout`.
    fn client(&self, timeout: Duration) -> Result<reqwest::Client, AnalysisError> {
        let read = |what: &'static str, path: &std::path::Path| {
            std::fs::read(path).map_err(|source| AnalysisError::Tls {
                what,
                path: path.to_path_buf(),
                source: Box::new(source),
            })
        };
        let refused = |what: &'static str, path: &std::path::Path| {
            let path = path.to_path_buf();
            move |source: reqwest::Error| AnalysisError::Tls {
                what,
                path,
                source: Box::new(source),
            }
        };
        let mut builder = reqwest::Client::builder().connect_timeout(timeout);
        if let Some(path) = &self.ca_file {
            let certs = reqwest::Certificate::from_pem_bundle(&read("CA file", path)?)
                .map_err(refused("CA file", path))?;
            if certs.is_empty() {
                return Err(AnalysisError::Tls {
                    what: "CA file",
                    path: path.clone(),
                    source: "it holds no PEM certificate".into(),
                });
            }
            builder = builder.tls_certs_only(certs);
        }
        match (&self.client_cert_file, &self.client_key_file) {
            (Some(cert), Some(key)) => {
                let mut pem = read("client certificate", cert)?;
                pem.push(b'\n');
                pem.extend(read("client key", key)?);
                let identity = reqwest::Identity::from_pem(&pem)
                    .map_err(refused("client certificate", cert))?;
                builder = builder.identity(identity);
            }
            (None, None) => {}
            (Some(path), None) | (None, Some(path)) => {
                return Err(AnalysisError::Tls {
                    what: "client certificate",
                    path: path.clone(),
                    source: "a client certificate needs its key, and a key its certificate".into(),
                });
            }
        }
        if self.insecure_skip_verify {
            builder = builder.tls_danger_accept_invalid_certs(true);
        }
        builder.build().map_err(|source| AnalysisError::Tls {
            what: "TLS configuration",
            path: self.ca_file.clone().unwrap_or_default(),
            source: Box::new(source),
        })
    }
}

/// Standard base64 with padding (RFC 4648), for a Basic credential.
fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Asks Prometheus for the readings of analysis checks.
#[derive(Clone)]
pub struct Analyst {
    client: prometheus_http_query::Client,
    /// The credential sent with every query, if Prometheus wants one.
    auth: Option<PrometheusAuth>,
    /// The base URL as queries use it, for messages.
    url: String,
    /// The bound on each query, on our side and on Prometheus'.
    timeout: Duration,
    metrics: Option<std::sync::Arc<crate::metrics::Metrics>>,
}

impl fmt::Debug for Analyst {
    // The client has no Debug of its own; the URL and the timeout are what tell analysts apart.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Analyst")
            .field("url", &self.url)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Why an [`Analyst`] could not be built. Only construction can fail: once built, every failure
/// of a check is a reading in its outcome.
#[derive(Debug, thiserror::Error)]
pub enum AnalysisError {
    /// The Prometheus URL is not an http(s) URL.
    #[error("invalid Prometheus URL {url:?}: {source}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        source: Box<dyn StdError + Send + Sync + 'static>,
    },
    /// A TLS file for Prometheus is missing or unusable.
    #[error("Prometheus TLS: the {what} {path:?} is unusable: {source}")]
    Tls {
        what: &'static str,
        path: std::path::PathBuf,
        source: Box<dyn StdError + Send + Sync + 'static>,
    },
}

impl Analyst {
    /// An analyst for the Prometheus at `prometheus_url` (e.g. `http://prometheus:9090`, or with
    /// a path prefix such as `http://gateway/prometheus`), bounding every query by `timeout`.
    pub fn new(prometheus_url: &str, timeout: Duration) -> Result<Analyst, AnalysisError> {
        Self::with_tls(prometheus_url, timeout, &PrometheusTls::default())
    }

    /// As [`Analyst::new`], its connections verified and identified as `tls` says.
    pub fn with_tls(
        prometheus_url: &str,
        timeout: Duration,
        tls: &PrometheusTls,
    ) -> Result<Analyst, AnalysisError> {
        let invalid = |source: Box<dyn StdError + Send + Sync>| AnalysisError::InvalidUrl {
            url: prometheus_url.to_string(),
            source,
        };
        // The client appends `/api/v1/query` after a `/`, so a trailing slash on a path prefix
        // would become `//api/...`, which a route prefix does not match.
        let trimmed = prometheus_url.trim().trim_end_matches('/');
        let client = if tls.is_default() {
            prometheus_http_query::Client::from_str(trimmed)
        } else {
            prometheus_http_query::Client::from(tls.client(timeout)?, trimmed)
        };
        let client = client.map_err(|e| match e {
            // The URL parser's own error says what is wrong; the wrapper only says "invalid".
            PromError::ParseUrl(e) => invalid(Box::new(*e.inner())),
            other => invalid(Box::new(other)),
        })?;
        let base = client.base_url();
        // `localhost:9090` parses as a URL with the scheme `localhost`: refuse it here rather
        // than fail every query later with an error that does not point at the flag.
        if !matches!(base.scheme(), "http" | "https") || base.host_str().is_none() {
            return Err(invalid(
                "give an http:// or https:// URL with a host, e.g. http://prometheus:9090".into(),
            ));
        }
        let url = base.to_string();
        Ok(Analyst {
            client,
            url,
            timeout,
            auth: None,
            metrics: None,
        })
    }

    /// Every query sends the credential `auth` reads.
    pub fn authenticated_by(self, auth: Option<PrometheusAuth>) -> Analyst {
        Analyst { auth, ..self }
    }

    /// Each query's duration and failure counted in `metrics`.
    pub fn observed_by(self, metrics: std::sync::Arc<crate::metrics::Metrics>) -> Analyst {
        Analyst {
            metrics: Some(metrics),
            ..self
        }
    }

    /// The base URL queries go to, as messages name it.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The bound on each query.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Runs one check: the candidate request count and every metric of the plan, concurrently,
    /// each query bounded by the timeout (on our side, and as Prometheus' own `timeout` so that
    /// it stops evaluating a query nobody waits for), then judges them with
    /// [`judge_check`]. A template that does not render is a failed reading and is never sent.
    pub async fn check(&self, plan: &AnalysisPlan, vars: &TemplateVars) -> CheckOutcome {
        let span = tracing::debug_span!(
            "analysis_check",
            namespace = %vars.namespace,
            name = %vars.name,
            candidate_slot = %vars.candidate_slot,
            interval = %vars.interval,
            prometheus = %self.url,
        );
        async {
            let requests = self.read(REQUESTS, &plan.requests_query, vars);
            let metrics = join_all(plan.metrics.iter().map(|metric| async {
                let reading = self.read(&metric.name, &metric.query, vars).await;
                (metric.name.clone(), reading)
            }));
            let (requests, readings) = futures::join!(requests, metrics);
            let outcome = judge_check(plan, &requests, &readings);
            tracing::debug!(
                verdict = %outcome.verdict,
                requests = ?outcome.requests,
                summary = %one_line(&outcome),
                "analysis check judged"
            );
            outcome
        }
        .instrument(span)
        .await
    }

    /// Renders and runs one query; `what` names it in messages (a metric's name).
    async fn read(&self, what: &str, template: &str, vars: &TemplateVars) -> Reading {
        let query = match render(template, vars) {
            Ok(query) => query,
            Err(e) => {
                let why = format!("query for {what} not rendered: {e}");
                tracing::debug!(metric = what, error = %e, "query not rendered");
                return Reading::Failed(why);
            }
        };
        tracing::debug!(metric = what, %query, "querying Prometheus");
        // Prometheus takes whole milliseconds; a timeout too long for i64 is no bound at all.
        let timeout_ms = i64::try_from(self.timeout.as_millis()).unwrap_or(i64::MAX);
        let mut request = self.client.query(&query).timeout(timeout_ms);
        if let Some(auth) = &self.auth {
            let header = auth.header().and_then(|h| {
                reqwest::header::HeaderValue::from_str(&h).map_err(|e| e.to_string())
            });
            match header {
                Ok(mut value) => {
                    value.set_sensitive(true);
                    request = request.header(reqwest::header::AUTHORIZATION, value);
                }
                Err(why) => return Reading::Failed(format!("query for {what} not sent: {why}")),
            }
        }
        // POST: custom queries can be long, and a form body has no URL length limit on the way.
        let sent = request.post();
        let started = std::time::Instant::now();
        let reading = match tokio::time::timeout(self.timeout, sent).await {
            Err(_elapsed) => Reading::Failed(self.timed_out(what)),
            Ok(Err(e)) => Reading::Failed(self.describe(what, &e)),
            Ok(Ok(result)) => reading_of(what, result.data()),
        };
        if let Some(metrics) = &self.metrics {
            metrics.observe_query(started.elapsed(), matches!(reading, Reading::Failed(_)));
        }
        tracing::debug!(metric = what, ?reading, "Prometheus answered");
        reading
    }

    fn timed_out(&self, what: &str) -> String {
        format!(
            "query for {what} timed out after {} (Prometheus at {})",
            duration::format(self.timeout),
            self.url
        )
    }

    /// A failed query as a person reads it: what went wrong, where, and for which metric.
    fn describe(&self, what: &str, error: &PromError) -> String {
        let url = &self.url;
        match error {
            PromError::Prometheus(e) => {
                let message = e.message();
                match e.error_type() {
                    PrometheusErrorType::Timeout => {
                        format!("{}: {message}", self.timed_out(what))
                    }
                    // Bad syntax, unknown functions, many-to-many matches: the query is wrong.
                    PrometheusErrorType::BadData | PrometheusErrorType::Execution => {
                        format!("Prometheus rejected the query for {what}: {message}")
                    }
                    other => format!(
                        "Prometheus at {url} could not run the query for {what} ({other}): {message}"
                    ),
                }
            }
            PromError::Client(e) => match e.inner() {
                Some(r) if r.is_timeout() => self.timed_out(what),
                Some(r) if r.is_connect() => {
                    format!("Prometheus at {url} unreachable: {}", root_cause(r))
                }
                Some(r) => match r.status() {
                    // A body that is not JSON with an error status: a proxy or gateway between.
                    Some(status) => format!(
                        "Prometheus at {url} answered the query for {what} with HTTP {status}"
                    ),
                    None if r.is_decode() => format!(
                        "{url} answered the query for {what} with something that is not a Prometheus query result (is it Prometheus' URL?): {}",
                        root_cause(r)
                    ),
                    None => format!(
                        "query for {what} to Prometheus at {url} failed: {}",
                        root_cause(r)
                    ),
                },
                // A success status without JSON: most likely a web page, not Prometheus' API.
                None => format!(
                    "{url} answered the query for {what} with something other than JSON: is it Prometheus' URL? ({e})"
                ),
            },
            other => format!("query for {what} to Prometheus at {url} failed: {other}"),
        }
    }
}

/// The reading of one answer: exactly one number, or no data. Several series are refused rather
/// than summed or picked from: which one was meant is the user's to say, and a guess could pass
/// a candidate that should fail.
fn reading_of(what: &str, data: &Data) -> Reading {
    match data {
        // NaN and ±Inf are passed on as they are: the core judges NaN as no data.
        Data::Scalar(sample) => Reading::Value(sample.value()),
        Data::Vector(series) => match series.as_slice() {
            [] => Reading::NoData,
            [one] => Reading::Value(one.sample().value()),
            many => Reading::Failed(format!(
                "query for {what} returned {} series; it must return one (aggregate it, e.g. with sum or max)",
                many.len()
            )),
        },
        Data::Matrix(_) => Reading::Failed(format!(
            "query for {what} returned a range vector; it must return one number (drop the [range] or wrap it in a function such as rate)"
        )),
    }
}

/// The innermost cause of an error: for a connection, what the system said ("Connection refused",
/// "failed to lookup address information"), without the wrappers' restatements of the URL.
fn root_cause(error: &(dyn StdError + 'static)) -> String {
    let mut cause = error;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_is_the_standard_alphabet_with_padding() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("sluice:s3cr3t/+?", "c2x1aWNlOnMzY3IzdC8rPw=="),
        ] {
            assert_eq!(base64_encode(plain.as_bytes()), encoded, "{plain}");
        }
    }

    #[test]
    fn the_credential_is_read_from_its_file_at_each_use() {
        let dir = std::env::temp_dir().join(format!("sluice-auth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let token = dir.join("token");
        std::fs::write(&token, "t0k3n\n").unwrap();
        let bearer = PrometheusAuth::BearerTokenFile(token.clone());
        assert_eq!(bearer.header().unwrap(), "Bearer t0k3n");
        std::fs::write(&token, "rotated").unwrap();
        assert_eq!(
            bearer.header().unwrap(),
            "Bearer rotated",
            "a rotated Secret is used"
        );
        let basic = dir.join("basic");
        std::fs::write(&basic, "sluice:pw\n").unwrap();
        assert_eq!(
            PrometheusAuth::BasicAuthFile(basic.clone())
                .header()
                .unwrap(),
            "Basic c2x1aWNlOnB3"
        );
        std::fs::write(&basic, "no-colon").unwrap();
        let refused = PrometheusAuth::BasicAuthFile(basic).header().unwrap_err();
        assert!(refused.contains("user:password"), "{refused}");
        std::fs::write(&token, "\n").unwrap();
        assert!(bearer.header().unwrap_err().contains("is empty"));
        let missing = PrometheusAuth::BearerTokenFile(dir.join("absent"))
            .header()
            .unwrap_err();
        assert!(
            missing.contains("cannot read the Prometheus credential file"),
            "{missing}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
