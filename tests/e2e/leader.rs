//! Two controllers at once, as two real processes of the binary with leader election on (its
//! default): only the Lease's holder writes, the other stays ready and serves the read-only API
//! from its caches; killed with SIGKILL mid-release, the leader is replaced within one lease
//! duration, and the release ends promoted as if nothing happened. A stopped leader (SIGTERM)
//! releases its Lease, so the next takes over at once, and exits within 10 s.
//!
//! Who wrote what comes from the sandbox's history: each change carries the User-Agent of the
//! request that made it, and sluice's names the candidate (`sluice/<version> (<os>/<arch>) <id>`).

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use serde_json::json;
use sluice_sandbox::faults::{FaultAction, FaultRule, Verb};
use sluice_strategies::status::Phase;

use crate::harness::{APP, Env, NS, Setup, bounded, eventually, promoted, secs, status};
use crate::process::start_controller;

const V2: &str = "erp/reporting:1.1.0";
/// Short times, so that a takeover fits in a test: as checked by the binary, 1.2 x retry <
/// renew deadline < lease duration.
const LEASE_DURATION: Duration = Duration::from_secs(4);
const ELECTION_ARGS: [&str; 3] = [
    "--leader-elect-lease-duration=4s",
    "--leader-elect-renew-deadline=3s",
    "--leader-elect-retry-period=1s",
];

/// The Lease's holder, if any (a read that fails fails the test).
async fn holder(env: &Env) -> Option<String> {
    let leases: Api<Lease> = Api::namespaced(env.client.clone(), "default");
    let lease = leases.get_opt("sluice").await.expect("the Lease is read")?;
    lease.spec?.holder_identity.filter(|h| !h.is_empty())
}

/// The candidates that changed anything but the Lease after resourceVersion `since`, by the
/// identity at the end of their User-Agent.
fn writers_since(env: &Env, since: u64) -> BTreeSet<String> {
    env.sandbox
        .store()
        .history()
        .iter()
        .filter(|e| e.resource_version > since && e.resource.1 != "leases")
        .filter_map(|e| e.writer.as_deref())
        .filter(|agent| agent.starts_with("sluice/"))
        .filter_map(|agent| agent.rsplit(' ').next().map(str::to_string))
        .collect()
}

/// Each write of the Lease: when, and the holder it named.
fn lease_writes(env: &Env) -> Vec<(chrono::DateTime<chrono::Utc>, String)> {
    env.sandbox
        .store()
        .history()
        .iter()
        .filter(|e| e.resource.1 == "leases" && e.name == "sluice")
        .map(|e| {
            let holder = e.object["spec"]["holderIdentity"].as_str().unwrap_or("");
            (e.time, holder.to_string())
        })
        .collect()
}

