//! The one gate every write of the controller passes: a kube client that refuses to send a
//! request that changes the cluster while this replica does not lead. Reads go through, so a
//! follower keeps its caches and serves the read-only API; a reconcile that began in a term which
//! ends meanwhile has its remaining writes refused instead of racing the next leader's, and a write
//! let through is bounded by what is left of the term.

use std::future::{Future, Ready};
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::future::Either;
use http::{Method, Request, Response};
use kube::Client;
use kube::client::Body;
use tower_service::Service;

use super::Leadership;

/// A write refused because this replica does not hold its Lease.
#[derive(Debug, thiserror::Error)]
#[error("this controller does not hold lease {lease}: it makes no write until it does")]
pub struct NotLeading {
    pub lease: String,
}

/// `client`, with its writes held to `leadership`.
pub fn fenced(client: Client, leadership: Leadership, lease: String) -> Client {
    let namespace = client.default_namespace().to_string();
    Client::new(
        Fence {
            client,
            leadership,
            lease,
        },
        namespace,
    )
}

/// Whether a request changes the cluster.
pub fn writes(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

#[derive(Clone)]
struct Fence {
    client: Client,
    leadership: Leadership,
    lease: String,
}

type Sent = Pin<Box<dyn Future<Output = Result<Response<Body>, kube::Error>> + Send>>;

impl Service<Request<Body>> for Fence {
    type Response = Response<Body>;
    type Error = kube::Error;
    type Future = Either<Ready<Result<Response<Body>, kube::Error>>, Sent>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // The inner client queues requests itself.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let client = self.client.clone();
        let left = match self.leadership.time_left() {
            Some(left) if writes(request.method()) => left,
            _ => return Either::Right(Box::pin(async move { client.send(request).await })),
        };
        let refused = || {
            kube::Error::Service(Box::new(NotLeading {
                lease: self.lease.clone(),
            }))
        };
        if left.is_zero() {
            return Either::Left(std::future::ready(Err(refused())));
        }
        // A write let through may wait in the client's queue and its rate limit: one still there
        // when the term ends is dropped unsent.
        let refused = refused();
        Either::Right(Box::pin(async move {
            tokio::time::timeout(left, client.send(request))
                .await
                .unwrap_or(Err(refused))
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_reads_pass_a_fence_that_is_shut() {
        for method in [Method::GET, Method::HEAD, Method::OPTIONS] {
            assert!(!writes(&method), "{method} reads");
        }
        for method in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
            assert!(writes(&method), "{method} writes");
        }
    }
}
