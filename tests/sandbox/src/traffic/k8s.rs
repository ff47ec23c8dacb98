//! Reading Kubernetes objects as stored JSON: metadata, and how a Service's
//! ports and selector lead to pods. Lenient throughout: a malformed field
//! reads as absent, because the sandbox must never panic on user input.

use std::collections::BTreeMap;

use serde_json::Value;

use super::routing::PortRef;

pub fn annotation<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj.get("metadata")?.get("annotations")?.get(key)?.as_str()
}

pub fn metadata<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj.get("metadata")?.get(field)?.as_str()
}

/// A namespaced object without a namespace lives in "default", as the API
/// server would have defaulted it.
pub fn namespace(obj: &Value) -> &str {
    metadata(obj, "namespace").unwrap_or("default")
}

/// Go's `strconv.ParseBool`, which is what ingress-nginx uses for `canary`.
pub fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// The Service port a backend means, as a number. A number must be one of
/// the Service's ports (or target ports), as ingress-nginx finds no endpoints
/// otherwise; a Service listing no ports is taken at its word.
pub fn resolve_port(service: &Value, port: PortRef<'_>) -> Option<i64> {
    let ports = service.pointer("/spec/ports").and_then(Value::as_array);
    let ports = ports.map(Vec::as_slice).unwrap_or_default();
    let target = |p: &Value| p.get("targetPort").cloned().unwrap_or(Value::Null);
    match port {
        PortRef::Number(n) if ports.is_empty() => Some(n),
        PortRef::Number(n) => ports
            .iter()
            .find(|p| p.get("port").and_then(Value::as_i64) == Some(n) || target(p) == n)
            .map(|_| n),
        PortRef::Name(name) => ports
            .iter()
            .find(|p| p.get("name").and_then(Value::as_str) == Some(name) || target(p) == name)
            .and_then(|p| p.get("port").and_then(Value::as_i64)),
    }
}

/// `spec.selector` pairs; empty when missing, since a selector-less Service
/// has manually managed endpoints, which the sandbox never creates.
pub fn selector(service: &Value) -> Vec<(&str, &str)> {
    let map = service.pointer("/spec/selector").and_then(Value::as_object);
    map.into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.as_str(), v.as_str()?)))
        .collect()
}

pub fn selects(selector: &[(&str, &str)], labels: &BTreeMap<String, String>) -> bool {
    !selector.is_empty()
        && selector
            .iter()
            .all(|(k, v)| labels.get(*k).is_some_and(|l| l == v))
}

/// RFC 3339 to (unix seconds, nanos). Kubernetes writes whole seconds in UTC,
/// but fractions and offsets are accepted so ordering never depends on the
/// spelling of an instant.
pub fn parse_timestamp(s: &str) -> Option<(i64, u32)> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut rest = &s[19..];
    let mut nanos = 0u32;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        let scaled = format!("{:0<9}", &frac[..digits.min(9)]);
        nanos = scaled.parse().ok()?;
        rest = &frac[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6 && rest.as_bytes()[3] == b':' => {
            let sign = match rest.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let oh: i64 = rest.get(1..3)?.parse().ok()?;
            let om: i64 = rest.get(4..6)?.parse().ok()?;
            sign * (oh * 3600 + om * 60)
        }
        _ => return None,
    };
    // Days from civil (H. Hinnant), exact for the proleptic Gregorian calendar.
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86_400 + h * 3600 + mi * 60 + sec - offset, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ports_resolve_by_number_name_or_target() {
        let svc = json!({"spec": {"ports": [
            {"name": "http", "port": 80, "targetPort": 8080},
            {"name": "admin", "port": 9000, "targetPort": "admin-port"}]}});
        assert_eq!(resolve_port(&svc, PortRef::Name("http")), Some(80));
        assert_eq!(resolve_port(&svc, PortRef::Name("admin-port")), Some(9000));
        assert_eq!(resolve_port(&svc, PortRef::Name("grpc")), None);
        assert_eq!(resolve_port(&svc, PortRef::Number(80)), Some(80));
        assert_eq!(resolve_port(&svc, PortRef::Number(8080)), Some(8080));
        assert_eq!(resolve_port(&svc, PortRef::Number(81)), None);
        assert_eq!(
            resolve_port(&json!({"spec": {}}), PortRef::Number(81)),
            Some(81)
        );
    }

    #[test]
    fn selectors_need_every_pair_and_empty_selects_nothing() {
        let labels: BTreeMap<String, String> = [("app", "shop"), ("track", "canary")]
            .map(|(k, v)| (k.into(), v.into()))
            .into();
        let svc = json!({"spec": {"selector": {"app": "shop"}}});
        assert!(selects(&selector(&svc), &labels));
        let svc = json!({"spec": {"selector": {"app": "shop", "track": "stable"}}});
        assert!(!selects(&selector(&svc), &labels));
        assert!(!selects(&selector(&json!({"spec": {}})), &labels));
    }

    #[test]
    fn timestamps_order_by_instant() {
        assert_eq!(parse_timestamp("1970-01-01T00:00:00Z"), Some((0, 0)));
        assert_eq!(
            parse_timestamp("2000-03-01T00:00:01.25Z"),
            Some((951_868_801, 250_000_000))
        );
        assert_eq!(
            parse_timestamp("2024-05-01T02:00:00+02:00"),
            parse_timestamp("2024-05-01T00:00:00Z")
        );
        assert!(
            parse_timestamp("2024-05-01T00:00:00.5Z") > parse_timestamp("2024-05-01T00:00:00Z")
        );
        assert_eq!(parse_timestamp("yesterday"), None);
    }
}
