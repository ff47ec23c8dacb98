//! `meta.k8s.io/v1` Table responses: what `kubectl get` prints, columns included (a CRD's
//! additionalPrinterColumns too).

use std::sync::Arc;

use axum::http::{HeaderMap, header};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::store::{ListResult, ResourceKind};

pub fn wanted(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("as=Table"))
}

struct Column {
    name: &'static str,
    column_type: &'static str,
    cell: fn(&Value) -> Value,
}

fn text(obj: &Value, pointer: &str) -> String {
    match obj.pointer(pointer) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

fn int(obj: &Value, pointer: &str) -> i64 {
    obj.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

/// A duration as kubectl prints ages: 42s, 5m, 3h, 2d.
pub fn human_age(created: &str, now: DateTime<Utc>) -> String {
    let Ok(created) = DateTime::parse_from_rfc3339(created) else {
        return "<unknown>".into();
    };
    let secs = (now - created.with_timezone(&Utc)).num_seconds().max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 3 * 3600 => format!("{}m", s / 60),
        s if s < 48 * 3600 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

fn builtin_columns(kind: &ResourceKind) -> Vec<Column> {
    match (kind.group.as_str(), kind.plural.as_str()) {
        ("apps", "deployments") => vec![
            Column {
                name: "Ready",
                column_type: "string",
                cell: |o| {
                    json!(format!(
                        "{}/{}",
                        int(o, "/status/readyReplicas"),
                        int(o, "/spec/replicas")
                    ))
                },
            },
            Column {
                name: "Up-to-date",
                column_type: "integer",
                cell: |o| json!(int(o, "/status/updatedReplicas")),
            },
            Column {
                name: "Available",
                column_type: "integer",
                cell: |o| json!(int(o, "/status/availableReplicas")),
            },
        ],
        ("", "services") => vec![
            Column {
                name: "Type",
                column_type: "string",
                cell: |o| json!(text(o, "/spec/type")),
            },
            Column {
                name: "Cluster-IP",
                column_type: "string",
                cell: |o| json!(text(o, "/spec/clusterIP")),
            },
            Column {
                name: "Ports",
                column_type: "string",
                cell: |o| {
                    let ports: Vec<String> = o
                        .pointer("/spec/ports")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .map(|p| format!("{}/{}", text(p, "/port"), text(p, "/protocol")))
                        .collect();
                    json!(ports.join(","))
                },
            },
        ],
        ("networking.k8s.io", "ingresses") => vec![
            Column {
                name: "Class",
                column_type: "string",
                cell: |o| json!(text(o, "/spec/ingressClassName")),
            },
            Column {
                name: "Hosts",
                column_type: "string",
                cell: |o| {
                    let hosts: Vec<String> = o
                        .pointer("/spec/rules")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .map(|r| {
                            r.get("host")
                                .and_then(Value::as_str)
                                .unwrap_or("*")
                                .to_string()
                        })
                        .collect();
                    json!(hosts.join(","))
                },
            },
        ],
        ("", "namespaces") => vec![Column {
            name: "Status",
            column_type: "string",
            cell: |o| json!(text(o, "/status/phase")),
        }],
        _ => Vec::new(),
    }
}

/// A CRD printer column's jsonPath, for the simple `.a.b.c` paths CRDs use.
fn json_path_cell(obj: &Value, json_path: &str) -> Value {
    let pointer = json_path
        .trim_start_matches('{')
        .trim_end_matches('}')
        .replace('.', "/");
    obj.pointer(&pointer).cloned().unwrap_or(Value::Null)
}

pub fn of_objects(
    kind: &ResourceKind,
    _version: &str,
    objects: &[Arc<Value>],
    list: Option<&ListResult>,
) -> Value {
    let now = Utc::now();
    let mut definitions = vec![
        json!({"name": "Name", "type": "string", "format": "name", "description": "Name", "priority": 0}),
    ];
    let builtin = builtin_columns(kind);
    for column in &builtin {
        definitions.push(json!({"name": column.name, "type": column.column_type, "format": "", "description": column.name, "priority": 0}));
    }
    for column in &kind.printer_columns {
        definitions.push(json!({"name": column.name, "type": column.column_type, "format": "", "description": column.name, "priority": 0}));
    }
    let has_age_column = kind.printer_columns.iter().any(|c| c.name == "Age");
    if !has_age_column {
        definitions.push(json!({"name": "Age", "type": "string", "format": "", "description": "Age", "priority": 0}));
    }
    let rows: Vec<Value> = objects
        .iter()
        .map(|obj| {
            let mut cells = vec![json!(text(obj, "/metadata/name"))];
            cells.extend(builtin.iter().map(|c| (c.cell)(obj)));
            for column in &kind.printer_columns {
                let value = json_path_cell(obj, &column.json_path);
                let value = match (column.column_type.as_str(), value.as_str()) {
                    ("date", Some(date)) => json!(human_age(date, now)),
                    _ => value,
                };
                cells.push(value);
            }
            if !has_age_column {
                cells.push(json!(human_age(&text(obj, "/metadata/creationTimestamp"), now)));
            }
            json!({
                "cells": cells,
                "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]},
            })
        })
        .collect();
    let mut metadata = json!({});
    if let Some(list) = list {
        metadata["resourceVersion"] = json!(list.resource_version.to_string());
        if let Some(token) = &list.continue_token {
            metadata["continue"] = json!(token);
        }
    }
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": metadata, "columnDefinitions": definitions, "rows": rows})
}
