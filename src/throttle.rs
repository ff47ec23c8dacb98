//! Client-side limits on the requests sluice makes to the API server, as client-go's token bucket:
//! `qps` a second on average, bursts of up to `burst`. Without them, a controller restarted among
//! ten thousand Rollouts asks everything at once, and an API server with priority and fairness
//! answers 429s to every controller sharing its priority level.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep};
use tower_service::Service;

/// How many requests a second, and how many at once after a quiet time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ApiLimits {
    pub qps: f64,
    pub burst: u32,
}

impl Default for ApiLimits {
    /// Sized from the scale benchmark (docs/performance.md): 100 releases at once, checked every
    /// 5 s, ask about 30 writes a second with bursts at each check; at 50 a second the burst
    /// queued long enough to make a failed check's rollback 1.6 s late. A cold start lists only.
    fn default() -> Self {
        ApiLimits {
            qps: 100.0,
            burst: 200,
        }
    }
}

/// The bucket itself, with time passed in.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    limits: ApiLimits,
    tokens: f64,
    refilled_at: Instant,
}

impl TokenBucket {
    /// Full, as after a quiet time.
    pub fn new(limits: ApiLimits, now: Instant) -> TokenBucket {
        TokenBucket {
            limits,
            tokens: f64::from(limits.burst.max(1)),
            refilled_at: now,
        }
    }

    /// Takes a token at `now`, or says how long until there is one.
    pub fn take(&mut self, now: Instant) -> Result<(), Duration> {
        let rate = self.limits.qps.max(f64::MIN_POSITIVE);
        let elapsed = now
            .saturating_duration_since(self.refilled_at)
            .as_secs_f64();
        let full = f64::from(self.limits.burst.max(1));
        self.tokens = (self.tokens + elapsed * rate).min(full);
        self.refilled_at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / rate))
        }
    }
}

/// The layer that puts a [`TokenBucket`] in front of the kube client's requests. kube's client
/// drives its service from one buffer worker, so this one bucket is shared by every request.
#[derive(Debug, Clone, Copy)]
pub struct ThrottleLayer {
    pub limits: ApiLimits,
}

impl<S> tower_layer::Layer<S> for ThrottleLayer {
    type Service = Throttled<S>;

    fn layer(&self, inner: S) -> Throttled<S> {
        Throttled {
            inner,
            bucket: TokenBucket::new(self.limits, Instant::now()),
            waiting: None,
            holds_token: false,
        }
    }
}

pub struct Throttled<S> {
    inner: S,
    bucket: TokenBucket,
    waiting: Option<Pin<Box<Sleep>>>,
    /// A token was taken for the next call (the inner service may still be getting ready).
    holds_token: bool,
}

impl<S, Request> Service<Request> for Throttled<S>
where
    S: Service<Request>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        while !self.holds_token {
            if let Some(waiting) = self.waiting.as_mut() {
                if waiting.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                self.waiting = None;
            }
            match self.bucket.take(Instant::now()) {
                Ok(()) => self.holds_token = true,
                Err(wait) => self.waiting = Some(Box::pin(tokio::time::sleep(wait))),
            }
        }
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        self.holds_token = false;
        self.inner.call(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket(qps: f64, burst: u32) -> (TokenBucket, Instant) {
        let start = Instant::now();
        (TokenBucket::new(ApiLimits { qps, burst }, start), start)
    }

    #[test]
    fn a_burst_goes_through_at_once_and_then_the_rate_holds() {
        let (mut bucket, start) = bucket(10.0, 3);
        for _ in 0..3 {
            assert_eq!(bucket.take(start), Ok(()));
        }
        let wait = bucket.take(start).expect_err("the burst is spent");
        assert!((wait.as_secs_f64() - 0.1).abs() < 1e-9, "{wait:?}");
        assert_eq!(bucket.take(start + Duration::from_millis(100)), Ok(()));
        assert!(bucket.take(start + Duration::from_millis(100)).is_err());
    }

    #[test]
    fn a_quiet_time_refills_up_to_the_burst_and_no_more() {
        let (mut bucket, start) = bucket(10.0, 2);
        let later = start + Duration::from_secs(60);
        assert_eq!(bucket.take(later), Ok(()));
        assert_eq!(bucket.take(later), Ok(()));
        assert!(bucket.take(later).is_err(), "a minute's quiet is still 2");
    }

    #[test]
    fn a_half_refilled_token_waits_only_for_the_rest() {
        let (mut bucket, start) = bucket(4.0, 1);
        assert_eq!(bucket.take(start), Ok(()));
        let wait = bucket
            .take(start + Duration::from_millis(125))
            .expect_err("half a token");
        assert!((wait.as_secs_f64() - 0.125).abs() < 1e-9, "{wait:?}");
    }

    /// Answers every request at once with itself.
    struct Echo;

    impl Service<u32> for Echo {
        type Response = u32;
        type Error = std::convert::Infallible;
        type Future = std::future::Ready<Result<u32, Self::Error>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, n: u32) -> Self::Future {
            std::future::ready(Ok(n))
        }
    }

    #[tokio::test]
    async fn the_layer_spaces_requests_out_once_the_burst_is_spent() {
        use tower_layer::Layer;
        let limits = ApiLimits {
            qps: 20.0,
            burst: 2,
        };
        let mut service = ThrottleLayer { limits }.layer(Echo);
        let started = Instant::now();
        for n in 0..4 {
            std::future::poll_fn(|cx| service.poll_ready(cx))
                .await
                .expect("ready");
            assert_eq!(service.call(n).await, Ok(n));
        }
        // Two at once, then two more at 20 a second: at least 100 ms (an upper bound would be a
        // timing assertion on a shared machine).
        assert!(started.elapsed() >= Duration::from_millis(95));
    }
}
