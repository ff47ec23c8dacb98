//! Services as kube-apiserver treats them: the type-dependent fields `ValidateService` checks,
//! node ports allocated from 30000-32767 and unique across the cluster, and on update what the
//! registry's strategy carries over (allocated values a client left out) or drops (fields of a
//! type the Service no longer has, when the client did not touch them).

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use super::Cause;
use super::meta;

pub const NODE_PORT_MIN: i64 = 30000;
pub const NODE_PORT_MAX: i64 = 32767;

fn spec_of(obj: &Value) -> Option<&Map<String, Value>> {
    obj.get("spec").and_then(Value::as_object)
}

fn service_type(obj: &Value) -> &str {
    obj.pointer("/spec/type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP")
}

fn needs_cluster_ip(obj: &Value) -> bool {
    service_type(obj) != "ExternalName"
}

fn needs_node_port(obj: &Value) -> bool {
    match service_type(obj) {
        "NodePort" => true,
        "LoadBalancer" => {
            obj.pointer("/spec/allocateLoadBalancerNodePorts") != Some(&Value::Bool(false))
        }
        _ => false,
    }
}

fn externally_accessible(obj: &Value) -> bool {
    match service_type(obj) {
        "LoadBalancer" | "NodePort" => true,
        "ClusterIP" => obj
            .pointer("/spec/externalIPs")
            .and_then(Value::as_array)
            .is_some_and(|ips| !ips.is_empty()),
        _ => false,
    }
}

fn needs_health_check(obj: &Value) -> bool {
    service_type(obj) == "LoadBalancer"
        && obj
            .pointer("/spec/externalTrafficPolicy")
            .and_then(Value::as_str)
            == Some("Local")
}

fn ports(obj: &Value) -> impl Iterator<Item = &Value> {
    obj.pointer("/spec/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

fn node_port(port: &Value) -> i64 {
    port.get("nodePort").and_then(Value::as_i64).unwrap_or(0)
}

fn health_check_node_port(obj: &Value) -> i64 {
    obj.pointer("/spec/healthCheckNodePort")
        .and_then(Value::as_i64)
        .unwrap_or(0)
}

/// Every node port a Service holds (its ports' and its health check's).
pub fn node_ports_held(obj: &Value) -> impl Iterator<Item = i64> + '_ {
    ports(obj)
        .map(node_port)
        .chain(std::iter::once(health_check_node_port(obj)))
        .filter(|p| *p != 0)
}

/// Whether a write of this Service allocates node ports (the caller then gathers those taken).
pub fn allocates_node_ports(obj: &Value) -> bool {
    needs_node_port(obj) || needs_health_check(obj)
}

/// An update, before defaults: the real strategy's `dropTypeDependentFields` (a field of a type
/// left behind goes when the client sent it back unchanged) and `patchAllocatedValues` (an
/// allocated value the client left out is kept).
pub fn carry_over(next: &mut Value, old: &Value) {
    let unchanged = |path: &str, next: &Value| old.pointer(path) == next.pointer(path);
    let same_node_ports = {
        let old_ports: Vec<i64> = ports(old).map(node_port).collect();
        let new_ports: Vec<i64> = ports(next).map(node_port).collect();
        old_ports == new_ports
    };
    let drop_node_ports = needs_node_port(old) && !needs_node_port(next) && same_node_ports;
    let drop_health_check = needs_health_check(old)
        && !needs_health_check(next)
        && unchanged("/spec/healthCheckNodePort", next);
    let left_load_balancer =
        service_type(old) == "LoadBalancer" && service_type(next) != "LoadBalancer";
    let drop_allocate =
        left_load_balancer && unchanged("/spec/allocateLoadBalancerNodePorts", next);
    let drop_class = left_load_balancer && unchanged("/spec/loadBalancerClass", next);
    let drop_traffic_policy = externally_accessible(old)
        && !externally_accessible(next)
        && unchanged("/spec/externalTrafficPolicy", next);
    let keep_cluster_ip = needs_cluster_ip(old) && needs_cluster_ip(next);
    let keep_node_ports = needs_node_port(old) && needs_node_port(next);
    let keep_health_check = needs_health_check(old) && needs_health_check(next);

    // Old node ports by port name, for ports the client sent without one.
    let old_by_name: Vec<(String, i64)> = ports(old)
        .map(|p| {
            let name = p.get("name").and_then(Value::as_str).unwrap_or("");
            (name.to_string(), node_port(p))
        })
        .collect();
    let used_in_both: BTreeSet<i64> = {
        let new: BTreeSet<i64> = ports(next).map(node_port).collect();
        ports(old)
            .map(node_port)
            .filter(|p| new.contains(p))
            .collect()
    };
    let Some(spec) = next.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    for (wanted, field) in [
        (drop_health_check, "healthCheckNodePort"),
        (drop_allocate, "allocateLoadBalancerNodePorts"),
        (drop_class, "loadBalancerClass"),
        (drop_traffic_policy, "externalTrafficPolicy"),
    ] {
        if wanted {
            spec.remove(field);
        }
    }
    if keep_cluster_ip
        && spec
            .get("clusterIP")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        && let Some(old_spec) = spec_of(old)
    {
        for field in ["clusterIP", "clusterIPs"] {
            if let Some(value) = old_spec.get(field) {
                spec.insert(field.into(), value.clone());
            }
        }
    }
    if keep_health_check
        && spec
            .get("healthCheckNodePort")
            .and_then(Value::as_i64)
            .unwrap_or(0)
            == 0
        && let Some(value) = old.pointer("/spec/healthCheckNodePort")
    {
        spec.insert("healthCheckNodePort".into(), value.clone());
    }
    let Some(port_list) = spec.get_mut("ports").and_then(Value::as_array_mut) else {
        return;
    };
    for port in port_list.iter_mut().filter_map(Value::as_object_mut) {
        if drop_node_ports {
            port.remove("nodePort");
            continue;
        }
        let current = port.get("nodePort").and_then(Value::as_i64).unwrap_or(0);
        if keep_node_ports && current == 0 {
            let name = port.get("name").and_then(Value::as_str).unwrap_or("");
            let old_value = old_by_name
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, p)| *p)
                .unwrap_or(0);
            if old_value != 0 && !used_in_both.contains(&old_value) {
                port.insert("nodePort".into(), json!(old_value));
            }
        }
    }
}

