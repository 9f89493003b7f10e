//! Limits in front of probes (SPEC §5, §6): concurrency per type as seen by a real target,
//! fail-fast when the queue is full, on-scrape before scheduled, single-flight and cache_for.

mod support;

use siembox_exporter::limits::Priority;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::slow_server::SlowServer;
use support::{metric_value, metric_value_with, Exporter};

/// `slow` waits for the server's READY line, so a probe lasts as long as the server's delay.
fn config(limits: &str) -> String {
    format!(
        "
limits: {limits}
modules:
  slow:
    prober: tcp
    timeout: 10s
    tcp:
      query_response:
        - expect: \"^READY\"
  slow_cached:
    prober: tcp
    timeout: 10s
    cache_for: 1m
    tcp:
      query_response:
        - expect: \"^READY\"
"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_target_never_sees_more_than_the_type_limit() {
    let ex = Exporter::start(&config("{per_type: {tcp: 3}}")).await;
    let one = SlowServer::start(Duration::from_millis(300)).await;
    let mut calls = Vec::new();
    for i in 0..12 {
        let url = ex.url(&format!(
            "/probe?module=slow&target={}&hostname=x{i}",
            one.target()
        ));
        calls.push(tokio::spawn(
            async move { support::get(&url, &[]).await.body },
        ));
    }
    for c in calls {
        let body = c.await.unwrap();
        assert_eq!(metric_value(&body, "probe_success"), Some(1.0), "{body}");
    }
    assert_eq!(one.accepted(), 12);
    assert_eq!(one.max_active(), 3, "the limit is reached and never passed");
    let metrics = ex.get("/metrics").await.body;
    assert_eq!(
        metric_value_with(&metrics, "siembox_limit_max", &[("limit", "tcp")]),
        Some(3.0)
    );
    assert_eq!(
        metric_value_with(&metrics, "siembox_limit_in_use", &[("limit", "tcp")]),
        Some(0.0)
    );
    assert!(
        metric_value_with(
            &metrics,
            "siembox_limit_wait_seconds_count",
            &[("type", "tcp")]
        )
        .unwrap()
            >= 12.0,
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_answers_at_once_with_the_reason() {
    let ex = Exporter::start(&config("{per_type: {tcp: 1}, queue_size: 1}")).await;
    let server = SlowServer::start(Duration::from_secs(3)).await;
    let url = |h: &str| {
        ex.url(&format!(
            "/probe?module=slow&target={}&hostname={h}&debug=true",
            server.target()
        ))
    };
    let u = url("a");
    let running = tokio::spawn(async move { support::get(&u, &[]).await });
    while ex.app.limiter.in_use(None) == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let u = url("b");
    let queued = tokio::spawn(async move { support::get(&u, &[]).await });
    while ex.app.limiter.queued() == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let started = Instant::now();
    let rejected = support::get(&url("c"), &[]).await.body;
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(1),
        "a 10s probe was refused in {took:?}"
    );
    assert!(
        rejected.contains("failure_reason=rejected_by_limit"),
        "{rejected}"
    );
    assert!(rejected.contains("probe queue is full"), "{rejected}");
    assert_eq!(metric_value(&rejected, "probe_success"), Some(0.0));
    // The running and the queued probe both complete.
    for t in [running, queued] {
        let body = t.await.unwrap().body;
        assert!(body.contains("probe_success 1"), "{body}");
    }
    let metrics = ex.get("/metrics").await.body;
    assert_eq!(
        metric_value_with(
            &metrics,
            "siembox_queue_rejected_total",
            &[("type", "tcp"), ("reason", "queue_full")]
        ),
        Some(1.0)
    );
    assert_eq!(
        metric_value_with(
            &metrics,
            "siembox_probe_failures_total",
            &[("reason", "rejected_by_limit")]
        ),
        Some(1.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_scrape_work_overtakes_queued_scheduled_work() {
    let ex = Exporter::start(&config("{per_type: {tcp: 1}}")).await;
    let server = SlowServer::start(Duration::from_millis(200)).await;
    let target = server.target();
    let finished = Arc::new(parking_lot::Mutex::new(Vec::<String>::new()));
    let run = |name: &'static str, priority: Priority| {
        let (app, target, finished) = (ex.app.clone(), target.clone(), finished.clone());
        tokio::spawn(async move {
            let config = app.config();
            let out = app
                .probe_with(
                    &config,
                    "slow",
                    &target,
                    Some(name),
                    Duration::from_secs(10),
                    priority,
                )
                .await;
            assert!(out.success, "{name}: {:?}", out.log);
            finished.lock().push(name.to_string());
        })
    };
    let mut tasks = vec![run("holder", Priority::OnScrape)];
    while ex.app.limiter.in_use(None) == 0 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    for (i, name) in ["sched1", "sched2", "sched3"].into_iter().enumerate() {
        tasks.push(run(name, Priority::Scheduled));
        while ex.app.limiter.queued() < i + 1 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    tasks.push(run("scrape", Priority::OnScrape));
    for t in tasks {
        t.await.unwrap();
    }
    let order = finished.lock().clone();
    assert_eq!(order, ["holder", "scrape", "sched1", "sched2", "sched3"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_identical_probes_cause_one_connection() {
    let ex = Exporter::start(&config("{}")).await;
    let server = SlowServer::start(Duration::from_secs(1)).await;
    let url = ex.url(&format!("/probe?module=slow&target={}", server.target()));
    let mut calls = Vec::new();
    for _ in 0..100 {
        let url = url.clone();
        calls.push(tokio::spawn(
            async move { support::get(&url, &[]).await.body },
        ));
    }
    for c in calls {
        let body = c.await.unwrap();
        assert_eq!(metric_value(&body, "probe_success"), Some(1.0), "{body}");
    }
    assert_eq!(server.accepted(), 1);
    // Nothing is kept once the shared probe is done (no cache_for).
    assert!(ex.app.flights.is_empty());
    let _ = support::get(&url, &[]).await;
    assert_eq!(server.accepted(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_for_serves_a_fresh_result_without_probing() {
    let ex = Exporter::start(&config("{}")).await;
    let server = SlowServer::start(Duration::from_millis(10)).await;
    for _ in 0..3 {
        let (_, body) = ex.probe("slow_cached", &server.target()).await;
        assert_eq!(metric_value(&body, "probe_success"), Some(1.0), "{body}");
    }
    assert_eq!(server.accepted(), 1);
    // A reload of the same bytes changes nothing, the cache included (blackbox 0.28 #1464)...
    let reload = || async {
        support::request("POST", &ex.url("/-/reload"), &[])
            .await
            .status
    };
    assert_eq!(reload().await, 200);
    let _ = ex.probe("slow_cached", &server.target()).await;
    assert_eq!(server.accepted(), 1);
    // ...a reload of changed bytes forgets cached results (the module may have changed).
    let path = ex.app.config_path().unwrap().clone();
    std::fs::write(&path, format!("{}\n# changed\n", config("{}"))).unwrap();
    assert_eq!(reload().await, 200);
    let _ = ex.probe("slow_cached", &server.target()).await;
    assert_eq!(server.accepted(), 2);
}
