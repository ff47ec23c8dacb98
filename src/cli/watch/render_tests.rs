use super::*;
use crate::api::types::TransitionView;
use crate::cli::fixtures::{detail, step, transition};

fn target() -> Target {
    "shop/web".parse().expect("valid target")
}

#[test]
fn a_step_is_one_plain_line() {
    assert_eq!(
        plain_line(&step(10, 2, 50), 4),
        "12:00:10  Progressing  step 2/4  weight 50%  \
         error-rate 0.2 (bound <= 1%): pass, latency-p99 57 (bound <= 500ms): pass"
    );
}

#[test]
fn the_end_of_a_release_shows_its_message() {
    let promoted = TransitionView {
        message: Some("revision cand promoted: green serves all traffic".to_string()),
        ..transition(30, 2, "cand", "Succeeded")
    };
    assert_eq!(
        plain_line(&promoted, 4),
        "12:00:30  Succeeded    revision cand promoted: green serves all traffic"
    );
    let rolled_back = TransitionView {
        message: Some("rolled back cand".to_string()),
        checks: vec![crate::cli::fixtures::check(
            "error-rate",
            Some(23.5),
            "<= 1%",
            "fail",
        )],
        ..transition(31, 2, "cand", "RolledBack")
    };
    assert_eq!(
        plain_line(&rolled_back, 4),
        "12:00:31  RolledBack   error-rate 23.5 (bound <= 1%): fail  rolled back cand"
    );
}

#[test]
fn a_blue_green_stage_has_no_step_count() {
    let preview = TransitionView {
        stage: Some("preview".to_string()),
        message: Some("previewing cand".to_string()),
        ..transition(3, 1, "cand", "Progressing")
    };
    assert_eq!(
        plain_line(&preview, 0),
        "12:00:03  Progressing  preview  previewing cand"
    );
}

#[test]
fn progress_bars() {
    assert_eq!(
        progress_bar(Some(2), 4, "Progressing"),
        "[#####.....] step 2/4"
    );
    assert_eq!(
        progress_bar(Some(1), 3, "Progressing"),
        "[###.......] step 1/3"
    );
    assert_eq!(progress_bar(None, 4, "Ready"), "[..........] step -/4");
    assert_eq!(progress_bar(None, 4, "Succeeded"), "[##########] step 4/4");
    assert_eq!(
        progress_bar(Some(9), 4, "Progressing"),
        "[##########] step 4/4"
    );
}

#[test]
fn the_live_view_shows_progress_weight_and_each_metric() {
    let view = live_view(&target(), "cand", &detail(), Some(&step(10, 2, 50)));
    let expected = "\
shop/web  revision cand
Progressing  step 2/4: 50% to green
[#####.....] step 2/4  weight 50%
  error-rate    0.2   <= 1%      pass
  latency-p99   57    <= 500ms   pass
";
    assert_eq!(view, expected);
}

#[test]
fn the_live_view_of_blue_green_names_the_stage() {
    let mut blue_green = detail();
    blue_green.summary.step = None;
    blue_green.summary.step_count = 0;
    blue_green.summary.weight = None;
    blue_green.analysis.clear();
    let preview = TransitionView {
        stage: Some("preview".to_string()),
        ..transition(3, 1, "cand", "Progressing")
    };
    let view = live_view(&target(), "cand", &blue_green, Some(&preview));
    assert!(
        view.contains("\nstage preview  weight -\n  no check yet\n"),
        "{view}"
    );
}

#[test]
fn redraw_goes_back_over_the_previous_view() {
    assert_eq!(redraw(0, "a\nb\n"), "\r\x1b[J\x1b[?7la\nb\n\x1b[?7h");
    assert_eq!(redraw(5, "a\n"), "\x1b[5A\r\x1b[J\x1b[?7la\n\x1b[?7h");
}

#[test]
fn outcome_lines() {
    let mut rollout = detail();
    assert_eq!(
        outcome_line(&target(), "cand", Outcome::Promoted, &rollout, None),
        "shop/web: revision cand is stable"
    );
    assert_eq!(
        outcome_line(
            &target(),
            "cand",
            Outcome::TimedOut,
            &rollout,
            Some(Duration::from_secs(600))
        ),
        "shop/web: timed out after 10m waiting for revision cand (phase Progressing, step 2/4)"
    );
    rollout.summary.phase = "RolledBack".to_string();
    rollout.rollback_reason = Some("error-rate 23.5% > 1%".to_string());
    assert_eq!(
        outcome_line(&target(), "cand", Outcome::GivenUp, &rollout, None),
        "shop/web: revision cand was rolled back: error-rate 23.5% > 1%"
    );
    rollout.summary.phase = "Failed".to_string();
    rollout.summary.message = Some("no Deployment shop/web".to_string());
    assert_eq!(
        outcome_line(&target(), "cand", Outcome::GivenUp, &rollout, None),
        "shop/web: failed: no Deployment shop/web"
    );
}
