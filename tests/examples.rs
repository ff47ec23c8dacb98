//! Every example Rollout in deploy/examples is one the controller accepts: it parses as a Rollout
//! and its spec resolves against the embedded presets without a problem.

use sluice::crd::Rollout;
use sluice_strategies::{Presets, resolve};

#[test]
fn every_example_rollout_resolves() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/examples");
    let presets = Presets::embedded().expect("the embedded presets load");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).expect("deploy/examples is readable") {
        let path = entry.expect("a directory entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("the example is readable");
        let rollout: Rollout = serde_saphyr::from_str(&text)
            .unwrap_or_else(|e| panic!("{} is not a Rollout: {e}", path.display()));
        if let Err(invalid) = resolve(rollout.spec.readable().expect("a readable spec"), &presets) {
            panic!("{}: {invalid}", path.display());
        }
        seen += 1;
    }
    assert!(seen >= 2, "found {seen} examples in {dir}");
}
