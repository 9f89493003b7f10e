//! The exporter's own endpoints: health, readiness, reload, config, metrics, /probe errors.

mod support;

use support::{metric_value, metric_value_with, request, Exporter};

const CONFIG: &str = "
modules:
  tcp_connect:
    prober: tcp
    timeout: 2s
  http_2xx:
    prober: http
  secret_http:
    prober: http
    http:
      basic_auth:
        username: probe
        password: hunter2-secret
";

#[tokio::test]
async fn health_and_readiness_answer() {
    let ex = Exporter::start(CONFIG).await;
    let h = ex.get("/-/healthy").await;
    assert_eq!((h.status, h.body.as_str()), (200, "Healthy\n"));
    assert_eq!(ex.get("/-/ready").await.status, 200);
    assert_eq!(ex.get("/nope").await.status, 404);
}

#[tokio::test]
async fn unknown_module_and_bad_target_are_400_with_a_reason() {
    let ex = Exporter::start(CONFIG).await;
    let (status, body) = ex.probe("nope", "127.0.0.1:1").await;
    assert_eq!(status, 400);
    assert_eq!(body, "Unknown module \"nope\"\n");
    let (status, body) = ex.probe("tcp_connect", "no-port-here").await;
    assert_eq!(status, 400);
    assert!(body.contains("no port"), "{body}");
    assert_eq!(ex.get("/probe?module=tcp_connect").await.status, 400);
    let metrics = ex.get("/metrics").await.body;
    assert_eq!(
        metric_value(&metrics, "siembox_module_unknown_total"),
        Some(1.0)
    );
}

