//! Fault injection: delays, failures and 409 storms on chosen verbs and resources, and cuts of
//! every open watch. Reliability tests of the controller are built on it.

use std::sync::Mutex;
use std::time::Duration;

use axum::http::Method;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::store::ApiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verb {
    Get,
    List,
    Watch,
    Create,
    Update,
    Patch,
    Delete,
    #[serde(rename = "deletecollection")]
    DeleteCollection,
}

impl Verb {
    /// The API server's word for it, as RBAC rules name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::List => "list",
            Verb::Watch => "watch",
            Verb::Create => "create",
            Verb::Update => "update",
            Verb::Patch => "patch",
            Verb::Delete => "delete",
            Verb::DeleteCollection => "deletecollection",
        }
    }

    /// The verb of a request on a resource path (`named`: the path names one object).
    pub fn of(method: &Method, named: bool, watch: bool) -> Option<Verb> {
        Some(match (method.as_str(), named) {
            ("GET", true) if watch => Verb::Watch,
            ("GET", true) => Verb::Get,
            ("GET", false) if watch => Verb::Watch,
            ("GET", false) => Verb::List,
            ("POST", false) => Verb::Create,
            ("PUT", true) => Verb::Update,
            ("PATCH", true) => Verb::Patch,
            ("DELETE", true) => Verb::Delete,
            ("DELETE", false) => Verb::DeleteCollection,
            _ => return None,
        })
    }
}

/// What a matching request suffers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "camelCase")]
pub enum FaultAction {
    /// Answer normally, `millis` later.
    Delay { millis: u64 },
    /// Answer with this HTTP code and a `Status` body.
    Fail { code: u16 },
    /// Answer 409 Conflict, as a write racing another writer would get.
    Conflict,
}

/// One rule. Unset `verb`/`resource` (plural, e.g. `deployments`) match everything; `times` limits
/// how many requests it affects (unset: until removed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "StrictRule")]
pub struct FaultRule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verb: Option<Verb>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    #[serde(flatten)]
    pub action: FaultAction,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub times: Option<u32>,
}

/// The wire form of a rule, refusing unknown fields: a typo like `"tims": 1` must not make a rule
/// that never expires (`flatten` alone would ignore it).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StrictRule {
    #[serde(default)]
    verb: Option<Verb>,
    #[serde(default)]
    resource: Option<String>,
    action: String,
    #[serde(default)]
    millis: Option<u64>,
    #[serde(default)]
    code: Option<u16>,
    #[serde(default)]
    times: Option<u32>,
}

impl TryFrom<StrictRule> for FaultRule {
    type Error = String;

