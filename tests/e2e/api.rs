//! The HTTP API against the real controller on the sandbox: CI releases and follows a release
//! through the event stream, people promote, pause, resume, abort and retry, and every refusal
//! (401, 403, 404, 409, 413, 415, 422, 429) leaves the cluster as it was.

use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};
use sluice::api::token_hash;
use sluice_strategies::status::Phase;

use crate::harness::{APP, ApiSetup, Env, NS, Setup, bounded, promoted, secs, status};

const V2: &str = "erp/reporting:1.1.0";
const CANDIDATE: &str = "reporting-green";
pub const CI: &str = "ci-token-erp";
pub const READER: &str = "reader-token";
const SHOP: &str = "shop-token";
const FLOOD: &str = "flood-token";

pub fn tokens() -> String {
    let all = "[read, release, promote, abort, pause, resume, retry]";
    let entry = |name: &str, token: &str, namespaces: &str, actions: &str| {
        format!(
            "  - name: {name}\n    sha256: {}\n    namespaces: {namespaces}\n    actions: {actions}\n",
            token_hash(token)
        )
    };
    [
        "tokens:\n".to_string(),
        entry("ci", CI, "[erp-system]", all),
        entry("reader", READER, "[\"*\"]", "[read]"),
        entry("shop", SHOP, "[shop]", all),
        entry("flood", FLOOD, "[\"*\"]", "[read]"),
    ]
    .concat()
}

/// A client of the API under test.
pub struct Client {
    base: String,
    http: reqwest::Client,
}

impl Client {
    fn new(base: String) -> Client {
        Client {
            base,
            http: reqwest::Client::new(),
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    fn rollout_path(action: &str) -> String {
        let base = format!("/api/v1/namespaces/{NS}/rollouts/{APP}");
        if action.is_empty() {
            base
        } else {
            format!("{base}/{action}")
        }
    }

    /// (status, JSON body) of one request.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the API answers");
        let code = response.status().as_u16();
        let text = response.text().await.expect("a body");
        (
            code,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn post(&self, action: &str, token: &str, body: Value) -> (u16, Value) {
        self.call(
            reqwest::Method::POST,
            &Self::rollout_path(action),
            Some(token),
            Some(body),
        )
        .await
    }

    async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, Some(token), None)
            .await
    }

    /// Reads the event stream until `done` says so; (id, data) of every `transition` event.
    async fn events_until(
        &self,
        last_event_id: Option<u64>,
        limit: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Vec<(u64, Value)> {
        let mut request = self
            .http
            .get(format!("{}{}", self.base, Self::rollout_path("events")))
            .bearer_auth(CI);
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id.to_string());
        }
        let response = request.send().await.expect("the stream opens");
        assert_eq!(response.status().as_u16(), 200);
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap_or_default()
            .to_string();
        assert!(
            content_type.starts_with("text/event-stream"),
            "{content_type}"
        );
        let mut stream = response.bytes_stream();
        let mut buffer = String::new();
        let mut events = Vec::new();
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let chunk = tokio::time::timeout_at(deadline, stream.next())
                .await
                .unwrap_or_else(|_| {
                    panic!("the stream ended as expected within {limit:?}: {events:?}")
                });
            let Some(Ok(chunk)) = chunk else {
                panic!("the stream closed early: {events:?}");
            };
            buffer.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buffer.find("\n\n") {
                let block: String = buffer.drain(..end + 2).collect();
                let field = |name: &str| {
                    block.lines().find_map(|l| {
                        l.strip_prefix(&format!("{name}:"))
                            .map(|v| v.trim().to_string())
                    })
                };
                if field("event").as_deref() != Some("transition") {
                    continue;
                }
                let id: u64 = field("id").and_then(|i| i.parse().ok()).expect("an id");
                let data: Value =
                    serde_json::from_str(&field("data").expect("data")).expect("JSON");
                let finished = done(&data);
                events.push((id, data));
                if finished {
                    return events;
                }
            }
        }
    }
}

pub async fn env_with_api(overrides: Value) -> (Env, Client, String) {
    env_with_api_at(overrides, 200).await
}

