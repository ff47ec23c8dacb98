//! Pure ingress-nginx routing: which Ingress paths exist, which canary
//! Ingress applies to them, and how one request picks main or canary.
//! Randomness is injected so tests can pin it.
//!
//! The rules mirror ingress-nginx's controller (canary merging) and its Lua
//! balancer (`route_to_alternative_balancer`), not the documentation, where
//! the two disagree.

use std::collections::HashMap;

use regex::Regex;
use serde_json::Value;

use super::k8s::{annotation, metadata, namespace, parse_bool, parse_timestamp};
use super::validate::{self, Invalid};

pub const NGINX_PREFIX: &str = "nginx.ingress.kubernetes.io/";
pub const CANARY: &str = "nginx.ingress.kubernetes.io/canary";

pub fn is_canary(ingress: &Value) -> bool {
    annotation(ingress, CANARY).and_then(parse_bool) == Some(true)
}

/// A `canary` value that is not a Go bool: ingress-nginx warns and takes it as `false`, which
/// makes the Ingress a main one.
pub fn invalid_canary_flag(ingress: &Value) -> Option<Invalid> {
    let value = annotation(ingress, CANARY).filter(|v| !v.is_empty())?;
    parse_bool(value).is_none().then(|| Invalid {
        annotation: "canary".into(),
        value: value.to_owned(),
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PortRef<'a> {
    Number(i64),
    Name(&'a str),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backend<'a> {
    pub service: &'a str,
    pub port: PortRef<'a>,
}

impl<'a> Backend<'a> {
    /// `backend.service` of an Ingress path; `None` for resource backends or
    /// a service without a usable port.
    fn parse(backend: &'a Value) -> Option<Self> {
        let service = backend.get("service")?;
        let name = service.get("name")?.as_str()?;
        let port = service.get("port")?;
        // Same precedence as ingress-nginx's upstreamName: number if > 0.
        let port = match port.get("number").and_then(Value::as_i64) {
            Some(n) if n > 0 => PortRef::Number(n),
            _ => PortRef::Name(port.get("name")?.as_str()?),
        };
        Some(Self {
            service: name,
            port,
        })
    }
}

#[derive(Debug, Clone)]
pub struct IngressPath<'a> {
    pub rule: usize,
    pub index: usize,
    pub host: &'a str,
    pub path: &'a str,
    pub path_type: &'a str,
    pub backend: Option<Backend<'a>>,
}

/// The parts of an Ingress object that routing needs, borrowed from the JSON.
#[derive(Debug, Clone)]
pub struct Ingress<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    /// Creation time as (unix seconds, nanos); unparseable sorts first, like
    /// Go's zero time.
    pub created: (i64, u32),
    pub paths: Vec<IngressPath<'a>>,
    pub object: &'a Value,
}

impl<'a> Ingress<'a> {
    pub fn parse(object: &'a Value) -> Self {
        let spec = object.get("spec");
        let mut paths = Vec::new();
        let rules = spec.and_then(|s| s.get("rules")).and_then(Value::as_array);
        for (r, rule) in rules.into_iter().flatten().enumerate() {
            let host = rule.get("host").and_then(Value::as_str).unwrap_or("");
            let http_paths = rule.pointer("/http/paths").and_then(Value::as_array);
            for (i, p) in http_paths.into_iter().flatten().enumerate() {
                paths.push(IngressPath {
                    rule: r,
                    index: i,
                    host,
                    // ingress-nginx serves an empty path as its root location.
                    path: p.get("path").and_then(Value::as_str).unwrap_or("/"),
                    path_type: p
                        .get("pathType")
                        .and_then(Value::as_str)
                        .unwrap_or("ImplementationSpecific"),
                    backend: p.get("backend").and_then(Backend::parse),
                });
            }
        }
        Ingress {
            namespace: namespace(object),
            name: metadata(object, "name").unwrap_or(""),
            created: metadata(object, "creationTimestamp")
                .and_then(parse_timestamp)
                .unwrap_or((i64::MIN, 0)),
            paths,
            object,
        }
    }
}

/// The canary Ingress (and its path) that ingress-nginx would merge into
/// `path` of `source`: same namespace, host, path and pathType, and a
/// different upstream (ingress-nginx refuses to merge a backend into itself).
/// Both must be of ingress-nginx's classes (see [`super::class`]), not of the
/// same one: every class it serves ends up in one configuration.
/// Among several, the oldest wins because ingress-nginx merges ingresses
/// sorted by creation time and the balancer uses only the first alternative.
pub fn find_canary<'c, 'a>(
    source: &Ingress<'_>,
    path: &IngressPath<'_>,
    canaries: &'c [Ingress<'a>],
) -> Option<(&'c Ingress<'a>, Backend<'a>)> {
    canaries
        .iter()
        .filter(|c| c.namespace == source.namespace)
        .filter_map(|c| {
            let m = c.paths.iter().find(|cp| {
                cp.host == path.host
                    && cp.path == path.path
                    && cp.path_type == path.path_type
                    && cp.backend.is_some()
                    && cp.backend != path.backend
            })?;
            Some((c, m.backend?))
        })
        .min_by(|(a, _), (b, _)| (a.created, a.name).cmp(&(b.created, b.name)))
}

/// Outcome of one step of the canary decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Canary,
    Main,
    FallThrough,
}

