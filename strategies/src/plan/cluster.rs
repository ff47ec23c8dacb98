//! What a plan needs of the cluster, judged from what the controller observed: the target
//! Deployment, the user's Ingress routing to the Service, and no other owner holding an object
//! sluice would own for this Rollout.

use serde_json::Value;

use super::{ReleasePlan, StrategyPlan, ingress_rules_for_service};

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
    /// The user's Ingress (canary only), as JSON; None when it does not exist.
    pub ingress: Option<&'a Value>,
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
    if let StrategyPlan::Canary(canary) = &plan.strategy {
        match facts.ingress {
            None => problems.push(format!(
                "spec.strategy.canary.ingressRef: Ingress {ns}/{} not found",
                canary.ingress
            )),
            Some(ingress) => {
                if ingress_rules_for_service(ingress, &plan.service.name, plan.service.port)
                    .is_empty()
                {
                    problems.push(format!(
                        "spec.strategy.canary.ingressRef: Ingress {ns}/{} has no rule for Service {} port {}",
                        canary.ingress, plan.service.name, plan.service.port
                    ));
                }
            }
        }
    }
    problems
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
            ingress: Some(&routing),
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
            ingress: Some(&elsewhere),
            foreign_owners: vec![foreign],
        };
        let problems = cluster_problems(&plan(), &bad);
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].contains("belongs to Rollout gateway"));
        assert!(problems[1].contains("Deployment erp-system/reporting not found"));
        assert!(problems[2].contains("has no rule for Service reporting-service port 80"));
        let missing = ClusterFacts {
            namespace: "erp-system",
            target_exists: true,
            ingress: None,
            foreign_owners: vec![],
        };
        assert!(
            cluster_problems(&plan(), &missing)[0]
                .contains("Ingress erp-system/erp-ingress not found")
        );
    }
}
