//! Leader election: one elector task keeps the Lease of the controller's scope, by the protocol
//! in `sluice_strategies::lease`, and publishes until when this replica may write. Every write of
//! the controller passes [`fence`], which refuses it once that time has passed; the reconcile
//! loop runs only while leading, and every Rollout is reconciled again when a term begins.

pub mod fence;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Client;
use kube::api::{Api, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use sluice_strategies::lease::{self, Attempt, Claim, LeaseRead, Observation, Timing};
use tokio::sync::watch;

/// Which Lease, held under which name, with which times.
#[derive(Clone)]
pub struct Election {
    pub namespace: String,
    pub lease: String,
    /// Unique among the candidates: the pod's name and a random suffix.
    pub identity: String,
    pub timing: Timing,
    /// The elector's own client ([`crate::metrics::election_client`]); None: the controller's.
    pub client: Option<Client>,
}

impl std::fmt::Debug for Election {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Election")
            .field("namespace", &self.namespace)
            .field("lease", &self.lease)
            .field("identity", &self.identity)
            .field("timing", &self.timing)
            .finish_non_exhaustive()
    }
}

/// The most a stopping leader waits to release its Lease: with the reconciles' grace, a stop
/// takes under 10 s whatever the retry period.
const RELEASE_BUDGET: Duration = Duration::from_secs(2);

impl Election {
    /// The Lease's name for the controller's scope, see [`lease::lease_name`].
    pub fn lease_name(namespaces: &[String], shard_selector: Option<&str>) -> String {
        lease::lease_name(namespaces, shard_selector, |scope| {
            crate::digest::sha256_hex(scope)[..10].to_string()
        })
    }

    /// The pod's name (`POD_NAME`): unique among live pods, and the same for a container the
    /// kubelet restarts after a crash, which then takes its Lease back at once instead of waiting
    /// out its own. Outside a pod, the host's name and a random suffix, as client-go's candidates
    /// name themselves: two processes on one host are two candidates.
    pub fn default_identity() -> String {
        let pod = std::env::var("POD_NAME")
            .ok()
            .map(|name| name.trim().to_string());
        if let Some(pod) = pod.filter(|name| !name.is_empty()) {
            return pod;
        }
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|name| name.trim().to_string())
            .ok()
            .filter(|name| !name.is_empty())
            .unwrap_or_else(|| "sluice".to_string());
        let suffix = (crate::controller::jitter() * f64::from(u32::MAX)) as u32;
        format!("{host}_{suffix:08x}")
    }
}

/// Until when this replica may write, shared by the elector, the fence and the reconcile loop.
#[derive(Clone)]
pub struct Leadership(Arc<Shared>);

struct Shared {
    elected: bool,
    /// The end of the current term; None: not leading.
    until: watch::Sender<Option<Instant>>,
    /// Incremented at the start of each term.
    terms: watch::Sender<u64>,
}

impl Leadership {
    /// No election (`--leader-elect=false`): this replica always leads.
    pub fn unelected() -> Self {
        Self::new(false)
    }

    /// An election not won yet.
    pub fn elected() -> Self {
        Self::new(true)
    }

    fn new(elected: bool) -> Self {
        Leadership(Arc::new(Shared {
            elected,
            until: watch::channel(None).0,
            terms: watch::channel(0).0,
        }))
    }

    /// Whether this replica may reconcile and write now. It reads the clock, so a leader whose
    /// elector is stuck stops at the end of its term all the same.
    pub fn is_leading(&self) -> bool {
        !self.0.elected
            || self
                .0
                .until
                .borrow()
                .is_some_and(|until| Instant::now() < until)
    }

    /// Changes at the start of every term.
    pub fn terms(&self) -> watch::Receiver<u64> {
        self.0.terms.subscribe()
    }

    /// How long this replica may still write; None: always (no election).
    pub fn time_left(&self) -> Option<Duration> {
        if !self.0.elected {
            return None;
        }
        let until = *self.0.until.borrow();
        Some(until.map_or(Duration::ZERO, |until| {
            until.saturating_duration_since(Instant::now())
        }))
    }

