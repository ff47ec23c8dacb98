//! The `sluice` binary: `sluice crd`, `sluice openapi`, `sluice controller --prometheus-url URL
//! [--listen ADDR] [--api-listen ADDR] [--api-tokens-file FILE | --api-insecure]`, and the CLI of
//! the API (`sluice release|promote|abort|pause|resume|retry|get|watch`), which also runs as the
//! kubectl plugin `kubectl-sluice`: nothing here depends on the program's name.

use std::io::Write;
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
    /// Print the HTTP API's OpenAPI 3.1 document as JSON.
    Openapi,
    /// Run the controller against the cluster of the kubeconfig (or in-cluster configuration).
    Controller(Box<ControllerArgs>),
    #[command(flatten)]
    Api(sluice::cli::ApiCommand),
}

#[derive(clap::Args)]
struct ControllerArgs {
    /// Prometheus that scrapes the ingress controller, e.g. http://prometheus:9090.
    #[arg(long, env = "SLUICE_PROMETHEUS_URL")]
    prometheus_url: String,
    /// Address of /healthz, /readyz and /metrics (unauthenticated).
    #[arg(long, default_value = "0.0.0.0:8080")]
    listen: String,
    /// Bound on every Prometheus query, in seconds.
    #[arg(long, default_value_t = 5)]
    query_timeout: u64,
    /// A file holding a bearer token for Prometheus (a mounted Secret), read at every query.
    #[arg(long, env = "SLUICE_PROMETHEUS_BEARER_TOKEN_FILE")]
    prometheus_bearer_token_file: Option<std::path::PathBuf>,
    /// A file holding `user:password` for Prometheus's basic auth, read at every query.
    #[arg(
        long,
        env = "SLUICE_PROMETHEUS_BASIC_AUTH_FILE",
        conflicts_with = "prometheus_bearer_token_file"
    )]
    prometheus_basic_auth_file: Option<std::path::PathBuf>,
    /// PEM certificates of the CAs that sign an https:// Prometheus's certificate, trusted
    /// instead of the system's (read at start).
    #[arg(long, env = "SLUICE_PROMETHEUS_CA_FILE")]
    prometheus_ca_file: Option<std::path::PathBuf>,
    /// A PEM client certificate for a Prometheus that asks for one (with --prometheus-key-file).
    #[arg(
        long,
        env = "SLUICE_PROMETHEUS_CERT_FILE",
        requires = "prometheus_key_file"
    )]
    prometheus_cert_file: Option<std::path::PathBuf>,
    /// The PEM key of --prometheus-cert-file.
    #[arg(
        long,
        env = "SLUICE_PROMETHEUS_KEY_FILE",
        requires = "prometheus_cert_file"
    )]
    prometheus_key_file: Option<std::path::PathBuf>,
    /// Accept any certificate from Prometheus: for a trial, never for production.
    #[arg(long)]
    prometheus_insecure_skip_verify: bool,
    /// The class of the ingress-nginx that serves sluice's canary annotations: a Rollout on an
    /// Ingress of another class is reported invalid (default: any class).
    #[arg(long, env = "SLUICE_INGRESS_CLASS")]
    ingress_class: Option<String>,
    /// Watch and release only the Rollouts of these namespaces, e.g. `erp-system,shop` (a Role
    /// in each is all sluice needs then); default: every namespace.
    #[arg(long, env = "SLUICE_NAMESPACES", value_delimiter = ',', value_parser = namespace_name)]
    namespaces: Vec<String>,
    /// Release only the Rollouts whose labels match this selector, e.g. `sluice.dev/shard=a`,
    /// so that several controllers split a cluster.
    #[arg(long, env = "SLUICE_SHARD_SELECTOR")]
    shard_selector: Option<String>,
    /// Requests a second to the API server, on average (client-side, as client-go's QPS).
    #[arg(long, default_value_t = sluice::throttle::ApiLimits::default().qps)]
    api_server_qps: f64,
    /// Requests to the API server let through at once after a quiet time.
    #[arg(long, default_value_t = sluice::throttle::ApiLimits::default().burst)]
    api_server_burst: u32,
    /// Reconciles running at once, at most.
    #[arg(long, default_value_t = sluice::controller::DEFAULT_CONCURRENCY,
              value_parser = clap::value_parser!(u16).range(1..))]
    concurrency: u16,
    #[command(flatten)]
    api: ApiArgs,
    #[command(flatten)]
    election: ElectionArgs,
}

