//! Kubernetes-style durations ("30s", "1m30s", "500ms", "1.5h") as they appear in a Rollout spec,
//! and the single-unit form Prometheus wants in a range selector ("90s", "1m").
//!
//! The accepted syntax is exactly what [`DURATION_PATTERN`] says, so the CRD schema and this parser
//! never disagree about what a valid duration is.

use std::time::Duration;

/// The regular expression a duration string must match; used as the CRD schema's `pattern`.
pub const DURATION_PATTERN: &str = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$";

const NANOS_PER_MS: u128 = 1_000_000;
const NANOS_PER_S: u128 = 1_000 * NANOS_PER_MS;
const NANOS_PER_M: u128 = 60 * NANOS_PER_S;
const NANOS_PER_H: u128 = 60 * NANOS_PER_M;

/// A duration text that is not a valid duration, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {text:?}: {problem} (write e.g. 30s, 1m, 1m30s, 500ms, 2h)")]
pub struct DurationError {
    /// The text as given.
    pub text: String,
    /// What is wrong with it.
    pub problem: String,
}

fn error(text: &str, problem: impl Into<String>) -> DurationError {
    DurationError {
        text: text.to_string(),
        problem: problem.into(),
    }
}

/// Parses a sequence of `<number><unit>` parts (units ms, s, m, h; the number may have a
/// fraction) into a [`Duration`], e.g. "1m30s" or "0.5s".
pub fn parse(text: &str) -> Result<Duration, DurationError> {
    if text.is_empty() {
        return Err(error(text, "it is empty"));
    }
    let bytes = text.as_bytes();
    let mut total: u128 = 0;
    let mut i = 0;
    while i < bytes.len() {
        let int_start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if i == int_start {
            return Err(error(
                text,
                format!("expected a number at {:?}", &text[int_start..]),
            ));
        }
        let int_digits = &text[int_start..i];
        let mut frac_digits = "";
        if i < bytes.len() && bytes[i] == b'.' {
            let frac_start = i + 1;
            i = frac_start;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            if i == frac_start {
                return Err(error(text, "a decimal point must be followed by digits"));
            }
            frac_digits = &text[frac_start..i];
        }
        let unit_start = i;
        while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
            i += 1;
        }
        let unit = match &text[unit_start..i] {
            "ms" => NANOS_PER_MS,
            "s" => NANOS_PER_S,
            "m" => NANOS_PER_M,
            "h" => NANOS_PER_H,
            "" => {
                return Err(error(
                    text,
                    format!("{int_digits:?} has no unit (ms, s, m or h)"),
                ));
            }
            other => {
                return Err(error(
                    text,
                    format!("unknown unit {other:?} (use ms, s, m or h)"),
                ));
            }
        };
        let too_long = || error(text, "it is too long");
        let int: u128 = int_digits.parse().map_err(|_| too_long())?;
        let mut part = int.checked_mul(unit).ok_or_else(too_long)?;
        // Each fraction digit is worth a tenth of the previous one; below a nanosecond they vanish.
        let mut scale = unit;
        for digit in frac_digits.bytes() {
            scale /= 10;
            part += u128::from(digit - b'0') * scale;
        }
        total = total.checked_add(part).ok_or_else(too_long)?;
    }
    let secs = u64::try_from(total / NANOS_PER_S).map_err(|_| error(text, "it is too long"))?;
    // The remainder of a division by 10^9 always fits in u32.
    let nanos = (total % NANOS_PER_S) as u32;
    Ok(Duration::new(secs, nanos))
}

/// Formats a duration in the shortest form [`parse`] reads back to the same value:
/// 90s is "1m30s", 3600s is "1h", 1.5s is "1s500ms", zero is "0s".
pub fn format(duration: Duration) -> String {
    let mut nanos = duration.as_nanos();
    if nanos == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    for (unit, suffix) in [(NANOS_PER_H, "h"), (NANOS_PER_M, "m"), (NANOS_PER_S, "s")] {
        if nanos >= unit {
            out.push_str(&format!("{}{suffix}", nanos / unit));
            nanos %= unit;
        }
    }
    if nanos > 0 {
        let whole = nanos / NANOS_PER_MS;
        let sub = nanos % NANOS_PER_MS;
        if sub == 0 {
            out.push_str(&format!("{whole}ms"));
        } else {
            // Sub-millisecond precision has no unit of its own here: write a fraction of a ms.
            let frac = format!("{sub:06}");
            out.push_str(&format!("{whole}.{}ms", frac.trim_end_matches('0')));
        }
    }
    out
}

