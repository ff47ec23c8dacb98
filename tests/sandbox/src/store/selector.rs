//! Label and field selectors, in their query-string and object forms.

use serde_json::{Map, Value};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SelectorError {
    #[error("invalid label selector {selector:?}: {reason}")]
    InvalidLabelSelector { selector: String, reason: String },
    #[error("invalid field selector {selector:?}: {reason}")]
    InvalidFieldSelector { selector: String, reason: String },
    #[error(
        "field selector {selector:?}: field {field:?} is not supported \
         (only metadata.name and metadata.namespace are)"
    )]
    UnsupportedField { selector: String, field: String },
    #[error("invalid label selector object {selector}: {reason}")]
    InvalidSelectorObject { selector: String, reason: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Operator {
    Equals(String),
    NotEquals(String),
    In(Vec<String>),
    NotIn(Vec<String>),
    Exists,
    DoesNotExist,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Requirement {
    key: String,
    operator: Operator,
}

/// A parsed `labelSelector` query string: `a=b`, `a==b`, `a!=b`, `a in (x,y)`,
/// `a notin (x)`, `a` (exists), `!a`. Comma-separated requirements are ANDed,
/// whitespace is tolerated, and the empty string matches everything.
/// Keys and values are validated loosely (character set only, no lengths).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
}

/// Label values are strings; anything else is compared by its JSON text.
fn label_value(labels: Option<&Map<String, Value>>, key: &str) -> Option<String> {
    match labels?.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

fn is_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/')
}

fn is_value_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
}

impl Requirement {
    fn matches(&self, labels: Option<&Map<String, Value>>) -> bool {
        let value = label_value(labels, &self.key);
        match (&self.operator, value) {
            (Operator::Exists, value) => value.is_some(),
            (Operator::DoesNotExist, value) => value.is_none(),
            (Operator::Equals(wanted), value) => value.as_ref() == Some(wanted),
            // As in Kubernetes, `!=` and `notin` also select objects lacking the label.
            (Operator::NotEquals(unwanted), value) => value.as_ref() != Some(unwanted),
            (Operator::In(set), value) => value.is_some_and(|v| set.contains(&v)),
            (Operator::NotIn(set), value) => !value.is_some_and(|v| set.contains(&v)),
        }
    }

    /// Parses one requirement; the error is the reason only.
    fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("empty requirement".into());
        }
        if let Some(key) = text.strip_prefix('!') {
            let key = parse_key(key.trim())?;
            return Ok(Requirement {
                key,
                operator: Operator::DoesNotExist,
            });
        }
        let key_end = text.find(|c| !is_key_char(c)).unwrap_or(text.len());
        let key = parse_key(&text[..key_end])?;
        let rest = text[key_end..].trim_start();
        let operator = if rest.is_empty() {
            Operator::Exists
        } else if let Some(value) = rest.strip_prefix("!=") {
            Operator::NotEquals(parse_value(value)?)
        } else if let Some(value) = rest.strip_prefix("==").or_else(|| rest.strip_prefix('=')) {
            Operator::Equals(parse_value(value)?)
        } else if let Some(set) = strip_keyword(rest, "notin") {
            Operator::NotIn(parse_set(set)?)
        } else if let Some(set) = strip_keyword(rest, "in") {
            Operator::In(parse_set(set)?)
        } else {
            return Err(format!("unknown operator in {text:?}"));
        };
        Ok(Requirement { key, operator })
    }
}

fn parse_key(key: &str) -> Result<String, String> {
    if key.is_empty() {
        return Err("empty label key".into());
    }
    if !key.chars().all(is_key_char) {
        return Err(format!("invalid label key {key:?}"));
    }
    Ok(key.to_owned())
}

fn parse_value(value: &str) -> Result<String, String> {
    let value = value.trim();
    if !value.chars().all(is_value_char) {
        return Err(format!("invalid label value {value:?}"));
    }
    Ok(value.to_owned())
}

/// `rest` minus a leading operator word, which must not run into more letters.
fn strip_keyword<'a>(rest: &'a str, keyword: &str) -> Option<&'a str> {
    let after = rest.strip_prefix(keyword)?;
    (after.starts_with('(') || after.starts_with(char::is_whitespace)).then_some(after)
}

fn parse_set(set: &str) -> Result<Vec<String>, String> {
    let inner = set
        .trim()
        .strip_prefix('(')
        .and_then(|s| s.strip_suffix(')'))
        .ok_or_else(|| format!("expected a parenthesised value set, found {:?}", set.trim()))?;
    if inner.trim().is_empty() {
        return Err("the value set of `in`/`notin` must not be empty".into());
    }
    inner.split(',').map(parse_value).collect()
}

/// Splits at commas outside parentheses, checking that they balance.
fn split_top_level(text: &str) -> Result<Vec<&str>, String> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0usize, 0);
    for (i, c) in text.char_indices() {
        match c {
            '(' if depth > 0 => return Err("nested parentheses".into()),
            '(' => depth += 1,
            ')' if depth == 0 => return Err("unbalanced parentheses".into()),
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err("unbalanced parentheses".into());
    }
    parts.push(&text[start..]);
    Ok(parts)
}

impl LabelSelector {
    pub fn parse(text: &str) -> Result<Self, SelectorError> {
        let invalid = |reason| SelectorError::InvalidLabelSelector {
            selector: text.to_owned(),
            reason,
        };
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        let requirements = split_top_level(text)
            .map_err(invalid)?
            .into_iter()
            .map(Requirement::parse)
            .collect::<Result<_, _>>()
            .map_err(invalid)?;
        Ok(Self { requirements })
    }

