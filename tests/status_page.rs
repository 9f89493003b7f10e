//! The operator's view: the bounded probe history, `/logs`, and the status page at `/` — escaped,
//! and rendered by a real headless Chromium.

mod support;

use siembox_exporter::history::{HistoryLimits, ProbeHistory};
use siembox_exporter::probe::recorder::{FailureReason, Family, MetricKind, Sample};
use siembox_exporter::probe::{refused, ProbeOutcome};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use support::{chromium, free_port, Exporter};

const CONFIG: &str = "
modules:
  tcp_connect:
    prober: tcp
    timeout: 2s
  vps_audit:
    prober: ssh_audit
    timeout: 30s
    ssh_audit:
      user: audit
      use_agent: true
      known_hosts_file: /etc/ssh/ssh_known_hosts
servers:
  - name: web-1
    address: 127.0.0.1:22
    labels: {env: prod}
  - name: db-1
    address: 127.0.0.1:2222
";

fn success(ms: u64) -> Arc<ProbeOutcome> {
    Arc::new(ProbeOutcome {
        success: true,
        duration: Duration::from_millis(ms),
        families: Vec::new(),
        log: Vec::new(),
        failure: None,
        finished_at: SystemTime::now(),
    })
}

fn failure(reason: FailureReason) -> Arc<ProbeOutcome> {
    Arc::new(refused(reason, "connection refused by test".into()))
}

// ---- history bounds --------------------------------------------------------------------------

#[test]
fn many_targets_keep_the_key_count_capped_and_the_busiest_keys() {
    let limits = HistoryLimits {
        max_keys: 100,
        ..HistoryLimits::default()
    };
    let h = ProbeHistory::new(limits);
    let ok = success(3);
    for i in 0..10_000 {
        h.record(
            "tcp_connect",
            &format!("10.0.{}.{}:80", i / 256, i % 256),
            &ok,
        );
        // One target probed all along must never be evicted.
        h.record("tcp_connect", "hot:80", &ok);
        assert!(h.len() <= 100, "{} keys after {i} targets", h.len());
    }
    assert!(h.len() >= 90, "eviction removes only a tenth at a time");
    assert!(h.get("tcp_connect", "hot:80").is_some());
    assert!(
        h.get("tcp_connect", "10.0.0.0:80").is_none(),
        "oldest evicted"
    );
    assert!(
        h.get("tcp_connect", "10.0.39.15:80").is_some(),
        "newest kept"
    );
    assert!(h.record_count() <= 100 * (limits.successes + limits.failures));
}

#[test]
fn many_outcomes_per_target_stay_capped_and_failures_outlive_successes() {
    let h = ProbeHistory::new(HistoryLimits::default());
    for _ in 0..10 {
        h.record("m", "t", &failure(FailureReason::ConnectionRefused));
    }
    for _ in 0..1_000 {
        h.record("m", "t", &success(1));
    }
    let t = h.get("m", "t").unwrap();
    assert_eq!((t.successes, t.failures), (20, 10));
    assert_eq!(t.records.len(), 30);
    assert!(t.last().unwrap().success);
    assert_eq!(
        t.records.iter().find(|r| !r.success).unwrap().failure,
        Some(FailureReason::ConnectionRefused),
        "a failure outlives 1000 later successes"
    );
    for _ in 0..1_000 {
        h.record("m", "t", &failure(FailureReason::Timeout));
    }
    let t = h.get("m", "t").unwrap();
    assert_eq!((t.successes, t.failures), (20, 50));
    assert_eq!(h.record_count(), 70);
    assert_eq!(t.last().unwrap().failure, Some(FailureReason::Timeout));
}

