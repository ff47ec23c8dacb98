//! The objects of the benchmarks: app `i` of N, spread over ten namespaces, each a Deployment
//! shaped like the ERP system's services (Dapr annotations, probes, `envFrom`), its Service, its
//! Ingress and a canary Rollout checked every 5 s.

use serde_json::{Value, json};

pub const NAMESPACES: usize = 10;

pub fn namespace(i: usize) -> String {
    format!("bench-{:02}", i % NAMESPACES)
}

pub fn app(i: usize) -> String {
    format!("app-{i:05}")
}

/// The Deployment, Service, Ingress and Rollout of app `i`; the first `with_traffic` get users.
pub fn objects(i: usize, with_traffic: bool) -> [Value; 4] {
    let (ns, name) = (namespace(i), app(i));
    let labels = json!({"app": name});
    let deployment = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels, "annotations": {"dapr.io/enabled": "true", "dapr.io/app-id": name}},
                              "spec": {"containers": [{
                                  "name": "app", "image": "bench/app:1.0",
                                  "ports": [{"containerPort": 8080}],
                                  "envFrom": [{"configMapRef": {"name": "bench-config"}}],
                                  "readinessProbe": {"httpGet": {"path": "/health/ready", "port": 8080}},
                                  "livenessProbe": {"httpGet": {"path": "/health", "port": 8080}},
                                  "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}}}]}}},
    });
    let service = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": 8080}]},
    });
    let mut annotations = json!({});
    if with_traffic {
        annotations["sandbox.sluice.dev/rps"] = json!("20");
    }
    let ingress = json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": name, "namespace": ns, "annotations": annotations},
        "spec": {"ingressClassName": "nginx", "rules": [{"host": format!("{name}.bench.example"), "http": {"paths": [
            {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": name, "port": {"number": 80}}}}]}}]},
    });
    let rollout = json!({
        "apiVersion": "sluice.dev/v1alpha1", "kind": "Rollout",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"targetRef": {"name": name}, "service": {"name": name, "port": 80, "targetPort": 8080},
                 "strategy": {"preset": "nginx-canary", "canary": {"ingressRef": {"name": name}, "steps": [20, 50], "stepInterval": "15s"}},
                 "analysis": {"interval": "5s", "failureLimit": 0, "minRequests": 5,
                              "metrics": [{"name": "error-rate", "max": 5}]},
                 "progressDeadline": "5m"},
    });
    [deployment, service, ingress, rollout]
}
