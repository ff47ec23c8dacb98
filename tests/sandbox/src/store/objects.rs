//! Per-kind defaulting and validation: the part of kube-apiserver's registry strategies that a
//! controller can observe (defaults it must not fight, and 422s it must not provoke).

use serde_json::{Map, Value, json};

use super::kinds::ResourceKind;
use super::selector::label_selector_object_matches;
use super::validate::{lease, meta, revision, service};

/// A field path and what is wrong with it, as in a 422 `Status`'s causes.
pub type Cause = (String, String);

/// Lowercase letters, digits and '-', starting and ending with a letter or digit.
fn is_label_shaped(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_dns_label(s: &str) -> bool {
    s.len() <= 63 && is_label_shaped(s)
}

/// kube-apiserver's IsDNS1123Subdomain: at most 253 characters of dot-separated label-shaped
/// parts; unlike a label, a part may be longer than 63.
fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_label_shaped)
}

/// Name rules by kind: Services and Namespaces are DNS-1035/1123 labels, most others subdomains.
pub fn validate_name(kind: &ResourceKind, name: &str) -> Option<Cause> {
    let label_only = matches!(kind.plural.as_str(), "services" | "namespaces");
    let ok = if label_only {
        is_dns_label(name)
            && !(kind.plural == "services" && name.starts_with(|c: char| c.is_ascii_digit()))
    } else if kind.group == "rbac.authorization.k8s.io" {
        // RBAC names are path segments, with ':' allowed (system:controller:...).
        !name.is_empty()
            && !name.contains('/')
            && !name.contains('%')
            && name != "."
            && name != ".."
    } else {
        is_dns_subdomain(name)
    };
    (!ok).then(|| {
        let rule = if label_only {
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character"
        } else {
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
        };
        ("metadata.name".to_string(), format!("Invalid value: {name:?}: {rule}"))
    })
}

fn ensure_object<'a>(value: &'a mut Value, key: &str) -> &'a mut Map<String, Value> {
    let slot = value
        .as_object_mut()
        .map(|m| m.entry(key.to_string()).or_insert_with(|| json!({})));
    match slot {
        Some(v) if v.is_object() => v.as_object_mut().expect("checked is_object"),
        Some(v) => {
            *v = json!({});
            v.as_object_mut().expect("just set to an object")
        }
        None => unreachable!("callers pass objects; checked in Store::decode_body"),
    }
}

fn default_key(map: &mut Map<String, Value>, key: &str, value: Value) {
    map.entry(key.to_string()).or_insert(value);
}

/// Defaults applied on every write (create and update), as the real server's defaulters do.
/// `next_cluster_ip` allocates an address when a Service needs one.
pub fn apply_defaults(
    kind: &ResourceKind,
    obj: &mut Value,
    next_cluster_ip: &mut dyn FnMut() -> String,
) {
    if let Some(schema) = &kind.schema {
        schema.prune_and_default(obj);
    }
    match (kind.group.as_str(), kind.plural.as_str()) {
        ("apps", "deployments") => default_deployment(obj),
        ("apps", "controllerrevisions") => revision::apply_defaults(obj),
        ("", "services") => {
            default_service(obj, next_cluster_ip);
            service::default_type_fields(obj);
        }
        ("", "namespaces") => {
            ensure_object(obj, "spec")
                .entry("finalizers")
                .or_insert(json!(["kubernetes"]));
            let status = ensure_object(obj, "status");
            default_key(status, "phase", json!("Active"));
        }
        ("", "serviceaccounts") | ("", "configmaps") | ("", "secrets") => {
            if kind.plural == "secrets"
                && let Some(map) = obj.as_object_mut()
            {
                default_key(map, "type", json!("Opaque"));
            }
        }
        _ => {}
    }
}

fn default_deployment(obj: &mut Value) {
    let spec = ensure_object(obj, "spec");
    default_key(spec, "replicas", json!(1));
    default_key(spec, "revisionHistoryLimit", json!(10));
    default_key(spec, "progressDeadlineSeconds", json!(600));
    default_key(
        spec,
        "strategy",
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}),
    );
    if let Some(pod_spec) = spec
        .get_mut("template")
        .and_then(|t| t.get_mut("spec"))
        .and_then(Value::as_object_mut)
    {
        default_pod_spec(pod_spec);
    }
}