#[test]
fn only_the_newest_outcomes_keep_their_logs_and_metrics() {
    let h = ProbeHistory::new(HistoryLimits::default());
    let first = success(1);
    h.record("m", "t", &first);
    assert_eq!(Arc::strong_count(&first), 2, "held by the history");
    h.record("m", "t", &success(2));
    assert_eq!(
        Arc::strong_count(&first),
        1,
        "an older success keeps only time, duration and result"
    );
    let failures: Vec<_> = (0..10).map(|_| failure(FailureReason::Dns)).collect();
    for f in &failures {
        h.record("m", "t", f);
    }
    let held = failures.iter().filter(|f| Arc::strong_count(f) > 1).count();
    assert_eq!(held, HistoryLimits::default().failure_logs);
    let t = h.get("m", "t").unwrap();
    assert!(Arc::ptr_eq(t.last_failure_outcome().unwrap(), &failures[9]));
}

#[test]
fn huge_targets_are_stored_cut_and_still_found() {
    let h = ProbeHistory::new(HistoryLimits::default());
    let long = format!("{}:80", "a".repeat(5000));
    h.record("m", &long, &success(1));
    let t = h.get("m", &long).expect("found by the full target");
    assert_eq!(t.target.len(), HistoryLimits::default().max_target_bytes);
}

#[test]
fn a_reload_forgets_modules_that_are_gone() {
    let h = ProbeHistory::new(HistoryLimits::default());
    h.record("kept", "t", &success(1));
    h.record("gone", "t", &success(1));
    h.retain_modules(|m| m == "kept");
    assert_eq!(h.len(), 1);
    assert!(h.get("gone", "t").is_none());
}

// ---- /logs -----------------------------------------------------------------------------------

#[tokio::test]
async fn logs_of_a_probed_target_with_its_failure_reason() {
    let ex = Exporter::start(CONFIG).await;
    let closed = format!("127.0.0.1:{}", free_port());
    ex.probe("tcp_connect", &closed).await;
    ex.probe("tcp_connect", &ex.addr.to_string()).await;
    let q = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("module", "tcp_connect")
        .append_pair("target", &closed)
        .finish();
    let r = ex.get(&format!("/logs?{q}")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    // blackbox's body: the probe's debug output, as `/probe?debug=true` showed it.
    assert!(r.body.starts_with("Logs for the probe:\n"), "{}", r.body);
    assert!(r
        .body
        .contains("\n\n\nMetrics that would have been returned:\n"));
    assert!(r.body.contains("probe_success 0"), "{}", r.body);
    assert!(
        r.body.contains("failure_reason=connection_refused"),
        "{}",
        r.body
    );
    assert!(r.body.contains("Beginning probe: prober=tcp"), "{}", r.body);
    assert!(r.body.contains("level=error"), "{}", r.body);

    let ok = ex
        .get(&format!("/logs?module=tcp_connect&target={}", ex.addr))
        .await;
    assert_eq!(ok.status, 200);
    assert!(ok.body.starts_with("Logs for the probe:\n"), "{}", ok.body);
    assert!(ok.body.contains("probe_success 1"), "{}", ok.body);
    assert!(!ok.body.contains("failure_reason"), "{}", ok.body);
}

/// blackbox 0.28 main.go's `/logs` handler beside ours, after the same probes: the same status
/// for every query form, the same words when nothing matches or the query is wrong, and a match
/// answered with the probe's debug output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_query_forms_and_answers_match_blackbox() {
    let yaml =
        "modules:\n  tcp_connect:\n    prober: tcp\n    timeout: 2s\n  other:\n    prober: tcp\n";
    let bb_config = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(bb_config.path(), yaml).unwrap();
    let bb = support::blackbox::Blackbox::start(bb_config.path()).await;
    let ex = Exporter::start(yaml).await;
    let up = ex.addr.to_string();
    let closed = format!("127.0.0.1:{}", free_port());
    for t in [&up, &closed] {
        bb.probe("tcp_connect", t).await;
        assert_eq!(ex.probe("tcp_connect", t).await.0, 200);
    }
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let (up, closed) = (enc(&up), enc(&closed));
    let cases = [
        ("/logs".to_string(), 400),
        ("/logs?module=tcp_connect".into(), 400),
        (format!("/logs?target={up}&id=0"), 400),
        ("/logs?id=nonsense".into(), 400),
        ("/logs?id=-1".into(), 400),
        ("/logs?target=10.9.9.9:1".into(), 404),
        (format!("/logs?target={up}&module=other"), 404),
        (format!("/logs?target={up}&module=nosuchmodule"), 404),
        (format!("/logs?target={up}"), 200),
        (format!("/logs?target={up}&module="), 200),
        (format!("/logs?target={closed}&module=tcp_connect"), 200),
        (
            format!("/logs?module=tcp_connect&target={closed}&target=x"),
            200,
        ),
    ];
    for (q, status) in cases {
        let b = support::get(&format!("http://127.0.0.1:{}{q}", bb.port), &[]).await;
        let o = ex.get(&q).await;
        assert_eq!(
            (b.status, o.status),
            (status, status),
            "{q}: {:?} / {:?}",
            b.body,
            o.body
        );
        let content_type =
            |r: &support::Response| r.headers["content-type"].to_str().unwrap().to_string();
        if status == 200 {
            for body in [&b.body, &o.body] {
                assert!(body.starts_with("Logs for the probe:\n"), "{q}: {body}");
                assert!(
                    body.contains("\n\n\nMetrics that would have been returned:\n"),
                    "{q}"
                );
                assert!(body.contains("\n\n\nModule configuration"), "{q}");
            }
            assert!(content_type(&o).starts_with("text/plain"));
        } else {
            assert_eq!(o.body, b.body, "{q}");
            assert_eq!(content_type(&o), content_type(&b), "{q}");
        }
    }
    assert_eq!(
        ex.get("/logs?target=10.9.9.9:1").await.body,
        "Probe target not found\n"
    );
    // The failed probe's logs are those of the failure.
    let o = ex.get(&format!("/logs?target={closed}")).await.body;
    assert!(
        o.contains("probe_success 0") && o.contains("connection_refused"),
        "{o}"
    );
    // blackbox numbers its probes for its status page's links; we keep no ids and say so.
    let o = ex.get("/logs?id=0").await;
    assert_eq!(o.status, 400);
    assert!(o.body.contains("ask by target"), "{}", o.body);
}