    fn lead_until(&self, until: Instant) {
        // A term that ended before it could be published (a renewal that took its whole
        // deadline) begins nothing.
        if until <= Instant::now() {
            self.step_down();
            return;
        }
        let began = !self.is_leading();
        self.0.until.send_replace(Some(until));
        if began {
            self.0.terms.send_modify(|term| *term += 1);
        }
    }

    fn step_down(&self) {
        self.0.until.send_replace(None);
    }
}

/// The elector: keeps trying to hold the Lease until `stop` turns true, then releases it if it
/// holds it. Requests of a leader are bounded by what is left of its term, a follower's by the
/// renew deadline, so a slow API server cannot hold a term open.
pub async fn elect(
    client: Client,
    election: Election,
    leadership: Leadership,
    mut stop: watch::Receiver<bool>,
) {
    let client = election.client.clone().unwrap_or(client);
    let api: Api<Lease> = Api::namespaced(client, &election.namespace);
    // The Lease's changes as they happen: a follower times the holder's lease from the renewal
    // itself, not from its next read of it, and tries at once when the holder releases it.
    let mut changes = watcher(
        api.clone(),
        watcher::Config::default().fields(&format!("metadata.name={}", election.lease)),
    )
    .default_backoff()
    .applied_objects()
    .boxed();
    let mut elector = Elector {
        api,
        election,
        leadership,
        epoch: Instant::now(),
        seen: None,
        latest: None,
    };
    let lease = format!("{}/{}", elector.election.namespace, elector.election.lease);
    tracing::info!(%lease, identity = %elector.election.identity, "leader election starts");
    loop {
        let mut lapses_at = None;
        let started = elector.epoch.elapsed();
        let leading = elector.leadership.is_leading();
        let budget = match elector.term_end() {
            Some(end) if leading => end.saturating_sub(started),
            _ => elector.election.timing.renew_deadline,
        };
        let outcome = tokio::select! {
            outcome = tokio::time::timeout(budget, elector.try_once()) => outcome,
            _ = stop.wait_for(|stop| *stop) => break,
        };
        match outcome {
            Ok(Ok(Tried::Leads)) => {
                let until = elector.epoch + elector.election.timing.leading_until(started);
                if !leading {
                    tracing::info!(%lease, identity = %elector.election.identity, "leading");
                }
                elector.leadership.lead_until(until);
            }
            Ok(Ok(Tried::Follows(holder, lapses))) => {
                if leading {
                    tracing::warn!(%lease, %holder, "the lease has another holder: writes stop");
                }
                elector.leadership.step_down();
                lapses_at = lapses;
            }
            Ok(Err(error)) => {
                tracing::warn!(%lease, %error, leading, "cannot read or write the lease");
            }
            Err(_) => {
                tracing::warn!(%lease, leading, budget_ms = budget.as_millis() as u64,
                    "the API server did not answer about the lease in time");
            }
        }
        if leading && !elector.leadership.is_leading() {
            tracing::warn!(%lease, "the lease was not renewed within the renew deadline: writes stop");
        }
        let mut wait = elector
            .election
            .timing
            .next_try(elector.leadership.is_leading(), crate::controller::jitter());
        // A follower tries again the moment the holder's Lease would lapse, not up to a retry
        // period later.
        if let Some(lapses) = lapses_at {
            wait = wait.min(lapses.saturating_sub(elector.epoch.elapsed()));
        }
        let next_try = tokio::time::sleep(wait);
        tokio::pin!(next_try);
        let stopped = loop {
            tokio::select! {
                _ = &mut next_try => break false,
                _ = stop.wait_for(|stop| *stop) => break true,
                change = changes.next() => match change {
                    Some(Ok(changed)) => {
                        if elector.noticed(changed) {
                            break false;
                        }
                    }
                    Some(Err(error)) => tracing::debug!(%lease, %error, "the lease's watch"),
                    // A watcher's stream never ends; were it to, the reads alone go on.
                    None => changes = futures::stream::pending().boxed(),
                },
            }
        };
        if stopped {
            break;
        }
    }
    elector.release(&lease).await;
}

