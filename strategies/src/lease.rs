//! Leader election on a `coordination.k8s.io/v1` Lease, by the protocol of client-go's
//! `leaderelection` package (the one kube-controller-manager, controller-runtime and Argo Rollouts
//! use): the decisions only, with the API server and the clock outside.
//!
//! A candidate reads the Lease, notes on its own monotonic clock when it last saw the record
//! change, and takes the Lease over only when its holder has let it go or has not renewed it for
//! the record's `leaseDurationSeconds` since then. No two clocks are compared: renewTime is
//! written for people, never read. Writes carry the resourceVersion read, so of two candidates
//! racing for a free Lease the server lets one win.
//!
//! The leader counts its term from the moment it *sent* its last successful renewal and stops
//! writing `renew_deadline` after it, which is shorter than the lease duration: by the time any
//! other candidate may take the Lease, this one has stopped.

use std::time::Duration;

/// The times of an election, named as client-go and kube-controller-manager's flags name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// How long a holder that stopped renewing keeps the Lease, as others see it.
    pub lease_duration: Duration,
    /// How long the leader goes on after its last successful renewal; then it stops writing.
    pub renew_deadline: Duration,
    /// Between two tries, to renew or to acquire.
    pub retry_period: Duration,
}

impl Default for Timing {
    /// client-go's and kube-controller-manager's defaults.
    fn default() -> Self {
        Timing {
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// client-go waits up to this factor more than the retry period between tries.
pub const RETRY_JITTER: f64 = 1.2;

/// Times that cannot give one leader at a time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimingError {
    #[error("the lease duration must be a whole number of seconds, at least 1 (not {0:?})")]
    LeaseDuration(Duration),
    #[error(
        "the renew deadline ({renew_deadline:?}) must be shorter than the lease duration \
         ({lease_duration:?}): a leader that cannot renew must stop before its lease can be taken"
    )]
    RenewDeadline {
        renew_deadline: Duration,
        lease_duration: Duration,
    },
    #[error(
        "the retry period ({retry_period:?}) must be positive and, times {RETRY_JITTER}, shorter \
         than the renew deadline ({renew_deadline:?}): the leader must get a second try to renew"
    )]
    RetryPeriod {
        retry_period: Duration,
        renew_deadline: Duration,
    },
}

impl Timing {
    /// The same rules as client-go's `NewLeaderElector`, with whole seconds for the duration the
    /// Lease records.
    pub fn check(&self) -> Result<(), TimingError> {
        let whole_seconds = self.lease_duration.subsec_nanos() == 0;
        if !whole_seconds || self.lease_duration < Duration::from_secs(1) {
            return Err(TimingError::LeaseDuration(self.lease_duration));
        }
        if self.renew_deadline >= self.lease_duration {
            return Err(TimingError::RenewDeadline {
                renew_deadline: self.renew_deadline,
                lease_duration: self.lease_duration,
            });
        }
        if self.retry_period.is_zero()
            || self.retry_period.mul_f64(RETRY_JITTER) >= self.renew_deadline
        {
            return Err(TimingError::RetryPeriod {
                retry_period: self.retry_period,
                renew_deadline: self.renew_deadline,
            });
        }
        Ok(())
    }

    /// The wait before the next try: the retry period, up to [`RETRY_JITTER`] times it for a
    /// candidate that does not lead (`jitter` in 0..1), so that candidates do not try in step.
    pub fn next_try(&self, leading: bool, jitter: f64) -> Duration {
        if leading {
            self.retry_period
        } else {
            self.retry_period
                .mul_f64(1.0 + (RETRY_JITTER - 1.0) * jitter.clamp(0.0, 1.0))
        }
    }

    /// Until when a leader whose latest successful renewal was sent at `sent` may write.
    pub fn leading_until(&self, sent: Duration) -> Duration {
        sent + self.renew_deadline
    }

    /// The Lease's `leaseDurationSeconds`.
    pub fn lease_duration_seconds(&self) -> i32 {
        i32::try_from(self.lease_duration.as_secs()).unwrap_or(i32::MAX)
    }
}

/// A Lease as read from the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseRead<'a> {
    pub resource_version: &'a str,
    /// None or empty: nobody holds it (a holder that stepped down clears it).
    pub holder: Option<&'a str>,
    pub lease_duration_seconds: Option<i32>,
    pub transitions: Option<i32>,
}

