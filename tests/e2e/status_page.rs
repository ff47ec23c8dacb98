//! The status page on the API address: it opens only with a token that may read, kept in an
//! HttpOnly, SameSite=Strict cookie that opens the page and nothing else; it shows each Rollout
//! with its release chart, and its stream sends the cards again as the release moves. The browser
//! test drives Debian's Chromium through it while a release runs.

use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};

use crate::api::{CI, READER, env_with_api, tokens};
use crate::harness::{APP, NS, bounded, secs};

const SHOP: &str = "shop-token";

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("an HTTP client")
}

async fn text(response: reqwest::Response) -> (u16, reqwest::header::HeaderMap, String) {
    let code = response.status().as_u16();
    let headers = response.headers().clone();
    (code, headers, response.text().await.expect("a body"))
}

/// Signs in with `token`: the answer's status, headers and body.
async fn sign_in(base: &str, token: &str) -> (u16, reqwest::header::HeaderMap, String) {
    let response = http()
        .post(format!("{base}/sign-in"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={token}"))
        .send()
        .await
        .expect("the form answers");
    text(response).await
}

/// The `name=value` part of a `Set-Cookie` header.
fn cookie_pair(headers: &reqwest::header::HeaderMap) -> String {
    let set = headers["set-cookie"].to_str().expect("ASCII");
    set.split(';').next().expect("a pair").to_string()
}

/// Reads `/page/events` with `cookie` until `done` holds for an event; (event, data) of each.
async fn stream_until(
    base: &str,
    cookie: &str,
    limit: Duration,
    done: impl Fn(&str, &Value) -> bool,
) -> Vec<(String, Value)> {
    let response = http()
        .get(format!("{base}/page/events"))
        .header("cookie", cookie)
        .send()
        .await
        .expect("the stream opens");
    assert_eq!(response.status().as_u16(), 200);
    let mut stream = response.bytes_stream();
    let (mut buffer, mut seen) = (String::new(), Vec::new());
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let chunk = tokio::time::timeout_at(deadline, stream.next())
            .await
            .unwrap_or_else(|_| panic!("no event as awaited within {limit:?}: {seen:#?}"));
        let Some(Ok(chunk)) = chunk else {
            panic!("the stream closed early: {seen:#?}");
        };
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let field = |name: &str| {
                block
                    .lines()
                    .find_map(|l| l.strip_prefix(&format!("{name}: ")))
                    .map(str::to_string)
            };
            let (Some(event), Some(data)) = (field("event"), field("data")) else {
                continue;
            };
            let data: Value = serde_json::from_str(&data).expect("JSON");
            let finished = done(&event, &data);
            seen.push((event, data));
            if finished {
                return seen;
            }
        }
    }
}

/// The cards of reporting the stream sends until `done` holds for one's HTML.
async fn cards_until(
    base: &str,
    cookie: &str,
    limit: Duration,
    done: impl Fn(&str) -> bool,
) -> Vec<String> {
    let card = |event: &str, data: &Value| {
        (event == "card").then(|| data["html"].as_str().unwrap_or_default().to_string())
    };
    let seen = stream_until(base, cookie, limit, |event, data| {
        card(event, data).is_some_and(|html| done(&html))
    })
    .await;
    seen.iter()
        .filter_map(|(event, data)| {
            let html = card(event, data)?;
            assert_eq!(data["id"], json!(format!("rollout/{NS}/{APP}")));
            Some(html)
        })
        .collect()
}