// ---- the page --------------------------------------------------------------------------------

#[tokio::test]
async fn user_controlled_strings_are_escaped() {
    let ex = Exporter::start(CONFIG).await;
    let evil = "<script>alert(1)</script>:80";
    // Through the real endpoint (the name does not resolve, so the probe fails)...
    let (status, _) = ex.probe("tcp_connect", evil).await;
    assert_eq!(status, 200);
    // ...and straight into the history with a quote-breaking attribute attempt.
    ex.app.history.record(
        "tcp_connect",
        "\"><img src=x onerror=alert(2)>",
        &failure(FailureReason::Dns),
    );
    let page = ex.get("/").await.body;
    assert!(!page.contains("<script>alert"), "{page}");
    assert!(!page.contains("<img src=x"), "{page}");
    assert!(
        page.contains("&lt;script&gt;alert(1)&lt;/script&gt;:80"),
        "{page}"
    );
    assert!(page.contains("&quot;&gt;&lt;img src=x onerror=alert(2)&gt;"));
    // The logs link carries the target URL-encoded, then HTML-escaped.
    assert!(
        page.contains(
            "/logs?module=tcp_connect&amp;target=%3Cscript%3Ealert%281%29%3C%2Fscript%3E%3A80"
        ),
        "{page}"
    );
}

fn audit_outcome(server: &str) -> Arc<ProbeOutcome> {
    let sample = |check: &str, v: f64| Sample {
        labels: vec![("server", server.to_string()), ("check", check.to_string())],
        value: v,
    };
    Arc::new(ProbeOutcome {
        success: true,
        duration: Duration::from_millis(850),
        families: vec![Family {
            name: "siembox_vps_audit_check_status",
            help: "Audit check status: 0 pass, 1 warn, 2 fail, 3 unknown",
            kind: MetricKind::Gauge,
            samples: vec![
                sample("sshd_root_login", 0.0),
                sample("pending_updates", 1.0),
                sample("firewall_active", 2.0),
                sample("<b>time_sync</b>", 3.0),
            ],
        }],
        log: Vec::new(),
        failure: None,
        finished_at: SystemTime::now(),
    })
}