    /// `labels` is the object's `metadata.labels`.
    pub fn matches(&self, labels: Option<&Map<String, Value>>) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Name,
    Namespace,
}

/// A parsed `fieldSelector`: `metadata.name=x`, `metadata.namespace!=y`, `==`
/// too, comma-ANDed. Other fields are rejected, as the real server answers 400
/// for fields a resource does not support.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector {
    /// (field, value, whether the value must equal rather than differ)
    requirements: Vec<(Field, String, bool)>,
}

impl FieldSelector {
    pub fn parse(text: &str) -> Result<Self, SelectorError> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        let invalid = |reason: String| SelectorError::InvalidFieldSelector {
            selector: text.to_owned(),
            reason,
        };
        let mut requirements = Vec::new();
        for part in text.split(',') {
            let (field, value, equal) = if let Some((field, value)) = part.split_once("!=") {
                (field, value, false)
            } else if let Some((field, value)) =
                part.split_once("==").or_else(|| part.split_once('='))
            {
                (field, value, true)
            } else {
                return Err(invalid(format!(
                    "requirement {:?} has no =, == or != operator",
                    part.trim()
                )));
            };
            let field = match field.trim() {
                "metadata.name" => Field::Name,
                "metadata.namespace" => Field::Namespace,
                "" => {
                    return Err(invalid(format!(
                        "requirement {:?} names no field",
                        part.trim()
                    )));
                }
                other => {
                    return Err(SelectorError::UnsupportedField {
                        selector: text.to_owned(),
                        field: other.to_owned(),
                    });
                }
            };
            requirements.push((field, value.trim().to_owned(), equal));
        }
        Ok(Self { requirements })
    }

    pub fn matches(&self, object: &Value) -> bool {
        self.requirements.iter().all(|(field, wanted, equal)| {
            let pointer = match field {
                Field::Name => "/metadata/name",
                Field::Namespace => "/metadata/namespace",
            };
            // Cluster-scoped objects have no namespace; the server compares "".
            let actual = object
                .pointer(pointer)
                .and_then(Value::as_str)
                .unwrap_or("");
            (actual == wanted) == *equal
        })
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }
}

/// Does a `metav1.LabelSelector` JSON object (`matchLabels` + `matchExpressions`
/// with operators In, NotIn, Exists, DoesNotExist) select these labels? Used
/// for Deployment selectors. Err when the operator is unknown or the object
/// is malformed.
///
/// As in Kubernetes, a null selector selects nothing and an empty one everything.
pub fn label_selector_object_matches(
    selector: &Value,
    labels: Option<&Map<String, Value>>,
) -> Result<bool, SelectorError> {
    let invalid = |reason: &str| SelectorError::InvalidSelectorObject {
        selector: selector.to_string(),
        reason: reason.to_owned(),
    };
    let selector_map = match selector {
        Value::Null => return Ok(false),
        Value::Object(map) => map,
        _ => return Err(invalid("not an object")),
    };
    let mut requirements = Vec::new();
    match selector_map.get("matchLabels") {
        None | Some(Value::Null) => {}
        Some(Value::Object(match_labels)) => {
            for (key, value) in match_labels {
                let value = value
                    .as_str()
                    .ok_or_else(|| invalid("matchLabels values must be strings"))?;
                requirements.push(Requirement {
                    key: key.clone(),
                    operator: Operator::Equals(value.to_owned()),
                });
            }
        }
        Some(_) => return Err(invalid("matchLabels is not an object")),
    }
    let expressions = match selector_map.get("matchExpressions") {
        None | Some(Value::Null) => &Vec::new(),
        Some(Value::Array(expressions)) => expressions,
        Some(_) => return Err(invalid("matchExpressions is not a list")),
    };
    for expression in expressions {
        let key = expression
            .get("key")
            .and_then(Value::as_str)
            .filter(|k| !k.is_empty())
            .ok_or_else(|| invalid("a matchExpressions entry has no key"))?;
        let values = match expression.get("values") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(values)) => values
                .iter()
                .map(|v| v.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| invalid("matchExpressions values must be strings"))?,
            Some(_) => return Err(invalid("matchExpressions values is not a list")),
        };
        let operator = expression
            .get("operator")
            .and_then(Value::as_str)
            .unwrap_or("");
        let operator = match (operator, values.is_empty()) {
            ("In", false) => Operator::In(values),
            ("NotIn", false) => Operator::NotIn(values),
            ("In" | "NotIn", true) => return Err(invalid("In and NotIn need at least one value")),
            ("Exists", true) => Operator::Exists,
            ("DoesNotExist", true) => Operator::DoesNotExist,
            ("Exists" | "DoesNotExist", false) => {
                return Err(invalid("Exists and DoesNotExist take no values"));
            }
            (operator, _) => {
                return Err(invalid(&format!(
                    "unknown matchExpressions operator {operator:?}"
                )));
            }
        };
        requirements.push(Requirement {
            key: key.to_owned(),
            operator,
        });
    }
    Ok(LabelSelector { requirements }.matches(labels))
}

/// Does a Service-style selector map (every key=value present in labels)
/// select these labels? An empty or missing map selects nothing (Services
/// without selector have no automatic endpoints).
pub fn map_selector_matches(
    selector: Option<&Map<String, Value>>,
    labels: Option<&Map<String, Value>>,
) -> bool {
    let Some(selector) = selector.filter(|s| !s.is_empty()) else {
        return false;
    };
    selector.iter().all(|(key, wanted)| {
        let wanted = wanted
            .as_str()
            .map_or_else(|| wanted.to_string(), str::to_owned);
        label_value(labels, key) == Some(wanted)
    })
}

#[cfg(test)]
#[path = "selector_tests.rs"]
mod tests;
