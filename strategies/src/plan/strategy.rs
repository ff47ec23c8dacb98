//! The strategy part of a spec: names, ports, canary steps and matches, blue/green durations.

use std::sync::LazyLock;
use std::time::Duration;

use regex::Regex;

use super::{
    BlueGreenPlan, CanaryPlan, DEFAULT_PREVIEW, DEFAULT_SCALE_DOWN_DELAY, DEFAULT_STEP_INTERVAL,
    Problems,
};
use crate::promql::is_k8s_name;
use crate::spec::{BlueGreenSpec, CanarySpec, IntOrString, RolloutSpec, TrafficMatch};

// Literal regexes: they compile or every test fails, so `expect` cannot fire at run time.
static DNS_LABEL: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-z]([-a-z0-9]*[a-z0-9])?$").expect("literal regex compiles"));
static PORT_NAME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$").expect("literal regex compiles")
});
static NGINX_BASIC_CHARS: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[-._~/:0-9A-Za-z]+$").expect("literal regex compiles"));
/// What ingress-nginx takes in `canary-by-header-pattern`: its basic chars and regex syntax.
static NGINX_REGEX_CHARS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[-._~/:0-9A-Za-z^$\[\](){}*+?|&=\\]+$").expect("literal regex compiles")
});

use crate::names::CANARY_SUFFIX;

pub(super) fn check_names(spec: &RolloutSpec, p: &mut Problems) {
    let target = &spec.target_ref.name;
    // The slots are `<target>-blue` and `<target>-green`: they must be valid names too.
    if !is_k8s_name(target) || target.len() + "-green".len() > 253 {
        let problem = format!(
            "{target:?} is not a Deployment name (lowercase letters, digits, '-', '.'; at most 247 characters)"
        );
        p.add("spec.targetRef.name", problem);
    }
    let service = &spec.service.name;
    // A Service name is a DNS label of at most 63 characters, and sluice adds `-canary`.
    if !DNS_LABEL.is_match(service) || service.len() + CANARY_SUFFIX.len() > 63 {
        let problem = format!(
            "{service:?} is not a Service name (a lowercase letter, then letters, digits, '-'; at most 56 characters, leaving room for -canary)"
        );
        p.add("spec.service.name", problem);
    }
    if spec.service.port == 0 {
        p.add("spec.service.port", "must be 1..=65535, got 0");
    }
    match &spec.service.target_port {
        Some(IntOrString::Int(n)) if !(1..=65535).contains(n) => p.add(
            "spec.service.targetPort",
            format!("must be 1..=65535, got {n}"),
        ),
        Some(IntOrString::String(name))
            if name.len() > 15
                || !PORT_NAME.is_match(name)
                || !name.bytes().any(|b| b.is_ascii_lowercase()) =>
        {
            let problem = format!(
                "{name:?} is not a port name (at most 15 lowercase letters, digits and '-', with a letter)"
            );
            p.add("spec.service.targetPort", problem);
        }
        _ => {}
    }
}

pub(super) fn canary_plan(
    own: &CanarySpec,
    preset: &CanarySpec,
    p: &mut Problems,
) -> Option<CanaryPlan> {
    let ingress = own.ingress_ref.as_ref().map(|r| r.name.clone());
    match &ingress {
        None => p.add(
            "spec.strategy.canary.ingressRef",
            "the canary strategy needs the Ingress that routes to the Service",
        ),
        Some(name) if !is_k8s_name(name) => {
            p.add(
                "spec.strategy.canary.ingressRef.name",
                format!("{name:?} is not an Ingress name"),
            );
        }
        Some(_) => {}
    }
    let steps: Vec<u8> = own
        .steps
        .as_ref()
        .or(preset.steps.as_ref())
        .map(|s| s.iter().map(|w| w.0).collect())
        .unwrap_or_default();
    let rising = steps.windows(2).all(|w| w[0] < w[1]);
    if steps.is_empty() {
        p.add(
            "spec.strategy.canary.steps",
            "give at least one weight, e.g. [5, 10, 25, 50]",
        );
    } else if !rising || steps.iter().any(|w| !(1..=100).contains(w)) {
        let problem = format!("weights must rise strictly, each within 1..=100, got {steps:?}");
        p.add("spec.strategy.canary.steps", problem);
    }
    let step_interval = p.duration(
        "spec.strategy.canary.stepInterval",
        own.step_interval.as_ref().or(preset.step_interval.as_ref()),
        DEFAULT_STEP_INTERVAL,
    );
    let scale_down_delay = p.duration(
        "spec.strategy.canary.scaleDownDelay",
        own.scale_down_delay
            .as_ref()
            .or(preset.scale_down_delay.as_ref()),
        DEFAULT_SCALE_DOWN_DELAY,
    );
    let traffic_match = own.match_.as_ref().or(preset.match_.as_ref()).cloned();
    if let Some(m) = &traffic_match {
        check_match(m, p);
    }
    Some(CanaryPlan {
        ingress: ingress?,
        steps,
        step_interval,
        traffic_match,
        scale_down_delay,
    })
}

