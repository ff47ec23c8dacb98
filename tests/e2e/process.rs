//! The controller as a real process of the binary, for the tests that kill it or run two.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::harness::Env;

/// A controller process of the binary; killed when dropped, however the test ends.
pub struct Controller {
    pub identity: &'static str,
    pub child: Child,
    pub probes: String,
    pub api: String,
    pub log: PathBuf,
}

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn scratch(env: &Env, name: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "sluice-e2e-{}-{}-{name}",
        std::process::id(),
        env.sandbox.api_url().replace([':', '/', '.'], "_")
    ))
}

/// Starts the binary's controller as candidate `identity` with `args` besides, against the
/// sandbox and its Prometheus, waiting for the two addresses it prints. Its log goes to a file of
/// the temporary directory named after the sandbox and the identity.
pub async fn start_controller(env: &Env, identity: &'static str, args: &[&str]) -> Controller {
    let kubeconfig = scratch(env, "kubeconfig");
    // Appended to, by each process of the same identity.
    let log = scratch(env, &format!("{identity}.log"));
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .expect("log");
    std::fs::write(&kubeconfig, env.sandbox.kubeconfig()).expect("written");
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args([
            "controller",
            "--listen=127.0.0.1:0",
            "--api-listen=127.0.0.1:0",
        ])
        .arg(format!("--prometheus-url={}", env.prometheus_url))
        .args(["--api-insecure", "--query-timeout=2"])
        .arg(format!("--leader-elect-identity={identity}"))
        .args(args)
        .env("KUBECONFIG", &kubeconfig)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(log_file)
        .spawn()
        .expect("the controller starts");
    let stdout = child.stdout.take().expect("its stdout");
    let (lines, said) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    let (probes, api) = tokio::task::spawn_blocking(move || {
        let address = || {
            let line = said
                .recv_timeout(Duration::from_secs(30))
                .unwrap_or_default();
            line.rsplit(' ').next().unwrap_or_default().to_string()
        };
        (address(), address())
    })
    .await
    .expect("read");
    assert!(
        probes.starts_with("http://127.0.0.1:"),
        "{identity}: {probes:?}"
    );
    Controller {
        identity,
        child,
        probes,
        api,
        log,
    }
}
