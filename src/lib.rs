//! sluice: the imperative shell around `sluice-strategies`. Kubernetes and Prometheus I/O, the
//! reconcile loop, the HTTP endpoints, the CLI and telemetry live here; every decision lives in
//! the core.

pub mod analysis;
pub mod api;
pub mod cli;
pub mod controller;
pub mod crd;
pub mod digest;
pub mod error;
pub mod leader;
pub mod metrics;
pub mod server;
pub mod telemetry;
pub mod throttle;

pub use controller::{ApiServer, ControllerConfig, run};
pub use error::Error;
