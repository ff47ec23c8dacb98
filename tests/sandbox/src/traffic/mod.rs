//! Simulated HTTP traffic through ingress-nginx into the sandbox's pods.
//!
//! Each `advance` turns the rps annotations found in a [`ClusterView`] into
//! an exact number of requests, routes each one the way ingress-nginx would
//! (canary Ingresses included), lets the serving pod's configured behaviour
//! (capacity included, see [`capacity`]) pick a status and latency, and
//! records the same metrics ingress-nginx and a typical instrumented app
//! would export. Only Ingresses of ingress-nginx's class are served (see
//! [`class`]), and canary annotations go through its value checks (see
//! [`validate`]).

pub mod behavior;
pub mod capacity;
pub mod class;
pub mod k8s;
pub mod metrics;
pub mod rng;
pub mod routing;
pub mod source;
pub mod validate;

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::Arc,
    time::Duration,
};

use serde_json::Value;

use behavior::{Behaviors, PodBehavior};
pub use behavior::{ImageBehavior, TrafficError};
use capacity::Capacity;
use class::Classes;
use metrics::{Metrics, NginxLabels, PodSeriesId, RouteId, ServiceSeriesId};
use rng::Rng;
use routing::{Backend, CanaryPolicy, Ingress, IngressPath, RegexCache, Verdict};
use source::{Carry, RequestAttr};
use validate::Warnings;

/// ingress-nginx answers for a backend without endpoints itself, quickly.
const NO_ENDPOINT_LATENCY_S: f64 = 0.001;
const NO_ENDPOINT_SIGMA: f64 = 0.25;

/// One simulated pod, as the workload simulator sees it.
#[derive(Debug, Clone)]
pub struct PodView {
    pub namespace: String,
    /// "<deployment>-<templatehash>-<suffix>"
    pub name: String,
    /// The Deployment's pod template labels.
    pub labels: BTreeMap<String, String>,
    /// The pod template annotations.
    pub annotations: BTreeMap<String, String>,
    pub images: Vec<String>,
    pub ready: bool,
}

/// The `Host` a simulated client sends on a rule without a host: the address it reached the
/// controller at.
pub const HOST_OF_HOSTLESS_RULE: &str = "127.0.0.1";
/// What replaces `*` of a wildcard rule's host in the requests sent to it.
pub const WILDCARD_LABEL: &str = "sandbox";

/// The ingress-nginx flags the simulation honours; the default is ingress-nginx's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IngressOptions {
    /// `--watch-ingress-without-class`
    pub watch_without_class: bool,
    /// `--metrics-per-host`
    pub metrics_per_host: bool,
    /// `--metrics-per-undefined-host`
    pub metrics_per_undefined_host: bool,
}

impl Default for IngressOptions {
    fn default() -> Self {
        IngressOptions {
            watch_without_class: false,
            metrics_per_host: true,
            metrics_per_undefined_host: false,
        }
    }
}

/// What the traffic engine sees of the cluster at one instant.
pub struct ClusterView {
    /// networking.k8s.io/v1 IngressClass objects (cluster-scoped, all of them).
    pub ingress_classes: Vec<Arc<Value>>,
    /// networking.k8s.io/v1 Ingress objects (JSON as stored).
    pub ingresses: Vec<Arc<Value>>,
    /// v1 Service objects.
    pub services: Vec<Arc<Value>>,
    pub pods: Vec<PodView>,
}

/// A pod able to serve during the current step.
struct Endpoint {
    series: PodSeriesId,
    behavior: PodBehavior,
    /// Requests routed to it in this step, counted only for a capped pod.
    arrivals: u64,
}

/// Who sent a request, for the metrics recorded besides the serving pod's.
#[derive(Clone, Copy)]
enum Client {
    /// `None`: a request ingress-nginx serves but leaves out of its metrics (undeclared host).
    Ingress(Option<RouteId>),
    Service(ServiceSeriesId),
}

/// A request to a capped pod, routed and sampled but not yet recorded: it
/// fails if the pod turns out to be overloaded once the step's arrivals are
/// all known.
struct Deferred {
    slot: u32,
    client: Client,
    status: u16,
    latency: f64,
}

