//! The release chart of the status page: one SVG per Rollout, drawn from the transitions its
//! status keeps for the current release. The candidate's share of traffic is a stepped line over
//! time, read from the stage as well as the weight (a rollback takes it to none at once, a
//! switched Service gives it all), each step change a dashed rule with its number, each check a
//! dot above the plot in the colour of its worst verdict, with the values and bounds in its
//! tooltip. Pure: the time to draw up to comes in.

use std::fmt::Write;

use chrono::{DateTime, Utc};
use sluice_strategies::release::candidate_share;
use sluice_strategies::status::{MetricResult, Transition, Verdict};

use super::html::escape;

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 150.0;
const LEFT: f64 = 44.0;
const RIGHT: f64 = 12.0;
/// Room for the check dots above the plot.
const TOP: f64 = 30.0;
const BOTTOM: f64 = 22.0;

/// The transitions of the release the history ends with.
pub fn current_release(history: &[Transition]) -> &[Transition] {
    let Some(last) = history.last() else {
        return &[];
    };
    let first = history
        .iter()
        .position(|t| t.release == last.release)
        .unwrap_or(history.len());
    &history[first..]
}

/// The candidate's share of traffic after a transition, in percent.
fn share_after(transition: &Transition, blue_green: bool) -> u8 {
    candidate_share(
        transition.phase,
        transition.stage,
        transition.weight,
        blue_green,
    )
}

/// Whether the release is still moving (the chart runs up to now) or settled (up to its end).
fn in_flight(transition: &Transition) -> bool {
    transition.phase.in_flight()
}

/// The worst verdict of a check: error, then fail, then inconclusive, then pass.
fn worst(checks: &[MetricResult]) -> Option<Verdict> {
    let rank = |v: &Verdict| match v {
        Verdict::Error => 3,
        Verdict::Fail => 2,
        Verdict::Inconclusive => 1,
        Verdict::Pass => 0,
    };
    checks.iter().map(|c| c.verdict).max_by_key(rank)
}