fn default_pod_spec(pod_spec: &mut Map<String, Value>) {
    default_key(pod_spec, "restartPolicy", json!("Always"));
    default_key(pod_spec, "terminationGracePeriodSeconds", json!(30));
    default_key(pod_spec, "dnsPolicy", json!("ClusterFirst"));
    default_key(pod_spec, "securityContext", json!({}));
    default_key(pod_spec, "schedulerName", json!("default-scheduler"));
    for list in ["containers", "initContainers"] {
        let Some(containers) = pod_spec.get_mut(list).and_then(Value::as_array_mut) else {
            continue;
        };
        for container in containers.iter_mut().filter_map(Value::as_object_mut) {
            let image = container.get("image").and_then(Value::as_str).unwrap_or("");
            let tagless_or_latest =
                !image.rsplit('/').next().unwrap_or("").contains(':') || image.ends_with(":latest");
            let policy = if tagless_or_latest && !image.contains('@') {
                "Always"
            } else {
                "IfNotPresent"
            };
            default_key(container, "imagePullPolicy", json!(policy));
            default_key(
                container,
                "terminationMessagePath",
                json!("/dev/termination-log"),
            );
            default_key(container, "terminationMessagePolicy", json!("File"));
            default_key(container, "resources", json!({}));
            if let Some(ports) = container.get_mut("ports").and_then(Value::as_array_mut) {
                for port in ports.iter_mut().filter_map(Value::as_object_mut) {
                    default_key(port, "protocol", json!("TCP"));
                }
            }
        }
    }
}

fn default_service(obj: &mut Value, next_cluster_ip: &mut dyn FnMut() -> String) {
    let spec = ensure_object(obj, "spec");
    default_key(spec, "type", json!("ClusterIP"));
    default_key(spec, "sessionAffinity", json!("None"));
    default_key(spec, "internalTrafficPolicy", json!("Cluster"));
    default_key(spec, "ipFamilies", json!(["IPv4"]));
    default_key(spec, "ipFamilyPolicy", json!("SingleStack"));
    let headless = spec.get("clusterIP").and_then(Value::as_str) == Some("None");
    if spec
        .get("clusterIP")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
        && spec.get("type") != Some(&json!("ExternalName"))
    {
        let ip = next_cluster_ip();
        spec.insert("clusterIP".into(), json!(ip));
        spec.insert("clusterIPs".into(), json!([ip]));
    } else if !headless && !spec.contains_key("clusterIPs") {
        let ip = spec.get("clusterIP").cloned().unwrap_or(Value::Null);
        spec.insert("clusterIPs".into(), json!([ip]));
    }
    if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
        for port in ports.iter_mut().filter_map(Value::as_object_mut) {
            default_key(port, "protocol", json!("TCP"));
            if let Some(number) = port.get("port").cloned() {
                default_key(port, "targetPort", number);
            }
        }
    }
    let status = ensure_object(obj, "status");
    default_key(status, "loadBalancer", json!({}));
}

