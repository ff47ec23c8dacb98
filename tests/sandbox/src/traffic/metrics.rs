//! Counters and histograms for the simulated ingress and pods, rendered in
//! the Prometheus text exposition format (0.0.4).
//!
//! Recording is on the per-request hot path, so label sets are interned once
//! into small ids (`RouteId`, `PodSeriesId`) and a request only bumps numbers
//! in a `Vec`; strings are touched again only when rendering.

use std::{collections::HashMap, fmt::Write as _};

/// Upper bounds shared by both histogram families (ingress-nginx's defaults,
/// which are also client_golang's `DefBuckets`). `+Inf` is implicit.
pub const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
const BUCKET_LABELS: [&str; 12] = [
    "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf",
];

const NGINX_REQUESTS: &str = "nginx_ingress_controller_requests";
const NGINX_DURATION: &str = "nginx_ingress_controller_request_duration_seconds";
const APP_REQUESTS: &str = "http_requests_total";
const APP_DURATION: &str = "http_request_duration_seconds";
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PodSeriesId(u32);

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

#[derive(Debug)]
struct PodSeries {
    namespace: u32,
    pod: u32,
    codes: Vec<(u16, u64)>,
    latency: Histogram,
}

/// Everything recorded so far. Series are never dropped: a real exporter
/// keeps reporting a vanished pod's counters until it restarts.
#[derive(Debug, Default)]
pub struct Metrics {
    strings: Interner,
    routes: Vec<RouteSeries>,
    route_index: HashMap<RouteKey, RouteId>,
    pods: Vec<PodSeries>,
    pod_index: HashMap<(u32, u32), PodSeriesId>,
}

impl Metrics {
    pub fn route(&mut self, labels: NginxLabels<'_>) -> RouteId {
        let key = [
            self.strings.intern(labels.canary),
            self.strings.intern(labels.host),
            self.strings.intern(labels.ingress),
            self.strings.intern(labels.namespace),
            self.strings.intern(labels.path),
            self.strings.intern(labels.service),
        ];
        if let Some(&id) = self.route_index.get(&key) {
            return id;
        }
        let id = RouteId(self.routes.len() as u32);
        self.routes.push(RouteSeries {
            key,
            by_status: Vec::new(),
        });
        self.route_index.insert(key, id);
        id
    }

    pub fn pod(&mut self, namespace: &str, pod: &str) -> PodSeriesId {
        let key = (self.strings.intern(namespace), self.strings.intern(pod));
        if let Some(&id) = self.pod_index.get(&key) {
            return id;
        }
        let id = PodSeriesId(self.pods.len() as u32);
        self.pods.push(PodSeries {
            namespace: key.0,
            pod: key.1,
            codes: Vec::new(),
            latency: Histogram::default(),
        });
        self.pod_index.insert(key, id);
        id
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
        match series.codes.iter_mut().find(|(s, _)| *s == status) {
            Some((_, n)) => *n += 1,
            None => series.codes.push((status, 1)),
        }
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
            let labels = [
                ("canary", canary),
                class,
                ctl_ns,
                ctl_pod,
                ("host", host),
                ("ingress", ingress),
                ("method", "GET"),
                ("namespace", namespace),
                ("path", path),
                ("service", service),
                ("status", status),
            ];
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
                let mut codes = series.codes.clone();
                codes.sort_unstable();
                for (code, n) in codes {
                    out.push_str(APP_REQUESTS);
                    let code = code.to_string();
                    write_labels(
                        &mut out,
                        &[("code", &code), ("namespace", namespace), ("pod", pod)],
                    );
                    let _ = writeln!(out, " {n}");
                }
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
        out
    }
}

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Writes `{a="x",b="y"}` with values escaped as the text format requires.
fn write_labels(out: &mut String, labels: &[(&str, &str)]) {
    out.push('{');
    for (i, (name, value)) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(name);
        out.push_str("=\"");
        escape_label_value(out, value);
        out.push('"');
    }
    out.push('}');
}

