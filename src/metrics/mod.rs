//! sluice's own metrics (DESIGN.md section 4b), served on `/metrics` beside the probes as
//! OpenMetrics text. Names start with `sluice_`; labels stay bounded (namespace, rollout, metric,
//! verdict, phase, outcome, verb, source, route, kind): no message, image or revision hash is a
//! label, except in the one info metric that exists to carry the revisions. A deleted Rollout's
//! series go with it.

mod kubernetes;
mod process;
mod rollouts;

pub use kubernetes::{RequestKind, WRITE_VERBS, election_client, metered_client, request_kind};

use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use sluice_strategies::plan::{ReleasePlan, StrategyPlan};
use sluice_strategies::release::{Command, Note, traffic_back_after_failure};
use sluice_strategies::status::{Phase, RolloutStatus};

const OUTCOMES: [&str; 4] = ["promoted", "rolled_back", "aborted", "superseded"];

const PHASES: [Phase; 8] = [
    Phase::Initializing,
    Phase::Ready,
    Phase::Progressing,
    Phase::Paused,
    Phase::Promoting,
    Phase::Succeeded,
    Phase::RolledBack,
    Phase::Failed,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NamespaceLabels {
    namespace: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NamespaceOutcomeLabels {
    namespace: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: String,
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KubernetesLabels {
    verb: String,
    resource: String,
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VerbLabels {
    verb: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
}

fn seconds_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

fn rollback_buckets() -> Histogram {
    // 250 ms to about 17 min.
    Histogram::new(exponential_buckets(0.25, 2.0, 13))
}

fn lateness_buckets() -> Histogram {
    // A check is due at a second's precision at best: 10 ms to 30 s, finest under a second.
    Histogram::new([
        0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0,
    ])
}

fn release_buckets() -> Histogram {
    // 5 s to about 3 h.
    Histogram::new(exponential_buckets(5.0, 2.0, 12))
}

/// Every metric sluice exports, and the registry that encodes them.
pub struct Metrics {
    registry: Registry,
    /// By namespace, not Rollout: a histogram is fifteen series, too many to keep per Rollout at
    /// 10,000 of them, and each must exist at 0 before its first release to show it.
    release_duration: Family<NamespaceOutcomeLabels, Histogram, fn() -> Histogram>,
    reconcile_duration: Histogram,
    reconcile_errors: Family<KindLabels, Counter>,
    query_duration: Histogram,
    query_failures: Counter,
    api_requests: Family<RouteLabels, Counter>,
    api_duration: Family<RouteLabels, Histogram, fn() -> Histogram>,
    rollback_duration: Family<NamespaceLabels, Histogram, fn() -> Histogram>,
    check_lateness: Histogram,
    /// The namespaces whose histograms exist.
    namespaces: Mutex<std::collections::HashSet<String>>,
    kubernetes_requests: Family<KubernetesLabels, Counter>,
    kubernetes_duration: Family<VerbLabels, Histogram, fn() -> Histogram>,
    reconciles_in_flight: Gauge,
    wakes: Family<KindLabels, Counter>,
    /// Every Rollout's own series.
    rollouts: Arc<rollouts::RolloutSeries>,
}

/// What one reconcile did, as far as the counters go.
pub struct Reconciled<'a> {
    /// The check it ran.
    pub check: Option<&'a sluice_strategies::CheckOutcome>,
    /// The command it applied.
    pub command: Option<&'a Command>,
    /// The Events the core asked for.
    pub notes: &'a [Note],
    /// The status it decided from.
    pub previous: &'a RolloutStatus,
    /// The status it wrote.
    pub status: &'a RolloutStatus,
    pub now: chrono::DateTime<chrono::Utc>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let metrics = Metrics {
            release_duration: Family::new_with_constructor(release_buckets),
            reconcile_duration: seconds_buckets(),
            reconcile_errors: Family::default(),
            query_duration: seconds_buckets(),
            query_failures: Counter::default(),
            api_requests: Family::default(),
            api_duration: Family::new_with_constructor(seconds_buckets),
            rollback_duration: Family::new_with_constructor(rollback_buckets),
            check_lateness: lateness_buckets(),
            namespaces: Mutex::new(std::collections::HashSet::new()),
            kubernetes_requests: Family::default(),
            kubernetes_duration: Family::new_with_constructor(seconds_buckets),
            reconciles_in_flight: Gauge::default(),
            wakes: Family::default(),
            rollouts: Arc::default(),
            registry: Registry::default(),
        };
        let build = Family::<BuildLabels, Gauge>::default();
        build
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION").into(),
            })
            .set(1);
        registry.register("sluice_build_info", "The running build (always 1)", build);
        registry.register(
            "sluice_release_duration_seconds",
            "From a release's start to its end, by namespace and outcome",
            metrics.release_duration.clone(),
        );
        registry.register(
            "sluice_reconcile_duration_seconds",
            "How long each reconcile took",
            metrics.reconcile_duration.clone(),
        );
        registry.register(
            "sluice_reconcile_errors",
            "Reconciles that failed, by kind",
            metrics.reconcile_errors.clone(),
        );
        registry.register(
            "sluice_prometheus_query_duration_seconds",
            "How long each Prometheus query took",
            metrics.query_duration.clone(),
        );
        registry.register(
            "sluice_prometheus_query_failures",
            "Prometheus queries that failed or timed out",
            metrics.query_failures.clone(),
        );
        registry.register(
            "sluice_api_requests",
            "HTTP API requests, by method, route and status code",
            metrics.api_requests.clone(),
        );
        registry.register(
            "sluice_api_request_duration_seconds",
            "How long each HTTP API request took to answer",
            metrics.api_duration.clone(),
        );
        registry.register(
            "sluice_analysis_check_lateness_seconds",
            "How long after its due time each analysis check started (the core's next check time against the reconcile that ran it)",
            metrics.check_lateness.clone(),
        );
        registry.register(
            "sluice_rollback_duration_seconds",
            "From a release's first failed check (or, with none, the decision to give it up) to its traffic back on the stable slot, by namespace",
            metrics.rollback_duration.clone(),
        );
        registry.register(
            "sluice_kubernetes_requests",
            "Requests to the Kubernetes API, by verb, resource and status code (error: no answer)",
            metrics.kubernetes_requests.clone(),
        );
        registry.register(
            "sluice_kubernetes_request_duration_seconds",
            "How long the Kubernetes API took to answer, by verb (a watch: to open its stream)",
            metrics.kubernetes_duration.clone(),
        );
        registry.register(
            "sluice_reconciles_in_flight",
            "Reconciles running now",
            metrics.reconciles_in_flight.clone(),
        );
        registry.register(
            "sluice_work_queue_wakes",
            "Rollouts queued for a reconcile by a change to a watched object, by the object's kind",
            metrics.wakes.clone(),
        );
        registry.register_collector(Box::new(rollouts::RolloutCollector(
            metrics.rollouts.clone(),
        )));
        registry.register_collector(Box::new(process::ProcessCollector));
        Metrics {
            registry,
            ..metrics
        }
    }

    /// The OpenMetrics text of every metric.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }

    /// The same in the Prometheus text format 0.0.4, for scrapers and linters that do not ask
    /// for OpenMetrics (`curl .../metrics | promtool check metrics`).
    pub fn encode_prometheus_text(&self) -> String {
        prometheus_text(&self.encode())
    }

    /// The gauges of one Rollout, from the status just written.
    pub fn observe_rollout(
        &self,
        namespace: &str,
        name: &str,
        plan: Option<&ReleasePlan>,
        status: &RolloutStatus,
    ) {
        if !self.rollouts.contains(namespace, name) {
            self.zero_histograms(namespace);
        }
        let steps = match plan.map(|p| &p.strategy) {
            Some(StrategyPlan::Canary(canary)) => canary.steps.len() as i64,
            _ => 0,
        };
        let gauges = rollouts::Gauges {
            phase: status.phase,
            weight: i64::from(status.canary_weight.unwrap_or(0)),
            step: i64::from(status.step.unwrap_or(0)),
            steps,
            stable_slot: status
                .stable_slot
                .map(|s| s.to_string())
                .unwrap_or_default(),
            stable_revision: status.stable_revision.clone().unwrap_or_default(),
            candidate_revision: status.candidate_revision.clone().unwrap_or_default(),
        };
        let planned = plan
            .map(|p| p.analysis.metrics.as_slice())
            .unwrap_or_default();
        let mut names: Vec<String> = status.analysis.iter().map(|r| r.name.clone()).collect();
        names.extend(planned.iter().map(|m| m.name.clone()));
        self.rollouts.update(namespace, name, |series| {
            series.gauges = Some(gauges);
            // A metric neither in the status nor in the plan any more leaves no series behind.
            series.keep_metrics(&names);
            for result in &status.analysis {
                series.metric(&result.name).value = result.value.filter(|v| v.is_finite());
            }
            for metric in planned {
                let kept = series.metric(&metric.name);
                kept.max = metric.max;
                kept.min = metric.min;
            }
        });
    }

    /// Counts what one reconcile did: the check it ran, the command it applied, the release it
    /// ended (from the Events the core asked for).
    pub fn count_reconcile(&self, namespace: &str, name: &str, done: Reconciled<'_>) {
        let Reconciled {
            check,
            command,
            notes,
            previous,
            status,
            now,
        } = done;
        if let Some(failed) = traffic_back_after_failure(previous, status) {
            let took = (now - failed).to_std().unwrap_or_default();
            self.rollback_duration
                .get_or_create(&NamespaceLabels {
                    namespace: namespace.into(),
                })
                .observe(took.as_secs_f64());
        }
        let outcomes: Vec<&str> = notes.iter().filter_map(|n| outcome_of(n, status)).collect();
        let mut release_took = None;
        for outcome in &outcomes {
            if let Some(started) = status.release_started_at {
                let took = (now - started).to_std().unwrap_or_default().as_secs_f64();
                self.release_duration
                    .get_or_create(&NamespaceOutcomeLabels {
                        namespace: namespace.into(),
                        outcome: (*outcome).into(),
                    })
                    .observe(took);
                release_took = Some(took);
            }
        }
        self.rollouts.update(namespace, name, |series| {
            for metric in check.iter().flat_map(|c| &c.metrics) {
                series.count_check(&metric.name, &metric.verdict.to_string());
            }
            if let Some(command) = command {
                series.count_command(command.verb.as_str(), command_source(&command.nonce));
            }
            for outcome in &outcomes {
                series.count_release(outcome);
                let given_up = *outcome != "promoted" && *outcome != "superseded";
                if let Some(cause) = status.rollback_cause.filter(|_| given_up) {
                    series.count_rollback(cause);
                }
            }
            if release_took.is_some() {
                series.last_release_duration = release_took;
            }
        });
    }

    /// A Rollout is gone: every series that names it goes too.
    pub fn forget_rollout(&self, namespace: &str, name: &str) {
        self.rollouts.remove(namespace, name);
    }

    /// The histograms of a namespace seen for the first time, at 0: a series that first appears
    /// at 1 shows no increase in PromQL.
    fn zero_histograms(&self, namespace: &str) {
        let mut namespaces = self
            .namespaces
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if namespaces.insert(namespace.to_string()) {
            let _ = self.rollback_duration.get_or_create(&NamespaceLabels {
                namespace: namespace.into(),
            });
            for outcome in OUTCOMES {
                let _ = self
                    .release_duration
                    .get_or_create(&NamespaceOutcomeLabels {
                        namespace: namespace.into(),
                        outcome: outcome.into(),
                    });
            }
        }
    }

    /// A reconcile begins; it is counted in flight until the guard drops.
    pub fn reconcile_started(&self) -> InFlight {
        self.reconciles_in_flight.inc();
        InFlight(self.reconciles_in_flight.clone())
    }

    /// A change to a watched object of `kind` queued `rollouts` Rollouts for a reconcile.
    pub fn count_wakes(&self, kind: &str, rollouts: usize) {
        if rollouts > 0 {
            self.wakes
                .get_or_create(&KindLabels { kind: kind.into() })
                .inc_by(rollouts as u64);
        }
    }

    /// One request to the Kubernetes API; a watch is timed to its stream's opening.
    pub fn observe_kubernetes(&self, kind: &RequestKind, code: &str, took: Duration) {
        self.kubernetes_requests
            .get_or_create(&KubernetesLabels {
                verb: kind.verb.into(),
                resource: kind.resource.clone(),
                code: code.into(),
            })
            .inc();
        self.kubernetes_duration
            .get_or_create(&VerbLabels {
                verb: kind.verb.into(),
            })
            .observe(took.as_secs_f64());
    }

    /// An analysis check ran `late` after it was due.
    pub fn observe_check_lateness(&self, late: Duration) {
        self.check_lateness.observe(late.as_secs_f64());
    }

    pub fn observe_reconcile(&self, took: Duration) {
        self.reconcile_duration.observe(took.as_secs_f64());
    }

    /// A reconcile failed; `kind` is its `Error::metric_label`.
    pub fn count_error(&self, kind: &str) {
        self.reconcile_errors
            .get_or_create(&KindLabels { kind: kind.into() })
            .inc();
    }

    pub fn observe_query(&self, took: Duration, failed: bool) {
        self.query_duration.observe(took.as_secs_f64());
        if failed {
            self.query_failures.inc();
        }
    }

    /// One API request, by its route template (never the path a caller sent).
    pub fn observe_api(&self, method: &str, route: &str, code: u16, took: Duration) {
        let labels = RouteLabels {
            method: method.into(),
            route: route.into(),
            code: code.to_string(),
        };
        self.api_requests.get_or_create(&labels).inc();
        self.api_duration
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// Counts a reconcile in flight while it lives.
pub struct InFlight(Gauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

const VERDICTS: [&str; 4] = ["pass", "fail", "inconclusive", "error"];
const VERBS: [&str; 6] = [
    "promote",
    "promote-full",
    "abort",
    "pause",
    "resume",
    "retry",
];
const SOURCES: [&str; 2] = ["api", "annotation"];

/// OpenMetrics text as the Prometheus text format 0.0.4 says it: a counter family is named by its
/// `_total` sample, there is no UNIT and no EOF. Gauges and histograms read the same in both.
fn prometheus_text(openmetrics: &str) -> String {
    let counters: Vec<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
            counters
                .contains(&name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        out.push_str(renamed.as_deref().unwrap_or(line).trim_end());
        out.push('\n');
    }
    out
}

/// Where a command came from: the API stamps its nonces `<verb>@api-<key>`.
fn command_source(nonce: &str) -> &'static str {
    match nonce.split_once('@') {
        Some((_, unique)) if unique.starts_with("api-") => "api",
        _ => "annotation",
    }
}

/// The outcome a note announces, if it ends a release.
fn outcome_of(note: &Note, status: &RolloutStatus) -> Option<&'static str> {
    match note.reason {
        "Promoted" => Some("promoted"),
        "Superseded" => Some("superseded"),
        "RolledBack" => {
            let aborted = status
                .rollback_reason
                .as_deref()
                .is_some_and(|r| r.contains("aborted by command"));
            Some(if aborted { "aborted" } else { "rolled_back" })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use sluice_strategies::release::CommandVerb;
    use sluice_strategies::status::{MetricResult, RollbackCause, Slot, Stage, Verdict};

    use super::*;

    fn stepping() -> RolloutStatus {
        RolloutStatus {
            phase: Phase::Progressing,
            stage: Some(Stage::Stepping),
            step: Some(1),
            canary_weight: Some(20),
            stable_slot: Some(Slot::Blue),
            stable_revision: Some("s0".into()),
            candidate_revision: Some("c1".into()),
            analysis: vec![MetricResult {
                name: "error-rate".into(),
                value: Some(0.25),
                bound: "<= 1%".into(),
                verdict: Verdict::Pass,
                reason: None,
                time: None,
            }],
            ..RolloutStatus::default()
        }
    }

    fn lines_naming(text: &str, rollout: &str) -> Vec<String> {
        text.lines()
            .filter(|l| !l.starts_with('#') && l.contains(&format!("rollout=\"{rollout}\"")))
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn a_rollout_shows_its_phase_weight_step_and_revisions_only_in_the_info_metric() {
        let metrics = Metrics::new();
        metrics.observe_rollout("erp-system", "reporting", None, &stepping());
        let text = metrics.encode();
        assert!(text.contains(
            "sluice_rollout_phase{namespace=\"erp-system\",rollout=\"reporting\",phase=\"Progressing\"} 1"
        ), "{text}");
        assert!(text.contains(
            "sluice_rollout_phase{namespace=\"erp-system\",rollout=\"reporting\",phase=\"Ready\"} 0"
        ));
        assert!(text.contains(
            "sluice_rollout_canary_weight_percent{namespace=\"erp-system\",rollout=\"reporting\"} 20"
        ));
        assert!(text.contains(
            "sluice_analysis_value{namespace=\"erp-system\",rollout=\"reporting\",metric=\"error-rate\"} 0.25"
        ));
        assert!(text.contains("sluice_build_info{version="));
        for line in lines_naming(&text, "reporting") {
            if !line.starts_with("sluice_rollout_revision_info") {
                assert!(
                    !line.contains("c1") && !line.contains("s0"),
                    "a hash as a label: {line}"
                );
            }
        }
        assert!(text.contains("candidate_revision=\"c1\""));
        assert!(text.ends_with("# EOF\n"), "OpenMetrics text");
    }

    #[test]
    fn a_new_candidate_replaces_the_old_info_series() {
        let metrics = Metrics::new();
        metrics.observe_rollout("ns", "web", None, &stepping());
        let mut next = stepping();
        next.candidate_revision = Some("c2".into());
        metrics.observe_rollout("ns", "web", None, &next);
        let text = metrics.encode();
        assert!(text.contains("candidate_revision=\"c2\""));
        assert!(!text.contains("candidate_revision=\"c1\""), "{text}");
    }

    #[test]
    fn checks_commands_and_outcomes_are_counted() {
        let metrics = Metrics::new();
        let check = sluice_strategies::CheckOutcome {
            verdict: Verdict::Fail,
            requests: Some(100.0),
            reason: None,
            metrics: vec![sluice_strategies::MetricJudgement {
                name: "error-rate".into(),
                value: Some(23.0),
                unit: "percent".into(),
                bound: "<= 1%".into(),
                verdict: Verdict::Fail,
                reason: None,
            }],
        };
        let command = Command {
            verb: CommandVerb::Abort,
            nonce: "abort@api-k1".into(),
            reason: None,
        };
        let mut status = stepping();
        status.release_started_at = Some(Utc::now() - chrono::Duration::seconds(30));
        status.rollback_reason = Some("c1: aborted by command: p99".into());
        status.rollback_cause = Some(RollbackCause::Aborted);
        let notes = [Note {
            reason: "RolledBack",
            message: "...".into(),
            warning: true,
        }];
        metrics.count_reconcile(
            "ns",
            "web",
            Reconciled {
                check: Some(&check),
                command: Some(&command),
                notes: &notes,
                previous: &stepping(),
                status: &status,
                now: Utc::now(),
            },
        );
        let text = metrics.encode();
        assert!(text.contains(
            "sluice_analysis_checks_total{namespace=\"ns\",rollout=\"web\",metric=\"error-rate\",verdict=\"fail\"} 1"
        ), "{text}");
        assert!(text.contains(
            "sluice_commands_total{namespace=\"ns\",rollout=\"web\",verb=\"abort\",source=\"api\"} 1"
        ));
        assert!(text.contains(
            "sluice_releases_total{namespace=\"ns\",rollout=\"web\",outcome=\"aborted\"} 1"
        ));
        assert!(text.contains(
            "sluice_release_duration_seconds_count{namespace=\"ns\",outcome=\"aborted\"} 1"
        ));
        assert!(
            text.contains(
                "sluice_rollout_last_release_duration_seconds{namespace=\"ns\",rollout=\"web\"} 30"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "sluice_rollbacks_total{namespace=\"ns\",rollout=\"web\",cause=\"aborted\"} 1"
            ),
            "{text}"
        );
        assert_eq!(command_source("promote@41"), "annotation");
    }

    #[test]
    fn a_release_that_ends_otherwise_is_no_rollback_whatever_cause_the_last_one_left() {
        let metrics = Metrics::new();
        // The cause of the previous rollback stays in the status through the next release.
        let status = RolloutStatus {
            rollback_cause: Some(RollbackCause::FailedChecks),
            ..stepping()
        };
        for reason in ["Promoted", "Superseded"] {
            let notes = [Note {
                reason,
                message: "...".into(),
                warning: false,
            }];
            metrics.count_reconcile(
                "ns",
                "web",
                Reconciled {
                    check: None,
                    command: None,
                    notes: &notes,
                    previous: &stepping(),
                    status: &status,
                    now: Utc::now(),
                },
            );
        }
        let text = metrics.encode();
        assert!(
            text.contains("cause=\"failed_checks\"} 0"),
            "no rollback counted: {text}"
        );
        assert!(text.contains("outcome=\"superseded\"} 1"), "{text}");
    }

    #[test]
    fn a_rollouts_counters_start_at_zero_so_its_first_event_is_an_increase() {
        let metrics = Metrics::new();
        metrics.observe_rollout("ns", "web", None, &stepping());
        let text = metrics.encode();
        for zero in [
            "sluice_releases_total{namespace=\"ns\",rollout=\"web\",outcome=\"rolled_back\"} 0",
            "sluice_rollbacks_total{namespace=\"ns\",rollout=\"web\",cause=\"failed_checks\"} 0",
            "sluice_commands_total{namespace=\"ns\",rollout=\"web\",verb=\"abort\",source=\"api\"} 0",
            "sluice_analysis_checks_total{namespace=\"ns\",rollout=\"web\",metric=\"error-rate\",verdict=\"fail\"} 0",
            "sluice_release_duration_seconds_count{namespace=\"ns\",outcome=\"rolled_back\"} 0",
            "sluice_rollback_duration_seconds_count{namespace=\"ns\"} 0",
        ] {
            assert!(text.contains(zero), "{zero} in:\n{text}");
        }
        assert!(
            !text.contains("cause=\"withdrawn\""),
            "a withdrawn release is no rollback"
        );
        // A metric that leaves the analysis takes its counters with it.
        let without = RolloutStatus {
            analysis: Vec::new(),
            ..stepping()
        };
        metrics.observe_rollout("ns", "web", None, &without);
        assert!(!metrics.encode().contains("metric=\"error-rate\""));
    }

    #[test]
    fn a_deleted_rollout_leaves_no_series() {
        let metrics = Metrics::new();
        metrics.observe_rollout("ns", "web", None, &stepping());
        metrics.observe_rollout("ns", "other", None, &stepping());
        let command = Command {
            verb: CommandVerb::Pause,
            nonce: "pause@7".into(),
            reason: None,
        };
        let notes = [Note {
            reason: "Promoted",
            message: "...".into(),
            warning: false,
        }];
        metrics.count_reconcile(
            "ns",
            "web",
            Reconciled {
                check: None,
                command: Some(&command),
                notes: &notes,
                previous: &stepping(),
                status: &stepping(),
                now: Utc::now(),
            },
        );
        let rolled_back = RolloutStatus {
            rollback_cause: Some(RollbackCause::FailedChecks),
            ..stepping()
        };
        let notes = [Note {
            reason: "RolledBack",
            message: "...".into(),
            warning: true,
        }];
        metrics.count_reconcile(
            "ns",
            "web",
            Reconciled {
                check: None,
                command: None,
                notes: &notes,
                previous: &stepping(),
                status: &rolled_back,
                now: Utc::now(),
            },
        );
        assert!(metrics.encode().contains("cause=\"failed_checks\"} 1"));
        metrics.forget_rollout("ns", "web");
        let text = metrics.encode();
        assert!(lines_naming(&text, "web").is_empty(), "{text}");
        assert!(!lines_naming(&text, "other").is_empty(), "the others stay");
    }

    fn with_stage(stage: Stage, first_failure: Option<i64>) -> RolloutStatus {
        RolloutStatus {
            stage: Some(stage),
            first_failure_at: first_failure.map(|s| Utc::now() - chrono::Duration::seconds(s)),
            ..stepping()
        }
    }

    #[test]
    fn rollback_time_runs_from_the_first_failure_to_traffic_back_on_stable() {
        use Stage::{RollingBack, RollingBackScaleDown};
        let failed = Some(40);
        let metrics = Metrics::new();
        metrics.count_reconcile(
            "ns",
            "web",
            Reconciled {
                check: None,
                command: None,
                notes: &[],
                previous: &with_stage(RollingBack, failed),
                status: &with_stage(RollingBackScaleDown, failed),
                now: Utc::now(),
            },
        );
        let text = metrics.encode();
        // 40 s: past the 32 s bucket, within the 64 s one.
        assert!(
            text.contains(
                "sluice_rollback_duration_seconds_bucket{le=\"32.0\",namespace=\"ns\"} 0"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "sluice_rollback_duration_seconds_bucket{le=\"64.0\",namespace=\"ns\"} 1"
            ),
            "{text}"
        );
        metrics.forget_rollout("ns", "web");
        assert!(lines_naming(&metrics.encode(), "web").is_empty());
    }

    #[test]
    fn kubernetes_requests_work_queue_and_process_are_measured() {
        let metrics = Metrics::new();
        let kind = request_kind(
            &http::Method::PATCH,
            "/apis/apps/v1/namespaces/ns/deployments/web-blue",
            None,
            Some("application/apply-patch+yaml"),
        );
        metrics.observe_kubernetes(&kind, "200", Duration::from_millis(4));
        metrics.count_wakes("Deployment", 3);
        metrics.count_wakes("Service", 0);
        let first = metrics.reconcile_started();
        let second = metrics.reconcile_started();
        drop(first);
        let text = metrics.encode();
        assert!(text.contains("sluice_kubernetes_requests_total{verb=\"apply\",resource=\"deployments\",code=\"200\"} 1"), "{text}");
        assert!(
            text.contains("sluice_kubernetes_request_duration_seconds_count{verb=\"apply\"} 1")
        );
        assert!(text.contains("sluice_work_queue_wakes_total{kind=\"Deployment\"} 3"));
        assert!(!text.contains("kind=\"Service\""), "no wake, no series");
        assert!(text.contains("sluice_reconciles_in_flight 1"), "{text}");
        drop(second);
        assert!(metrics.encode().contains("sluice_reconciles_in_flight 0"));
        for name in [
            "process_cpu_seconds_total ",
            "process_resident_memory_bytes ",
            "process_open_fds ",
            "process_start_time_seconds ",
        ] {
            assert!(text.contains(name), "{name} in {text}");
        }
    }

    #[test]
    fn the_prometheus_text_names_counters_by_their_total_and_has_no_eof() {
        let openmetrics = "# HELP sluice_releases Releases ended.\n# TYPE sluice_releases counter\n\
            sluice_releases_total{outcome=\"promoted\"} 1\n# HELP sluice_rollout_step The step.\n\
            # TYPE sluice_rollout_step gauge\n# UNIT sluice_rollout_step steps\nsluice_rollout_step 2\n# EOF\n";
        assert_eq!(
            prometheus_text(openmetrics),
            "# HELP sluice_releases_total Releases ended.\n# TYPE sluice_releases_total counter\n\
             sluice_releases_total{outcome=\"promoted\"} 1\n# HELP sluice_rollout_step The step.\n\
             # TYPE sluice_rollout_step gauge\nsluice_rollout_step 2\n"
        );
    }

    #[test]
    fn reconciles_queries_and_api_requests_are_measured() {
        let metrics = Metrics::new();
        metrics.observe_reconcile(Duration::from_millis(3));
        metrics.count_error("patch");
        metrics.observe_query(Duration::from_millis(8), true);
        metrics.observe_api(
            "POST",
            "/api/v1/namespaces/{namespace}/rollouts/{name}/abort",
            202,
            Duration::from_millis(2),
        );
        let text = metrics.encode();
        assert!(
            text.contains("sluice_reconcile_errors_total{kind=\"patch\"} 1"),
            "{text}"
        );
        assert!(text.contains("sluice_reconcile_duration_seconds_count 1"));
        assert!(text.contains("sluice_prometheus_query_failures_total 1"));
        assert!(text.contains(
            "sluice_api_requests_total{method=\"POST\",route=\"/api/v1/namespaces/{namespace}/rollouts/{name}/abort\",code=\"202\"} 1"
        ));
    }
}