/// Type-dependent defaults (`SetDefaults_Service`).
pub fn default_type_fields(obj: &mut Value) {
    let accessible = externally_accessible(obj);
    let load_balancer = service_type(obj) == "LoadBalancer";
    let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    if accessible {
        spec.entry("externalTrafficPolicy")
            .or_insert(json!("Cluster"));
    }
    if load_balancer {
        spec.entry("allocateLoadBalancerNodePorts")
            .or_insert(json!(true));
    }
}

fn port_error(port: i64, taken: &BTreeSet<i64>) -> Option<&'static str> {
    if !(NODE_PORT_MIN..=NODE_PORT_MAX).contains(&port) {
        Some("provided port is not in the valid range. The range of valid ports is 30000-32767")
    } else if taken.contains(&port) {
        Some("provided port is already allocated")
    } else {
        None
    }
}

/// Gives every port that needs one a free node port, and the health check one when
/// `externalTrafficPolicy: Local` asks for it. `taken` holds the other Services' node ports.
/// Explicit ports out of range or taken are the allocator's 422s.
pub fn allocate_node_ports(obj: &mut Value, taken: &BTreeSet<i64>) -> Vec<Cause> {
    let mut causes = Vec::new();
    let mut held: BTreeSet<i64> = taken.clone();
    let mut explicit = Vec::new();
    if needs_node_port(obj) {
        for (i, port) in ports(obj).enumerate() {
            let p = node_port(port);
            if p != 0 {
                explicit.push((format!("spec.ports[{i}].nodePort"), p));
            }
        }
    }
    if needs_health_check(obj) && health_check_node_port(obj) != 0 {
        explicit.push((
            "spec.healthCheckNodePort".to_string(),
            health_check_node_port(obj),
        ));
    }
    for (field, port) in explicit {
        match port_error(port, &held) {
            Some(why) => causes.push((field, format!("Invalid value: {port}: {why}"))),
            // The same port twice in one Service is validation's Duplicate, not the allocator's.
            None => {
                held.insert(port);
            }
        }
    }
    if !causes.is_empty() {
        return causes;
    }
    let mut next_free = || {
        let port = (NODE_PORT_MIN..=NODE_PORT_MAX).find(|p| !held.contains(p))?;
        held.insert(port);
        Some(port)
    };
    let mut exhausted = false;
    let wants_ports = needs_node_port(obj);
    let wants_health = needs_health_check(obj) && health_check_node_port(obj) == 0;
    let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else {
        return causes;
    };
    if wants_ports && let Some(list) = spec.get_mut("ports").and_then(Value::as_array_mut) {
        for port in list.iter_mut().filter_map(Value::as_object_mut) {
            if port.get("nodePort").and_then(Value::as_i64).unwrap_or(0) == 0 {
                match next_free() {
                    Some(p) => {
                        port.insert("nodePort".into(), json!(p));
                    }
                    None => exhausted = true,
                }
            }
        }
    }
    if wants_health {
        match next_free() {
            Some(p) => {
                spec.insert("healthCheckNodePort".into(), json!(p));
            }
            None => exhausted = true,
        }
    }
    if exhausted {
        causes.push((
            "spec.ports".to_string(),
            "Internal error: range is full: no node port is free in 30000-32767".to_string(),
        ));
    }
    causes
}

fn is_cidr(value: &str) -> bool {
    let Some((ip, bits)) = value.split_once('/') else {
        return false;
    };
    let Ok(bits) = bits.parse::<u8>() else {
        return false;
    };
    match ip.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(_)) => bits <= 32,
        Ok(std::net::IpAddr::V6(_)) => bits <= 128,
        Err(_) => false,
    }
}

