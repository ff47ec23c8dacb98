//! The Analyst against a real Prometheus scraping the sandbox's simulated ingress-nginx: a canary
//! Ingress sends half of the traffic to a green slot that answers 10% 5xx with a 200ms median, and
//! every check below is judged from what Prometheus really answers.

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, PostParams};
use prometheus_http_query::response::Data;
use serde_json::{Value, json};
use sluice::analysis::{AnalysisError, Analyst, PrometheusAuth};
use sluice_sandbox::{Sandbox, SandboxConfig};
use sluice_strategies::analysis::{CheckOutcome, MetricJudgement};
use sluice_strategies::plan::AnalysisPlan;
use sluice_strategies::promql::TemplateVars;
use sluice_strategies::spec::RolloutSpec;
use sluice_strategies::status::{Slot, Verdict};
use sluice_strategies::{Presets, resolve};

use sluice_sandbox::testing::{create, ingress, slot_deployment, slot_service};

/// The user's Ingress path for reporting in these tests.
fn ingress_to_reports(name: &str, service: &str, annotations: Value) -> Value {
    ingress(name, "/api/reports", service, annotations)
}

const NS: &str = "erp-system";
const TIMEOUT: Duration = Duration::from_secs(5);
const INTERVAL: Duration = Duration::from_secs(10);

/// The analysis plan of a canary Rollout of `reporting` with these metrics, resolved with the
/// embedded presets as the controller resolves it.
fn plan(min_requests: u64, metrics: Value) -> AnalysisPlan {
    let spec: RolloutSpec = serde_json::from_value(json!({
        "targetRef": {"name": "reporting"},
        "service": {"name": "reporting-service", "port": 80},
        "strategy": {"canary": {"ingressRef": {"name": "erp-ingress"}, "steps": [50]}},
        "analysis": {"interval": "10s", "minRequests": min_requests, "metrics": metrics},
    }))
    .expect("a valid spec");
    let presets = Presets::embedded().expect("the embedded presets load");
    resolve(&spec, &presets).expect("a valid plan").analysis
}

fn vars() -> TemplateVars {
    TemplateVars::for_release(
        NS,
        "reporting",
        "reporting-service",
        Some("erp-ingress"),
        Slot::Blue,
        INTERVAL,
    )
}

fn metric<'a>(outcome: &'a CheckOutcome, name: &str) -> &'a MetricJudgement {
    outcome
        .metrics
        .iter()
        .find(|m| m.name == name)
        .unwrap_or_else(|| panic!("{name} judged in {outcome:#?}"))
}

fn reason(judgement: &MetricJudgement) -> &str {
    judgement.reason.as_deref().unwrap_or("")
}

/// A port nothing listens on: bound by us, then released.
fn unused_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let port = listener.local_addr().expect("its address").port();
    drop(listener);
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_judge_what_prometheus_answers() {
    // The whole scenario is bounded: a stuck query or a Prometheus that never fills must fail the
    // test, not hang it. Dropping the sandbox on a panic stops Prometheus too.
    tokio::time::timeout(Duration::from_secs(60), scenario())
        .await
        .expect("the scenario finishes within 60s");
}

