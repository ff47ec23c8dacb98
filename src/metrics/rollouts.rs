//! The series of each Rollout, kept as plain numbers and written out at each scrape.
//!
//! A Rollout has about forty series (its phases, the counters that must exist at 0 before they
//! first move, its analysis metrics). As prometheus-client families each is a hash-map entry with
//! its own copy of every label and its own allocation: 7.8 KB a Rollout, 78 MB at 10,000
//! (docs/performance.md). Here a Rollout is one record of a few hundred bytes. Help texts end
//! with a full stop, as the registry writes those of the other families.

use std::collections::BTreeMap;
use std::sync::Mutex;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use sluice_strategies::status::{Phase, RollbackCause};

use super::{OUTCOMES, PHASES, SOURCES, VERBS, VERDICTS};

/// The causes a rollback is counted under (a withdrawn release ends Ready, not rolled back).
pub(super) const CAUSES: [RollbackCause; 5] = [
    RollbackCause::FailedChecks,
    RollbackCause::FailedQueries,
    RollbackCause::Inconclusive,
    RollbackCause::ProgressDeadline,
    RollbackCause::Aborted,
];

/// What the status says, as of the latest one written.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Gauges {
    pub phase: Phase,
    pub weight: i64,
    pub step: i64,
    pub steps: i64,
    pub stable_slot: String,
    pub stable_revision: String,
    pub candidate_revision: String,
}

/// One analysis metric of a Rollout.
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct MetricSeries {
    pub value: Option<f64>,
    pub max: Option<f64>,
    pub min: Option<f64>,
    /// Checks by verdict, in the order of [`VERDICTS`].
    pub checks: [u64; VERDICTS.len()],
}

/// Every series of one Rollout. Its counters exist (at 0) from the moment it is known: a
/// series that first appears at 1 shows no increase in PromQL, and the dashboards would miss
/// each Rollout's first rollback, command or failed check.
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct Series {
    /// None until a status is observed.
    pub gauges: Option<Gauges>,
    /// By metric name, sorted.
    pub metrics: Vec<(Box<str>, MetricSeries)>,
    /// In the order of [`OUTCOMES`].
    pub releases: [u64; OUTCOMES.len()],
    /// In the order of [`CAUSES`].
    pub rollbacks: [u64; CAUSES.len()],
    /// By verb, then source, in the order of [`VERBS`] and [`SOURCES`].
    pub commands: [u64; VERBS.len() * SOURCES.len()],
    pub last_release_duration: Option<f64>,
}

impl Series {
    /// The series of `metric`, made (its checks at 0) if it had none.
    pub fn metric(&mut self, metric: &str) -> &mut MetricSeries {
        let at = match self.metrics.binary_search_by(|(m, _)| (**m).cmp(metric)) {
            Ok(at) => at,
            Err(at) => {
                self.metrics
                    .insert(at, (metric.into(), MetricSeries::default()));
                at
            }
        };
        &mut self.metrics[at].1
    }

    /// Keeps only the metrics named.
    pub fn keep_metrics(&mut self, names: &[String]) {
        self.metrics
            .retain(|(metric, _)| names.iter().any(|n| **n == **metric));
    }

    pub fn count_command(&mut self, verb: &str, source: &str) {
        let verb = VERBS.iter().position(|v| *v == verb);
        let source = SOURCES.iter().position(|s| *s == source);
        if let (Some(verb), Some(source)) = (verb, source) {
            self.commands[verb * SOURCES.len() + source] += 1;
        }
    }

    pub fn count_release(&mut self, outcome: &str) {
        if let Some(at) = OUTCOMES.iter().position(|o| *o == outcome) {
            self.releases[at] += 1;
        }
    }

    pub fn count_rollback(&mut self, cause: RollbackCause) {
        if let Some(at) = CAUSES.iter().position(|c| *c == cause) {
            self.rollbacks[at] += 1;
        }
    }

    pub fn count_check(&mut self, metric: &str, verdict: &str) {
        if let Some(at) = VERDICTS.iter().position(|v| *v == verdict) {
            self.metric(metric).checks[at] += 1;
        }
    }
}

/// The series of every Rollout, by namespace and name.
#[derive(Default)]
pub(super) struct RolloutSeries(Mutex<BTreeMap<(String, String), Series>>);

impl RolloutSeries {
    /// Changes one Rollout's series (made, every counter at 0, if it had none).
    pub fn update(&self, namespace: &str, name: &str, change: impl FnOnce(&mut Series)) {
        let mut all = self.lock();
        let key = (namespace.to_string(), name.to_string());
        change(all.entry(key).or_default())
    }

