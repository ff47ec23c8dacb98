//! The bodies of the objects sluice writes for a Rollout, from what the user wrote: labels, the
//! canary Service's ports, and (in [`nginx`]) the canary Ingress. Pure, so that what a real API
//! server would refuse or ingress-nginx would ignore is caught by unit tests, not by a cluster.

pub mod applied;
pub mod nginx;

use serde_json::{Map, Value, json};

use crate::names::label_value;
use crate::plan::ServicePlan;
use crate::spec::IntOrString;

/// Label on everything sluice owns (contract).
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// Label naming the Rollout an object belongs to (shortened with a hash past 63 characters).
pub const ROLLOUT_LABEL: &str = "sluice.dev/rollout";

/// The labels of every object sluice owns for the Rollout `rollout`.
pub fn managed_labels(rollout: &str) -> Value {
    json!({MANAGED_BY: "sluice", ROLLOUT_LABEL: label_value(rollout)})
}

/// Fields of a Service port that only mean something for the Service's own type (NodePort,
/// LoadBalancer): a ClusterIP Service that carries them is refused (`nodePort: Forbidden`).
const NODE_ONLY: [&str; 1] = ["nodePort"];

/// The ports of a ClusterIP Service that reaches the same pods as the user's Service: its ports
/// as given, without what only its type allows; or, when it does not exist, the plan's port.
pub fn cluster_ip_ports(user_service: Option<&Value>, service: &ServicePlan) -> Value {
    if let Some(ports) = user_service
        .and_then(|s| s.pointer("/spec/ports"))
        .and_then(Value::as_array)
    {
        let ports: Vec<Value> = ports
            .iter()
            .map(|port| match port {
                Value::Object(fields) => Value::Object(
                    fields
                        .iter()
                        .filter(|(key, _)| !NODE_ONLY.contains(&key.as_str()))
                        .map(|(key, value)| (key.clone(), value.clone()))
                        .collect::<Map<String, Value>>(),
                ),
                other => other.clone(),
            })
            .collect();
        return Value::Array(ports);
    }
    let target_port = match &service.target_port {
        Some(IntOrString::Int(n)) => json!(n),
        Some(IntOrString::String(name)) => json!(name),
        None => json!(service.port),
    };
    json!([{"name": "http", "port": service.port, "targetPort": target_port, "protocol": "TCP"}])
}

/// The canary Service's spec: a ClusterIP Service (whatever the user's Service's type, its node
/// ports, cluster IPs, load balancer and traffic policy stay its own) selecting the candidate.
pub fn canary_service_spec(
    user_service: Option<&Value>,
    service: &ServicePlan,
    selector: &std::collections::BTreeMap<String, String>,
) -> Value {
    json!({
        "type": "ClusterIP",
        "selector": selector,
        "ports": cluster_ip_ports(user_service, service),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn plan() -> ServicePlan {
        ServicePlan {
            name: "gateway-service".into(),
            port: 80,
            target_port: Some(IntOrString::Int(8080)),
        }
    }

    #[test]
    fn a_load_balancer_service_gives_a_cluster_ip_canary_without_its_node_ports() {
        // The ERP gateway's Service as a real API server returns it, node port allocated.
        let user = json!({"spec": {
            "type": "LoadBalancer", "clusterIP": "10.0.0.12", "clusterIPs": ["10.0.0.12"],
            "externalTrafficPolicy": "Local", "healthCheckNodePort": 31234,
            "loadBalancerSourceRanges": ["10.0.0.0/8"],
            "selector": {"app": "gateway"},
            "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP", "nodePort": 30080}],
        }});
        let selector = BTreeMap::from([("app".to_string(), "gateway".to_string())]);
        let spec = canary_service_spec(Some(&user), &plan(), &selector);
        assert_eq!(
            spec,
            json!({
                "type": "ClusterIP",
                "selector": {"app": "gateway"},
                "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}],
            })
        );
    }

    #[test]
    fn without_a_user_service_the_plan_gives_the_port() {
        assert_eq!(
            cluster_ip_ports(None, &plan()),
            json!([{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}])
        );
    }

    #[test]
    fn labels_fit_whatever_the_rollout_name() {
        let long = "r".repeat(80);
        let labels = managed_labels(&long);
        assert_eq!(labels[MANAGED_BY], "sluice");
        assert_eq!(labels[ROLLOUT_LABEL].as_str().map(str::len), Some(63));
    }
}
