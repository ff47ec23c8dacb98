//! What a serving pod does with a request: its error rate, latency and
//! capacity, from its annotations or from an operator-supplied
//! [`ImageBehavior`] override.

use std::{
    collections::{BTreeMap, HashMap},
    str::FromStr,
};

use regex::Regex;

use super::rng::Rng;

pub const ERROR_RATE: &str = "sandbox.sluice.dev/error-rate";
pub const LATENCY_MS: &str = "sandbox.sluice.dev/latency-ms";
pub const MAX_RPS: &str = "sandbox.sluice.dev/max-rps";

const DEFAULT_LATENCY_MS: f64 = 20.0;
/// Log-normal shape: p99 = median × exp(2.326 × 0.5) ≈ 3.2 × median.
const LATENCY_SIGMA: f64 = 0.5;
/// Share of simulated 5xx that are 500 rather than 503.
const SHARE_500: f64 = 0.9;

#[derive(Debug, thiserror::Error)]
pub enum TrafficError {
    #[error("image behavior {spec:?}: expected REGEX=key:value[,key:value]")]
    MissingEquals { spec: String },
    // The regex error is part of the message, not a `source`, so that a
    // command-line parse failure shows it without walking the chain.
    #[error("image behavior {spec:?}: invalid image regex {regex:?}: {error}")]
    InvalidRegex {
        spec: String,
        regex: String,
        error: regex::Error,
    },
    #[error("image behavior {spec:?}: entry {entry:?} is not key:value")]
    MalformedEntry { spec: String, entry: String },
    #[error(
        "image behavior {spec:?}: unknown key {key:?} (expected error-rate, latency-ms or max-rps)"
    )]
    UnknownKey { spec: String, key: String },
    #[error("image behavior {spec:?}: {key} value {value:?} {expected}")]
    InvalidValue {
        spec: String,
        key: String,
        value: String,
        expected: &'static str,
    },
}

/// Overrides for pods running a matching image:
/// `REGEX=error-rate:0.3,latency-ms:400,max-rps:50`.
/// The regex is searched for anywhere in the image reference (anchor it to
/// match the whole reference); each key is optional.
#[derive(Debug, Clone)]
pub struct ImageBehavior {
    pub image: Regex,
    pub error_rate: Option<f64>,
    pub latency_ms: Option<f64>,
    pub max_rps: Option<f64>,
}

impl FromStr for ImageBehavior {
    type Err = TrafficError;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let err_spec = || spec.to_owned();
        // Split at the last '=' because the values never contain one but a
        // regex might.
        let (regex, values) = spec
            .rsplit_once('=')
            .ok_or_else(|| TrafficError::MissingEquals { spec: err_spec() })?;
        let image = Regex::new(regex).map_err(|error| TrafficError::InvalidRegex {
            spec: err_spec(),
            regex: regex.to_owned(),
            error,
        })?;
        let mut behavior = Self {
            image,
            error_rate: None,
            latency_ms: None,
            max_rps: None,
        };
        for entry in values.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (key, value) =
                entry
                    .split_once(':')
                    .ok_or_else(|| TrafficError::MalformedEntry {
                        spec: err_spec(),
                        entry: entry.to_owned(),
                    })?;
            let (key, value) = (key.trim(), value.trim());
            let invalid = |expected| TrafficError::InvalidValue {
                spec: err_spec(),
                key: key.to_owned(),
                value: value.to_owned(),
                expected,
            };
            let number = value.parse::<f64>().ok().filter(|v| v.is_finite());
            match key {
                "error-rate" => {
                    let v = number.filter(|v| (0.0..=1.0).contains(v));
                    behavior.error_rate =
                        Some(v.ok_or_else(|| invalid("is not a share in [0, 1]"))?);
                }
                "latency-ms" => {
                    let v = number.filter(|v| *v >= 0.0);
                    behavior.latency_ms = Some(v.ok_or_else(|| invalid("is not a duration >= 0"))?);
                }
                "max-rps" => {
                    let v = number.filter(|v| *v > 0.0);
                    behavior.max_rps = Some(v.ok_or_else(|| invalid("is not a rate > 0"))?);
                }
                _ => {
                    return Err(TrafficError::UnknownKey {
                        spec: err_spec(),
                        key: key.to_owned(),
                    });
                }
            }
        }
        Ok(behavior)
    }
}

/// How one pod answers, once annotations and overrides are resolved.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PodBehavior {
    pub error_rate: f64,
    pub median_s: f64,
    /// Requests per second the pod can serve; `None` is unlimited.
    pub max_rps: Option<f64>,
}