/// Per-`advance` indexes over the view, restricted to the namespaces that
/// have traffic sources so idle objects cost one annotation lookup each.
struct StepIndex<'v> {
    services: HashMap<(&'v str, &'v str), &'v Value>,
    ready_pods: HashMap<&'v str, Vec<&'v PodView>>,
    canaries: HashMap<&'v str, Vec<Ingress<'v>>>,
    /// Ready pods selected by each Service, as an index into `sets`.
    selected: HashMap<(&'v str, &'v str), usize>,
    sets: Vec<Vec<u32>>,
    endpoints: Vec<Endpoint>,
    endpoint_of_pod: HashMap<(&'v str, &'v str), u32>,
    deferred: Vec<Deferred>,
}

impl<'v> StepIndex<'v> {
    fn new(view: &'v ClusterView, namespaces: &HashSet<&'v str>, classes: &Classes) -> Self {
        let mut index = Self {
            services: HashMap::new(),
            ready_pods: HashMap::new(),
            canaries: HashMap::new(),
            selected: HashMap::new(),
            sets: Vec::new(),
            endpoints: Vec::new(),
            endpoint_of_pod: HashMap::new(),
            deferred: Vec::new(),
        };
        for svc in &view.services {
            let ns = k8s::namespace(svc);
            if let (true, Some(name)) = (namespaces.contains(ns), k8s::metadata(svc, "name")) {
                index.services.insert((ns, name), &**svc);
            }
        }
        for pod in view.pods.iter().filter(|p| p.ready) {
            if let Some(&ns) = namespaces.get(pod.namespace.as_str()) {
                index.ready_pods.entry(ns).or_default().push(pod);
            }
        }
        for ing in &view.ingresses {
            let ns = k8s::namespace(ing);
            if namespaces.contains(ns) && routing::is_canary(ing) && classes.admits(ing) {
                index
                    .canaries
                    .entry(ns)
                    .or_default()
                    .push(Ingress::parse(ing));
            }
        }
        index
    }
}

/// The canary side of one ingress path during a step.
struct CanaryPlan {
    policy: CanaryPolicy,
    route: Option<RouteId>,
    set: usize,
    /// (share, verdict) of the source's attributes that carry the canary's
    /// header or cookie, in annotation order: the first one drawn is what the
    /// request carries.
    headers: Vec<(f64, Verdict)>,
    cookies: Vec<(f64, Verdict)>,
}

pub struct TrafficEngine {
    options: IngressOptions,
    warnings: Warnings,
    rng: Rng,
    behaviors: Behaviors,
    capacity: Capacity,
    regexes: RegexCache,
    carries: HashMap<(String, usize, usize), Carry>,
    metrics: Metrics,
    total: u64,
    generation: u64,
}

impl TrafficEngine {
    /// An engine with ingress-nginx's default flags.
    pub fn new(seed: u64, image_behaviors: Vec<ImageBehavior>) -> Self {
        Self::with_options(seed, image_behaviors, IngressOptions::default())
    }

    pub fn with_options(
        seed: u64,
        image_behaviors: Vec<ImageBehavior>,
        options: IngressOptions,
    ) -> Self {
        Self {
            options,
            warnings: Warnings::default(),
            rng: Rng::new(seed),
            behaviors: Behaviors::new(image_behaviors),
            capacity: Capacity::new(seed),
            regexes: RegexCache::default(),
            carries: HashMap::new(),
            metrics: Metrics::new(options.metrics_per_host),
            total: 0,
            generation: 0,
        }
    }

