//! The Grafana dashboards in dashboards/ (and their provisioning file): each is well formed and
//! portable (it queries nothing but its `datasource` variable), its PromQL names only metrics that
//! exist, and it type-checks against Grafana's published dashboard schema, `@grafana/schema`, with
//! the TypeScript compiler that scripts/ensure-deps installs into target/node.
//!
//! Each check is a function that lists problems; the tests assert that the real dashboards have
//! none, and that a dashboard broken on purpose has the problem it was given.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The dashboards, each with the uid it keeps (links and bookmarks name it).
const DASHBOARDS: [(&str, &str); 3] = [
    ("releases.json", "sluice-releases"),
    ("release-detail.json", "sluice-release-detail"),
    ("controller.json", "sluice-controller"),
];

/// The oldest dashboard schema written by the Grafana releases the dashboards are for (11.0).
const MIN_SCHEMA_VERSION: u64 = 39;

const NAMESPACE_QUERY: &str = "label_values(sluice_rollout_phase, namespace)";
const ROLLOUT_QUERY: &str =
    r#"label_values(sluice_rollout_phase{namespace=~"$namespace"}, rollout)"#;

/// sluice's gauges and counters, as Prometheus scrapes them.
const SLUICE_SERIES: [&str; 20] = [
    "sluice_rollout_canary_weight_percent",
    "sluice_rollout_step",
    "sluice_rollout_steps",
    "sluice_rollout_phase",
    "sluice_rollout_revision_info",
    "sluice_analysis_value",
    "sluice_analysis_max",
    "sluice_analysis_min",
    "sluice_build_info",
    "sluice_analysis_checks_total",
    "sluice_releases_total",
    "sluice_commands_total",
    "sluice_reconcile_errors_total",
    "sluice_prometheus_query_failures_total",
    "sluice_api_requests_total",
    "sluice_rollbacks_total",
    "sluice_kubernetes_requests_total",
    "sluice_reconciles_in_flight",
    "sluice_work_queue_wakes_total",
    "sluice_rollout_last_release_duration_seconds",
];

/// sluice's histograms: each is scraped as `_bucket`, `_sum` and `_count` series.
const SLUICE_HISTOGRAMS: [&str; 6] = [
    "sluice_release_duration_seconds",
    "sluice_reconcile_duration_seconds",
    "sluice_prometheus_query_duration_seconds",
    "sluice_api_request_duration_seconds",
    "sluice_rollback_duration_seconds",
    "sluice_kubernetes_request_duration_seconds",
];

/// What else the dashboards show: ingress-nginx's traffic, the applications' own request
/// metrics (blue/green slots) and the standard process metrics (sluice reads them from /proc).
const OTHER_SERIES: [&str; 6] = [
    "nginx_ingress_controller_requests",
    "nginx_ingress_controller_request_duration_seconds_bucket",
    "http_requests_total",
    "http_request_duration_seconds_bucket",
    "process_resident_memory_bytes",
    "process_cpu_seconds_total",
];

/// A name in PromQL with one of these prefixes is taken for a metric name and must be known.
const METRIC_PREFIXES: [&str; 4] = [
    "sluice_",
    "nginx_ingress_controller_",
    "http_request",
    "process_",
];

fn datasource_ref() -> Value {
    json!({"type": "prometheus", "uid": "${datasource}"})
}

/// Every series name a dashboard may query, each with the metric it belongs to.
fn known_series() -> BTreeMap<String, &'static str> {
    let mut known = BTreeMap::new();
    for name in SLUICE_SERIES.iter().chain(&OTHER_SERIES) {
        known.insert(name.to_string(), *name);
    }
    for histogram in SLUICE_HISTOGRAMS {
        for suffix in ["_bucket", "_sum", "_count"] {
            known.insert(format!("{histogram}{suffix}"), histogram);
        }
    }
    known
}

fn dashboards_dir() -> PathBuf {
    Path::new(ROOT).join("dashboards")
}