/// The same with `rate` requests per second per token (a burst of twice as many).
async fn env_with_api_at(overrides: Value, rate: u32) -> (Env, Client, String) {
    let mut env = Env::start(Setup::default()).await;
    env.create_rollout(APP, overrides).await;
    let base = env
        .start_controller_with_api(ApiSetup {
            tokens: Some(tokens()),
            rate,
        })
        .await;
    let stable = env.wait_taken_over().await;
    (env, Client::new(base), stable)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_its_rate_limit_a_token_gets_429_with_retry_after_and_others_do_not() {
    bounded(async {
        // One request a second, a burst of two: the third of three quick ones is refused
        // (unless each took a second, which the bound on the test would show first).
        let (env, api, _) = env_with_api_at(json!({}), 1).await;
        let mut answers = Vec::new();
        for _ in 0..3 {
            let answer = api
                .http
                .get(format!("{}/api/v1/rollouts", api.base))
                .bearer_auth(FLOOD)
                .send()
                .await
                .expect("an answer");
            answers.push((
                answer.status().as_u16(),
                answer.headers().get("retry-after").cloned(),
            ));
        }
        let (code, retry_after) = answers.last().cloned().expect("three answers");
        assert_eq!(code, 429, "{answers:?}");
        assert_eq!(
            retry_after.as_ref().and_then(|v| v.to_str().ok()),
            Some("1")
        );
        assert_eq!(
            api.get(&Client::rollout_path(""), CI).await.0,
            200,
            "per token"
        );
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert_eq!(api.get("/api/v1/rollouts", FLOOD).await.0, 200, "refilled");
        env.finish().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ci_releases_through_the_api_and_follows_every_transition_in_order() {
    bounded(async {
        let (env, api, v1) = env_with_api(json!({})).await;
        let (code, same) = api
            .post("release", CI, json!({"image": "erp/reporting:1.0.0"}))
            .await;
        assert_eq!(
            (code, &same["changed"]),
            (200, &json!(false)),
            "the stable image: {same}"
        );
        assert_eq!(same["revision"], json!(v1));

        let (code, accepted) = api.post("release", CI, json!({"image": V2})).await;
        assert_eq!(code, 202, "{accepted}");
        assert_eq!(accepted["changed"], json!(true));
        let v2 = accepted["revision"]
            .as_str()
            .expect("a revision")
            .to_string();
        assert_eq!(
            env.target_revision().await,
            v2,
            "the revision the API announced"
        );
        let (code, again) = api.post("release", CI, json!({"image": V2})).await;
        assert_eq!(
            (code, &again["changed"]),
            (202, &json!(false)),
            "in flight: {again}"
        );
        let (code, stable) = api
            .post("release", CI, json!({"image": "erp/reporting:1.0.0"}))
            .await;
        assert_eq!((code, &stable["changed"]), (200, &json!(false)), "{stable}");
        assert_eq!(
            env.target_revision().await,
            v2,
            "the release in flight goes on"
        );

        let is_end = |t: &Value| t["revision"] == json!(v2) && t["phase"] == "Succeeded";
        let events = api.events_until(None, secs(60), is_end).await;
        let done = env.rollout().await;
        assert!(promoted(&done, &v2), "{:?}", status(&done).message);

        let ids: Vec<u64> = events.iter().map(|(id, _)| *id).collect();
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "ids only grow: {ids:?}"
        );
        let of_v2: Vec<&Value> = events
            .iter()
            .map(|(_, t)| t)
            .filter(|t| t["revision"] == json!(v2))
            .collect();
        let weights: Vec<Value> =
            of_v2
                .iter()
                .map(|t| t["weight"].clone())
                .fold(Vec::new(), |mut seen, w| {
                    if seen.last() != Some(&w) {
                        seen.push(w);
                    }
                    seen
                });
        assert_eq!(
            weights,
            [json!(0), json!(20), json!(50), json!(0)],
            "each step, in order"
        );
        assert!(
            of_v2.iter().any(|t| t["checks"]
                .as_array()
                .is_some_and(|c| c.iter().any(|c| c["verdict"] == "pass"))),
            "the checks are streamed: {of_v2:?}"
        );
        // The detail holds the same history.
        let (_, detail) = api.get(&Client::rollout_path(""), CI).await;
        let history: Vec<u64> = detail["history"]
            .as_array()
            .expect("a history")
            .iter()
            .filter_map(|t| t["seq"].as_u64())
            .collect();
        assert!(
            ids.iter().all(|id| history.contains(id)),
            "{ids:?} in {history:?}"
        );
        assert_eq!(detail["stableImages"][APP], json!(V2));

        // Resumed after the third event, the stream delivers exactly the rest.
        let (third, _) = events[2];
        let resumed = api.events_until(Some(third), secs(10), is_end).await;
        assert_eq!(resumed, events[3..].to_vec());

        let (code, stable) = api.post("release", CI, json!({"image": V2})).await;
        assert_eq!((code, &stable["changed"]), (200, &json!(false)), "{stable}");
        env.finish().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_pause_resume_and_promote_a_manual_release_through_the_api() {
    bounded(async {
        let (env, api, _) = env_with_api(json!({"spec": {"promotion": "manual"}})).await;
        let (code, answer) = api.post("promote", CI, json!({})).await;
        assert_eq!(
            (code, &answer["error"]["code"]),
            (409, &json!("not_applicable")),
            "{answer}"
        );

        let (_, accepted) = api.post("release", CI, json!({"image": V2})).await;
        let v2 = accepted["revision"]
            .as_str()
            .expect("a revision")
            .to_string();
        env.wait_for("step 1", secs(30), |r| status(r).step == Some(1))
            .await;
        let (code, paused) = api.post("pause", CI, json!({})).await;
        assert_eq!(code, 202, "{paused}");
        let (code, twice) = api.post("pause", CI, json!({})).await;
        assert_eq!(
            (code, &twice["duplicate"]),
            (202, &json!(true)),
            "the same pause: {twice}"
        );
        env.wait_for("paused", secs(10), |r| status(r).paused).await;
        // Held well past its step interval (6s) with passing checks.
        tokio::time::sleep(secs(14)).await;
        let held = status(&env.rollout().await);
        assert_eq!(
            (held.step, held.phase),
            (Some(1), Phase::Paused),
            "{:?}",
            held.message
        );

        let (code, resumed) = api.post("resume", CI, json!({})).await;
        assert_eq!(code, 202, "{resumed}");
        env.wait_for("awaiting promotion", secs(40), |r| {
            status(r).stage == Some(sluice_strategies::status::Stage::AwaitingPromotion)
        })
        .await;
        let (code, promote) = api.post("promote", CI, json!({"full": true})).await;
        assert_eq!(
            (code, &promote["command"]),
            (202, &json!("promote-full")),
            "{promote}"
        );
        let done = env
            .wait_for("promoted", secs(40), |r| promoted(r, &v2))
            .await;
        assert_eq!(status(&done).stable_revision.as_deref(), Some(v2.as_str()));
        let applied: Vec<String> = env
            .history()
            .statuses(APP)
            .into_iter()
            .filter_map(|(_, s)| s.last_command)
            .fold(Vec::new(), |mut seen, c| {
                if seen.last() != Some(&c) {
                    seen.push(c);
                }
                seen
            });
        let verbs: Vec<&str> = applied
            .iter()
            .map(|c| c.split('@').next().unwrap_or_default())
            .collect();
        assert_eq!(
            verbs,
            ["pause", "resume", "promote-full"],
            "each applied once: {applied:?}"
        );
        env.finish().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abort_through_the_api_takes_traffic_off_first_and_retry_releases_again() {
    bounded(async {
        let (env, api, v1) = env_with_api(json!({})).await;
        let (_, accepted) = api.post("release", CI, json!({"image": V2})).await;
        let v2 = accepted["revision"]
            .as_str()
            .expect("a revision")
            .to_string();
        let since = env
            .history()
            .canary_weights()
            .last()
            .map(|(rv, _)| *rv)
            .unwrap_or_default();
        env.wait_canary_weight("20").await;
        let (code, abort) = api
            .post("abort", CI, json!({"reason": "paging on the reports p99"}))
            .await;
        assert_eq!(code, 202, "{abort}");
        let done = env.wait_phase(Phase::RolledBack, secs(30)).await;
        let s = status(&done);
        assert_eq!(s.stable_revision.as_deref(), Some(v1.as_str()));
        let reason = s.rollback_reason.clone().unwrap_or_default();
        assert!(
            reason.contains("paging on the reports p99 (sent by ci)"),
            "{reason}"
        );
        env.history()
            .assert_weight_zero_before_scale_down(CANDIDATE, since);
        let notes = env.event_notes(None).await;
        assert!(
            notes
                .iter()
                .any(|n| n.contains("paging on the reports p99")),
            "the reason is in an Event: {notes:?}"
        );

        let (code, refused) = api.post("release", CI, json!({"image": V2})).await;
        assert_eq!(
            (code, &refused["error"]["code"]),
            (409, &json!("rolled_back")),
            "{refused}"
        );
        let (code, retry) = api.post("retry", CI, json!({})).await;
        assert_eq!(code, 202, "{retry}");
        env.wait_for("promoted after the retry", secs(60), |r| promoted(r, &v2))
            .await;
        let (code, nothing) = api.post("retry", CI, json!({})).await;
        assert_eq!(
            (code, &nothing["error"]["code"]),
            (409, &json!("not_applicable")),
            "{nothing}"
        );
        env.finish().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_scoped_and_every_refusal_changes_nothing() {
    bounded(async {
        let (env, api, v1) = env_with_api(json!({})).await;
        let before = env
            .sandbox
            .store()
            .history()
            .iter()
            .map(|e| e.resource_version)
            .max()
            .unwrap_or_default();
        let rollout = Client::rollout_path("");
        let mutating = ["release", "promote", "abort", "pause", "resume", "retry"];
        use reqwest::Method;

        // 401: no token, an unknown one, another scheme.
        for token in [None, Some("not-a-token")] {
            for (method, path) in [
                (Method::GET, rollout.clone()),
                (Method::POST, Client::rollout_path("abort")),
            ] {
                let (code, body) = api.call(method, &path, token, Some(json!({}))).await;
                assert_eq!(
                    (code, &body["error"]["code"]),
                    (401, &json!("unauthenticated")),
                    "{body}"
                );
            }
        }
        // 403: another namespace's token; a read-only token on every mutating endpoint.
        let (code, _) = api.get(&rollout, SHOP).await;
        assert_eq!(code, 403);
        let (code, _) = api
            .get(&format!("/api/v1/rollouts?namespace={NS}"), SHOP)
            .await;
        assert_eq!(code, 403);
        let (code, list) = api.get("/api/v1/rollouts", SHOP).await;
        assert_eq!(
            (code, &list["items"]),
            (200, &json!([])),
            "only what it may read"
        );
        let (code, list) = api.get("/api/v1/rollouts", READER).await;
        assert_eq!((code, &list["items"][0]["name"]), (200, &json!(APP)));
        for action in mutating {
            let body = if action == "release" {
                json!({"image": V2})
            } else {
                json!({})
            };
            for token in [READER, SHOP] {
                let (code, answer) = api.post(action, token, body.clone()).await;
                assert_eq!(
                    (code, &answer["error"]["code"]),
                    (403, &json!("forbidden")),
                    "{action}: {answer}"
                );
            }
        }
        // 404, 409.
        let (code, _) = api
            .call(
                Method::POST,
                &format!("/api/v1/namespaces/{NS}/rollouts/nope/promote"),
                Some(CI),
                Some(json!({})),
            )
            .await;
        assert_eq!(code, 404);
        let (code, _) = api
            .get(&format!("/api/v1/namespaces/{NS}/rollouts/nope"), CI)
            .await;
        assert_eq!(code, 404);
        for action in ["promote", "abort", "pause", "resume", "retry"] {
            let (code, answer) = api.post(action, CI, json!({})).await;
            assert_eq!(
                (code, &answer["error"]["code"]),
                (409, &json!("not_applicable")),
                "{action}: {answer}"
            );
        }
        // 422: bad images, both forms, unknown fields, malformed JSON, a bad key.
        for body in [
            json!({"image": "erp/Reporting:1"}),
            json!({"image": "erp/reporting"}),
            json!({"image": V2, "images": {APP: V2}}),
            json!({"images": {"sidecar": V2}}),
            json!({"image": V2, "extra": 1}),
            json!({}),
        ] {
            let (code, answer) = api.post("release", CI, body.clone()).await;
            assert_eq!(code, 422, "{body}: {answer}");
        }
        let url = format!("{}{}", api.base, Client::rollout_path("promote"));
        let raw = |body: &'static str, content_type: &'static str| {
            api.http
                .post(&url)
                .bearer_auth(CI)
                .header("content-type", content_type)
                .body(body)
        };
        assert_eq!(
            raw("{not json", "application/json")
                .send()
                .await
                .expect("answer")
                .status()
                .as_u16(),
            422
        );
        let bad_key = api
            .http
            .post(&url)
            .bearer_auth(CI)
            .header("Idempotency-Key", "a b")
            .json(&json!({}));
        assert_eq!(bad_key.send().await.expect("answer").status().as_u16(), 422);
        // 413, 415.
        let large = api
            .http
            .post(&url)
            .bearer_auth(CI)
            .header("content-type", "application/json")
            .body(format!(
                "{{\"full\": false, \"x\": \"{}\"}}",
                "a".repeat(70 * 1024)
            ));
        let answer = large.send().await.expect("answer");
        assert_eq!(answer.status().as_u16(), 413);
        let body: Value = answer.json().await.expect("JSON");
        assert_eq!(body["error"]["code"], "body_too_large");
        let answer = raw("full=true", "application/x-www-form-urlencoded")
            .send()
            .await
            .expect("answer");
        assert_eq!(answer.status().as_u16(), 415);
        // Nothing was written by any of it.
        let writes: Vec<String> = env
            .sandbox
            .store()
            .history()
            .iter()
            .filter(|e| e.resource_version > before)
            .filter(|e| {
                let annotations = &e.object["metadata"]["annotations"];
                e.name == APP
                    && (annotations.get("sluice.dev/command").is_some()
                        || e.resource.1 == "deployments")
            })
            .map(|e| format!("{} {}", e.resource.1, e.name))
            .collect();
        assert!(
            writes.is_empty(),
            "no command and no image was written: {writes:?}"
        );
        let s = status(&env.rollout().await);
        assert_eq!(
            (s.stable_revision.as_deref(), s.last_command),
            (Some(v1.as_str()), None)
        );

        // Every documented operation is routed (none falls through to the fallback).
        let (code, doc) = api.get("/api/v1/openapi.json", READER).await;
        assert_eq!(code, 200);
        let paths = doc["paths"].as_object().expect("paths");
        for (path, operations) in paths {
            let path = path.replace("{namespace}", NS).replace("{name}", APP);
            for method in operations.as_object().expect("operations").keys() {
                if path.ends_with("/events") {
                    continue;
                }
                let method =
                    Method::from_bytes(method.to_uppercase().as_bytes()).expect("a method");
                let (_, answer) = api
                    .call(method.clone(), &path, Some(READER), Some(json!({})))
                    .await;
                assert!(
                    !["no_such_route", "method_not_allowed"]
                        .contains(&answer["error"]["code"].as_str().unwrap_or_default()),
                    "{method} {path} is routed: {answer}"
                );
            }
        }
        let (code, answer) = api.get("/api/v1/nothing", READER).await;
        assert_eq!(
            (code, &answer["error"]["code"]),
            (404, &json!("no_such_route"))
        );

        // The tokens file changes while running: the reader is revoked, a new token works.
        let changed = tokens().replace(&token_hash(READER), &token_hash("a-new-reader-token"));
        std::fs::write(env.tokens_path(), changed).expect("the tokens file is rewritten");
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(api.get(&rollout, READER).await.0, 401, "revoked");
        assert_eq!(
            api.get(&rollout, "a-new-reader-token").await.0,
            200,
            "added"
        );
        env.finish().await;
    })
    .await;
}

/// A tool the test suite installs into target/py (scripts/ensure-python-tools).
fn python_tool(name: &str) -> std::path::PathBuf {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/py/bin")
        .join(name);
    assert!(
        path.exists(),
        "{} is missing: run scripts/ensure-deps",
        path.display()
    );
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_keeps_to_its_openapi_document_under_generated_requests() {
    bounded(async {
        let (env, api, _) = env_with_api(json!({})).await;
        let (code, doc) = api.get("/api/v1/openapi.json", READER).await;
        assert_eq!(code, 200);
        assert_eq!(doc["openapi"], "3.1.0");
        let file = std::env::temp_dir().join(format!("sluice-openapi-{}.json", std::process::id()));
        std::fs::write(&file, doc.to_string()).expect("written");
        let validator = python_tool("openapi-spec-validator");
        let checked = tokio::task::spawn_blocking(move || std::process::Command::new(validator).arg(&file).output())
            .await
            .expect("joined")
            .expect("the validator runs");
        let said = String::from_utf8_lossy(&checked.stdout).to_string() + &String::from_utf8_lossy(&checked.stderr);
        assert!(checked.status.success(), "a valid OpenAPI 3.1 document: {said}");

        // Generated requests, valid and not, against the live controller: no 5xx, and every
        // answer as the document says (status, content type, schema).
        let schemathesis = python_tool("schemathesis");
        let url = format!("{}/api/v1/openapi.json", api.base());
        let ran = tokio::task::spawn_blocking(move || {
            std::process::Command::new(schemathesis)
                .args(["run", &url, "--header", &format!("Authorization: Bearer {CI}")])
                .args(["--checks", "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance"])
                .args(["--exclude-path-regex", "/events$"])
                .args(["--max-examples", "40", "--seed", "7", "--workers", "2"])
                .env("NO_COLOR", "1")
                .output()
        })
        .await
        .expect("joined")
        .expect("schemathesis runs");
        let report = String::from_utf8_lossy(&ran.stdout).to_string() + &String::from_utf8_lossy(&ran.stderr);
        println!("{report}");
        assert!(ran.status.success(), "schemathesis found a contradiction:\n{report}");
        env.finish().await;
    })
    .await;
}
