//! Dashboards and alert rules that the community wrote for blackbox_exporter work unchanged on
//! ours: blackbox_exporter 0.28 and siembox-exporter run the same modules; two real Prometheus
//! servers scrape one each with the same jobs and relabelling and load the same community rule
//! files; then every query of the community dashboards returns the same series from both, and
//! the same alerts fire.
//!
//! The community files are in ../shared/reference/community/ (see its README for their sources
//! and licenses): the blackbox-exporter-mixin dashboard and alerts, grafana.com dashboard 13659,
//! and awesome-prometheus-alerts' blackbox rules. As that README prescribes, only `for:` is
//! rewritten (to 0s), in a scratch copy.

mod support;

use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::blackbox::Blackbox;
use support::certs::TestPki;
use support::dnsmasq::Dnsmasq;
use support::http_server::HttpServer;
use support::prometheus::{dashboard_panel_queries, Prometheus};
use support::{free_port, Exporter};

/// The job name the mixin's alerts select (`job="blackbox-exporter"`).
const JOB: &str = "blackbox-exporter";
const CLUSTER: &str = "test";

fn community() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/reference/community")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (the community files are in shared/reference/community beside the repository)",
            path.display()
        )
    })
}

/// The community rule files with every `for:` set to 0s, written into `dir`.
fn scratch_rules(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(community().join("rules")).unwrap() {
        let path = entry.unwrap().path();
        let text: String = read(&path)
            .lines()
            .map(|l| match l.split_once("for:") {
                Some((indent, _)) if indent.trim().is_empty() => format!("{indent}for: 0s\n"),
                _ => format!("{l}\n"),
            })
            .collect();
        let copy = dir.join(path.file_name().unwrap());
        std::fs::write(&copy, text).unwrap();
        out.push(copy);
    }
    out.sort();
    assert_eq!(out.len(), 2, "{out:?}");
    out
}

/// (place, PromQL) of every panel query of the community dashboards, with their variables set
/// as a user of this test's Prometheus would set them.
fn dashboard_queries() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(community().join("dashboards")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let d: Value = serde_json::from_str(&read(&path)).unwrap();
        for (panel, expr) in dashboard_panel_queries(&d) {
            let q = expr
                .replace("$cluster", CLUSTER)
                .replace("$job", JOB)
                .replace("$instance", ".*")
                .replace("$__rate_interval", "1m")
                .replace("$__interval", "15s");
            out.push((format!("{name}: {panel}"), q));
        }
    }
    out.sort();
    out
}

/// The result of an instant query as a set of `labels => value` strings; values are left out
/// where they are timings (they differ between any two runs), and rounded where they are
/// relative to `time()` (the two queries run a moment apart).
fn series(result: &Value, expr: &str) -> BTreeSet<String> {
    let timing = expr.contains("duration") || expr.contains("lookup_time");
    let relative = expr.contains("time()");
    result
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            let labels = s["metric"].to_string();
            let value: f64 = s["value"][1]
                .as_str()
                .and_then(|v| v.parse().ok())
                .unwrap_or(f64::NAN);
            if timing {
                labels
            } else if relative {
                format!("{labels} => {:.0}", value / 100.0)
            } else {
                format!("{labels} => {value}")
            }
        })
        .collect()
}

