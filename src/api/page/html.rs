//! The status page's HTML, rendered on the server: the layout, the sign-in form, and one card per
//! Rollout (its phase, weight, step, message, release chart and latest checks). A card is also
//! what the live stream sends when a Rollout changes, so the page and its updates are one
//! rendering. Every value from the cluster is escaped.

use std::fmt::Write;

use chrono::{DateTime, Utc};
use sluice_strategies::status::RolloutStatus;

use sluice_strategies::release::candidate_share;

use super::chart::release_chart;

/// Text made safe for HTML and SVG content and attribute values.
pub fn escape(text: &str) -> String {
    let mut safe = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => safe.push_str("&amp;"),
            '<' => safe.push_str("&lt;"),
            '>' => safe.push_str("&gt;"),
            '"' => safe.push_str("&quot;"),
            '\'' => safe.push_str("&#39;"),
            c => safe.push(c),
        }
    }
    safe
}

/// The DOM id of a Rollout's card: namespaces and names never hold a `/`, so it is unique.
pub fn card_id(namespace: &str, name: &str) -> String {
    format!("rollout/{namespace}/{name}")
}

/// What a card shows of one Rollout.
pub struct CardData<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    /// `canary`, `blue/green`, or none when the spec cannot be read.
    pub strategy: Option<&'a str>,
    pub step_count: u32,
    pub status: &'a RolloutStatus,
}

