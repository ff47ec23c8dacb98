//! Reading the user's Ingress (networking.k8s.io/v1, as JSON): which of its rules send traffic to
//! the Rollout's Service. The canary Ingress copies exactly those (ingress-nginx merges a canary
//! into a location only when host, path, pathType and class match), and a canary Rollout whose
//! Ingress has none is invalid.

use serde_json::Value;

/// The ingress class as Ingresses gave it before `spec.ingressClassName`; ingress-nginx still
/// honours it.
pub const LEGACY_CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";

/// A rule of the user's Ingress that routes to the Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngressRuleRef {
    /// The rule's host; `None` matches every host.
    pub host: Option<String>,
    /// The path; `None` if the rule gives none.
    pub path: Option<String>,
    /// `Exact`, `Prefix` or `ImplementationSpecific`, as written.
    pub path_type: Option<String>,
    /// `spec.ingressClassName`, else the legacy `kubernetes.io/ingress.class` annotation.
    pub ingress_class: Option<String>,
}

/// The rules (host + path) of an Ingress whose backend is `service` on `port`. A backend that
/// names its port (`port.name`) cannot be checked against a number here and is included: the
/// controller can compare it with the Service's port names. Empty means the Ingress does not route
/// to the Service, which makes a canary Rollout invalid.
pub fn ingress_rules_for_service(ingress: &Value, service: &str, port: u16) -> Vec<IngressRuleRef> {
    let text = |v: &Value| v.as_str().map(str::to_string);
    let ingress_class = ingress
        .pointer("/spec/ingressClassName")
        .and_then(text)
        .or_else(|| {
            let annotations = ingress.pointer("/metadata/annotations")?;
            annotations.get(LEGACY_CLASS_ANNOTATION).and_then(text)
        });
    let rules = ingress.pointer("/spec/rules").and_then(Value::as_array);
    let mut found = Vec::new();
    for rule in rules.into_iter().flatten() {
        let host = rule.get("host").and_then(text).filter(|h| !h.is_empty());
        let paths = rule.pointer("/http/paths").and_then(Value::as_array);
        for path in paths.into_iter().flatten() {
            let Some(backend) = path.pointer("/backend/service") else {
                continue;
            };
            if backend.get("name").and_then(Value::as_str) != Some(service) {
                continue;
            }
            let port_matches = match backend.get("port") {
                Some(p) => match (p.get("number").and_then(Value::as_u64), p.get("name")) {
                    (Some(number), _) => number == u64::from(port),
                    (None, Some(_)) => true,
                    (None, None) => false,
                },
                None => false,
            };
            if port_matches {
                found.push(IngressRuleRef {
                    host: host.clone(),
                    path: path.get("path").and_then(text),
                    path_type: path.get("pathType").and_then(text),
                    ingress_class: ingress_class.clone(),
                });
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn erp_ingress() -> Value {
        json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": "erp-ingress", "namespace": "erp-system"},
            "spec": {
                "ingressClassName": "nginx",
                "rules": [
                    {"host": "erp.example.com", "http": {"paths": [
                        {"path": "/api/reporting", "pathType": "Prefix",
                         "backend": {"service": {"name": "reporting", "port": {"number": 80}}}},
                        {"path": "/api/orders", "pathType": "Prefix",
                         "backend": {"service": {"name": "orders", "port": {"number": 80}}}},
                    ]}},
                    {"http": {"paths": [
                        {"path": "/reports", "pathType": "Exact",
                         "backend": {"service": {"name": "reporting", "port": {"name": "http"}}}},
                        {"path": "/other-port", "pathType": "Prefix",
                         "backend": {"service": {"name": "reporting", "port": {"number": 8080}}}},
                        {"path": "/bucket", "pathType": "Prefix",
                         "backend": {"resource": {"kind": "Bucket", "name": "reporting"}}},
                    ]}},
                ],
            },
        })
    }

    #[test]
    fn finds_the_rules_for_the_service_and_port() {
        let rules = ingress_rules_for_service(&erp_ingress(), "reporting", 80);
        assert_eq!(
            rules,
            vec![
                IngressRuleRef {
                    host: Some("erp.example.com".into()),
                    path: Some("/api/reporting".into()),
                    path_type: Some("Prefix".into()),
                    ingress_class: Some("nginx".into()),
                },
                IngressRuleRef {
                    host: None,
                    path: Some("/reports".into()),
                    path_type: Some("Exact".into()),
                    ingress_class: Some("nginx".into()),
                },
            ]
        );
        assert_eq!(
            ingress_rules_for_service(&erp_ingress(), "reporting", 8080).len(),
            2
        );
    }

    #[test]
    fn none_for_other_services_or_odd_objects() {
        assert!(ingress_rules_for_service(&erp_ingress(), "billing", 80).is_empty());
        assert!(ingress_rules_for_service(&json!({}), "reporting", 80).is_empty());
        assert!(
            ingress_rules_for_service(&json!({"spec": {"rules": "x"}}), "reporting", 80).is_empty()
        );
        assert!(ingress_rules_for_service(&json!(null), "reporting", 80).is_empty());
    }

    #[test]
    fn legacy_class_annotation() {
        let ingress = json!({
            "metadata": {"annotations": {"kubernetes.io/ingress.class": "nginx-internal"}},
            "spec": {"rules": [{"host": "a", "http": {"paths": [
                {"path": "/", "pathType": "Prefix",
                 "backend": {"service": {"name": "s", "port": {"number": 80}}}}]}}]},
        });
        let rules = ingress_rules_for_service(&ingress, "s", 80);
        assert_eq!(rules[0].ingress_class.as_deref(), Some("nginx-internal"));
    }
}
