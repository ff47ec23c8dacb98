//! The reconcile loop: read the world from reflector caches, ask the core, write what it says, and
//! record the status and events. One place for every side effect of a release.

pub(crate) mod apply;
pub mod cache;
pub mod commands;
pub mod compact;
pub(crate) mod index;
pub(crate) mod observe;
mod own_writes;
pub mod raw;
mod reconcile;
pub mod repairs;
mod watches;
pub use watches::{trim, trim_deployment};

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::ListParams;
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use kube::{Client, Resource, ResourceExt};
use sluice_strategies::Presets;
use sluice_strategies::index::Kind;
pub use sluice_strategies::waits::{Failure, retry_after};
use tokio::net::TcpListener;

use crate::analysis::Analyst;
use crate::crd::Rollout;
use crate::error::Error;

pub use apply::FIELD_MANAGER;
pub use cache::{Cache, Scope};
use raw::RawDeployment;
use watches::ScopeWatches;

/// How the controller runs.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    pub prometheus_url: String,
    /// Bound on every Prometheus query.
    pub query_timeout: Duration,
    /// The credential Prometheus wants, if any.
    pub prometheus_auth: Option<crate::analysis::PrometheusAuth>,
    /// How an https:// Prometheus is verified, and the client certificate it may want.
    pub prometheus_tls: crate::analysis::PrometheusTls,
    /// The class of the ingress-nginx whose canary annotations sluice writes (`--ingress-class`):
    /// a Rollout on an Ingress of another class is invalid. None: any class.
    pub ingress_class: Option<String>,
    /// The namespaces watched (`--namespaces`).
    pub scope: Scope,
    /// Only the Rollouts whose labels match (`--shard-selector`): several controllers can split a
    /// cluster between them.
    pub shard_selector: Option<String>,
    /// Reconciles running at once, at most (`--concurrency`).
    pub concurrency: u16,
    /// Where the controller's metrics go: shared with the kube client's layer
    /// ([`crate::metrics::metered_client`]) so that its requests are counted beside the rest.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// The Lease this controller must hold to reconcile and write; None: it always does
    /// (`--leader-elect=false`).
    pub election: Option<crate::leader::Election>,
}

impl ControllerConfig {
    pub fn new(prometheus_url: impl Into<String>) -> Self {
        ControllerConfig {
            prometheus_url: prometheus_url.into(),
            query_timeout: Duration::from_secs(5),
            prometheus_auth: None,
            prometheus_tls: crate::analysis::PrometheusTls::default(),
            ingress_class: None,
            scope: Scope::AllNamespaces,
            shard_selector: None,
            concurrency: DEFAULT_CONCURRENCY,
            metrics: Arc::new(crate::metrics::Metrics::new()),
            election: None,
        }
    }
}

/// Reconciles at once by default: enough to keep a hundred releases' checks on time (each waits
/// on Prometheus; at 16 the p99 of their lateness was 1 s in the scale benchmark, at 32 20 ms),
/// few enough that a restart among ten thousand Rollouts does not flood the API server.
pub const DEFAULT_CONCURRENCY: u16 = 32;

/// What every reconcile shares.
pub struct Context {
    /// The controller's client: its writes are fenced by the leadership.
    pub client: Client,
    /// The API's writes on behalf of its callers (a release, a command), not fenced: a follower
    /// records a command in the Rollout for the leader to consume.
    pub callers_client: Client,
    /// Whether this replica may reconcile now.
    pub leadership: crate::leader::Leadership,
    pub presets: Presets,
    pub analyst: Analyst,
    pub rollouts: Cache<Rollout>,
    pub deployments: Cache<RawDeployment>,
    pub services: Cache<Service>,
    pub ingresses: Cache<Ingress>,
    /// Only sluice's own ControllerRevisions (the template records), by label.
    pub revisions: Cache<raw::RawControllerRevision>,
    /// Which Rollouts each object concerns, and what each Rollout controls.
    pub index: Arc<index::Index>,
    pub recorder: Recorder,
    /// Our latest write to each Rollout, so that no reconcile decides from a cache behind it.
    pub own_writes: own_writes::OwnWrites,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// `--ingress-class`, if given.
    pub ingress_class: Option<String>,
    /// One permit per reconcile that may run: `--concurrency` across every watched namespace
    /// (each namespace's controller is bounded by it too).
    pub reconcile_permits: tokio::sync::Semaphore,
    /// Failed reconciles in a row, by Rollout: how long the next retry waits.
    pub failures: Failures,
    /// What sluice wrote, as last seen in place: a write that puts it back is a repair.
    pub in_place: repairs::InPlace,
}

