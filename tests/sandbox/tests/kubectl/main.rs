//! The real `kubectl` against the sandbox: discovery, create, apply (create, configure,
//! unchanged), get as JSON and as tables, patch, label, annotate, scale, watch, wait, rollout
//! status, delete, and a CustomResourceDefinition with objects of its kind.
//!
//! Each test starts its own sandbox on a free port and runs kubectl with its own kubeconfig and
//! discovery cache in a fresh temporary directory, so runs never share state. kubectl is part of
//! the machine image (`/usr/bin/kubectl`, or set `KUBECTL`): when it is missing these tests fail.
//!
//! `harness` holds the machinery and `manifests` what gets deployed; the tests are grouped by
//! theme in the other modules.

mod discovery;
mod harness;
mod manifests;
mod strict;
mod wait_and_watch;
mod writes;