impl PodBehavior {
    /// Status and latency (seconds) of one request.
    pub fn sample(&self, rng: &mut Rng) -> (u16, f64) {
        let status = match rng.chance(self.error_rate) {
            false => 200,
            true if rng.chance(SHARE_500) => 500,
            true => 503,
        };
        (status, rng.log_normal(self.median_s, LATENCY_SIGMA))
    }
}

/// The configured overrides plus a per-image memo of which one applies, so
/// regexes run once per image reference rather than per pod per step.
#[derive(Debug, Default)]
pub struct Behaviors {
    overrides: Vec<ImageBehavior>,
    first_match: HashMap<String, Option<usize>>,
}

impl Behaviors {
    pub fn new(overrides: Vec<ImageBehavior>) -> Self {
        Self {
            overrides,
            first_match: HashMap::new(),
        }
    }

    pub fn for_pod(
        &mut self,
        annotations: &BTreeMap<String, String>,
        images: &[String],
    ) -> PodBehavior {
        let number = |key| {
            annotations
                .get(key)
                .and_then(|v| v.trim().parse::<f64>().ok())
        };
        let mut error_rate = number(ERROR_RATE)
            .filter(|v| !v.is_nan())
            .map_or(0.0, |v| v.clamp(0.0, 1.0));
        let mut latency_ms = number(LATENCY_MS)
            .filter(|v| v.is_finite() && *v >= 0.0)
            .unwrap_or(DEFAULT_LATENCY_MS);
        let mut max_rps = number(MAX_RPS).filter(|v| v.is_finite() && *v > 0.0);
        if let Some(o) = self.first_override(images).map(|i| &self.overrides[i]) {
            error_rate = o.error_rate.unwrap_or(error_rate);
            latency_ms = o.latency_ms.unwrap_or(latency_ms);
            max_rps = o.max_rps.or(max_rps);
        }
        PodBehavior {
            error_rate,
            median_s: latency_ms / 1000.0,
            max_rps,
        }
    }