async fn scenario() {
    let config = SandboxConfig {
        prometheus: true,
        seed: 11,
        ..SandboxConfig::default()
    };
    let sandbox = Sandbox::start(config).await.expect("the sandbox starts");
    let client = sandbox
        .client()
        .await
        .expect("a kube client for the sandbox");
    let prometheus_url = sandbox.prometheus_url().expect("Prometheus is running");

    let namespaces: Api<Namespace> = Api::all(client.clone());
    let namespace = serde_json::from_value(json!({"metadata": {"name": NS}})).expect("valid");
    namespaces
        .create(&PostParams::default(), &namespace)
        .await
        .expect("namespace created");
    create::<Deployment>(
        &client,
        NS,
        slot_deployment(
            "reporting",
            "blue",
            json!({"sandbox.sluice.dev/ready-after": "100ms"}),
        ),
    )
    .await;
    create::<Deployment>(
        &client,
        NS,
        slot_deployment(
            "reporting",
            "green",
            json!({
                "sandbox.sluice.dev/ready-after": "100ms",
                "sandbox.sluice.dev/error-rate": "0.1",
                "sandbox.sluice.dev/latency-ms": "200",
            }),
        ),
    )
    .await;
    create::<Service>(
        &client,
        NS,
        slot_service("reporting-service", "reporting", "blue", json!({})),
    )
    .await;
    create::<Service>(
        &client,
        NS,
        slot_service("reporting-service-canary", "reporting", "green", json!({})),
    )
    .await;
    create::<Ingress>(
        &client,
        NS,
        ingress_to_reports(
            "erp-ingress",
            "reporting-service",
            json!({"sandbox.sluice.dev/rps": "200"}),
        ),
    )
    .await;
    create::<Ingress>(
        &client,
        NS,
        ingress_to_reports(
            "erp-ingress-canary",
            "reporting-service-canary",
            json!({
                "nginx.ingress.kubernetes.io/canary": "true",
                "nginx.ingress.kubernetes.io/canary-weight": "50",
            }),
        ),
    )
    .await;

    // A full 10s window of canary traffic, plus a few scrapes: the first check then sees as much
    // as a controller's check would, not a window half empty.
    let started = Instant::now();
    let raw: prometheus_http_query::Client = prometheus_url.parse().expect("Prometheus' URL");
    let canary_requests =
        r#"sum(nginx_ingress_controller_requests{namespace="erp-system",canary!=""})"#;
    loop {
        let answer = raw.query(canary_requests).get().await;
        let scraped = answer.is_ok_and(|r| matches!(r.data(), Data::Vector(v) if !v.is_empty()));
        if scraped && started.elapsed() >= Duration::from_secs(15) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(40),
            "Prometheus holds no canary traffic after 40s"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    let analyst = Analyst::new(&prometheus_url, TIMEOUT).expect("a valid URL");
    let vars = vars();

    // The preset metrics on the sick candidate: 10% 5xx fails a 1% bound.
    let strict = plan(
        50,
        json!([{"name": "error-rate", "max": 1}, {"name": "latency-p99", "max": 500}]),
    );
    let outcome = analyst.check(&strict, &vars).await;
    assert_eq!(outcome.verdict, Verdict::Fail, "{outcome:#?}");
    let requests = outcome.requests.expect("the candidate request count");
    assert!(
        requests > 50.0,
        "{requests} candidate requests in 10s at 100 rps"
    );
    let errors = metric(&outcome, "error-rate");
    assert_eq!(errors.verdict, Verdict::Fail, "{errors:?}");
    let rate = errors.value.expect("an error rate");
    assert!(
        (rate - 10.0).abs() <= 3.0,
        "error rate {rate}% is not 10% ± 3 points"
    );
    let p99 = metric(&outcome, "latency-p99")
        .value
        .expect("a p99 latency");
    // A 200ms median with a log-normal tail has a p99 near 640ms, which ingress-nginx's buckets
    // put between 500ms and 1s.
    assert!(
        (200.0..5000.0).contains(&p99),
        "p99 {p99}ms for a 200ms median"
    );

    // The same candidate under bounds it meets.
    let lenient = plan(
        50,
        json!([{"name": "error-rate", "max": 20}, {"name": "latency-p99", "max": 5000}]),
    );
    let outcome = analyst.check(&lenient, &vars).await;
    assert_eq!(outcome.verdict, Verdict::Pass, "{outcome:#?}");
    assert!(outcome.metrics.iter().all(|m| m.value.is_some()));

    // Too little traffic to judge: inconclusive, never failed.
    let starved = plan(
        1_000_000,
        json!([{"name": "error-rate", "max": 1}, {"name": "latency-p99", "max": 500}]),
    );
    let outcome = analyst.check(&starved, &vars).await;
    assert_eq!(outcome.verdict, Verdict::Inconclusive, "{outcome:#?}");
    let why = outcome.reason.as_deref().unwrap_or("");
    assert!(why.contains("minRequests 1000000"), "reason: {why}");

    // A custom query with one series per status is ambiguous: refused, naming the metric.
    let by_status = plan(
        50,
        json!([{
            "name": "rate-by-status",
            "query": r#"sum by (status) (rate(nginx_ingress_controller_requests{namespace="{{ namespace }}",ingress="{{ ingress }}",canary!=""}[{{ interval }}]))"#,
            "max": 1000,
        }]),
    );
    let outcome = analyst.check(&by_status, &vars).await;
    assert_eq!(outcome.verdict, Verdict::Error, "{outcome:#?}");
    let judged = metric(&outcome, "rate-by-status");
    assert_eq!(judged.verdict, Verdict::Error);
    assert!(
        reason(judged).contains("query for rate-by-status returned 3 series; it must return one"),
        "reason: {}",
        reason(judged)
    );

    // A syntax error comes back with Prometheus' own words.
    let broken = plan(
        50,
        json!([{
            "name": "queue-depth",
            "query": r#"sum(rate(nginx_ingress_controller_requests{namespace="{{ namespace }}"}[{{ interval }}])"#,
            "max": 100,
        }]),
    );
    let outcome = analyst.check(&broken, &vars).await;
    assert_eq!(outcome.verdict, Verdict::Error, "{outcome:#?}");
    let judged = metric(&outcome, "queue-depth");
    assert_eq!(judged.verdict, Verdict::Error);
    assert!(
        reason(judged).contains("Prometheus rejected the query for queue-depth: ")
            && reason(judged).contains("parse error"),
        "reason: {}",
        reason(judged)
    );

    // Every shape of answer: one series, a scalar, NaN, nothing, and a range vector.
    let shapes = plan(
        0,
        json!([
            {"name": "one-series", "query": "vector(7)", "max": 10},
            {"name": "a-scalar", "query": "scalar(vector(3))", "max": 10},
            {"name": "not-a-number", "query": "scalar(vector(0)) / 0", "max": 10},
            {"name": "nothing", "query": r#"nginx_ingress_controller_requests{namespace="not-{{ namespace }}"}"#, "max": 10},
            {"name": "a-range", "query": r#"sum(nginx_ingress_controller_requests{namespace="{{ namespace }}"})[{{ interval }}:1s]"#, "max": 10},
        ]),
    );
    let outcome = analyst.check(&shapes, &vars).await;
    assert_eq!(outcome.verdict, Verdict::Error, "{outcome:#?}");
    let judged = |name: &str| {
        let m = metric(&outcome, name);
        (m.verdict, m.value)
    };
    assert_eq!(judged("one-series"), (Verdict::Pass, Some(7.0)));
    assert_eq!(judged("a-scalar"), (Verdict::Pass, Some(3.0)));
    assert_eq!(judged("not-a-number"), (Verdict::Inconclusive, None));
    assert_eq!(judged("nothing"), (Verdict::Inconclusive, None));
    assert_eq!(judged("a-range").0, Verdict::Error);
    assert!(reason(metric(&outcome, "a-range")).contains("returned a range vector"));

    // Pointed at something that is not Prometheus (the sandbox's API server): an error naming
    // the URL, not a panic or a parse failure without context.
    let misdirected = Analyst::new(&sandbox.api_url(), TIMEOUT).expect("a valid URL");
    let outcome = misdirected.check(&lenient, &vars).await;
    assert_eq!(outcome.verdict, Verdict::Error, "{outcome:#?}");
    let why = reason(metric(&outcome, "error-rate"));
    assert!(why.contains(misdirected.url()), "reason: {why}");

    sandbox.shutdown().await;
}

#[tokio::test]
async fn an_unreachable_prometheus_is_an_error_at_once() {
    let url = format!("http://127.0.0.1:{}", unused_port());
    let analyst = Analyst::new(&url, TIMEOUT).expect("a valid URL");
    assert_eq!(analyst.url(), format!("{url}/"));
    let strict = plan(
        50,
        json!([{"name": "error-rate", "max": 1}, {"name": "latency-p99", "max": 500}]),
    );
    let started = Instant::now();
    let outcome = analyst.check(&strict, &vars()).await;
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(2),
        "a refused connection is reported in {took:?}, not after the {TIMEOUT:?} timeout"
    );
    assert_eq!(outcome.verdict, Verdict::Error, "{outcome:#?}");
    let why = outcome.reason.as_deref().unwrap_or("");
    assert!(
        why.contains(&format!("Prometheus at {url}/ unreachable: ")),
        "reason: {why}"
    );
    for judged in &outcome.metrics {
        assert_eq!(judged.verdict, Verdict::Error);
        assert!(reason(judged).contains(&url), "reason: {}", reason(judged));
    }
}

#[tokio::test]
async fn a_silent_prometheus_times_out_within_the_bound() {
    // Connections complete into the listen backlog, and nothing ever answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free port");
    let url = format!("http://{}", listener.local_addr().expect("its address"));
    let analyst = Analyst::new(&url, Duration::from_millis(300)).expect("a valid URL");
    let started = Instant::now();
    let outcome = analyst
        .check(
            &plan(50, json!([{"name": "latency-p99", "max": 500}])),
            &vars(),
        )
        .await;
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(2),
        "queries run concurrently, each bounded by 300ms; took {took:?}"
    );
    assert_eq!(outcome.verdict, Verdict::Error, "{outcome:#?}");
    let why = reason(metric(&outcome, "latency-p99"));
    assert!(
        why.contains(&format!(
            "query for latency-p99 timed out after 300ms (Prometheus at {url}/)"
        )),
        "reason: {why}"
    );
    drop(listener);
}

/// Answers every request with `status` and a plain-text body, as a proxy in front of Prometheus
/// does when Prometheus is down.
async fn plain_http_server(status: &'static str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free port");
    let url = format!("http://{}", listener.local_addr().expect("its address"));
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                // Read the whole request first: closing a socket with unread bytes resets it,
                // and the client would see a reset instead of the answer.
                let mut request = Vec::new();
                let mut buffer = [0u8; 4096];
                loop {
                    let Ok(n) = socket.read(&mut buffer).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    request.extend_from_slice(&buffer[..n]);
                    let text = String::from_utf8_lossy(&request);
                    if let Some(end) = text.find("\r\n\r\n") {
                        let length = text[..end]
                            .lines()
                            .find_map(|l| {
                                let (name, value) = l.split_once(':')?;
                                name.eq_ignore_ascii_case("content-length")
                                    .then(|| value.trim().parse::<usize>().ok())?
                            })
                            .unwrap_or(0);
                        if request.len() >= end + 4 + length {
                            break;
                        }
                    }
                }
                let body = "upstream unavailable";
                let answer = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(answer.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    url
}

#[tokio::test]
async fn an_http_error_in_front_of_prometheus_names_its_status() {
    let url = plain_http_server("502 Bad Gateway").await;
    let analyst = Analyst::new(&url, TIMEOUT).expect("a valid URL");
    let outcome = analyst
        .check(
            &plan(50, json!([{"name": "error-rate", "max": 1}])),
            &vars(),
        )
        .await;
    assert_eq!(outcome.verdict, Verdict::Error, "{outcome:#?}");
    let why = reason(metric(&outcome, "error-rate"));
    assert!(
        why.contains(&format!(
            "Prometheus at {url}/ answered the query for error-rate with HTTP 502 Bad Gateway"
        )),
        "reason: {why}"
    );
}

#[tokio::test]
async fn a_query_that_does_not_render_is_never_sent() {
    // Were it sent, the reason would be that nothing listens on the port.
    let analyst =
        Analyst::new(&format!("http://127.0.0.1:{}", unused_port()), TIMEOUT).expect("a valid URL");
    let strict = plan(50, json!([{"name": "error-rate", "max": 1}]));
    let mut vars = vars();
    vars.namespace = r#"erp"} or vector(1) #"#.to_string();
    let outcome = analyst.check(&strict, &vars).await;
    assert_eq!(outcome.verdict, Verdict::Error, "{outcome:#?}");
    let why = reason(metric(&outcome, "error-rate"));
    assert!(
        why.contains("query for error-rate not rendered: template variable namespace"),
        "reason: {why}"
    );
    assert!(!why.contains("unreachable"), "reason: {why}");
}

#[test]
fn only_http_urls_make_an_analyst() {
    for bad in ["localhost:9090", "not a url", "ftp://prometheus:21", ""] {
        let built = Analyst::new(bad, TIMEOUT);
        assert!(
            matches!(&built, Err(AnalysisError::InvalidUrl { url, .. }) if url == bad),
            "{bad:?} gave {built:?}"
        );
    }
    let err = Analyst::new("localhost:9090", TIMEOUT).expect_err("no scheme");
    assert!(err.to_string().contains("http://"), "{err}");
    // A path prefix (Prometheus behind a gateway) is kept, without a slash the API path doubles.
    let behind = Analyst::new("https://gateway.example.com/prometheus/", TIMEOUT).expect("valid");
    assert_eq!(behind.url(), "https://gateway.example.com/prometheus");
    assert_eq!(behind.timeout(), TIMEOUT);
}

/// A Prometheus behind a proxy that wants `Authorization: Bearer good`: every query it lets
/// through answers one sample of 0.2, others get 401.
async fn prometheus_wanting_a_token() -> String {
    use axum::http::{HeaderMap, StatusCode};

    async fn answer(headers: HeaderMap) -> axum::response::Response {
        use axum::response::IntoResponse;
        let authorized =
            headers.get("authorization").and_then(|v| v.to_str().ok()) == Some("Bearer good");
        if !authorized {
            return (StatusCode::UNAUTHORIZED, "who are you").into_response();
        }
        let body = json!({"status": "success", "data": {"resultType": "vector",
            "result": [{"metric": {}, "value": [1_700_000_000, "0.2"]}]}});
        axum::Json(body).into_response()
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free port");
    let url = format!("http://{}", listener.local_addr().expect("its address"));
    let router = axum::Router::new().route("/api/v1/query", axum::routing::post(answer));
    tokio::spawn(async move { axum::serve(listener, router).await });
    url
}

#[tokio::test]
async fn every_query_carries_the_credential_its_file_holds_now() {
    let url = prometheus_wanting_a_token().await;
    let file = std::env::temp_dir().join(format!("sluice-prometheus-token-{}", std::process::id()));
    std::fs::write(&file, "wrong\n").expect("the token file is written");
    let analyst = Analyst::new(&url, TIMEOUT)
        .expect("a valid URL")
        .authenticated_by(Some(PrometheusAuth::BearerTokenFile(file.clone())));
    let strict = plan(0, json!([{"name": "error-rate", "max": 1}]));
    let refused = analyst.check(&strict, &vars()).await;
    assert_eq!(refused.verdict, Verdict::Error, "{refused:#?}");
    assert!(
        reason(metric(&refused, "error-rate")).contains("401"),
        "{refused:#?}"
    );
    // The Secret is rotated: the next check sends the new token, without a restart.
    std::fs::write(&file, "good\n").expect("the token file is rewritten");
    let passed = analyst.check(&strict, &vars()).await;
    assert_eq!(passed.verdict, Verdict::Pass, "{passed:#?}");
    std::fs::remove_file(&file).expect("removed");
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate it signed, made by the
/// openssl command (scripts/ensure-deps installs it), in `dir`.
fn certificates(dir: &std::path::Path) {
    let openssl = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .current_dir(dir)
            .args(args)
            .output()
            .expect("openssl runs (scripts/ensure-deps installs it)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    openssl(
        &[
            &["req", "-x509"][..],
            &ec,
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
                "-subj",
                "/CN=sluice test CA",
                "-days",
                "1",
            ],
        ]
        .concat(),
    );
    for (name, usage) in [
        ("server", "serverAuth\nsubjectAltName=IP:127.0.0.1"),
        ("client", "clientAuth"),
    ] {
        std::fs::write(
            dir.join(format!("{name}.ext")),
            format!(
                "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage={usage}\n"
            ),
        )
        .expect("written");
        let (key, csr, crt, ext) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.crt"),
            format!("{name}.ext"),
        );
        openssl(
            &[
                &["req"][..],
                &ec,
                &[
                    "-keyout",
                    &key,
                    "-out",
                    &csr,
                    "-subj",
                    &format!("/CN={name}"),
                ],
            ]
            .concat(),
        );
        openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &crt,
            "-days",
            "1",
            "-extfile",
            &ext,
        ]);
    }
}