enum Tried {
    Leads,
    /// Another holder, or a race lost to one; when its Lease lapses if it is not renewed.
    Follows(String, Option<Duration>),
}

struct Elector {
    api: Api<Lease>,
    election: Election,
    leadership: Leadership,
    epoch: Instant,
    seen: Option<Observation>,
    /// The Lease as last read or written.
    latest: Option<Lease>,
}

impl Elector {
    /// Records a change of the Lease seen on its watch; whether to try now (a follower that
    /// sees it released).
    fn noticed(&mut self, changed: Lease) -> bool {
        // The leader knows its Lease from its own writes; a late event could only make it older.
        if self.leadership.is_leading() {
            return false;
        }
        let now = self.epoch.elapsed();
        self.seen = Some(lease::observe(self.seen.as_ref(), read_of(&changed), now));
        self.latest = Some(changed);
        !self.leadership.is_leading() && self.seen.as_ref().is_some_and(|s| s.holder.is_none())
    }

    fn term_end(&self) -> Option<Duration> {
        let until = (*self.leadership.0.until.borrow())?;
        Some(until.saturating_duration_since(self.epoch))
    }

    async fn try_once(&mut self) -> Result<Tried, kube::Error> {
        let read = self.api.get_opt(&self.election.lease).await?;
        // Seen when the answer came, as in client-go: a record that changed while the read was
        // on its way is timed from its arrival, never from before it.
        let now = self.epoch.elapsed();
        self.seen = read
            .as_ref()
            .map(|l| lease::observe(self.seen.as_ref(), read_of(l), now));
        self.latest = read;
        let me = self.election.identity.as_str();
        let attempt = lease::attempt(me, self.seen.as_ref(), now);
        let Some(claim) = lease::claim(me, &attempt, self.seen.as_ref(), &self.election.timing)
        else {
            return Ok(match attempt {
                Attempt::Follow { holder, until } => Tried::Follows(holder, Some(until)),
                _ => Tried::Follows(String::new(), None),
            });
        };
        let body = lease_body(&self.election, self.latest.as_ref(), &claim);
        let written = match attempt {
            Attempt::Create => self.api.create(&PostParams::default(), &body).await,
            _ => {
                self.api
                    .replace(&self.election.lease, &PostParams::default(), &body)
                    .await
            }
        };
        match written {
            Ok(lease) => {
                self.seen = Some(lease::observe(self.seen.as_ref(), read_of(&lease), now));
                self.latest = Some(lease);
                Ok(Tried::Leads)
            }
            // Another candidate wrote first: read again at the next try.
            Err(kube::Error::Api(status)) if status.code == 409 => {
                Ok(Tried::Follows("another candidate".to_string(), None))
            }
            Err(error) => Err(error),
        }
    }

    /// Steps down, then clears the holder so that the next candidate takes over at once.
    async fn release(&mut self, lease: &str) {
        let was_leading = self.leadership.is_leading();
        self.leadership.step_down();
        if !was_leading {
            return;
        }
        match tokio::time::timeout(RELEASE_BUDGET, self.clear_holder()).await {
            Ok(Ok(true)) => tracing::info!(%lease, "lease released"),
            Ok(Ok(false)) => {
                tracing::info!(%lease, "the lease has another holder: nothing to release")
            }
            Ok(Err(error)) => tracing::warn!(%lease, %error, "cannot release the lease"),
            Err(_) => tracing::warn!(%lease, "the lease's release got no answer in time"),
        }
    }

    /// Reads the Lease again (the last answer may be older than the last write), and clears the
    /// holder if it is still this replica.
    async fn clear_holder(&mut self) -> Result<bool, kube::Error> {
        let Some(current) = self.api.get_opt(&self.election.lease).await? else {
            return Ok(false);
        };
        let seen = lease::observe(None, read_of(&current), self.epoch.elapsed());
        if seen.holder.as_deref() != Some(self.election.identity.as_str()) {
            return Ok(false);
        }
        let body = lease_body(&self.election, Some(&current), &lease::release(&seen));
        self.api
            .replace(&self.election.lease, &PostParams::default(), &body)
            .await?;
        Ok(true)
    }
}

