//! Shared by the integration tests: a sandbox and a real kube client talking to it.
#![allow(dead_code)]

use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use sluice_sandbox::{Sandbox, SandboxConfig};

pub async fn client_for(sandbox: &Sandbox) -> Client {
    let kubeconfig = Kubeconfig::from_yaml(&sandbox.kubeconfig())
        .expect("the sandbox writes a valid kubeconfig");
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("kube accepts the sandbox's kubeconfig");
    Client::try_from(config).expect("a client for the sandbox")
}

pub async fn sandbox() -> (Sandbox, Client) {
    sandbox_with(SandboxConfig::default()).await
}

pub async fn sandbox_with(config: SandboxConfig) -> (Sandbox, Client) {
    let sandbox = Sandbox::start(config)
        .await
        .expect("the sandbox starts on 127.0.0.1");
    let client = client_for(&sandbox).await;
    (sandbox, client)
}

/// Polls `check` every 50ms until it returns Some, for at most `limit`.
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
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