/// The real Prometheus serving https on 127.0.0.1 with the server certificate, asking every
/// client for a certificate signed by the CA; killed when dropped.
async fn tls_prometheus(dir: &std::path::Path) -> (tokio::process::Child, String) {
    let binary = sluice_sandbox::prometheus::find_binary()
        .expect("Prometheus is installed (scripts/ensure-deps)");
    std::fs::write(dir.join("prometheus.yml"), "global: {}\n").expect("written");
    std::fs::write(
        dir.join("web.yml"),
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n",
    )
    .expect("written");
    let port = unused_port();
    let child = tokio::process::Command::new(binary)
        .current_dir(dir)
        .args([
            "--config.file=prometheus.yml",
            "--web.config.file=web.yml",
            "--storage.tsdb.path=data",
            "--log.level=warn",
        ])
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.join("prometheus.log")).expect("log"))
        .kill_on_drop(true)
        .spawn()
        .expect("Prometheus starts");
    (child, format!("https://127.0.0.1:{port}"))
}

#[tokio::test]
async fn an_https_prometheus_is_trusted_by_its_ca_and_shown_the_client_certificate() {
    use sluice::analysis::PrometheusTls;
    let dir = std::env::temp_dir().join(format!("sluice-prometheus-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a directory");
    certificates(&dir);
    let (_prometheus, url) = tls_prometheus(&dir).await;
    let trusted = PrometheusTls {
        ca_file: Some(dir.join("ca.crt")),
        client_cert_file: Some(dir.join("client.crt")),
        client_key_file: Some(dir.join("client.key")),
        insecure_skip_verify: false,
    };
    let one = plan(0, json!([{"name": "one", "query": "vector(1)", "max": 10}]));
    let check = |tls: PrometheusTls| {
        let (url, one) = (url.clone(), one.clone());
        async move {
            let analyst = Analyst::with_tls(&url, TIMEOUT, &tls).expect("an analyst");
            analyst.check(&one, &vars()).await
        }
    };
    // Until Prometheus listens: the trusted client passes.
    let started = Instant::now();
    let passed = loop {
        let outcome = check(trusted.clone()).await;
        if outcome.verdict == Verdict::Pass || started.elapsed() > Duration::from_secs(30) {
            break outcome;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(passed.verdict, Verdict::Pass, "{passed:#?}");
    assert_eq!(metric(&passed, "one").value, Some(1.0));

    // The system's roots do not know the test CA.
    let untrusted = check(PrometheusTls {
        ca_file: None,
        ..trusted.clone()
    })
    .await;
    assert_eq!(untrusted.verdict, Verdict::Error, "{untrusted:#?}");
    let why = reason(metric(&untrusted, "one")).to_lowercase();
    assert!(
        why.contains("certificate") || why.contains("issuer"),
        "reason: {why}"
    );
    // Without a client certificate Prometheus ends the handshake.
    let anonymous = check(PrometheusTls {
        client_cert_file: None,
        client_key_file: None,
        ..trusted.clone()
    })
    .await;
    assert_eq!(anonymous.verdict, Verdict::Error, "{anonymous:#?}");
    let refused = reason(metric(&anonymous, "one"));
    assert!(refused.contains("BadCertificate"), "reason: {refused}");
    println!("without a CA: {why}\nwithout a client certificate: {refused}");
    // Skipping verification trusts the unknown CA (and still shows the certificate).
    let skipping = check(PrometheusTls {
        ca_file: None,
        insecure_skip_verify: true,
        ..trusted.clone()
    })
    .await;
    assert_eq!(skipping.verdict, Verdict::Pass, "{skipping:#?}");

    // Unusable files stop the start, naming the file.
    let missing = PrometheusTls {
        ca_file: Some(dir.join("nowhere.crt")),
        ..trusted.clone()
    };
    let error = Analyst::with_tls(&url, TIMEOUT, &missing)
        .expect_err("no CA file")
        .to_string();
    assert!(
        error.contains("CA file") && error.contains("nowhere.crt"),
        "{error}"
    );
    let keyless = PrometheusTls {
        client_key_file: None,
        ..trusted.clone()
    };
    let error = Analyst::with_tls(&url, TIMEOUT, &keyless)
        .expect_err("no key")
        .to_string();
    assert!(error.contains("needs its key"), "{error}");
    let not_pem = PrometheusTls {
        ca_file: Some(dir.join("web.yml")),
        ..trusted
    };
    let error = Analyst::with_tls(&url, TIMEOUT, &not_pem)
        .expect_err("not PEM")
        .to_string();
    assert!(error.contains("web.yml"), "{error}");
    let _ = std::fs::remove_dir_all(&dir);
}