impl Context {
    /// Waits, for at most `limit`, until every cache holds a full first list. Before that, a cache
    /// shows a cluster without the target, its slots or its Ingress: a valid Rollout would be
    /// reported invalid, and a release would be decided on a world that is not there.
    pub async fn caches_synced(&self, limit: Duration) -> bool {
        let synced = async {
            let all = tokio::join!(
                self.deployments.wait_until_ready(),
                self.services.wait_until_ready(),
                self.ingresses.wait_until_ready(),
                self.revisions.wait_until_ready()
            );
            all.0 && all.1 && all.2 && all.3
        };
        tokio::time::timeout(limit, synced).await.unwrap_or(false)
    }
}

/// The Rollout that controls an object, if any: an object it owns wakes it whatever its name (a
/// canary object of an older spec, deleted by hand, is noticed at once).
fn controlling_rollout(meta: &kube::api::ObjectMeta) -> Option<ObjectRef<Rollout>> {
    let owner = observe::rollout_controller(meta)?;
    let namespace = meta.namespace.as_deref()?;
    Some(ObjectRef::new(&owner.name).within(namespace))
}

/// The Rollouts a changed object wakes: those that reference it by name, looked up in the index,
/// and the one that controls it.
fn wakes<K: Resource>(
    index: Arc<index::Index>,
    kind: Kind,
    metrics: Arc<crate::metrics::Metrics>,
) -> impl Fn(K) -> Vec<ObjectRef<Rollout>> + Send + Sync + 'static {
    move |object: K| {
        let meta = object.meta();
        let namespace = meta.namespace.as_deref().unwrap_or_default();
        let name = meta.name.as_deref().unwrap_or_default();
        let mut wake = index.rollouts_for(kind, namespace, name);
        if let Some(owner) = controlling_rollout(meta).filter(|o| !wake.contains(o)) {
            wake.push(owner);
        }
        metrics.count_wakes(kind_name(kind), wake.len());
        wake
    }
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Deployment => "Deployment",
        Kind::Service => "Service",
        Kind::Ingress => "Ingress",
    }
}

/// The HTTP API, when the controller serves it: where, and who may call it.
pub struct ApiServer {
    pub listener: TcpListener,
    pub auth: crate::api::Auth,
    pub limiter: crate::api::RateLimiter,
}

/// Asks the API server once whether it takes the shard selector, so that a bad one stops the
/// start with its answer instead of a watch that retries it forever.
async fn check_shard_selector(client: &Client, config: &ControllerConfig) -> Result<(), Error> {
    let Some(selector) = config.shard_selector.as_deref() else {
        return Ok(());
    };
    let namespace = config.scope.watches().into_iter().next().flatten();
    watches::api::<Rollout>(client, namespace.as_deref())
        .list_metadata(&ListParams::default().labels(selector).limit(1))
        .await
        .map(|_| ())
        .map_err(|source| Error::ShardSelector {
            selector: selector.to_string(),
            source,
        })
}