/// nginx exposes headers as `$http_<name>` with `-` turned into `_` and
/// matches them case-insensitively, so `X-Canary` and `x_canary` are one.
pub fn normalize_header(name: &str) -> String {
    name.to_ascii_lowercase().replace('_', "-")
}

/// nginx looks cookies up case-insensitively.
pub fn normalize_cookie(name: &str) -> String {
    name.to_ascii_lowercase()
}

/// Compiled `canary-by-header-pattern`s, kept across calls so a regex is
/// compiled once, not once per simulation step.
#[derive(Debug, Default)]
pub struct RegexCache(HashMap<String, Option<Regex>>);

impl RegexCache {
    fn get(&mut self, pattern: &str) -> Option<Regex> {
        if let Some(r) = self.0.get(pattern) {
            return r.clone();
        }
        let compiled = Regex::new(pattern).ok();
        self.0.insert(pattern.to_owned(), compiled.clone());
        compiled
    }
}

/// `canary-by-header-pattern` as the balancer sees it.
#[derive(Debug, Clone)]
pub enum HeaderPattern {
    Compiled(Regex),
    /// Passed the annotation check but does not compile: every match attempt errs, and the
    /// balancer then sends the request to the main backend.
    Broken,
}

/// The traffic-shaping annotations of one canary Ingress, after ingress-nginx's value checks.
#[derive(Debug, Clone)]
pub struct CanaryPolicy {
    pub header: Option<String>,
    pub header_value: Option<String>,
    pub header_pattern: Option<HeaderPattern>,
    pub cookie: Option<String>,
    pub weight: i64,
    pub weight_total: i64,
}

impl CanaryPolicy {
    /// The policy and the annotations refused by their validator, which count as unset.
    pub fn parse(canary: &Value, regexes: &mut RegexCache) -> (Self, Vec<Invalid>) {
        let mut invalid = Vec::new();
        // Empty values are not validated and read as unset, as in the parser.
        let mut checked = |key: &str, valid: fn(&str) -> bool| {
            let full = format!("{NGINX_PREFIX}{key}");
            let value = annotation(canary, &full).filter(|v| !v.is_empty())?;
            if valid(value) {
                return Some(value);
            }
            invalid.push(Invalid {
                annotation: key.to_owned(),
                value: value.to_owned(),
            });
            None
        };
        let text = |v: Option<&str>| v.map(validate::normalize).filter(|v| !v.is_empty());
        let header = text(checked("canary-by-header", validate::basic_chars));
        let header_value = text(checked("canary-by-header-value", validate::basic_chars));
        let pattern = text(checked("canary-by-header-pattern", validate::regex_chars));
        let cookie = text(checked("canary-by-cookie", validate::basic_chars));
        let is_int = |v: &str| validate::atoi(v).is_some();
        let weight = checked("canary-weight", is_int).and_then(validate::atoi);
        let total = checked("canary-weight-total", is_int).and_then(validate::atoi);
        let policy = Self {
            header: header.as_deref().map(normalize_header),
            header_value,
            header_pattern: pattern.map(|p| match regexes.get(&p) {
                Some(regex) => HeaderPattern::Compiled(regex),
                None => HeaderPattern::Broken,
            }),
            cookie: cookie.as_deref().map(normalize_cookie),
            weight: weight.unwrap_or(0),
            // The balancer only honours a total above 100, else uses 100.
            weight_total: total.unwrap_or(100).max(100),
        };
        (policy, invalid)
    }