/// Every dashboard in dashboards/: its file name, its text and its JSON.
fn dashboards() -> Vec<(String, String, Value)> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dashboards_dir()).expect("dashboards/ is readable") {
        let path = entry.expect("a directory entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let name = path
            .file_name()
            .expect("a file name")
            .to_string_lossy()
            .into_owned();
        let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("dashboards/{name}: {e}"));
        let json: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("dashboards/{name} is not JSON: {e}"));
        found.push((name, text, json));
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    for (file, _) in DASHBOARDS {
        assert!(
            found.iter().any(|(name, _, _)| name == file),
            "dashboards/{file} is missing"
        );
    }
    found
}

fn dashboard(file: &str) -> Value {
    dashboards()
        .into_iter()
        .find(|(name, _, _)| name == file)
        .map(|(_, _, json)| json)
        .expect("the dashboard exists")
}

/// Every panel, those inside collapsed rows too.
fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut all = Vec::new();
    for panel in dashboard["panels"].as_array().into_iter().flatten() {
        all.push(panel);
        all.extend(panel["panels"].as_array().into_iter().flatten());
    }
    all
}

fn panel_name(panel: &Value) -> String {
    format!(
        "panel {} {:?}",
        panel["id"],
        panel["title"].as_str().unwrap_or("")
    )
}

fn variables(dashboard: &Value) -> Vec<&Value> {
    dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
        .collect()
}

fn variable<'a>(dashboard: &'a Value, name: &str) -> Option<&'a Value> {
    variables(dashboard).into_iter().find(|v| v["name"] == name)
}

/// A query variable's query: a string, or (as the Prometheus plugin writes it) `{"query": …}`.
fn variable_query(variable: &Value) -> Option<&str> {
    variable["query"]
        .as_str()
        .or_else(|| variable["query"]["query"].as_str())
}

/// Every `"datasource"` anywhere in `value` that is not the datasource variable.
fn foreign_datasources(value: &Value, path: &str, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                let path = format!("{path}.{key}");
                if key == "datasource" && *inner != datasource_ref() {
                    found.push(format!("{path} is {inner}, not {}", datasource_ref()));
                }
                foreign_datasources(inner, &path, found);
            }
        }
        Value::Array(items) => {
            for (i, inner) in items.iter().enumerate() {
                foreign_datasources(inner, &format!("{path}[{i}]"), found);
            }
        }
        _ => {}
    }
}

/// Every PromQL expression of a dashboard, with where it is: the panels' targets, the annotation
/// queries and the query variables.
fn expressions(dashboard: &Value) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for panel in panels(dashboard) {
        for target in panel["targets"].as_array().into_iter().flatten() {
            if let Some(expr) = target["expr"].as_str() {
                let at = format!("{} target {}", panel_name(panel), target["refId"]);
                found.push((at, expr.to_string()));
            }
        }
    }
    for annotation in dashboard["annotations"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        for expr in [&annotation["target"]["expr"], &annotation["expr"]] {
            if let Some(expr) = expr.as_str() {
                found.push((
                    format!("annotation {}", annotation["name"]),
                    expr.to_string(),
                ));
            }
        }
    }
    for variable in variables(dashboard) {
        if variable["type"] == "query"
            && let Some(query) = variable_query(variable)
        {
            found.push((format!("variable {}", variable["name"]), query.to_string()));
        }
    }
    found
}

/// The words of a PromQL expression outside its string literals, and the template variables
/// (`$name`, `${name}`) it uses anywhere, string literals included.
fn words(expr: &str) -> (Vec<String>, Vec<String>) {
    let chars: Vec<char> = expr.chars().collect();
    let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let (mut words, mut vars) = (Vec::new(), Vec::new());
    let mut quote: Option<char> = None;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '$' {
            let braced = chars.get(i + 1) == Some(&'{');
            let start = i + 1 + usize::from(braced);
            let mut end = start;
            while end < chars.len() && (chars[end].is_ascii_alphanumeric() || chars[end] == '_') {
                end += 1;
            }
            let name: String = chars[start..end].iter().collect();
            // `$1` is a capture group of label_replace, not a variable.
            if !name.is_empty() && !name.chars().all(|c| c.is_ascii_digit()) {
                vars.push(name);
            }
            i = end + usize::from(braced && chars.get(end) == Some(&'}'));
        } else if let Some(q) = quote {
            if c == '\\' && q != '`' {
                i += 1;
            } else if c == q {
                quote = None;
            }
            i += 1;
        } else if matches!(c, '"' | '\'' | '`') {
            quote = Some(c);
            i += 1;
        } else if is_word(c) {
            let start = i;
            while i < chars.len() && is_word(chars[i]) {
                i += 1;
            }
            words.push(chars[start..i].iter().collect());
        } else {
            i += 1;
        }
    }
    (words, vars)
}

