//! The CLI as CI and people run it, against the real controller on the sandbox: `sluice release`
//! then `sluice watch` in a pipe (plain lines, exit code from the verdict), and `sluice watch` in a
//! real terminal (tmux), whose live view moves with the release.

use std::process::{Command, Output};
use std::time::Duration;

use serde_json::json;

use crate::api::env_with_api;
use crate::harness::{APP, NS, bounded, secs};

const CI: &str = "ci-token-erp";

fn sluice(base: &str, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sluice"));
    command
        .args(args)
        .env("SLUICE_SERVER", base)
        .env("SLUICE_TOKEN", CI);
    command
}

async fn run(mut command: Command) -> Output {
    tokio::task::spawn_blocking(move || command.output().expect("sluice runs"))
        .await
        .expect("joined")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ci_runs_release_then_watch_and_the_exit_code_follows_the_verdict() {
    bounded(async {
        let (env, api, _) = env_with_api(json!({})).await;
        let target = format!("{NS}/{APP}");
        let base = api.base().to_string();

        let released = run(sluice(
            &base,
            &["release", &target, "--image", "erp/reporting:1.1.0"],
        ))
        .await;
        assert!(released.status.success(), "{}", text(&released));
        assert!(
            text(&released).contains("releasing revision"),
            "{}",
            text(&released)
        );
        let watched = run(sluice(&base, &["watch", &target, "--timeout", "60s"])).await;
        let out = text(&watched);
        assert_eq!(watched.status.code(), Some(0), "promoted: {out}");
        assert!(
            out.contains("step 1/2") && out.contains("step 2/2"),
            "one line per step: {out}"
        );
        assert!(out.contains("Succeeded"), "{out}");
        assert!(
            !out.contains('\u{1b}'),
            "no terminal escapes in a pipe: {out:?}"
        );

        let faulty = run(sluice(
            &base,
            &["release", &target, "--image", "erp/reporting:1.2.0-errors"],
        ))
        .await;
        assert!(faulty.status.success(), "{}", text(&faulty));
        let watched = run(sluice(&base, &["watch", &target, "--timeout", "60s"])).await;
        assert_eq!(
            watched.status.code(),
            Some(1),
            "rolled back: {}",
            text(&watched)
        );
        assert!(text(&watched).contains("RolledBack"), "{}", text(&watched));

        let listed = run(sluice(&base, &["get"])).await;
        let out = text(&listed);
        assert!(
            listed.status.success() && out.contains("NAMESPACE") && out.contains(APP),
            "{out}"
        );
        env.finish().await;
    })
    .await;
}

/// tmux with its own server socket, so that tests never meet a user's sessions.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("tmux runs (scripts/ensure-deps installs it)")
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.run(&["capture-pane", "-p", "-t", "watch"]).stdout)
            .to_string()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_in_a_terminal_redraws_its_progress_as_the_release_moves() {
    bounded(async {
        let (env, api, _) = env_with_api(json!({})).await;
        let target = format!("{NS}/{APP}");
        let base = api.base().to_string();
        let exit_file = std::env::temp_dir().join(format!("sluice-watch-exit-{}", std::process::id()));
        let _ = std::fs::remove_file(&exit_file);
        let tmux = Tmux {
            socket: format!("sluice-e2e-{}", std::process::id()),
        };
        let released = run(sluice(&base, &["release", &target, "--image", "erp/reporting:1.1.0"])).await;
        assert!(released.status.success(), "{}", text(&released));
        let shell = format!(
            "SLUICE_SERVER={base} SLUICE_TOKEN={CI} {} watch {target} --timeout 60s; echo $? > {}; sleep 30",
            env!("CARGO_BIN_EXE_sluice"),
            exit_file.display()
        );
        let started = tmux.run(&["new-session", "-d", "-s", "watch", "-x", "120", "-y", "30", &shell]);
        assert!(started.status.success(), "{}", text(&started));

        let mut screens: Vec<String> = Vec::new();
        let deadline = tokio::time::Instant::now() + secs(70);
        while !exit_file.exists() && tokio::time::Instant::now() < deadline {
            let screen = tmux.screen();
            if screens.last() != Some(&screen) {
                screens.push(screen);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        screens.push(tmux.screen());
        let code = std::fs::read_to_string(&exit_file).unwrap_or_default();
        assert_eq!(code.trim(), "0", "watch exits 0 on promotion; screens: {screens:#?}");
        let saw = |needle: &str| screens.iter().position(|s| s.contains(needle));
        let first = saw("step 1/2").unwrap_or_else(|| panic!("step 1 shown: {screens:#?}"));
        let second = saw("step 2/2").unwrap_or_else(|| panic!("step 2 shown: {screens:#?}"));
        assert!(first < second, "the view moved from step 1 to step 2");
        assert!(screens[second].contains('#'), "a progress bar: {}", screens[second]);
        let last = screens.last().cloned().unwrap_or_default();
        assert!(last.contains("Succeeded") || last.contains("promoted"), "{last}");
        // Redrawn in place: step 1's view is gone from the final screen.
        assert!(!last.contains("step 1/2"), "the live view redraws over itself: {last}");
        let _ = std::fs::remove_file(&exit_file);
        env.finish().await;
    })
    .await;
}
