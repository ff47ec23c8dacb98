//! PromQL templates: `{{ var }}` placeholders filled with values that are validated first, so
//! that no value (a Rollout name, a namespace) can change what a query means. A value that is not
//! what its variable allows is an error, never escaped or passed through.

use std::sync::LazyLock;
use std::time::Duration;

use regex::Regex;

use crate::duration::format_prometheus;
use crate::status::Slot;

/// A template variable (contract: these names are what users write in custom queries).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Var {
    /// The Rollout's namespace.
    Namespace,
    /// The target Deployment's name; the slots are `<name>-blue` and `<name>-green`.
    Name,
    /// The user's (main) Ingress; canary strategy only.
    Ingress,
    /// The Service clients use.
    Service,
    /// The Service selecting the candidate slot, `<service>-canary`.
    CanaryService,
    /// The stable slot, `blue` or `green`.
    StableSlot,
    /// The candidate slot, `blue` or `green`.
    CandidateSlot,
    /// The analysis window as a Prometheus duration, e.g. `1m`.
    Interval,
}

impl Var {
    /// Every variable, in the order the docs list them.
    pub const ALL: [Var; 8] = [
        Var::Namespace,
        Var::Name,
        Var::Ingress,
        Var::Service,
        Var::CanaryService,
        Var::StableSlot,
        Var::CandidateSlot,
        Var::Interval,
    ];

    /// The name written between the braces.
    pub fn as_str(self) -> &'static str {
        match self {
            Var::Namespace => "namespace",
            Var::Name => "name",
            Var::Ingress => "ingress",
            Var::Service => "service",
            Var::CanaryService => "canary_service",
            Var::StableSlot => "stable_slot",
            Var::CandidateSlot => "candidate_slot",
            Var::Interval => "interval",
        }
    }

    fn from_name(name: &str) -> Option<Var> {
        Var::ALL.into_iter().find(|v| v.as_str() == name)
    }
}

/// Why a template could not be checked or rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// `{{ something }}` where `something` is not a variable.
    #[error(
        "unknown template variable {name:?} (known: namespace, name, ingress, service, canary_service, stable_slot, candidate_slot, interval)"
    )]
    UnknownVariable {
        /// What was between the braces, trimmed.
        name: String,
    },
    /// `{{` without a closing `}}`.
    #[error("unterminated \"{{{{\" at byte {offset}: close it with \"}}}}\"")]
    Unterminated {
        /// Where the `{{` starts.
        offset: usize,
    },
    /// A value that the variable does not allow.
    #[error("template variable {var} has the value {value:?}, which is not {expected}")]
    InvalidValue {
        /// The variable's name.
        var: &'static str,
        /// The offending value.
        value: String,
        /// What the variable allows.
        expected: &'static str,
    },
    /// A variable the template uses has no value here (e.g. `ingress` for blue/green).
    #[error("template variable {var} has no value here{hint}")]
    Missing {
        /// The variable's name.
        var: &'static str,
        /// Why it may be missing, with a leading separator, or empty.
        hint: &'static str,
    },
}

/// The values a template is rendered with. Each is validated on use by [`render`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TemplateVars {
    /// The Rollout's namespace.
    pub namespace: String,
    /// The target Deployment's name.
    pub name: String,
    /// The user's Ingress; `None` for blue/green, which has none.
    pub ingress: Option<String>,
    /// The Service clients use.
    pub service: String,
    /// The candidate's Service, `<service>-canary`.
    pub canary_service: String,
    /// `blue` or `green`.
    pub stable_slot: String,
    /// `blue` or `green`.
    pub candidate_slot: String,
    /// A Prometheus duration, e.g. `1m`.
    pub interval: String,
}

impl TemplateVars {
    /// The values for one release, derived the way sluice names its objects: the candidate slot is
    /// the other one, the canary Service is `<service>-canary`, and the interval is written in
    /// Prometheus' single-unit form. Values are still validated by [`render`].
    pub fn for_release(
        namespace: &str,
        name: &str,
        service: &str,
        ingress: Option<&str>,
        stable_slot: Slot,
        interval: Duration,
    ) -> TemplateVars {
        TemplateVars {
            namespace: namespace.to_string(),
            name: name.to_string(),
            ingress: ingress.map(str::to_string),
            service: service.to_string(),
            canary_service: crate::names::canary_service_name(service),
            stable_slot: stable_slot.as_str().to_string(),
            candidate_slot: stable_slot.other().as_str().to_string(),
            // An empty interval fails validation in render, which names it: better than a panic.
            interval: format_prometheus(interval).unwrap_or_default(),
        }
    }
}

