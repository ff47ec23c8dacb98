//! The `sluice` binary: `sluice crd`.

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "sluice", about = "Progressive delivery for Kubernetes")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the Rollout CustomResourceDefinition as YAML (`sluice crd | kubectl apply -f -`).
    Crd,
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Crd => print!("{}", sluice::crd::crd_yaml()?),
    }
    Ok(())
}
