//! The reconcile loop: read the world from reflector caches, ask the core, write what it says, and
//! record the status and events. One place for every side effect of a release.

pub(crate) mod apply;
pub mod commands;
pub(crate) mod observe;
mod own_writes;
pub(crate) mod raw;
mod reconcile;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::Api;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use sluice_strategies::objects::MANAGED_BY;
use sluice_strategies::{Presets, RolloutSpec, names};
use tokio::net::TcpListener;

use crate::analysis::Analyst;
use crate::crd::Rollout;
use crate::error::Error;

pub use apply::FIELD_MANAGER;
use raw::RawDeployment;

/// How the controller runs.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    pub prometheus_url: String,
    /// Bound on every Prometheus query.
    pub query_timeout: Duration,
    /// The credential Prometheus wants, if any.
    pub prometheus_auth: Option<crate::analysis::PrometheusAuth>,
    /// The class of the ingress-nginx whose canary annotations sluice writes (`--ingress-class`):
    /// a Rollout on an Ingress of another class is invalid. None: any class.
    pub ingress_class: Option<String>,
    /// Where the controller's metrics go: shared with the kube client's layer
    /// ([`crate::metrics::metered_client`]) so that its requests are counted beside the rest.
    pub metrics: Arc<crate::metrics::Metrics>,
}

impl ControllerConfig {
    pub fn new(prometheus_url: impl Into<String>) -> Self {
        ControllerConfig {
            prometheus_url: prometheus_url.into(),
            query_timeout: Duration::from_secs(5),
            prometheus_auth: None,
            ingress_class: None,
            metrics: Arc::new(crate::metrics::Metrics::new()),
        }
    }
}

/// What every reconcile shares.
pub struct Context {
    pub client: Client,
    pub presets: Presets,
    pub analyst: Analyst,
    pub deployments: Store<RawDeployment>,
    pub services: Store<Service>,
    pub ingresses: Store<Ingress>,
    /// Only sluice's own ControllerRevisions (the template records), by label.
    pub revisions: Store<ControllerRevision>,
    pub recorder: Recorder,
    /// Our latest write to each Rollout, so that no reconcile decides from a cache behind it.
    pub own_writes: own_writes::OwnWrites,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// `--ingress-class`, if given.
    pub ingress_class: Option<String>,
}

impl Context {
    /// Waits, for at most `limit`, until every cache holds a full first list. Before that, a cache
    /// shows a cluster without the target, its slots or its Ingress: a valid Rollout would be
    /// reported invalid, and a release would be decided on a world that is not there.
    pub async fn caches_synced(&self, limit: Duration) -> bool {
        let synced = async {
            tokio::join!(
                self.deployments.wait_until_ready(),
                self.services.wait_until_ready(),
                self.ingresses.wait_until_ready(),
                self.revisions.wait_until_ready()
            )
        };
        matches!(
            tokio::time::timeout(limit, synced).await,
            Ok((Ok(()), Ok(()), Ok(()), Ok(())))
        )
    }
}

/// Rollouts in `namespace` whose readable spec `matches`, as controller triggers.
fn rollouts_where(
    rollouts: &Store<Rollout>,
    namespace: Option<String>,
    matches: impl Fn(&RolloutSpec) -> bool,
) -> Vec<ObjectRef<Rollout>> {
    rollouts
        .state()
        .into_iter()
        .filter(|r| r.namespace() == namespace)
        .filter(|r| r.spec.readable().is_ok_and(&matches))
        .map(|r| ObjectRef::from_obj(&*r))
        .collect()
}

/// The Rollout that controls an object, if any: an object it owns wakes it whatever its name (a
/// canary object of an older spec, deleted by hand, is noticed at once).
fn controlling_rollout(meta: &kube::api::ObjectMeta) -> Option<ObjectRef<Rollout>> {
    let owner = observe::controller(meta)?;
    let is_rollout = owner.kind == "Rollout" && owner.api_version.starts_with("sluice.dev/");
    let namespace = meta.namespace.as_deref()?;
    is_rollout.then(|| ObjectRef::new(&owner.name).within(namespace))
}

