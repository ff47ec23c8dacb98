//! Traffic sources: the sandbox annotations that say how many requests an
//! Ingress path or Service receives and what those requests carry.

use std::time::Duration;

use serde_json::Value;

use super::k8s;

pub const RPS: &str = "sandbox.sluice.dev/rps";
pub const REQUEST_HEADERS: &str = "sandbox.sluice.dev/request-headers";
pub const REQUEST_COOKIES: &str = "sandbox.sluice.dev/request-cookies";

/// Requests per second asked for by `obj`, if it is a traffic source.
pub fn rps(obj: &Value) -> Option<f64> {
    let v: f64 = k8s::annotation(obj, RPS)?.trim().parse().ok()?;
    (v.is_finite() && v >= 0.0).then_some(v)
}

/// Identity of a source across steps: the uid tells a re-created object from
/// its predecessor; ns/name is the fallback for objects stored without one.
pub fn carry_key(obj: &Value, kind: &str) -> String {
    match k8s::metadata(obj, "uid") {
        Some(uid) => uid.to_owned(),
        None => format!(
            "{kind}/{}/{}",
            k8s::namespace(obj),
            k8s::metadata(obj, "name").unwrap_or("")
        ),
    }
}

/// Exact request counting for one traffic source: the running total is
/// derived from the whole elapsed time, so many small steps add up to
/// floor(rate × T) instead of accumulating rounding error.
#[derive(Debug, Default)]
pub struct Carry {
    rate: f64,
    nanos: u128,
    emitted: u64,
    /// Fraction of a request owed from before the last rate change.
    base: f64,
    /// The step that last asked, so the engine can forget vanished sources.
    pub generation: u64,
}

impl Carry {
    pub fn due(&mut self, rate: f64, elapsed: Duration, generation: u64) -> u64 {
        self.generation = generation;
        if rate != self.rate {
            let owed = self.base + self.rate * self.nanos as f64 / 1e9 - self.emitted as f64;
            self.base = owed.clamp(0.0, 1.0 - f64::EPSILON);
            self.rate = rate;
            self.nanos = 0;
            self.emitted = 0;
        }
        self.nanos += elapsed.as_nanos();
        let exact = self.base + rate * self.nanos as f64 / 1e9;
        // Absorbs binary representation error, e.g. 0.1 rps × 10 s = 0.999…
        let target = (exact + exact * 1e-12 + 1e-9).floor() as u64;
        let n = target.saturating_sub(self.emitted);
        self.emitted = self.emitted.max(target);
        n
    }
}

/// A request attribute the source Ingress adds to a share of its requests.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestAttr<'a> {
    /// Normalised with the same function used for the canary's header or
    /// cookie name, so comparisons are plain equality.
    pub name: String,
    pub value: &'a str,
    pub share: f64,
}

/// Parses `name=value:share,...`; entries that do not parse are skipped so a
/// typo in one entry leaves the others working.
pub fn parse_request_attrs(spec: &str, normalize: fn(&str) -> String) -> Vec<RequestAttr<'_>> {
    spec.split(',')
        .filter_map(|entry| {
            let (name, rest) = entry.trim().split_once('=')?;
            let (value, share) = rest.rsplit_once(':')?;
            let share: f64 = share.trim().parse().ok()?;
            let name = name.trim();
            if name.is_empty() || !(0.0..=1.0).contains(&share) {
                return None;
            }
            Some(RequestAttr {
                name: normalize(name),
                value,
                share,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::routing::normalize_header;
    use super::*;

    #[test]
    fn many_small_steps_add_up_to_floor_of_rate_times_time() {
        // 2.3 × 100 and 33.3 × 30 are 229.99… and 998.99… in binary floating
        // point: the naive floor would lose a request.
        let cases = [
            (10.0, 1, 100_000, 1000),
            (0.1, 7, 10_000, 7),
            (33.3, 13, 7_777, 3366),
            (2.3, 100, 1_000, 230),
            (33.3, 100, 300, 999),
        ];
        for (rate, step_ms, steps, expected) in cases {
            let mut carry = Carry::default();
            let step = Duration::from_millis(step_ms);
            let total: u64 = (0..steps).map(|_| carry.due(rate, step, 1)).sum();
            assert_eq!(total, expected, "rate {rate} step {step_ms}ms x {steps}");
        }
    }

    #[test]
    fn a_rate_change_keeps_the_owed_fraction() {
        let mut carry = Carry::default();
        assert_eq!(carry.due(1.0, Duration::from_millis(1500), 1), 1);
        // Half a request is owed at 1 rps; half a second at 1 rps more makes one.
        assert_eq!(carry.due(2.0, Duration::from_millis(250), 2), 1);
        assert_eq!(carry.due(0.0, Duration::from_secs(100), 3), 0);
    }

    #[test]
    fn rps_must_be_a_finite_non_negative_number() {
        let with = |v: &str| serde_json::json!({"metadata": {"annotations": {RPS: v}}});
        assert_eq!(rps(&with(" 2.5 ")), Some(2.5));
        assert_eq!(rps(&with("0")), Some(0.0));
        for bad in ["-1", "inf", "NaN", "ten", ""] {
            assert_eq!(rps(&with(bad)), None, "{bad}");
        }
        assert_eq!(rps(&serde_json::json!({"metadata": {}})), None);
    }

    #[test]
    fn request_attrs_skip_malformed_entries() {
        let attrs = parse_request_attrs(
            "X_Canary=insider:0.1, x-other=v:1:0.5,broken,=v:0.1,y=v:2,z=v:nan,w=:0.3",
            normalize_header,
        );
        let got: Vec<(&str, &str, f64)> = attrs
            .iter()
            .map(|a| (a.name.as_str(), a.value, a.share))
            .collect();
        assert_eq!(
            got,
            [
                ("x-canary", "insider", 0.1),
                ("x-other", "v:1", 0.5),
                ("w", "", 0.3)
            ]
        );
    }
}
