//! Metric names are real (issue 9 items 3 and 4, SPEC §8): the exporter runs scheduled probes of
//! every kind against real servers (HTTP, HTTPS, TCP, DNS via dnsmasq, ICMP, PostgreSQL, Redis,
//! SSH) and a real SSH audit of a real sshd; a real `prometheus` scrapes its /metrics and a
//! blackbox-style /probe job and loads rules/*.yml. Then, from Prometheus:
//!   a. every name in tests/bundle/known_metrics.txt has series (tests/bundle.rs checks that the
//!      rules and dashboards use only names from that list, so together no rule or panel watches a
//!      name the code does not emit);
//!   b. every dashboard panel query and template variable returns data;
//!   c. every recording rule produces data, and every rule loads and evaluates without error.

mod support;

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use support::certs::TestPki;
use support::dnsmasq::Dnsmasq;
use support::http_server::HttpServer;
use support::prometheus::Prometheus;
use support::slow_server::SlowServer;
use support::sshd::{KeyPair, Sshd, SshdOptions};
use support::{free_port, Exporter};

/// How long the data may take to appear in Prometheus (scrapes and rule evaluations every 1s).
const DATA_WAIT: Duration = Duration::from_secs(60);

/// The /metrics scrape job; SiemboxExporterDown expects this name.
const EXPORTER_JOB: &str = "siembox-exporter";
/// The blackbox-style /probe job.
const PROBE_JOB: &str = "siembox-http";

/// Panels (by "<file>: panel \"<title>\"") that cannot have data in a short test, with the
/// reason. Empty: every panel has data within seconds (the one subquery panel is evaluated at the
/// next whole minute, see `has_subquery`). Keep it short.
const PANELS_WITHOUT_DATA: &[(&str, &str)] = &[];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn files(dir: &str, ext: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(root().join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    out.sort();
    out
}

/// `name source` lines of tests/bundle/known_metrics.txt.
fn known_metrics() -> BTreeMap<String, String> {
    let text = read(&root().join("tests/bundle/known_metrics.txt"));
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or_default().trim();
        if let Some((name, source)) = line.split_once(char::is_whitespace) {
            out.insert(name.to_string(), source.trim().to_string());
        }
    }
    assert!(out.len() > 20, "known_metrics.txt lists too few: {out:?}");
    out
}

/// The `record:` names of rules/siembox-recording.yml.
fn recording_rules() -> Vec<String> {
    let path = root().join("rules/siembox-recording.yml");
    let doc: Value = serde_saphyr::from_str(&read(&path)).unwrap();
    let names: Vec<String> = doc["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap().iter())
        .filter_map(|r| r["record"].as_str().map(str::to_string))
        .collect();
    assert!(
        !names.is_empty(),
        "no recording rules in {}",
        path.display()
    );
    names
}

fn walk_panels<'a>(panels: &'a Value, out: &mut Vec<&'a Value>) {
    for p in panels.as_array().into_iter().flatten() {
        out.push(p);
        walk_panels(&p["panels"], out);
    }
}

/// A Grafana expression as Grafana would send it with the variables set to what this test runs.
fn grafana_to_promql(expr: &str, exporter: &str) -> String {
    expr.replace("$__rate_interval", "1m")
        .replace("$__interval", "15s")
        .replace("$__range", "5m")
        .replace("${job}", EXPORTER_JOB)
        .replace("$job", EXPORTER_JOB)
        .replace("${instance}", exporter)
        .replace("$instance", exporter)
        // module and server are multi-value variables used with =~ ("All")
        .replace("$module", ".*")
        .replace("$server", ".*")
}

