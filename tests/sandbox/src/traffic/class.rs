//! Which Ingresses the simulated ingress-nginx serves: those of its class, decided as
//! ingress-nginx v1.15.1 does (`store.GetIngressClass`) with its default flags
//! (`--controller-class=k8s.io/ingress-nginx`, `--ingress-class=nginx`).
//!
//! 1. `spec.ingressClassName` set: it must name an IngressClass whose `spec.controller` is ours;
//!    the legacy annotation is then not looked at, whatever it says.
//! 2. Else the `kubernetes.io/ingress.class` annotation, if present, must be exactly `nginx`.
//! 3. Else (no class at all) only with `--watch-ingress-without-class`, or when the cluster's
//!    default IngressClass is ours. The real API server's admission writes the default class into
//!    `spec.ingressClassName` when such an Ingress is created; the sandbox has no admission, so
//!    it applies the same choice (the newest class marked default, then by name) when routing.

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::Value;

use super::k8s::{annotation, metadata, parse_timestamp};

/// `--controller-class` default: the `spec.controller` of IngressClasses ingress-nginx serves.
pub const CONTROLLER: &str = "k8s.io/ingress-nginx";
/// `--ingress-class` default: the only value of the legacy annotation ingress-nginx accepts,
/// and the name of the IngressClass the sandbox creates at start.
pub const DEFAULT_CLASS: &str = "nginx";
pub const LEGACY_ANNOTATION: &str = "kubernetes.io/ingress.class";
pub const IS_DEFAULT_CLASS: &str = "ingressclass.kubernetes.io/is-default-class";

/// The IngressClasses of one instant, reduced to what class filtering needs.
#[derive(Debug, Default)]
pub struct Classes {
    /// Names of IngressClasses whose controller is ingress-nginx.
    ours: HashSet<String>,
    /// The class admission would give a class-less Ingress is one of ours.
    default_is_ours: bool,
    watch_without_class: bool,
}

impl Classes {
    pub fn new(classes: &[Arc<Value>], watch_without_class: bool) -> Self {
        fn controller(class: &Value) -> Option<&str> {
            class.pointer("/spec/controller").and_then(Value::as_str)
        }
        let ours: HashSet<String> = classes
            .iter()
            .filter(|c| controller(c) == Some(CONTROLLER))
            .filter_map(|c| metadata(c, "name").map(str::to_owned))
            .collect();
        // Admission picks the newest class annotated exactly "true", ties by name.
        let default = classes
            .iter()
            .filter(|c| annotation(c, IS_DEFAULT_CLASS) == Some("true"))
            .max_by(|a, b| {
                let created = |c: &Value| {
                    metadata(c, "creationTimestamp")
                        .and_then(parse_timestamp)
                        .unwrap_or((i64::MIN, 0))
                };
                let name = |c| metadata(c, "name").unwrap_or("");
                (created(a), std::cmp::Reverse(name(a)))
                    .cmp(&(created(b), std::cmp::Reverse(name(b))))
            });
        Classes {
            default_is_ours: default.is_some_and(|c| controller(c) == Some(CONTROLLER)),
            ours,
            watch_without_class,
        }
    }

    /// Whether ingress-nginx would serve `ingress` (canary or not).
    pub fn admits(&self, ingress: &Value) -> bool {
        if let Some(name) = ingress.pointer("/spec/ingressClassName") {
            return name.as_str().is_some_and(|n| self.ours.contains(n));
        }
        if let Some(value) = ingress
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(LEGACY_ANNOTATION))
        {
            return value.as_str() == Some(DEFAULT_CLASS);
        }
        self.watch_without_class || self.default_is_ours
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn class(name: &str, controller: &str, default: Option<&str>, created: &str) -> Arc<Value> {
        let mut c = json!({"metadata": {"name": name, "creationTimestamp": created},
                           "spec": {"controller": controller}});
        if let Some(d) = default {
            c["metadata"]["annotations"] = json!({IS_DEFAULT_CLASS: d});
        }
        Arc::new(c)
    }

    fn ingress(class_name: Option<&str>, legacy: Option<&str>) -> Value {
        let mut i = json!({"metadata": {"name": "shop"}, "spec": {}});
        if let Some(c) = class_name {
            i["spec"]["ingressClassName"] = json!(c);
        }
        if let Some(l) = legacy {
            i["metadata"]["annotations"] = json!({LEGACY_ANNOTATION: l});
        }
        i
    }

    const T1: &str = "2024-01-01T00:00:00Z";
    const T2: &str = "2024-02-01T00:00:00Z";

    #[test]
    fn class_name_must_name_a_class_of_ours_and_beats_the_annotation() {
        let classes = Classes::new(
            &[
                class("nginx", CONTROLLER, None, T1),
                class("nginx-internal", CONTROLLER, None, T1),
                class("traefik", "traefik.io/ingress-controller", None, T1),
            ],
            false,
        );
        assert!(classes.admits(&ingress(Some("nginx"), None)));
        assert!(classes.admits(&ingress(Some("nginx-internal"), None)));
        assert!(!classes.admits(&ingress(Some("traefik"), None)));
        assert!(!classes.admits(&ingress(Some("missing"), None)));
        // ingressClassName is decisive: the annotation is not a second chance, nor a veto.
        assert!(!classes.admits(&ingress(Some("traefik"), Some("nginx"))));
        assert!(classes.admits(&ingress(Some("nginx"), Some("traefik"))));
    }

    #[test]
    fn the_legacy_annotation_must_say_nginx_exactly() {
        let classes = Classes::new(&[class("nginx", CONTROLLER, None, T1)], true);
        assert!(classes.admits(&ingress(None, Some("nginx"))));
        // Present but different (even empty) is a refusal, watch-without-class or not.
        for other in ["nginx-internal", "", "NGINX"] {
            assert!(!classes.admits(&ingress(None, Some(other))), "{other:?}");
        }
    }

    #[test]
    fn class_less_ingresses_need_the_flag_or_a_default_class_of_ours() {
        let plain = ingress(None, None);
        let ours = class("nginx", CONTROLLER, None, T1);
        assert!(!Classes::new(std::slice::from_ref(&ours), false).admits(&plain));
        assert!(Classes::new(std::slice::from_ref(&ours), true).admits(&plain));
        let default_ours = class("nginx", CONTROLLER, Some("true"), T1);
        assert!(Classes::new(std::slice::from_ref(&default_ours), false).admits(&plain));
        // Only the exact value "true" marks a default.
        let almost = class("nginx", CONTROLLER, Some("True"), T1);
        assert!(!Classes::new(&[almost], false).admits(&plain));
        // With two defaults the newest wins: a newer foreign default takes the Ingress away.
        let foreign = class("traefik", "traefik.io/ingress-controller", Some("true"), T2);
        assert!(!Classes::new(&[default_ours.clone(), foreign], false).admits(&plain));
        let older_foreign = class("traefik", "traefik.io/ingress-controller", Some("true"), T1);
        let newer_ours = class("nginx", CONTROLLER, Some("true"), T2);
        assert!(Classes::new(&[older_foreign, newer_ours], false).admits(&plain));
        // Same instant: the first name wins.
        let a_ours = class("a-nginx", CONTROLLER, Some("true"), T1);
        let z_foreign = class(
            "z-traefik",
            "traefik.io/ingress-controller",
            Some("true"),
            T1,
        );
        assert!(Classes::new(&[z_foreign, a_ours], false).admits(&plain));
    }
}
