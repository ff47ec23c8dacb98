//! Checks kube-apiserver makes that a lenient test double would let through: label and
//! annotation syntax on every object, Services' type-dependent fields and node ports, CRD schemas
//! (structural, then enforced on custom objects with pruning and defaulting), ControllerRevisions,
//! Leases.

pub mod crd;
pub mod lease;
pub mod meta;
pub mod revision;
pub mod service;

pub use super::objects::Cause;

#[cfg(test)]
mod crd_tests;
#[cfg(test)]
mod lease_tests;
#[cfg(test)]
mod meta_tests;
#[cfg(test)]
mod revision_tests;
#[cfg(test)]
mod service_tests;
