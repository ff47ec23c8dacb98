//! The shell's errors: each says what failed on which object, and maps to a metric label.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{action} {kind} {namespace}/{name}: {source}")]
    Kube {
        action: &'static str,
        kind: &'static str,
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("Rollout {namespace}/{name} has no namespace or name")]
    Unnamed { namespace: String, name: String },
    #[error("the API server refuses the shard selector {selector:?}: {source}")]
    ShardSelector {
        selector: String,
        #[source]
        source: kube::Error,
    },
    #[error("cannot serialize {what}: {source}")]
    Serialize {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("the embedded presets do not load: {0}")]
    Presets(#[from] sluice_strategies::PresetError),
    #[error(transparent)]
    Analysis(#[from] crate::analysis::AnalysisError),
    #[error("leader election: {0}")]
    LeaderElection(#[from] sluice_strategies::lease::TimingError),
}

impl Error {
    /// A short, bounded label for metrics and logs.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube { action, .. } => action,
            Error::Unnamed { .. } => "unnamed",
            Error::ShardSelector { .. } => "shard_selector",
            Error::Serialize { .. } => "serialize",
            Error::Presets(_) => "presets",
            Error::Analysis(_) => "analysis",
            Error::LeaderElection(_) => "leader_election",
        }
    }

    pub fn is_conflict(&self) -> bool {
        matches!(self, Error::Kube { source: kube::Error::Api(status), .. } if status.code == 409)
    }
}

/// Wraps a kube error with what was being done to which object.
pub fn kube_err(
    action: &'static str,
    kind: &'static str,
    namespace: &str,
    name: &str,
) -> impl FnOnce(kube::Error) -> Error {
    let (namespace, name) = (namespace.to_string(), name.to_string());
    move |source| Error::Kube {
        action,
        kind,
        namespace,
        name,
        source,
    }
}