    fn try_from(raw: StrictRule) -> Result<Self, Self::Error> {
        let action = match (raw.action.as_str(), raw.millis, raw.code) {
            ("delay", Some(millis), None) => FaultAction::Delay { millis },
            ("fail", None, Some(code)) if (400..=599).contains(&code) => FaultAction::Fail { code },
            ("conflict", None, None) => FaultAction::Conflict,
            ("delay", ..) => return Err("a delay takes `millis` and nothing else".into()),
            ("fail", ..) => {
                return Err("a fail takes a `code` from 400 to 599 and nothing else".into());
            }
            ("conflict", ..) => return Err("a conflict takes neither `millis` nor `code`".into()),
            (other, ..) => {
                return Err(format!("unknown action {other:?}: delay, fail or conflict"));
            }
        };
        Ok(FaultRule {
            verb: raw.verb,
            resource: raw.resource,
            action,
            times: raw.times,
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ActiveFault {
    pub id: u64,
    #[serde(flatten)]
    pub rule: FaultRule,
}

#[derive(Debug, Default)]
pub struct FaultOutcome {
    pub delay: Duration,
    pub error: Option<ApiError>,
}

pub struct Faults {
    rules: Mutex<(u64, Vec<ActiveFault>)>,
    cuts: watch::Sender<u64>,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            rules: Mutex::new((0, Vec::new())),
            cuts: watch::channel(0).0,
        }
    }
}

impl Faults {
    fn rules(&self) -> std::sync::MutexGuard<'_, (u64, Vec<ActiveFault>)> {
        self.rules
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds a rule; returns its id.
    pub fn add(&self, rule: FaultRule) -> u64 {
        let mut rules = self.rules();
        rules.0 += 1;
        let id = rules.0;
        rules.1.push(ActiveFault { id, rule });
        id
    }

    pub fn remove(&self, id: u64) -> bool {
        let mut rules = self.rules();
        let before = rules.1.len();
        rules.1.retain(|f| f.id != id);
        rules.1.len() != before
    }

    pub fn clear(&self) {
        self.rules().1.clear();
    }

    pub fn list(&self) -> Vec<ActiveFault> {
        self.rules().1.clone()
    }

    /// Ends every open watch stream now; clients re-watch from their last resourceVersion.
    pub fn cut_watches(&self) {
        self.cuts.send_modify(|generation| *generation += 1);
    }

    pub fn watch_cuts(&self) -> watch::Receiver<u64> {
        let mut receiver = self.cuts.subscribe();
        receiver.mark_unchanged();
        receiver
    }

    /// What this request suffers: the delays of every matching rule, and the first failure.
    pub fn check(&self, verb: Verb, resource: &str) -> FaultOutcome {
        let mut rules = self.rules();
        let mut outcome = FaultOutcome::default();
        for fault in rules.1.iter_mut() {
            let rule = &mut fault.rule;
            if rule.verb.is_some_and(|v| v != verb)
                || rule.resource.as_deref().is_some_and(|r| r != resource)
            {
                continue;
            }
            if rule.times == Some(0) {
                continue;
            }
            match &rule.action {
                FaultAction::Delay { millis } => outcome.delay += Duration::from_millis(*millis),
                FaultAction::Fail { .. } | FaultAction::Conflict if outcome.error.is_some() => {
                    continue;
                }
                FaultAction::Fail { code } => {
                    outcome.error = Some(ApiError::injected(
                        *code,
                        format!("injected fault: {verb:?} {resource} fails with {code}"),
                    ));
                }
                FaultAction::Conflict => {
                    outcome.error = Some(ApiError::conflict(
                        "",
                        resource,
                        "",
                        "the object has been modified; please apply your changes to the latest version and try again (injected)",
                    ));
                }
            }
            if let Some(times) = rule.times.as_mut() {
                *times -= 1;
            }
        }
        rules.1.retain(|f| f.rule.times != Some(0));
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limited_rule_fires_exactly_its_times_then_goes() {
        let faults = Faults::default();
        faults.add(FaultRule {
            verb: Some(Verb::Patch),
            resource: Some("deployments".into()),
            action: FaultAction::Conflict,
            times: Some(2),
        });
        assert!(faults.check(Verb::Get, "deployments").error.is_none());
        assert!(faults.check(Verb::Patch, "services").error.is_none());
        assert_eq!(
            faults
                .check(Verb::Patch, "deployments")
                .error
                .map(|e| e.code),
            Some(409)
        );
        assert_eq!(
            faults
                .check(Verb::Patch, "deployments")
                .error
                .map(|e| e.code),
            Some(409)
        );
        assert!(faults.check(Verb::Patch, "deployments").error.is_none());
        assert!(faults.list().is_empty());
    }

    #[test]
    fn delays_add_up_and_rules_parse_from_json() {
        let faults = Faults::default();
        let rule: FaultRule =
            serde_json::from_str(r#"{"action":"delay","millis":30}"#).expect("valid rule");
        faults.add(rule.clone());
        faults.add(rule);
        let fail: FaultRule = serde_json::from_str(r#"{"verb":"list","action":"fail","code":503}"#)
            .expect("valid rule");
        let id = faults.add(fail);
        let outcome = faults.check(Verb::List, "ingresses");
        assert_eq!(outcome.delay, Duration::from_millis(60));
        assert_eq!(outcome.error.map(|e| e.code), Some(503));
        assert!(faults.remove(id));
        assert!(faults.check(Verb::List, "ingresses").error.is_none());
    }

    #[test]
    fn typos_and_mismatched_fields_are_refused() {
        for bad in [
            r#"{"action":"conflict","tims":1}"#,
            r#"{"action":"fail"}"#,
            r#"{"action":"fail","code":200}"#,
            r#"{"action":"delay","code":500}"#,
            r#"{"action":"explode"}"#,
        ] {
            assert!(
                serde_json::from_str::<FaultRule>(bad).is_err(),
                "{bad} was accepted"
            );
        }
    }
}
