//! The real `sluice` binary against a small double of the API: canned answers for a few
//! Rollouts in namespace `shop`, every request recorded, one scripted event stream per Rollout.
//! It checks the client, not the server.
//!
//! | Rollout  | detail                 | event stream                                        |
//! |----------|------------------------|-----------------------------------------------------|
//! | web      | step 2/4 of `cand`     | steps 1 and 2, another revision, Succeeded          |
//! | bad      | the same               | step 1, RolledBack                                  |
//! | slow     | the same               | step 1, then keep-alives for ever                   |
//! | flaky    | the same               | step 1, cut mid-event; on reconnection: Succeeded   |
//! | missing  | 404 not_found          |                                                     |

use std::convert::Infallible;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::SinkExt;
use serde_json::{Value, json};

/// One request as the double saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: &'static str,
    path: String,
    query: Option<String>,
    headers: HeaderMap,
    body: String,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }
}

#[derive(Clone, Default)]
struct Api {
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Api {
    fn record(
        &self,
        method: &'static str,
        path: String,
        query: Option<String>,
        headers: &HeaderMap,
        body: &str,
    ) {
        self.seen.lock().unwrap().push(Seen {
            method,
            path,
            query,
            headers: headers.clone(),
            body: body.to_string(),
        });
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn seen_at(&self, method: &str, path: &str) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|seen| seen.method == method && seen.path == path)
            .collect()
    }
}

/// Starts the double on 127.0.0.1, port 0, on a thread of its own; returns its URL.
fn start() -> (String, Api) {
    let api = Api::default();
    let app = Router::new()
        .route("/api/v1/rollouts", get(list))
        .route("/api/v1/namespaces/{ns}/rollouts/{name}", get(detail))
        .route(
            "/api/v1/namespaces/{ns}/rollouts/{name}/events",
            get(events),
        )
        .route(
            "/api/v1/namespaces/{ns}/rollouts/{name}/{action}",
            post(action),
        )
        .with_state(api.clone());
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            sender.send(listener.local_addr().unwrap()).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    let address = receiver.recv_timeout(Duration::from_secs(10)).unwrap();
    (format!("http://{address}"), api)
}

fn summary(name: &str) -> Value {
    json!({
        "namespace": "shop",
        "name": name,
        "strategy": "canary",
        "phase": "Progressing",
        "step": 2,
        "stepCount": 4,
        "weight": 50,
        "stableSlot": "blue",
        "candidateSlot": "green",
        "stableRevision": "stab",
        "candidateRevision": "cand",
        "targetRevision": "cand",
        "paused": false,
        "message": "step 2/4: 50% to green"
    })
}

fn checks(error_rate: f64) -> Value {
    json!([
        {"metric": "error-rate", "value": error_rate, "bound": "<= 1%",
         "verdict": if error_rate <= 1.0 { "pass" } else { "fail" }},
        {"metric": "latency-p99", "value": 57.0, "bound": "<= 500ms", "verdict": "pass"}
    ])
}

fn detail_of(name: &str) -> Value {
    let mut detail = summary(name);
    let extra = json!({
        "stableImages": {"web": "shop/web:1.1"},
        "candidateImages": {"web": "shop/web:1.2"},
        "analysis": checks(0.2),
        "conditions": [{"type": "Ready", "status": "True", "reason": "Progressing",
                        "message": "releasing cand"}],
        "history": [{"seq": 10, "release": 1, "time": "2026-12-01T11:00:00Z",
                     "phase": "Succeeded", "revision": "stab", "checks": []}],
        // A field this CLI does not know: `-o json` must keep it.
        "futureField": {"kept": true}
    });
    for (key, value) in extra.as_object().unwrap() {
        detail[key] = value.clone();
    }
    detail
}

/// A transition of release 2 as an event of the stream.
fn event(seq: u64, revision: &str, phase: &str, step: Option<u32>, error_rate: f64) -> String {
    let mut data = json!({
        "seq": seq, "release": 2, "time": format!("2026-12-01T12:00:{seq:02}Z"),
        "phase": phase, "revision": revision, "checks": []
    });
    if let Some(step) = step {
        data["step"] = json!(step);
        data["weight"] = json!(step * 25);
        data["checks"] = checks(error_rate);
    } else {
        data["message"] = json!(format!("{phase}: {revision}"));
    }
    format!("event: transition\nid: {seq}\ndata: {data}\n\n")
}