#[tokio::test]
async fn tcp_probe_of_a_listening_and_a_closed_port() {
    let ex = Exporter::start(CONFIG).await;
    let (status, body) = ex.probe("tcp_connect", &ex.addr.to_string()).await;
    assert_eq!(status, 200);
    assert_eq!(metric_value(&body, "probe_success"), Some(1.0), "{body}");
    assert_eq!(metric_value(&body, "probe_ip_protocol"), Some(4.0));
    let closed = support::free_port();
    let (_, body) = ex
        .probe("tcp_connect", &format!("127.0.0.1:{closed}"))
        .await;
    assert_eq!(metric_value(&body, "probe_success"), Some(0.0), "{body}");
    let metrics = ex.get("/metrics").await.body;
    assert_eq!(
        metric_value_with(
            &metrics,
            "siembox_probes_total",
            &[("module", "tcp_connect"), ("result", "failure")]
        ),
        Some(1.0)
    );
    assert_eq!(
        metric_value_with(
            &metrics,
            "siembox_probe_failures_total",
            &[("reason", "connection_refused")]
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn scrape_timeout_header_bounds_the_probe() {
    // A listener that accepts and never speaks: the expect step waits until the deadline.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    let ex = Exporter::start("modules:\n  banner:\n    prober: tcp\n    timeout: 30s\n    tcp:\n      query_response:\n        - expect: \"^hello\"\n").await;
    let start = std::time::Instant::now();
    let r = request(
        "GET",
        &ex.url(&format!("/probe?module=banner&target={addr}")),
        &[("X-Prometheus-Scrape-Timeout-Seconds", "1.5")],
    )
    .await;
    let took = start.elapsed();
    assert_eq!(
        metric_value(&r.body, "probe_success"),
        Some(0.0),
        "{}",
        r.body
    );
    // 1.5s minus the 0.5s offset: the probe gives up after about one second, not 30.
    assert!(took.as_secs_f64() < 5.0, "probe took {took:?}");
    assert!(metric_value(&r.body, "probe_duration_seconds").unwrap() >= 0.9);
}

#[tokio::test]
async fn debug_output_has_logs_metrics_and_module() {
    let ex = Exporter::start(CONFIG).await;
    let r = ex
        .get(&format!(
            "/probe?module=tcp_connect&target={}&debug=true",
            ex.addr
        ))
        .await;
    assert_eq!(r.status, 200);
    assert!(r.body.starts_with("Logs for the probe:\n"), "{}", r.body);
    assert!(r.body.contains("Metrics that would have been returned:"));
    assert!(r.body.contains("probe_success 1"));
    assert!(r.body.contains("Module configuration"));
    assert!(r.body.contains("prober: tcp"));
}

#[tokio::test]
async fn config_endpoint_redacts_secrets() {
    let ex = Exporter::start(CONFIG).await;
    let r = ex.get("/config").await;
    assert_eq!(r.status, 200);
    assert!(r.body.contains("secret_http"), "{}", r.body);
    assert!(!r.body.contains("hunter2-secret"), "{}", r.body);
    assert!(r.body.contains("<secret>"));
}

#[tokio::test]
async fn bad_reload_keeps_the_old_config_and_says_so() {
    let ex = Exporter::start(CONFIG).await;
    let path = ex.app.config_path().unwrap().clone();
    // (An unknown prober would load, as in blackbox; an unreadable timeout does not.)
    std::fs::write(
        &path,
        "modules:\n  broken:\n    timeout: nosuchduration\n    prober: tcp\n",
    )
    .unwrap();
    let r = request("POST", &ex.url("/-/reload"), &[]).await;
    assert_eq!(r.status, 500);
    assert!(r.body.contains("siembox.yml:3"), "{}", r.body);
    assert!(r.body.contains("nosuchduration"), "{}", r.body);
    // The old modules still serve.
    let (status, _) = ex.probe("tcp_connect", &ex.addr.to_string()).await;
    assert_eq!(status, 200);
    let metrics = ex.get("/metrics").await.body;
    assert_eq!(
        metric_value(&metrics, "siembox_exporter_config_last_reload_successful"),
        Some(0.0)
    );
    // A good file is picked up.
    std::fs::write(&path, "modules:\n  only_this:\n    prober: tcp\n").unwrap();
    assert_eq!(request("POST", &ex.url("/-/reload"), &[]).await.status, 200);
    assert_eq!(ex.probe("tcp_connect", "127.0.0.1:1").await.0, 400);
    let metrics = ex.get("/metrics").await.body;
    assert_eq!(
        metric_value(&metrics, "siembox_exporter_config_last_reload_successful"),
        Some(1.0)
    );
    assert_eq!(request("GET", &ex.url("/-/reload"), &[]).await.status, 405);
}

#[tokio::test]
async fn metrics_speak_openmetrics_or_text_and_gzip() {
    let ex = Exporter::start(CONFIG).await;
    let text = ex.get("/metrics").await;
    assert!(text.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    assert!(text
        .body
        .contains("# TYPE siembox_module_unknown_total counter"));
    assert!(text.body.contains("siembox_exporter_build_info{"));
    assert!(text.body.contains("process_resident_memory_bytes "));
    assert!(!text.body.contains("# EOF"));
    let om = request(
        "GET",
        &ex.url("/metrics"),
        &[("Accept", "application/openmetrics-text; version=1.0.0")],
    )
    .await;
    assert!(om.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text"));
    assert!(om.body.ends_with("# EOF\n"));
    let gz = request("GET", &ex.url("/metrics"), &[("Accept-Encoding", "gzip")]).await;
    assert_eq!(gz.headers["content-encoding"], "gzip");
}

// blackbox main.go and config/config.go: its self-metrics (blackbox_module_unknown_total, the
// config reload gauges, blackbox_exporter_build_info) are on our /metrics under its names too,
// with the values of ours; every blackbox_* name 0.28's /metrics has, ours has.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_metrics_under_blackbox_names_too() {
    let ex = Exporter::start(CONFIG).await;
    let dir = tempfile::tempdir().unwrap();
    let bb_config = dir.path().join("bb.yml");
    std::fs::write(&bb_config, "modules:\n  tcp_connect:\n    prober: tcp\n").unwrap();
    let bb = support::blackbox::Blackbox::start(&bb_config).await;
    for base in [ex.url(""), format!("http://127.0.0.1:{}", bb.port)] {
        assert_eq!(
            support::get(&format!("{base}/probe?module=nosuch&target=x"), &[])
                .await
                .status,
            400
        );
    }
    let ours = ex.get("/metrics").await.body;
    let theirs = support::get(&format!("http://127.0.0.1:{}/metrics", bb.port), &[])
        .await
        .body;
    let missing: Vec<_> = support::metric_names(&theirs)
        .into_iter()
        .filter(|n| n.starts_with("blackbox_"))
        .filter(|n| {
            let names = support::metric_names(&ours);
            !names.contains(n) && !names.contains(n.trim_end_matches("_total"))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "blackbox 0.28 has, ours lacks: {missing:?}\n{ours}"
    );
    for body in [&theirs, &ours] {
        assert_eq!(
            metric_value(body, "blackbox_module_unknown_total"),
            Some(1.0),
            "{body}"
        );
        assert_eq!(
            metric_value(body, "blackbox_exporter_config_last_reload_successful"),
            Some(1.0),
            "{body}"
        );
        assert!(
            metric_value(body, "blackbox_exporter_build_info").is_some(),
            "{body}"
        );
    }
    assert_eq!(
        metric_value(
            &ours,
            "blackbox_exporter_config_last_reload_success_timestamp_seconds"
        ),
        metric_value(
            &ours,
            "siembox_exporter_config_last_reload_success_timestamp_seconds"
        ),
    );
}

/// Every probe reports the timeout it ran with (blackbox master's prober/handler.go
/// `probe_timeout_seconds`; handler_test.go asserts `probe_timeout_seconds 0.5` for a 1s scrape
/// timeout and its default offset): the scrape timeout minus the offset, capped by the module.
#[tokio::test]
async fn every_probe_reports_its_timeout() {
    let ex = Exporter::start("modules:\n  tcp_connect: {prober: tcp, timeout: 5s}\n  short: {prober: tcp, timeout: 2s}\n").await;
    let port = support::free_port();
    for (module, scrape_timeout, want) in [("tcp_connect", "1", 0.5), ("short", "10", 2.0)] {
        let r = support::get(
            &ex.url(&format!("/probe?module={module}&target=127.0.0.1:{port}")),
            &[("X-Prometheus-Scrape-Timeout-Seconds", scrape_timeout)],
        )
        .await;
        let got = support::metric_value(&r.body, "probe_timeout_seconds");
        assert!(
            got == Some(want),
            "{module}: want {want}, got {got:?}\n{}",
            r.body
        );
    }
}
