//! Label keys and values, annotations and label selectors, checked as apimachinery's
//! `ValidateLabels`, `ValidateAnnotations` and `ValidateLabelSelector` do, with their wording:
//! a controller that builds a label from a long name or an image tag gets the 422 it would get
//! from a real cluster.

use serde_json::{Map, Value};

use super::Cause;

const QUALIFIED_NAME_MAX: usize = 63;
const LABEL_VALUE_MAX: usize = 63;
const DNS_SUBDOMAIN_MAX: usize = 253;
/// `TotalAnnotationSizeLimitB`: keys and values together.
pub const ANNOTATIONS_MAX_BYTES: usize = 256 * 1024;

const QUALIFIED_NAME_MSG: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const QUALIFIED_NAME_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const LABEL_VALUE_FMT: &str = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";
const DNS_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";
const DNS_SUBDOMAIN_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";

/// apimachinery's `RegexError`: the rule, examples, and the regular expression itself.
fn regex_error(msg: &str, fmt: &str, examples: &[&str]) -> String {
    let examples: Vec<String> = examples.iter().map(|e| format!("'{e}'")).collect();
    // The double space after each comma is the real server's wording.
    format!(
        "{msg} (e.g. {}, regex used for validation is '{fmt}')",
        examples.join(",  or ")
    )
}

fn max_len_error(max: usize) -> String {
    format!("must be no more than {max} characters")
}

/// `[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?`
fn is_qualified_name_part(s: &str) -> bool {
    let bytes = s.as_bytes();
    let alnum = |b: &u8| b.is_ascii_alphanumeric();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            alnum(first)
                && alnum(last)
                && bytes
                    .iter()
                    .all(|b| alnum(b) || matches!(b, b'-' | b'_' | b'.'))
        }
        _ => false,
    }
}

fn is_dns_label(s: &str) -> bool {
    let bytes = s.as_bytes();
    let ok = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            ok(first) && ok(last) && bytes.iter().all(|b| ok(b) || *b == b'-')
        }
        _ => false,
    }
}

/// `IsDNS1123Subdomain`: the messages, empty when valid.
pub fn dns_subdomain_errors(s: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if s.len() > DNS_SUBDOMAIN_MAX {
        errors.push(max_len_error(DNS_SUBDOMAIN_MAX));
    }
    if !s.split('.').all(is_dns_label) {
        errors.push(regex_error(
            DNS_SUBDOMAIN_MSG,
            DNS_SUBDOMAIN_FMT,
            &["example.com"],
        ));
    }
    errors
}

/// `IsQualifiedName`: an optional DNS subdomain prefix and `/`, then a name of at most 63.
pub fn qualified_name_errors(value: &str) -> Vec<String> {
    let mut errors = Vec::new();
    let parts: Vec<&str> = value.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errors.push("prefix part must be non-empty".to_string());
            } else {
                errors.extend(
                    dns_subdomain_errors(prefix)
                        .into_iter()
                        .map(|m| format!("prefix part {m}")),
                );
            }
            *name
        }
        _ => {
            errors.push(format!(
                "a qualified name {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                regex_error(
                    QUALIFIED_NAME_MSG,
                    QUALIFIED_NAME_FMT,
                    &["MyName", "my.name", "123-abc"]
                )
            ));
            return errors;
        }
    };
    if name.is_empty() {
        errors.push("name part must be non-empty".to_string());
    } else if name.len() > QUALIFIED_NAME_MAX {
        errors.push(format!("name part {}", max_len_error(QUALIFIED_NAME_MAX)));
    }
    // An empty name fails the pattern too: the real server reports both.
    if !is_qualified_name_part(name) {
        errors.push(format!(
            "name part {}",
            regex_error(
                QUALIFIED_NAME_MSG,
                QUALIFIED_NAME_FMT,
                &["MyName", "my.name", "123-abc"]
            )
        ));
    }
    errors
}

