//! The CLI: `sluice release|promote|abort|pause|resume|retry|get|watch`, a client of the HTTP API
//! (also `kubectl sluice ...` when installed as `kubectl-sluice`).
//!
//! ```text
//!   args ──> commands / get / watch ──> client (reqwest) ──> API
//!                 │                        └── sse (event stream parser)
//!                 └── table, detail, watch::render: pure text from the wire types
//! ```
//!
//! Exit codes: 0 done (`watch`: promoted), 1 `watch`: rolled back, aborted or failed, 2 usage
//! error or `watch` timed out, 3 the API answered with an error, 4 the API cannot be reached.

pub mod args;
pub mod client;
pub mod commands;
pub mod detail;
pub mod get;
pub mod sse;
pub mod table;
pub mod text;
pub mod watch;

#[cfg(test)]
mod fixtures;

use std::process::ExitCode;

use clap::Subcommand;

pub use args::{
    AbortArgs, ApiOptions, CommandArgs, GetArgs, PromoteArgs, ReleaseArgs, Target, WatchArgs,
};
pub use client::Failure;

/// The API subcommands; the binary flattens them into its own.
#[derive(Debug, Clone, Subcommand)]
pub enum ApiCommand {
    /// Release new images: sets them on the Rollout's target Deployment.
    Release(ReleaseArgs),
    /// Advance the release by one step (--full: promote at once).
    Promote(PromoteArgs),
    /// Give the release up: traffic goes back to stable.
    Abort(AbortArgs),
    /// Hold the release where it is.
    Pause(CommandArgs),
    /// Let a paused release go on.
    Resume(CommandArgs),
    /// Release a rolled-back revision again.
    Retry(CommandArgs),
    /// List Rollouts, or show one in full.
    Get(GetArgs),
    /// Follow a release to its end: exit 0 promoted, 1 rolled back, 2 timed out.
    Watch(WatchArgs),
}

/// Runs one API subcommand; what went wrong is printed to stderr (as a JSON log line with
/// `log_json`) and becomes the exit code.
pub async fn run(command: ApiCommand, log_json: bool) -> ExitCode {
    let result = match command {
        ApiCommand::Release(args) => commands::release(&args).await.map(|()| 0),
        ApiCommand::Promote(args) => commands::promote(&args).await.map(|()| 0),
        ApiCommand::Abort(args) => commands::abort(&args).await.map(|()| 0),
        ApiCommand::Pause(args) => commands::simple(&args, "pause").await.map(|()| 0),
        ApiCommand::Resume(args) => commands::simple(&args, "resume").await.map(|()| 0),
        ApiCommand::Retry(args) => commands::simple(&args, "retry").await.map(|()| 0),
        ApiCommand::Get(args) => get::get(&args).await.map(|()| 0),
        ApiCommand::Watch(args) => watch::watch(&args).await.map(|outcome| outcome.exit_code()),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(failure) => {
            let exit_code = failure.exit_code();
            if log_json {
                tracing::error!(exit_code, error = %failure, "the command failed");
            } else {
                eprintln!("error: {failure}");
            }
            ExitCode::from(exit_code)
        }
    }
}