/// Runs the controller until `shutdown` completes; serves `/healthz` and `/readyz` on `listener`,
/// and the HTTP API on its own listener if `api` is given.
pub async fn run(
    client: Client,
    config: ControllerConfig,
    listener: TcpListener,
    api: Option<ApiServer>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) -> Result<(), Error> {
    let presets = Presets::embedded()?;
    if let Some(election) = &config.election {
        election.timing.check()?;
    }
    check_shard_selector(&client, &config).await?;
    let (leadership, writer) = match &config.election {
        Some(election) => {
            let leadership = crate::leader::Leadership::elected();
            let lease = format!("{}/{}", election.namespace, election.lease);
            let writer = crate::leader::fence::fenced(client.clone(), leadership.clone(), lease);
            (leadership, writer)
        }
        None => (crate::leader::Leadership::unelected(), client.clone()),
    };
    let metrics = config.metrics.clone();
    let analyst = Analyst::with_tls(
        &config.prometheus_url,
        config.query_timeout,
        &config.prometheus_tls,
    )?
    .authenticated_by(config.prometheus_auth.clone())
    .observed_by(metrics.clone());
    let index = Arc::new(index::Index::default());
    let scopes: Vec<ScopeWatches> = config
        .scope
        .watches()
        .into_iter()
        .map(|namespace| {
            ScopeWatches::new(&client, namespace, config.shard_selector.as_deref(), &index)
        })
        .collect();
    let mut context = Context {
        client: writer.clone(),
        callers_client: client.clone(),
        leadership: leadership.clone(),
        presets,
        analyst,
        rollouts: Cache::default(),
        deployments: Cache::default(),
        services: Cache::default(),
        ingresses: Cache::default(),
        revisions: Cache::default(),
        index: index.clone(),
        recorder: Recorder::new(
            writer,
            Reporter {
                controller: "sluice".into(),
                instance: config.election.as_ref().map(|e| e.identity.clone()),
            },
        ),
        own_writes: own_writes::OwnWrites::default(),
        metrics: metrics.clone(),
        ingress_class: config.ingress_class.clone(),
        reconcile_permits: tokio::sync::Semaphore::new(usize::from(config.concurrency.max(1))),
        failures: Failures::default(),
        in_place: repairs::InPlace::default(),
    };
    for scope in &scopes {
        let namespace = scope.namespace.clone();
        context
            .rollouts
            .add(namespace.clone(), scope.rollouts.0.clone());
        context
            .deployments
            .add(namespace.clone(), scope.deployments.0.clone());
        context
            .services
            .add(namespace.clone(), scope.services.0.clone());
        context
            .ingresses
            .add(namespace.clone(), scope.ingresses.0.clone());
        context.revisions.add(namespace, scope.revisions.clone());
    }
    let context = Arc::new(context);
    let ready = crate::server::Readiness::default();
    let stores_ready = ready.clone();
    let synced = context.clone();
    tokio::spawn(async move {
        if synced.caches_synced(Duration::MAX).await {
            stores_ready.set_ready();
        }
    });
    let (server_stop, server_stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(crate::server::serve(
        listener,
        ready,
        metrics.clone(),
        async move {
            let _ = server_stopped.await;
        },
    ));
    let (api_stop, api_stopping) = tokio::sync::watch::channel(false);
    let api = api.map(|api| {
        let state = crate::api::ApiState::new(
            context.clone(),
            context.rollouts.clone(),
            api.auth,
            api.limiter,
            api_stopping.clone(),
        );
        let mut stopping = api_stopping;
        tokio::spawn(crate::api::serve(api.listener, state, async move {
            let _ = stopping.wait_for(|stop| *stop).await;
        }))
    });

    let (elector_stop, elector_stopping) = tokio::sync::watch::channel(false);
    let elector = config.election.clone().map(|election| {
        tokio::spawn(crate::leader::elect(
            client.clone(),
            election,
            leadership.clone(),
            elector_stopping,
        ))
    });

    let shutdown = shutdown.shared();
    let mut records = Vec::new();
    let controllers = scopes.into_iter().map(|scope| {
        records.push(scope.records);
        Controller::for_stream(scope.rollouts.1, scope.rollouts.0)
            .with_config(controller::Config::default().concurrency(config.concurrency))
            // A slot, or the target, of a Rollout changed or went away (a deleted slot or canary
            // Ingress must be noticed at once, not at the next resync).
            .watches_stream(
                scope.deployments.1,
                wakes(index.clone(), Kind::Deployment, metrics.clone()),
            )
            .watches_stream(
                scope.services.1,
                wakes(index.clone(), Kind::Service, metrics.clone()),
            )
            .watches_stream(
                scope.ingresses.1,
                wakes(index.clone(), Kind::Ingress, metrics.clone()),
            )
            // A new term starts from the world as it is: every Rollout is looked at again.
            .reconcile_all_on(terms(leadership.terms()))
            .graceful_shutdown_on(shutdown.clone())
            .run(reconcile::reconcile, error_policy, context.clone())
            .for_each(|outcome| async move {
                if let Err(err) = outcome {
                    tracing::debug!(error = %err, "reconcile trigger failed");
                }
            })
    });
    let drained = futures::future::join_all(controllers);
    // The writes in flight finish, within a bound: a Pod gets 30 s from SIGTERM to SIGKILL,
    // and the next leader should not wait for a reconcile stuck on a slow server.
    let deadline = shutdown
        .clone()
        .then(|_| tokio::time::sleep(SHUTDOWN_GRACE));
    tokio::select! {
        _ = drained => {}
        _ = deadline => tracing::warn!(
            grace_ms = SHUTDOWN_GRACE.as_millis() as u64,
            "reconciles still running at the end of the shutdown grace: left to the next leader"
        ),
    }
    // Only once no reconcile writes any more is the Lease released, for the next leader.
    let _ = elector_stop.send(true);
    if let Some(elector) = elector {
        let _ = elector.await;
    }
    let _ = server_stop.send(());
    let _ = api_stop.send(true);
    if let Some(api) = api {
        let _ = api.await;
    }
    let _ = server.await;
    for record in records {
        record.abort();
    }
    Ok(())
}

/// How long a stopping controller lets its reconciles in flight finish their writes. With the
/// Lease's release after it (at most a retry period), a stop takes under 10 s.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(7);

/// A stream that yields at the start of every term after the first look.
fn terms(
    receiver: tokio::sync::watch::Receiver<u64>,
) -> impl futures::Stream<Item = ()> + Send + Sync + 'static {
    futures::stream::unfold(receiver, |mut receiver| async move {
        receiver.changed().await.ok()?;
        Some(((), receiver))
    })
}

