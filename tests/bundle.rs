//! Checks of the monitoring bundle: `rules/`, `dashboards/` and `examples/`.
//!
//! The rules are checked and unit-tested with `promtool`. The Alertmanager example is checked with
//! `amtool` and with a real Alertmanager (inhibition). The Prometheus example is checked with
//! `promtool check config`. The dashboards are checked for structure, PromQL validity, metric names
//! and alert thresholds. The Kubernetes manifests are validated against the Kubernetes JSON schemas
//! (`kubernetes-validate`), and the PrometheusRule is compared with `rules/`.
//!
//! Tools come from PATH: `promtool` (Debian package `prometheus`), `amtool` and
//! `prometheus-alertmanager` (package `prometheus-alertmanager`), and `kubernetes-validate`
//! (`pip install kubernetes-validate`). A missing promtool, amtool or Alertmanager fails its tests.
//! A missing kubernetes-validate skips its test with a message, except under CI (`CI` set),
//! where it fails.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const RUNBOOK_BASE: &str = "https://github.com/siembox/siembox-exporter/blob/main/rules/README.md#";
const COMPONENTS: &[&str] = &[
    "ssh", "audit", "security", "probe", "tls", "dns", "database", "exporter",
];
const DASHBOARDS: &[&str] = &["overview", "probes", "vps-audit"];

// ---------------------------------------------------------------------------------------------
// helpers

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn yaml(path: &Path) -> Value {
    serde_saphyr::from_str::<Value>(&read(path))
        .unwrap_or_else(|e| panic!("parse {} as YAML: {e}", path.display()))
}

fn yaml_documents(path: &Path) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(&read(path))
        .unwrap_or_else(|e| panic!("parse {} as YAML documents: {e}", path.display()))
        .into_iter()
        .filter(|d| !d.is_null())
        .collect()
}

fn json_file(path: &Path) -> Value {
    serde_json::from_str(&read(path))
        .unwrap_or_else(|e| panic!("parse {} as JSON: {e}", path.display()))
}

/// Files in `dir` whose name ends with `suffix`, sorted by name.
fn files(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("list {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.is_file() && p.to_string_lossy().ends_with(suffix))
        .collect();
    out.sort();
    out
}

fn rule_files() -> Vec<PathBuf> {
    let out = files(&root().join("rules"), ".yml");
    assert!(!out.is_empty(), "no rules/*.yml");
    out
}

fn rule_test_files() -> Vec<PathBuf> {
    let out = files(&root().join("rules/tests"), ".yml");
    assert!(!out.is_empty(), "no rules/tests/*.yml");
    out
}

fn groups(path: &Path) -> Vec<Value> {
    yaml(path)["groups"]
        .as_array()
        .unwrap_or_else(|| panic!("{}: no groups list", path.display()))
        .clone()
}

/// All rules of all rule files, in file order.
fn rules() -> Vec<Value> {
    let mut out = Vec::new();
    for file in rule_files() {
        for group in groups(&file) {
            out.extend(group["rules"].as_array().cloned().unwrap_or_default());
        }
    }
    out
}

fn alert_rules() -> Vec<Value> {
    rules()
        .into_iter()
        .filter(|r| r.get("alert").is_some())
        .collect()
}

fn recorded_names() -> BTreeSet<String> {
    rules()
        .iter()
        .filter_map(|r| r["record"].as_str().map(str::to_string))
        .collect()
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("missing string field {key:?} in {v}"))
}

/// Locates a binary on PATH.
fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

fn require(name: &str, package: &str) -> PathBuf {
    which(name).unwrap_or_else(|| {
        panic!("{name} not found in PATH: install it (apt-get install {package}); CI needs it")
    })
}

fn promtool() -> PathBuf {
    require("promtool", "prometheus")
}

fn amtool() -> PathBuf {
    require("amtool", "prometheus-alertmanager")
}

struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

fn run(program: &Path, args: &[&str]) -> Run {
    let out: Output = Command::new(program)
        .args(args)
        .current_dir(root())
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", program.display()));
    Run {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn rel(path: &Path) -> String {
    path.strip_prefix(root())
        .unwrap_or(path)
        .to_string_lossy()
        .into_owned()
}

/// A scratch directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!(
            "siembox-bundle-{name}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// ---------------------------------------------------------------------------------------------
// PromQL helpers

const PROMQL_KEYWORDS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "atan2",
    "inf",
    "nan",
];

/// Keywords followed by a parenthesised list of label names (not expressions).
const LABEL_LIST_KEYWORDS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

/// Removes string literals (keeping the quotes' place), so that their content is never read as
/// PromQL.
fn strip_strings(expr: &str) -> String {
    let mut out = String::with_capacity(expr.len());
    let mut chars = expr.chars();
    while let Some(c) = chars.next() {
        if c == '"' || c == '\'' || c == '`' {
            while let Some(d) = chars.next() {
                if d == '\\' && c != '`' {
                    chars.next();
                } else if d == c {
                    break;
                }
            }
            out.push_str("\"\"");
        } else {
            out.push(c);
        }
    }
    out
}

/// Whether the text starts with the keyword `by` or `without` (an aggregation's grouping).
fn followed_by_grouping(rest: &[char]) -> bool {
    let word: String = rest
        .iter()
        .take_while(|c| c.is_ascii_alphanumeric() || **c == '_')
        .collect();
    let word = word.to_ascii_lowercase();
    word == "by" || word == "without"
}

/// The metric names (and recorded series names) an expression selects. Grafana variables
/// (`$job`, `${datasource}`, `$__rate_interval`) are ignored.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let chars: Vec<char> = strip_strings(expr).chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    let is_start = |c: char| c.is_ascii_alphabetic() || c == '_' || c == ':';
    let is_part = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let skip_group = |i: usize, open: char, close: char| -> usize {
        // i is at `open`; returns the index after the matching `close`
        let mut depth = 0;
        let mut j = i;
        while j < chars.len() {
            if chars[j] == open {
                depth += 1;
            } else if chars[j] == close {
                depth -= 1;
                if depth == 0 {
                    return j + 1;
                }
            }
            j += 1;
        }
        j
    };
    while i < chars.len() {
        let c = chars[i];
        if c == '{' {
            i = skip_group(i, '{', '}');
        } else if c == '[' {
            i = skip_group(i, '[', ']');
        } else if c == '$' {
            i += 1;
            if i < chars.len() && chars[i] == '{' {
                i = skip_group(i, '{', '}');
            } else {
                while i < chars.len() && is_part(chars[i]) {
                    i += 1;
                }
            }
        } else if c.is_ascii_digit() || c == '.' {
            while i < chars.len() && (is_part(chars[i]) || chars[i] == '.') {
                i += 1;
            }
        } else if is_start(c) {
            let start = i;
            while i < chars.len() && is_part(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let mut j = i;
            while j < chars.len() && chars[j].is_whitespace() {
                j += 1;
            }
            let lower = word.to_ascii_lowercase();
            if LABEL_LIST_KEYWORDS.contains(&lower.as_str()) {
                if j < chars.len() && chars[j] == '(' {
                    i = skip_group(j, '(', ')');
                }
            } else if PROMQL_KEYWORDS.contains(&lower.as_str()) {
                // operator or literal
            } else if j < chars.len() && chars[j] == '(' {
                // function or aggregation
            } else if followed_by_grouping(&chars[j..]) {
                // aggregation written `sum by (...) (...)`
            } else {
                names.insert(word);
            }
        } else {
            i += 1;
        }
    }
    names
}

/// The numbers an expression compares against with `>`, `>=`, `<` or `<=`.
fn thresholds(expr: &str) -> Vec<f64> {
    let s = strip_strings(expr);
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'>' || bytes[i] == b'<' {
            let mut j = i + 1;
            if j < bytes.len() && bytes[j] == b'=' {
                j += 1;
            }
            let rest = s[j..].trim_start();
            let rest = rest.strip_prefix("bool").unwrap_or(rest).trim_start();
            let number: String = rest
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == 'e' || *c == '-')
                .collect();
            if let Ok(n) = number.parse::<f64>() {
                out.push(n);
            }
            i = j;
        } else {
            i += 1;
        }
    }
    out
}

