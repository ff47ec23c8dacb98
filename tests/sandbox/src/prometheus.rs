//! Runs the real Prometheus (Debian's `prometheus` package) on a free port, scraping the sandbox
//! every second, on a temporary data directory that goes with it. It also scrapes, in job
//! `sluice`, whatever controller a test points it at ([`Prometheus::scrape_controller`]): the
//! targets are a file-based service discovery file, which Prometheus reads again when it changes.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::time::Instant;

/// Where to look for the binary when `SANDBOX_PROMETHEUS_BIN` is not set and it is not on PATH.
const DEBIAN_PATH: &str = "/usr/bin/prometheus";
const READY_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum PrometheusError {
    #[error(
        "Prometheus is not installed: install Debian's package (`apt-get install -y prometheus`) or set SANDBOX_PROMETHEUS_BIN to its binary"
    )]
    NotInstalled,
    #[error("cannot prepare Prometheus's directory {path}: {source}")]
    Prepare {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot start Prometheus ({binary}): {source}")]
    Spawn {
        binary: String,
        source: std::io::Error,
    },
    #[error("Prometheus did not become ready on {url} within {seconds}s; its log: {log}")]
    NotReady {
        url: String,
        seconds: u64,
        log: String,
    },
}

pub struct Prometheus {
    child: Child,
    url: String,
    dir: PathBuf,
}

/// Where Debian's Prometheus is: `SANDBOX_PROMETHEUS_BIN`, else on `PATH`, else where Debian puts it.
pub fn find_binary() -> Option<PathBuf> {
    if let Some(explicit) = std::env::var_os("SANDBOX_PROMETHEUS_BIN") {
        return Some(PathBuf::from(explicit));
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join("prometheus"))
        .find(|candidate| candidate.is_file());
    on_path.or_else(|| Some(PathBuf::from(DEBIAN_PATH)).filter(|p| p.is_file()))
}

fn free_port() -> std::io::Result<u16> {
    // The port is free when we look; Prometheus binds it a moment later. A clash fails readiness
    // and the caller sees it.
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// The file of the `sluice` job's targets.
const CONTROLLER_TARGETS: &str = "sluice-targets.json";

fn config(target: &str, metrics_path: &str, controller_targets: &Path) -> String {
    format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: sluice-sandbox\n    metrics_path: {metrics_path}\n    static_configs:\n      - targets: ['{target}']\n  - job_name: sluice\n    file_sd_configs:\n      - files: ['{}']\n        refresh_interval: 1s\n",
        controller_targets.display()
    )
}

/// One plain HTTP/1.0 GET; Some(status code) when anything answered.
pub async fn http_get_status(addr: &str, path: &str) -> Option<u16> {
    let mut stream = tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(addr))
        .await
        .ok()?
        .ok()?;
    let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut head = [0u8; 32];
    let n = tokio::time::timeout(Duration::from_secs(2), stream.read(&mut head))
        .await
        .ok()?
        .ok()?;
    let text = std::str::from_utf8(&head[..n]).ok()?;
    text.split_whitespace().nth(1)?.parse().ok()
}

impl Prometheus {
    /// Starts Prometheus scraping `target` (`host:port`) at `metrics_path`; returns once it is ready.
    pub async fn start(target: &str, metrics_path: &str) -> Result<Prometheus, PrometheusError> {
        let binary = find_binary().ok_or(PrometheusError::NotInstalled)?;
        let dir = std::env::temp_dir().join(format!(
            "sluice-sandbox-prometheus-{}-{}",
            std::process::id(),
            free_port().unwrap_or(0)
        ));
        let prepare = |source| PrometheusError::Prepare {
            path: dir.display().to_string(),
            source,
        };
        std::fs::create_dir_all(dir.join("data")).map_err(prepare)?;
        let controller_targets = dir.join(CONTROLLER_TARGETS);
        std::fs::write(&controller_targets, "[]").map_err(prepare)?;
        std::fs::write(
            dir.join("prometheus.yml"),
            config(target, metrics_path, &controller_targets),
        )
        .map_err(prepare)?;
        let port = free_port().map_err(prepare)?;
        let log = std::fs::File::create(dir.join("prometheus.log")).map_err(prepare)?;
        let log_err = log.try_clone().map_err(prepare)?;
        let listen = format!("127.0.0.1:{port}");
        let child = Command::new(&binary)
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={listen}"))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| PrometheusError::Spawn {
                binary: binary.display().to_string(),
                source,
            })?;
        let mut prometheus = Prometheus {
            child,
            url: format!("http://{listen}"),
            dir,
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        while Instant::now() < deadline {
            if http_get_status(&listen, "/-/ready").await == Some(200) {
                tracing::info!(url = %prometheus.url, "prometheus ready");
                return Ok(prometheus);
            }
            if let Ok(Some(_exited)) = prometheus.child.try_wait() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let log =
            std::fs::read_to_string(prometheus.dir.join("prometheus.log")).unwrap_or_default();
        let url = prometheus.url.clone();
        prometheus.stop().await;
        Err(PrometheusError::NotReady {
            url,
            seconds: READY_TIMEOUT.as_secs(),
            log: tail(&log, 2000),
        })
    }

    pub fn url(&self) -> String {
        self.url.clone()
    }

    pub fn data_dir(&self) -> &Path {
        &self.dir
    }

    /// Scrapes `target` (`host:port`, serving `/metrics`) in job `sluice` from now on, instead of
    /// the one before. The file is replaced in one rename, so Prometheus never reads half of it.
    pub fn scrape_controller(&self, target: &str) -> std::io::Result<()> {
        let targets = serde_json::json!([{"targets": [target]}]).to_string();
        let written = self.dir.join(format!("{CONTROLLER_TARGETS}.new"));
        std::fs::write(&written, targets)?;
        std::fs::rename(written, self.dir.join(CONTROLLER_TARGETS))
    }

    /// Stops Prometheus and removes its temporary directory.
    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        // `stop` is the clean way; a dropped runner still must not leave a process or a directory.
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn tail(text: &str, max: usize) -> String {
    let start = text.len().saturating_sub(max);
    let start = (start..text.len())
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(text.len());
    text[start..].to_string()
}