    /// Verdict for a request carrying the canary header with `value`.
    pub fn header_verdict(&self, value: &str) -> Verdict {
        if let Some(expected) = &self.header_value {
            if value == expected {
                return Verdict::Canary;
            }
        } else if let Some(pattern) = &self.header_pattern {
            return match pattern {
                HeaderPattern::Compiled(regex) if regex.is_match(value) => Verdict::Canary,
                HeaderPattern::Compiled(_) => Verdict::FallThrough,
                HeaderPattern::Broken => Verdict::Main,
            };
        } else if value == "always" {
            return Verdict::Canary;
        } else if value == "never" {
            return Verdict::Main;
        }
        Verdict::FallThrough
    }

    pub fn cookie_verdict(&self, value: &str) -> Verdict {
        match value {
            "always" => Verdict::Canary,
            "never" => Verdict::Main,
            _ => Verdict::FallThrough,
        }
    }

    /// `roll` is uniform in `1..=weight_total`, as Lua's `math.random(n)`.
    pub fn weight_hits(&self, roll: i64) -> bool {
        roll <= self.weight
    }
}

/// Header, then cookie, then weight: the first verdict that is not
/// `FallThrough` decides; `weight_hit` is only consulted when none did.
pub fn decide(header: Verdict, cookie: Verdict, weight_hit: impl FnOnce() -> bool) -> bool {
    match (header, cookie) {
        (Verdict::Canary, _) => true,
        (Verdict::Main, _) => false,
        (_, Verdict::Canary) => true,
        (_, Verdict::Main) => false,
        _ => weight_hit(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ingress(name: &str, created: &str, annotations: Value, paths: Value) -> Value {
        json!({
            "metadata": {"name": name, "namespace": "prod", "creationTimestamp": created,
                         "annotations": annotations},
            "spec": {"ingressClassName": "nginx",
                     "rules": [{"host": "shop.example", "http": {"paths": paths}}]}
        })
    }

    fn path(p: &str, ty: &str, svc: &str) -> Value {
        json!({"path": p, "pathType": ty, "backend": {"service": {"name": svc, "port": {"number": 80}}}})
    }

    /// An Ingress (a canary one if `canary`) with a single path.
    fn one_path(name: &str, created: &str, canary: bool, p: &str, ty: &str, svc: &str) -> Value {
        let annotations = if canary {
            json!({CANARY: "true"})
        } else {
            json!({})
        };
        ingress(name, created, annotations, json!([path(p, ty, svc)]))
    }

    /// (canary name, canary service) that `main`'s first path would use.
    fn found(main: &Value, canaries: &[Value]) -> Option<(String, String)> {
        let main = Ingress::parse(main);
        let canaries: Vec<Ingress> = canaries.iter().map(Ingress::parse).collect();
        find_canary(&main, &main.paths[0], &canaries)
            .map(|(c, b)| (c.name.to_owned(), b.service.to_owned()))
    }

    const T: &str = "2024-01-01T00:00:00Z";

    fn policy(annotations: Value) -> CanaryPolicy {
        let (policy, invalid) = parse(annotations);
        assert_eq!(invalid, [], "every annotation is valid");
        policy
    }

    fn parse(annotations: Value) -> (CanaryPolicy, Vec<Invalid>) {
        let canary = ingress("c", "", annotations, json!([]));
        CanaryPolicy::parse(&canary, &mut RegexCache::default())
    }

    fn refused(annotations: Value) -> (CanaryPolicy, Vec<String>) {
        let (policy, invalid) = parse(annotations);
        (policy, invalid.into_iter().map(|i| i.annotation).collect())
    }

    fn a(key: &str) -> String {
        format!("{NGINX_PREFIX}{key}")
    }

    #[test]
    fn canary_needs_identical_host_path_and_path_type() {
        let main = one_path("main", T, false, "/", "Prefix", "shop");
        let mut other_host = one_path("c0", T, true, "/", "Prefix", "v2");
        other_host["spec"]["rules"][0]["host"] = json!("other.example");
        let misses = [
            other_host,
            one_path("c1", T, true, "/api", "Prefix", "v2"),
            one_path("c2", T, true, "/", "Exact", "v2"),
            one_path("c3", T, true, "/", "ImplementationSpecific", "v2"),
        ];
        assert_eq!(found(&main, &misses), None);
        let mut hit = one_path("c4", T, true, "/", "Prefix", "v2");
        let expected = Some(("c4".to_owned(), "v2".to_owned()));
        assert_eq!(found(&main, std::slice::from_ref(&hit)), expected);
        // Another class of the same controller still merges: one nginx serves them all.
        hit["spec"]["ingressClassName"] = json!("nginx-internal");
        assert_eq!(found(&main, &[hit]), expected);
    }

    #[test]
    fn missing_path_type_means_implementation_specific() {
        let backend = json!({"service": {"name": "shop", "port": {"number": 80}}});
        let main = ingress(
            "main",
            T,
            json!({}),
            json!([{"path": "/", "backend": backend}]),
        );
        assert_eq!(
            Ingress::parse(&main).paths[0].path_type,
            "ImplementationSpecific"
        );
        let canary = one_path("c", T, true, "/", "ImplementationSpecific", "v2");
        assert!(found(&main, &[canary]).is_some());
    }

    #[test]
    fn oldest_canary_wins_then_name_and_self_merge_is_refused() {
        let main = one_path("main", T, false, "/", "Prefix", "shop");
        let canaries = [
            one_path("a-newer", "2024-03-01T00:00:00Z", true, "/", "Prefix", "v3"),
            one_path(
                "z-older",
                "2024-02-01T00:00:00.5Z",
                true,
                "/",
                "Prefix",
                "v2",
            ),
            one_path(
                "y-tie",
                "2024-02-01T00:00:00.5Z",
                true,
                "/",
                "Prefix",
                "v2b",
            ),
            one_path(
                "a-self",
                "2023-01-01T00:00:00Z",
                true,
                "/",
                "Prefix",
                "shop",
            ),
        ];
        let expected = Some(("y-tie".to_owned(), "v2b".to_owned()));
        assert_eq!(found(&main, &canaries), expected);
    }

    #[test]
    fn header_value_then_pattern_then_always_never() {
        let by_value = policy(
            json!({a("canary-by-header"): "X-Canary", a("canary-by-header-value"): "insider"}),
        );
        assert_eq!(by_value.header.as_deref(), Some("x-canary"));
        assert_eq!(by_value.header_verdict("insider"), Verdict::Canary);
        // With a value configured, "always" and "never" mean nothing.
        assert_eq!(by_value.header_verdict("always"), Verdict::FallThrough);
        assert_eq!(by_value.header_verdict("never"), Verdict::FallThrough);

        let by_pattern = policy(
            json!({a("canary-by-header"): "x", a("canary-by-header-pattern"): "^beta-\\d+$"}),
        );
        assert_eq!(by_pattern.header_verdict("beta-12"), Verdict::Canary);
        assert_eq!(by_pattern.header_verdict("never"), Verdict::FallThrough);

        // Allowed characters that do not compile: the balancer's match errs and it picks
        // the main backend for every request carrying the header, "always" included.
        let broken =
            policy(json!({a("canary-by-header"): "x", a("canary-by-header-pattern"): "(["}));
        assert!(matches!(broken.header_pattern, Some(HeaderPattern::Broken)));
        for value in ["always", "never", "maybe"] {
            assert_eq!(broken.header_verdict(value), Verdict::Main, "{value}");
        }
        // Characters the validator refuses: unset, so always/never apply again.
        let (refused_pattern, bad) =
            refused(json!({a("canary-by-header"): "x", a("canary-by-header-pattern"): "a b"}));
        assert_eq!(bad, ["canary-by-header-pattern"]);
        assert!(refused_pattern.header_pattern.is_none());
        assert_eq!(refused_pattern.header_verdict("always"), Verdict::Canary);
        assert_eq!(
            refused_pattern.header_verdict("maybe"),
            Verdict::FallThrough
        );
    }

    #[test]
    fn refused_values_count_as_unset() {
        let (p, bad) = refused(json!({
            a("canary-by-header"): "x-canary;drop",
            a("canary-by-header-value"): "v=1",
            a("canary-by-cookie"): "session,id",
            a("canary-weight"): " 30",
            a("canary-weight-total"): "1e3",
        }));
        assert_eq!(
            bad,
            [
                "canary-by-header",
                "canary-by-header-value",
                "canary-by-cookie",
                "canary-weight",
                "canary-weight-total"
            ]
        );
        assert_eq!((p.header, p.header_value, p.cookie), (None, None, None));
        assert_eq!((p.weight, p.weight_total), (0, 100));
        // Spaces are removed for the check and trimmed from the value; empty is just unset.
        let (p, bad) =
            refused(json!({a("canary-by-header"): " X-Canary ", a("canary-by-cookie"): ""}));
        assert_eq!(bad, Vec::<String>::new());
        assert_eq!((p.header.as_deref(), p.cookie), (Some("x-canary"), None));
        assert_eq!(policy(json!({a("canary-weight"): "+7"})).weight, 7);
    }

    /// The engine's composition, with the request's header and cookie
    /// values given directly and `roll(n)` standing for `math.random(n)`.
    fn routes(p: &CanaryPolicy, h: Option<&str>, c: Option<&str>, roll: fn(i64) -> i64) -> bool {
        let h = h.map_or(Verdict::FallThrough, |v| p.header_verdict(v));
        let c = c.map_or(Verdict::FallThrough, |v| p.cookie_verdict(v));
        decide(h, c, || p.weight_hits(roll(p.weight_total)))
    }

    #[test]
    fn decision_order_is_header_cookie_weight() {
        let ann = json!({a("canary-by-header"): "x", a("canary-by-cookie"): "c", a("canary-weight"): "100"});
        let p = policy(ann);
        let no_roll: fn(i64) -> i64 = |_| panic!("weight must not be consulted");
        assert!(!routes(&p, Some("never"), Some("always"), no_roll));
        assert!(routes(&p, Some("always"), Some("never"), no_roll));
        assert!(!routes(&p, Some("other"), Some("never"), no_roll));
        assert!(routes(&p, None, Some("always"), no_roll));
        assert!(routes(&p, None, Some("other"), |n| n));
        let zero = policy(json!({a("canary-by-cookie"): "c"}));
        assert!(!routes(&zero, None, None, |_| 1));
    }

    #[test]
    fn weight_total_defaults_to_100_and_only_grows() {
        let p = policy(json!({a("canary-weight"): "50", a("canary-weight-total"): "1000"}));
        assert_eq!((p.weight, p.weight_total), (50, 1000));
        assert!(p.weight_hits(50) && !p.weight_hits(51));
        assert_eq!(policy(json!({a("canary-weight"): "20"})).weight_total, 100);
        assert_eq!(
            policy(json!({a("canary-weight-total"): "10"})).weight_total,
            100
        );
        assert_eq!(refused(json!({a("canary-weight"): "lots"})).0.weight, 0);
    }
}
