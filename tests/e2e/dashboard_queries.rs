//! The dashboards against real data: a canary release (promoted by a command, then a faulty one
//! rolled back) and a blue/green release run on the sandbox while the real Prometheus scrapes both
//! the sandbox (ingress-nginx's and the pods' metrics) and the controller; then every PromQL
//! expression of every panel in dashboards/, its template variables substituted as Grafana
//! would, is evaluated against that Prometheus. Each must answer without error and with data.
//!
//! Release detail shows one Rollout: its rows on the canary Ingress are evaluated for the canary
//! Rollout, its rows on the blue/green slots for the blue/green one, the rest for both.

use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use serde_json::{Value, json};
use sluice_strategies::status::{Phase, Stage};

use crate::api::{CI, tokens};
use crate::harness::{
    APP, ApiSetup, Env, INGRESS, NS, SERVICE, Setup, create, eventually, fast_deployment, fixture,
    promoted, secs, status,
};

const FINANCE: &str = "finance";
const FINANCE_SERVICE: &str = "finance-service";
/// The scrape interval is 1 s: Grafana's `$__rate_interval` would be 4 s; a little more is
/// steadier on a loaded machine.
const RATE_INTERVAL: &str = "10s";

/// The blue/green Rollout of finance.
fn finance_rollout() -> Value {
    json!({
        "spec": {
            "targetRef": {"name": FINANCE},
            "service": {"name": FINANCE_SERVICE, "port": 80, "targetPort": 8080},
            "strategy": {"canary": null, "blueGreen": {
                "previewDuration": "6s", "postSwitchDuration": "6s", "scaleDownDelay": "3s"}},
            "analysis": {
                "interval": "6s",
                "failureLimit": 1,
                "minRequests": 10,
                "metrics": [{"name": "app-error-rate", "max": 5}, {"name": "app-latency-p99", "max": 500}],
            },
        }
    })
}

/// One Rollout as the dashboards' variables name it.
struct Shown {
    rollout: &'static str,
    service: &'static str,
    metrics: &'static str,
}

const CANARY: Shown = Shown {
    rollout: APP,
    service: SERVICE,
    metrics: "error-rate|latency-p99",
};
const BLUE_GREEN: Shown = Shown {
    rollout: FINANCE,
    service: FINANCE_SERVICE,
    metrics: "app-error-rate|app-latency-p99",
};

/// The expression as Grafana sends it, for `shown` over a range of `range_seconds`.
fn substituted(expr: &str, shown: &Shown, range_seconds: i64) -> String {
    let all_rollouts = format!("{}|{}", CANARY.rollout, BLUE_GREEN.rollout);
    // A multi-value variable over one namespace: Grafana sends the regex of the chosen values.
    let rollout = if expr.contains("rollout=~") {
        all_rollouts.as_str()
    } else {
        shown.rollout
    };
    expr.replace("$__rate_interval", RATE_INTERVAL)
        .replace("$__range", &format!("{range_seconds}s"))
        .replace("$__interval", "2s")
        .replace("${rollout}", shown.rollout)
        .replace("$rollout", rollout)
        .replace("$namespace", NS)
        .replace("$service", shown.service)
        .replace("$ingress", INGRESS)
        .replace("$metric", shown.metrics)
}

/// Whether a Grafana variable (`$name`, `${name}`, `$__name`) is left; `$1` of label_replace is
/// PromQL's own.
fn has_variable(query: &str) -> bool {
    query
        .split('$')
        .skip(1)
        .any(|after| after.starts_with(|c: char| c.is_ascii_alphabetic() || c == '{' || c == '_'))
}

/// Which Rollouts a panel under `row` of `dashboard` is for.
fn shown_under(dashboard: &str, row: &str) -> Vec<&'static Shown> {
    if dashboard != "release-detail.json" {
        return vec![&CANARY];
    }
    if row.contains("canary Ingress") {
        vec![&CANARY]
    } else if row.contains("Blue/green") {
        vec![&BLUE_GREEN]
    } else {
        vec![&CANARY, &BLUE_GREEN]
    }
}