/// `95s` as `1m35s`, for the time axis.
fn duration_label(seconds: i64) -> String {
    let seconds = seconds.max(0);
    match seconds {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m{:02}s", s / 60, s % 60),
        s => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

fn check_title(transition: &Transition, seconds: i64) -> String {
    let mut title = format!("check at +{}", duration_label(seconds));
    for check in &transition.checks {
        let value = check
            .value
            .filter(|v| v.is_finite())
            .map_or_else(|| "no value".to_string(), |v| format!("{v:.3}"));
        let _ = write!(
            title,
            "\n{}: {value} ({}) {}",
            check.name, check.bound, check.verdict
        );
        if let Some(reason) = &check.reason {
            let _ = write!(title, ", {reason}");
        }
    }
    title
}

/// Where things go on the chart of one release.
struct Plot {
    start: DateTime<Utc>,
    /// Milliseconds the x axis spans (at least a second, so that nothing divides by zero).
    span: f64,
}

impl Plot {
    fn x(&self, time: DateTime<Utc>) -> f64 {
        let width = WIDTH - LEFT - RIGHT;
        LEFT + (time - self.start).num_milliseconds() as f64 / self.span * width
    }

    fn y(&self, share: u8) -> f64 {
        TOP + (HEIGHT - TOP - BOTTOM) * (1.0 - f64::from(share) / 100.0)
    }
}

/// The SVG of the release `history` ends with, drawn up to `now` while it is in flight.
pub fn release_chart(history: &[Transition], now: DateTime<Utc>, blue_green: bool) -> String {
    let release = current_release(history);
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="release-chart" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" role="img" xmlns="http://www.w3.org/2000/svg">"#
    );
    let (Some(first), Some(last)) = (release.first(), release.last()) else {
        svg.push_str(r#"<title>No release yet</title><text class="empty" x="320" y="80" text-anchor="middle">No release yet</text></svg>"#);
        return svg;
    };
    let end = if in_flight(last) {
        now.max(last.time)
    } else {
        last.time
    };
    let plot = Plot {
        start: first.time,
        span: (end - first.time).num_milliseconds().max(1000) as f64,
    };
    let took = duration_label((end - first.time).num_seconds());
    let _ = write!(
        svg,
        "<title>Release {}: the candidate's share of traffic, steps and checks over {took}</title>",
        first.release
    );
    frame(&mut svg, &plot, &took);
    step_rules(&mut svg, &plot, release);
    let share = share_line(&mut svg, &plot, release, end, blue_green);
    check_dots(&mut svg, &plot, release);
    let phase = format!("{:?}", last.phase);
    let _ = write!(
        svg,
        r#"<circle class="now phase-{}" cx="{:.1}" cy="{:.1}" r="4"><title>{phase}</title></circle></svg>"#,
        phase.to_lowercase(),
        plot.x(end),
        plot.y(share)
    );
    svg
}

/// The 0, 50 and 100 % rules, the time axis and what the rows are.
fn frame(svg: &mut String, plot: &Plot, took: &str) {
    for share in [0u8, 50, 100] {
        let _ = write!(
            svg,
            r#"<line class="grid" x1="{LEFT}" x2="{:.1}" y1="{y:.1}" y2="{y:.1}"/><text class="axis" x="{:.1}" y="{:.1}" text-anchor="end">{share}%</text>"#,
            WIDTH - RIGHT,
            LEFT - 6.0,
            plot.y(share) + 4.0,
            y = plot.y(share),
        );
    }
    let bottom = HEIGHT - 6.0;
    let _ = write!(
        svg,
        r#"<text class="axis" x="{LEFT}" y="{bottom:.1}">0s</text><text class="axis" x="{:.1}" y="{bottom:.1}" text-anchor="end">+{took}</text>"#,
        WIDTH - RIGHT,
    );
    let _ = write!(
        svg,
        r#"<text class="axis" x="{:.1}" y="16" text-anchor="end">checks</text><text class="legend" x="{:.1}" y="{bottom:.1}" text-anchor="middle">share of traffic on the candidate</text>"#,
        LEFT - 6.0,
        LEFT + (WIDTH - LEFT - RIGHT) / 2.0,
    );
}

/// A dashed rule with its number where each step begins.
fn step_rules(svg: &mut String, plot: &Plot, release: &[Transition]) {
    let mut step = None;
    for transition in release {
        if transition.step == step {
            continue;
        }
        if let Some(number) = transition.step {
            let at = plot.x(transition.time);
            let _ = write!(
                svg,
                r#"<line class="step" x1="{at:.1}" x2="{at:.1}" y1="{TOP}" y2="{:.1}"/><text class="step-label" x="{:.1}" y="{:.1}">{number}</text>"#,
                HEIGHT - BOTTOM,
                at + 3.0,
                TOP + 10.0
            );
        }
        step = transition.step;
    }
}

/// The candidate's share, held from each transition to the next, then to the end; the share it
/// ends at.
fn share_line(
    svg: &mut String,
    plot: &Plot,
    release: &[Transition],
    end: DateTime<Utc>,
    blue_green: bool,
) -> u8 {
    let mut points = String::new();
    let mut share = 0;
    for (i, transition) in release.iter().enumerate() {
        let at = plot.x(transition.time);
        if i > 0 {
            let _ = write!(points, "{at:.1},{:.1} ", plot.y(share));
        }
        share = share_after(transition, blue_green);
        let _ = write!(points, "{at:.1},{:.1} ", plot.y(share));
    }
    let _ = write!(points, "{:.1},{:.1}", plot.x(end), plot.y(share));
    let _ = write!(svg, r#"<polyline class="weight" points="{points}"/>"#);
    share
}

/// A dot per check, in the colour of its worst verdict, with the values in its tooltip.
fn check_dots(svg: &mut String, plot: &Plot, release: &[Transition]) {
    for transition in release {
        let Some(verdict) = worst(&transition.checks) else {
            continue;
        };
        let seconds = (transition.time - plot.start).num_seconds();
        let _ = write!(
            svg,
            r#"<circle class="check verdict-{verdict}" cx="{:.1}" cy="12" r="5"><title>{}</title></circle>"#,
            plot.x(transition.time),
            escape(&check_title(transition, seconds))
        );
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use sluice_strategies::status::Phase;

    use super::*;

    fn at(seconds: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000 + seconds, 0).unwrap()
    }

    fn transition(seq: u64, release: u32, seconds: i64, phase: Phase) -> Transition {
        Transition {
            seq,
            release,
            time: at(seconds),
            phase,
            stage: None,
            step: None,
            weight: None,
            revision: None,
            checks: Vec::new(),
            message: None,
        }
    }

    fn check(name: &str, verdict: Verdict) -> MetricResult {
        MetricResult {
            name: name.into(),
            value: Some(0.5),
            bound: "<= 1%".into(),
            verdict,
            reason: None,
            time: None,
        }
    }

    #[test]
    fn only_the_release_the_history_ends_with_is_drawn() {
        let history = vec![
            transition(1, 1, 0, Phase::Progressing),
            transition(2, 1, 10, Phase::Succeeded),
            transition(3, 2, 20, Phase::Progressing),
            transition(4, 2, 30, Phase::RolledBack),
        ];
        let release = current_release(&history);
        assert_eq!(release.iter().map(|t| t.seq).collect::<Vec<_>>(), [3, 4]);
        assert!(current_release(&[]).is_empty());
    }

    #[test]
    fn the_share_line_steps_with_the_weight_and_ends_on_the_outcome() {
        let mut stepped = transition(2, 1, 10, Phase::Progressing);
        stepped.weight = Some(50);
        stepped.step = Some(2);
        let history = vec![
            transition(1, 1, 0, Phase::Progressing),
            stepped,
            transition(3, 1, 20, Phase::Succeeded),
        ];
        let svg = release_chart(&history, at(999), false);
        // 0 % held to 10 s, 50 % to 20 s, then all the traffic: the settled release ends at 20 s.
        let plot = |share: f64| TOP + (HEIGHT - TOP - BOTTOM) * (1.0 - share / 100.0);
        let expected = format!(
            r#"points="44.0,{a:.1} 336.0,{a:.1} 336.0,{b:.1} 628.0,{b:.1} 628.0,{c:.1} 628.0,{c:.1}""#,
            a = plot(0.0),
            b = plot(50.0),
            c = plot(100.0)
        );
        assert!(svg.contains(&expected), "{svg}");
        assert!(svg.contains(r#"class="step-label""#) && svg.contains(">2</text>"));
        assert!(svg.contains("+20s"), "{svg}");
    }

    #[test]
    fn a_release_in_flight_runs_to_now_and_a_rolled_back_one_ends_at_zero() {
        let mut stepped = transition(1, 1, 0, Phase::Progressing);
        stepped.weight = Some(20);
        let svg = release_chart(&[stepped.clone()], at(60), false);
        assert!(svg.contains("+1m00s"), "{svg}");
        let rolled_back = transition(2, 1, 30, Phase::RolledBack);
        let svg = release_chart(&[stepped, rolled_back], at(600), false);
        assert!(svg.contains("+30s") && !svg.contains("+10m"), "{svg}");
        let zero = format!("628.0,{:.1}\"", HEIGHT - BOTTOM);
        assert!(svg.contains(&zero), "{svg}");
        assert!(svg.contains("phase-rolledback"));
    }

    #[test]
    fn each_check_is_a_dot_of_its_worst_verdict_with_values_in_its_title() {
        let mut checked = transition(2, 1, 10, Phase::Progressing);
        checked.checks = vec![
            check("error-rate", Verdict::Pass),
            check("latency-p99", Verdict::Fail),
        ];
        let mut odd = transition(3, 1, 20, Phase::Progressing);
        odd.checks = vec![
            check("error-rate", Verdict::Inconclusive),
            check("latency-<p99>", Verdict::Error),
        ];
        let history = vec![transition(1, 1, 0, Phase::Progressing), checked, odd];
        let svg = release_chart(&history, at(20), false);
        assert!(svg.contains(r#"class="check verdict-fail""#), "{svg}");
        assert!(svg.contains(r#"class="check verdict-error""#), "{svg}");
        assert_eq!(svg.matches("class=\"check ").count(), 2);
        assert!(svg.contains("latency-p99: 0.500 (&lt;= 1%) fail"), "{svg}");
        assert!(svg.contains("latency-&lt;p99&gt;") && !svg.contains("<p99>"));
    }

    #[test]
    fn no_release_is_said_in_words() {
        let svg = release_chart(&[], at(0), false);
        assert!(svg.starts_with("<svg class=\"release-chart\"") && svg.contains("No release yet"));
        assert!(svg.ends_with("</svg>"));
    }

    #[test]
    fn a_settled_release_of_one_transition_is_labelled_by_what_it_took() {
        let svg = release_chart(&[transition(1, 1, 0, Phase::RolledBack)], at(50), false);
        assert!(svg.contains(">+0s</text>"), "{svg}");
    }

    #[test]
    fn durations_read_as_people_say_them() {
        assert_eq!(duration_label(-3), "0s");
        assert_eq!(duration_label(59), "59s");
        assert_eq!(duration_label(95), "1m35s");
        assert_eq!(duration_label(3600 + 120), "1h02m");
    }
}