/// Replaces Grafana variables with values that make the query plain PromQL.
fn grafana_to_promql(expr: &str) -> String {
    let mut s = expr
        .replace("$__rate_interval", "5m")
        .replace("$__interval", "1m")
        .replace("$__range", "1h");
    let mut out = String::new();
    while let Some(pos) = s.find('$') {
        out.push_str(&s[..pos]);
        let rest = &s[pos + 1..];
        let skip = if rest.starts_with('{') {
            rest.find('}').map(|e| e + 1).unwrap_or(rest.len())
        } else {
            rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len())
        };
        out.push_str(".*");
        s = rest[skip..].to_string();
    }
    out.push_str(&s);
    out
}

/// The PromQL selector inside a Grafana `label_values(selector, label)` variable query, if any.
fn variable_selector(query: &str) -> Option<String> {
    let inner = query
        .trim()
        .strip_prefix("label_values(")?
        .strip_suffix(')')?;
    let comma = inner.rfind(',')?;
    Some(inner[..comma].trim().to_string())
}

// ---------------------------------------------------------------------------------------------
// dashboards helpers

fn dashboards() -> Vec<(String, Value)> {
    DASHBOARDS
        .iter()
        .map(|name| {
            let path = root().join(format!("dashboards/{name}.json"));
            (name.to_string(), json_file(&path))
        })
        .collect()
}

/// Panels of a dashboard, including panels nested in collapsed rows.
fn panels(dashboard: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().cloned().unwrap_or_default() {
        let nested = panel["panels"].as_array().cloned().unwrap_or_default();
        out.push(panel);
        out.extend(nested);
    }
    out
}