    /// Simulate `elapsed` of traffic against `view` and record it.
    pub fn advance(&mut self, view: &ClusterView, elapsed: Duration) {
        self.generation += 1;
        self.capacity.step(elapsed);
        let classes = Classes::new(&view.ingress_classes, self.options.watch_without_class);
        for ingress in &view.ingresses {
            if let Some(invalid) = routing::invalid_canary_flag(ingress) {
                self.warnings.report(ingress, &[invalid]);
            }
        }
        let ingress_sources: Vec<(&Value, f64)> = view
            .ingresses
            .iter()
            .filter_map(|i| Some((&**i, source::rps(i)?)))
            .filter(|(i, _)| !routing::is_canary(i) && classes.admits(i))
            .collect();
        let service_sources: Vec<(&Value, f64)> = view
            .services
            .iter()
            .filter_map(|s| Some((&**s, source::rps(s)?)))
            .collect();
        if !ingress_sources.is_empty() || !service_sources.is_empty() {
            let namespaces: HashSet<&str> = ingress_sources
                .iter()
                .chain(&service_sources)
                .map(|(obj, _)| k8s::namespace(obj))
                .collect();
            let mut index = StepIndex::new(view, &namespaces, &classes);
            for (ingress, rate) in ingress_sources {
                self.run_ingress(&mut index, ingress, rate, elapsed);
            }
            for (service, rate) in service_sources {
                self.run_service(&mut index, service, rate, elapsed);
            }
            self.settle(&mut index);
        }
        // Sources that vanished start from scratch if they come back.
        let generation = self.generation;
        self.carries.retain(|_, c| c.generation == generation);
    }

    /// Prometheus text exposition (format 0.0.4) of everything recorded so far.
    pub fn render_metrics(&self) -> String {
        self.metrics.render()
    }

    /// Total requests simulated so far, including direct Service requests
    /// that found no ready pod.
    pub fn total_requests(&self) -> u64 {
        self.total
    }

    fn due(&mut self, key: String, slot: (usize, usize), rate: f64, elapsed: Duration) -> u64 {
        let carry = self.carries.entry((key, slot.0, slot.1)).or_default();
        let n = carry.due(rate, elapsed, self.generation);
        self.total += n;
        n
    }

