//! Schedule mode (SPEC §5, §7, §12): results on /metrics with their labels, overlap skips,
//! targets leaving on reload, file_sd changes without reload, shards, and capped families.

mod support;

use siembox_exporter::metrics::results::SeriesLabels;
use siembox_exporter::schedule::Shard;
use siembox_exporter::{App, AppOptions, Config};
use std::sync::Arc;
use std::time::Duration;
use support::slow_server::{rss_bytes, SlowServer};
use support::{metric_value, metric_value_with, Exporter};

/// Polls /metrics until `ok` holds (or fails after 10 s with the last body).
async fn wait_metrics(ex: &Exporter, what: &str, ok: impl Fn(&str) -> bool) -> String {
    let start = std::time::Instant::now();
    loop {
        let body = ex.get("/metrics").await.body;
        if ok(&body) {
            return body;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out waiting for {what}:\n{body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn has_target(body: &str, target: &str) -> bool {
    body.lines()
        .any(|l| l.starts_with("probe_success{") && l.contains(&format!("target=\"{target}\"")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_results_appear_with_labels_and_leave_on_reload() {
    let a = SlowServer::start(Duration::ZERO).await;
    let b = SlowServer::start(Duration::ZERO).await;
    let yaml = |targets: &str| {
        format!(
            "modules:\n  tcp_connect: {{prober: tcp, timeout: 2s}}\nschedule:\n  - {{module: tcp_connect, interval: 200ms, jitter: 100ms, targets: [{targets}], labels: {{team: db}}}}\n"
        )
    };
    let ex = Exporter::start(&yaml(&format!("'{}', '{}'", a.target(), b.target()))).await;
    let body = wait_metrics(&ex, "both targets", |m| {
        has_target(m, &a.target()) && has_target(m, &b.target())
    })
    .await;
    assert_eq!(
        metric_value_with(
            &body,
            "probe_success",
            &[
                ("module", "tcp_connect"),
                ("target", &a.target()),
                ("prober", "tcp"),
                ("team", "db")
            ]
        ),
        Some(1.0),
        "{body}"
    );
    assert_eq!(body.matches("# TYPE probe_success gauge\n").count(), 1);
    assert_eq!(body.matches("# HELP probe_duration_seconds ").count(), 1);
    // OpenMetrics too, ending in one # EOF.
    let om = support::get(
        &ex.url("/metrics"),
        &[("Accept", "application/openmetrics-text; version=1.0.0")],
    )
    .await
    .body;
    assert!(om.ends_with("# EOF\n") && om.matches("# EOF").count() == 1);
    assert!(has_target(&om, &a.target()));

    // Reload without b: its series disappear, a's stay.
    let path = ex.app.config_path().unwrap().clone();
    std::fs::write(&path, yaml(&format!("'{}'", a.target()))).unwrap();
    assert_eq!(
        support::request("POST", &ex.url("/-/reload"), &[])
            .await
            .status,
        200
    );
    let body = ex.get("/metrics").await.body;
    assert!(!has_target(&body, &b.target()), "{body}");
    assert!(has_target(&body, &a.target()), "{body}");
    assert_eq!(ex.app.scheduler.target_count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_runs_are_skipped_and_counted() {
    let slow = SlowServer::start(Duration::from_millis(700)).await;
    let yaml = format!(
        "modules:\n  slow: {{prober: tcp, timeout: 5s, tcp: {{query_response: [{{expect: '^READY'}}]}}}}\nschedule:\n  - {{module: slow, interval: 200ms, targets: ['{}']}}\n",
        slow.target()
    );
    let ex = Exporter::start(&yaml).await;
    let body = wait_metrics(&ex, "skipped runs", |m| {
        metric_value_with(
            m,
            "siembox_schedule_skipped_runs_total",
            &[("module", "slow")],
        )
        .is_some_and(|v| v >= 3.0)
    })
    .await;
    // Never two runs at once against the target.
    assert_eq!(slow.max_active(), 1, "{body}");
    assert!(has_target(&body, &slow.target()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_sd_change_is_picked_up_without_reload() {
    let a = SlowServer::start(Duration::ZERO).await;
    let b = SlowServer::start(Duration::ZERO).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.json"),
        format!(
            r#"[{{"targets": ["{}"], "labels": {{"env": "prod"}}}}]"#,
            a.target()
        ),
    )
    .unwrap();
    let yaml = format!(
        "modules:\n  tcp_connect: {{prober: tcp, timeout: 2s}}\nschedule:\n  - {{module: tcp_connect, interval: 200ms, file_sd: ['{0}/*.json', '{0}/*.yml']}}\n",
        dir.path().display()
    );
    let ex = Exporter::start(&yaml).await;
    let body = wait_metrics(&ex, "target a", |m| has_target(m, &a.target())).await;
    assert_eq!(
        metric_value_with(&body, "probe_success", &[("env", "prod")]),
        Some(1.0)
    );
    // Swap a.json for b.yml, written atomically as deployment tools do.
    let tmp = dir.path().join(".b.yml.tmp");
    std::fs::write(
        &tmp,
        format!("- targets: ['{}']\n  labels: {{env: dev}}\n", b.target()),
    )
    .unwrap();
    std::fs::rename(&tmp, dir.path().join("b.yml")).unwrap();
    std::fs::remove_file(dir.path().join("a.json")).unwrap();
    let body = wait_metrics(&ex, "b in, a out", |m| {
        has_target(m, &b.target()) && !has_target(m, &a.target())
    })
    .await;
    assert_eq!(
        metric_value_with(&body, "probe_success", &[("env", "dev")]),
        Some(1.0)
    );
    assert_eq!(ex.app.scheduler.target_count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shards_run_every_target_exactly_once() {
    let targets: Vec<String> = (0..60).map(|i| format!("'10.0.0.{i}:22'")).collect();
    let yaml = format!(
        "modules:\n  tcp_connect: {{prober: tcp}}\nschedule:\n  - {{module: tcp_connect, interval: 1h, targets: [{}]}}\n",
        targets.join(", ")
    );
    for n in [1u32, 2, 3, 5] {
        let mut total = 0;
        let mut apps = Vec::new();
        for i in 0..n {
            let config = Config::from_yaml_str(&yaml, "t.yml").unwrap();
            let app = App::new(
                config,
                None,
                AppOptions {
                    schedule_shard: format!("{i}/{n}").parse::<Shard>().unwrap(),
                    ..AppOptions::default()
                },
            );
            total += app.scheduler.target_count();
            apps.push(app);
        }
        assert_eq!(total, 60, "n={n}");
        if n > 1 {
            assert!(apps.iter().all(|a| a.scheduler.target_count() < 60));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_thousand_targets_stay_at_the_series_cap() {
    let ex = Exporter::start(
        "cardinality: {max_series_per_family: 1000, max_label_value_length: 40}\nmodules:\n  tcp_connect: {prober: tcp}\n",
    )
    .await;
    let results = &ex.app.scheduler.results;
    // One real outcome shared by every series, as a flood of scheduled results would bring.
    let outcome = ex
        .app
        .probe(
            &ex.app.config(),
            "tcp_connect",
            &ex.addr.to_string(),
            None,
            Duration::from_secs(2),
        )
        .await;
    assert!(outcome.success);
    let rss_before = rss_bytes();
    for i in 0..100_000 {
        let target = format!("https://host-{i}.example.org/some/long/path/that/is/cut?q={i}");
        let labels = Arc::new(SeriesLabels::new(
            format!("k{i}"),
            &[
                ("module", "tcp_connect"),
                ("target", &target),
                ("prober", "tcp"),
            ],
            40,
        ));
        results.record(&labels, outcome.clone());
    }
    let body = ex.get("/metrics").await.body;
    let rss_after = rss_bytes();
    assert_eq!(body.matches("\nprobe_success{").count(), 1000);
    assert_eq!(body.matches("\nprobe_duration_seconds{").count(), 1000);
    assert_eq!(
        metric_value_with(
            &body,
            "siembox_cardinality_dropped_series_total",
            &[("family", "probe_success")]
        ),
        Some(99_000.0)
    );
    let families = outcome.families.len() as f64;
    assert_eq!(
        metric_value(&body, "siembox_scheduled_series"),
        Some(1000.0 * families)
    );
    // Label values are capped (40 characters, marker included).
    let line = body
        .lines()
        .find(|l| l.starts_with("probe_success{"))
        .unwrap();
    let target = line
        .split("target=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    assert_eq!(target.chars().count(), 40, "{line}");
    assert!(target.contains('…'));
    assert_eq!(
        results.len(),
        1000,
        "dropped targets keep nothing in memory"
    );
    let grown = rss_after.saturating_sub(rss_before);
    assert!(grown < 64 << 20, "RSS grew by {} MiB", grown >> 20);
}
