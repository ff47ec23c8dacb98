//! The Prometheus text exposition format (0.0.4): writing label sets,
//! counters and histograms, and a parser for tests to read it back.

use std::fmt::Write as _;

use super::{BUCKETS, Histogram};

const BUCKET_LABELS: [&str; BUCKETS.len() + 1] = [
    "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf",
];

pub(super) fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Writes `{a="x",b="y"}` with values escaped as the text format requires.
pub(super) fn write_labels(out: &mut String, labels: &[(&str, &str)]) {
    out.push('{');
    for (i, (name, value)) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(name);
        out.push_str("=\"");
        escape_label_value(out, value);
        out.push('"');
    }
    out.push('}');
}

pub fn escape_label_value(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// One counter line per status code; `labels` are the other labels, sorted by
/// name, all of which sort after `code`.
pub(super) fn write_code_counters(
    out: &mut String,
    name: &str,
    codes: &[(u16, u64)],
    labels: &[(&str, &str)],
) {
    for (code, n) in codes {
        let code = code.to_string();
        let mut all = vec![("code", code.as_str())];
        all.extend_from_slice(labels);
        out.push_str(name);
        write_labels(out, &all);
        let _ = writeln!(out, " {n}");
    }
}

/// `labels` is a rendered `{...}` block; `le` is spliced in before its `}`.
pub(super) fn write_histogram(out: &mut String, name: &str, labels: &str, h: &Histogram) {
    let inner = &labels[..labels.len() - 1];
    for (le, n) in BUCKET_LABELS.iter().zip(h.cumulative()) {
        let _ = writeln!(out, "{name}_bucket{inner},le=\"{le}\"}} {n}");
    }
    let _ = writeln!(out, "{name}_sum{labels} {}", h.sum());
    let _ = writeln!(out, "{name}_count{labels} {}", h.count());
}

/// A parsed sample, for tests that want to read the exposition back.
#[cfg(test)]
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Sample {
    pub name: String,
    pub labels: std::collections::BTreeMap<String, String>,
    pub value: f64,
}

/// Strict-enough parser of the text format: fails the test on any line a
/// Prometheus scraper would reject, so it doubles as a validity check.
#[cfg(test)]
pub(crate) fn parse_exposition(text: &str) -> Vec<Sample> {
    let line_re = regex::Regex::new(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)$").unwrap();
    let pair_re =
        regex::Regex::new(r#"^([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)"#).unwrap();
    let mut samples = Vec::new();
    let mut typed = std::collections::HashSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let name = rest.split(' ').next().unwrap();
            assert!(typed.insert(name.to_owned()), "TYPE twice for {name}");
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        let caps = line_re
            .captures(line)
            .unwrap_or_else(|| panic!("bad line {line:?}"));
        let mut labels = std::collections::BTreeMap::new();
        if let Some(block) = caps.get(2) {
            let mut rest = &block.as_str()[1..block.as_str().len() - 1];
            while !rest.is_empty() {
                let c = pair_re
                    .captures(rest)
                    .unwrap_or_else(|| panic!("bad labels {line:?}"));
                let value = c[2]
                    .replace("\\n", "\n")
                    .replace("\\\"", "\"")
                    .replace("\\\\", "\\");
                labels.insert(c[1].to_owned(), value);
                rest = &rest[c[0].len()..];
            }
        }
        let value = match &caps[3] {
            "+Inf" => f64::INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value {line:?}")),
        };
        samples.push(Sample {
            name: caps[1].to_owned(),
            labels,
            value,
        });
    }
    samples
}
