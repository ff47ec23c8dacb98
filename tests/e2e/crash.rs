//! The controller killed with SIGKILL at random instants (seeded; the seed is printed, and
//! `SLUICE_CRASH_SEED` replays one) and restarted at once, over canary and blue/green releases that
//! promote, roll back and are aborted then retried. Each restart resumes where the status says;
//! the invariants are read from the sandbox's history at the end:
//! - traffic leaves a candidate that was given up with the first write after the decision, and
//!   never comes back to it;
//! - the Service never selects a slot without a ready pod;
//! - every command is consumed once (an abort that came back would abort the retried release);
//! - every release ends as its candidate deserves;
//! - no process panicked.
//!
//! The restarted controller keeps its identity (as a container restarted in its pod keeps its
//! pod's name), so it takes its Lease back at once.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};
use sluice_strategies::status::{Phase, RolloutStatus, Slot, Stage};

use crate::harness::{APP, CANARY_SERVICE, Env, SERVICE, Setup, promoted, secs, status};
use crate::process::{Controller, start_controller};

const GOOD: [&str; 4] = [
    "erp/reporting:1.1.0",
    "erp/reporting:1.2.0",
    "erp/reporting:1.3.0",
    "erp/reporting:1.4.0",
];
/// Matches the sandbox's `erp/reporting:.*-errors` behaviour: 30% 5xx.
const BAD: [&str; 2] = ["erp/reporting:1.5.0-errors", "erp/reporting:1.6.0-errors"];
const IDENTITY: &str = "sluice-0";
const LEAST_KILLS: u32 = 30;
const RELEASE_LIMIT: Duration = Duration::from_secs(90);

/// xorshift64*: enough randomness for kill times, the same for the same seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Kills the controller at random every 1 to 4 s and starts it again, until `done`; then at least
/// up to [`LEAST_KILLS`] kills. Returns the last controller.
async fn chaos(env: &Env, seed: u64, done: &AtomicBool, kills: &AtomicU32) -> Controller {
    let mut rng = Rng(seed.max(1));
    let mut controller = start_controller(env, IDENTITY, &[]).await;
    while !done.load(Ordering::SeqCst) || kills.load(Ordering::SeqCst) < LEAST_KILLS {
        tokio::time::sleep(Duration::from_secs_f64(1.0 + 3.0 * rng.next())).await;
        controller.child.kill().expect("SIGKILL");
        controller.child.wait().expect("reaped");
        kills.fetch_add(1, Ordering::SeqCst);
        controller = start_controller(env, IDENTITY, &[]).await;
    }
    controller
}

