//! Counters and histograms for the simulated ingress, pods and direct Service
//! traffic, rendered in the Prometheus text exposition format (0.0.4).
//!
//! Recording is on the per-request hot path, so label sets are interned once
//! into small ids (`RouteId`, `PodSeriesId`, `ServiceSeriesId`) and a request
//! only bumps numbers in a `Vec`; strings are touched again only when
//! rendering.

mod exposition;

use std::{collections::HashMap, fmt::Write as _, hash::Hash};

pub use exposition::escape_label_value;
#[cfg(test)]
pub(crate) use exposition::{Sample, parse_exposition};
use exposition::{header, write_code_counters, write_histogram, write_labels};

/// Upper bounds shared by both histogram families (ingress-nginx's defaults,
/// which are also client_golang's `DefBuckets`). `+Inf` is implicit.
pub const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

const NGINX_REQUESTS: &str = "nginx_ingress_controller_requests";
const NGINX_DURATION: &str = "nginx_ingress_controller_request_duration_seconds";
const APP_REQUESTS: &str = "http_requests_total";
const APP_DURATION: &str = "http_request_duration_seconds";
const SERVICE_REQUESTS: &str = "sandbox_service_requests_total";
/// Labels that are the same on every series of the simulated controller.
const NGINX_CONSTANT_LABELS: [(&str, &str); 3] = [
    ("controller_class", "k8s.io/ingress-nginx"),
    ("controller_namespace", "ingress-nginx"),
    ("controller_pod", "ingress-nginx-controller-sandbox"),
];

/// A cumulative-on-render histogram over [`BUCKETS`].
#[derive(Debug, Clone, Default)]
pub struct Histogram {
    /// Per-bucket (non-cumulative) counts; the last slot is `+Inf`.
    counts: [u64; 12],
    sum: f64,
}

impl Histogram {
    pub fn observe(&mut self, seconds: f64) {
        let slot = BUCKETS
            .iter()
            .position(|&le| seconds <= le)
            .unwrap_or(BUCKETS.len());
        self.counts[slot] += 1;
        self.sum += seconds;
    }

    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    pub fn sum(&self) -> f64 {
        self.sum
    }

    /// Cumulative counts per bucket, `+Inf` last, as exposed.
    pub fn cumulative(&self) -> [u64; 12] {
        let mut acc = 0;
        self.counts.map(|c| {
            acc += c;
            acc
        })
    }
}

/// Label values of one ingress-nginx route (everything but `status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NginxLabels<'a> {
    pub canary: &'a str,
    pub host: &'a str,
    pub ingress: &'a str,
    pub namespace: &'a str,
    pub path: &'a str,
    pub service: &'a str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteId(u32);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PodSeriesId(u32);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceSeriesId(u32);

#[derive(Debug, Default)]
struct Interner {
    ids: HashMap<String, u32>,
    strings: Vec<String>,
}

impl Interner {
    fn intern(&mut self, s: &str) -> u32 {
        if let Some(&id) = self.ids.get(s) {
            return id;
        }
        let id = self.strings.len() as u32;
        self.ids.insert(s.to_owned(), id);
        self.strings.push(s.to_owned());
        id
    }

    fn get(&self, id: u32) -> &str {
        &self.strings[id as usize]
    }
}

/// Field order: canary, host, ingress, namespace, path, service.
type RouteKey = [u32; 6];

#[derive(Debug)]
struct RouteSeries {
    key: RouteKey,
    /// Few statuses per route (200/500/503), so a linear scan beats a map.
    by_status: Vec<(u16, Histogram)>,
}

/// Requests per status code. Few codes per series (200/500/503), so a
/// linear scan beats a map.
#[derive(Debug, Default)]
struct Codes(Vec<(u16, u64)>);

impl Codes {
    fn add(&mut self, code: u16) {
        match self.0.iter_mut().find(|(c, _)| *c == code) {
            Some((_, n)) => *n += 1,
            None => self.0.push((code, 1)),
        }
    }