/// `IsValidLabelValue`.
pub fn label_value_errors(value: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if value.len() > LABEL_VALUE_MAX {
        errors.push(max_len_error(LABEL_VALUE_MAX));
    }
    if !value.is_empty() && !is_qualified_name_part(value) {
        errors.push(regex_error(
            LABEL_VALUE_MSG,
            LABEL_VALUE_FMT,
            &["MyValue", "my_value", "12345"],
        ));
    }
    errors
}

fn invalid(field: &str, value: &str, message: &str) -> Cause {
    (
        field.to_string(),
        format!("Invalid value: {}: {message}", Value::from(value)),
    )
}

/// `ValidateLabels` of a label map at `field` (the real server names the map, not the key).
pub fn labels(map: &Map<String, Value>, field: &str, causes: &mut Vec<Cause>) {
    for (key, value) in map {
        for message in qualified_name_errors(key) {
            causes.push(invalid(field, key, &message));
        }
        match value.as_str() {
            Some(text) => {
                for message in label_value_errors(text) {
                    causes.push(invalid(field, text, &message));
                }
            }
            None => causes.push((
                format!("{field}[{key}]"),
                format!("Invalid value: {value}: must be a string"),
            )),
        }
    }
}

/// `ValidateAnnotations`: keys are qualified names (compared in lower case) and all of them
/// together stay under 256 KiB.
pub fn annotations(map: &Map<String, Value>, field: &str, causes: &mut Vec<Cause>) {
    let mut total = 0;
    for (key, value) in map {
        for message in qualified_name_errors(&key.to_lowercase()) {
            causes.push(invalid(field, key, &message));
        }
        total += key.len();
        match value.as_str() {
            Some(text) => total += text.len(),
            None => causes.push((
                format!("{field}[{key}]"),
                format!("Invalid value: {value}: must be a string"),
            )),
        }
    }
    if total > ANNOTATIONS_MAX_BYTES {
        causes.push((
            field.to_string(),
            format!("Too long: may not be more than {ANNOTATIONS_MAX_BYTES} bytes"),
        ));
    }
}

/// Labels and annotations of an object's (or a pod template's) metadata at `path`.
pub fn object_meta(meta: Option<&Value>, path: &str, causes: &mut Vec<Cause>) {
    let Some(meta) = meta else { return };
    if let Some(map) = meta.get("labels").and_then(Value::as_object) {
        labels(map, &format!("{path}.labels"), causes);
    }
    if let Some(map) = meta.get("annotations").and_then(Value::as_object) {
        annotations(map, &format!("{path}.annotations"), causes);
    }
}