    fn run_ingress<'v>(
        &mut self,
        index: &mut StepIndex<'v>,
        obj: &'v Value,
        rate: f64,
        elapsed: Duration,
    ) {
        let ingress = Ingress::parse(obj);
        let key = source::carry_key(obj, "ingress");
        let attrs = |annotation, normalize| {
            k8s::annotation(obj, annotation)
                .map(|spec| source::parse_request_attrs(spec, normalize))
                .unwrap_or_default()
        };
        let headers = attrs(source::REQUEST_HEADERS, routing::normalize_header);
        let cookies = attrs(source::REQUEST_COOKIES, routing::normalize_cookie);
        for path in &ingress.paths {
            let n = self.due(key.clone(), (path.rule, path.index), rate, elapsed);
            if n == 0 {
                continue;
            }
            let host = self.host_label(path);
            let labels = NginxLabels {
                canary: "",
                host: host.as_deref().unwrap_or(""),
                ingress: ingress.name,
                namespace: ingress.namespace,
                path: path.path,
                service: path.backend.map_or("", |b| b.service),
            };
            let main_route = host.is_some().then(|| self.metrics.route(labels));
            let Some((main, _)) = self.backend_set(index, ingress.namespace, path.backend) else {
                for _ in 0..n {
                    let latency = self
                        .rng
                        .log_normal(NO_ENDPOINT_LATENCY_S, NO_ENDPOINT_SIGMA);
                    if let Some(route) = main_route {
                        self.metrics.record_nginx(route, 503, latency);
                    }
                }
                continue;
            };
            let canaries = index
                .canaries
                .get(ingress.namespace)
                .map_or(&[][..], Vec::as_slice);
            let found = routing::find_canary(&ingress, path, canaries).map(|(c, b)| (c.object, b));
            let canary = found.and_then(|(canary, backend)| {
                let counted = main_route.is_some();
                let main = (labels, counted);
                self.canary_plan(
                    index,
                    ingress.namespace,
                    main,
                    canary,
                    backend,
                    &headers,
                    &cookies,
                )
            });
            for _ in 0..n {
                let to_canary = canary.as_ref().is_some_and(|c| {
                    let header = first_drawn(&mut self.rng, &c.headers);
                    let cookie = first_drawn(&mut self.rng, &c.cookies);
                    routing::decide(header, cookie, || {
                        let roll = self.rng.below(c.policy.weight_total as u64) as i64 + 1;
                        c.policy.weight_hits(roll)
                    })
                });
                let (set, route) = match &canary {
                    Some(c) if to_canary => (c.set, c.route),
                    _ => (main, main_route),
                };
                self.serve(index, set, |_| Client::Ingress(route));
            }
        }
    }

    /// The `host` label of requests on `path`, or `None` when ingress-nginx
    /// leaves them out of its request metrics: under `--metrics-per-host`
    /// without `--metrics-per-undefined-host` it counts only requests whose
    /// Host is exactly a declared host, which a wildcard rule's or a host-less
    /// rule's requests never are.
    fn host_label(&self, path: &IngressPath<'_>) -> Option<String> {
        if !self.options.metrics_per_host {
            // No host label at all; the empty value is never rendered.
            return Some(String::new());
        }
        let declared = !path.host.is_empty() && !path.host.starts_with('*');
        if declared {
            return Some(path.host.to_owned());
        }
        self.options
            .metrics_per_undefined_host
            .then(|| match path.host.strip_prefix('*') {
                Some(rest) => format!("{WILDCARD_LABEL}{rest}"),
                None => HOST_OF_HOSTLESS_RULE.to_owned(),
            })
    }

    /// `None` when the canary has no ready pod: ingress-nginx then has no
    /// balancer for it and keeps every request on the main backend.
    #[allow(clippy::too_many_arguments)]
    fn canary_plan<'v>(
        &mut self,
        index: &mut StepIndex<'v>,
        namespace: &'v str,
        (main_labels, counted): (NginxLabels<'_>, bool),
        canary: &'v Value,
        backend: Backend<'v>,
        headers: &[RequestAttr<'_>],
        cookies: &[RequestAttr<'_>],
    ) -> Option<CanaryPlan> {
        let (set, port) = self.backend_set(index, namespace, Some(backend))?;
        let (policy, invalid) = CanaryPolicy::parse(canary, &mut self.regexes);
        self.warnings.report(canary, &invalid);
        let upstream = format!("{namespace}-{}-{port}", backend.service);
        let route = counted.then(|| {
            self.metrics.route(NginxLabels {
                canary: &upstream,
                ..main_labels
            })
        });
        let headers = relevant(headers, policy.header.as_deref(), |v| {
            policy.header_verdict(v)
        });
        let cookies = relevant(cookies, policy.cookie.as_deref(), |v| {
            policy.cookie_verdict(v)
        });
        Some(CanaryPlan {
            policy,
            route,
            set,
            headers,
            cookies,
        })
    }

    fn run_service<'v>(
        &mut self,
        index: &mut StepIndex<'v>,
        obj: &'v Value,
        rate: f64,
        elapsed: Duration,
    ) {
        let n = self.due(source::carry_key(obj, "service"), (0, 0), rate, elapsed);
        let name = k8s::metadata(obj, "name").unwrap_or("");
        if n == 0 {
            return;
        }
        let namespace = k8s::namespace(obj);
        let Some(set) = self.selected_set(index, namespace, name) else {
            // What a client of a Service without endpoints sees (a refused
            // connection or a timeout) is modelled as a 503.
            let series = self.metrics.service(namespace, name, None);
            for _ in 0..n {
                self.metrics.record_service(series, 503);
            }
            return;
        };
        let series: Vec<ServiceSeriesId> = index.sets[set]
            .iter()
            .map(|&slot| {
                let pod = index.endpoints[slot as usize].series;
                self.metrics.service(namespace, name, Some(pod))
            })
            .collect();
        for _ in 0..n {
            self.serve(index, set, |position| Client::Service(series[position]));
        }
    }

    /// Ready pods behind an Ingress backend and its port number, if there
    /// are any: a missing Service or a port it does not expose leaves nginx
    /// without endpoints.
    fn backend_set<'v>(
        &mut self,
        index: &mut StepIndex<'v>,
        namespace: &'v str,
        backend: Option<Backend<'v>>,
    ) -> Option<(usize, i64)> {
        let backend = backend?;
        let service = index.services.get(&(namespace, backend.service))?;
        let port = k8s::resolve_port(service, backend.port)?;
        Some((self.selected_set(index, namespace, backend.service)?, port))
    }

    /// Ready pods selected by a Service, or `None` when there are none.
    fn selected_set<'v>(
        &mut self,
        index: &mut StepIndex<'v>,
        namespace: &'v str,
        name: &'v str,
    ) -> Option<usize> {
        if let Some(&set) = index.selected.get(&(namespace, name)) {
            return (!index.sets[set].is_empty()).then_some(set);
        }
        let service = index.services.get(&(namespace, name))?;
        let selector = k8s::selector(service);
        let pods = index
            .ready_pods
            .get(namespace)
            .map_or(&[][..], Vec::as_slice);
        let mut members = Vec::new();
        for pod in pods.iter().filter(|p| k8s::selects(&selector, &p.labels)) {
            let key = (pod.namespace.as_str(), pod.name.as_str());
            let slot = match index.endpoint_of_pod.get(&key) {
                Some(&slot) => slot,
                None => {
                    let slot = index.endpoints.len() as u32;
                    index.endpoints.push(self.endpoint(pod));
                    index.endpoint_of_pod.insert(key, slot);
                    slot
                }
            };
            members.push(slot);
        }
        let set = index.sets.len();
        let empty = members.is_empty();
        index.sets.push(members);
        index.selected.insert((namespace, name), set);
        (!empty).then_some(set)
    }

    fn endpoint(&mut self, pod: &PodView) -> Endpoint {
        Endpoint {
            series: self.metrics.pod(&pod.namespace, &pod.name),
            behavior: self.behaviors.for_pod(&pod.annotations, &pod.images),
            arrivals: 0,
        }
    }

    /// One request served by a pod drawn uniformly from `set`, which the
    /// callers guarantee is non-empty; `client` names the sender given the
    /// pod's position in `set`.
    fn serve(&mut self, index: &mut StepIndex<'_>, set: usize, client: impl Fn(usize) -> Client) {
        let members = &index.sets[set];
        let position = self.rng.below(members.len() as u64) as usize;
        let slot = members[position];
        let pod = &mut index.endpoints[slot as usize];
        let (status, latency) = pod.behavior.sample(&mut self.rng);
        let client = client(position);
        if pod.behavior.max_rps.is_none() {
            self.record(pod.series, client, status, latency);
            return;
        }
        pod.arrivals += 1;
        index.deferred.push(Deferred {
            slot,
            client,
            status,
            latency,
        });
    }

    /// Decides the requests to capped pods once every source of the step has
    /// been routed (see [`capacity`] for why not as they arrive).
    fn settle(&mut self, index: &mut StepIndex<'_>) {
        let mut overflow = vec![0.0; index.endpoints.len()];
        for (share, pod) in overflow.iter_mut().zip(&index.endpoints) {
            if let Some(max_rps) = pod.behavior.max_rps
                && pod.arrivals > 0
            {
                *share = self.capacity.overflow(pod.series, max_rps, pod.arrivals);
            }
        }
        for request in std::mem::take(&mut index.deferred) {
            let slot = request.slot as usize;
            let (status, latency) = match self.capacity.reject(overflow[slot]) {
                Some(latency) => (503, latency),
                None => (request.status, request.latency),
            };
            let pod = index.endpoints[slot].series;
            self.record(pod, request.client, status, latency);
        }
    }

    fn record(&mut self, pod: PodSeriesId, client: Client, status: u16, latency: f64) {
        self.metrics.record_pod(pod, status, latency);
        match client {
            Client::Ingress(Some(route)) => self.metrics.record_nginx(route, status, latency),
            Client::Ingress(None) => {}
            Client::Service(series) => self.metrics.record_service(series, status),
        }
    }
}

/// (share, verdict) of the request attributes named `name`.
fn relevant(
    attrs: &[RequestAttr<'_>],
    name: Option<&str>,
    verdict: impl Fn(&str) -> Verdict,
) -> Vec<(f64, Verdict)> {
    attrs
        .iter()
        .filter(|a| Some(a.name.as_str()) == name)
        .map(|a| (a.share, verdict(a.value)))
        .collect()
}

/// Verdict of the first attribute the request turns out to carry.
fn first_drawn(rng: &mut Rng, attrs: &[(f64, Verdict)]) -> Verdict {
    attrs
        .iter()
        .find(|(share, _)| rng.chance(*share))
        .map_or(Verdict::FallThrough, |(_, v)| *v)
}

#[cfg(test)]
mod tests;