    fn sorted(&self) -> Vec<(u16, u64)> {
        let mut codes = self.0.clone();
        codes.sort_unstable();
        codes
    }
}

#[derive(Debug)]
struct PodSeries {
    namespace: u32,
    pod: u32,
    codes: Codes,
    latency: Histogram,
}

/// Field order: namespace, service, pod (`""` when no pod was ready).
type ServiceKey = [u32; 3];

#[derive(Debug)]
struct ServiceSeries {
    key: ServiceKey,
    codes: Codes,
}

/// Everything recorded so far. Series are never dropped: a real exporter
/// keeps reporting a vanished pod's counters until it restarts.
#[derive(Debug, Default)]
pub struct Metrics {
    /// ingress-nginx's `--metrics-per-host=false` drops the `host` label.
    without_host: bool,
    strings: Interner,
    routes: Vec<RouteSeries>,
    route_index: HashMap<RouteKey, u32>,
    pods: Vec<PodSeries>,
    pod_index: HashMap<(u32, u32), u32>,
    services: Vec<ServiceSeries>,
    service_index: HashMap<ServiceKey, u32>,
}

/// Index in `all` of the series under `key`, pushing `new()` the first time.
fn series_slot<K: Eq + Hash, S>(
    index: &mut HashMap<K, u32>,
    all: &mut Vec<S>,
    key: K,
    new: impl FnOnce() -> S,
) -> u32 {
    *index.entry(key).or_insert_with(|| {
        all.push(new());
        all.len() as u32 - 1
    })
}

impl Metrics {
    /// `per_host`: whether ingress-nginx series carry a `host` label.
    pub fn new(per_host: bool) -> Self {
        Metrics {
            without_host: !per_host,
            ..Metrics::default()
        }
    }

    pub fn route(&mut self, labels: NginxLabels<'_>) -> RouteId {
        let key = [
            self.strings.intern(labels.canary),
            self.strings.intern(labels.host),
            self.strings.intern(labels.ingress),
            self.strings.intern(labels.namespace),
            self.strings.intern(labels.path),
            self.strings.intern(labels.service),
        ];
        let new = || RouteSeries {
            key,
            by_status: Vec::new(),
        };
        RouteId(series_slot(
            &mut self.route_index,
            &mut self.routes,
            key,
            new,
        ))
    }

    pub fn pod(&mut self, namespace: &str, pod: &str) -> PodSeriesId {
        let key = (self.strings.intern(namespace), self.strings.intern(pod));
        let new = || PodSeries {
            namespace: key.0,
            pod: key.1,
            codes: Codes::default(),
            latency: Histogram::default(),
        };
        PodSeriesId(series_slot(&mut self.pod_index, &mut self.pods, key, new))
    }

    /// The series of direct requests to a Service served by `pod`, or of
    /// those that found no ready pod when `pod` is `None`.
    pub fn service(
        &mut self,
        namespace: &str,
        service: &str,
        pod: Option<PodSeriesId>,
    ) -> ServiceSeriesId {
        let pod = match pod {
            Some(pod) => self.pods[pod.0 as usize].pod,
            None => self.strings.intern(""),
        };
        let key = [
            self.strings.intern(namespace),
            self.strings.intern(service),
            pod,
        ];
        let new = || ServiceSeries {
            key,
            codes: Codes::default(),
        };
        ServiceSeriesId(series_slot(
            &mut self.service_index,
            &mut self.services,
            key,
            new,
        ))
    }

    pub fn record_nginx(&mut self, route: RouteId, status: u16, seconds: f64) {
        let series = &mut self.routes[route.0 as usize].by_status;
        match series.iter_mut().find(|(s, _)| *s == status) {
            Some((_, h)) => h.observe(seconds),
            None => {
                let mut h = Histogram::default();
                h.observe(seconds);
                series.push((status, h));
            }
        }
    }