#[derive(clap::Args)]
struct ApiArgs {
    /// Address of the HTTP API (port 0: any free port; the bound address is printed).
    #[arg(long, default_value = "0.0.0.0:8443")]
    api_listen: String,
    /// The API's tokens (YAML; see the README's API section), read again when it changes.
    #[arg(long, env = "SLUICE_API_TOKENS_FILE")]
    api_tokens_file: Option<std::path::PathBuf>,
    /// Serve the API without authentication (anyone who reaches it may release and abort).
    #[arg(long, conflicts_with = "api_tokens_file")]
    api_insecure: bool,
    /// Requests per second each token may make (a burst of twice as many is let through).
    #[arg(long, default_value_t = 20)]
    api_rate_limit: u32,
}

#[derive(clap::Args)]
struct ElectionArgs {
    /// Elect one leader among the controllers of a scope, by a Lease: only the leader reconciles
    /// and writes, the others keep their caches and serve the API (`--leader-elect=false`: this
    /// controller always leads).
    #[arg(long, default_value_t = true, num_args = 0..=1, default_missing_value = "true",
          action = clap::ArgAction::Set)]
    leader_elect: bool,
    /// How long a Lease whose holder stopped renewing stays its holder's (whole seconds).
    #[arg(long, default_value = "15s", value_parser = duration)]
    leader_elect_lease_duration: Duration,
    /// How long the leader goes on writing after its last renewal: shorter than the lease
    /// duration, so it stops before another can take over.
    #[arg(long, default_value = "10s", value_parser = duration)]
    leader_elect_renew_deadline: Duration,
    /// The wait between two tries to renew or to acquire the Lease.
    #[arg(long, default_value = "2s", value_parser = duration)]
    leader_elect_retry_period: Duration,
    /// The Lease's name (default: `sluice`, or one per scope of `--namespaces` and
    /// `--shard-selector`, `sluice-<hash>`).
    #[arg(long, env = "SLUICE_LEADER_ELECT_RESOURCE_NAME")]
    leader_elect_resource_name: Option<String>,
    /// The Lease's namespace (default: the controller's own, from its service account, or the
    /// kubeconfig context's).
    #[arg(long, env = "POD_NAMESPACE")]
    leader_elect_resource_namespace: Option<String>,
    /// This candidate's name in the Lease (default: `POD_NAME`, else the host's name and a random
    /// suffix).
    #[arg(long)]
    leader_elect_identity: Option<String>,
}

impl ElectionArgs {
    fn election(
        self,
        identity: String,
        client: &kube::Client,
        elector_client: kube::Client,
        namespaces: &[String],
        shard_selector: Option<&str>,
    ) -> anyhow::Result<Option<sluice::leader::Election>> {
        if !self.leader_elect {
            return Ok(None);
        }
        let timing = sluice_strategies::lease::Timing {
            lease_duration: self.leader_elect_lease_duration,
            renew_deadline: self.leader_elect_renew_deadline,
            retry_period: self.leader_elect_retry_period,
        };
        timing.check().context("--leader-elect-* times")?;
        Ok(Some(sluice::leader::Election {
            namespace: self
                .leader_elect_resource_namespace
                .unwrap_or_else(|| client.default_namespace().to_string()),
            lease: self.leader_elect_resource_name.unwrap_or_else(|| {
                sluice::leader::Election::lease_name(namespaces, shard_selector)
            }),
            identity,
            timing,
            client: Some(elector_client),
        }))
    }
}

fn duration(text: &str) -> Result<Duration, String> {
    sluice_strategies::duration::parse(text).map_err(|e| e.to_string())
}