/// The rows of the table with `id`, from an HTML document.
fn table_rows(html: &str, id: &str) -> Vec<String> {
    let start = html
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no table {id} in:\n{html}"));
    let end = start + html[start..].find("</table>").unwrap();
    html[start..end]
        .split("<tr>")
        .skip(2) // before the header row, and the header row
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_renders_the_status_page() {
    let ex = Exporter::start(CONFIG).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let open = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            drop(s);
        }
    });
    let closed = format!("127.0.0.1:{}", free_port());
    for _ in 0..6 {
        ex.probe("tcp_connect", &open).await;
        ex.probe("tcp_connect", &closed).await;
    }
    ex.probe("tcp_connect", "<script>alert(1)</script>:80")
        .await;
    // The auditor is not part of this build: its outcome goes into the history as it would.
    ex.app
        .history
        .record("vps_audit", "web-1", &audit_outcome("web-1"));

    let url = ex.url("/");
    let png = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/status-page.png");
    let _ = std::fs::remove_file(&png);
    chromium::screenshot(&url, &png, 1280, 900).await;
    let bytes = std::fs::read(&png).expect("screenshot written");
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "a PNG file");
    assert!(
        bytes.len() > 20_000,
        "a non-trivial page: {} bytes",
        bytes.len()
    );

    let dom = chromium::dump_dom(&url).await;
    assert!(!dom.contains("<script"), "no injected element:\n{dom}");

    let modules = table_rows(&dom, "modules-table");
    assert_eq!(modules.len(), 2, "{modules:?}");
    assert!(modules[0].contains("<td>tcp_connect</td><td>tcp</td>"));
    assert!(modules[1].contains("<td>vps_audit</td><td>ssh_audit</td>"));

    let targets = table_rows(&dom, "targets-table");
    assert_eq!(targets.len(), 4, "open, closed, evil, web-1:\n{targets:#?}");
    let row = |t: &str| {
        targets
            .iter()
            .find(|r| r.contains(&format!(">{t}</td>")))
            .unwrap_or_else(|| panic!("no row for {t}: {targets:#?}"))
            .clone()
    };
    let closed_row = row(&closed);
    assert!(closed_row.contains(">failure<"), "{closed_row}");
    assert!(closed_row.contains(">connection_refused<"), "{closed_row}");
    assert!(closed_row.contains("<svg"), "{closed_row}");
    assert!(closed_row.contains(">0/6<"), "{closed_row}");
    let open_row = row(&open);
    assert!(open_row.contains(">success<"), "{open_row}");
    assert!(open_row.contains(">6/6<"), "{open_row}");
    // A failing target is listed before a healthy one.
    let pos = |t: &str| targets.iter().position(|r| r.contains(t)).unwrap();
    assert!(pos(&closed) < pos(&open));

    let servers = table_rows(&dom, "servers-table");
    assert_eq!(servers.len(), 2, "{servers:#?}");
    assert!(servers[0].contains("<td>web-1</td>") && servers[0].contains("env=prod"));
    assert!(servers[0].contains("<td>vps_audit</td>"), "{}", servers[0]);
    assert!(servers[1].contains("<td>db-1</td>") && servers[1].contains("not audited yet"));

    let findings = table_rows(&dom, "findings-table");
    assert_eq!(findings.len(), 4, "{findings:#?}");
    let finding = |check: &str, status: &str| {
        assert!(
            findings.iter().any(|r| r.contains(&format!(
                "<td>{check}</td><td class=\"{}\">{status}</td>",
                match status {
                    "pass" => "ok",
                    s => s,
                }
            ))),
            "{check} {status}: {findings:#?}"
        )
    };
    finding("sshd_root_login", "pass");
    finding("pending_updates", "warn");
    finding("firewall_active", "fail");
    finding("&lt;b&gt;time_sync&lt;/b&gt;", "unknown");
}