/// Firing alerts as `labels` strings (annotations hold values and are left out).
async fn firing(prom: &Prometheus) -> BTreeSet<String> {
    prom.api("/api/v1/alerts", &[]).await["alerts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["state"] == "firing")
        .map(|a| a["labels"].to_string())
        .collect()
}

fn prometheus_config(exporter: &str, targets: &[(&str, String)], rules: &[PathBuf]) -> String {
    let rule_files: Vec<String> = rules
        .iter()
        .map(|r| format!("'{}'", r.file_name().unwrap().to_string_lossy()))
        .collect();
    let static_configs: String = targets
        .iter()
        .map(|(module, target)| {
            format!("      - {{targets: ['{target}'], labels: {{__param_module: {module}}}}}\n")
        })
        .collect();
    format!(
        r#"
global: {{scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s}}
rule_files: [{rules}]
scrape_configs:
  - job_name: {JOB}
    metrics_path: /probe
    static_configs:
{static_configs}    relabel_configs:
      - {{source_labels: [__address__], target_label: __param_target}}
      - {{source_labels: [__param_target], target_label: instance}}
      - {{target_label: __address__, replacement: '{exporter}'}}
      - {{target_label: cluster, replacement: {CLUSTER}}}
  - job_name: exporter
    static_configs: [{{targets: ['{exporter}']}}]
    relabel_configs: [{{target_label: instance, replacement: exporter}}]
"#,
        rules = rule_files.join(", "),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn community_dashboards_and_alerts_see_the_same_series_from_blackbox_and_ours() {
    let http = HttpServer::start().await;
    let pki = TestPki::generate();
    let https = HttpServer::start_tls(&pki.valid, true).await;
    let expired = HttpServer::start_tls(&pki.expired, false).await;
    let dns = Dnsmasq::start();
    let closed = free_port();
    let dir = tempfile::tempdir().unwrap();
    let modules = dir.path().join("modules.yml");
    std::fs::write(
        &modules,
        format!(
            "modules:
  http_2xx: {{prober: http, http: {{preferred_ip_protocol: ip4}}}}
  https_ca: {{prober: http, http: {{preferred_ip_protocol: ip4, tls_config: {{ca_file: '{ca}'}}}}}}
  icmp: {{prober: icmp, icmp: {{preferred_ip_protocol: ip4}}}}
  dns_soa: {{prober: dns, dns: {{query_name: example.test, query_type: SOA, preferred_ip_protocol: ip4}}}}
",
            ca = pki.ca_file.display()
        ),
    )
    .unwrap();
    let h = http.url("").trim_end_matches('/').to_string();
    let targets = [
        ("http_2xx", format!("{h}/")),
        ("http_2xx", format!("{h}/status/404")),
        ("http_2xx", format!("{h}/redirect/2")),
        ("http_2xx", format!("http://127.0.0.1:{closed}/")),
        ("https_ca", https.url("/")),
        ("https_ca", expired.url("/")),
        ("icmp", "127.0.0.1".to_string()),
        ("dns_soa", dns.target()),
    ];

    let bb = Blackbox::start(&modules).await;
    let ours = Exporter::start_file(modules.clone()).await;
    let rules_dir = tempfile::tempdir().unwrap();
    let rules = scratch_rules(rules_dir.path());
    let bb_addr = format!("127.0.0.1:{}", bb.port);
    let prom_bb = Prometheus::start(&prometheus_config(&bb_addr, &targets, &rules), &rules).await;
    let prom_ours = Prometheus::start(
        &prometheus_config(&ours.addr.to_string(), &targets, &rules),
        &rules,
    )
    .await;

    // Both have every target, then a few more scrapes and rule evaluations.
    let want = targets.len().to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    for prom in [&prom_bb, &prom_ours] {
        loop {
            let r = prom.query("count(probe_success)").await;
            if r[0]["value"][1].as_str() == Some(want.as_str()) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "not all targets scraped: {r}\n{}",
                prom.log_text()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    tokio::time::sleep(Duration::from_secs(4)).await;

    let queries = dashboard_queries();
    assert!(
        queries.len() >= 25,
        "too few dashboard queries: {queries:?}"
    );
    let mut problems = Vec::new();
    let mut with_data = 0;
    for (place, q) in &queries {
        let (theirs, mine) = (
            series(&prom_bb.query(q).await, q),
            series(&prom_ours.query(q).await, q),
        );
        with_data += usize::from(!theirs.is_empty());
        if theirs != mine {
            problems.push(format!(
                "{place}\n  {q}\n  blackbox only: {:?}\n  ours only: {:?}",
                theirs.difference(&mine).collect::<Vec<_>>(),
                mine.difference(&theirs).collect::<Vec<_>>()
            ));
        }
    }
    // Not a comparison of two empty answers: most panels show something.
    assert!(
        with_data * 10 >= queries.len() * 8,
        "only {with_data} of {} dashboard queries have data",
        queries.len()
    );

    let (theirs, mine) = (firing(&prom_bb).await, firing(&prom_ours).await);
    // The rules are exercised: the 404, the closed port and the expired certificate fail.
    assert!(
        theirs
            .iter()
            .filter(|a| a.contains("BlackboxProbeFailed"))
            .count()
            >= 2,
        "{theirs:?}"
    );
    if theirs != mine {
        problems.push(format!(
            "firing alerts differ\n  blackbox only: {:?}\n  ours only: {:?}",
            theirs.difference(&mine).collect::<Vec<_>>(),
            mine.difference(&theirs).collect::<Vec<_>>()
        ));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}