/// The checks a controller can trip over. Returns every cause, empty when valid.
pub fn validate(kind: &ResourceKind, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
    let mut causes = Vec::new();
    meta::object_meta(obj.get("metadata"), "metadata", &mut causes);
    match (kind.group.as_str(), kind.plural.as_str()) {
        ("apps", "deployments") => {
            meta::object_meta(
                obj.pointer("/spec/template/metadata"),
                "spec.template.metadata",
                &mut causes,
            );
            if let Some(selector) = obj.pointer("/spec/selector") {
                meta::label_selector(selector, "spec.selector", &mut causes);
            }
        }
        ("", "services") => service::validate(obj, old, &mut causes),
        ("apps", "controllerrevisions") => revision::validate(obj, old, &mut causes),
        ("coordination.k8s.io", "leases") => lease::validate(obj, &mut causes),
        _ => {}
    }
    if let Some(schema) = &kind.schema {
        schema.validate(obj, old, &mut causes);
    }
    let mut cause = |field: &str, message: String| causes.push((field.to_string(), message));
    match (kind.group.as_str(), kind.plural.as_str()) {
        ("apps", "deployments") => {
            let labels = obj
                .pointer("/spec/template/metadata/labels")
                .and_then(Value::as_object);
            match obj.pointer("/spec/selector") {
                None => cause("spec.selector", "Required value".into()),
                Some(selector) => match label_selector_object_matches(selector, labels) {
                    Ok(true) => {}
                    Ok(false) => cause(
                        "spec.template.metadata.labels",
                        format!(
                            "Invalid value: {}: `selector` does not match template `labels`",
                            json!(labels)
                        ),
                    ),
                    Err(e) => cause("spec.selector", format!("Invalid value: {e}")),
                },
            }
            let containers = obj
                .pointer("/spec/template/spec/containers")
                .and_then(Value::as_array);
            if containers.is_none_or(Vec::is_empty) {
                cause("spec.template.spec.containers", "Required value".into());
            }
            for (i, c) in containers.into_iter().flatten().enumerate() {
                if c.get("name")
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty)
                {
                    cause(
                        &format!("spec.template.spec.containers[{i}].name"),
                        "Required value".into(),
                    );
                }
                if c.get("image")
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty)
                {
                    cause(
                        &format!("spec.template.spec.containers[{i}].image"),
                        "Required value".into(),
                    );
                }
            }
            if obj
                .pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .is_some_and(|r| r < 0)
            {
                cause(
                    "spec.replicas",
                    "Invalid value: must be greater than or equal to 0".into(),
                );
            }
            if let Some(old) = old
                && old.pointer("/spec/selector") != obj.pointer("/spec/selector")
            {
                cause("spec.selector", "Invalid value: field is immutable".into());
            }
        }
        ("", "services") => {
            let ports = obj.pointer("/spec/ports").and_then(Value::as_array);
            let external_name =
                obj.pointer("/spec/type").and_then(Value::as_str) == Some("ExternalName");
            let headless = obj.pointer("/spec/clusterIP").and_then(Value::as_str) == Some("None");
            if ports.is_none_or(Vec::is_empty) && !external_name && !headless {
                cause("spec.ports", "Required value".into());
            }
            for (i, p) in ports.into_iter().flatten().enumerate() {
                match p.get("port").and_then(Value::as_i64) {
                    Some(1..=65535) => {}
                    _ => cause(
                        &format!("spec.ports[{i}].port"),
                        "Invalid value: must be between 1 and 65535, inclusive".into(),
                    ),
                }
            }
            if let Some(old) = old {
                let old_ip = old.pointer("/spec/clusterIP");
                if old_ip.is_some() && old_ip != obj.pointer("/spec/clusterIP") {
                    cause("spec.clusterIP", "Invalid value: field is immutable".into());
                }
            }
        }
        ("networking.k8s.io", "ingresses") => {
            for (r, rule) in obj
                .pointer("/spec/rules")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                for (p, path) in rule
                    .pointer("/http/paths")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .enumerate()
                {
                    let field = format!("spec.rules[{r}].http.paths[{p}]");
                    match path.get("pathType").and_then(Value::as_str) {
                        Some("Exact" | "Prefix" | "ImplementationSpecific") => {}
                        None => cause(
                            &format!("{field}.pathType"),
                            "Required value: pathType must be specified".into(),
                        ),
                        Some(other) => cause(
                            &format!("{field}.pathType"),
                            format!(
                                "Unsupported value: {other:?}: supported values: \"Exact\", \"ImplementationSpecific\", \"Prefix\""
                            ),
                        ),
                    }
                    if path.pointer("/backend/service/name").is_none()
                        && path.pointer("/backend/resource").is_none()
                    {
                        cause(
                            &format!("{field}.backend"),
                            "Required value: one backend must be specified".into(),
                        );
                    }
                }
            }
        }
        _ => {}
    }
    causes
}

/// Whether a write changes what `metadata.generation` counts: everything but metadata and status.
pub fn spec_changed(old: &Value, new: &Value) -> bool {
    let (Some(old), Some(new)) = (old.as_object(), new.as_object()) else {
        return old != new;
    };
    let keys = old
        .keys()
        .chain(new.keys())
        .filter(|k| !matches!(k.as_str(), "metadata" | "status" | "apiVersion" | "kind"));
    keys.into_iter().any(|k| old.get(k) != new.get(k))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::kinds::builtins;

    fn kind(plural: &str) -> ResourceKind {
        builtins()
            .into_iter()
            .find(|k| k.plural == plural)
            .expect("a builtin kind")
    }

    #[test]
    fn subdomain_names_may_have_parts_longer_than_a_label() {
        let long = format!("reporting-{}", "long".repeat(15));
        assert!(long.len() > 63);
        assert_eq!(validate_name(&kind("deployments"), &long), None);
        assert!(
            validate_name(&kind("services"), &long).is_some(),
            "a label: at most 63"
        );
        assert!(validate_name(&kind("deployments"), &"a".repeat(254)).is_some());
        assert!(validate_name(&kind("deployments"), "Reporting").is_some());
        assert!(validate_name(&kind("deployments"), "a..b").is_some());
    }
}
