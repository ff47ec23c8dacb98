//! Every request sluice makes to the Kubernetes API, counted by verb, resource and status code
//! (`sluice_kubernetes_requests_total`) and timed by verb, from a tower layer on the kube client:
//! the one place all of them pass, whichever part of the controller made them. Verbs are the API
//! server's (get, list, watch, create, update, patch, delete, deletecollection), read from the
//! method, the path and the query as kube-apiserver's `RequestInfoFactory` reads them, and `apply`
//! for a server-side apply patch, as the API server's own request metrics call it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use http::{Method, Request, Response};
use tower_layer::Layer;
use tower_service::Service;

use super::Metrics;

/// A kube client whose requests are counted in `metrics` and held to `limits`. The limits wrap
/// the counting, so that a request's duration is the API server's answer, not its wait here.
pub fn metered_client(
    config: kube::Config,
    metrics: &Arc<Metrics>,
    limits: crate::throttle::ApiLimits,
    identity: &str,
) -> Result<kube::Client, kube::Error> {
    Ok(kube::client::ClientBuilder::try_from(config)?
        .with_layer(&MeteredLayer::new(metrics, identity))
        .with_layer(&crate::throttle::ThrottleLayer { limits })
        .build())
}

/// A kube client for the leader election alone: counted like the others, but never queued behind
/// the controller's requests in their client-side limits (client-go's leader election has its own
/// client for the same reason), so that a burst of reconciles cannot make the leader miss its
/// renewal.
pub fn election_client(
    config: kube::Config,
    metrics: &Arc<Metrics>,
    identity: &str,
) -> Result<kube::Client, kube::Error> {
    Ok(kube::client::ClientBuilder::try_from(config)?
        .with_layer(&MeteredLayer::new(metrics, identity))
        .build())
}

/// What sluice's requests say they are, as client-go's say `<program>/<version> (<os>/<arch>)`,
/// with the candidate's identity, so that an audit log tells two replicas apart. (kube sends no
/// User-Agent of its own.)
pub fn user_agent(identity: &str) -> http::HeaderValue {
    let agent = format!(
        "sluice/{} ({}/{}) {identity}",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::OS,
        std::env::consts::ARCH
    );
    http::HeaderValue::from_str(&agent).unwrap_or_else(|_| {
        http::HeaderValue::from_static(concat!("sluice/", env!("CARGO_PKG_VERSION")))
    })
}

/// The verbs of [`request_kind`] that change the cluster.
pub const WRITE_VERBS: [&str; 6] = [
    "create",
    "update",
    "patch",
    "apply",
    "delete",
    "deletecollection",
];

/// What a request is, as the API server would log it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestKind {
    pub verb: &'static str,
    /// The resource, with its subresource (`rollouts/status`), or `discovery` for the paths
    /// that name none.
    pub resource: String,
}

/// The verb and resource of a request to the API server.
pub fn request_kind(
    method: &Method,
    path: &str,
    query: Option<&str>,
    content_type: Option<&str>,
) -> RequestKind {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    // /api/v1/... and /apis/<group>/<version>/...
    let rest = match segments.first() {
        Some(&"api") if segments.len() > 2 => &segments[2..],
        Some(&"apis") if segments.len() > 3 => &segments[3..],
        _ => &[][..],
    };
    // The legacy watch paths: /api/v1/watch/namespaces/{ns}/...
    let (legacy_watch, rest) = match rest {
        ["watch", rest @ ..] => (true, rest),
        rest => (false, rest),
    };
    // A namespace's own subresources (status, finalize) stay the namespace's.
    let rest = match rest {
        ["namespaces", _, resource, ..] if !["status", "finalize"].contains(resource) => &rest[2..],
        other => other,
    };
    let resource = match rest {
        [] => "discovery".to_string(),
        [resource] | [resource, _] => resource.to_string(),
        [resource, _, subresource, ..] => format!("{resource}/{subresource}"),
    };
    // Only names an API path can hold, so the label stays bounded by what sluice calls.
    let resource = if resource.len() <= 80
        && resource
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-./".contains(&b))
    {
        resource
    } else {
        "other".to_string()
    };
    let item = rest.len() >= 2;
    // strconv.ParseBool's true, as the API server parses `watch`.
    let watching = legacy_watch
        || query.is_some_and(|q| {
            q.split('&').any(|pair| {
                pair.strip_prefix("watch=")
                    .is_some_and(|v| ["1", "t", "T", "true", "TRUE", "True"].contains(&v))
            })
        });
    let verb = match *method {
        Method::GET if watching => "watch",
        Method::GET if item || rest.is_empty() => "get",
        Method::GET => "list",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH if content_type.is_some_and(|t| t.starts_with("application/apply-patch")) => {
            "apply"
        }
        Method::PATCH => "patch",
        Method::DELETE if item => "delete",
        Method::DELETE => "deletecollection",
        _ => "other",
    };
    RequestKind { verb, resource }
}

#[derive(Clone)]
pub struct MeteredLayer {
    metrics: Arc<Metrics>,
    user_agent: http::HeaderValue,
}

impl MeteredLayer {
    fn new(metrics: &Arc<Metrics>, identity: &str) -> Self {
        MeteredLayer {
            metrics: metrics.clone(),
            user_agent: user_agent(identity),
        }
    }
}

