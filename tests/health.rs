//! The controller's health and metrics endpoints, served on a listener the test owns.

use std::time::Duration;

use sluice::server::{Readiness, serve};

#[tokio::test]
async fn healthz_answers_at_once_and_readyz_once_the_caches_synced() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let ready = Readiness::default();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let metrics = std::sync::Arc::new(sluice::metrics::Metrics::new());
    let server = tokio::spawn(serve(listener, ready.clone(), metrics, async move {
        let _ = stopped.await;
    }));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let status = |path: &'static str| {
        let (http, base) = (http.clone(), base.clone());
        async move {
            http.get(format!("{base}{path}"))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(status("/healthz").await, 200);
    assert_eq!(
        status("/readyz").await,
        503,
        "not ready before the caches synced"
    );
    ready.set_ready();
    assert_eq!(status("/readyz").await, 200);
    let exposition = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(exposition.contains("sluice_build_info"), "{exposition}");
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("the server stops on its signal")
        .unwrap();
}