fn read_of(lease: &Lease) -> LeaseRead<'_> {
    let spec = lease.spec.as_ref();
    LeaseRead {
        resource_version: lease
            .metadata
            .resource_version
            .as_deref()
            .unwrap_or_default(),
        holder: spec.and_then(|s| s.holder_identity.as_deref()),
        lease_duration_seconds: spec.and_then(|s| s.lease_duration_seconds),
        transitions: spec.and_then(|s| s.lease_transitions),
    }
}

/// The Lease to write for `claim`: the one read (its resourceVersion guards the write), or a new
/// one.
fn lease_body(election: &Election, current: Option<&Lease>, claim: &Claim) -> Lease {
    let now = MicroTime(k8s_openapi::jiff::Timestamp::now());
    let mut lease = current.cloned().unwrap_or_else(|| Lease {
        metadata: ObjectMeta {
            name: Some(election.lease.clone()),
            namespace: Some(election.namespace.clone()),
            labels: Some(
                [(
                    sluice_strategies::objects::MANAGED_BY.to_string(),
                    "sluice".to_string(),
                )]
                .into(),
            ),
            ..ObjectMeta::default()
        },
        spec: None,
    });
    lease.metadata.managed_fields = None;
    let previous = lease.spec.take().unwrap_or_default();
    let acquire_time = if claim.new_acquire_time {
        Some(now.clone())
    } else {
        previous.acquire_time
    };
    lease.spec = Some(LeaseSpec {
        holder_identity: claim.holder.clone(),
        lease_duration_seconds: Some(claim.lease_duration_seconds),
        lease_transitions: Some(claim.transitions),
        acquire_time,
        renew_time: Some(now),
        ..previous
    });
    lease
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_an_election_a_replica_always_leads_with_no_bound() {
        let always = Leadership::unelected();
        assert!(always.is_leading());
        assert_eq!(always.time_left(), None);
    }

    #[test]
    fn a_term_lasts_until_its_end_and_counts_once() {
        let leadership = Leadership::elected();
        let terms = leadership.terms();
        assert!(!leadership.is_leading());
        assert_eq!(leadership.time_left(), Some(Duration::ZERO));
        leadership.lead_until(Instant::now() + Duration::from_secs(60));
        assert!(leadership.is_leading());
        assert!(
            leadership
                .time_left()
                .is_some_and(|left| left > Duration::from_secs(59))
        );
        // A renewal extends the term: no new term.
        leadership.lead_until(Instant::now() + Duration::from_secs(90));
        assert_eq!(*terms.borrow(), 1);
        leadership.step_down();
        assert!(!leadership.is_leading());
        assert_eq!(leadership.time_left(), Some(Duration::ZERO));
        leadership.lead_until(Instant::now() + Duration::from_secs(60));
        assert_eq!(*terms.borrow(), 2, "leading again is a new term");
    }

    #[test]
    fn a_term_over_before_it_was_published_begins_nothing() {
        let leadership = Leadership::elected();
        let terms = leadership.terms();
        leadership.lead_until(Instant::now() + Duration::from_secs(60));
        leadership.lead_until(Instant::now() - Duration::from_millis(1));
        assert!(!leadership.is_leading(), "the stale end stops the term");
        assert_eq!(*terms.borrow(), 1);
    }

    #[test]
    fn each_candidate_has_its_own_identity() {
        let (a, b) = (Election::default_identity(), Election::default_identity());
        assert_ne!(a, b);
        assert!(a.contains('_'), "{a}");
        assert_eq!(Election::lease_name(&[], None), "sluice");
        let shard = Election::lease_name(&[], Some("sluice.dev/shard=a"));
        assert!(
            shard.starts_with("sluice-") && shard.len() == "sluice-".len() + 10,
            "{shard}"
        );
        assert_ne!(shard, Election::lease_name(&[], Some("sluice.dev/shard=b")));
    }
}