async fn patch_rollout(env: &Env, patch: Value) {
    env.rollouts()
        .patch(APP, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .expect("the Rollout is patched");
}

async fn command(env: &Env, verb: &str) {
    patch_rollout(
        env,
        json!({"metadata": {"annotations": {"sluice.dev/command": verb}}}),
    )
    .await;
}

async fn release(env: &Env, image: &str) -> String {
    env.set_image(image).await;
    env.target_revision().await
}

async fn rolled_back(env: &Env, what: &str, stable: &str) {
    env.wait_for(what, RELEASE_LIMIT, |r| {
        let s = status(r);
        s.phase == Phase::RolledBack && s.stable_revision.as_deref() == Some(stable)
    })
    .await;
}

/// The releases, as the chaos goes on: returns the stable revision at the end.
async fn releases(env: &Env) -> String {
    env.wait_taken_over().await;

    // Canary: promoted; rolled back on 5xx; aborted mid-release, then retried and promoted.
    let v = release(env, GOOD[0]).await;
    env.wait_for("canary promoted", RELEASE_LIMIT, |r| promoted(r, &v))
        .await;
    let mut stable = v;
    release(env, BAD[0]).await;
    rolled_back(env, "canary rolled back", &stable).await;
    let v = release(env, GOOD[1]).await;
    env.wait_for("the canary at its first step", RELEASE_LIMIT, |r| {
        let s = status(r);
        s.candidate_revision.as_deref() == Some(v.as_str())
            && s.canary_weight.is_some_and(|w| w > 0)
    })
    .await;
    command(env, "abort").await;
    rolled_back(env, "canary aborted", &stable).await;
    command(env, "retry").await;
    env.wait_for("the retried canary promoted", RELEASE_LIMIT, |r| {
        promoted(r, &v)
    })
    .await;

    // Blue/green, judged on the pods' own metrics from direct traffic: promoted, rolled back.
    env.send_to_service(SERVICE, 40).await;
    env.send_to_service(CANARY_SERVICE, 10).await;
    patch_rollout(
        env,
        json!({"spec": {
            "strategy": {"canary": null, "blueGreen": {
                "previewDuration": "6s", "postSwitchDuration": "6s", "scaleDownDelay": "3s"}},
            "analysis": {"metrics": [{"name": "app-error-rate", "max": 5}, {"name": "app-latency-p99", "max": 500}]},
        }}),
    )
    .await;
    let v = release(env, GOOD[2]).await;
    env.wait_for("blue/green promoted", RELEASE_LIMIT, |r| promoted(r, &v))
        .await;
    stable = v;
    release(env, BAD[1]).await;
    rolled_back(env, "blue/green rolled back", &stable).await;
    let v = release(env, GOOD[3]).await;
    env.wait_for("blue/green promoted again", RELEASE_LIMIT, |r| {
        promoted(r, &v)
    })
    .await;
    v
}

fn other(slot: Option<Slot>) -> Option<&'static str> {
    match slot? {
        Slot::Blue => Some("green"),
        Slot::Green => Some("blue"),
    }
}

fn rolling_back(status: &RolloutStatus) -> bool {
    matches!(
        status.stage,
        Some(Stage::RollingBack | Stage::RollingBackScaleDown)
    )
}

type Times = std::collections::HashMap<u64, chrono::DateTime<chrono::Utc>>;

/// When each change of the history was made, by resourceVersion.
fn times(env: &Env) -> Times {
    env.sandbox
        .store()
        .history()
        .iter()
        .map(|e| (e.resource_version, e.time))
        .collect()
}

