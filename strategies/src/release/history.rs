//! The release history kept in the status: one transition each time the phase, stage, step or
//! weight moves or a check runs. It lives in the Rollout, so it survives restarts and every
//! replica reads the same; the API serves it and streams it (each transition's `seq` is the event
//! id a client resumes from). It is bounded so that a Rollout stays small however long it lives:
//! the current and the previous release only, each cut to its first transition and its latest.

use chrono::{DateTime, Utc};

use crate::status::{RolloutStatus, Transition};

/// Transitions kept per release: its first and the latest ones.
pub const TRANSITIONS_PER_RELEASE: usize = 32;

/// Appends to `next.history` the transition from `prev` to `next`, if there is one, and bounds it.
pub fn record_history(prev: &RolloutStatus, next: &mut RolloutStatus, now: DateTime<Utc>) {
    let checked = next.last_check_at.is_some() && next.last_check_at != prev.last_check_at;
    let moved = prev.phase != next.phase
        || prev.stage != next.stage
        || prev.step != next.step
        || prev.canary_weight != next.canary_weight;
    let new_release =
        next.release_started_at.is_some() && next.release_started_at != prev.release_started_at;
    if !(moved || checked || new_release) {
        return;
    }
    let last = next.history.last();
    // Counters read from a status anyone can edit: saturate rather than overflow.
    let seq = last.map_or(1, |t| t.seq.saturating_add(1));
    let release = match last.map(|t| t.release) {
        Some(release) if new_release => release.saturating_add(1),
        Some(release) => release,
        None if new_release => 1,
        None => 0,
    };
    let checks = if checked {
        next.analysis
            .iter()
            .cloned()
            .map(|mut check| {
                // The transition's own time says when.
                check.time = None;
                check
            })
            .collect()
    } else {
        Vec::new()
    };
    next.history.push(Transition {
        seq,
        release,
        time: now,
        phase: next.phase,
        stage: next.stage,
        step: next.step,
        weight: next.canary_weight,
        // The release that just settled still names its candidate.
        revision: next
            .candidate_revision
            .clone()
            .or_else(|| prev.candidate_revision.clone())
            .or_else(|| next.stable_revision.clone()),
        checks,
        message: next.message.clone(),
    });
    bound(&mut next.history, release);
}