/// ingress-nginx reads `canary-by-header`, `-header-value` and `canary-by-cookie` only when they
/// are letters, digits and `-._~/:` (its "basic chars"), and `-header-pattern` only when it is a
/// valid regex; any other value counts as unset, which would send the A/B phase nowhere.
fn check_match(m: &TrafficMatch, p: &mut Problems) {
    const FIELD: &str = "spec.strategy.canary.match";
    if m.header.is_none() && m.cookie.is_none() {
        p.add(FIELD, "give a header or a cookie");
    }
    let mut basic = |field: &str, what: &str, text: &str| {
        if !NGINX_BASIC_CHARS.is_match(text) {
            let problem = format!(
                "{text:?} is not {what} ingress-nginx accepts: letters, digits and -._~/: only"
            );
            p.add(&format!("{FIELD}.{field}"), problem);
        }
    };
    if let Some(h) = &m.header {
        basic("header.name", "a header name", &h.name);
        if let Some(value) = &h.value {
            basic("header.value", "a header value", value);
        }
    }
    if let Some(c) = &m.cookie {
        basic("cookie.name", "a cookie name", &c.name);
    }
    if let Some(h) = &m.header {
        if h.value.is_some() && h.pattern.is_some() {
            p.add(
                &format!("{FIELD}.header"),
                "give value or pattern, not both",
            );
        }
        if let Some(pattern) = &h.pattern {
            if !NGINX_REGEX_CHARS.is_match(pattern) {
                let problem = format!(
                    "{pattern:?} is not a pattern ingress-nginx accepts: letters, digits, -._~/: and ^$[](){{}}*+?|&=\\ only"
                );
                p.add(&format!("{FIELD}.header.pattern"), problem);
            } else if let Err(e) = Regex::new(pattern) {
                // The parser's message draws a caret under the pattern; its last line says why.
                let text = e.to_string();
                let why = text.lines().last().unwrap_or_default().trim();
                let problem = format!("{pattern:?} is not a regular expression ({why})");
                p.add(&format!("{FIELD}.header.pattern"), problem);
            }
        }
    }
}

pub(super) fn blue_green_plan(
    own: &BlueGreenSpec,
    preset: &BlueGreenSpec,
    p: &mut Problems,
) -> BlueGreenPlan {
    let field = |name: &str| format!("spec.strategy.blueGreen.{name}");
    BlueGreenPlan {
        preview_duration: p.duration(
            &field("previewDuration"),
            own.preview_duration
                .as_ref()
                .or(preset.preview_duration.as_ref()),
            DEFAULT_PREVIEW,
        ),
        post_switch_duration: p.duration(
            &field("postSwitchDuration"),
            own.post_switch_duration
                .as_ref()
                .or(preset.post_switch_duration.as_ref()),
            Duration::ZERO,
        ),
        scale_down_delay: p.duration(
            &field("scaleDownDelay"),
            own.scale_down_delay
                .as_ref()
                .or(preset.scale_down_delay.as_ref()),
            DEFAULT_SCALE_DOWN_DELAY,
        ),
    }
}