const LOAD_BALANCER_ONLY: &str = "may only be used when `type` is 'LoadBalancer'";

/// The type-dependent checks of `ValidateService` and `ValidateServiceUpdate`.
pub fn validate(obj: &Value, old: Option<&Value>, causes: &mut Vec<Cause>) {
    let mut cause = |field: &str, message: String| causes_push(causes, field, message);
    let kind = service_type(obj);
    const TYPES: [&str; 4] = ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];
    if !TYPES.contains(&kind) {
        cause(
            "spec.type",
            format!(
                "Unsupported value: {}: supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\"",
                json!(kind)
            ),
        );
    }
    let mut seen = BTreeSet::new();
    for (i, port) in ports(obj).enumerate() {
        let p = node_port(port);
        if p == 0 {
            continue;
        }
        if kind == "ClusterIP" {
            cause(
                &format!("spec.ports[{i}].nodePort"),
                "Forbidden: may not be used when `type` is 'ClusterIP'".into(),
            );
        }
        let protocol = port
            .get("protocol")
            .and_then(Value::as_str)
            .unwrap_or("TCP");
        if !seen.insert((protocol.to_string(), p)) {
            cause(
                &format!("spec.ports[{i}].nodePort"),
                format!("Duplicate value: {p}"),
            );
        }
    }
    if let Some(selector) = obj.pointer("/spec/selector").and_then(Value::as_object) {
        let mut label_causes = Vec::new();
        meta::labels(selector, "spec.selector", &mut label_causes);
        for (field, message) in label_causes {
            cause(&field, message);
        }
    }
    let ranges = obj
        .pointer("/spec/loadBalancerSourceRanges")
        .and_then(Value::as_array);
    if let Some(ranges) = ranges.filter(|r| !r.is_empty()) {
        // The capital L is the real server's field path.
        if kind != "LoadBalancer" {
            cause(
                "spec.LoadBalancerSourceRanges",
                format!("Forbidden: {LOAD_BALANCER_ONLY}"),
            );
        }
        for (i, range) in ranges.iter().enumerate() {
            let text = range.as_str().unwrap_or_default().trim();
            if !is_cidr(text) {
                cause(
                    &format!("spec.LoadBalancerSourceRanges[{i}]"),
                    format!(
                        "Invalid value: {}: must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
                        json!(text)
                    ),
                );
            }
        }
    }
    let spec = spec_of(obj);
    let field = |name: &str| spec.and_then(|s| s.get(name)).filter(|v| !v.is_null());
    if field("allocateLoadBalancerNodePorts").is_some() && kind != "LoadBalancer" {
        cause(
            "spec.allocateLoadBalancerNodePorts",
            format!("Forbidden: {LOAD_BALANCER_ONLY}"),
        );
    }
    if let Some(class) = field("loadBalancerClass") {
        if kind != "LoadBalancer" {
            cause(
                "spec.loadBalancerClass",
                format!("Forbidden: {LOAD_BALANCER_ONLY}"),
            );
        } else {
            for message in meta::qualified_name_errors(class.as_str().unwrap_or_default()) {
                cause(
                    "spec.loadBalancerClass",
                    format!("Invalid value: {class}: {message}"),
                );
            }
        }
    }
    if let Some(old) = old
        && service_type(old) == "LoadBalancer"
        && kind == "LoadBalancer"
        && old.pointer("/spec/loadBalancerClass") != obj.pointer("/spec/loadBalancerClass")
    {
        let class = obj
            .pointer("/spec/loadBalancerClass")
            .cloned()
            .unwrap_or(Value::Null);
        cause(
            "spec.loadBalancerClass",
            format!("Invalid value: {class}: may not change once set"),
        );
    }
    match (externally_accessible(obj), field("externalTrafficPolicy")) {
        (false, Some(policy)) => cause(
            "spec.externalTrafficPolicy",
            format!("Invalid value: {policy}: may only be set for externally-accessible services"),
        ),
        (true, None) => cause("spec.externalTrafficPolicy", "Required value".into()),
        (true, Some(policy)) if !matches!(policy.as_str(), Some("Cluster" | "Local")) => cause(
            "spec.externalTrafficPolicy",
            format!("Unsupported value: {policy}: supported values: \"Cluster\", \"Local\""),
        ),
        _ => {}
    }
    let health = health_check_node_port(obj);
    if !needs_health_check(obj) && health != 0 {
        cause(
            "spec.healthCheckNodePort",
            format!(
                "Invalid value: {health}: may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'"
            ),
        );
    }
    if let Some(old) = old
        && needs_health_check(old)
        && needs_health_check(obj)
        && health_check_node_port(old) != health
    {
        cause(
            "spec.healthCheckNodePort",
            "Forbidden: field is immutable".into(),
        );
    }
}

fn causes_push(causes: &mut Vec<Cause>, field: &str, message: String) {
    causes.push((field.to_string(), message));
}
