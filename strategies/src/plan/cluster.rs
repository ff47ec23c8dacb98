//! What a plan needs of the cluster, judged from what the controller observed: the target
//! Deployment, the user's Ingress routing to the Service, and no other owner holding an object
//! sluice would own for this Rollout.

use serde_json::Value;

use super::{ReleasePlan, StrategyPlan, ingress_rules_for_service};
use crate::promql::{Var, template_variables};

/// An object sluice would own for this Rollout that another controller owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignOwner {
    /// The spec field the object's name derives from, e.g. `spec.service`.
    pub field: &'static str,
    pub kind: &'static str,
    pub name: String,
    pub owner_kind: String,
    pub owner_name: String,
}

/// What the controller observed that the plan relies on.
#[derive(Debug, Clone, Default)]
pub struct ClusterFacts<'a> {
    pub namespace: &'a str,
    pub target_exists: bool,
    /// The target's `spec.selector` has `matchExpressions`.
    pub target_selects_by_expressions: bool,
    /// The user's Ingress (canary only), as JSON; None when it does not exist.
    pub ingress: Option<&'a Value>,
    /// The class of the ingress-nginx this controller writes canary annotations for; None: any.
    pub ingress_class: Option<&'a str>,
    pub foreign_owners: Vec<ForeignOwner>,
}

/// Every problem, each naming its field; empty when the plan can run here.
pub fn cluster_problems(plan: &ReleasePlan, facts: &ClusterFacts<'_>) -> Vec<String> {
    let ns = facts.namespace;
    // Writing a foreign-owned object would take it over: two Rollouts naming one Ingress would
    // take `<ingress>-canary` from each other on every reconcile.
    let mut problems: Vec<String> = facts
        .foreign_owners
        .iter()
        .map(|f| {
            format!(
                "{}: {} {ns}/{}, which sluice would own for this Rollout, belongs to {} {}; one Rollout per Deployment, Service and Ingress",
                f.field, f.kind, f.name, f.owner_kind, f.owner_name
            )
        })
        .collect();
    if !facts.target_exists {
        problems.push(format!(
            "spec.targetRef: Deployment {ns}/{} not found",
            plan.target
        ));
    }
    if facts.target_selects_by_expressions {
        // A Service selects by labels only: dropping the expressions would make `<svc>` select
        // the pods of every Deployment with the remaining labels.
        problems.push(format!(
            "spec.targetRef: Deployment {ns}/{} selects its pods with matchExpressions, which a Service selector cannot express; give it a selector of matchLabels only",
            plan.target
        ));
    }
    if let StrategyPlan::Canary(canary) = &plan.strategy {
        match facts.ingress {
            None => problems.push(format!(
                "spec.strategy.canary.ingressRef: Ingress {ns}/{} not found",
                canary.ingress
            )),
            Some(ingress) => {
                let rules =
                    ingress_rules_for_service(ingress, &plan.service.name, plan.service.port);
                if rules.is_empty() {
                    problems.push(format!(
                        "spec.strategy.canary.ingressRef: Ingress {ns}/{} has no rule for Service {} port {}",
                        canary.ingress, plan.service.name, plan.service.port
                    ));
                }
                // Another controller's Ingress ignores the canary annotations: traffic would never
                // move, and every check would judge a candidate nobody reached.
                let other_class = rules
                    .iter()
                    .filter_map(|r| r.ingress_class.as_deref())
                    .find(|class| facts.ingress_class.is_some_and(|ours| ours != *class));
                if let (Some(theirs), Some(ours)) = (other_class, facts.ingress_class) {
                    problems.push(format!(
                        "spec.strategy.canary.ingressRef: Ingress {ns}/{} has ingress class {theirs}, but this sluice writes canary annotations for the ingress-nginx of class {ours} (--ingress-class): use an Ingress of class {ours}, or run a sluice for class {theirs}",
                        canary.ingress
                    ));
                }
                let unmeasured = rules
                    .iter()
                    .find(|r| r.host.as_deref().is_none_or(|h| h.starts_with('*')));
                if let Some(rule) = unmeasured.filter(|_| reads_ingress_metrics(plan)) {
                    problems.push(format!(
                        "spec.strategy.canary.ingressRef: Ingress {ns}/{} routes {} to Service {} on {}; ingress-nginx counts no requests there under its defaults (--metrics-per-host=true, --metrics-per-undefined-host=false), so every check would be inconclusive: give the rule a host, or judge with app-error-rate and app-latency-p99 (and minRequests 0)",
                        canary.ingress,
                        rule.path.as_deref().unwrap_or("/"),
                        plan.service.name,
                        match rule.host.as_deref() {
                            None => "a rule without a host".to_string(),
                            Some(host) => format!("the wildcard host {host}"),
                        }
                    ));
                }
            }
        }
    }
    problems
}