/// One Rollout's card.
pub fn card(data: &CardData<'_>, now: DateTime<Utc>) -> String {
    let status = data.status;
    let phase = format!("{:?}", status.phase);
    let weight = status
        .canary_weight
        .map(|w| w.to_string())
        .unwrap_or_default();
    let in_flight = status.phase.in_flight();
    let step = status.step.map(|s| s.to_string()).unwrap_or_default();
    let (namespace, name) = (escape(data.namespace), escape(data.name));
    let mut html = String::new();
    let _ = write!(
        html,
        r#"<section class="rollout phase-{}" id="{}" data-namespace="{namespace}" data-name="{name}" data-phase="{phase}" data-weight="{weight}" data-step="{step}">"#,
        phase.to_lowercase(),
        escape(&card_id(data.namespace, data.name)),
    );
    let _ = write!(
        html,
        r#"<header><h2><a href="/?namespace={namespace}">{namespace}</a>/{name}</h2><span class="phase">{phase}</span>"#
    );
    if let Some(strategy) = data.strategy {
        let _ = write!(
            html,
            r#"<span class="strategy">{}</span>"#,
            escape(strategy)
        );
    }
    let blue_green = data.strategy == Some("blue/green");
    if in_flight {
        let share = candidate_share(status.phase, status.stage, status.canary_weight, blue_green);
        let _ = write!(
            html,
            r#"<span class="weight">{share}% of traffic on the candidate</span>"#
        );
    }
    match (status.step, data.step_count) {
        (Some(step), count) if count > 0 => {
            let _ = write!(html, r#"<span class="step">step {step}/{count}</span>"#);
        }
        (Some(step), _) => {
            let _ = write!(html, r#"<span class="step">step {step}</span>"#);
        }
        _ => {}
    }
    if status.paused {
        html.push_str(r#"<span class="paused">paused</span>"#);
    }
    html.push_str("</header>");
    if let Some(message) = &status.message {
        let _ = write!(html, r#"<p class="message">{}</p>"#, escape(message));
    }
    html.push_str(r#"<div class="release">"#);
    html.push_str(&release_chart(&status.history, now, blue_green));
    if !status.analysis.is_empty() {
        html.push_str(
            "<table class=\"checks\"><thead><tr><th>metric</th><th>value</th><th>bound</th><th>verdict</th></tr></thead><tbody>",
        );
        for check in &status.analysis {
            let value = check
                .value
                .filter(|v| v.is_finite())
                .map_or_else(|| "–".to_string(), |v| with_unit(v, &check.bound));
            let _ = write!(
                html,
                r#"<tr class="verdict-{}"><td>{}</td><td>{value}</td><td>{}</td><td>{}</td></tr>"#,
                check.verdict,
                escape(&check.name),
                escape(&check.bound),
                check.verdict
            );
        }
        html.push_str("</tbody></table>");
    }
    html.push_str("</div></section>");
    html
}

/// A value in the unit its bound is stated in (`<= 1%`, `<= 500ms`), to two decimals at most.
fn with_unit(value: f64, bound: &str) -> String {
    let unit = bound.trim_end_matches(|c: char| !(c.is_ascii_digit() || c == '.'));
    let unit = &bound[unit.len()..];
    let number = format!("{value:.2}");
    let number = number.trim_end_matches('0').trim_end_matches('.');
    format!("{number}{}", escape(unit))
}

/// The frame around a page's body: the stylesheet and, for live pages, the script, both served by
/// the controller itself.
pub fn layout(title: &str, header_extra: &str, body: &str, live: bool) -> String {
    let script = if live {
        r#"<script src="/page/live.js" defer></script>"#
    } else {
        ""
    };
    format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>{}</title><link rel="icon" href="/page/icon.svg" type="image/svg+xml"><link rel="stylesheet" href="/page/style.css">{script}</head><body><header class="top"><h1><a href="/">sluice</a></h1><span class="live-state" aria-live="polite"></span>{header_extra}</header><main>{body}</main></body></html>"#,
        escape(title)
    )
}

/// The sign-in form, with what went wrong last time if anything did.
pub fn sign_in(problem: Option<&str>) -> String {
    let problem = problem
        .map(|p| format!(r#"<p class="problem" role="alert">{}</p>"#, escape(p)))
        .unwrap_or_default();
    let body = format!(
        r#"<form id="sign-in" method="post" action="/sign-in"><h2>Sign in</h2><p>Enter a sluice API token with the <code>read</code> action. It is kept in a cookie this browser sends to this page only, and no script can read it.</p>{problem}<label for="token">Token</label><input id="token" name="token" type="password" autocomplete="current-password" required autofocus><button type="submit">Sign in</button></form>"#
    );
    layout("sluice: sign in", "", &body, false)
}

/// The overview: a card for each Rollout the viewer may read.
pub fn overview(
    cards: &[String],
    total: usize,
    namespace: Option<&str>,
    signed_in: Option<&str>,
) -> String {
    let header = signed_in
        .map(|name| {
            format!(
                r#"<form class="sign-out" method="post" action="/sign-out"><span>{}</span><button type="submit">Sign out</button></form>"#,
                escape(name)
            )
        })
        .unwrap_or_default();
    let mut body = String::new();
    let scope = namespace.map_or_else(
        || "all namespaces".to_string(),
        |n| format!("namespace {}", escape(n)),
    );
    let noun = if total == 1 { "Rollout" } else { "Rollouts" };
    let _ = write!(body, r#"<p class="scope">{total} {noun} in {scope}"#);
    if namespace.is_some() {
        body.push_str(r#" · <a href="/">all namespaces</a>"#);
    }
    if cards.len() < total {
        let _ = write!(
            body,
            " · showing the first {}: choose a namespace to see the others",
            cards.len()
        );
    }
    body.push_str("</p><div id=\"rollouts\">");
    for card in cards {
        body.push_str(card);
    }
    body.push_str("</div>");
    layout("sluice: releases", &header, &body, true)
}

#[cfg(test)]
mod tests {
    use sluice_strategies::status::{MetricResult, Phase, Verdict};

    use super::*;

    #[test]
    fn markup_in_cluster_values_is_escaped() {
        assert_eq!(
            escape(r#"<b a="x">'&'</b>"#),
            "&lt;b a=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/b&gt;"
        );
    }

    #[test]
    fn a_card_carries_the_release_in_attributes_and_words() {
        let status = RolloutStatus {
            phase: Phase::Progressing,
            step: Some(2),
            canary_weight: Some(25),
            message: Some("step 2/4: <25%>".into()),
            analysis: vec![MetricResult {
                name: "error-rate".into(),
                value: Some(0.25),
                bound: "<= 1%".into(),
                verdict: Verdict::Pass,
                reason: None,
                time: None,
            }],
            ..RolloutStatus::default()
        };
        let data = CardData {
            namespace: "erp-system",
            name: "reporting",
            strategy: Some("canary"),
            step_count: 4,
            status: &status,
        };
        let html = card(&data, Utc::now());
        assert!(html.starts_with(r#"<section class="rollout phase-progressing" id="rollout/erp-system/reporting" data-namespace="erp-system" data-name="reporting" data-phase="Progressing" data-weight="25" data-step="2">"#), "{html}");
        assert!(
            html.contains("step 2/4</span>") && html.contains("25% of traffic on the candidate")
        );
        assert!(html.contains("step 2/4: &lt;25%&gt;"));
        assert!(html.contains(r#"<tr class="verdict-pass"><td>error-rate</td><td>0.25%</td><td>&lt;= 1%</td><td>pass</td></tr>"#), "{html}");
        assert!(html.contains(r#"<svg class="release-chart""#));
        assert!(html.ends_with("</div></section>"));
        let settled = RolloutStatus {
            phase: Phase::Succeeded,
            canary_weight: Some(0),
            ..RolloutStatus::default()
        };
        let html = card(
            &CardData {
                status: &settled,
                ..data
            },
            Utc::now(),
        );
        assert!(
            !html.contains("to candidate"),
            "no weight outside a release: {html}"
        );
    }

    #[test]
    fn values_read_in_the_unit_of_their_bound() {
        assert_eq!(with_unit(83.944, "<= 500ms"), "83.94ms");
        assert_eq!(with_unit(0.0, "<= 5%"), "0%");
        assert_eq!(with_unit(2.5, ">= 1"), "2.5");
        assert_eq!(with_unit(120.0, "<= 1e3"), "120");
    }

    #[test]
    fn the_overview_says_when_it_shows_only_some() {
        let page = overview(
            &["<section></section>".into()],
            3,
            Some("shop"),
            Some("ops"),
        );
        assert!(page.contains("3 Rollouts in namespace shop"), "{page}");
        assert!(overview(&[], 1, None, None).contains("1 Rollout in all namespaces"));
        assert!(page.contains("showing the first 1"));
        assert!(page.contains(r#"action="/sign-out""#) && page.contains("<span>ops</span>"));
        assert!(page.contains(r#"<script src="/page/live.js" defer></script>"#));
        let all = overview(&[], 0, None, None);
        assert!(!all.contains("showing the first") && !all.contains("sign-out"));
    }

    #[test]
    fn the_sign_in_form_posts_the_token_and_never_puts_it_in_a_url() {
        let page = sign_in(Some("unknown <token>"));
        assert!(page.contains(r#"<form id="sign-in" method="post" action="/sign-in">"#));
        assert!(page.contains(r#"name="token" type="password""#));
        assert!(page.contains("unknown &lt;token&gt;"));
        assert!(!page.contains("live.js"));
    }
}