/// (where, expression, instant) of every query of a dashboard's panels and annotations.
fn queries(dashboard: &Value) -> Vec<(String, String, bool, String)> {
    let mut found = Vec::new();
    let mut row = String::new();
    for panel in dashboard["panels"].as_array().into_iter().flatten() {
        let title = panel["title"].as_str().unwrap_or_default().to_string();
        if panel["type"] == "row" {
            row = title;
            continue;
        }
        for target in panel["targets"].as_array().into_iter().flatten() {
            if let Some(expr) = target["expr"].as_str() {
                let instant = target["instant"] == json!(true);
                found.push((
                    format!("panel {title:?}"),
                    expr.to_string(),
                    instant,
                    row.clone(),
                ));
            }
        }
    }
    for annotation in dashboard["annotations"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if let Some(expr) = annotation["target"]["expr"].as_str() {
            let name = annotation["name"].as_str().unwrap_or_default();
            found.push((
                format!("annotation {name:?}"),
                expr.to_string(),
                false,
                String::new(),
            ));
        }
    }
    found
}

/// Prometheus's answer to `expr` over [`from`, `to`] (or at `to`, for an instant query): the
/// number of series with a finite value, or what went wrong.
async fn evaluate(
    prometheus: &str,
    expr: &str,
    instant: bool,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<usize, String> {
    let (path, mut form) = if instant {
        ("query", vec![("time", to.timestamp().to_string())])
    } else {
        (
            "query_range",
            vec![
                ("start", from.timestamp().to_string()),
                ("end", to.timestamp().to_string()),
                ("step", "2".to_string()),
            ],
        )
    };
    form.push(("query", expr.to_string()));
    let answer: Value = reqwest::Client::new()
        .post(format!("{prometheus}/api/v1/{path}"))
        .form(&form)
        .send()
        .await
        .map_err(|e| format!("no answer: {e}"))?
        .json()
        .await
        .map_err(|e| format!("not JSON: {e}"))?;
    if answer["status"] != "success" {
        return Err(format!("{}: {}", answer["errorType"], answer["error"]));
    }
    // A series of nothing but NaN (a quantile of no observations, 0/0) draws nothing: no data.
    let finite = |v: &Value| {
        v.as_str()
            .and_then(|s| s.parse::<f64>().ok())
            .is_some_and(f64::is_finite)
    };
    let drawn = |series: &&Value| {
        let values = series["values"].as_array().cloned().unwrap_or_default();
        let points = values.iter().chain(std::iter::once(&series["value"]));
        points.filter_map(|point| point.get(1)).any(finite)
    };
    let result = answer["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    Ok(result.iter().filter(drawn).count())
}

/// Reporting (canary, manual promotion) and finance (blue/green) taken over, the API serving.
async fn two_rollouts() -> (Env, String) {
    let mut env = Env::start(Setup::default()).await;
    create::<Deployment>(&env.client, NS, fast_deployment(FINANCE)).await;
    create::<Service>(&env.client, NS, fixture("Service", FINANCE_SERVICE)).await;
    env.wait_deployment_ready(FINANCE, 2).await;
    env.create_rollout(APP, json!({"spec": {"promotion": "manual"}}))
        .await;
    env.create_rollout(FINANCE, finance_rollout()).await;
    let base = env
        .start_controller_with_api(ApiSetup {
            tokens: Some(tokens()),
            rate: 200,
        })
        .await;
    env.wait_taken_over().await;
    env.wait_for_named(FINANCE, "finance taken over", secs(30), |r| {
        status(r).phase == Phase::Ready
    })
    .await;
    // Prometheus finds the controller through a file it watches: the releases start only once it
    // has scraped both Rollouts' command counters at 0 (a counter whose first sample is already 1
    // shows no increase), not merely the controller: a scrape between the controller's start and
    // its first sight of a Rollout has the one without the other.
    let prometheus = env.prometheus_url.clone();
    eventually(secs(30), "Prometheus scraping both Rollouts' counters at 0", || async {
        let now = Utc::now();
        let scraped = evaluate(
            &prometheus,
            &format!(r#"sluice_commands_total{{job="sluice",namespace="{NS}",verb="pause",source="api"}} == 0"#),
            true,
            now,
            now,
        )
        .await;
        (scraped == Ok(2)).then_some(())
    })
    .await;
    // The users of finance, and the preview's smoke traffic on its canary Service.
    env.send_to_service(FINANCE_SERVICE, 40).await;
    env.send_to_service(&format!("{FINANCE_SERVICE}-canary"), 10)
        .await;
    (env, base)
}

async fn command(base: &str, rollout: &str, verb: &str, body: Value) -> Value {
    let answer = reqwest::Client::new()
        .post(format!(
            "{base}/api/v1/namespaces/{NS}/rollouts/{rollout}/{verb}"
        ))
        .bearer_auth(CI)
        .json(&body)
        .send()
        .await
        .expect("the API answers");
    let code = answer.status().as_u16();
    let body: Value = answer.json().await.expect("a JSON answer");
    assert!(
        (200..300).contains(&code),
        "{verb} {rollout}: {code} {body}"
    );
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_query_has_data_after_canary_and_blue_green_releases() {
    let scenario = async {
        let started = Utc::now();
        let (env, base) = two_rollouts().await;

        // Both release at once; reporting waits at its last step for a person's promote.
        let image = |image: &str| json!({ "image": image });
        let reporting = command(&base, APP, "release", image("erp/reporting:1.1.0")).await;
        let v2 = reporting["revision"]
            .as_str()
            .expect("a revision")
            .to_string();
        let finance = command(&base, FINANCE, "release", image("erp/finance:1.1.0")).await;
        let f2 = finance["revision"]
            .as_str()
            .expect("a revision")
            .to_string();
        // Someone holds finance's preview a moment, then lets it go on.
        env.wait_for_named(FINANCE, "finance previewing", secs(30), |r| {
            status(r).stage == Some(Stage::Previewing)
        })
        .await;
        command(&base, FINANCE, "pause", json!({})).await;
        env.wait_for_named(FINANCE, "finance paused", secs(10), |r| status(r).paused)
            .await;
        command(&base, FINANCE, "resume", json!({})).await;
        env.wait_for("reporting awaiting promotion", secs(60), |r| {
            status(r).stage == Some(Stage::AwaitingPromotion)
        })
        .await;
        command(&base, APP, "promote", json!({})).await;
        env.wait_for("reporting promoted", secs(30), |r| promoted(r, &v2))
            .await;
        env.wait_for_named(FINANCE, "finance promoted", secs(60), |r| promoted(r, &f2))
            .await;
        // Then a faulty build of reporting, rolled back at its first failed check.
        command(&base, APP, "release", image("erp/reporting:1.2.0-errors")).await;
        env.wait_phase(Phase::RolledBack, secs(60)).await;
        // Two more scrapes, so that the end of the story is in Prometheus.
        tokio::time::sleep(Duration::from_secs(3)).await;

        let prometheus = env.prometheus_url.clone();
        let ended = Utc::now();
        let range_seconds = (ended - started).num_seconds() + 1;
        let mut problems = Vec::new();
        let mut evaluated = 0;
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("dashboards");
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .expect("dashboards/")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        assert_eq!(files.len(), 3, "{files:?}");
        for file in files {
            let name = file
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .to_string();
            let dashboard: Value =
                serde_json::from_str(&std::fs::read_to_string(&file).expect("readable"))
                    .expect("JSON");
            for (place, expr, instant, row) in queries(&dashboard) {
                for shown in shown_under(&name, &row) {
                    let query = substituted(&expr, shown, range_seconds);
                    assert!(
                        !has_variable(&query),
                        "{name} {place}: a variable left in {query}"
                    );
                    evaluated += 1;
                    match evaluate(&prometheus, &query, instant, started, ended).await {
                        Ok(0) => problems.push(format!(
                            "{name} {place} for {}: no data from {query}",
                            shown.rollout
                        )),
                        Ok(_) => {}
                        Err(err) => problems.push(format!(
                            "{name} {place} for {}: {err} from {query}",
                            shown.rollout
                        )),
                    }
                }
            }
        }
        println!("{evaluated} dashboard queries evaluated over {range_seconds}s");
        assert!(evaluated > 80, "only {evaluated} queries found");
        assert!(problems.is_empty(), "{}", problems.join("\n"));
        env.finish().await;
    };
    // Three releases back to back: more than one scenario's usual bound.
    crate::harness::bounded_by(Duration::from_secs(240), scenario).await;
}