/// The metric names an expression uses: its words with one of the metric prefixes.
fn metric_names(expr: &str) -> Vec<String> {
    let (words, _) = words(expr);
    words
        .into_iter()
        .filter(|w| METRIC_PREFIXES.iter().any(|p| w.starts_with(p)))
        .collect()
}

/// What is wrong with a dashboard's structure: the variables, the data sources, the panels and
/// their layout.
fn structure_problems(dashboard: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    match dashboard["schemaVersion"].as_u64() {
        Some(v) if v >= MIN_SCHEMA_VERSION => {}
        other => problems.push(format!(
            "schemaVersion is {other:?}, not {MIN_SCHEMA_VERSION} or later"
        )),
    }
    for key in ["uid", "title"] {
        if dashboard[key].as_str().is_none_or(str::is_empty) {
            problems.push(format!("no {key}"));
        }
    }

    // The variables: the data source, and the namespace and Rollout from sluice's own metrics.
    let mut names = BTreeSet::new();
    for variable in variables(dashboard) {
        if !names.insert(variable["name"].as_str().unwrap_or("").to_string()) {
            problems.push(format!("variable {} is defined twice", variable["name"]));
        }
    }
    match variable(dashboard, "datasource") {
        Some(v) if v["type"] == "datasource" && v["query"] == "prometheus" => {}
        Some(v) => problems.push(format!(
            "variable datasource is not a Prometheus data source variable: {v}"
        )),
        None => problems.push("no variable datasource".into()),
    }
    for (name, query) in [("namespace", NAMESPACE_QUERY), ("rollout", ROLLOUT_QUERY)] {
        match variable(dashboard, name) {
            Some(v) if v["type"] == "query" && variable_query(v) == Some(query) => {}
            Some(v) => problems.push(format!("variable {name} is not a query of {query}: {v}")),
            None => problems.push(format!("no variable {name}")),
        }
    }
    for (at, expr) in expressions(dashboard) {
        for var in words(&expr).1 {
            if !var.starts_with("__") && !names.contains(&var) {
                problems.push(format!(
                    "{at} uses ${var}, which is no variable of the dashboard"
                ));
            }
        }
    }

    // The data sources: nothing but the variable, anywhere.
    foreign_datasources(dashboard, "", &mut problems);
    for panel in panels(dashboard) {
        let name = panel_name(panel);
        if panel.get("datasource").is_none() {
            problems.push(format!("{name} has no datasource"));
        }
        if panel["title"].as_str().is_none_or(str::is_empty) {
            problems.push(format!("{name} has no title"));
        }
        if panel["type"] == "row" {
            continue;
        }
        let targets = panel["targets"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        if targets.is_empty() {
            problems.push(format!("{name} has no targets"));
        }
        for target in targets {
            if target.get("datasource").is_none() {
                problems.push(format!(
                    "{name} target {} has no datasource",
                    target["refId"]
                ));
            }
            if target["expr"].as_str().is_none_or(|e| e.trim().is_empty()) {
                problems.push(format!("{name} target {} has no expr", target["refId"]));
            }
        }
    }
    for annotation in dashboard["annotations"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if annotation.get("datasource").is_none()
            || annotation["target"].get("datasource").is_none()
        {
            problems.push(format!(
                "annotation {} does not name its datasource",
                annotation["name"]
            ));
        }
    }

    // The layout: unique ids, and panels within the 24 columns that do not overlap.
    let mut ids = BTreeSet::new();
    let mut boxes: Vec<(String, [i64; 4])> = Vec::new();
    for panel in panels(dashboard) {
        let name = panel_name(panel);
        if !panel["id"].is_u64() || !ids.insert(panel["id"].as_u64()) {
            problems.push(format!("{name}: its id is missing or not unique"));
        }
        let pos = &panel["gridPos"];
        let [h, w, x, y] = ["h", "w", "x", "y"].map(|k| pos[k].as_i64().unwrap_or(-1));
        if h < 1 || !(1..=24).contains(&w) || x < 0 || y < 0 || x + w > 24 {
            problems.push(format!(
                "{name}: gridPos {pos} is not within the 24 columns"
            ));
            continue;
        }
        for (other, [oh, ow, ox, oy]) in &boxes {
            if x < ox + ow && *ox < x + w && y < oy + oh && *oy < y + h {
                problems.push(format!("{name} overlaps {other}"));
            }
        }
        boxes.push((name, [h, w, x, y]));
    }
    problems
}

/// Every metric name a dashboard's PromQL uses that is not known, and every panel query that
/// names no metric at all (which would make the check above vacuous for it).
fn promql_problems(dashboard: &Value) -> Vec<String> {
    let known = known_series();
    let mut problems = Vec::new();
    for (at, expr) in expressions(dashboard) {
        let names = metric_names(&expr);
        for name in &names {
            if !known.contains_key(name) {
                problems.push(format!(
                    "{at}: {name} is no metric sluice's dashboards know: {expr}"
                ));
            }
        }
        if names.is_empty() {
            problems.push(format!("{at}: names no metric: {expr}"));
        }
    }
    problems
}

#[test]
fn every_dashboard_is_well_formed_and_queries_only_its_datasource_variable() {
    let mut uids = BTreeMap::new();
    for (name, _, json) in dashboards() {
        let problems = structure_problems(&json);
        assert!(
            problems.is_empty(),
            "dashboards/{name}:\n  {}",
            problems.join("\n  ")
        );
        let uid = json["uid"].as_str().expect("a uid").to_string();
        if let Some(other) = uids.insert(uid.clone(), name.clone()) {
            panic!("dashboards/{name} and dashboards/{other} have the same uid {uid}");
        }
    }
    for (file, uid) in DASHBOARDS {
        assert_eq!(uids.get(uid).map(String::as_str), Some(file), "uid {uid}");
    }
}

#[test]
fn every_metric_the_dashboards_query_exists() {
    let known = known_series();
    let mut shown = BTreeSet::new();
    for (name, _, json) in dashboards() {
        let problems = promql_problems(&json);
        assert!(
            problems.is_empty(),
            "dashboards/{name}:\n  {}",
            problems.join("\n  ")
        );
        for (_, expr) in expressions(&json) {
            shown.extend(
                metric_names(&expr)
                    .iter()
                    .filter_map(|n| known.get(n).copied()),
            );
        }
    }
    // And the other way round: every metric sluice exports is on some dashboard.
    let all: BTreeSet<&str> = known.values().copied().collect();
    let missing: Vec<_> = all.difference(&shown).collect();
    assert!(missing.is_empty(), "no dashboard shows {missing:?}");
}

#[test]
fn the_promql_scan_reads_metric_names_and_variables() {
    let expr = r#"sum by (le) (rate(sluice_reconcile_duration_seconds_bucket{pod=~"${rollout}-sluice_x.*"}[$__rate_interval])) / process_cpu_seconds_total
        and on (slot) label_replace(sluice_build_info, "slot", "$1", "x", "(.+)")"#;
    assert_eq!(
        metric_names(expr),
        [
            "sluice_reconcile_duration_seconds_bucket",
            "process_cpu_seconds_total",
            "sluice_build_info"
        ]
    );
    assert_eq!(words(expr).1, ["rollout", "__rate_interval"]);
}

/// Breaks a copy of a dashboard and returns the problems the checks find in it.
fn problems_of_broken(file: &str, break_it: fn(&mut Value)) -> Vec<String> {
    let mut json = dashboard(file);
    assert!(structure_problems(&json).is_empty() && promql_problems(&json).is_empty());
    break_it(&mut json);
    let mut problems = structure_problems(&json);
    problems.extend(promql_problems(&json));
    problems
}

fn first_query_panel(json: &mut Value) -> &mut Value {
    json["panels"]
        .as_array_mut()
        .expect("panels")
        .iter_mut()
        .find(|p| p["type"] != "row")
        .expect("a panel with queries")
}

#[test]
fn the_checks_find_what_is_wrong_with_a_broken_dashboard() {
    type Break = fn(&mut Value);
    let cases: [(&str, &str, Break); 8] = [
        (
            "a fixed data source uid",
            "is {\"type\":\"prometheus\",\"uid\":\"P1809F7CD0C75ACF3\"}",
            |d| {
                first_query_panel(d)["targets"][0]["datasource"]["uid"] = json!("P1809F7CD0C75ACF3")
            },
        ),
        ("a target without a data source", "has no datasource", |d| {
            first_query_panel(d)["targets"][0]
                .as_object_mut()
                .expect("a target")
                .remove("datasource");
        }),
        ("no rollout variable", "no variable rollout", |d| {
            d["templating"]["list"]
                .as_array_mut()
                .expect("variables")
                .retain(|v| v["name"] != "rollout")
        }),
        ("an old schema", "schemaVersion is Some(38)", |d| {
            d["schemaVersion"] = json!(38)
        }),
        ("an undefined variable", "uses $namepsace", |d| {
            let target = &mut first_query_panel(d)["targets"][0];
            target["expr"] = json!(r#"sluice_rollout_step{namespace=~"$namepsace"}"#);
        }),
        (
            "a misspelled metric in a panel",
            "sluice_rollout_phse is no metric",
            |d| {
                let target = &mut first_query_panel(d)["targets"][0];
                let expr = target["expr"]
                    .as_str()
                    .expect("an expr")
                    .replace("sluice_rollout_phase", "sluice_rollout_phse");
                target["expr"] = json!(expr);
            },
        ),
        (
            "a misspelled metric in an annotation",
            "sluice_release_total is no metric",
            |d| {
                let target = &mut d["annotations"]["list"][0]["target"];
                let expr = target["expr"]
                    .as_str()
                    .expect("an expr")
                    .replace("sluice_releases_total", "sluice_release_total");
                target["expr"] = json!(expr);
            },
        ),
        ("overlapping panels", "overlaps", |d| {
            let second = d["panels"][2]["gridPos"].clone();
            d["panels"][3]["gridPos"] = second;
        }),
    ];
    for (what, expected, break_it) in cases {
        let problems = problems_of_broken("releases.json", break_it);
        assert!(
            problems.iter().any(|p| p.contains(expected)),
            "{what}: expected a problem with {expected:?}, found {problems:#?}"
        );
    }
}

fn tsc() -> PathBuf {
    let tsc = Path::new(ROOT).join("target/node/node_modules/.bin/tsc");
    assert!(
        tsc.exists(),
        "{} is missing: run scripts/ensure-deps (it installs TypeScript and @grafana/schema with \
         scripts/ensure-node-tools)",
        tsc.display()
    );
    tsc
}

/// Writes `dashboards` as TypeScript into `dir` (emptied first), each as
/// `export const dashboard = <its JSON> satisfies DashboardJson;` with the JSON's lines kept, so
/// that tsc's line numbers are the JSON file's (tests/dashboards/schema.ts says why a copy).
fn write_typescript(dir: &Path, dashboards: &[(String, String)]) {
    if dir.exists() {
        fs::remove_dir_all(dir).expect("the old copies are removed");
    }
    fs::create_dir_all(dir).expect("the directory is made");
    for (name, text) in dashboards {
        let stem = name.trim_end_matches(".json");
        let ts = format!(
            "import type {{ DashboardJson }} from \"../../tests/dashboards/schema\"; \
             export const dashboard = {} satisfies DashboardJson;\n",
            text.trim_end()
        );
        fs::write(dir.join(format!("{stem}.ts")), ts).expect("the copy is written");
    }
}

/// Runs tsc on a project, with the copies' paths in its output turned back into dashboards/*.json.
fn run_tsc(project: &str, copies: &str) -> (bool, String) {
    let output = Command::new(tsc())
        .args(["-p", project, "--pretty", "false"])
        .current_dir(ROOT)
        .output()
        .expect("tsc runs");
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    let text = text
        .replace(&format!("{copies}/"), "dashboards/")
        .replace(".ts(", ".json(");
    (output.status.success(), text)
}

#[test]
fn every_dashboard_type_checks_against_grafana_schema() {
    let all: Vec<(String, String)> = dashboards()
        .into_iter()
        .map(|(name, text, _)| (name, text))
        .collect();
    write_typescript(&Path::new(ROOT).join("target/dashboards-ts"), &all);
    let (ok, output) = run_tsc("tests/dashboards", "target/dashboards-ts");
    assert!(
        ok,
        "tsc -p tests/dashboards finds the dashboards do not fit @grafana/schema's Dashboard:\n{output}"
    );
}

#[test]
fn the_type_check_rejects_wrong_field_types() {
    let dir = Path::new(ROOT).join("target/dashboards-ts-broken");
    let base = dashboard("release-detail.json");
    type Break = fn(&mut Value);
    let cases: [(&str, Break); 5] = [
        ("height-as-text", |d| {
            first_query_panel(d)["gridPos"]["h"] = json!("8")
        }),
        ("variable-type-typo", |d| {
            d["templating"]["list"][1]["type"] = json!("querry")
        }),
        ("colour-mode-typo", |d| {
            first_query_panel(d)["fieldConfig"]["defaults"]["color"]["mode"] =
                json!("palette-clasic")
        }),
        ("unknown-option", |d| {
            let options = first_query_panel(d)["options"]
                .as_object_mut()
                .expect("options");
            let reduce = options.remove("reduceOptions").expect("stat options");
            options.insert("reduceOption".into(), reduce);
        }),
        ("override-value-type", |d| {
            let panel = first_query_panel(d);
            panel["fieldConfig"]["overrides"] = json!([{
                "matcher": {"id": "byName", "options": "x"},
                "properties": [{"id": "unit", "value": 5}]
            }]);
        }),
    ];
    let mut broken = Vec::new();
    for (name, break_it) in cases {
        let mut json = base.clone();
        break_it(&mut json);
        broken.push((
            format!("{name}.json"),
            serde_json::to_string_pretty(&json).expect("JSON"),
        ));
    }
    write_typescript(&dir, &broken);
    fs::write(
        dir.join("tsconfig.json"),
        r#"{ "extends": "../../tests/dashboards/tsconfig.json", "include": ["*.ts"] }"#,
    )
    .expect("the tsconfig is written");
    let (ok, output) = run_tsc("target/dashboards-ts-broken", "target/dashboards-ts-broken");
    assert!(!ok, "tsc accepted broken dashboards:\n{output}");
    for (name, _) in &broken {
        assert!(
            output
                .lines()
                .any(|l| l.starts_with(&format!("dashboards/{name}(")) && l.contains("error TS")),
            "tsc found nothing wrong with {name}:\n{output}"
        );
    }
}

#[test]
fn grafana_provisions_the_dashboards_from_files() {
    let text = fs::read_to_string(dashboards_dir().join("provisioning.yaml"))
        .expect("dashboards/provisioning.yaml");
    let yaml: Value = serde_saphyr::from_str(&text).expect("provisioning.yaml is YAML");
    assert_eq!(yaml["apiVersion"], 1);
    let providers = yaml["providers"].as_array().expect("providers");
    let sluice = providers
        .iter()
        .find(|p| p["name"] == "sluice")
        .expect("a provider named sluice");
    assert_eq!(sluice["folder"], "sluice");
    assert_eq!(sluice["type"], "file");
    assert_eq!(
        sluice["options"]["path"],
        "/var/lib/grafana/dashboards/sluice"
    );
}