    /// Index of the first override (in configuration order) matching any image.
    fn first_override(&mut self, images: &[String]) -> Option<usize> {
        let mut first: Option<usize> = None;
        for image in images {
            let found = match self.first_match.get(image.as_str()) {
                Some(&found) => found,
                None => {
                    let found = self.overrides.iter().position(|b| b.image.is_match(image));
                    self.first_match.insert(image.clone(), found);
                    found
                }
            };
            first = match (first, found) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        first
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(spec: &str) -> Result<ImageBehavior, TrafficError> {
        spec.parse()
    }

    #[test]
    fn image_behavior_parses_either_key() {
        let b = parse("registry.example/shop:v2=error-rate:0.3,latency-ms:400").unwrap();
        assert_eq!((b.error_rate, b.latency_ms), (Some(0.3), Some(400.0)));
        let b = parse(":v2$=latency-ms: 50").unwrap();
        assert_eq!((b.error_rate, b.latency_ms), (None, Some(50.0)));
        let b = parse("(?x)a=b=error-rate:1").unwrap();
        assert!(b.image.is_match("a=b"), "the last '=' separates the regex");
        assert_eq!(parse("shop=").unwrap().error_rate, None);
    }

    #[test]
    fn image_behavior_parses_max_rps() {
        let b = parse("shop:v2=max-rps:12.5").unwrap();
        assert_eq!((b.error_rate, b.max_rps), (None, Some(12.5)));
        assert_eq!(parse("shop=latency-ms:5").unwrap().max_rps, None);
        for bad in ["0", "-4", "ten", "inf", ""] {
            let err = parse(&format!("shop=max-rps:{bad}")).unwrap_err();
            assert!(
                matches!(err, TrafficError::InvalidValue { .. }),
                "{bad}: {err:?}"
            );
            let message = err.to_string();
            assert!(
                message.contains(&format!("max-rps value {bad:?} is not a rate > 0")),
                "{message}"
            );
        }
        let unknown = parse("shop=max-qps:3").unwrap_err().to_string();
        assert!(
            unknown.contains("error-rate, latency-ms or max-rps"),
            "{unknown}"
        );
    }

    #[test]
    fn image_behavior_errors_name_the_bad_part() {
        let cases = [
            ("no-equals", "MissingEquals", "no-equals"),
            ("sh(op=error-rate:0.1", "InvalidRegex", "sh(op"),
            ("shop=error-rate", "MalformedEntry", "error-rate"),
            ("shop=errors:0.1", "UnknownKey", "errors"),
            ("shop=error-rate:1.5", "InvalidValue", "1.5"),
            ("shop=latency-ms:-3", "InvalidValue", "-3"),
            ("shop=latency-ms:fast", "InvalidValue", "fast"),
        ];
        for (spec, variant, culprit) in cases {
            let err = parse(spec).unwrap_err();
            assert!(format!("{err:?}").starts_with(variant), "{spec}: {err:?}");
            assert!(err.to_string().contains(culprit), "{spec}: {err}");
        }
    }

    fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn annotations_with_defaults() {
        let mut b = Behaviors::default();
        let none = b.for_pod(&annotations(&[]), &[]);
        assert_eq!(
            none,
            PodBehavior {
                error_rate: 0.0,
                median_s: 0.02,
                max_rps: None
            }
        );
        let set = b.for_pod(
            &annotations(&[(ERROR_RATE, "0.25"), (LATENCY_MS, "150")]),
            &[],
        );
        assert_eq!(
            set,
            PodBehavior {
                error_rate: 0.25,
                median_s: 0.15,
                max_rps: None
            }
        );
        let junk = b.for_pod(
            &annotations(&[(ERROR_RATE, "lots"), (LATENCY_MS, "-1")]),
            &[],
        );
        assert_eq!(junk, none);
        assert_eq!(
            b.for_pod(&annotations(&[(ERROR_RATE, "7")]), &[])
                .error_rate,
            1.0
        );
    }

    #[test]
    fn max_rps_annotation_must_be_a_positive_number() {
        let mut b = Behaviors::default();
        let max_rps =
            |b: &mut Behaviors, v: &str| b.for_pod(&annotations(&[(MAX_RPS, v)]), &[]).max_rps;
        assert_eq!(max_rps(&mut b, " 40 "), Some(40.0));
        for junk in ["0", "-1", "inf", "NaN", "many"] {
            assert_eq!(max_rps(&mut b, junk), None, "{junk}");
        }
    }

    #[test]
    fn first_matching_override_wins_and_only_overrides_its_keys() {
        let mut b = Behaviors::new(vec![
            parse(":v2$=latency-ms:400").unwrap(),
            parse("shop=error-rate:0.5,latency-ms:1").unwrap(),
        ]);
        let ann = annotations(&[(ERROR_RATE, "0.1"), (LATENCY_MS, "30")]);
        let images = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        // Both match; the first configured applies, and its unset key keeps
        // the annotation rather than falling to the second override.
        let v2 = b.for_pod(&ann, &images(&["sidecar:1", "shop:v2"]));
        assert_eq!(
            v2,
            PodBehavior {
                error_rate: 0.1,
                median_s: 0.4,
                max_rps: None
            }
        );
        let v1 = b.for_pod(&ann, &images(&["shop:v1"]));
        assert_eq!(
            v1,
            PodBehavior {
                error_rate: 0.5,
                median_s: 0.001,
                max_rps: None
            }
        );
        assert_eq!(b.for_pod(&ann, &images(&["other:v1"])).median_s, 0.03);

        let mut b = Behaviors::new(vec![
            parse(":v2$=max-rps:5").unwrap(),
            parse(":v3$=latency-ms:1").unwrap(),
        ]);
        let capped = annotations(&[(MAX_RPS, "100")]);
        let max_rps =
            |b: &mut Behaviors, image: &str| b.for_pod(&capped, &images(&[image])).max_rps;
        assert_eq!(max_rps(&mut b, "shop:v2"), Some(5.0));
        assert_eq!(max_rps(&mut b, "shop:v3"), Some(100.0));
    }

    #[test]
    fn samples_follow_error_rate_and_median() {
        let mut rng = Rng::new(11);
        let pod = PodBehavior {
            error_rate: 0.1,
            median_s: 0.2,
            max_rps: None,
        };
        let samples: Vec<(u16, f64)> = (0..20_000).map(|_| pod.sample(&mut rng)).collect();
        let errors = samples.iter().filter(|(s, _)| *s >= 500).count();
        let share_503 = samples.iter().filter(|(s, _)| *s == 503).count() as f64 / errors as f64;
        assert!((1800..2200).contains(&errors), "{errors}");
        assert!(share_503 > 0.03 && share_503 < 0.2, "{share_503}");
        assert!(samples.iter().all(|(s, _)| [200, 500, 503].contains(s)));
    }
}