    pub fn contains(&self, namespace: &str, name: &str) -> bool {
        self.lock()
            .contains_key(&(namespace.to_string(), name.to_string()))
    }

    pub fn remove(&self, namespace: &str, name: &str) {
        self.lock()
            .remove(&(namespace.to_string(), name.to_string()));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<(String, String), Series>> {
        // Plain numbers behind the lock: a panic while it was held broke no invariant.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A copy to write out, so that a scrape of 10,000 Rollouts holds no reconcile up.
    fn snapshot(&self) -> Vec<((String, String), Series)> {
        self.lock()
            .iter()
            .map(|(key, series)| (key.clone(), series.clone()))
            .collect()
    }
}

impl std::fmt::Debug for RolloutSeries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RolloutSeries").finish_non_exhaustive()
    }
}

type Snapshot = [((String, String), Series)];

/// One sample: its labels beyond namespace and rollout, and its value.
type Sample<V> = (Vec<(&'static str, String)>, V);

/// One family: its samples are `samples(namespace, rollout, series)`, each a label set beyond
/// namespace and rollout and a value.
fn family<V: EncodeMetric>(
    encoder: &mut DescriptorEncoder,
    (name, help, metric_type): (&str, &str, MetricType),
    snapshot: &Snapshot,
    samples: impl Fn(&Series) -> Vec<Sample<V>>,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, metric_type)?;
    for ((namespace, rollout), series) in snapshot {
        for (extra, value) in samples(series) {
            let mut labels: Vec<(&str, &str)> = vec![
                ("namespace", namespace.as_str()),
                ("rollout", rollout.as_str()),
            ];
            labels.extend(extra.iter().map(|(k, v)| (*k, v.as_str())));
            value.encode(family.encode_family(&labels)?)?;
        }
    }
    Ok(())
}

fn gauge(value: i64) -> ConstGauge<i64> {
    ConstGauge::new(value)
}

/// The per-metric samples of one kind: `pick` chooses the value.
fn per_metric(
    series: &Series,
    pick: impl Fn(&MetricSeries) -> Option<f64>,
) -> Vec<Sample<ConstGauge<f64>>> {
    series
        .metrics
        .iter()
        .filter_map(|(metric, m)| {
            let value = pick(m)?;
            Some((vec![("metric", metric.to_string())], ConstGauge::new(value)))
        })
        .collect()
}

impl Collector for RolloutCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let snapshot = self.0.snapshot();
        let snapshot = snapshot.as_slice();
        let e = &mut encoder;
        family(
            e,
            (
                "sluice_rollout_phase",
                "1 for the phase each Rollout is in, 0 for the others.",
                MetricType::Gauge,
            ),
            snapshot,
            |s| {
                let Some(g) = s.gauges.as_ref() else {
                    return vec![];
                };
                PHASES
                    .iter()
                    .map(|p| {
                        (
                            vec![("phase", format!("{p:?}"))],
                            gauge(i64::from(*p == g.phase)),
                        )
                    })
                    .collect()
            },
        )?;
        let plain = [
            (
                "sluice_rollout_canary_weight_percent",
                "The traffic percent the candidate receives (canary).",
                (|g: &Gauges| g.weight) as fn(&Gauges) -> i64,
            ),
            (
                "sluice_rollout_step",
                "The current step, from 1 (0 outside a release).",
                |g: &Gauges| g.step,
            ),
            (
                "sluice_rollout_steps",
                "The steps of the canary strategy (0 for blue/green).",
                |g: &Gauges| g.steps,
            ),
        ];
        for (name, help, pick) in plain {
            family(e, (name, help, MetricType::Gauge), snapshot, |s| {
                s.gauges
                    .as_ref()
                    .map(|g| (vec![], gauge(pick(g))))
                    .into_iter()
                    .collect()
            })?;
        }
        family(
            e,
            (
                "sluice_rollout_revision_info",
                "The stable slot and the stable and candidate revisions (always 1).",
                MetricType::Gauge,
            ),
            snapshot,
            |s| {
                s.gauges
                    .as_ref()
                    .map(|g| {
                        let labels = vec![
                            ("stable_slot", g.stable_slot.clone()),
                            ("stable_revision", g.stable_revision.clone()),
                            ("candidate_revision", g.candidate_revision.clone()),
                        ];
                        (labels, gauge(1))
                    })
                    .into_iter()
                    .collect()
            },
        )?;
        let analysis = [
            (
                "sluice_analysis_value",
                "The latest value of each analysis metric.",
                (|m: &MetricSeries| m.value) as fn(&MetricSeries) -> Option<f64>,
            ),
            (
                "sluice_analysis_max",
                "The bound each analysis metric must stay at or below.",
                |m: &MetricSeries| m.max,
            ),
            (
                "sluice_analysis_min",
                "The bound each analysis metric must stay at or above.",
                |m: &MetricSeries| m.min,
            ),
        ];
        for (name, help, pick) in analysis {
            family(e, (name, help, MetricType::Gauge), snapshot, |s| {
                per_metric(s, pick)
            })?;
        }
        family(
            e,
            (
                "sluice_analysis_checks",
                "Analysis checks, by metric and verdict.",
                MetricType::Counter,
            ),
            snapshot,
            |s| {
                let mut samples = Vec::new();
                for (metric, m) in &s.metrics {
                    for (verdict, count) in VERDICTS.iter().zip(m.checks) {
                        let labels = vec![
                            ("metric", metric.to_string()),
                            ("verdict", verdict.to_string()),
                        ];
                        samples.push((labels, ConstCounter::new(count)));
                    }
                }
                samples
            },
        )?;
        family(
            e,
            (
                "sluice_releases",
                "Releases ended, by outcome (promoted, rolled_back, aborted, superseded).",
                MetricType::Counter,
            ),
            snapshot,
            |s| {
                OUTCOMES
                    .iter()
                    .zip(s.releases)
                    .map(|(o, n)| (vec![("outcome", o.to_string())], ConstCounter::new(n)))
                    .collect()
            },
        )?;
        family(
            e,
            (
                "sluice_commands",
                "Commands applied, by verb and source (annotation, api).",
                MetricType::Counter,
            ),
            snapshot,
            |s| {
                let pairs = VERBS
                    .iter()
                    .flat_map(|verb| SOURCES.iter().map(move |source| (verb, source)));
                pairs
                    .zip(s.commands)
                    .map(|((verb, source), n)| {
                        let labels =
                            vec![("verb", verb.to_string()), ("source", source.to_string())];
                        (labels, ConstCounter::new(n))
                    })
                    .collect()
            },
        )?;
        family(
            e,
            (
                "sluice_rollout_last_release_duration_seconds",
                "How long each Rollout's latest release took, start to end.",
                MetricType::Gauge,
            ),
            snapshot,
            |s| {
                s.last_release_duration
                    .map(|took| (vec![], ConstGauge::new(took)))
                    .into_iter()
                    .collect()
            },
        )?;
        family(
            e,
            (
                "sluice_rollbacks",
                "Releases given up, by cause (failed_checks, failed_queries, inconclusive, progress_deadline, aborted).",
                MetricType::Counter,
            ),
            snapshot,
            |s| {
                CAUSES
                    .iter()
                    .zip(s.rollbacks)
                    .map(|(c, n)| {
                        (
                            vec![("cause", c.as_str().to_string())],
                            ConstCounter::new(n),
                        )
                    })
                    .collect()
            },
        )?;
        Ok(())
    }
}

