//! sluice's functional core: the Rollout spec and status, strategy presets and metric templates,
//! PromQL templating, release plans and analysis verdicts.
//!
//! Nothing here touches the network, the clock or the file system at run time: observations and
//! time come in as arguments, decisions come out, and every one of them can be tested in
//! microseconds. The controller in `src/` does the I/O.

pub mod analysis;
pub mod duration;
pub mod image;
pub mod index;
mod ingress;
pub mod lease;
pub mod names;
pub mod objects;
pub mod plan;
pub mod presets;
pub mod promql;
pub mod release;
pub mod spec;
pub mod status;
pub mod waits;

#[cfg(test)]
mod fuzz_tests;

pub use analysis::{CheckOutcome, MetricJudgement, Reading, judge_check, one_line};
pub use plan::{InvalidSpec, ReleasePlan, resolve};
pub use presets::{PresetError, Presets};
pub use spec::RolloutSpec;
pub use status::RolloutStatus;
