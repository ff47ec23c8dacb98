//! Helpers for the tests and examples that drive a sandbox: a kube client for it, objects in the
//! shapes sluice creates, and polling. A failed creation or a poll that times out panics, as a
//! test assertion does: these are for tests.

use std::future::Future;
use std::time::Duration;

use kube::api::{Api, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig, KubeconfigError};
use kube::{Client, Config};
use serde_json::{Value, json};

use crate::Sandbox;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("the kubeconfig is not usable: {0}")]
    Kubeconfig(#[from] KubeconfigError),
    #[error("kube cannot build a client from the kubeconfig: {0}")]
    Client(#[from] kube::Error),
}

/// A kube client for the cluster of a kubeconfig (as YAML), as sluice itself would load one.
pub async fn client_from_kubeconfig(yaml: &str) -> Result<Client, ClientError> {
    Ok(Client::try_from(config_from_kubeconfig(yaml).await?)?)
}

/// The kube client configuration of a kubeconfig, for a client built with layers of its own.
pub async fn config_from_kubeconfig(yaml: &str) -> Result<Config, ClientError> {
    let kubeconfig = Kubeconfig::from_yaml(yaml)?;
    Ok(Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?)
}

impl Sandbox {
    /// A kube client talking to this sandbox.
    pub async fn client(&self) -> Result<Client, ClientError> {
        client_from_kubeconfig(&self.kubeconfig()).await
    }

    /// The configuration of a kube client talking to this sandbox.
    pub async fn client_config(&self) -> Result<Config, ClientError> {
        config_from_kubeconfig(&self.kubeconfig()).await
    }
}

/// Creates a namespaced object from its JSON; panics if the API refuses it.
pub async fn create<K>(client: &Client, namespace: &str, body: Value) -> K
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    let object: K = serde_json::from_value(body).expect("a valid object");
    Api::<K>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &object)
        .await
        .expect("created")
}

/// Polls `check` every 50ms until it returns Some; panics after `limit`, naming `what`.
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A slot Deployment as sluice runs them: `<app>-<slot>`, 2 replicas, pods labelled with the slot.
pub fn slot_deployment(app: &str, slot: &str, annotations: Value) -> Value {
    let labels = json!({"app": app, "sluice.dev/slot": slot});
    json!({
        "metadata": {"name": format!("{app}-{slot}")},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels, "annotations": annotations},
                "spec": {"containers": [{"name": app, "image": format!("erp/{app}:1.0")}]},
            },
        },
    })
}

/// A Service selecting one slot of `app`, port 80 to 8080.
pub fn slot_service(name: &str, app: &str, slot: &str, annotations: Value) -> Value {
    json!({
        "metadata": {"name": name, "annotations": annotations},
        "spec": {"selector": {"app": app, "sluice.dev/slot": slot}, "ports": [{"port": 80, "targetPort": 8080}]},
    })
}

/// An nginx Ingress on erp.example.com sending `path` (Prefix) to `service` port 80.
pub fn ingress(name: &str, path: &str, service: &str, annotations: Value) -> Value {
    json!({
        "metadata": {"name": name, "annotations": annotations},
        "spec": {
            "ingressClassName": "nginx",
            "rules": [{"host": "erp.example.com", "http": {"paths": [
                {"path": path, "pathType": "Prefix", "backend": {"service": {"name": service, "port": {"number": 80}}}}
            ]}}],
        },
    })
}