/// glibc raises its mmap threshold to the size of each large block freed, up to 32 MiB; from then
/// on blocks that large come from the heap and stay resident once freed. A controller of 10,000
/// Rollouts writes 33 MiB of /metrics text at each scrape and lists pages of megabytes: with the
/// threshold fixed at 1 MiB those stay mapped, and go back to the system when freed.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_large_blocks_mapped() {
    // SAFETY: mallopt sets one parameter of the allocator, under the allocator's own locks; no
    // memory is touched.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn keep_large_blocks_mapped() {}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    keep_large_blocks_mapped();
    let cli = Cli::parse();
    let json = cli.log_format == "json";
    let default_level = match cli.command {
        Command::Controller(_) => "info",
        _ => "warn",
    };
    sluice::telemetry::init(json, default_level);
    match cli.command {
        Command::Api(command) => return Ok(sluice::cli::run(command, json).await),
        Command::Crd => print!("{}", sluice::crd::crd_yaml()?),
        Command::Openapi => println!("{}", sluice::api::openapi_document().to_pretty_json()?),
        Command::Controller(args) => {
            let ControllerArgs {
                prometheus_url,
                listen,
                query_timeout,
                prometheus_bearer_token_file,
                prometheus_basic_auth_file,
                prometheus_ca_file,
                prometheus_cert_file,
                prometheus_key_file,
                prometheus_insecure_skip_verify,
                ingress_class,
                mut namespaces,
                shard_selector,
                concurrency,
                api_server_qps,
                api_server_burst,
                api,
                election,
            } = *args;
            // One watch per namespace: a namespace given twice would be watched twice.
            namespaces.sort();
            namespaces.dedup();
            let auth =
                sluice::api::Auth::configure(api.api_tokens_file.as_deref(), api.api_insecure)?;
            let mut config = sluice::ControllerConfig::new(prometheus_url);
            config.query_timeout = Duration::from_secs(query_timeout);
            config.ingress_class = ingress_class;
            config.scope = if namespaces.is_empty() {
                sluice::controller::Scope::AllNamespaces
            } else {
                sluice::controller::Scope::Namespaces(namespaces.clone())
            };
            config.shard_selector = shard_selector.filter(|s| !s.trim().is_empty());
            config.concurrency = concurrency;
            config.prometheus_auth =
                prometheus_bearer_token_file
                    .map(sluice::analysis::PrometheusAuth::BearerTokenFile)
                    .or(prometheus_basic_auth_file
                        .map(sluice::analysis::PrometheusAuth::BasicAuthFile));
            config.prometheus_tls = sluice::analysis::PrometheusTls {
                ca_file: prometheus_ca_file,
                client_cert_file: prometheus_cert_file,
                client_key_file: prometheus_key_file,
                insecure_skip_verify: prometheus_insecure_skip_verify,
            };
            let kubeconfig = kube::Config::infer()
                .await
                .context("reading the cluster's configuration (kubeconfig or in-cluster)")?;
            anyhow::ensure!(
                api_server_qps.is_finite() && api_server_qps > 0.0,
                "--api-server-qps must be a positive number, not {api_server_qps}"
            );
            let limits = sluice::throttle::ApiLimits {
                qps: api_server_qps,
                burst: api_server_burst.max(1),
            };
            let identity = election
                .leader_elect_identity
                .clone()
                .unwrap_or_else(sluice::leader::Election::default_identity);
            let elector_client =
                sluice::metrics::election_client(kubeconfig.clone(), &config.metrics, &identity)
                    .context("connecting to the cluster")?;
            let client =
                sluice::metrics::metered_client(kubeconfig, &config.metrics, limits, &identity)
                    .context("connecting to the cluster")?;
            config.election = election.election(
                identity,
                &client,
                elector_client,
                &namespaces,
                config.shard_selector.as_deref(),
            )?;
            let listener = tokio::net::TcpListener::bind(&listen)
                .await
                .with_context(|| format!("listening on {listen}"))?;
            let api_listener = tokio::net::TcpListener::bind(&api.api_listen)
                .await
                .with_context(|| format!("listening on {} for the API", api.api_listen))?;
            let (probes_at, api_at) = (listener.local_addr()?, api_listener.local_addr()?);
            // On stdout, so that scripts and tests that asked for port 0 find the ports; a reader
            // gone away is no reason to stop.
            let mut stdout = std::io::stdout();
            let _ = writeln!(stdout, "sluice probes and metrics on http://{probes_at}");
            let _ = writeln!(stdout, "sluice API on http://{api_at}");
            let api = sluice::ApiServer {
                listener: api_listener,
                auth,
                limiter: sluice::api::RateLimiter::new(
                    api.api_rate_limit,
                    api.api_rate_limit.saturating_mul(2),
                ),
            };
            tracing::info!(listen = %probes_at, api = %api_at, "sluice controller starting");
            sluice::run(client, config, listener, Some(api), shutdown_signal()).await?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A namespace's name is a DNS label: refused here rather than by a watch that fails forever.
fn namespace_name(text: &str) -> Result<String, String> {
    let name = text.trim();
    let valid = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if valid {
        Ok(name.to_string())
    } else {
        Err(format!(
            "{text:?} is not a namespace name (lowercase letters, digits and '-', at most 63)"
        ))
    }
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