/// Every decision to give a candidate up: (resourceVersion, time, the candidate's slot).
fn given_up(
    statuses: &[(u64, RolloutStatus)],
    times: &Times,
) -> Vec<(u64, chrono::DateTime<chrono::Utc>, &'static str)> {
    statuses
        .windows(2)
        // A blue/green preview has no users' traffic to take off: it goes straight to the
        // scale-down.
        .filter(|pair| rolling_back(&pair[1].1) && !rolling_back(&pair[0].1))
        .filter_map(|pair| {
            let (rv, s) = &pair[1];
            Some((*rv, times[rv], other(s.stable_slot)?))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn releases_survive_sigkills_at_random_instants_and_lose_nothing() {
    let seed = std::env::var("SLUICE_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| chrono::Utc::now().timestamp_micros() as u64);
    println!("crash test seed {seed} (SLUICE_CRASH_SEED={seed} replays it)");
    let scenario = async {
        let env = Env::start(Setup::default()).await;
        env.create_rollout(APP, json!({})).await;
        let (done, kills) = (AtomicBool::new(false), AtomicU32::new(0));
        let started = Instant::now();
        let (controller, stable) = futures::join!(chaos(&env, seed, &done, &kills), async {
            let stable = releases(&env).await;
            done.store(true, Ordering::SeqCst);
            stable
        });
        let kills = kills.load(Ordering::SeqCst);
        println!("{kills} SIGKILLs over {:?} of releases", started.elapsed());
        assert!(kills >= LEAST_KILLS, "{kills} kills");

        let history = env.history();
        let statuses = history.statuses(APP);
        // Traffic off a given-up candidate with the first write after the decision, for good.
        let times = times(&env);
        let decisions = given_up(&statuses, &times);
        assert_eq!(
            decisions.len(),
            3,
            "two rollbacks and one abort: {decisions:?}"
        );
        let mut slowest = Duration::ZERO;
        for (decided, at, candidate) in &decisions {
            let next_start = statuses
                .iter()
                .find(|(rv, s)| rv > decided && s.stage == Some(Stage::Starting))
                .map_or(u64::MAX, |(rv, _)| *rv);
            let weights: Vec<(u64, String)> = history
                .canary_weights()
                .into_iter()
                .filter(|(rv, _)| rv > decided && *rv < next_start)
                .collect();
            if let Some((rv, weight)) = weights.first() {
                assert!(
                    weight == "0" || weight.is_empty(),
                    "after the decision at rv {decided}, weight {weight} at rv {rv}"
                );
            }
            assert!(
                weights.iter().all(|(_, w)| w == "0" || w.is_empty()),
                "weight back on the given-up candidate: {weights:?}"
            );
            let selected: Vec<_> = history
                .selector_slots(SERVICE)
                .into_iter()
                .filter(|(rv, _, _)| rv > decided && *rv < next_start)
                .collect();
            assert!(
                selected.iter().all(|(_, _, slot)| slot != candidate),
                "the Service went back to the given-up {candidate}: {selected:?}"
            );
            // How long the candidate kept its traffic after the decision.
            let off = history
                .of("Ingress", crate::harness::CANARY_INGRESS)
                .into_iter()
                .find(|(rv, _)| rv > decided)
                .map(|(rv, _)| rv)
                .into_iter()
                .chain(selected.first().map(|(rv, _, _)| *rv))
                .min();
            if let Some(when) = off.and_then(|rv| times.get(&rv)) {
                slowest = slowest.max((*when - *at).to_std().unwrap_or_default());
            }
        }
        // The Service selects only a slot with a ready pod.
        for (rv, _, slot) in history.selector_slots(SERVICE) {
            if slot.is_empty() {
                continue;
            }
            let deployment = history
                .at("Deployment", &format!("{APP}-{slot}"), rv)
                .unwrap_or_else(|| {
                    panic!("the Service selected {slot} at rv {rv}, which did not exist")
                });
            let ready = deployment
                .pointer("/status/readyReplicas")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            assert!(
                ready > 0,
                "the Service selected {slot} at rv {rv} with {ready} ready pods"
            );
        }
        // Each command consumed once: the abort and the retry, two nonces.
        let mut nonces: Vec<String> = statuses
            .iter()
            .filter_map(|(_, s)| s.last_command.clone())
            .collect();
        nonces.dedup();
        assert_eq!(
            nonces.len(),
            2,
            "the abort and the retry, each once: {nonces:?}"
        );
        // The longest a release went without its status changing.
        let longest = statuses
            .windows(2)
            .filter(|pair| pair[0].1.stage.is_some_and(|s| s != Stage::Steady))
            .filter_map(|pair| {
                let (from, to) = (times.get(&pair[0].0)?, times.get(&pair[1].0)?);
                Some((*to - *from).to_std().unwrap_or_default())
            })
            .max()
            .unwrap_or_default();
        assert!(
            statuses.iter().all(|(_, s)| s.message.is_some()),
            "every status says what is going on"
        );
        println!(
            "invariant violations 0; traffic off a given-up candidate at most {slowest:?} after the decision; longest without a status change in a release {longest:?}"
        );
        assert_eq!(status(&env.rollout().await).stable_revision, Some(stable));
        // Nobody edited anything by hand: a restart mistaking its own writes for repairs would say so.
        let repairs = env.event_notes(Some("Repaired")).await;
        assert!(repairs.is_empty(), "no hand edit, no repair: {repairs:#?}");
        let log = std::fs::read_to_string(&controller.log).expect("the controllers' log");
        assert!(
            !log.contains("panicked"),
            "a controller panicked: see {}",
            controller.log.display()
        );
        drop(controller);
        env.finish().await;
    };
    // Seven releases under the kills: more than one scenario's usual bound.
    crate::harness::bounded_by(secs(480), scenario).await;
}