/// The HTTP API, when the controller serves it: where, and who may call it.
pub struct ApiServer {
    pub listener: TcpListener,
    pub auth: crate::api::Auth,
    pub limiter: crate::api::RateLimiter,
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
    let metrics = config.metrics.clone();
    let analyst = Analyst::new(&config.prometheus_url, config.query_timeout)?
        .authenticated_by(config.prometheus_auth.clone())
        .observed_by(metrics.clone());
    let (deployments, deployments_writer) = reflector::store();
    let (services, services_writer) = reflector::store();
    let (ingresses, ingresses_writer) = reflector::store();
    let (revisions, revisions_writer) = reflector::store();
    // Records wake nothing: a reflector alone, draining its stream in the background.
    let records = watcher(
        Api::<ControllerRevision>::all(client.clone()),
        watcher::Config::default().labels(&format!("{MANAGED_BY}=sluice")),
    )
    .default_backoff()
    .reflect(revisions_writer)
    .for_each(|_| futures::future::ready(()));
    let records = tokio::spawn(records);
    let deployment_events = watcher(
        Api::<RawDeployment>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .reflect(deployments_writer)
    .touched_objects();
    let service_events = watcher(
        Api::<Service>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .reflect(services_writer)
    .touched_objects();
    let ingress_events = watcher(
        Api::<Ingress>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .reflect(ingresses_writer)
    .touched_objects();

    let controller = Controller::new(
        Api::<Rollout>::all(client.clone()),
        watcher::Config::default(),
    );
    let rollouts = controller.store();
    let (for_deployments, for_services, for_ingresses) =
        (rollouts.clone(), rollouts.clone(), rollouts.clone());
    let (deployment_wakes, service_wakes, ingress_wakes) =
        (metrics.clone(), metrics.clone(), metrics.clone());
    let ready = crate::server::Readiness::default();
    let context = Arc::new(Context {
        client: client.clone(),
        presets,
        analyst,
        deployments: deployments.clone(),
        services: services.clone(),
        ingresses: ingresses.clone(),
        revisions: revisions.clone(),
        recorder: Recorder::new(
            client.clone(),
            Reporter {
                controller: "sluice".into(),
                instance: None,
            },
        ),
        own_writes: own_writes::OwnWrites::default(),
        metrics: metrics.clone(),
        ingress_class: config.ingress_class.clone(),
    });
    let stores_ready = ready.clone();
    tokio::spawn(async move {
        let synced = tokio::join!(
            deployments.wait_until_ready(),
            services.wait_until_ready(),
            ingresses.wait_until_ready(),
            revisions.wait_until_ready()
        );
        if synced.0.is_ok() && synced.1.is_ok() && synced.2.is_ok() && synced.3.is_ok() {
            stores_ready.set_ready();
        }
    });
    let (server_stop, server_stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(crate::server::serve(listener, ready, metrics, async move {
        let _ = server_stopped.await;
    }));
    let (api_stop, api_stopping) = tokio::sync::watch::channel(false);
    let api = api.map(|api| {
        let state = crate::api::ApiState::new(
            context.clone(),
            rollouts.clone(),
            api.auth,
            api.limiter,
            api_stopping.clone(),
        );
        let mut stopping = api_stopping;
        tokio::spawn(crate::api::serve(api.listener, state, async move {
            let _ = stopping.wait_for(|stop| *stop).await;
        }))
    });

    controller
        // A slot, or the target, of a Rollout changed or went away (a deleted slot or canary
        // Ingress must be noticed at once, not at the next resync).
        .watches_stream(deployment_events, move |d: RawDeployment| {
            let name = d.name_any();
            let wake = rollouts_where(&for_deployments, d.namespace(), |spec| {
                let target = &spec.target_ref.name;
                *target == name || names::is_slot_of(&name, target)
            });
            deployment_wakes.count_wakes("Deployment", wake.len());
            wake
        })
        .watches_stream(service_events, move |s: Service| {
            let name = s.name_any();
            let mut wake = rollouts_where(&for_services, s.namespace(), |spec| {
                let service = &spec.service.name;
                *service == name || name == names::canary_service_name(service)
            });
            wake.extend(controlling_rollout(s.meta()));
            service_wakes.count_wakes("Service", wake.len());
            wake
        })
        .watches_stream(ingress_events, move |i: Ingress| {
            let name = i.name_any();
            let mut wake = rollouts_where(&for_ingresses, i.namespace(), |spec| {
                let canary = spec.strategy.canary.as_ref();
                canary
                    .and_then(|c| c.ingress_ref.as_ref())
                    .is_some_and(|i| {
                        i.name == name
                            || names::canary_ingress_name(&i.name, &spec.service.name) == name
                    })
            });
            wake.extend(controlling_rollout(i.meta()));
            ingress_wakes.count_wakes("Ingress", wake.len());
            wake
        })
        .graceful_shutdown_on(shutdown)
        .run(reconcile::reconcile, error_policy, context)
        .for_each(|outcome| async move {
            if let Err(err) = outcome {
                tracing::debug!(error = %err, "reconcile trigger failed");
            }
        })
        .await;
    let _ = server_stop.send(());
    let _ = api_stop.send(true);
    if let Some(api) = api {
        let _ = api.await;
    }
    let _ = server.await;
    records.abort();
    Ok(())
}

fn error_policy(rollout: Arc<Rollout>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.count_error(error.metric_label());
    // A conflict means our view was stale: look again at once. Anything else backs off a little.
    let retry = if error.is_conflict() {
        Duration::from_millis(200)
    } else {
        Duration::from_secs(5)
    };
    tracing::warn!(
        rollout = %format!("{}/{}", rollout.namespace().unwrap_or_default(), rollout.name_any()),
        error = %error,
        label = error.metric_label(),
        "reconcile failed"
    );
    Action::requeue(retry)
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