async fn list(State(api): State<Api>, RawQuery(query): RawQuery, headers: HeaderMap) -> Response {
    api.record("GET", "/api/v1/rollouts".to_string(), query, &headers, "");
    let mut other = summary("ledger");
    other["phase"] = json!("Ready");
    for absent in [
        "step",
        "weight",
        "candidateSlot",
        "candidateRevision",
        "message",
    ] {
        other.as_object_mut().unwrap().remove(absent);
    }
    axum::Json(json!({"items": [summary("web"), other]})).into_response()
}

async fn detail(
    State(api): State<Api>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let path = format!("/api/v1/namespaces/{ns}/rollouts/{name}");
    api.record("GET", path, None, &headers, "");
    if name == "missing" {
        let body = json!({"error": {"code": "not_found",
                                    "message": format!("rollout {ns}/{name} not found")}});
        return (StatusCode::NOT_FOUND, axum::Json(body)).into_response();
    }
    axum::Json(detail_of(&name)).into_response()
}

async fn action(
    State(api): State<Api>,
    Path((ns, name, action)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let path = format!("/api/v1/namespaces/{ns}/rollouts/{name}/{action}");
    api.record("POST", path, None, &headers, &body);
    let request: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let answer = if action == "release" {
        let images = match &request["image"] {
            Value::String(image) => json!({"web": image}),
            _ => request["images"].clone(),
        };
        json!({"revision": "cand", "changed": true, "images": images})
    } else {
        let command = if action == "promote" && request["full"] == json!(true) {
            "promote-full".to_string()
        } else {
            action
        };
        let id = headers
            .get("idempotency-key")
            .and_then(|key| key.to_str().ok())
            .unwrap_or("derived");
        json!({"command": command, "id": id, "duplicate": id == "seen-before"})
    };
    (StatusCode::ACCEPTED, axum::Json(answer)).into_response()
}

async fn events(
    State(api): State<Api>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let path = format!("/api/v1/namespaces/{ns}/rollouts/{name}/events");
    api.record("GET", path.clone(), None, &headers, "");
    let connection = api.seen_at("GET", &path).len();
    let (script, keep_open): (Vec<String>, bool) = match (name.as_str(), connection) {
        ("web", _) => (
            vec![
                ": connected\n\n".to_string(),
                event(11, "cand", "Progressing", Some(1), 0.2),
                event(12, "other", "Progressing", Some(1), 0.2),
                event(13, "cand", "Progressing", Some(2), 0.2),
                event(14, "cand", "Succeeded", None, 0.0),
            ],
            true,
        ),
        ("bad", _) => (
            vec![
                event(11, "cand", "Progressing", Some(1), 0.2),
                event(12, "cand", "RolledBack", None, 0.0),
            ],
            true,
        ),
        ("slow", _) => (vec![event(11, "cand", "Progressing", Some(1), 0.2)], true),
        ("flaky", 1) => {
            let cut = event(22, "cand", "Progressing", Some(2), 0.2);
            (
                vec![
                    event(21, "cand", "Progressing", Some(1), 0.2),
                    cut[..cut.len() / 2].to_string(),
                ],
                false,
            )
        }
        ("flaky", _) => (
            vec![
                event(22, "cand", "Progressing", Some(2), 0.2),
                event(23, "cand", "Succeeded", None, 0.0),
            ],
            true,
        ),
        _ => (Vec::new(), false),
    };
    let (mut sender, receiver) = futures::channel::mpsc::channel::<Result<Bytes, Infallible>>(4);
    tokio::spawn(async move {
        for chunk in script {
            if sender.send(Ok(Bytes::from(chunk))).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        if !keep_open {
            return;
        }
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if sender
                .send(Ok(Bytes::from(": keep-alive\n\n")))
                .await
                .is_err()
            {
                return;
            }
        }
    });
    (
        [(header::CONTENT_TYPE, "text/event-stream")],
        Body::from_stream(receiver),
    )
        .into_response()
}

/// Runs the binary with `args` against `server`; kills it after 30 s.
fn sluice(server: &str, args: &[&str]) -> Output {
    run(Command::new(env!("CARGO_BIN_EXE_sluice")), server, args)
}

fn run(mut command: Command, server: &str, args: &[&str]) -> Output {
    // The runner's own RUST_LOG would add lines to stderr; a test sets its own.
    if !command.get_envs().any(|(name, _)| name == "RUST_LOG") {
        command.env_remove("RUST_LOG");
    }
    let mut child = command
        .args(args)
        .env("SLUICE_SERVER", server)
        .env_remove("SLUICE_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("sluice {args:?} did not end within 30 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

fn code(output: &Output) -> i32 {
    output.status.code().expect("exited, not killed")
}

#[test]
fn get_prints_the_list_as_a_table_with_the_token_sent_but_never_shown() {
    let (server, api) = start();
    let output = sluice(&server, &["get", "-n", "shop", "--token", "s3cret"]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let expected = "\
NAMESPACE   NAME     STRATEGY   PHASE         STEP   WEIGHT   STABLE   CANDIDATE   MESSAGE
shop        web      canary     Progressing   2/4    50%      stab     cand        step 2/4: 50% to green
shop        ledger   canary     Ready         -      -        stab     -           -
";
    assert_eq!(stdout(&output), expected);
    let seen = api.seen_at("GET", "/api/v1/rollouts");
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].query.as_deref(), Some("namespace=shop"));
    assert_eq!(seen[0].header("authorization"), Some("Bearer s3cret"));
    assert!(!stdout(&output).contains("s3cret") && !stderr(&output).contains("s3cret"));
}

#[test]
fn get_one_prints_the_detail_or_the_apis_json() {
    let (server, _api) = start();
    let output = sluice(&server, &["get", "shop/web"]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let text = stdout(&output);
    assert!(text.starts_with("Name:        shop/web\n"), "{text}");
    assert!(
        text.contains("\n  error-rate    0.2     <= 1%      pass\n"),
        "{text}"
    );

    let output = sluice(&server, &["get", "shop/web", "-o", "json"]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let printed: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(
        printed,
        detail_of("web"),
        "the API's JSON, unknown fields included"
    );
    assert!(
        stdout(&output).contains("\n  \"name\": \"web\""),
        "pretty-printed"
    );

    let output = sluice(&server, &["get", "shop/web", "-o", "yaml"]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert!(
        stdout(&output).contains("targetRevision: cand"),
        "{}",
        stdout(&output)
    );
}

#[test]
fn release_sends_image_or_images() {
    let (server, api) = start();
    let output = sluice(
        &server,
        &[
            "release",
            "shop/web",
            "--image",
            "web=shop/web:1.2",
            "--image",
            "proxy=envoy:1.30",
        ],
    );
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        "shop/web: releasing revision cand (images proxy=envoy:1.30, web=shop/web:1.2)\n"
    );
    let output = sluice(
        &server,
        &[
            "release",
            "shop/web",
            "--image",
            "registry:5000/shop/web:1.3",
        ],
    );
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let bodies: Vec<Value> = api
        .seen_at("POST", "/api/v1/namespaces/shop/rollouts/web/release")
        .iter()
        .map(|seen| serde_json::from_str(&seen.body).unwrap())
        .collect();
    assert_eq!(
        bodies,
        [
            json!({"images": {"web": "shop/web:1.2", "proxy": "envoy:1.30"}}),
            json!({"image": "registry:5000/shop/web:1.3"}),
        ]
    );
}

#[test]
fn release_refuses_mixed_image_forms_before_sending() {
    let (server, api) = start();
    let output = sluice(
        &server,
        &[
            "release",
            "shop/web",
            "--image",
            "shop/web:1.2",
            "--image",
            "proxy=envoy:1.30",
        ],
    );
    assert_eq!(code(&output), 2);
    assert!(
        stderr(&output).contains("names no container"),
        "{}",
        stderr(&output)
    );
    assert!(api.seen().is_empty());
}

#[test]
fn promote_full_sends_its_body_and_an_idempotency_key() {
    let (server, api) = start();
    let output = sluice(&server, &["promote", "shop/web", "--full"]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let output_again = sluice(
        &server,
        &["promote", "shop/web", "--idempotency-key", "seen-before"],
    );
    assert_eq!(code(&output_again), 0, "{}", stderr(&output_again));
    let seen = api.seen_at("POST", "/api/v1/namespaces/shop/rollouts/web/promote");
    assert_eq!(seen.len(), 2);
    let body: Value = serde_json::from_str(&seen[0].body).unwrap();
    assert_eq!(body, json!({"full": true}));
    let key = seen[0]
        .header("idempotency-key")
        .expect("an Idempotency-Key");
    assert_eq!(key.len(), 32, "{key}");
    assert_eq!(
        stdout(&output),
        format!("shop/web: promote-full accepted (id {key})\n")
    );
    let body: Value = serde_json::from_str(&seen[1].body).unwrap();
    assert_eq!(body, json!({"full": false}));
    assert_eq!(seen[1].header("idempotency-key"), Some("seen-before"));
    assert_eq!(
        stdout(&output_again),
        "shop/web: promote accepted (id seen-before) (duplicate: not applied again)\n"
    );
}

#[test]
fn abort_pause_resume_retry_send_their_bodies() {
    let (server, api) = start();
    for args in [
        &["abort", "shop/web", "--reason", "bad build"][..],
        &["pause", "shop/web"],
        &["resume", "shop/web"],
        &["retry", "shop/web"],
    ] {
        let output = sluice(&server, args);
        assert_eq!(code(&output), 0, "{args:?}: {}", stderr(&output));
        assert!(stdout(&output).starts_with(&format!("shop/web: {} accepted", args[0])));
    }
    let bodies: Vec<(String, Value)> = api
        .seen()
        .into_iter()
        .map(|seen| (seen.path, serde_json::from_str(&seen.body).unwrap()))
        .collect();
    let base = "/api/v1/namespaces/shop/rollouts/web";
    assert_eq!(
        bodies,
        [
            (format!("{base}/abort"), json!({"reason": "bad build"})),
            (format!("{base}/pause"), json!({})),
            (format!("{base}/resume"), json!({})),
            (format!("{base}/retry"), json!({})),
        ]
    );
}

#[test]
fn an_error_answer_exits_3_with_its_message() {
    let (server, _api) = start();
    let output = sluice(&server, &["get", "shop/missing"]);
    assert_eq!(code(&output), 3);
    assert_eq!(
        stderr(&output),
        "error: rollout shop/missing not found (not_found, HTTP 404)\n"
    );
    assert_eq!(stdout(&output), "");
}

#[test]
fn with_log_format_json_the_cli_logs_json_lines_and_its_error_is_one_of_them() {
    let (server, _api) = start();
    let mut command = Command::new(env!("CARGO_BIN_EXE_sluice"));
    command.env("RUST_LOG", "sluice=debug");
    let output = run(
        command,
        &server,
        &["--log-format", "json", "get", "shop/missing"],
    );
    assert_eq!(code(&output), 3);
    assert_eq!(stdout(&output), "");
    let lines: Vec<Value> = stderr(&output)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("a JSON line: {line}")))
        .collect();
    let request = lines
        .iter()
        .find(|l| l["fields"]["message"] == "API request")
        .expect("the request is logged at debug");
    assert_eq!(request["level"], "DEBUG");
    assert_eq!(request["fields"]["method"], "GET");
    let failed = lines.last().expect("a line");
    assert_eq!(failed["level"], "ERROR");
    assert_eq!(failed["fields"]["exit_code"], 3);
    assert_eq!(
        failed["fields"]["error"],
        "rollout shop/missing not found (not_found, HTTP 404)"
    );
    // Without RUST_LOG only the error is logged.
    let output = sluice(&server, &["--log-format", "json", "get", "shop/missing"]);
    assert_eq!(stderr(&output).lines().count(), 1, "{}", stderr(&output));
}

#[test]
fn an_unreachable_server_exits_4() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let server = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let output = sluice(&server, &["get"]);
    assert_eq!(code(&output), 4);
    assert!(
        stderr(&output).starts_with(&format!("error: cannot connect to {server}")),
        "{}",
        stderr(&output)
    );
}

#[test]
fn watch_a_promotion_exits_0_with_one_line_per_transition() {
    let (server, api) = start();
    let output = sluice(&server, &["watch", "shop/web", "--timeout", "20s"]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let expected = "\
shop/web: following revision cand (stable stab, phase Progressing)
12:00:11  Progressing  step 1/4  weight 25%  error-rate 0.2 (bound <= 1%): pass, latency-p99 57 (bound <= 500ms): pass
12:00:13  Progressing  step 2/4  weight 50%  error-rate 0.2 (bound <= 1%): pass, latency-p99 57 (bound <= 500ms): pass
12:00:14  Succeeded    Succeeded: cand
shop/web: revision cand is stable
";
    assert_eq!(stdout(&output), expected);
    let events = api.seen_at("GET", "/api/v1/namespaces/shop/rollouts/web/events");
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0].header("last-event-id"),
        Some("10"),
        "resumed after the history"
    );
    assert_eq!(events[0].header("accept"), Some("text/event-stream"));
    // Read once at the start, then again at each of the three transitions followed.
    assert_eq!(
        api.seen_at("GET", "/api/v1/namespaces/shop/rollouts/web")
            .len(),
        4
    );
}

#[test]
fn watch_a_rollback_exits_1() {
    let (server, _api) = start();
    let output = sluice(&server, &["watch", "shop/bad"]);
    assert_eq!(code(&output), 1, "{}", stderr(&output));
    let text = stdout(&output);
    assert!(
        text.contains("\n12:00:12  RolledBack   RolledBack: cand\n"),
        "{text}"
    );
    assert!(
        text.lines()
            .last()
            .is_some_and(|line| line.starts_with("shop/bad: revision cand was rolled back")),
        "{text}"
    );
}

#[test]
fn watch_a_release_that_never_ends_times_out_with_exit_2() {
    let (server, _api) = start();
    let started = Instant::now();
    let output = sluice(&server, &["watch", "shop/slow", "--timeout", "2s"]);
    assert_eq!(code(&output), 2, "{}", stderr(&output));
    assert!(started.elapsed() >= Duration::from_secs(2));
    // A generous bound: it says the timeout ended the watch, not how fast.
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(
        stdout(&output).contains("shop/slow: timed out after 2s waiting for revision cand"),
        "{}",
        stdout(&output)
    );
}

#[test]
fn watch_resumes_a_cut_stream_with_last_event_id() {
    let (server, api) = start();
    let output = sluice(&server, &["watch", "shop/flaky", "--timeout", "20s"]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let events = api.seen_at("GET", "/api/v1/namespaces/shop/rollouts/flaky/events");
    let resumed: Vec<Option<&str>> = events
        .iter()
        .map(|seen| seen.header("last-event-id"))
        .collect();
    assert_eq!(
        resumed,
        [Some("10"), Some("21")],
        "the cut event 22 is not counted as seen"
    );
    let text = stdout(&output);
    let steps: Vec<&str> = text
        .lines()
        .filter(|line| line.starts_with("12:00:"))
        .collect();
    assert_eq!(
        steps.len(),
        3,
        "steps 1 and 2 and the end, each once: {text}"
    );
    assert!(
        stderr(&output).contains("reconnecting"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn the_binary_works_as_a_kubectl_plugin() {
    let (server, api) = start();
    let dir = std::env::temp_dir().join(format!("sluice-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let plugin = dir.join("kubectl-sluice");
    let _ = std::fs::remove_file(&plugin);
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_sluice"), &plugin).unwrap();
    let output = run(Command::new(&plugin), &server, &["get"]);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert!(
        stdout(&output).starts_with("NAMESPACE   NAME"),
        "{}",
        stdout(&output)
    );
    assert_eq!(api.seen_at("GET", "/api/v1/rollouts").len(), 1);
}