/// `ValidateLabelSelector`: matchLabels as labels, matchExpressions' keys and values.
pub fn label_selector(selector: &Value, path: &str, causes: &mut Vec<Cause>) {
    if let Some(map) = selector.get("matchLabels").and_then(Value::as_object) {
        labels(map, &format!("{path}.matchLabels"), causes);
    }
    let expressions = selector
        .get("matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten();
    for (i, expression) in expressions.enumerate() {
        let at = format!("{path}.matchExpressions[{i}]");
        if let Some(key) = expression.get("key").and_then(Value::as_str) {
            for message in qualified_name_errors(key) {
                causes.push(invalid(&format!("{at}.key"), key, &message));
            }
        }
        let values = expression
            .get("values")
            .and_then(Value::as_array)
            .into_iter()
            .flatten();
        for (j, value) in values.enumerate() {
            for message in label_value_errors(value.as_str().unwrap_or_default()) {
                causes.push(invalid(
                    &format!("{at}.values[{j}]"),
                    value.as_str().unwrap_or_default(),
                    &message,
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn label_causes(labels_value: Value) -> Vec<Cause> {
        let mut causes = Vec::new();
        labels(
            labels_value.as_object().expect("test labels are an object"),
            "metadata.labels",
            &mut causes,
        );
        causes
    }

    #[test]
    fn valid_keys_and_values_pass() {
        let causes = label_causes(json!({
            "app": "reporting",
            "app.kubernetes.io/name": "erp-reporting",
            "sluice.dev/slot": "",
            "A_b.c-9": "1.2.3_x",
        }));
        assert_eq!(causes, Vec::<Cause>::new());
    }

    #[test]
    fn a_value_of_64_characters_is_too_long_in_the_real_wording() {
        let long = "a".repeat(64);
        let causes = label_causes(json!({ "app": long }));
        assert_eq!(
            causes,
            vec![(
                "metadata.labels".to_string(),
                format!("Invalid value: \"{long}\": must be no more than 63 characters")
            )]
        );
    }

    #[test]
    fn values_with_slashes_or_colons_are_refused() {
        let causes = label_causes(json!({ "image": "erp/reporting:1.2" }));
        assert_eq!(causes.len(), 1);
        assert_eq!(causes[0].0, "metadata.labels");
        assert!(
            causes[0].1.starts_with(
                "Invalid value: \"erp/reporting:1.2\": a valid label must be an empty string"
            ),
            "{}",
            causes[0].1
        );
        assert!(causes[0].1.ends_with(
            "(e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
        ));
    }

    #[test]
    fn keys_are_checked_by_prefix_and_name() {
        let long_name = "n".repeat(64);
        let causes = label_causes(json!({
            "Example.com/x": "v",
            "/x": "v",
            "a/b/c": "v",
            long_name.clone(): "v",
            "-bad": "v",
        }));
        let messages: Vec<&str> = causes.iter().map(|(_, m)| m.as_str()).collect();
        assert!(messages.iter().any(|m| m.starts_with(
            "Invalid value: \"Example.com/x\": prefix part a lowercase RFC 1123 subdomain"
        )));
        assert!(messages.contains(&"Invalid value: \"/x\": prefix part must be non-empty"));
        assert!(
            messages
                .iter()
                .any(|m| m.starts_with("Invalid value: \"a/b/c\": a qualified name must consist"))
        );
        assert!(
            messages.contains(
                &format!(
                    "Invalid value: \"{long_name}\": name part must be no more than 63 characters"
                )
                .as_str()
            )
        );
        assert!(
            messages
                .iter()
                .any(|m| m.starts_with("Invalid value: \"-bad\": name part must consist"))
        );
        assert_eq!(causes.len(), 5, "{causes:?}");
    }

    #[test]
    fn a_prefix_longer_than_253_is_refused() {
        let prefix = format!("{}.com", "a".repeat(250));
        let causes = label_causes(json!({ format!("{prefix}/x"): "v" }));
        assert!(
            causes[0]
                .1
                .ends_with("prefix part must be no more than 253 characters"),
            "{causes:?}"
        );
    }

    #[test]
    fn annotations_over_256_kib_are_too_long() {
        let mut causes = Vec::new();
        let big = json!({ "note": "x".repeat(ANNOTATIONS_MAX_BYTES) });
        annotations(
            big.as_object().expect("an object"),
            "metadata.annotations",
            &mut causes,
        );
        assert_eq!(
            causes,
            vec![(
                "metadata.annotations".to_string(),
                "Too long: may not be more than 262144 bytes".to_string()
            )]
        );
        let mut causes = Vec::new();
        let fine = json!({ "Kubectl.Kubernetes.io/last-applied-configuration": "x".repeat(1000) });
        annotations(
            fine.as_object().expect("an object"),
            "metadata.annotations",
            &mut causes,
        );
        assert!(causes.is_empty(), "{causes:?}");
    }

    #[test]
    fn selector_expressions_are_checked() {
        let mut causes = Vec::new();
        label_selector(
            &json!({"matchLabels": {"app": "ok"}, "matchExpressions": [{"key": "bad key", "operator": "In", "values": ["ok", "not ok"]}]}),
            "spec.selector",
            &mut causes,
        );
        let fields: Vec<&str> = causes.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            fields,
            vec![
                "spec.selector.matchExpressions[0].key",
                "spec.selector.matchExpressions[0].values[1]"
            ]
        );
    }
}
