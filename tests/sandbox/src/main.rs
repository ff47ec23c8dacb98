//! `sluice-sandbox up --port P --kubeconfig FILE [--prometheus] [--env-file FILE] [--seed N]
//! [--image-behavior R=..] [--watch-ingress-without-class] [--metrics-per-host=BOOL]
//! [--metrics-per-undefined-host=BOOL]`

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use sluice_sandbox::traffic::ImageBehavior;
use sluice_sandbox::{Sandbox, SandboxConfig, write_file};
use tokio::signal::unix::{Signal, SignalKind, signal};

#[derive(Parser)]
#[command(
    name = "sluice-sandbox",
    about = "A simulated Kubernetes cluster on 127.0.0.1 for sluice's tests and demo"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the sandbox and serve until SIGINT or SIGTERM.
    Up {
        /// Port on 127.0.0.1 (0: any free port).
        #[arg(long, default_value_t = 0)]
        port: u16,
        /// Where to write a kubeconfig pointing at the sandbox, once it listens.
        #[arg(long)]
        kubeconfig: PathBuf,
        /// Also run the real Prometheus, scraping the sandbox's metrics every second.
        #[arg(long)]
        prometheus: bool,
        /// Where to write KUBECONFIG, SANDBOX_API_URL, SANDBOX_METRICS_URL, PROMETHEUS_URL lines.
        #[arg(long)]
        env_file: Option<PathBuf>,
        /// Seed of the traffic simulator.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Behaviour by image, e.g. 'reporting:2\..*=error-rate:0.3,latency-ms:400,max-rps:50' (repeatable).
        #[arg(long = "image-behavior")]
        image_behaviors: Vec<ImageBehavior>,
        /// As ingress-nginx's flag: also route Ingresses that name no class.
        #[arg(long)]
        watch_ingress_without_class: bool,
        /// As ingress-nginx's flag: request metrics per host (a `host` label; requests for hosts
        /// no Ingress declares are not counted unless --metrics-per-undefined-host).
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
        metrics_per_host: bool,
        /// As ingress-nginx's flag: count requests for hosts no Ingress declares too.
        #[arg(long, default_value_t = false, action = clap::ArgAction::Set)]
        metrics_per_undefined_host: bool,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let Command::Up {
        port,
        kubeconfig,
        prometheus,
        env_file,
        seed,
        image_behaviors,
        watch_ingress_without_class,
        metrics_per_host,
        metrics_per_undefined_host,
    } = Cli::parse().command;
    // Handlers first: once the kubeconfig exists a caller may signal at once, and a signal that
    // arrived before them would be lost (inherited SIG_IGN) or kill the process (SIG_DFL).
    let signals = Signals::install()?;
    let config = SandboxConfig {
        port,
        seed,
        prometheus,
        image_behaviors,
        watch_ingress_without_class,
        metrics_per_host,
        metrics_per_undefined_host,
        ..SandboxConfig::default()
    };
    let sandbox = Sandbox::start(config)
        .await
        .context("starting the sandbox")?;
    let kubeconfig = std::path::absolute(&kubeconfig).unwrap_or(kubeconfig);
    sandbox
        .write_kubeconfig(&kubeconfig)
        .context("writing the kubeconfig")?;
    if let Some(env_file) = env_file {
        write_file(&env_file, &sandbox.env_file(&kubeconfig)).context("writing the env file")?;
    }
    eprintln!(
        "sandbox API on {} (kubeconfig {})",
        sandbox.api_url(),
        kubeconfig.display()
    );
    if let Some(url) = sandbox.prometheus_url() {
        eprintln!("Prometheus on {url}");
    }
    signals.wait().await;
    eprintln!("stopping");
    sandbox.shutdown().await;
    Ok(())
}

struct Signals {
    interrupt: Signal,
    terminate: Signal,
}

impl Signals {
    fn install() -> anyhow::Result<Signals> {
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
            terminate: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
        })
    }

    /// Until SIGINT or SIGTERM, including one received since `install`.
    async fn wait(mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }
}
