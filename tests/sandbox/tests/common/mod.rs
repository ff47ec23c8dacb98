//! Shared by the integration tests: a sandbox and a real kube client talking to it.
#![allow(dead_code, unused_imports)]

use kube::Client;
pub use sluice_sandbox::testing::eventually;
use sluice_sandbox::{Sandbox, SandboxConfig};

pub async fn client_for(sandbox: &Sandbox) -> Client {
    sandbox
        .client()
        .await
        .expect("a kube client for the sandbox")
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