fn variables(dashboard: &Value) -> Vec<Value> {
    dashboard["templating"]["list"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn variable_query(var: &Value) -> String {
    match &var["query"] {
        Value::String(s) => s.clone(),
        Value::Object(o) => o
            .get("query")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        _ => String::new(),
    }
}

/// Every PromQL expression of the dashboards, with where it comes from.
fn dashboard_exprs() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (name, dashboard) in dashboards() {
        for panel in panels(&dashboard) {
            for target in panel["targets"].as_array().cloned().unwrap_or_default() {
                out.push((
                    format!("{name}: panel {:?}", panel["title"]),
                    target["expr"].as_str().unwrap_or_default().to_string(),
                ));
            }
        }
        for var in variables(&dashboard) {
            if var["type"] == "query" {
                if let Some(selector) = variable_selector(&variable_query(&var)) {
                    out.push((format!("{name}: variable {:?}", var["name"]), selector));
                }
            }
        }
    }
    out
}

fn threshold_steps(panel: &Value) -> Vec<f64> {
    let mut out = Vec::new();
    let defaults = &panel["fieldConfig"]["defaults"]["thresholds"]["steps"];
    for step in defaults.as_array().cloned().unwrap_or_default() {
        if let Some(v) = step["value"].as_f64() {
            out.push(v);
        }
    }
    for ov in panel["fieldConfig"]["overrides"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        for prop in ov["properties"].as_array().cloned().unwrap_or_default() {
            if prop["id"] == "thresholds" {
                for step in prop["value"]["steps"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                {
                    if let Some(v) = step["value"].as_f64() {
                        out.push(v);
                    }
                }
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// rules

#[test]
fn promtool_check_rules_passes() {
    let files = rule_files();
    let mut args = vec!["check", "rules"];
    let names: Vec<String> = files.iter().map(|f| rel(f)).collect();
    args.extend(names.iter().map(String::as_str));
    let out = run(&promtool(), &args);
    assert!(
        out.ok,
        "promtool check rules failed:\n{}{}",
        out.stdout, out.stderr
    );
    // promtool counts the rules it found in each file; it must agree with our own parse
    for file in &files {
        let count: usize = groups(file)
            .iter()
            .map(|g| g["rules"].as_array().map(Vec::len).unwrap_or(0))
            .sum();
        assert!(count > 0, "{} has no rules", rel(file));
        let expected = format!("SUCCESS: {count} rules found");
        assert!(
            out.stdout.contains(&expected),
            "promtool did not report {expected:?} for {}:\n{}",
            rel(file),
            out.stdout
        );
    }
    assert!(!out.stdout.contains("WARNING"), "{}", out.stdout);
}

#[test]
fn promtool_unit_tests_pass() {
    let files = rule_test_files();
    let names: Vec<String> = files.iter().map(|f| rel(f)).collect();
    let mut args = vec!["test", "rules"];
    args.extend(names.iter().map(String::as_str));
    let out = run(&promtool(), &args);
    let text = format!("{}{}", out.stdout, out.stderr);
    assert!(out.ok, "promtool test rules failed:\n{text}");
    assert!(!text.contains("FAILED"), "{text}");
    assert_eq!(
        text.matches("SUCCESS").count(),
        files.len(),
        "expected one SUCCESS per test file:\n{text}"
    );
}

/// Every alert is tested firing at each of its severities and silent at least once (below its
/// threshold or before `for` elapsed), and every recording rule is evaluated by a test.
#[test]
fn every_rule_is_unit_tested() {
    let mut firing: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut silent: BTreeSet<String> = BTreeSet::new();
    let mut evaluated = String::new();
    for file in rule_test_files() {
        let doc = yaml(&file);
        for test in doc["tests"].as_array().cloned().unwrap_or_default() {
            for case in test["alert_rule_test"]
                .as_array()
                .cloned()
                .unwrap_or_default()
            {
                let name = str_of(&case, "alertname").to_string();
                let alerts = case["exp_alerts"].as_array().cloned().unwrap_or_default();
                if alerts.is_empty() {
                    silent.insert(name.clone());
                }
                for alert in alerts {
                    let severity = alert["exp_labels"]["severity"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string();
                    firing.entry(name.clone()).or_default().insert(severity);
                }
            }
            for case in test["promql_expr_test"]
                .as_array()
                .cloned()
                .unwrap_or_default()
            {
                evaluated.push_str(str_of(&case, "expr"));
                evaluated.push('\n');
            }
        }
    }
    let mut missing = Vec::new();
    for rule in alert_rules() {
        let name = str_of(&rule, "alert");
        let severity = str_of(&rule["labels"], "severity");
        if !firing.get(name).is_some_and(|s| s.contains(severity)) {
            missing.push(format!("{name} ({severity}) is never tested firing"));
        }
        if !silent.contains(name) {
            missing.push(format!("{name} is never tested silent"));
        }
    }
    for name in recorded_names() {
        if !metric_names(&evaluated).contains(&name) {
            missing.push(format!(
                "recording rule {name} is never evaluated by a test"
            ));
        }
    }
    assert!(
        missing.is_empty(),
        "untested rules:\n{}",
        missing.join("\n")
    );
}

#[test]
fn alerts_follow_the_conventions() {
    let readme = read(&root().join("rules/README.md"));
    let anchors: BTreeSet<String> = readme
        .lines()
        .filter_map(|l| l.strip_prefix('#'))
        .map(|h| {
            h.trim_start_matches('#')
                .trim()
                .to_lowercase()
                .chars()
                .filter(|c| c.is_alphanumeric() || *c == '-' || *c == '_' || *c == ' ')
                .map(|c| if c == ' ' { '-' } else { c })
                .collect()
        })
        .collect();
    let recorded = recorded_names();
    let mut severities: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut problems = Vec::new();
    for rule in alert_rules() {
        let name = str_of(&rule, "alert");
        let labels = &rule["labels"];
        let severity = labels["severity"].as_str().unwrap_or_default();
        let component = labels["component"].as_str().unwrap_or_default();
        if severity != "critical" && severity != "warning" {
            problems.push(format!("{name}: severity {severity:?}"));
        }
        if !COMPONENTS.contains(&component) {
            problems.push(format!("{name}: component {component:?}"));
        }
        if rule["for"] != "5m" {
            problems.push(format!("{name}: for is {} (want 5m)", rule["for"]));
        }
        let annotations = &rule["annotations"];
        for key in ["summary", "description", "runbook_url"] {
            if annotations[key]
                .as_str()
                .unwrap_or_default()
                .trim()
                .is_empty()
            {
                problems.push(format!("{name}: no {key} annotation"));
            }
        }
        let description = annotations["description"].as_str().unwrap_or_default();
        if !["$labels.server", "$labels.target", "$labels.instance"]
            .iter()
            .any(|l| description.contains(l))
        {
            problems.push(format!(
                "{name}: description names no server/target/instance"
            ));
        }
        let runbook = annotations["runbook_url"].as_str().unwrap_or_default();
        let anchor = name.to_lowercase();
        if runbook != format!("{RUNBOOK_BASE}{anchor}") {
            problems.push(format!("{name}: runbook_url {runbook:?}"));
        }
        if !anchors.contains(&anchor) {
            problems.push(format!("{name}: no section in rules/README.md"));
        }
        for used in metric_names(str_of(&rule, "expr")) {
            if used.contains(':') && !recorded.contains(&used) {
                problems.push(format!("{name}: uses unknown recorded series {used}"));
            }
        }
        severities
            .entry(name.to_string())
            .or_default()
            .push(severity.to_string());
    }
    // twins: one rule per severity under one alertname
    for (name, sevs) in &severities {
        let unique: BTreeSet<&String> = sevs.iter().collect();
        if unique.len() != sevs.len() {
            problems.push(format!("{name}: two rules with the same severity"));
        }
    }
    // the ratio alerts read the recording rules
    for name in [
        "SiemboxSSHConnectionFailures",
        "SiemboxSSHConnectionPoolUsage",
        "SiemboxAuditDurationHigh",
        "SiemboxAuditErrorRate",
    ] {
        for rule in alert_rules().iter().filter(|r| r["alert"] == name) {
            if !metric_names(str_of(rule, "expr"))
                .iter()
                .any(|m| recorded.contains(m))
            {
                problems.push(format!("{name}: does not use a recording rule"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The documented thresholds (SPEC §8) are the ones in the rules.
#[test]
fn alert_thresholds_match_the_spec() {
    let expected: &[(&str, &str, f64)] = &[
        ("SiemboxSSHConnectionFailures", "warning", 0.05),
        ("SiemboxSSHConnectionFailures", "critical", 0.10),
        ("SiemboxAuditDurationHigh", "warning", 180.0),
        ("SiemboxAuditDurationHigh", "critical", 300.0),
        ("SiemboxSSHConnectionPoolUsage", "warning", 0.60),
        ("SiemboxSSHConnectionPoolUsage", "critical", 0.80),
        ("SiemboxAuditQueueBacklog", "warning", 50.0),
        ("SiemboxAuditQueueBacklog", "critical", 100.0),
        ("SiemboxAuditErrorRate", "warning", 0.02),
        ("SiemboxAuditErrorRate", "critical", 0.05),
        ("SiemboxProbeSlow", "warning", 0.2),
        ("SiemboxProbeSlow", "critical", 1.0),
        ("SiemboxTLSCertificateExpiring", "warning", 14.0),
        ("SiemboxTLSCertificateExpiring", "critical", 3.0),
    ];
    let alerts = alert_rules();
    for (name, severity, threshold) in expected {
        let rule = alerts
            .iter()
            .find(|r| r["alert"] == *name && r["labels"]["severity"] == *severity)
            .unwrap_or_else(|| panic!("no {severity} rule for {name}"));
        let found = thresholds(str_of(rule, "expr"));
        assert_eq!(
            found,
            vec![*threshold],
            "{name} ({severity}): thresholds in {:?}",
            rule["expr"]
        );
    }
    for name in [
        "SiemboxProbeTargetDown",
        "SiemboxProbeHTTPStatusFailure",
        "SiemboxProbeDNSFailure",
        "SiemboxDatabaseUnreachable",
        "SiemboxAuditCheckFailed",
        "SiemboxExporterDown",
        "SiemboxQueueRejections",
        "SiemboxCardinalityDroppedSeries",
        "SiemboxConfigReloadFailed",
        "SiemboxScheduleSkippedRuns",
    ] {
        assert!(
            alerts.iter().any(|r| r["alert"] == name),
            "missing alert {name}"
        );
    }
}

#[test]
fn prometheus_rule_matches_rule_files() {
    let path = root().join("examples/kubernetes/prometheusrule.yaml");
    let docs = yaml_documents(&path);
    assert_eq!(docs.len(), 1, "{}: one document expected", rel(&path));
    let doc = &docs[0];
    assert_eq!(doc["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(doc["kind"], "PrometheusRule");
    assert!(doc["metadata"]["name"].is_string());
    let in_k8s = doc["spec"]["groups"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let in_rules: Vec<Value> = rule_files().iter().flat_map(|f| groups(f)).collect();
    let names = |gs: &[Value]| -> Vec<String> {
        gs.iter()
            .map(|g| g["name"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    assert_eq!(
        names(&in_k8s),
        names(&in_rules),
        "PrometheusRule groups differ from rules/*.yml: run sh tests/bundle/gen-prometheusrule.sh"
    );
    for (a, b) in in_k8s.iter().zip(&in_rules) {
        assert_eq!(
            a, b,
            "group {:?} of the PrometheusRule differs from rules/*.yml: \
             run sh tests/bundle/gen-prometheusrule.sh",
            b["name"]
        );
    }
}

// ---------------------------------------------------------------------------------------------
// metric names

fn known_metrics() -> BTreeMap<String, String> {
    let text = read(&root().join("tests/bundle/known_metrics.txt"));
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        let mut parts = line.split_whitespace();
        let name = parts.next().expect("name").to_string();
        let source = parts.next().unwrap_or_default().to_string();
        assert!(
            ["probe", "exporter", "prometheus"].contains(&source.as_str()),
            "known_metrics.txt: {name}: source {source:?}"
        );
        assert!(
            out.insert(name.clone(), source).is_none(),
            "duplicate {name}"
        );
    }
    out
}

#[test]
fn metric_name_extraction_reads_promql() {
    let expr = r#"sum by (job, le) (rate(foo_bucket{a="b{c} bar_in_string", job=~"$job"}[$__rate_interval]))
        / on (instance) group_left (version) bar:ratio > bool 0.5
        unless baz offset 5m or vector(0) * time() and Inf < qux[20m:1m]"#;
    let names: Vec<String> = metric_names(expr).into_iter().collect();
    assert_eq!(names, ["bar:ratio", "baz", "foo_bucket", "qux"]);
    assert_eq!(
        thresholds("a > 0.05 and b >= 400 < 500 unless c == 0"),
        [0.05, 400.0, 500.0]
    );
    assert_eq!(
        grafana_to_promql(r#"x{job=~"$job", i=~"${instance}"}[$__rate_interval]"#),
        r#"x{job=~".*", i=~".*"}[5m]"#
    );
    assert_eq!(
        variable_selector(r#"label_values(up{job=~"$job"}, instance)"#).as_deref(),
        Some(r#"up{job=~"$job"}"#)
    );
}

#[test]
fn bundle_uses_only_known_metrics() {
    let known = known_metrics();
    let recorded = recorded_names();
    let mut sources: Vec<(String, String)> = rules()
        .iter()
        .map(|r| {
            let name = r["alert"].as_str().or(r["record"].as_str()).unwrap_or("?");
            (format!("rule {name}"), str_of(r, "expr").to_string())
        })
        .collect();
    sources.extend(dashboard_exprs());
    let mut unknown = Vec::new();
    let mut used = BTreeSet::new();
    for (place, expr) in &sources {
        for name in metric_names(expr) {
            let ok = if name.contains(':') {
                recorded.contains(&name)
            } else {
                known.contains_key(&name)
            };
            if !ok {
                unknown.push(format!("{place}: {name}"));
            }
            used.insert(name);
        }
    }
    assert!(
        unknown.is_empty(),
        "metric names not in tests/bundle/known_metrics.txt (or not recorded by rules/):\n{}",
        unknown.join("\n")
    );
    assert!(
        used.len() > 20,
        "suspiciously few metric names found: {used:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// dashboards

#[test]
fn dashboards_are_well_formed() {
    let mut uids = BTreeSet::new();
    let wanted_vars: &[(&str, &[&str])] = &[
        ("overview", &["job", "instance"]),
        ("probes", &["job", "instance", "module"]),
        ("vps-audit", &["job", "instance", "server"]),
    ];
    for (name, dashboard) in dashboards() {
        let ctx = format!("dashboards/{name}.json");
        assert!(
            dashboard["schemaVersion"].as_u64().unwrap_or(0) >= 39,
            "{ctx}: schemaVersion"
        );
        assert!(dashboard["title"].as_str().is_some_and(|t| !t.is_empty()));
        let uid = dashboard["uid"].as_str().unwrap_or_default().to_string();
        assert!(!uid.is_empty() && uid.len() <= 40, "{ctx}: uid {uid:?}");
        assert!(uids.insert(uid), "{ctx}: uid used twice");
        assert!(
            dashboard["id"].is_null(),
            "{ctx}: id must be null for import"
        );

        // the datasource is a variable, and every other variable queries through it
        let vars = variables(&dashboard);
        let ds = vars
            .iter()
            .find(|v| v["type"] == "datasource")
            .unwrap_or_else(|| panic!("{ctx}: no datasource variable"));
        assert_eq!(ds["name"], "datasource", "{ctx}");
        assert_eq!(ds["query"], "prometheus", "{ctx}");
        let wanted = wanted_vars
            .iter()
            .find(|(n, _)| *n == name)
            .expect("known")
            .1;
        for var_name in wanted {
            let var = vars
                .iter()
                .find(|v| v["name"] == *var_name)
                .unwrap_or_else(|| panic!("{ctx}: no variable {var_name}"));
            assert_eq!(var["type"], "query", "{ctx}: {var_name}");
            assert_eq!(
                var["datasource"]["uid"], "${datasource}",
                "{ctx}: {var_name}"
            );
            assert!(
                variable_selector(&variable_query(var)).is_some(),
                "{ctx}: {var_name} query {:?}",
                var["query"]
            );
        }

        // panels: unique ids, a place on the grid, no overlap, queries through ${datasource}
        let all = panels(&dashboard);
        assert!(all.len() >= 8, "{ctx}: only {} panels", all.len());
        let mut ids = BTreeSet::new();
        let mut boxes: Vec<(String, u64, u64, u64, u64)> = Vec::new();
        for panel in &all {
            let title = panel["title"].as_str().unwrap_or_default().to_string();
            let id = panel["id"]
                .as_u64()
                .unwrap_or_else(|| panic!("{ctx}: panel {title:?} has no integer id"));
            assert!(ids.insert(id), "{ctx}: panel id {id} used twice");
            let pos = &panel["gridPos"];
            let [h, w, x, y] = ["h", "w", "x", "y"].map(|k| {
                pos[k]
                    .as_u64()
                    .unwrap_or_else(|| panic!("{ctx}: panel {title:?} gridPos.{k}"))
            });
            assert!(
                h > 0 && w > 0 && x + w <= 24,
                "{ctx}: panel {title:?} gridPos {pos}"
            );
            for (other, ox, oy, ow, oh) in &boxes {
                let overlap = x < ox + ow && *ox < x + w && y < oy + oh && *oy < y + h;
                assert!(!overlap, "{ctx}: panels {title:?} and {other:?} overlap");
            }
            boxes.push((title.clone(), x, y, w, h));
            if panel["type"] == "row" {
                continue;
            }
            assert_eq!(
                panel["datasource"]["uid"], "${datasource}",
                "{ctx}: panel {title:?} datasource"
            );
            let targets = panel["targets"].as_array().cloned().unwrap_or_default();
            assert!(!targets.is_empty(), "{ctx}: panel {title:?} has no query");
            for target in targets {
                assert!(
                    target["expr"]
                        .as_str()
                        .is_some_and(|e| !e.trim().is_empty()),
                    "{ctx}: panel {title:?} has an empty query"
                );
                assert_eq!(
                    target["datasource"]["uid"], "${datasource}",
                    "{ctx}: panel {title:?} query datasource"
                );
            }
        }
    }
}

#[test]
fn dashboard_queries_are_valid_promql() {
    let exprs = dashboard_exprs();
    let rules: Vec<Value> = exprs
        .iter()
        .enumerate()
        .map(|(i, (_, expr))| json!({"record": format!("dashboard:query:{i}"), "expr": grafana_to_promql(expr)}))
        .collect();
    let dir = TempDir::new("promql");
    let file = dir.0.join("dashboard-queries.yml");
    // JSON is YAML
    let doc = json!({"groups": [{"name": "dashboard-queries", "rules": rules}]});
    std::fs::write(&file, doc.to_string()).expect("write rules");
    let out = run(&promtool(), &["check", "rules", &file.to_string_lossy()]);
    assert!(
        out.ok,
        "dashboard queries that are not valid PromQL:\n{}{}\n(query i is {:?})",
        out.stdout,
        out.stderr,
        exprs
            .iter()
            .enumerate()
            .map(|(i, (place, _))| format!("{i}: {place}"))
            .collect::<Vec<_>>()
    );
    assert!(
        out.stdout
            .contains(&format!("SUCCESS: {} rules found", exprs.len())),
        "{}",
        out.stdout
    );
}

/// Every alert has a panel that names it in its description, and that panel's thresholds are the
/// alert's thresholds.
#[test]
fn dashboards_show_every_alert_with_its_thresholds() {
    let all: Vec<Value> = dashboards().iter().flat_map(|(_, d)| panels(d)).collect();
    let naming = |alert: &str| -> Vec<&Value> {
        all.iter()
            .filter(|p| {
                let description = p["description"].as_str().unwrap_or_default();
                description
                    .split(|c: char| !c.is_ascii_alphanumeric())
                    .any(|word| word == alert)
            })
            .collect()
    };
    let mut problems = Vec::new();
    for rule in alert_rules() {
        let name = str_of(&rule, "alert");
        let severity = str_of(&rule["labels"], "severity");
        let shown = naming(name);
        if shown.is_empty() {
            problems.push(format!("{name}: no panel description names it"));
            continue;
        }
        for threshold in thresholds(str_of(&rule, "expr")) {
            if threshold == 0.0 {
                continue; // "any at all": not a threshold step
            }
            let found = shown.iter().any(|p| {
                threshold_steps(p)
                    .iter()
                    .any(|s| (s - threshold).abs() <= 1e-9 * threshold.abs().max(1.0))
            });
            if !found {
                problems.push(format!(
                    "{name} ({severity}): no panel naming it has a threshold step at {threshold}"
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// Prometheus and Alertmanager examples

#[test]
fn prometheus_example_config_is_valid() {
    let out = run(&promtool(), &["check", "config", "examples/prometheus.yml"]);
    assert!(
        out.ok,
        "promtool check config failed:\n{}{}",
        out.stdout, out.stderr
    );
    let config = yaml(&root().join("examples/prometheus.yml"));
    let rule_files = config["rule_files"].as_array().cloned().unwrap_or_default();
    assert!(
        out.stdout
            .contains(&format!("SUCCESS: {} rule files found", rule_files.len())),
        "{}",
        out.stdout
    );
    for f in &rule_files {
        let f = f.as_str().unwrap_or_default();
        assert!(f.starts_with("../rules/"), "rule file {f:?}");
    }
    // promtool checked the rule files through the config (paths relative to its directory)
    for file in rule_files_names() {
        assert!(
            out.stdout.contains(&file),
            "{file} not checked:\n{}",
            out.stdout
        );
    }
    // the only acceptable warning: the file_sd example's files do not exist here
    for line in out.stdout.lines().chain(out.stderr.lines()) {
        if line.contains("WARNING") {
            assert!(line.contains("for file_sd"), "unexpected warning: {line}");
        }
    }

    let jobs = config["scrape_configs"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let job = |name: &str| -> &Value {
        jobs.iter()
            .find(|j| j["job_name"] == name)
            .unwrap_or_else(|| panic!("no scrape job {name}"))
    };
    let metrics = job("siembox-exporter");
    assert!(metrics["metrics_path"].is_null() || metrics["metrics_path"] == "/metrics");
    let probe_jobs: Vec<&Value> = jobs
        .iter()
        .filter(|j| j["metrics_path"] == "/probe")
        .collect();
    assert!(probe_jobs.len() >= 2);
    for j in &probe_jobs {
        let relabel = j["relabel_configs"].as_array().cloned().unwrap_or_default();
        let sets = |label: &str| relabel.iter().any(|r| r["target_label"] == label);
        assert!(
            sets("__param_target"),
            "{}: no __param_target",
            j["job_name"]
        );
        assert!(sets("instance"), "{}: no instance", j["job_name"]);
        assert!(sets("__address__"), "{}: no __address__", j["job_name"]);
        assert!(
            j["params"]["module"].is_array(),
            "{}: no module",
            j["job_name"]
        );
    }
    assert!(
        probe_jobs.iter().any(|j| j["relabel_configs"]
            .as_array()
            .is_some_and(|r| r.iter().any(|c| c["replacement"] == "localhost:9847"))),
        "no /probe job sends its scrapes to localhost:9847"
    );
    assert!(
        probe_jobs.iter().any(|j| j["relabel_configs"]
            .as_array()
            .is_some_and(|r| r.iter().any(|c| c["action"] == "hashmod"))),
        "no hashmod sharding example"
    );
}

fn rule_files_names() -> Vec<String> {
    rule_files()
        .iter()
        .map(|f| {
            f.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        })
        .collect()
}

#[test]
fn alertmanager_example_config_is_valid() {
    let out = run(&amtool(), &["check-config", "examples/alertmanager.yml"]);
    assert!(
        out.ok,
        "amtool check-config failed:\n{}{}",
        out.stdout, out.stderr
    );
    assert!(out.stdout.contains("SUCCESS"), "{}", out.stdout);
    let config = yaml(&root().join("examples/alertmanager.yml"));
    let inhibit = config["inhibit_rules"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let twin_rule = inhibit
        .iter()
        .find(|r| {
            r["source_matchers"].to_string().contains("critical")
                && r["target_matchers"].to_string().contains("warning")
        })
        .expect("an inhibit rule muting warnings while the critical twin fires");
    let equal: Vec<&str> = twin_rule["equal"]
        .as_array()
        .expect("equal")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for label in ["alertname", "instance", "server", "target"] {
        assert!(
            equal.contains(&label),
            "inhibit rule does not compare {label}"
        );
    }
}

fn route(labels: &[&str]) -> String {
    let mut args = vec![
        "config",
        "routes",
        "test",
        "--config.file=examples/alertmanager.yml",
    ];
    args.extend(labels);
    let out = run(&amtool(), &args);
    assert!(
        out.ok,
        "amtool config routes test {labels:?} failed:\n{}{}",
        out.stdout, out.stderr
    );
    out.stdout.trim().to_string()
}

#[test]
fn alertmanager_routes_by_severity_and_component() {
    let cases: &[(&[&str], &str)] = &[
        (&["severity=critical", "component=ssh"], "oncall-pager"),
        (&["severity=critical", "component=audit"], "oncall-pager"),
        (&["severity=critical", "component=probe"], "oncall-pager"),
        (&["severity=critical", "component=database"], "dba-pager"),
        (
            &["severity=critical", "component=security"],
            "security-pager",
        ),
        (&["severity=warning", "component=ssh"], "ops-chat"),
        (&["severity=warning", "component=audit"], "ops-chat"),
        (&["severity=warning", "component=security"], "security-chat"),
        (
            &["severity=warning", "component=tls"],
            "certificates-ticket",
        ),
        (&["severity=critical", "component=tls"], "oncall-pager"),
        (
            &["severity=critical", "component=exporter"],
            "monitoring-team",
        ),
        (
            &["severity=warning", "component=exporter"],
            "monitoring-team",
        ),
        (&["alertname=Unrelated"], "default"),
    ];
    for (labels, want) in cases {
        assert_eq!(route(labels), *want, "route for {labels:?}");
    }
    // --verify.receivers makes amtool itself fail on a mismatch
    let out = run(
        &amtool(),
        &[
            "config",
            "routes",
            "test",
            "--config.file=examples/alertmanager.yml",
            "--verify.receivers=ops-chat",
            "severity=critical",
            "component=ssh",
        ],
    );
    assert!(!out.ok, "amtool accepted a wrong receiver:\n{}", out.stdout);

    // every alert of the rules reaches a team, not the catch-all receiver
    let mut pairs = BTreeSet::new();
    for rule in alert_rules() {
        pairs.insert((
            str_of(&rule["labels"], "severity").to_string(),
            str_of(&rule["labels"], "component").to_string(),
        ));
    }
    for (severity, component) in pairs {
        let receiver = route(&[
            &format!("severity={severity}"),
            &format!("component={component}"),
        ]);
        assert_ne!(
            receiver, "default",
            "severity={severity} component={component} falls through to the default receiver"
        );
    }
}

/// A running Alertmanager, stopped on drop.
struct Alertmanager {
    child: Child,
    port: u16,
    _dir: TempDir,
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A minimal HTTP/1.0 exchange (no chunked encoding): status and body.
fn http(port: u16, method: &str, path: &str, body: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let request = format!(
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes())?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

fn start_alertmanager() -> Alertmanager {
    let binary = which("alertmanager")
        .or_else(|| which("prometheus-alertmanager"))
        .unwrap_or_else(|| {
            panic!("alertmanager not found in PATH: apt-get install prometheus-alertmanager")
        });
    let dir = TempDir::new("alertmanager");
    let port = free_port();
    let config = root().join("examples/alertmanager.yml");
    let child = Command::new(binary)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.path={}", dir.0.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--cluster.listen-address=")
        .arg("--log.level=warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start alertmanager");
    let am = Alertmanager {
        child,
        port,
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok((200, _)) = http(port, "GET", "/-/ready", "") {
            return am;
        }
        assert!(
            Instant::now() < deadline,
            "alertmanager did not become ready"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn alertmanager_inhibits_warnings_while_the_critical_twin_fires() {
    let am = start_alertmanager();
    // "<alertname> <severity> <component> <label>=<value>... => <expected state>"
    let cases = [
        // per-instance twins
        "SiemboxAuditQueueBacklog critical audit instance=a => active",
        "SiemboxAuditQueueBacklog warning audit instance=a => suppressed",
        "SiemboxAuditQueueBacklog warning audit instance=b => active",
        // another alertname on the same instance is not a twin
        "SiemboxSSHConnectionPoolUsage warning ssh instance=a => active",
        // per-server twins
        "SiemboxAuditDurationHigh critical audit instance=x server=web-1 => active",
        "SiemboxAuditDurationHigh warning audit instance=x server=web-1 => suppressed",
        "SiemboxAuditDurationHigh warning audit instance=x server=web-2 => active",
        // per-target twins (scheduled results carry a target label)
        "SiemboxProbeSlow critical probe instance=x module=http_2xx target=https://a.example => active",
        "SiemboxProbeSlow warning probe instance=x module=http_2xx target=https://a.example => suppressed",
        "SiemboxProbeSlow warning probe instance=x module=http_2xx target=https://b.example => active",
        // a known cause mutes the generic "target down" of the same probe
        "SiemboxProbeHTTPStatusFailure critical probe instance=https://c.example => active",
        "SiemboxProbeTargetDown critical probe instance=https://c.example => suppressed",
        "SiemboxProbeTargetDown critical probe instance=https://d.example => active",
        // while an exporter is down, its other exporter alerts are muted
        "SiemboxExporterDown critical exporter instance=e => active",
        "SiemboxQueueRejections warning exporter instance=e type=http => suppressed",
        "SiemboxQueueRejections warning exporter instance=f type=http => active",
    ];
    let cases: Vec<(Value, &str)> = cases
        .iter()
        .map(|case| {
            let (alert, state) = case.split_once(" => ").expect("case => state");
            let mut words = alert.split_whitespace();
            let mut labels = serde_json::Map::new();
            for key in ["alertname", "severity", "component"] {
                labels.insert(key.into(), json!(words.next().expect(key)));
            }
            labels.insert("job".into(), json!("siembox-exporter"));
            for word in words {
                let (k, v) = word.split_once('=').expect("label=value");
                labels.insert(k.into(), json!(v));
            }
            (json!({ "labels": labels }), state)
        })
        .collect();
    let body = Value::Array(cases.iter().map(|(a, _)| a.clone()).collect()).to_string();
    let (status, response) = http(am.port, "POST", "/api/v2/alerts", &body).expect("post alerts");
    assert_eq!(status, 200, "posting alerts: {response}");

    let key = |labels: &Value| -> String {
        ["alertname", "severity", "instance", "server", "target"]
            .iter()
            .map(|k| labels[*k].as_str().unwrap_or("").to_string())
            .collect::<Vec<_>>()
            .join("|")
    };
    let want: BTreeMap<String, String> = cases
        .iter()
        .map(|(a, state)| (key(&a["labels"]), state.to_string()))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, response) = http(am.port, "GET", "/api/v2/alerts", "").expect("get alerts");
        assert_eq!(status, 200, "{response}");
        let alerts: Value = serde_json::from_str(&response).expect("alerts JSON");
        let got: BTreeMap<String, String> = alerts
            .as_array()
            .expect("alert list")
            .iter()
            .map(|a| {
                (
                    key(&a["labels"]),
                    a["status"]["state"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect();
        if got == want {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "alert states differ\nwant: {want:#?}\ngot:  {got:#?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

// ---------------------------------------------------------------------------------------------
// Kubernetes manifests

fn k8s_documents() -> Vec<(String, Value)> {
    let dir = root().join("examples/kubernetes");
    let mut out = Vec::new();
    for file in files(&dir, ".yaml") {
        for doc in yaml_documents(&file) {
            out.push((rel(&file), doc));
        }
    }
    out
}

fn find_kind<'a>(docs: &'a [(String, Value)], api_version: &str, kind: &str) -> Vec<&'a Value> {
    docs.iter()
        .map(|(_, d)| d)
        .filter(|d| d["apiVersion"] == api_version && d["kind"] == kind)
        .collect()
}

fn labels_match(selector: &Value, labels: &Value) -> bool {
    selector
        .as_object()
        .is_some_and(|sel| !sel.is_empty() && sel.iter().all(|(k, v)| &labels[k] == v))
}

/// The `kubernetes-validate` command: the script on PATH, or the module run by `python3 -m`
/// (pip may put scripts in a directory that is not on PATH).
fn kubernetes_validate() -> Option<(PathBuf, Vec<&'static str>)> {
    if let Some(script) = which("kubernetes-validate") {
        return Some((script, Vec::new()));
    }
    let python = which("python3")?;
    let probe = Command::new(&python)
        .args(["-m", "kubernetes_validate", "--version"])
        .stdin(Stdio::null())
        .output()
        .ok()?;
    probe
        .status
        .success()
        .then(|| (python, vec!["-m", "kubernetes_validate"]))
}

#[test]
fn kubernetes_manifests_validate_against_schemas() {
    let Some((validator, prefix)) = kubernetes_validate() else {
        let message = "kubernetes-validate not found (neither on PATH nor as python3 -m \
                       kubernetes_validate): pip install kubernetes-validate \
                       (it ships the Kubernetes JSON schemas, no network needed)";
        assert!(std::env::var_os("CI").is_none(), "{message}");
        eprintln!("SKIPPED kubernetes_manifests_validate_against_schemas: {message}");
        return;
    };
    let dir = root().join("examples/kubernetes");
    let manifests: Vec<String> = files(&dir, ".yaml").iter().map(|f| rel(f)).collect();
    let mut args = prefix;
    args.push("--strict");
    args.extend(manifests.iter().map(String::as_str));
    let out = run(&validator, &args);
    let text = format!("{}{}", out.stdout, out.stderr);
    assert!(out.ok, "kubernetes-validate failed:\n{text}");
    assert!(!text.contains("ERROR"), "{text}");
    // every core object was really validated against a schema; only the prometheus-operator
    // CRDs (no schema offline) may lack one
    for (file, doc) in k8s_documents() {
        let api = doc["apiVersion"].as_str().unwrap_or_default();
        let kind = doc["kind"].as_str().unwrap_or_default();
        let name = doc["metadata"]["name"].as_str().unwrap_or_default();
        if api.starts_with("monitoring.coreos.com/") {
            continue;
        }
        let passed = format!("passed for resource {}/{name}", kind.to_lowercase());
        assert!(
            text.contains(&passed),
            "{file}: {kind} {name} was not validated against a schema:\n{text}"
        );
    }
    for line in text.lines().filter(|l| l.contains("Couldn't find schema")) {
        assert!(
            line.contains("monitoring.coreos.com/v1"),
            "no schema for a core object (wrong apiVersion?): {line}"
        );
    }
}

#[test]
fn kubernetes_manifests_are_complete() {
    let docs = k8s_documents();
    for (file, doc) in &docs {
        for field in ["apiVersion", "kind"] {
            assert!(doc[field].is_string(), "{file}: no {field}");
        }
        assert!(
            doc["metadata"]["name"].is_string(),
            "{file}: no metadata.name"
        );
    }

    // Deployment: probes, resources, locked-down security context
    let deployments = find_kind(&docs, "apps/v1", "Deployment");
    assert_eq!(deployments.len(), 1, "one Deployment");
    let deployment = deployments[0];
    let pod = &deployment["spec"]["template"];
    let pod_labels = &pod["metadata"]["labels"];
    assert!(labels_match(
        &deployment["spec"]["selector"]["matchLabels"],
        pod_labels
    ));
    assert_eq!(pod["spec"]["securityContext"]["runAsNonRoot"], true);
    let container = &pod["spec"]["containers"][0];
    assert!(container["ports"]
        .as_array()
        .is_some_and(|ps| ps.iter().any(|p| p["containerPort"] == 9847)));
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/-/healthy");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/-/ready");
    for kind in ["requests", "limits"] {
        for resource in ["cpu", "memory"] {
            assert!(
                container["resources"][kind][resource].is_string(),
                "Deployment: no resources.{kind}.{resource}"
            );
        }
    }
    let security = &container["securityContext"];
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(security["capabilities"]["drop"], json!(["ALL"]));
    for cap in security["capabilities"]["add"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        assert_eq!(cap, "NET_RAW", "only NET_RAW may be added");
    }

    // the config file named in the args is a key of the mounted ConfigMap, and parses
    let configmaps = find_kind(&docs, "v1", "ConfigMap");
    assert_eq!(configmaps.len(), 1, "one ConfigMap");
    let configmap = configmaps[0];
    let workloads: Vec<&Value> = deployments
        .iter()
        .copied()
        .chain(find_kind(&docs, "apps/v1", "StatefulSet"))
        .collect();
    for workload in &workloads {
        let spec = &workload["spec"]["template"]["spec"];
        let args = spec["containers"][0]["args"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let config_file = args
            .iter()
            .filter_map(Value::as_str)
            .find_map(|a| a.strip_prefix("--config.file="))
            .expect("--config.file argument");
        // the ConfigMap's volume and where the container mounts it
        let volume = spec["volumes"]
            .as_array()
            .and_then(|vs| {
                vs.iter()
                    .find(|v| v["configMap"]["name"] == configmap["metadata"]["name"])
            })
            .unwrap_or_else(|| {
                panic!(
                    "{} does not mount the ConfigMap",
                    workload["metadata"]["name"]
                )
            });
        let mount = spec["containers"][0]["volumeMounts"]
            .as_array()
            .and_then(|ms| ms.iter().find(|m| m["name"] == volume["name"]))
            .and_then(|m| m["mountPath"].as_str())
            .expect("the ConfigMap volume is mounted");
        let key = config_file
            .strip_prefix(mount)
            .and_then(|k| k.strip_prefix('/'))
            .unwrap_or_else(|| panic!("--config.file {config_file} is not in {mount}"));
        let text = configmap["data"][key]
            .as_str()
            .unwrap_or_else(|| panic!("ConfigMap has no key {key}"));
        let config: Value = serde_saphyr::from_str(text)
            .unwrap_or_else(|e| panic!("ConfigMap {key} is not YAML: {e}"));
        assert!(config["modules"].is_object(), "ConfigMap {key}: no modules");
    }

    // Service, HPA, PDB point at the Deployment's pods
    let services = find_kind(&docs, "v1", "Service");
    let service = services
        .iter()
        .find(|s| labels_match(&s["spec"]["selector"], pod_labels))
        .expect("a Service selecting the Deployment's pods");
    assert!(service["spec"]["ports"]
        .as_array()
        .is_some_and(|ps| ps.iter().any(|p| p["port"] == 9847)));
    let hpas = find_kind(&docs, "autoscaling/v2", "HorizontalPodAutoscaler");
    assert_eq!(hpas.len(), 1, "one autoscaling/v2 HorizontalPodAutoscaler");
    assert_eq!(hpas[0]["spec"]["scaleTargetRef"]["kind"], "Deployment");
    assert_eq!(
        hpas[0]["spec"]["scaleTargetRef"]["name"],
        deployment["metadata"]["name"]
    );
    let pdbs = find_kind(&docs, "policy/v1", "PodDisruptionBudget");
    assert_eq!(pdbs.len(), 1, "one policy/v1 PodDisruptionBudget");
    assert!(labels_match(
        &pdbs[0]["spec"]["selector"]["matchLabels"],
        pod_labels
    ));

    // prometheus-operator objects (no schema offline): the fields the operator requires
    let monitors = find_kind(&docs, "monitoring.coreos.com/v1", "ServiceMonitor");
    assert_eq!(monitors.len(), 1, "one ServiceMonitor");
    let monitor = &monitors[0]["spec"];
    assert!(labels_match(
        &monitor["selector"]["matchLabels"],
        &service["metadata"]["labels"]
    ));
    let endpoints = monitor["endpoints"].as_array().cloned().unwrap_or_default();
    assert!(!endpoints.is_empty(), "ServiceMonitor has no endpoints");
    for endpoint in endpoints {
        assert!(
            service["spec"]["ports"]
                .as_array()
                .is_some_and(|ps| ps.iter().any(|p| p["name"] == endpoint["port"])),
            "ServiceMonitor endpoint port {} is not a Service port",
            endpoint["port"]
        );
    }
    let probes = find_kind(&docs, "monitoring.coreos.com/v1", "Probe");
    assert!(!probes.is_empty(), "no Probe");
    for probe in probes {
        let spec = &probe["spec"];
        assert!(spec["prober"]["url"]
            .as_str()
            .is_some_and(|u| u.ends_with(":9847")));
        assert_eq!(spec["prober"]["path"], "/probe");
        assert!(spec["module"].is_string());
        assert!(spec["targets"]["staticConfig"]["static"]
            .as_array()
            .is_some_and(|t| !t.is_empty()));
    }
    let rules = find_kind(&docs, "monitoring.coreos.com/v1", "PrometheusRule");
    assert_eq!(rules.len(), 1, "one PrometheusRule");
}
