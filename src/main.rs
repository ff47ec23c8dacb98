//! The `sluice` binary: `sluice crd`, `sluice controller --prometheus-url URL [--listen ADDR]`,
//! and the CLI of the API (`sluice release|promote|abort|pause|resume|retry|get|watch`), which
//! also runs as the kubectl plugin `kubectl-sluice`: nothing here depends on the program's name.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "sluice", about = "Progressive delivery for Kubernetes")]
struct Cli {
    /// Log as JSON lines.
    #[arg(long, global = true, value_parser = ["text", "json"], default_value = "text")]
    log_format: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the Rollout CustomResourceDefinition as YAML (`sluice crd | kubectl apply -f -`).
    Crd,
    /// Run the controller against the cluster of the kubeconfig (or in-cluster configuration).
    Controller {
        /// Prometheus that scrapes the ingress controller, e.g. http://prometheus:9090.
        #[arg(long, env = "SLUICE_PROMETHEUS_URL")]
        prometheus_url: String,
        /// Address of /healthz and /readyz.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
        /// Bound on every Prometheus query, in seconds.
        #[arg(long, default_value_t = 5)]
        query_timeout: u64,
    },
    #[command(flatten)]
    Api(sluice::cli::ApiCommand),
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    match cli.command {
        Command::Api(command) => return Ok(sluice::cli::run(command).await),
        Command::Crd => print!("{}", sluice::crd::crd_yaml()?),
        Command::Controller {
            prometheus_url,
            listen,
            query_timeout,
        } => {
            sluice::telemetry::init(cli.log_format == "json");
            let client = kube::Client::try_default()
                .await
                .context("connecting to the cluster")?;
            let listener = tokio::net::TcpListener::bind(&listen)
                .await
                .with_context(|| format!("listening on {listen}"))?;
            let mut config = sluice::ControllerConfig::new(prometheus_url);
            config.query_timeout = Duration::from_secs(query_timeout);
            tracing::info!(listen = %listen, "sluice controller starting");
            sluice::run(client, config, listener, shutdown_signal()).await?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut terminate) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = terminate.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
