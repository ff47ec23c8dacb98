//! Structured logs on stderr: human-readable by default, JSON lines on demand (`--log-format
//! json`, every subcommand), filtered by `RUST_LOG` (default: `info` for the controller, `warn` for
//! the CLI, whose output is on stdout). Reconcile spans carry the Rollout's namespace/name.

use tracing_subscriber::EnvFilter;

pub fn init(json: bool, default_level: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second initialisation (tests) keeps the first subscriber.
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
