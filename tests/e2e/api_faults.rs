//! The API server misbehaving mid-release: 409 storms on every kind of write sluice makes, 5xx
//! answers, every request 2 s late, watch streams cut and their resumption refused with 410 Gone
//! (as after etcd's compaction), so that every cache relists. A healthy candidate is still
//! promoted and a bad one still rolled back, traffic off it before it scales down; no promotion
//! follows a check that did not pass; every status says what is going on.

use std::time::Duration;

use serde_json::json;
use sluice_sandbox::faults::{FaultAction, FaultRule, Verb};
use sluice_strategies::status::{Phase, Stage, Verdict};

use crate::harness::{APP, Env, Setup, promoted, secs, status};

const V2: &str = "erp/reporting:1.1.0";
/// Matches the sandbox's `erp/reporting:.*-errors` behaviour: 30% 5xx.
const BAD: &str = "erp/reporting:1.2.0-errors";

fn rule(
    verb: Option<Verb>,
    resource: Option<&str>,
    action: FaultAction,
    times: Option<u32>,
) -> FaultRule {
    FaultRule {
        verb,
        resource: resource.map(str::to_string),
        action,
        times,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn releases_under_api_faults_end_as_their_candidates_deserve() {
    let scenario = async {
        let (env, stable) = Env::taken_over(Setup::default(), json!({})).await;
        let faults = env.sandbox.faults();

        let since = env.set_image(V2).await;
        let v2 = env.target_revision().await;
        // Then 409 storms on the status, the slots and the canary Ingress, which also meets 503s
        // (the target is the user's, patched before them).
        faults.add(rule(
            Some(Verb::Patch),
            Some("ingresses"),
            FaultAction::Fail { code: 503 },
            Some(2),
        ));
        for (verb, resource, times) in [
            (Verb::Update, "rollouts", 8),
            (Verb::Patch, "deployments", 5),
            (Verb::Patch, "ingresses", 5),
        ] {
            faults.add(rule(
                Some(verb),
                Some(resource),
                FaultAction::Conflict,
                Some(times),
            ));
        }
        // The storms slow it down (a conflict is tried again within 1 s at most, anything else
        // within 30 s while a release is in flight).
        env.wait_canary_weight_for("20", secs(60)).await;

        // Every watch cut; each resumption refused with 410 Gone, so each cache lists again.
        faults.add(rule(
            Some(Verb::Watch),
            None,
            FaultAction::Fail { code: 410 },
            Some(6),
        ));
        faults.cut_watches();
        tokio::time::sleep(secs(1)).await;
        faults.cut_watches();
        // Then every request 2 s late, for 10 s.
        let slow = faults.add(rule(None, None, FaultAction::Delay { millis: 2000 }, None));
        tokio::time::sleep(secs(10)).await;
        faults.remove(slow);
        let done = env
            .wait_for("v2 promoted through the faults", secs(90), |r| {
                promoted(r, &v2)
            })
            .await;
        assert_eq!(status(&done).phase, Phase::Succeeded);
        let left = faults.list();
        assert!(
            left.is_empty(),
            "every injected fault was met: {left:?} remain"
        );

        let bad_since = env.set_image(BAD).await;
        // A bad candidate while the status writes fail with 500 now and then.
        faults.add(rule(
            Some(Verb::Update),
            Some("rollouts"),
            FaultAction::Fail { code: 500 },
            Some(3),
        ));
        faults.add(rule(
            Some(Verb::Patch),
            Some("deployments"),
            FaultAction::Fail { code: 502 },
            Some(2),
        ));
        let given_up = env
            .wait_for("the bad candidate rolled back", secs(90), |r| {
                status(r).phase == Phase::RolledBack
            })
            .await;
        assert_eq!(status(&given_up).stable_revision, Some(v2.clone()));
        assert_ne!(stable, v2);
        let history = env.history();
        history.assert_weight_zero_before_scale_down("reporting-blue", bad_since);

        // No promotion on a check that did not pass, and never a status without a message.
        let statuses = history.statuses(APP);
        for pair in statuses.windows(2) {
            let (before, after) = (&pair[0].1, &pair[1].1);
            if after.stage == Some(Stage::PromotingScale)
                && before.stage != Some(Stage::PromotingScale)
            {
                assert!(
                    !after.analysis.is_empty()
                        && after.analysis.iter().all(|m| m.verdict == Verdict::Pass),
                    "promoted at rv {} after {:?}",
                    pair[1].0,
                    after.analysis
                );
            }
        }
        assert!(
            statuses.iter().all(|(_, s)| s.message.is_some()),
            "a status without a message"
        );
        let promotions = statuses
            .windows(2)
            .filter(|p| {
                p[1].1.stage == Some(Stage::PromotingScale)
                    && p[0].1.stage != Some(Stage::PromotingScale)
            })
            .count();
        assert_eq!(promotions, 1, "v2 alone was promoted");
        assert!(since < bad_since);
        env.finish().await;
    };
    crate::harness::bounded_by(Duration::from_secs(240), scenario).await;
}