fn error_policy(rollout: Arc<Rollout>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.count_error(error.metric_label());
    let failures = ctx.failures.failed(ObjectRef::from_obj(&*rollout));
    let stage = rollout.status.as_ref().and_then(|s| s.stage);
    let retry = retry_after(failures, Failure::of(error.is_conflict(), stage), jitter());
    tracing::warn!(
        rollout = %format!("{}/{}", rollout.namespace().unwrap_or_default(), rollout.name_any()),
        error = %error,
        label = error.metric_label(),
        failures,
        retry_in_ms = retry.as_millis() as u64,
        "reconcile failed"
    );
    Action::requeue(retry)
}

/// A number in 0..1, different at every call: the process's random hasher keys over the time.
pub(crate) fn jitter() -> f64 {
    use std::hash::BuildHasher;
    let draw = std::collections::hash_map::RandomState::new().hash_one(std::time::Instant::now());
    (draw >> 11) as f64 / (1u64 << 53) as f64
}

/// Consecutive failed reconciles of each Rollout, for [`retry_after`].
#[derive(Default)]
pub struct Failures(std::sync::Mutex<std::collections::HashMap<ObjectRef<Rollout>, u32>>);

impl Failures {
    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<ObjectRef<Rollout>, u32>> {
        // A panic while holding it cannot leave a count half-written.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// One more failure; how many in a row now.
    pub fn failed(&self, rollout: ObjectRef<Rollout>) -> u32 {
        let mut failures = self.lock();
        let count = failures.entry(rollout).or_insert(0);
        *count = count.saturating_add(1);
        *count
    }

    /// A reconcile of it succeeded: the next failure starts from the shortest wait.
    pub fn succeeded(&self, rollout: &ObjectRef<Rollout>) {
        self.lock().remove(rollout);
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

    use super::*;

    fn owned_by(api_version: &str, kind: &str, controller: bool) -> ObjectMeta {
        ObjectMeta {
            name: Some("old-ingress-web-canary".into()),
            namespace: Some("shop".into()),
            owner_references: Some(vec![OwnerReference {
                api_version: api_version.into(),
                kind: kind.into(),
                name: "web".into(),
                uid: "u-1".into(),
                controller: Some(controller),
                ..OwnerReference::default()
            }]),
            ..ObjectMeta::default()
        }
    }

    #[test]
    fn jitter_draws_differ_and_stay_in_0_to_1() {
        let draws: Vec<f64> = (0..64).map(|_| jitter()).collect();
        assert!(draws.iter().all(|j| (0.0..1.0).contains(j)));
        assert!(
            draws.iter().any(|j| *j != draws[0]),
            "draws differ: {draws:?}"
        );
    }

    #[test]
    fn failures_count_in_a_row_until_a_success() {
        let failures = Failures::default();
        let web = ObjectRef::new("web").within("shop");
        assert_eq!(failures.failed(web.clone()), 1);
        assert_eq!(failures.failed(web.clone()), 2);
        assert_eq!(failures.failed(ObjectRef::new("api").within("shop")), 1);
        failures.succeeded(&web);
        assert_eq!(failures.failed(web), 1);
    }

    #[test]
    fn an_object_a_rollout_controls_wakes_that_rollout_and_no_other_owner_does() {
        let wakes = controlling_rollout(&owned_by("sluice.dev/v1alpha1", "Rollout", true));
        assert_eq!(wakes, Some(ObjectRef::new("web").within("shop")));
        for meta in [
            owned_by("argoproj.io/v1alpha1", "Rollout", true),
            owned_by("apps/v1", "Deployment", true),
            owned_by("sluice.dev/v1alpha1", "Rollout", false),
        ] {
            assert_eq!(controlling_rollout(&meta), None);
        }
    }
}