/// Whether a check reads ingress-nginx's request metrics: the request count gate, or a metric
/// whose query names the Ingress.
fn reads_ingress_metrics(plan: &ReleasePlan) -> bool {
    let names_ingress =
        |query: &str| template_variables(query).is_ok_and(|vars| vars.contains(&Var::Ingress));
    (plan.analysis.min_requests > 0 && names_ingress(&plan.analysis.requests_query))
        || plan
            .analysis
            .metrics
            .iter()
            .any(|m| names_ingress(&m.query))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::plan::resolve;
    use crate::presets::Presets;
    use crate::spec::RolloutSpec;

    fn plan() -> ReleasePlan {
        let spec: RolloutSpec = serde_json::from_value(json!({
            "targetRef": {"name": "reporting"},
            "service": {"name": "reporting-service", "port": 80},
            "strategy": {"canary": {"ingressRef": {"name": "erp-ingress"}}},
        }))
        .unwrap();
        resolve(&spec, &Presets::embedded().unwrap()).unwrap()
    }

    #[test]
    fn each_missing_piece_is_named() {
        let routing = json!({"spec": {"rules": [{"host": "erp.example.com", "http": {"paths": [
            {"path": "/api/reports", "pathType": "Prefix", "backend": {"service": {"name": "reporting-service", "port": {"number": 80}}}}
        ]}}]}});
        let ok = ClusterFacts {
            namespace: "erp-system",
            target_exists: true,
            target_selects_by_expressions: false,
            ingress: Some(&routing),
            ingress_class: None,
            foreign_owners: vec![],
        };
        assert!(cluster_problems(&plan(), &ok).is_empty());

        let elsewhere = json!({"spec": {"rules": []}});
        let foreign = ForeignOwner {
            field: "spec.strategy.canary.ingressRef",
            kind: "Ingress",
            name: "erp-ingress-canary".into(),
            owner_kind: "Rollout".into(),
            owner_name: "gateway".into(),
        };
        let bad = ClusterFacts {
            namespace: "erp-system",
            target_exists: false,
            target_selects_by_expressions: true,
            ingress: Some(&elsewhere),
            ingress_class: None,
            foreign_owners: vec![foreign],
        };
        let problems = cluster_problems(&plan(), &bad);
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(problems[0].contains("belongs to Rollout gateway"));
        assert!(problems[1].contains("Deployment erp-system/reporting not found"));
        assert!(problems[2].contains("selects its pods with matchExpressions"));
        assert!(problems[3].contains("has no rule for Service reporting-service port 80"));
        let missing = ClusterFacts {
            namespace: "erp-system",
            target_exists: true,
            target_selects_by_expressions: false,
            ingress: None,
            ingress_class: None,
            foreign_owners: vec![],
        };
        assert!(
            cluster_problems(&plan(), &missing)[0]
                .contains("Ingress erp-system/erp-ingress not found")
        );
    }

    #[test]
    fn an_ingress_of_another_controllers_class_is_named_with_the_fix() {
        let of_class = |class: Option<&str>| {
            let mut ingress = json!({"spec": {"rules": [{"host": "erp.example.com", "http": {"paths": [
                {"path": "/api/reports", "pathType": "Prefix", "backend": {"service": {"name": "reporting-service", "port": {"number": 80}}}}
            ]}}]}});
            if let Some(class) = class {
                ingress["spec"]["ingressClassName"] = json!(class);
            }
            ingress
        };
        let problems = |ingress: &Value, ours: Option<&str>| {
            let facts = ClusterFacts {
                namespace: "erp-system",
                target_exists: true,
                ingress: Some(ingress),
                ingress_class: ours,
                ..ClusterFacts::default()
            };
            cluster_problems(&plan(), &facts)
        };
        let traefik = of_class(Some("traefik"));
        let refused = problems(&traefik, Some("nginx"));
        assert_eq!(refused.len(), 1, "{refused:?}");
        assert!(refused[0].contains("has ingress class traefik, but this sluice writes canary annotations for the ingress-nginx of class nginx (--ingress-class)"), "{refused:?}");
        assert!(problems(&of_class(Some("nginx")), Some("nginx")).is_empty());
        assert!(
            problems(&of_class(None), Some("nginx")).is_empty(),
            "no class: the default one may serve it"
        );
        assert!(
            problems(&traefik, None).is_empty(),
            "no --ingress-class: any"
        );
        let mut legacy = of_class(None);
        legacy["metadata"] =
            json!({"annotations": {"kubernetes.io/ingress.class": "nginx-internal"}});
        assert_eq!(
            problems(&legacy, Some("nginx")).len(),
            1,
            "the legacy annotation counts"
        );
    }

    #[test]
    fn a_rule_ingress_nginx_does_not_measure_is_named_with_the_fix() {
        let ingress = |host: Value| {
            json!({"spec": {"rules": [{"host": host, "http": {"paths": [
                {"path": "/api/reports", "pathType": "Prefix", "backend": {"service": {"name": "reporting-service", "port": {"number": 80}}}}
            ]}}]}})
        };
        fn facts(ingress: Option<&Value>) -> ClusterFacts<'_> {
            ClusterFacts {
                namespace: "erp-system",
                target_exists: true,
                target_selects_by_expressions: false,
                ingress,
                ingress_class: None,
                foreign_owners: vec![],
            }
        }
        for (host, says) in [
            (Value::Null, "a rule without a host"),
            (json!("*.example.com"), "the wildcard host *.example.com"),
        ] {
            let ingress = ingress(host);
            let problems = cluster_problems(&plan(), &facts(Some(&ingress)));
            assert_eq!(problems.len(), 1, "{problems:?}");
            assert!(problems[0].contains(says), "{}", problems[0]);
            assert!(
                problems[0].contains("give the rule a host"),
                "{}",
                problems[0]
            );
        }
        let named = ingress(json!("erp.example.com"));
        assert!(cluster_problems(&plan(), &facts(Some(&named))).is_empty());

        // Judged on the pods' own metrics, without the request gate: nothing to miss.
        let spec: RolloutSpec = serde_json::from_value(json!({
            "targetRef": {"name": "reporting"},
            "service": {"name": "reporting-service", "port": 80},
            "strategy": {"canary": {"ingressRef": {"name": "erp-ingress"}}},
            "analysis": {"minRequests": 0, "metrics": [{"name": "app-error-rate", "max": 1}]},
        }))
        .unwrap();
        let by_pods = resolve(&spec, &Presets::embedded().unwrap()).unwrap();
        let hostless = ingress(Value::Null);
        assert!(cluster_problems(&by_pods, &facts(Some(&hostless))).is_empty());
    }
}
