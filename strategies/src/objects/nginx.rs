//! The canary Ingress for ingress-nginx: a copy of exactly the user's rules for the Service
//! (ingress-nginx merges a canary into a location only when host, path, pathType and class match),
//! pointed at `<svc>-canary`, with the canary annotations for the route the release machine wants.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use crate::ingress::{IngressRuleRef, LEGACY_CLASS_ANNOTATION, ingress_rules_for_service};
use crate::names::canary_service_name;
use crate::plan::ServicePlan;
use crate::release::CanaryRoute;
use crate::spec::{CookieMatch, HeaderMatch, TrafficMatch};

const PREFIX: &str = "nginx.ingress.kubernetes.io";

/// The annotation holding the canary weight, which the controller reads back.
pub const WEIGHT_ANNOTATION: &str = "nginx.ingress.kubernetes.io/canary-weight";

/// What sluice writes of the canary Ingress besides its name, labels and owner.
#[derive(Debug, Clone, PartialEq)]
pub struct CanaryIngress {
    pub annotations: Map<String, Value>,
    pub spec: Value,
}

/// The canary Ingress for `route`, from the user's Ingress (as JSON).
pub fn canary_ingress(user: &Value, service: &ServicePlan, route: &CanaryRoute) -> CanaryIngress {
    let rules = ingress_rules_for_service(user, &service.name, service.port);
    let mut annotations = route_annotations(route);
    let mut spec = json!({"rules": canary_rules(&rules, &service.name, service.port)});
    // The class as the user gave it: ingress-nginx ignores a canary of no class of its own.
    if let Some(class) = user
        .pointer("/spec/ingressClassName")
        .and_then(Value::as_str)
    {
        spec["ingressClassName"] = json!(class);
    }
    if let Some(class) = user
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(LEGACY_CLASS_ANNOTATION))
        .and_then(Value::as_str)
    {
        annotations.insert(LEGACY_CLASS_ANNOTATION.into(), json!(class));
    }
    let hosts: BTreeSet<&str> = rules.iter().filter_map(|r| r.host.as_deref()).collect();
    let tls = tls_for_hosts(user, &hosts);
    if !tls.is_empty() {
        spec["tls"] = Value::Array(tls);
    }
    CanaryIngress { annotations, spec }
}

/// The ingress-nginx canary annotations for a route: header, then cookie, then weight.
pub fn route_annotations(route: &CanaryRoute) -> Map<String, Value> {
    let mut annotations = Map::new();
    let mut set = |name: &str, value: &str| {
        annotations.insert(format!("{PREFIX}/{name}"), json!(value));
    };
    set("canary", "true");
    set("canary-weight", &route.weight.to_string());
    match &route.traffic_match {
        Some(TrafficMatch {
            header: Some(header),
            ..
        }) => {
            set("canary-by-header", &header.name);
            if let Some(value) = &header.value {
                set("canary-by-header-value", value);
            } else if let Some(pattern) = &header.pattern {
                set("canary-by-header-pattern", pattern);
            }
        }
        Some(TrafficMatch {
            cookie: Some(cookie),
            ..
        }) => set("canary-by-cookie", &cookie.name),
        _ => {}
    }
    annotations
}

/// The route a canary Ingress's annotations carry, as read back: its weight (0 when absent or not
/// a number) and its header or cookie match.
pub fn route_of(annotations: &BTreeMap<String, String>) -> CanaryRoute {
    let get = |name: &str| annotations.get(&format!("{PREFIX}/{name}")).cloned();
    let header = get("canary-by-header").map(|name| HeaderMatch {
        name,
        value: get("canary-by-header-value"),
        pattern: get("canary-by-header-pattern"),
    });
    let cookie = get("canary-by-cookie").map(|name| CookieMatch { name });
    let traffic_match =
        (header.is_some() || cookie.is_some()).then_some(TrafficMatch { header, cookie });
    CanaryRoute {
        weight: get("canary-weight")
            .and_then(|w| w.trim().parse().ok())
            .unwrap_or(0),
        traffic_match,
    }
}

/// The rules, grouped by host as the user's were, each path's backend `<svc>-canary`.
pub fn canary_rules(rules: &[IngressRuleRef], service: &str, port: u16) -> Value {
    let mut by_host: BTreeMap<Option<String>, Vec<Value>> = BTreeMap::new();
    for rule in rules {
        let backend = json!({"name": canary_service_name(service), "port": {"number": port}});
        let mut path = json!({
            "pathType": rule.path_type.clone().unwrap_or_else(|| "ImplementationSpecific".into()),
            "backend": {"service": backend},
        });
        if let Some(p) = &rule.path {
            path["path"] = json!(p);
        }
        by_host.entry(rule.host.clone()).or_default().push(path);
    }
    let rules: Vec<Value> = by_host
        .into_iter()
        .map(|(host, paths)| {
            let mut rule = json!({"http": {"paths": paths}});
            if let Some(host) = host {
                rule["host"] = json!(host);
            }
            rule
        })
        .collect();
    Value::Array(rules)
}