/// Keeps the releases `current - 1` and `current`, each to its first transition and its latest.
fn bound(history: &mut Vec<Transition>, current: u32) {
    history.retain(|t| t.release.saturating_add(1) >= current);
    for release in [current.saturating_sub(1), current] {
        let of_release: Vec<u64> = history
            .iter()
            .filter(|t| t.release == release)
            .map(|t| t.seq)
            .collect();
        if of_release.len() > TRANSITIONS_PER_RELEASE {
            let excess = of_release.len() - TRANSITIONS_PER_RELEASE;
            // Drop the oldest after the first: how it began and how it is going stay.
            let dropped = &of_release[1..=excess];
            history.retain(|t| !dropped.contains(&t.seq));
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};

    use super::*;
    use crate::status::{MetricResult, Phase, Stage, Verdict};

    fn at(second: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap() + Duration::seconds(second)
    }

    fn stepping(step: u32, weight: u8) -> RolloutStatus {
        RolloutStatus {
            phase: Phase::Progressing,
            stage: Some(Stage::Stepping),
            step: Some(step),
            canary_weight: Some(weight),
            candidate_revision: Some("c1".into()),
            stable_revision: Some("s0".into()),
            release_started_at: Some(at(0)),
            ..RolloutStatus::default()
        }
    }

    #[test]
    fn nothing_moved_nothing_recorded() {
        let prev = stepping(1, 20);
        let mut next = prev.clone();
        next.message = Some("still waiting".into());
        record_history(&prev, &mut next, at(5));
        assert!(next.history.is_empty());
    }

    #[test]
    fn a_step_and_a_check_are_recorded_with_increasing_ids() {
        let prev = RolloutStatus::default();
        let mut next = stepping(1, 20);
        record_history(&prev, &mut next, at(0));
        let mut checked = next.clone();
        checked.last_check_at = Some(at(10));
        checked.analysis = vec![MetricResult {
            name: "error-rate".into(),
            value: Some(0.1),
            bound: "<= 1%".into(),
            verdict: Verdict::Pass,
            reason: None,
            time: Some(at(10)),
        }];
        record_history(&next, &mut checked, at(10));
        let history = &checked.history;
        assert_eq!(history.iter().map(|t| t.seq).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(history[0].release, 1, "a release started");
        assert_eq!(history[0].weight, Some(20));
        assert!(history[0].checks.is_empty());
        assert_eq!(history[1].checks.len(), 1, "the check is in its transition");
        assert_eq!(history[1].checks[0].time, None);
        assert_eq!(history[1].revision.as_deref(), Some("c1"));
    }

    #[test]
    fn only_the_current_and_previous_releases_are_kept_each_bounded() {
        let mut status = RolloutStatus::default();
        let mut second = 0;
        for release in 1..=3 {
            for step in 0..50u32 {
                second += 1;
                let mut next = status.clone();
                next.release_started_at = Some(at(release * 1000));
                next.stage = Some(Stage::Stepping);
                next.step = Some(step);
                record_history(&status, &mut next, at(second));
                status = next;
            }
        }
        let releases: Vec<u32> = status.history.iter().map(|t| t.release).collect();
        assert!(releases.iter().all(|r| [2, 3].contains(r)), "{releases:?}");
        for release in [2, 3] {
            let of: Vec<&Transition> = status
                .history
                .iter()
                .filter(|t| t.release == release)
                .collect();
            assert_eq!(of.len(), TRANSITIONS_PER_RELEASE);
            assert_eq!(of[0].step, Some(0), "its first transition stays");
            assert_eq!(of.last().and_then(|t| t.step), Some(49), "and its latest");
        }
        let seqs: Vec<u64> = status.history.iter().map(|t| t.seq).collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "ids only grow");
        assert_eq!(seqs.last(), Some(&150));
    }

    #[test]
    fn the_take_over_is_release_zero() {
        let prev = RolloutStatus::default();
        let mut next = RolloutStatus {
            phase: Phase::Ready,
            stage: Some(Stage::Steady),
            ..RolloutStatus::default()
        };
        record_history(&prev, &mut next, at(0));
        assert_eq!(next.history[0].release, 0);
    }

    #[test]
    fn counters_at_their_limits_from_an_edited_status_saturate() {
        // The fuzz target's find: a status edited to the largest numbers made the next
        // transition overflow.
        let mut prev = stepping(1, 20);
        prev.history = vec![Transition {
            seq: u64::MAX,
            release: u32::MAX,
            time: at(0),
            phase: Phase::Progressing,
            stage: Some(Stage::Stepping),
            step: Some(1),
            weight: Some(20),
            revision: Some("c1".into()),
            checks: Vec::new(),
            message: None,
        }];
        let mut next = prev.clone();
        next.release_started_at = Some(at(50));
        next.step = Some(2);
        record_history(&prev, &mut next, at(60));
        let last = next.history.last().expect("a transition");
        assert_eq!((last.seq, last.release), (u64::MAX, u32::MAX));
    }

    #[test]
    fn a_settled_release_names_the_revision_it_gave_up() {
        let prev = stepping(1, 20);
        let mut next = prev.clone();
        next.phase = Phase::RolledBack;
        next.stage = Some(Stage::Steady);
        next.candidate_revision = None;
        record_history(&prev, &mut next, at(30));
        assert_eq!(next.history[0].revision.as_deref(), Some("c1"));
        assert_eq!(next.history[0].phase, Phase::RolledBack);
    }

    #[test]
    fn a_check_already_recorded_is_not_recorded_again() {
        let mut prev = stepping(1, 20);
        prev.last_check_at = Some(at(10));
        let mut next = prev.clone();
        record_history(&prev, &mut next, at(12));
        assert!(next.history.is_empty(), "the same check, nothing moved");
    }

    #[test]
    fn a_history_over_its_bounds_is_cut_to_each_releases_first_and_latest() {
        let transition = |seq: u64, release: u32| Transition {
            seq,
            release,
            time: at(seq as i64),
            phase: Phase::Progressing,
            stage: None,
            step: None,
            weight: None,
            revision: None,
            checks: Vec::new(),
            message: None,
        };
        // As a status from a version with other bounds might hold it: 40 and 36 transitions.
        let mut history: Vec<Transition> = (1..=40)
            .map(|seq| transition(seq, 1))
            .chain((41..=76).map(|seq| transition(seq, 2)))
            .collect();
        bound(&mut history, 2);
        for (release, first, last) in [(1, 1, 40), (2, 41, 76)] {
            let seqs: Vec<u64> = history
                .iter()
                .filter(|t| t.release == release)
                .map(|t| t.seq)
                .collect();
            assert_eq!(seqs.len(), TRANSITIONS_PER_RELEASE, "release {release}");
            assert_eq!((seqs[0], seqs[seqs.len() - 1]), (first, last));
            assert_eq!(seqs[1], last + 1 - (TRANSITIONS_PER_RELEASE as u64 - 1));
        }
    }
}