/// (place, PromQL) of every panel target and every `label_values(selector, label)` variable of
/// dashboards/*.json; variables come back as `label_values:<label>:<selector>`.
fn dashboard_queries(exporter: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for path in files("dashboards", "json") {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let d: Value = serde_json::from_str(&read(&path)).unwrap();
        let mut panels = Vec::new();
        walk_panels(&d["panels"], &mut panels);
        for p in panels {
            for t in p["targets"].as_array().into_iter().flatten() {
                if let Some(expr) = t["expr"].as_str() {
                    out.push((
                        format!("{name}: panel {:?} ({})", p["title"], t["refId"]),
                        grafana_to_promql(expr, exporter),
                    ));
                }
            }
        }
        for v in d["templating"]["list"].as_array().into_iter().flatten() {
            let q = v["query"]["query"].as_str().or(v["query"].as_str());
            let Some(args) = q.and_then(|q| {
                q.strip_prefix("label_values(")
                    .and_then(|r| r.strip_suffix(')'))
            }) else {
                continue;
            };
            let (selector, label) = args.rsplit_once(',').unwrap();
            out.push((
                format!("{name}: variable {}", v["name"]),
                format!(
                    "label_values:{}:{}",
                    label.trim(),
                    grafana_to_promql(selector.trim(), exporter)
                ),
            ));
        }
    }
    out
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Whether a query holds a subquery (`[range:step]`): its steps are aligned to multiples of the
/// step (1m here), so right after the data appears the last aligned step may still predate it.
fn has_subquery(expr: &str) -> bool {
    expr.split('[')
        .skip(1)
        .any(|s| s.split(']').next().is_some_and(|r| r.contains(':')))
}

/// Data of one query: panels as instant queries (a subquery at the next whole minute, which
/// still sees the samples of now within its 5m windows), variables as label values.
async fn query_has_data(prom: &Prometheus, query: &str) -> Result<(), String> {
    if let Some(rest) = query.strip_prefix("label_values:") {
        let (label, selector) = rest.split_once(':').unwrap();
        let values = prom
            .api(
                &format!("/api/v1/label/{label}/values"),
                &[("match[]", selector)],
            )
            .await;
        return match values.as_array() {
            Some(v) if !v.is_empty() => Ok(()),
            _ => Err(format!("no {label} values for {selector}")),
        };
    }
    let at = has_subquery(query).then(|| (now() / 60.0).ceil() * 60.0);
    let result = prom.query_at(query, at).await;
    if Prometheus::has_data(&result) {
        Ok(())
    } else {
        Err(format!("no data for {query}"))
    }
}

/// Light checks: the SUID scan and pending updates of this machine take seconds of I/O.
const LIGHT: &str = "{pending_updates: {enabled: false}, suid_files: {enabled: false}}";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_finds_every_bundle_metric_panel_and_recording_rule() {
    let started = Instant::now();

    // Real servers.
    let dir = tempfile::tempdir().unwrap();
    let client = KeyPair::generate(dir.path(), "client_ed25519");
    let sshd = Sshd::start(SshdOptions {
        authorized: vec![client.public_line.clone()],
        ..Default::default()
    });
    let known_hosts = dir.path().join("known_hosts");
    std::fs::write(&known_hosts, format!("{}\n", sshd.known_hosts_line())).unwrap();
    let http = HttpServer::start().await;
    let pki = TestPki::generate();
    let https = HttpServer::start_tls(&pki.valid, false).await;
    // Expired: the probe fails, probe_ssl_unverified_cert_expiry says when it expired.
    let expired = HttpServer::start_tls(&pki.expired, false).await;
    let dns = Dnsmasq::start();
    // Slower than the 1s interval: runs overlap and are skipped.
    let slow = SlowServer::start(Duration::from_millis(1500)).await;
    let closed = free_port();

    // Six HTTP targets x five phases overflow the family cap of 20 (probe_http_duration_seconds
    // is dropped in part and counted); the 15 targets' one-series families stay under it.
    // The ssh rate limit of 1/m refuses every ssh probe after the first (queue rejections).
    let yaml = format!(
        r#"
limits:
  rate_limits: {{per_type: {{ssh: 1/m}}}}
cardinality: {{max_series_per_family: 20}}
modules:
  http_2xx: {{prober: http, timeout: 5s}}
  https_2xx: {{prober: http, timeout: 5s, http: {{fail_if_not_ssl: true, tls_config: {{ca_file: "{ca}"}}}}}}
  http_no_hello: {{prober: http, timeout: 5s, http: {{fail_if_body_matches_regexp: ["hello"]}}}}
  tcp_connect: {{prober: tcp, timeout: 3s}}
  tcp_slow: {{prober: tcp, timeout: 5s, tcp: {{query_response: [{{expect: "^READY"}}]}}}}
  dns_a: {{prober: dns, timeout: 3s, dns: {{query_name: www.example.test, query_type: A}}}}
  icmp: {{prober: icmp, timeout: 3s}}
  pg: {{prober: postgres, timeout: 5s, postgres: {{user: postgres, database: test}}}}
  redis: {{prober: redis, timeout: 5s, redis: {{}}}}
  ssh_banner: {{prober: ssh, timeout: 3s}}
  vps_audit:
    prober: ssh_audit
    timeout: 30s
    ssh_audit:
      user: root
      private_key_file: "{key}"
      known_hosts_file: "{kh}"
      pool: {{max_connections: 2}}
      checks: {LIGHT}
servers:
  - {{name: local, address: "{sshd}"}}
schedule:
  - {{module: http_2xx, interval: 1s, targets: ["{h}/", "{h}/status/500", "{h}/gzip", "{h}/headers"]}}
  - {{module: https_2xx, interval: 1s, targets: ["{hs}/", "{expired}/"]}}
  - {{module: http_no_hello, interval: 1s, targets: ["{h}/"]}}
  - {{module: tcp_connect, interval: 1s, targets: ["{tcp_open}", "127.0.0.1:{closed}"]}}
  - {{module: tcp_slow, interval: 1s, targets: ["{slow}"]}}
  - {{module: dns_a, interval: 1s, targets: ["{dns}"]}}
  - {{module: icmp, interval: 1s, targets: ["127.0.0.1"]}}
  - {{module: pg, interval: 1s, targets: ["127.0.0.1:5432"]}}
  - {{module: redis, interval: 1s, targets: ["127.0.0.1:6379"]}}
  - {{module: ssh_banner, interval: 1s, targets: ["{sshd}"]}}
  - {{module: vps_audit, interval: 1s, servers: all}}
"#,
        ca = pki.ca_file.display(),
        key = client.private.display(),
        kh = known_hosts.display(),
        sshd = sshd.address(),
        h = http.url("").trim_end_matches('/'),
        hs = https.url("").trim_end_matches('/'),
        expired = expired.url("").trim_end_matches('/'),
        tcp_open = http.addr,
        slow = slow.target(),
        dns = dns.target(),
    );
    let ex = Exporter::start(&yaml).await;
    let exporter = ex.addr.to_string();

    // A rejected reload: the old config keeps serving, siembox_exporter_config_last_reload_successful 0.
    let config_path = ex.app.config_path().unwrap().clone();
    std::fs::write(&config_path, "modules: [not, a, map]\n").unwrap();
    let reload = support::request("POST", &ex.url("/-/reload"), &[]).await;
    assert_ne!(
        reload.status, 200,
        "a bad config was accepted: {}",
        reload.body
    );

    // Real Prometheus: /metrics, a /probe job relabelled the usual way, and the shipped rules.
    let rules = files("rules", "yml");
    let rule_files: Vec<String> = rules
        .iter()
        .map(|r| format!("'{}'", r.file_name().unwrap().to_string_lossy()))
        .collect();
    let prom_config = format!(
        r#"
global: {{scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s}}
rule_files: [{rule_files}]
scrape_configs:
  - job_name: {EXPORTER_JOB}
    static_configs: [{{targets: ['{exporter}']}}]
  - job_name: {PROBE_JOB}
    metrics_path: /probe
    params: {{module: [http_2xx]}}
    static_configs: [{{targets: ['{target}']}}]
    relabel_configs:
      - {{source_labels: [__address__], target_label: __param_target}}
      - {{source_labels: [__param_target], target_label: instance}}
      - {{target_label: __address__, replacement: '{exporter}'}}
"#,
        rule_files = rule_files.join(", "),
        target = http.url("/"),
    );
    let prom = Prometheus::start(&prom_config, &rules).await;

    let known = known_metrics();
    let recorded = recording_rules();
    let panels = dashboard_queries(&exporter);
    assert!(
        panels.len() > 30,
        "suspiciously few dashboard queries: {panels:?}"
    );
    let allowed: BTreeMap<&str, &str> = PANELS_WITHOUT_DATA.iter().copied().collect();
    // The events this test causes really happened (not only zero-valued series), and the probes
    // worked (TLS, DNS and audit metrics come from successful probes).
    let events = [
        format!("probe_success{{job='{PROBE_JOB}'}} == 1"),
        format!("up{{job='{EXPORTER_JOB}'}} == 1"),
        "count(probe_success{module=~'https_2xx|dns_a|icmp|pg|redis|vps_audit'} == 1) == 6"
            .to_string(),
        "probe_success{module='tcp_connect'} == 0".to_string(),
        "probe_ssl_unverified_cert_expiry{module='https_2xx'} < time()".to_string(),
        "probe_failed_due_to_regex{module='http_no_hello'} == 1".to_string(),
        "probe_http_status_code{target=~'.*/status/500'} == 500".to_string(),
        "siembox_queue_rejected_total{type='ssh', reason='rate_limited'} > 0".to_string(),
        "siembox_cardinality_dropped_series_total{family='probe_http_duration_seconds'} > 0"
            .to_string(),
        "siembox_schedule_skipped_runs_total{module='tcp_slow'} > 0".to_string(),
        "siembox_exporter_config_last_reload_successful == 0".to_string(),
        "siembox_vps_audit_ssh_connections_total{status='success'} > 0".to_string(),
    ];

    let deadline = Instant::now() + DATA_WAIT;
    let (missing_names, no_data, no_records, not_happened, rule_errors) = loop {
        // a. every known name has series from the exporter's scrape job
        let names: Vec<&String> = known.keys().collect();
        let present = prom
            .query(&format!(
                "group by (__name__) ({{__name__=~'{}', job='{EXPORTER_JOB}'}})",
                names
                    .iter()
                    .map(|n| n.as_str())
                    .collect::<Vec<_>>()
                    .join("|")
            ))
            .await;
        let present: Vec<&str> = present
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|s| s["metric"]["__name__"].as_str())
            .collect();
        let missing_names: Vec<String> = known
            .iter()
            .filter(|(n, _)| !present.contains(&n.as_str()))
            .map(|(n, source)| format!("{n} ({source})"))
            .collect();
        // b. every panel query and variable
        let mut no_data = Vec::new();
        for (place, q) in &panels {
            if allowed.keys().any(|a| place.contains(a)) {
                continue;
            }
            if let Err(e) = query_has_data(&prom, q).await {
                no_data.push(format!("{place}: {e}"));
            }
        }
        // c. every recording rule
        let mut no_records = Vec::new();
        for r in &recorded {
            if !Prometheus::has_data(&prom.query(r).await) {
                no_records.push(r.clone());
            }
        }
        let mut not_happened = Vec::new();
        for e in &events {
            if !Prometheus::has_data(&prom.query(e).await) {
                not_happened.push(e.clone());
            }
        }
        let rule_errors = rule_errors(&prom, &recorded).await;
        let done = missing_names.is_empty()
            && no_data.is_empty()
            && no_records.is_empty()
            && not_happened.is_empty()
            && rule_errors.is_empty();
        if done || Instant::now() > deadline {
            break (
                missing_names,
                no_data,
                no_records,
                not_happened,
                rule_errors,
            );
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    let waited = started.elapsed();
    // One message listing every problem, so a single run shows all wrong names and panels.
    let mut problems = Vec::new();
    let mut section = |title: &str, items: Vec<String>| {
        if !items.is_empty() {
            problems.push(format!("{title}:\n  {}", items.join("\n  ")));
        }
    };
    section(
        &format!("names in tests/bundle/known_metrics.txt without series in job {EXPORTER_JOB}"),
        missing_names,
    );
    section("dashboard queries without data", no_data);
    section("recording rules without data", no_records);
    section("rules Prometheus did not load or evaluate", rule_errors);
    section("expected events not seen", not_happened);
    assert!(
        problems.is_empty(),
        "after {waited:?}:\n{}\nprometheus log:\n{}",
        problems.join("\n"),
        prom.log_text()
    );
    eprintln!("live Prometheus checks passed after {waited:?}");
    drop(ex);
}

/// Rules Prometheus did not load (recording rules missing from /api/v1/rules) or that failed their
/// last evaluation.
async fn rule_errors(prom: &Prometheus, recorded: &[String]) -> Vec<String> {
    let data = prom.api("/api/v1/rules", &[]).await;
    let rules: Vec<&Value> = data["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap().iter())
        .collect();
    let mut errors: Vec<String> = rules
        .iter()
        .filter(|r| r["health"] == "err")
        .map(|r| format!("{}: {}", r["name"], r["lastError"]))
        .collect();
    for name in recorded {
        if !rules
            .iter()
            .any(|r| r["type"] == "recording" && r["name"] == name.as_str())
        {
            errors.push(format!("{name}: not loaded"));
        }
    }
    if !rules.iter().any(|r| r["type"] == "alerting") {
        errors.push("no alerting rule loaded".to_string());
    }
    errors
}