    pub fn record_pod(&mut self, pod: PodSeriesId, status: u16, seconds: f64) {
        let series = &mut self.pods[pod.0 as usize];
        series.latency.observe(seconds);
        series.codes.add(status);
    }

    pub fn record_service(&mut self, series: ServiceSeriesId, status: u16) {
        self.services[series.0 as usize].codes.add(status);
    }

    /// Prometheus text format 0.0.4, series sorted by label values so two
    /// runs that recorded the same things render byte-identical text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let s = |id: u32| self.strings.get(id);

        let mut nginx: Vec<([&str; 6], u16, &Histogram)> = self
            .routes
            .iter()
            .flat_map(|r| {
                r.by_status
                    .iter()
                    .map(move |(status, h)| (r.key.map(s), *status, h))
            })
            .collect();
        nginx.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        let nginx_labels = |k: &[&str; 6], status: &str, out: &mut String| {
            let [canary, host, ingress, namespace, path, service] = *k;
            let [class, ctl_ns, ctl_pod] = NGINX_CONSTANT_LABELS;
            let mut labels = vec![("canary", canary), class, ctl_ns, ctl_pod];
            if !self.without_host {
                labels.push(("host", host));
            }
            labels.extend([
                ("ingress", ingress),
                ("method", "GET"),
                ("namespace", namespace),
                ("path", path),
                ("service", service),
                ("status", status),
            ]);
            write_labels(out, &labels);
        };
        if !nginx.is_empty() {
            header(
                &mut out,
                NGINX_REQUESTS,
                "The total number of client requests",
                "counter",
            );
            for (k, status, h) in &nginx {
                out.push_str(NGINX_REQUESTS);
                nginx_labels(k, &status.to_string(), &mut out);
                let _ = writeln!(out, " {}", h.count());
            }
            header(
                &mut out,
                NGINX_DURATION,
                "The request processing time in seconds",
                "histogram",
            );
            for (k, status, h) in &nginx {
                let mut labels = String::new();
                nginx_labels(k, &status.to_string(), &mut labels);
                write_histogram(&mut out, NGINX_DURATION, &labels, h);
            }
        }

        let mut pods: Vec<(&str, &str, &PodSeries)> = self
            .pods
            .iter()
            .map(|p| (s(p.namespace), s(p.pod), p))
            .collect();
        pods.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        if !pods.is_empty() {
            header(
                &mut out,
                APP_REQUESTS,
                "Total number of HTTP requests served by the pod",
                "counter",
            );
            for (namespace, pod, series) in &pods {
                let labels = [("namespace", *namespace), ("pod", *pod)];
                write_code_counters(&mut out, APP_REQUESTS, &series.codes.sorted(), &labels);
            }
            header(
                &mut out,
                APP_DURATION,
                "Time taken by the pod to serve HTTP requests",
                "histogram",
            );
            for (namespace, pod, series) in &pods {
                let mut labels = String::new();
                write_labels(&mut labels, &[("namespace", namespace), ("pod", pod)]);
                write_histogram(&mut out, APP_DURATION, &labels, &series.latency);
            }
        }

        let mut services: Vec<([&str; 3], &Codes)> = self
            .services
            .iter()
            .map(|series| (series.key.map(s), &series.codes))
            .collect();
        services.sort_by_key(|(key, _)| *key);
        if !services.is_empty() {
            header(
                &mut out,
                SERVICE_REQUESTS,
                "Direct requests to a Service (sandbox.sluice.dev/rps) by serving pod and status; \
                 pod=\"\" code=\"503\" counts those that found no ready pod",
                "counter",
            );
            for ([namespace, service, pod], codes) in &services {
                let labels = [
                    ("namespace", *namespace),
                    ("pod", *pod),
                    ("service", *service),
                ];
                write_code_counters(&mut out, SERVICE_REQUESTS, &codes.sorted(), &labels);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests;