async fn get(url: &str) -> reqwest::StatusCode {
    reqwest::get(url)
        .await
        .map(|r| r.status())
        .unwrap_or(reqwest::StatusCode::BAD_GATEWAY)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_two_controllers_only_the_leader_writes_and_a_killed_leader_is_replaced_unharmed() {
    bounded(async {
        let env = Env::start(Setup::default()).await;
        env.create_rollout(APP, json!({})).await;
        let a = start_controller(&env, "a", &ELECTION_ARGS).await;
        let b = start_controller(&env, "b", &ELECTION_ARGS).await;
        let stable = env.wait_taken_over().await;
        let first = eventually(secs(10), "a leader", || holder(&env)).await;
        let (leader, follower) = if first == "a" { (a, b) } else { (b, a) };

        // The follower is ready and serves reads from its caches, but writes nothing.
        let ready = format!("{}/readyz", follower.probes);
        eventually(secs(10), "the follower ready", || async {
            (get(&ready).await == 200).then_some(())
        })
        .await;
        let read = format!("{}/api/v1/namespaces/{NS}/rollouts/{APP}", follower.api);
        eventually(
            secs(10),
            "the follower's API serves the Rollout",
            || async { (get(&read).await == 200).then_some(()) },
        )
        .await;
        assert_eq!(
            writers_since(&env, 0),
            BTreeSet::from([leader.identity.to_string()]),
            "only the leader took reporting over"
        );

        let since = env.set_image(V2).await;
        let v2 = env.target_revision().await;
        env.wait_canary_weight("20").await;
        assert_eq!(
            writers_since(&env, since),
            BTreeSet::from([leader.identity.to_string()]),
            "only the leader writes the release"
        );
        assert_ne!(v2, stable);

        // The Lease cannot be renewed for 10 s: the leader's writes stop within its renew
        // deadline, so the step to 50 that falls due meanwhile waits for the Lease to come back.
        let outage = env.sandbox.faults().add(FaultRule {
            verb: Some(Verb::Update),
            resource: Some("leases".into()),
            action: FaultAction::Fail { code: 503 },
            times: None,
        });
        let outage_began = chrono::Utc::now();
        tokio::time::sleep(secs(10)).await;
        let outage_ended = chrono::Utc::now();
        env.sandbox.faults().remove(outage);
        env.wait_canary_weight("50").await;
        let fenced_from = outage_began + chrono::Duration::milliseconds(3_500);
        let written: Vec<_> = env
            .sandbox
            .store()
            .history()
            .iter()
            .filter(|e| e.resource.1 != "leases" && e.time > fenced_from && e.time < outage_ended)
            .filter(|e| {
                e.writer
                    .as_deref()
                    .is_some_and(|w| w.starts_with("sluice/"))
            })
            .map(|e| (e.resource.1.clone(), e.name.clone(), e.time))
            .collect();
        assert!(
            written.is_empty(),
            "writes after the renew deadline while the Lease could not be renewed: {written:?}"
        );
        let stepped = env
            .history()
            .canary_weights()
            .into_iter()
            .find(|(rv, w)| *rv > since && w == "50")
            .map(|(rv, _)| rv)
            .expect("the step to 50");
        let stepped_at = env
            .sandbox
            .store()
            .history()
            .iter()
            .find(|e| e.resource_version == stepped)
            .map(|e| e.time)
            .expect("its time");
        println!(
            "step to 50 {:?} after the outage ended",
            (stepped_at - outage_ended).to_std().unwrap_or_default()
        );
        assert!(
            stepped_at > outage_ended,
            "the step to 50 came during the outage, at {stepped_at}"
        );
        // Either candidate may have won the Lease back.
        let (mut leader, follower) = match holder(&env).await {
            Some(holder) if holder == follower.identity => (follower, leader),
            _ => (leader, follower),
        };

        // SIGKILL: no release of the Lease, no last write.
        let killed = chrono::Utc::now();
        leader.child.kill().expect("killed");
        leader.child.wait().expect("reaped");
        // Whatever the dead leader had on the wire has landed by now.
        let killed_at_rv = env.sandbox.store().resource_version();
        eventually(secs(15), "a new leader", || async {
            holder(&env).await.filter(|h| h == follower.identity)
        })
        .await;
        // From the history's times: the dead leader's last renewal, and the successor's takeover.
        let lease_writes = lease_writes(&env);
        let last_renewal = lease_writes
            .iter()
            .filter(|(_, holder)| holder == leader.identity)
            .map(|(at, _)| *at)
            .max()
            .expect("the leader renewed");
        let takeover = lease_writes
            .iter()
            .find(|(at, holder)| *at > killed && holder == follower.identity)
            .map(|(at, _)| *at)
            .expect("the follower took over");
        let after_kill = (takeover - killed)
            .to_std()
            .expect("the takeover after the kill");
        let after_renewal = (takeover - last_renewal)
            .to_std()
            .expect("the takeover after the last renewal");
        println!(
            "takeover {after_kill:?} after the SIGKILL, {after_renewal:?} after the dead leader's \
             last renewal (lease duration {LEASE_DURATION:?})"
        );
        // Not before the dead leader's Lease lapsed (it may write until a renew deadline after
        // its last renewal), and within one lease duration of it, give or take the requests it
        // takes to see it lapse and write the Lease.
        let slack = Duration::from_millis(500);
        assert!(
            after_renewal >= LEASE_DURATION,
            "took over {after_renewal:?} after the last renewal: before the Lease lapsed"
        );
        assert!(
            after_renewal <= LEASE_DURATION + slack && after_kill <= LEASE_DURATION + slack,
            "took over {after_kill:?} after the kill, {after_renewal:?} after the last renewal"
        );

        let done = env
            .wait_for("v2 promoted by the new leader", secs(60), |r| {
                promoted(r, &v2)
            })
            .await;
        assert_eq!(status(&done).phase, Phase::Succeeded);
        assert_eq!(
            writers_since(&env, killed_at_rv),
            BTreeSet::from([follower.identity.to_string()]),
            "after the kill only the new leader writes"
        );
        let history = env.history();
        assert_eq!(
            history.weights_since(since),
            ["20", "50", "0"],
            "the release went on from where it was, no step repeated or skipped"
        );

        // SIGTERM: the writes in flight finish, the Lease is released, the process exits in 10 s.
        let mut leader = follower;
        let term = Command::new("kill")
            .args(["-TERM", &leader.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(term.success());
        let stopped = Instant::now();
        let exit = tokio::task::spawn_blocking(move || {
            let exit = leader.child.wait();
            (leader, exit)
        });
        let (leader, exit) = tokio::time::timeout(secs(12), exit)
            .await
            .expect("exits within 12 s")
            .expect("joined");
        let took = stopped.elapsed();
        println!("exit after SIGTERM: {took:?}");
        assert!(exit.expect("waited").success(), "exits 0 on SIGTERM");
        assert!(took < secs(10), "exited {took:?} after SIGTERM");
        assert_eq!(holder(&env).await, None, "the Lease was released");
        drop(leader);
        env.finish().await;
    })
    .await;
}