/// CI releases 1.1.0 through the API.
async fn release(base: &str) {
    let release = http()
        .post(format!(
            "{base}/api/v1/namespaces/{NS}/rollouts/{APP}/release"
        ))
        .bearer_auth(CI)
        .json(&json!({"image": "erp/reporting:1.1.0"}))
        .send()
        .await
        .expect("the API answers");
    assert_eq!(release.status().as_u16(), 202, "the release is accepted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_opens_with_a_read_token_kept_in_a_strict_cookie_and_streams_the_release() {
    bounded(async {
        let (env, api, _) = env_with_api(json!({})).await;
        let base = api.base().to_string();

        // No token: the sign-in form, and no Rollout on it.
        let (code, headers, page) =
            text(http().get(format!("{base}/")).send().await.expect("/")).await;
        assert_eq!(code, 200);
        assert!(
            page.contains(r#"<form id="sign-in" method="post" action="/sign-in">"#),
            "{page}"
        );
        assert!(!page.contains("data-namespace"));
        let policy = headers["content-security-policy"].to_str().expect("ASCII");
        assert!(policy.starts_with("default-src 'none'") && policy.contains("script-src 'self'"));

        // A wrong token is refused in words; the form comes back.
        let (code, headers, page) = sign_in(&base, "not-a-token").await;
        assert_eq!(code, 401);
        assert!(page.contains("unknown token") && !headers.contains_key("set-cookie"));

        // A token of another namespace signs in but sees none of erp-system.
        let (code, headers, _) = sign_in(&base, SHOP).await;
        assert_eq!(code, 303);
        let shop = cookie_pair(&headers);
        let page = http()
            .get(format!("{base}/"))
            .header("cookie", &shop)
            .send()
            .await
            .expect("/");
        let (_, _, page) = text(page).await;
        assert!(page.contains("0 Rollouts in all namespaces"), "{page}");

        // The reader's token: a strict, script-proof cookie, and the way back to the page.
        let (code, headers, _) = sign_in(&base, READER).await;
        assert_eq!(code, 303);
        assert_eq!(headers["location"], "/");
        let set = headers["set-cookie"].to_str().expect("ASCII");
        for part in ["sluice_session=", "HttpOnly", "SameSite=Strict", "Path=/"] {
            assert!(set.contains(part), "{part} in {set}");
        }
        let cookie = cookie_pair(&headers);
        let (code, _, page) = text(
            http()
                .get(format!("{base}/"))
                .header("cookie", &cookie)
                .send()
                .await
                .expect("/"),
        )
        .await;
        assert_eq!(code, 200);
        let card = format!(r#"id="rollout/{NS}/{APP}" data-namespace="{NS}" data-name="{APP}""#);
        assert!(page.contains(&card), "{page}");
        assert!(page.contains(r#"<svg class="release-chart""#));
        assert!(page.contains(r#"<script src="/page/live.js" defer></script>"#));
        assert!(
            !page.contains(READER),
            "the token is never written into the page"
        );
        for asset in ["/page/live.js", "/page/style.css"] {
            let (code, _, body) = text(
                http()
                    .get(format!("{base}{asset}"))
                    .send()
                    .await
                    .expect("an asset"),
            )
            .await;
            assert_eq!(code, 200, "{asset}");
            assert!(
                !body.contains("http://") && !body.contains("https://"),
                "{asset} loads nothing from elsewhere"
            );
        }

        // The cookie opens the page, never the API: a command needs the Authorization header.
        let command = http()
            .post(format!(
                "{base}/api/v1/namespaces/{NS}/rollouts/{APP}/abort"
            ))
            .header("cookie", &cookie)
            .json(&json!({}))
            .send()
            .await
            .expect("the API answers");
        assert_eq!(command.status().as_u16(), 401);

        // The stream sends the card now, then again as the release moves, to its promotion.
        release(&base).await;
        let cards = cards_until(&base, &cookie, secs(60), |html| {
            html.contains(r#"data-phase="Succeeded""#)
                && html.contains("class=\"check verdict-pass\"")
        })
        .await;
        assert!(
            cards.iter().any(|c| c.contains(r#"data-weight="20""#))
                && cards.iter().any(|c| c.contains(r#"data-weight="50""#)),
            "each step's card was sent: {cards:#?}"
        );

        // A proxy's own Authorization scheme in front does not hide the session.
        let (code, _, page) = text(
            http()
                .get(format!("{base}/"))
                .header("cookie", &cookie)
                .header("authorization", "Basic b2F1dGg6cHJveHk=")
                .send()
                .await
                .expect("/"),
        )
        .await;
        assert_eq!(code, 200);
        assert!(page.contains(&card), "{page}");

        // Another site's form can neither sign a browser in nor out.
        for form in ["/sign-in", "/sign-out"] {
            let forged = http()
                .post(format!("{base}{form}"))
                .header("content-type", "application/x-www-form-urlencoded")
                .header("origin", "https://evil.example")
                .header("sec-fetch-site", "cross-site")
                .body(format!("token={READER}"))
                .send()
                .await
                .expect("the form answers");
            assert_eq!(forged.status().as_u16(), 403, "{form}");
            assert!(!forged.headers().contains_key("set-cookie"), "{form}");
        }

        // An open stream follows its token: narrowed to another namespace, the card goes; revoked,
        // the page is signed out.
        let tokens_path = env.tokens_path();
        let reader_entry = format!(
            "  - name: reader\n    sha256: {}\n    namespaces: [\"*\"]",
            sluice::api::token_hash(READER)
        );
        let all = tokens();
        assert!(all.contains(&reader_entry), "{all}");
        let narrowed = all.replace(&reader_entry, &reader_entry.replace("[\"*\"]", "[shop]"));
        let revoked = all.replace(&format!("{reader_entry}\n    actions: [read]\n"), "");
        assert_ne!(revoked, all, "the reader's entry is removed");
        let path = tokens_path.clone();
        let seen = stream_until(&base, &cookie, secs(20), move |event, _| {
            if event == "card" {
                std::fs::write(&path, &narrowed).expect("the tokens file is rewritten");
            }
            event == "gone"
        })
        .await;
        assert_eq!(
            seen.last().map(|(_, d)| d["id"].clone()),
            Some(json!(format!("rollout/{NS}/{APP}")))
        );
        let path = tokens_path.clone();
        // Revoked once the stream is open (it shows nothing of shop, so no event says when).
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            std::fs::write(&path, revoked).expect("the tokens file is rewritten");
        });
        let seen = stream_until(&base, &cookie, secs(20), |event, _| event == "signed-out").await;
        assert_eq!(
            seen.last().map(|(e, _)| e.as_str()),
            Some("signed-out"),
            "{seen:?}"
        );
        std::fs::write(&tokens_path, tokens()).expect("the tokens file is restored");

        // Signing out ends the session.
        let (code, headers, _) = text(
            http()
                .post(format!("{base}/sign-out"))
                .header("cookie", &cookie)
                .send()
                .await
                .expect("sign-out"),
        )
        .await;
        assert_eq!(code, 303);
        assert!(
            headers["set-cookie"]
                .to_str()
                .expect("ASCII")
                .contains("Max-Age=0")
        );
        env.finish().await;
    })
    .await;
}

/// Where the browser test leaves its screenshots (the README shows one of them).
fn screenshots() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/status-page")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_signs_in_and_watches_a_release_move_on_the_status_page_without_a_reload() {
    use tokio::io::AsyncBufReadExt;

    bounded(async {
        let (env, api, _) = env_with_api(json!({})).await;
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let limit = secs(90);
        let mut driver = tokio::process::Command::new("node")
            .arg(root.join("tests/status_page/drive.mjs"))
            .env("SLUICE_PAGE_URL", format!("{}/", api.base()))
            .env("SLUICE_TOKEN", READER)
            .env("SLUICE_NAMESPACE", NS)
            .env("SLUICE_ROLLOUT", APP)
            .env("SLUICE_FINAL_PHASE", "Succeeded")
            .env("SLUICE_SCREENSHOT_DIR", screenshots())
            .env("SLUICE_TIMEOUT_MS", limit.as_millis().to_string())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("node runs tests/status_page/drive.mjs (scripts/ensure-deps installs it)");
        let mut said = tokio::io::BufReader::new(driver.stdout.take().expect("its stdout")).lines();
        let ready = tokio::time::timeout(secs(60), said.next_line())
            .await
            .expect("the browser signs in and the page goes live within 60 s")
            .expect("its stdout reads")
            .expect("a line: the driver failed before the page was live (its stderr says why)");
        let ready: Value = serde_json::from_str(&ready).expect("JSON");
        assert_eq!(ready["event"], "ready", "{ready}");
        assert_eq!(ready["phase"], "Ready", "{ready}");

        // Only now does the release start: the page must follow it live.
        release(api.base()).await;
        let done = tokio::time::timeout(limit + secs(15), said.next_line())
            .await
            .expect("the browser sees the promotion in time")
            .expect("its stdout reads")
            .expect("a line: the driver failed (its stderr says why)");
        let done: Value = serde_json::from_str(&done).expect("JSON");
        let exit = driver.wait().await.expect("the driver exits");
        assert!(exit.success(), "the driver failed: {exit}");
        let weights: Vec<&Value> = done["states"]
            .as_array()
            .expect("the states the page showed")
            .iter()
            .map(|s| &s["weight"])
            .collect();
        println!("the page showed: {}", done["states"]);
        for step in [json!(20), json!(50)] {
            assert!(
                weights.contains(&&step),
                "the page showed the {step}% step: {done}"
            );
        }
        for shot in ["status-page.png", "mid-release.png"] {
            let size = std::fs::metadata(screenshots().join(shot))
                .map(|m| m.len())
                .unwrap_or(0);
            assert!(size > 10_000, "{shot} was taken ({size} bytes)");
        }
        env.finish().await;
    })
    .await;
}