/// Formats a duration as a Prometheus range duration with a single unit (`^[0-9]+(ms|s|m|h)$`),
/// the largest unit that represents it exactly: 60s is "1m", 90s is "90s", 1.5s is "1500ms".
/// Prometheus has no unit below a millisecond, so sub-millisecond parts are dropped; a duration
/// under 1ms yields `None`, since a zero range selects nothing.
pub fn format_prometheus(duration: Duration) -> Option<String> {
    let ms = duration.as_millis();
    if ms == 0 {
        return None;
    }
    for (unit_ms, suffix) in [(3_600_000, "h"), (60_000, "m"), (1_000, "s")] {
        if ms.is_multiple_of(unit_ms) {
            return Some(format!("{}{suffix}", ms / unit_ms));
        }
    }
    Some(format!("{ms}ms"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_the_usual_forms() {
        assert_eq!(parse("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("0.25s"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("0s"), Ok(Duration::ZERO));
        assert_eq!(parse("1h0m5s"), Ok(Duration::from_secs(3605)));
    }

    #[test]
    fn rejects_with_the_text_and_the_problem() {
        for (text, problem) in [
            ("", "empty"),
            ("30", "no unit"),
            ("1x", "unknown unit \"x\""),
            ("1d", "unknown unit \"d\""),
            ("m", "expected a number"),
            ("1.s", "decimal point"),
            ("-1s", "expected a number"),
            (" 1s", "expected a number"),
            ("1s ", "expected a number"),
            ("99999999999999999999999999999999999999999h", "too long"),
        ] {
            let err = parse(text).expect_err(text);
            assert_eq!(err.text, text);
            assert!(err.problem.contains(problem), "{text:?}: {err}");
            assert!(err.to_string().contains(&format!("{text:?}")), "{err}");
        }
    }

    #[test]
    fn formats_shortest() {
        assert_eq!(format(Duration::ZERO), "0s");
        assert_eq!(format(Duration::from_secs(90)), "1m30s");
        assert_eq!(format(Duration::from_secs(3600)), "1h");
        assert_eq!(format(Duration::from_secs(3605)), "1h5s");
        assert_eq!(format(Duration::from_millis(1500)), "1s500ms");
        assert_eq!(format(Duration::from_micros(1500)), "1.5ms");
        assert_eq!(format(Duration::from_nanos(7)), "0.000007ms");
    }

    #[test]
    fn formats_for_prometheus() {
        assert_eq!(
            format_prometheus(Duration::from_secs(60)).as_deref(),
            Some("1m")
        );
        assert_eq!(
            format_prometheus(Duration::from_secs(90)).as_deref(),
            Some("90s")
        );
        assert_eq!(
            format_prometheus(Duration::from_secs(7200)).as_deref(),
            Some("2h")
        );
        assert_eq!(
            format_prometheus(Duration::from_millis(1500)).as_deref(),
            Some("1500ms")
        );
        assert_eq!(format_prometheus(Duration::from_micros(999)), None);
    }

    proptest! {
        #[test]
        fn format_round_trips(nanos in 0u64..u64::MAX) {
            let d = Duration::from_nanos(nanos);
            let text = format(d);
            prop_assert!(regex::Regex::new(DURATION_PATTERN).unwrap().is_match(&text), "{}", text);
            prop_assert_eq!(parse(&text), Ok(d));
        }

        #[test]
        fn parse_never_panics(text in ".{0,24}") {
            let _ = parse(&text);
        }

        #[test]
        fn parse_agrees_with_the_schema_pattern(text in "[0-9.a-z]{0,10}") {
            let pattern = regex::Regex::new(DURATION_PATTERN).unwrap();
            if pattern.is_match(&text) && text.len() < 12 {
                prop_assert!(parse(&text).is_ok(), "{}", text);
            } else if !pattern.is_match(&text) {
                prop_assert!(parse(&text).is_err(), "{}", text);
            }
        }
    }
}
