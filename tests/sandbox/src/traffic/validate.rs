//! ingress-nginx's checks on canary annotation values (`parser/validators.go` and the canary
//! parser, v1.15.1, annotation validation on as by default). A value that fails its check is
//! treated as unset (weight 0, total 100, no header, no cookie) and logged once per version of
//! the Ingress, as the controller logs it on each sync.

use std::collections::HashMap;

use serde_json::Value;

use super::k8s::{metadata, namespace};

/// `alphaNumericChars` of the validators: letters, digits and `-._~/:`.
fn basic_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-._~/:".contains(c)
}

/// `BasicCharsRegex` after removing spaces, which is how the header, header-value and cookie
/// annotations are checked.
pub fn basic_chars(value: &str) -> bool {
    value.chars().filter(|&c| c != ' ').all(basic_char)
}

/// `IsValidRegex`: basic characters plus those regexes need (`^$[](){}*+?|&=\`), no spaces.
/// It checks characters only; whether the pattern compiles shows when a request is matched.
pub fn regex_chars(value: &str) -> bool {
    value
        .chars()
        .all(|c| basic_char(c) || "^$[](){}*+?|&=\\".contains(c))
}

/// Go's `strconv.Atoi` on a 64-bit build: optional sign, decimal digits, nothing else.
pub fn atoi(value: &str) -> Option<i64> {
    value.parse().ok()
}

/// ingress-nginx's `normalizeString`: each line trimmed.
pub fn normalize(value: &str) -> String {
    value
        .split('\n')
        .map(str::trim)
        .collect::<Vec<_>>()
        .join("\n")
}

/// An annotation whose value its validator refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub annotation: String,
    pub value: String,
}

/// Remembers which version of each Ingress was already reported, so a broken annotation is
/// logged when it appears or changes rather than on every traffic tick.
#[derive(Debug, Default)]
pub struct Warnings {
    reported: HashMap<(String, String), String>,
}

impl Warnings {
    /// Logs `invalid` for `ingress` unless this resourceVersion was logged already; returns
    /// whether it logged.
    pub fn report(&mut self, ingress: &Value, invalid: &[Invalid]) -> bool {
        if invalid.is_empty() {
            return false;
        }
        let key = (
            namespace(ingress).to_owned(),
            metadata(ingress, "name").unwrap_or("").to_owned(),
        );
        let version = metadata(ingress, "resourceVersion")
            .unwrap_or("")
            .to_owned();
        if self.reported.get(&key) == Some(&version) {
            return false;
        }
        for bad in invalid {
            tracing::warn!(
                "validation error on ingress {}/{}: annotation {} contains invalid value {:?}; treated as unset",
                key.0,
                key.1,
                bad.annotation,
                bad.value,
            );
        }
        self.reported.insert(key, version);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn basic_chars_allow_names_paths_and_ports_only() {
        for ok in ["X-Canary", "x_canary", "a.b~c/d:e", "with space", ""] {
            assert!(basic_chars(ok), "{ok:?}");
        }
        for bad in ["x;y", "x\ny", "caf\u{e9}", "a,b", "v=1", "$http_x", "a\tb"] {
            assert!(!basic_chars(bad), "{bad:?}");
        }
    }

    #[test]
    fn regex_chars_allow_regex_syntax_but_not_spaces() {
        for ok in ["^beta-\\d+$", "(a|b)[0-9]{2}.*", "([", "k=v&x?"] {
            assert!(regex_chars(ok), "{ok:?}");
        }
        for bad in ["a b", "a,b", "#x", "a\nb", "%"] {
            assert!(!regex_chars(bad), "{bad:?}");
        }
    }

    #[test]
    fn atoi_is_strict_about_spaces_and_fractions() {
        assert_eq!(atoi("20"), Some(20));
        assert_eq!(atoi("+20"), Some(20));
        assert_eq!(atoi("-5"), Some(-5));
        for bad in [" 20", "20 ", "2.5", "20%", "1_000", "", "0x10"] {
            assert_eq!(atoi(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn warnings_are_logged_once_per_resource_version() {
        let mut warnings = Warnings::default();
        let bad = [Invalid {
            annotation: "canary-weight".into(),
            value: "lots".into(),
        }];
        let v1 = json!({"metadata": {"name": "c", "namespace": "prod", "resourceVersion": "7"}});
        let v2 = json!({"metadata": {"name": "c", "namespace": "prod", "resourceVersion": "9"}});
        assert!(!warnings.report(&v1, &[]));
        assert!(warnings.report(&v1, &bad));
        assert!(!warnings.report(&v1, &bad));
        assert!(warnings.report(&v2, &bad));
    }
}
