//! Per-pod capacity (`sandbox.sluice.dev/max-rps`): offered load beyond it
//! is answered 503 by the pod itself, the way a revision that looked fine on
//! a preview's light traffic fails once production load reaches it.
//!
//! Each capped pod keeps an exponentially weighted moving average of the
//! requests per second routed to it, from every source. While it exceeds
//! `max-rps`, each request fails with probability `1 - max_rps / load`, so
//! the pod still serves about `max-rps` of them.
//!
//! Within a step, the engine first routes the requests of every source and
//! only then folds each pod's arrivals into its estimate and draws outcomes,
//! so every request to a pod in one step faces the same probability whatever
//! order the sources were processed in. Updating the estimate as requests
//! arrive would have made the first source's requests see a lighter load
//! than the last one's. Deciding on the previous step's estimate alone would
//! have been order-independent too, but it lags a step behind, and a long
//! single step (a test advancing 30 s at once) would be judged on whatever
//! came before it.

use std::{collections::HashMap, time::Duration};

use super::{metrics::PodSeriesId, rng::Rng};

/// One second: traffic ticks are 200 ms by default, and one tick's
/// share of a pod's requests (8 at 40 rps) is too noisy to act on.
const TIME_CONSTANT_S: f64 = 1.0;
/// A pod shedding load rejects before doing the work, so its 503s are fast:
/// they do not drag the latency percentiles up, only the error rate.
const SHED_LATENCY_S: f64 = 0.002;
const SHED_SIGMA: f64 = 0.25;
/// An estimate left alone this long has decayed to nothing (e^-60), so
/// dropping it is the same as keeping it.
const FORGET_AFTER: Duration = Duration::from_secs(60);
/// Gives capacity decisions a stream of their own: a cap that is never
/// reached draws nothing, so every other outcome stays as without it.
const STREAM: u64 = 0x6d61_782d_7270_7321;

#[derive(Debug, Clone, Copy)]
struct Estimate {
    rps: f64,
    /// Simulated time the estimate was last brought up to date.
    at: Duration,
}

#[derive(Debug)]
pub struct Capacity {
    rng: Rng,
    /// Simulated time: the sum of every step's elapsed time.
    clock: Duration,
    /// Length of the step that ends at `clock`.
    last_step: Duration,
    loads: HashMap<PodSeriesId, Estimate>,
}

impl Capacity {
    pub fn new(seed: u64) -> Self {
        Self {
            rng: Rng::new(seed ^ STREAM),
            clock: Duration::ZERO,
            last_step: Duration::ZERO,
            loads: HashMap::new(),
        }
    }

    /// Moves the clock to the end of a step of `elapsed`.
    pub fn step(&mut self, elapsed: Duration) {
        self.clock += elapsed;
        self.last_step = elapsed;
        let now = self.clock;
        self.loads
            .retain(|_, e| now.saturating_sub(e.at) < FORGET_AFTER);
    }

    /// Folds the `arrivals` a pod with `max_rps` received during the step
    /// just ended into its load estimate, and returns the share of them it
    /// rejects.
    pub fn overflow(&mut self, pod: PodSeriesId, max_rps: f64, arrivals: u64) -> f64 {
        let start = self.clock.saturating_sub(self.last_step);
        // A pod not seen before starts idle: overload builds up over about
        // a time constant, as a queue filling would, rather than at once.
        let estimate = self.loads.entry(pod).or_insert(Estimate {
            rps: 0.0,
            at: start,
        });
        // Steps in which the pod got no request were not folded in; they
        // only decay the estimate.
        let idle = start.saturating_sub(estimate.at).as_secs_f64();
        let mut rps = estimate.rps * (-idle / TIME_CONSTANT_S).exp();
        let dt = self.last_step.as_secs_f64();
        if dt > 0.0 {
            let weight = 1.0 - (-dt / TIME_CONSTANT_S).exp();
            rps += weight * (arrivals as f64 / dt - rps);
        }
        *estimate = Estimate {
            rps,
            at: self.clock,
        };
        if rps > max_rps {
            1.0 - max_rps / rps
        } else {
            0.0
        }
    }

    /// Whether one request to a pod rejecting `share` of them is rejected,
    /// and if so how long the rejection took.
    pub fn reject(&mut self, share: f64) -> Option<f64> {
        self.rng
            .chance(share)
            .then(|| self.rng.log_normal(SHED_LATENCY_S, SHED_SIGMA))
    }
}

#[cfg(test)]
mod tests {
    use super::super::metrics::Metrics;
    use super::*;

    fn a_pod() -> PodSeriesId {
        Metrics::default().pod("prod", "shop-aaa-1")
    }

    /// Overflow share of a pod capped at 10 rps after `ticks` steps of
    /// `tick_ms` with `per_tick` arrivals each.
    fn overflow_after(ticks: u32, tick_ms: u64, per_tick: u64) -> f64 {
        let mut capacity = Capacity::new(1);
        let pod = a_pod();
        let tick = Duration::from_millis(tick_ms);
        let mut share = 0.0;
        for _ in 0..ticks {
            capacity.step(tick);
            share = capacity.overflow(pod, 10.0, per_tick);
        }
        share
    }

    #[test]
    fn estimate_settles_on_the_offered_load() {
        // 8 per 200 ms tick is 40 rps: a quarter served, three quarters shed.
        assert!((overflow_after(100, 200, 8) - 0.75).abs() < 1e-6);
        // One long step sees its own load, not the idle time before it.
        assert!((overflow_after(1, 30_000, 1200) - 0.75).abs() < 1e-6);
        assert_eq!(overflow_after(100, 200, 2), 0.0);
    }

    #[test]
    fn load_ramps_up_over_about_a_second() {
        let first = overflow_after(1, 200, 8);
        let later = overflow_after(5, 200, 8);
        assert_eq!(first, 0.0, "40 rps × (1 - e^-0.2) is under 10");
        assert!(later > 0.5 && later < 0.75, "{later}");
    }

    #[test]
    fn idle_time_decays_the_estimate() {
        let mut capacity = Capacity::new(1);
        let pod = a_pod();
        let tick = Duration::from_millis(200);
        for _ in 0..50 {
            capacity.step(tick);
            capacity.overflow(pod, 10.0, 8);
        }
        // Three idle seconds: 40 × e^-3 ≈ 2 rps, then one light tick.
        capacity.step(Duration::from_secs(3));
        capacity.step(tick);
        assert_eq!(capacity.overflow(pod, 10.0, 1), 0.0);
    }

    #[test]
    fn rejections_draw_nothing_when_nothing_overflows() {
        let mut capacity = Capacity::new(1);
        let before = capacity.rng.clone().next_u64();
        assert_eq!(capacity.reject(0.0), None);
        assert_eq!(capacity.rng.next_u64(), before);
        let latency = capacity.reject(1.0).unwrap();
        assert!(latency > 0.0 && latency < 0.01, "{latency}");
    }
}