/// A piece of a parsed template.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Segment<'a> {
    Text(&'a str),
    Var(Var),
}

fn parse(template: &str) -> Result<Vec<Segment<'_>>, TemplateError> {
    let mut segments = Vec::new();
    let mut rest = template;
    let mut offset = 0;
    while let Some(open) = rest.find("{{") {
        if open > 0 {
            segments.push(Segment::Text(&rest[..open]));
        }
        let after_open = &rest[open + 2..];
        let close = after_open.find("}}").ok_or(TemplateError::Unterminated {
            offset: offset + open,
        })?;
        let name = after_open[..close].trim();
        let var = Var::from_name(name).ok_or_else(|| TemplateError::UnknownVariable {
            name: name.to_string(),
        })?;
        segments.push(Segment::Var(var));
        let consumed = open + 2 + close + 2;
        offset += consumed;
        rest = &rest[consumed..];
    }
    if !rest.is_empty() {
        segments.push(Segment::Text(rest));
    }
    Ok(segments)
}

/// Checks a template's syntax and variable names without values (for spec validation).
pub fn check_template(template: &str) -> Result<(), TemplateError> {
    parse(template).map(|_| ())
}

/// The variables a template uses, each once, in the order of [`Var::ALL`].
pub fn template_variables(template: &str) -> Result<Vec<Var>, TemplateError> {
    let mut vars: Vec<Var> = parse(template)?
        .into_iter()
        .filter_map(|s| match s {
            Segment::Var(v) => Some(v),
            Segment::Text(_) => None,
        })
        .collect();
    vars.sort();
    vars.dedup();
    Ok(vars)
}

// Regexes are literals; they compile or the tests fail, so `expect` cannot fire at run time.
static K8S_NAME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$").expect("literal regex compiles")
});
static PROM_DURATION: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[0-9]+(ms|s|m|h|d|w|y)$").expect("literal regex compiles"));

const NAME_RULE: &str =
    "a Kubernetes name (lowercase letters, digits, '-' and '.', at most 253 characters)";
const SLOT_RULE: &str = "a slot (blue or green)";
const INTERVAL_RULE: &str = "a Prometheus duration such as 30s, 1m or 1500ms, above zero";

/// Whether `value` is a Kubernetes object name (DNS subdomain).
pub fn is_k8s_name(value: &str) -> bool {
    value.len() <= 253 && K8S_NAME.is_match(value)
}

fn validated(var: Var, vars: &TemplateVars) -> Result<&str, TemplateError> {
    let (value, ok, expected) = match var {
        Var::Namespace | Var::Name | Var::Service | Var::CanaryService => {
            let value = match var {
                Var::Namespace => &vars.namespace,
                Var::Name => &vars.name,
                Var::Service => &vars.service,
                _ => &vars.canary_service,
            };
            (value.as_str(), is_k8s_name(value), NAME_RULE)
        }
        Var::Ingress => {
            let value = vars.ingress.as_deref().ok_or(TemplateError::Missing {
                var: var.as_str(),
                hint: ": only the canary strategy has an ingress",
            })?;
            (value, is_k8s_name(value), NAME_RULE)
        }
        Var::StableSlot | Var::CandidateSlot => {
            let value = match var {
                Var::StableSlot => &vars.stable_slot,
                _ => &vars.candidate_slot,
            };
            (
                value.as_str(),
                matches!(value.as_str(), "blue" | "green"),
                SLOT_RULE,
            )
        }
        Var::Interval => {
            let value = vars.interval.as_str();
            let positive = value.bytes().any(|b| (b'1'..=b'9').contains(&b));
            (
                value,
                PROM_DURATION.is_match(value) && positive,
                INTERVAL_RULE,
            )
        }
    };
    if ok {
        Ok(value)
    } else {
        Err(TemplateError::InvalidValue {
            var: var.as_str(),
            value: value.to_string(),
            expected,
        })
    }
}

/// Renders a template with validated values. Every value the template uses is checked against
/// what its variable allows (names, slots, a duration), so a value can only ever be a plain
/// token: it cannot close a quote, a brace or a bracket.
pub fn render(template: &str, vars: &TemplateVars) -> Result<String, TemplateError> {
    let mut out = String::with_capacity(template.len() + 64);
    for segment in parse(template)? {
        match segment {
            Segment::Text(text) => out.push_str(text),
            Segment::Var(var) => out.push_str(validated(var, vars)?),
        }
    }
    Ok(out)
}

#[cfg(test)]
#[path = "promql_tests.rs"]
mod tests;
