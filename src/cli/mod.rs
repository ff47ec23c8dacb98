//! The CLI: `sluice release|promote|abort|pause|resume|retry|get|watch`, a client of the HTTP API.

pub mod sse;
