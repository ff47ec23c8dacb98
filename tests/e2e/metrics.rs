//! sluice's own metrics after real releases: the exposition passes `promtool check metrics`, says
//! where each Rollout is and what its releases did, and forgets a deleted Rollout.

use serde_json::json;

use crate::harness::{APP, Env, NS, Setup, bounded, promoted, secs};

/// The exposition as a scraper asking for `accept` gets it, and its content type.
async fn scrape_as(env: &Env, accept: &str) -> (String, String) {
    let probes = env.probes.expect("the controller serves its probes");
    let response = reqwest::Client::new()
        .get(format!("http://{probes}/metrics"))
        .header("accept", accept)
        .send()
        .await
        .expect("/metrics answers");
    assert_eq!(response.status().as_u16(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap_or_default()
        .to_string();
    (content_type, response.text().await.expect("the exposition"))
}

/// The exposition as `curl` gets it: the Prometheus text format.
pub async fn scrape(env: &Env) -> String {
    let (content_type, text) = scrape_as(env, "*/*").await;
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    text
}

fn promtool_check(text: String) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool runs (Debian's prometheus package, installed by scripts/ensure-deps)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("the exposition is sent");
    let output = child.wait_with_output().expect("promtool ends");
    let said = String::from_utf8_lossy(&output.stdout).to_string()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "promtool check metrics: {said}");
    said
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metrics_of_a_release_pass_promtool_and_go_with_their_rollout() {
    bounded(async {
        let (env, _) = Env::taken_over(Setup::default(), json!({})).await;
        env.set_image("erp/reporting:1.1.0").await;
        let v2 = env.target_revision().await;
        env.wait_for("promoted", secs(60), |r| promoted(r, &v2)).await;
        let text = scrape(&env).await;
        let lint = promtool_check(text.clone());
        // What Prometheus asks for, it gets: OpenMetrics, the same samples.
        let (content_type, openmetrics) = scrape_as(
            &env,
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
        )
        .await;
        assert!(content_type.starts_with("application/openmetrics-text"), "{content_type}");
        assert!(openmetrics.ends_with("# EOF\n"));
        println!("promtool: {lint}");
        let of_reporting = format!("namespace=\"{NS}\",rollout=\"{APP}\"");
        for expected in [
            format!("sluice_rollout_phase{{{of_reporting},phase=\"Succeeded\"}} 1"),
            format!("sluice_rollout_phase{{{of_reporting},phase=\"Progressing\"}} 0"),
            format!("sluice_rollout_steps{{{of_reporting}}} 2"),
            format!("sluice_releases_total{{{of_reporting},outcome=\"promoted\"}} 1"),
            format!("sluice_release_duration_seconds_count{{namespace=\"{NS}\",outcome=\"promoted\"}} 1"),
            format!("sluice_rollout_last_release_duration_seconds{{{of_reporting}}} "),
            format!("sluice_analysis_max{{{of_reporting},metric=\"error-rate\"}} 5"),
        ] {
            assert!(text.contains(&expected), "{expected} in:\n{text}");
        }
        assert!(
            text.contains(&format!("sluice_analysis_checks_total{{{of_reporting},metric=\"error-rate\",verdict=\"pass\"}}")),
            "passing checks counted:\n{text}"
        );
        assert!(text.contains(&format!("stable_revision=\"{v2}\"")), "the info metric");
        assert!(text.contains("sluice_reconcile_duration_seconds_count"));
        assert!(text.contains("sluice_prometheus_query_duration_seconds_count"));
        // The kube client's requests, by the API server's verbs; the watches' wakes; the process.
        for expected in [
            // Created (201): a slot that exists and holds what sluice applies is not applied again.
            "sluice_kubernetes_requests_total{verb=\"apply\",resource=\"deployments\",code=\"201\"}",
            "sluice_kubernetes_requests_total{verb=\"watch\",resource=\"rollouts\",code=\"200\"}",
            "sluice_kubernetes_requests_total{verb=\"list\",resource=\"ingresses\",code=\"200\"}",
            "sluice_work_queue_wakes_total{kind=\"Deployment\"}",
            "sluice_reconciles_in_flight ",
            "process_resident_memory_bytes ",
            "process_cpu_seconds_total ",
        ] {
            assert!(text.contains(expected), "{expected} in:\n{text}");
        }

        env.delete_rollout().await;
        let gone = scrape(&env).await;
        let left: Vec<&str> = gone.lines().filter(|l| l.contains(&format!("rollout=\"{APP}\""))).collect();
        assert!(left.is_empty(), "a deleted Rollout leaves no series: {left:?}");
        env.finish().await;
    })
    .await;
}
