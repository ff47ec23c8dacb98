//! What the API subcommands take on the command line, and the checks clap cannot make alone:
//! `NAMESPACE/NAME`, the two forms of `--image`, durations.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use clap::{Args, ValueEnum};

use crate::api::types::ReleaseRequest;

/// Where the API is and who is asking; every API subcommand takes these.
#[derive(Clone, Args)]
pub struct ApiOptions {
    /// The sluice API.
    #[arg(long, env = "SLUICE_SERVER", default_value = "http://127.0.0.1:8443")]
    pub server: String,
    /// Bearer token for the API (never printed).
    #[arg(long, env = "SLUICE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

impl fmt::Debug for ApiOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiOptions")
            .field("server", &self.server)
            .field("token", &self.token.as_ref().map(|_| "<hidden>"))
            .finish()
    }
}

/// One Rollout, written `NAMESPACE/NAME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub namespace: String,
    pub name: String,
}

impl FromStr for Target {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let wrong = || format!("expected NAMESPACE/NAME, e.g. shop/web, not {text:?}");
        let (namespace, name) = text.split_once('/').ok_or_else(wrong)?;
        if namespace.is_empty() || name.is_empty() || name.contains('/') {
            return Err(wrong());
        }
        Ok(Target {
            namespace: namespace.to_string(),
            name: name.to_string(),
        })
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// One `--image`: `IMAGE` alone, or `CONTAINER=IMAGE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageArg {
    pub container: Option<String>,
    pub image: String,
}

impl FromStr for ImageArg {
    type Err = String;

    /// Splits on the first `=`: image references hold `:` and `@`, never `=`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (container, image) = match text.split_once('=') {
            Some((container, image)) => {
                if container.is_empty() {
                    return Err(format!("no container name before '=' in {text:?}"));
                }
                (Some(container.to_string()), image)
            }
            None => (None, text),
        };
        if image.is_empty() {
            return Err(format!("no image reference in {text:?}"));
        }
        Ok(ImageArg {
            container,
            image: image.to_string(),
        })
    }
}

/// The body of a release: `{"image": ...}` for one `--image IMAGE`, `{"images": {...}}` for
/// `--image CONTAINER=IMAGE` (repeatable). The two forms do not mix.
pub fn release_request(images: &[ImageArg]) -> Result<ReleaseRequest, String> {
    match images {
        [] => Err("give at least one --image".to_string()),
        [
            ImageArg {
                container: None,
                image,
            },
        ] => Ok(ReleaseRequest {
            image: Some(image.clone()),
            images: None,
        }),
        _ => {
            let mut by_container = BTreeMap::new();
            for arg in images {
                let Some(container) = &arg.container else {
                    return Err(format!(
                        "--image {} names no container: with several images, write \
                         --image CONTAINER=IMAGE for each",
                        arg.image
                    ));
                };
                if by_container
                    .insert(container.clone(), arg.image.clone())
                    .is_some()
                {
                    return Err(format!("container {container:?} is given twice"));
                }
            }
            Ok(ReleaseRequest {
                image: None,
                images: Some(by_container),
            })
        }
    }
}

/// A duration such as `30s`, `10m`, `1h` or `1m30s`, as Rollout specs write them.
pub fn parse_duration(text: &str) -> Result<Duration, sluice_strategies::duration::DurationError> {
    sluice_strategies::duration::parse(text)
}

/// How `get` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
    Yaml,
}

/// `release`.
#[derive(Debug, Clone, Args)]
pub struct ReleaseArgs {
    /// The Rollout, as NAMESPACE/NAME.
    #[arg(value_name = "NAMESPACE/NAME")]
    pub target: Target,
    /// The new image: IMAGE for a single-container target, or CONTAINER=IMAGE (repeatable).
    #[arg(long = "image", value_name = "[CONTAINER=]IMAGE", required = true)]
    pub images: Vec<ImageArg>,
    #[command(flatten)]
    pub api: ApiOptions,
}

/// What every command (promote, abort, pause, resume, retry) takes.
#[derive(Debug, Clone, Args)]
pub struct CommandArgs {
    /// The Rollout, as NAMESPACE/NAME.
    #[arg(value_name = "NAMESPACE/NAME")]
    pub target: Target,
    /// Send this Idempotency-Key instead of a random one: a retried CI step that sends the same
    /// key has its command applied once.
    #[arg(long, value_name = "KEY")]
    pub idempotency_key: Option<String>,
    #[command(flatten)]
    pub api: ApiOptions,
}

/// `promote`.
#[derive(Debug, Clone, Args)]
pub struct PromoteArgs {
    #[command(flatten)]
    pub command: CommandArgs,
    /// Skip the remaining steps and promote at once.
    #[arg(long)]
    pub full: bool,
}

/// `abort`.
#[derive(Debug, Clone, Args)]
pub struct AbortArgs {
    #[command(flatten)]
    pub command: CommandArgs,
    /// Why, recorded in the Rollout's status and in an Event.
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
}

/// `get`.
#[derive(Debug, Clone, Args)]
pub struct GetArgs {
    /// One Rollout in full, as NAMESPACE/NAME; without it, the list.
    #[arg(value_name = "NAMESPACE/NAME")]
    pub target: Option<Target>,
    /// List only this namespace's Rollouts.
    #[arg(short = 'n', long, value_name = "NAMESPACE", conflicts_with = "target")]
    pub namespace: Option<String>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
    #[command(flatten)]
    pub api: ApiOptions,
}

/// `watch`.
#[derive(Debug, Clone, Args)]
pub struct WatchArgs {
    /// The Rollout, as NAMESPACE/NAME.
    #[arg(value_name = "NAMESPACE/NAME")]
    pub target: Target,
    /// Give up after this long (exit 2), e.g. 30s, 10m, 1h; without it, wait until the end.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// Follow this revision instead of the one the target Deployment asks for now (e.g. the one
    /// `sluice release` printed, before the controller has seen it).
    #[arg(long, value_name = "REVISION")]
    pub revision: Option<String>,
    #[command(flatten)]
    pub api: ApiOptions,
}

#[cfg(test)]
#[path = "args_tests.rs"]
mod tests;