/// The user's TLS entries for the copied hosts, each with only those of its hosts.
fn tls_for_hosts(user: &Value, hosts: &BTreeSet<&str>) -> Vec<Value> {
    let entries = user.pointer("/spec/tls").and_then(Value::as_array);
    entries
        .into_iter()
        .flatten()
        .filter_map(|entry| {
            let kept: Vec<&str> = entry
                .get("hosts")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .filter(|h| hosts.contains(h))
                .collect();
            if kept.is_empty() {
                return None;
            }
            let mut tls = json!({"hosts": kept});
            if let Some(secret) = entry.get("secretName") {
                tls["secretName"] = secret.clone();
            }
            Some(tls)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(name: &str) -> ServicePlan {
        ServicePlan {
            name: name.into(),
            port: 80,
            target_port: None,
        }
    }

    /// The seed's `erp-ingress`: the gateway on `/`, reporting on `/api/reports`, TLS for two
    /// hosts.
    fn erp_ingress(class: Value) -> Value {
        let mut ingress = json!({
            "metadata": {"name": "erp-ingress", "annotations": {"nginx.ingress.kubernetes.io/proxy-body-size": "50m"}},
            "spec": {
                "tls": [{"hosts": ["erp.example.com", "admin.example.com"], "secretName": "erp-tls"},
                        {"hosts": ["other.example.com"], "secretName": "other-tls"}],
                "rules": [{"host": "erp.example.com", "http": {"paths": [
                    {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "gateway-service", "port": {"number": 80}}}},
                    {"path": "/api/reports", "pathType": "Prefix", "backend": {"service": {"name": "reporting-service", "port": {"number": 80}}}},
                ]}}],
            },
        });
        if let Some(class) = class.pointer("/spec/ingressClassName") {
            ingress["spec"]["ingressClassName"] = class.clone();
        }
        if let Some(legacy) = class
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(LEGACY_CLASS_ANNOTATION))
        {
            ingress["metadata"]["annotations"][LEGACY_CLASS_ANNOTATION] = legacy.clone();
        }
        ingress
    }

    fn weight(weight: u8) -> CanaryRoute {
        CanaryRoute {
            weight,
            traffic_match: None,
        }
    }

    #[test]
    fn copies_only_the_services_rules_with_the_class_and_the_tls_of_their_hosts() {
        let user = erp_ingress(json!({"spec": {"ingressClassName": "nginx"}}));
        let canary = canary_ingress(&user, &service("reporting-service"), &weight(20));
        assert_eq!(
            canary.spec,
            json!({
                "ingressClassName": "nginx",
                "tls": [{"hosts": ["erp.example.com"], "secretName": "erp-tls"}],
                "rules": [{"host": "erp.example.com", "http": {"paths": [
                    {"path": "/api/reports", "pathType": "Prefix",
                     "backend": {"service": {"name": "reporting-service-canary", "port": {"number": 80}}}},
                ]}}],
            })
        );
        assert_eq!(
            Value::Object(canary.annotations),
            json!({"nginx.ingress.kubernetes.io/canary": "true",
                   "nginx.ingress.kubernetes.io/canary-weight": "20"}),
            "no other annotation of the user's: ingress-nginx ignores them on a canary"
        );
    }

    #[test]
    fn the_legacy_class_annotation_is_carried_over() {
        let user =
            erp_ingress(json!({"metadata": {"annotations": {LEGACY_CLASS_ANNOTATION: "nginx"}}}));
        let canary = canary_ingress(&user, &service("gateway-service"), &weight(5));
        assert_eq!(canary.annotations[LEGACY_CLASS_ANNOTATION], "nginx");
        assert!(canary.spec.get("ingressClassName").is_none());
        assert_eq!(
            canary.spec.pointer("/rules/0/http/paths/0/path"),
            Some(&json!("/"))
        );
    }

    #[test]
    fn header_and_cookie_matches() {
        let header = CanaryRoute {
            weight: 0,
            traffic_match: Some(TrafficMatch {
                header: Some(HeaderMatch {
                    name: "x-canary".into(),
                    value: None,
                    pattern: Some("^insider.*".into()),
                }),
                cookie: None,
            }),
        };
        let annotations = route_annotations(&header);
        assert_eq!(
            annotations[&format!("{PREFIX}/canary-by-header")],
            "x-canary"
        );
        assert_eq!(
            annotations[&format!("{PREFIX}/canary-by-header-pattern")],
            "^insider.*"
        );
        assert_eq!(annotations[WEIGHT_ANNOTATION], "0");
        let cookie = CanaryRoute {
            weight: 0,
            traffic_match: Some(TrafficMatch {
                header: None,
                cookie: Some(CookieMatch {
                    name: "beta".into(),
                }),
            }),
        };
        assert_eq!(
            route_annotations(&cookie)[&format!("{PREFIX}/canary-by-cookie")],
            "beta"
        );
    }

    #[test]
    fn a_route_reads_back_as_it_was_written() {
        let header = CanaryRoute {
            weight: 0,
            traffic_match: Some(TrafficMatch {
                header: Some(HeaderMatch {
                    name: "x-canary".into(),
                    value: Some("insider".into()),
                    pattern: None,
                }),
                cookie: None,
            }),
        };
        for route in [header, weight(35)] {
            let written: BTreeMap<String, String> = route_annotations(&route)
                .into_iter()
                .map(|(k, v)| (k, v.as_str().unwrap_or_default().to_string()))
                .collect();
            assert_eq!(route_of(&written), route);
        }
        assert_eq!(route_of(&BTreeMap::new()), weight(0));
    }
}