impl<S> Layer<S> for MeteredLayer {
    type Service = Metered<S>;

    fn layer(&self, inner: S) -> Metered<S> {
        Metered {
            inner,
            metrics: self.metrics.clone(),
            user_agent: self.user_agent.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Metered<S> {
    inner: S,
    metrics: Arc<Metrics>,
    user_agent: http::HeaderValue,
}

impl<S, RequestBody, ResponseBody> Service<Request<RequestBody>> for Metered<S>
where
    S: Service<Request<RequestBody>, Response = Response<ResponseBody>>,
    S::Future: Send + 'static,
    S::Error: 'static,
    ResponseBody: 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<RequestBody>) -> Self::Future {
        request
            .headers_mut()
            .entry(http::header::USER_AGENT)
            .or_insert_with(|| self.user_agent.clone());
        let content_type = request
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        let kind = request_kind(
            request.method(),
            request.uri().path(),
            request.uri().query(),
            content_type,
        );
        let metrics = self.metrics.clone();
        let started = Instant::now();
        let answer = self.inner.call(request);
        Box::pin(async move {
            let answer = answer.await;
            let code = match &answer {
                Ok(response) => response.status().as_u16().to_string(),
                Err(_) => "error".to_string(),
            };
            metrics.observe_kubernetes(&kind, &code, started.elapsed());
            answer
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(method: Method, uri: &str, content_type: Option<&str>) -> (&'static str, String) {
        let (path, query) = uri
            .split_once('?')
            .map_or((uri, None), |(p, q)| (p, Some(q)));
        let kind = request_kind(&method, path, query, content_type);
        (kind.verb, kind.resource)
    }

    #[test]
    fn verbs_and_resources_read_as_the_api_server_reads_them() {
        let cases = [
            (
                Method::GET,
                "/apis/apps/v1/deployments?&limit=500",
                None,
                ("list", "deployments"),
            ),
            (
                Method::GET,
                "/apis/apps/v1/deployments?watch=true&resourceVersion=9",
                None,
                ("watch", "deployments"),
            ),
            (
                Method::GET,
                "/api/v1/namespaces/erp/services/web",
                None,
                ("get", "services"),
            ),
            (
                Method::GET,
                "/api/v1/namespaces/erp/services",
                None,
                ("list", "services"),
            ),
            (
                Method::GET,
                "/api/v1/namespaces/erp",
                None,
                ("get", "namespaces"),
            ),
            (
                Method::GET,
                "/apis/sluice.dev/v1alpha1",
                None,
                ("get", "discovery"),
            ),
            (Method::GET, "/version", None, ("get", "discovery")),
            (
                Method::POST,
                "/apis/events.k8s.io/v1/namespaces/erp/events",
                None,
                ("create", "events"),
            ),
            (
                Method::PUT,
                "/apis/sluice.dev/v1alpha1/namespaces/erp/rollouts/web/status",
                None,
                ("update", "rollouts/status"),
            ),
            (
                Method::PATCH,
                "/apis/apps/v1/namespaces/erp/deployments/web-blue?fieldManager=sluice",
                Some("application/apply-patch+yaml"),
                ("apply", "deployments"),
            ),
            (
                Method::PATCH,
                "/apis/sluice.dev/v1alpha1/namespaces/erp/rollouts/web",
                Some("application/merge-patch+json"),
                ("patch", "rollouts"),
            ),
            (
                Method::DELETE,
                "/apis/networking.k8s.io/v1/namespaces/erp/ingresses/web-canary",
                None,
                ("delete", "ingresses"),
            ),
            (
                Method::DELETE,
                "/apis/networking.k8s.io/v1/namespaces/erp/ingresses",
                None,
                ("deletecollection", "ingresses"),
            ),
        ];
        for (method, uri, content_type, (verb, resource)) in cases {
            assert_eq!(
                kind(method, uri, content_type),
                (verb, resource.to_string()),
                "{uri}"
            );
        }
    }

    #[test]
    fn namespace_subresources_legacy_watches_and_every_true_read_as_the_api_server_reads_them() {
        let cases = [
            (
                Method::PUT,
                "/api/v1/namespaces/erp/status",
                ("update", "namespaces/status"),
            ),
            (
                Method::PUT,
                "/api/v1/namespaces/erp/finalize",
                ("update", "namespaces/finalize"),
            ),
            (
                Method::GET,
                "/api/v1/watch/namespaces/erp/services",
                ("watch", "services"),
            ),
            (
                Method::GET,
                "/apis/apps/v1/deployments?watch=True",
                ("watch", "deployments"),
            ),
            (
                Method::GET,
                "/apis/apps/v1/deployments?watch=false",
                ("list", "deployments"),
            ),
        ];
        for (method, uri, (verb, resource)) in cases {
            assert_eq!(
                kind(method, uri, None),
                (verb, resource.to_string()),
                "{uri}"
            );
        }
    }

    #[test]
    fn a_path_no_api_holds_is_labelled_other() {
        let odd = format!("/api/v1/namespaces/erp/{}", "X".repeat(5));
        assert_eq!(kind(Method::GET, &odd, None).1, "other");
    }
}