pub fn escape_label_value(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// `labels` is a rendered `{...}` block; `le` is spliced in before its `}`.
fn write_histogram(out: &mut String, name: &str, labels: &str, h: &Histogram) {
    let inner = &labels[..labels.len() - 1];
    for (le, n) in BUCKET_LABELS.iter().zip(h.cumulative()) {
        let _ = writeln!(out, "{name}_bucket{inner},le=\"{le}\"}} {n}");
    }
    let _ = writeln!(out, "{name}_sum{labels} {}", h.sum());
    let _ = writeln!(out, "{name}_count{labels} {}", h.count());
}

/// A parsed sample, for tests that want to read the exposition back.
#[cfg(test)]
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Sample {
    pub name: String,
    pub labels: std::collections::BTreeMap<String, String>,
    pub value: f64,
}

/// Strict-enough parser of the text format: fails the test on any line a
/// Prometheus scraper would reject, so it doubles as a validity check.
#[cfg(test)]
pub(crate) fn parse_exposition(text: &str) -> Vec<Sample> {
    let line_re = regex::Regex::new(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)$").unwrap();
    let pair_re =
        regex::Regex::new(r#"^([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)"#).unwrap();
    let mut samples = Vec::new();
    let mut typed = std::collections::HashSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let name = rest.split(' ').next().unwrap();
            assert!(typed.insert(name.to_owned()), "TYPE twice for {name}");
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        let caps = line_re
            .captures(line)
            .unwrap_or_else(|| panic!("bad line {line:?}"));
        let mut labels = std::collections::BTreeMap::new();
        if let Some(block) = caps.get(2) {
            let mut rest = &block.as_str()[1..block.as_str().len() - 1];
            while !rest.is_empty() {
                let c = pair_re
                    .captures(rest)
                    .unwrap_or_else(|| panic!("bad labels {line:?}"));
                let value = c[2]
                    .replace("\\n", "\n")
                    .replace("\\\"", "\"")
                    .replace("\\\\", "\\");
                labels.insert(c[1].to_owned(), value);
                rest = &rest[c[0].len()..];
            }
        }
        let value = match &caps[3] {
            "+Inf" => f64::INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value {line:?}")),
        };
        samples.push(Sample {
            name: caps[1].to_owned(),
            labels,
            value,
        });
    }
    samples
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels<'a>(canary: &'a str, path: &'a str) -> NginxLabels<'a> {
        NginxLabels {
            canary,
            host: "shop.example",
            ingress: "shop",
            namespace: "prod",
            path,
            service: "shop",
        }
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_le_inclusive() {
        let mut h = Histogram::default();
        for v in [0.005, 0.006, 0.3, 20.0] {
            h.observe(v);
        }
        let c = h.cumulative();
        assert_eq!(c[0], 1, "0.005 belongs to le=0.005");
        assert_eq!(c[1], 2);
        assert_eq!(c[6], 3);
        assert_eq!(c[10], 3);
        assert_eq!(c[11], 4);
        assert_eq!(h.count(), 4);
        assert!((h.sum() - 20.311).abs() < 1e-9);
    }

    #[test]
    fn same_labels_reuse_one_series() {
        let mut m = Metrics::default();
        let a = m.route(labels("", "/"));
        let b = m.route(labels("", "/"));
        let c = m.route(labels("prod-shop-canary-80", "/"));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(m.pod("prod", "p1"), m.pod("prod", "p1"));
    }

    #[test]
    fn render_is_valid_sorted_and_complete() {
        let mut m = Metrics::default();
        let z = m.route(labels("", "/z"));
        let a = m.route(labels("", "/a"));
        m.record_nginx(z, 200, 0.02);
        m.record_nginx(a, 503, 0.001);
        m.record_nginx(a, 200, 0.03);
        let p = m.pod("prod", "shop-abc-1");
        m.record_pod(p, 500, 0.2);
        m.record_pod(p, 200, 0.02);
        m.record_pod(p, 200, 0.04);
        let text = m.render();
        let samples = parse_exposition(&text);
        assert_eq!(text.matches("# TYPE ").count(), 4);

        let reqs: Vec<&Sample> = samples
            .iter()
            .filter(|s| s.name == NGINX_REQUESTS)
            .collect();
        let order: Vec<(&str, &str)> = reqs
            .iter()
            .map(|s| (s.labels["path"].as_str(), s.labels["status"].as_str()))
            .collect();
        assert_eq!(order, [("/a", "200"), ("/a", "503"), ("/z", "200")]);
        let first = &reqs[0].labels;
        assert_eq!(first["controller_class"], "k8s.io/ingress-nginx");
        assert_eq!(first["controller_namespace"], "ingress-nginx");
        assert_eq!(first["controller_pod"], "ingress-nginx-controller-sandbox");
        assert_eq!(first["method"], "GET");
        assert_eq!(first["canary"], "");

        let inf = samples
            .iter()
            .find(|s| s.name == "http_request_duration_seconds_bucket" && s.labels["le"] == "+Inf")
            .unwrap();
        assert_eq!(inf.value, 3.0);
        let codes: Vec<(&str, f64)> = samples
            .iter()
            .filter(|s| s.name == APP_REQUESTS)
            .map(|s| (s.labels["code"].as_str(), s.value))
            .collect();
        assert_eq!(codes, [("200", 2.0), ("500", 1.0)]);
    }

    #[test]
    fn label_values_are_escaped() {
        let mut m = Metrics::default();
        let nasty = "a\\b\"c\nd";
        let r = m.route(labels("", nasty));
        m.record_nginx(r, 200, 0.01);
        let text = m.render();
        assert!(text.contains(r#"path="a\\b\"c\nd""#), "{text}");
        let samples = parse_exposition(&text);
        assert!(samples.iter().all(|s| s.labels["path"] == nasty));
    }

    #[test]
    fn empty_metrics_render_nothing() {
        assert_eq!(Metrics::default().render(), "");
    }
}
