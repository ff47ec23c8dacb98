//! What installs sluice on a real cluster, checked without one: the Helm chart (linted and
//! rendered by Helm 4, from the PyPI package that bundles it), the manifests rendered from it, the
//! Dockerfile (read by BuildKit's parser) and the example Rollouts (against the CRD's schema).
//! Each test runs one check of tests/deploy/check.py with the tools scripts/ensure-python-tools
//! installs into target/py, and the CRD of this very build.

use std::path::Path;
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn check(name: &str) {
    let python = Path::new(ROOT).join("target/py/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/ensure-python-tools (scripts/test does)",
        python.display()
    );
    let output = Command::new(&python)
        .arg(Path::new(ROOT).join("tests/deploy/check.py"))
        .arg(name)
        .env("SLUICE_BIN", env!("CARGO_BIN_EXE_sluice"))
        .output()
        .expect("python runs");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    println!("{said}");
    assert!(output.status.success(), "check.py {name} failed:\n{said}");
}

#[test]
fn the_chart_passes_helm_lint_strict_with_default_and_other_values() {
    check("lint");
}

#[test]
fn the_chart_renders_a_locked_down_controller_with_least_privilege() {
    check("template");
}

#[test]
fn the_renderings_and_manifests_are_valid_kubernetes_1_30_and_1_33() {
    check("validate");
}

#[test]
fn the_values_schema_refuses_bad_values_naming_them() {
    check("schema");
}

#[test]
fn the_manifests_crd_and_dashboards_are_what_the_chart_and_the_binary_make() {
    check("manifests");
}

#[test]
fn the_dockerfile_builds_the_release_binary_and_runs_it_as_non_root() {
    check("dockerfile");
}

#[test]
fn every_example_rollout_is_valid_against_the_crd() {
    check("examples");
}