/// What a candidate has seen of the Lease, and when it last saw it change (on its own clock).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    pub resource_version: String,
    pub holder: Option<String>,
    pub lease_duration: Duration,
    pub transitions: i32,
    pub changed_at: Duration,
}

/// The observation after reading `read` at `now`: the time of change moves only when the record
/// did (a renewal changes its resourceVersion).
pub fn observe(previous: Option<&Observation>, read: LeaseRead<'_>, now: Duration) -> Observation {
    let changed_at = match previous {
        Some(seen) if seen.resource_version == read.resource_version => seen.changed_at,
        _ => now,
    };
    Observation {
        resource_version: read.resource_version.to_string(),
        holder: read.holder.filter(|h| !h.is_empty()).map(str::to_string),
        // A record without a duration (or a nonsense one) lapses at once, as in client-go.
        lease_duration: Duration::from_secs(
            u64::try_from(read.lease_duration_seconds.unwrap_or(0)).unwrap_or(0),
        ),
        transitions: read.transitions.unwrap_or(0).max(0),
        changed_at,
    }
}

/// What to do about the Lease now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// There is no Lease: create it, held by us.
    Create,
    /// We hold it: write it again, keeping its acquire time.
    Renew,
    /// Nobody holds it, or its holder let it lapse: write it as ours (a transition when it had
    /// another holder).
    Acquire,
    /// Another holder's Lease is current until then: stay a follower.
    Follow { holder: String, until: Duration },
}

/// The next step of candidate `me`, having seen `seen` (None: no Lease exists) at `now`.
pub fn attempt(me: &str, seen: Option<&Observation>, now: Duration) -> Attempt {
    let Some(seen) = seen else {
        return Attempt::Create;
    };
    match seen.holder.as_deref() {
        Some(holder) if holder == me => Attempt::Renew,
        None => Attempt::Acquire,
        Some(holder) => {
            let until = seen.changed_at + seen.lease_duration;
            if now < until {
                Attempt::Follow {
                    holder: holder.to_string(),
                    until,
                }
            } else {
                Attempt::Acquire
            }
        }
    }
}

/// The holder fields of the Lease that `attempt` writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// None: the Lease is released.
    pub holder: Option<String>,
    pub lease_duration_seconds: i32,
    pub transitions: i32,
    /// A new acquire time (now); false: the one the Lease has stays.
    pub new_acquire_time: bool,
}

/// What to write for `attempt` (None for [`Attempt::Follow`]: nothing).
pub fn claim(
    me: &str,
    attempt: &Attempt,
    seen: Option<&Observation>,
    timing: &Timing,
) -> Option<Claim> {
    let transitions = seen.map_or(0, |s| s.transitions);
    let (transitions, new_acquire_time) = match attempt {
        Attempt::Follow { .. } => return None,
        Attempt::Create => (0, true),
        Attempt::Renew => (transitions, false),
        // A Lease nobody held (released, or never held) counts no transition, as in client-go,
        // where a transition is a change of holder.
        Attempt::Acquire if seen.and_then(|s| s.holder.as_deref()).is_some() => {
            (transitions.saturating_add(1), true)
        }
        Attempt::Acquire => (transitions, true),
    };
    Some(Claim {
        holder: Some(me.to_string()),
        lease_duration_seconds: timing.lease_duration_seconds(),
        transitions,
        new_acquire_time,
    })
}

/// What a leader writes as it steps down: no holder and a lease of one second, so that the next
/// candidate takes over at its next try instead of waiting out the duration.
pub fn release(seen: &Observation) -> Claim {
    Claim {
        holder: None,
        lease_duration_seconds: 1,
        transitions: seen.transitions,
        new_acquire_time: false,
    }
}

/// The Lease's name for a controller's scope: `sluice` for one controller of the whole cluster;
/// with `--namespaces` or `--shard-selector`, one per scope, so that controllers that split a
/// cluster each elect their own leader. `digest` names the scope in a few hex digits.
pub fn lease_name(
    namespaces: &[String],
    shard_selector: Option<&str>,
    digest: impl Fn(&str) -> String,
) -> String {
    if namespaces.is_empty() && shard_selector.is_none() {
        return "sluice".to_string();
    }
    let scope = format!(
        "{}|{}",
        namespaces.join(","),
        shard_selector.unwrap_or_default()
    );
    format!("sluice-{}", digest(&scope))
}

#[cfg(test)]
#[path = "lease_tests.rs"]
mod tests;