/// Writes every Rollout's series at each scrape.
#[derive(Debug)]
pub(super) struct RolloutCollector(pub std::sync::Arc<RolloutSeries>);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_counted_causes_are_every_cause_but_a_withdrawn_release() {
        let counted: Vec<RollbackCause> = RollbackCause::ALL
            .into_iter()
            .filter(|c| *c != RollbackCause::Withdrawn)
            .collect();
        assert_eq!(counted, CAUSES);
    }

    #[test]
    fn metrics_stay_sorted_and_a_new_one_starts_with_no_checks() {
        let mut series = Series::default();
        series.count_check("latency", "fail");
        series.count_check("error-rate", "pass");
        series.count_check("latency", "fail");
        let names: Vec<&str> = series.metrics.iter().map(|(m, _)| &**m).collect();
        assert_eq!(names, ["error-rate", "latency"]);
        assert_eq!(series.metric("latency").checks, [0, 2, 0, 0]);
        series.keep_metrics(&["latency".to_string()]);
        assert_eq!(series.metrics.len(), 1);
        series.count_command("abort", "api");
        series.count_command("retry", "annotation");
        series.count_command("nonsense", "api");
        assert_eq!(series.commands.iter().sum::<u64>(), 2);
        assert_eq!(series.commands[2 * SOURCES.len()], 1);
        assert_eq!(series.commands[5 * SOURCES.len() + 1], 1);
    }
}
