//! Reloads as blackbox 0.28 does them (its CHANGELOG for 0.26: "Config is not reloaded if the file
//! content didn't change when using all reload methods" #1464, and "Support config reload
//! automatically - feature flag `config.enable-auto-reload`, `config.auto-reload-interval`"):
//! the same bytes change nothing on `/-/reload`, SIGHUP or the timer; changed bytes (a ConfigMap's
//! symlink swap too) are picked up by the timer; a broken file is rejected and the old config
//! keeps serving. Where blackbox can run beside us, it does, and the answers are compared.

mod support;

use siembox_exporter::{App, AppOptions, Config};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use support::binary::{get, Binary};
use support::blackbox::{Blackbox, Version};
use support::{db, metric_value, metric_value_with, request, Exporter};

const RELOAD_OK: &str = "siembox_exporter_config_last_reload_successful";
const RELOAD_TS: &str = "siembox_exporter_config_last_reload_success_timestamp_seconds";
const RELOAD_FAILURES: &str = "siembox_exporter_config_reload_failures_total";
const BB_RELOAD_OK: &str = "blackbox_exporter_config_last_reload_successful";
const BB_RELOAD_TS: &str = "blackbox_exporter_config_last_reload_success_timestamp_seconds";

/// A redis module whose result is cached for an hour: a reload that really reloads clears the
/// cache, which shows as a second probe run; `comment` changes the bytes and nothing else.
fn redis_config(comment: &str) -> String {
    format!(
        "# {comment}\nmodules:\n  r:\n    prober: redis\n    timeout: 5s\n    cache_for: 1h\n    redis:\n      command: PING\n"
    )
}

fn tcp_config(module: &str) -> String {
    format!("modules:\n  {module}:\n    prober: tcp\n    timeout: 2s\n")
}

/// Rejected by blackbox 0.28 and by us alike.
const BROKEN: &str = "modules:\n  b:\n    prober: tcp\n    timeout: nosuchduration\n";

/// The exporter in-process on the file `path`, checking it every `every`.
async fn start_auto(path: &Path, every: Duration) -> Exporter {
    let config = Config::load_file(path).unwrap();
    let options = AppOptions {
        auto_reload_interval: Some(every),
        ..AppOptions::default()
    };
    Exporter::start_app(App::new(config, Some(path.to_path_buf()), options)).await
}

fn config_file(yaml: &str) -> PathBuf {
    let path = tempfile::tempdir().unwrap().keep().join("siembox.yml");
    std::fs::write(&path, yaml).unwrap();
    path
}

/// Probes that really ran (a cached answer is not counted).
fn probes_run(metrics: &str, module: &str) -> f64 {
    metric_value_with(
        metrics,
        "siembox_probes_total",
        &[("module", module), ("result", "success")],
    )
    .unwrap_or(0.0)
}

fn redis_connections_created(metrics: &str) -> f64 {
    metric_value_with(
        metrics,
        "siembox_pool_connections_created_total",
        &[("type", "redis")],
    )
    .unwrap()
}

/// Polls `check` every 50ms until it holds; panics naming `what` after `limit`. Returns the wait.
async fn eventually(limit: Duration, what: &str, mut check: impl AsyncFnMut() -> bool) -> Duration {
    let start = Instant::now();
    loop {
        if check().await {
            return start.elapsed();
        }
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unchanged_file_reloads_nothing_by_request_or_by_timer() {
    let path = config_file(&redis_config("v1"));
    let ex = start_auto(&path, Duration::from_millis(200)).await;
    let (_, first) = ex.probe("r", db::REDIS).await;
    assert_eq!(metric_value(&first, "probe_success"), Some(1.0), "{first}");
    let m = ex.get("/metrics").await.body;
    assert_eq!(probes_run(&m, "r"), 1.0);
    let created = redis_connections_created(&m);
    assert!(created >= 1.0);
    let stamp = metric_value(&m, RELOAD_TS).unwrap();

    // By request: answered 200 and said so; meanwhile the timer has checked several times.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let r = request("POST", &ex.url("/-/reload"), &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body, "config unchanged, nothing reloaded\n");
    tokio::time::sleep(Duration::from_millis(700)).await;

    // The cached result, the pool and its connections are the ones from before.
    let (_, again) = ex.probe("r", db::REDIS).await;
    assert_eq!(again, first, "a fresh probe ran: the cache was cleared");
    let m = ex.get("/metrics").await.body;
    assert_eq!(probes_run(&m, "r"), 1.0);
    assert_eq!(redis_connections_created(&m), created);
    assert_eq!(ex.app.env.pools.len(), 1);
    // blackbox 0.28 config/config.go ReloadConfig: the unchanged file returns nil, so its
    // deferred code sets ..._successful to 1 and stamps the time; ours and the twin do the same.
    assert_eq!(metric_value(&m, RELOAD_OK), Some(1.0));
    let stamped = metric_value(&m, RELOAD_TS).unwrap();
    assert!(stamped > stamp, "{stamped} <= {stamp}");
    assert_eq!(metric_value(&m, BB_RELOAD_TS), Some(stamped));

    // Control: the same modules in different bytes are a real reload, found by the timer: the
    // cache goes (a fresh probe runs), the unchanged module keeps its pool.
    std::fs::write(&path, redis_config("v2")).unwrap();
    let waited = eventually(Duration::from_secs(3), "the changed file", async || {
        ex.probe("r", db::REDIS).await;
        probes_run(&ex.get("/metrics").await.body, "r") == 2.0
    })
    .await;
    eprintln!("a changed file was picked up after {waited:?} (interval 200ms)");
    assert_eq!(ex.app.env.pools.len(), 1);
    let m = ex.get("/metrics").await.body;
    assert_eq!(redis_connections_created(&m), created);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_reload_picks_up_changes_and_rejects_a_broken_file() {
    let path = config_file(&tcp_config("a"));
    let ex = start_auto(&path, Duration::from_millis(200)).await;
    let target = ex.addr.to_string();
    assert_eq!(ex.probe("a", &target).await.0, 200);

    std::fs::write(&path, tcp_config("b")).unwrap();
    let waited = eventually(Duration::from_secs(3), "module b", async || {
        ex.probe("b", &target).await.0 == 200
    })
    .await;
    eprintln!("module b served {waited:?} after the write (interval 200ms)");
    assert_eq!(ex.probe("a", &target).await.0, 400);

    // A broken file: rejected, said so on the metrics, and b keeps serving.
    std::fs::write(&path, BROKEN).unwrap();
    eventually(Duration::from_secs(3), "the failed reload", async || {
        metric_value(&ex.get("/metrics").await.body, RELOAD_OK) == Some(0.0)
    })
    .await;
    let m = ex.get("/metrics").await.body;
    assert_eq!(metric_value(&m, BB_RELOAD_OK), Some(0.0));
    assert!(metric_value(&m, RELOAD_FAILURES).unwrap() >= 1.0);
    let (status, body) = ex.probe("b", &target).await;
    assert_eq!(status, 200);
    assert_eq!(metric_value(&body, "probe_success"), Some(1.0), "{body}");

    // Back to the bytes that are serving: unchanged, so a success again without a reload.
    std::fs::write(&path, tcp_config("b")).unwrap();
    eventually(Duration::from_secs(3), "the restored file", async || {
        metric_value(&ex.get("/metrics").await.body, RELOAD_OK) == Some(1.0)
    })
    .await;
    assert_eq!(ex.probe("b", &target).await.0, 200);
}

/// A Kubernetes ConfigMap volume: `siembox.yml -> ..data/siembox.yml`, `..data -> ..<version>`,
/// and an update swaps `..data` by rename. The file the exporter was pointed at never changes
/// and the new one has the old one's size and mtime: only its content tells.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_reload_notices_a_configmap_symlink_swap() {
    let dir = tempfile::tempdir().unwrap();
    let version = |name: &str, module: &str| {
        let d = dir.path().join(name);
        std::fs::create_dir(&d).unwrap();
        std::fs::write(d.join("siembox.yml"), tcp_config(module)).unwrap();
        d.join("siembox.yml")
    };
    let v1 = version("..v1", "a");
    std::os::unix::fs::symlink("..v1", dir.path().join("..data")).unwrap();
    let path = dir.path().join("siembox.yml");
    std::os::unix::fs::symlink("..data/siembox.yml", &path).unwrap();
    let ex = start_auto(&path, Duration::from_millis(200)).await;
    let target = ex.addr.to_string();
    assert_eq!(ex.probe("a", &target).await.0, 200);

    let v2 = version("..v2", "b");
    let mtime = std::fs::metadata(&v1).unwrap().modified().unwrap();
    std::fs::File::options()
        .write(true)
        .open(&v2)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    assert_eq!(
        std::fs::metadata(&v1).unwrap().len(),
        std::fs::metadata(&v2).unwrap().len()
    );
    std::os::unix::fs::symlink("..v2", dir.path().join("..data_tmp")).unwrap();
    std::fs::rename(dir.path().join("..data_tmp"), dir.path().join("..data")).unwrap();

    eventually(
        Duration::from_secs(3),
        "the swapped ConfigMap",
        async || ex.probe("b", &target).await.0 == 200,
    )
    .await;
    assert_eq!(ex.probe("a", &target).await.0, 400);
}

/// `/-/reload` beside blackbox 0.28 on the same file contents, step by step: the answer's status
/// and both reload metrics agree (blackbox main.go's /-/reload handler and config.go ReloadConfig).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_answers_and_metrics_match_blackbox() {
    let first = tcp_config("tcp_connect");
    let bb_path = config_file(&first);
    let bb = Blackbox::start(&bb_path).await;
    let ex = Exporter::start(&first).await;
    let ours_path = ex.app.config_path().unwrap().clone();
    let bb_url = |p: &str| format!("http://127.0.0.1:{}{p}", bb.port);
    let changed = tcp_config("other");
    // (step, file content, expected status, expected ..._successful, expected a new timestamp)
    let steps = [
        ("unchanged", first.as_str(), 200, 1.0, true),
        ("broken", BROKEN, 500, 0.0, false),
        (
            "restored to the serving bytes",
            first.as_str(),
            200,
            1.0,
            true,
        ),
        ("changed", changed.as_str(), 200, 1.0, true),
    ];
    for (step, content, status, ok, stamped) in steps {
        std::fs::write(&bb_path, content).unwrap();
        std::fs::write(&ours_path, content).unwrap();
        let bb_before = support::get(&bb_url("/metrics"), &[]).await.body;
        let ours_before = ex.get("/metrics").await.body;
        tokio::time::sleep(Duration::from_millis(20)).await;

        let b = request("POST", &bb_url("/-/reload"), &[]).await;
        let o = request("POST", &ex.url("/-/reload"), &[]).await;
        assert_eq!(
            (b.status, o.status),
            (status, status),
            "{step}: blackbox {:?}, ours {:?}",
            b.body,
            o.body
        );

        let bb_after = support::get(&bb_url("/metrics"), &[]).await.body;
        let ours_after = ex.get("/metrics").await.body;
        for (who, metrics, name) in [
            ("blackbox", &bb_after, BB_RELOAD_OK),
            ("ours", &ours_after, BB_RELOAD_OK),
            ("ours", &ours_after, RELOAD_OK),
        ] {
            assert_eq!(
                metric_value(metrics, name),
                Some(ok),
                "{step}: {who} {name}"
            );
        }
        for (who, before, after, name) in [
            ("blackbox", &bb_before, &bb_after, BB_RELOAD_TS),
            ("ours", &ours_before, &ours_after, BB_RELOAD_TS),
            ("ours", &ours_before, &ours_after, RELOAD_TS),
        ] {
            let (t0, t1) = (metric_value(before, name), metric_value(after, name));
            assert_eq!(t1 > t0, stamped, "{step}: {who} {name} {t0:?} -> {t1:?}");
        }
    }
    // The changed file serves on both.
    let bb_probe = support::get(&bb_url("/probe?module=other&target=127.0.0.1:1"), &[]).await;
    assert_eq!(bb_probe.status, 200);
    assert_eq!(ex.probe("other", "127.0.0.1:1").await.0, 200);
}

fn metric_at(port: u16, name: &str) -> Option<f64> {
    metric_value(&get(port, "/metrics").unwrap_or_default(), name)
}

/// SIGHUP to the real binary: the same bytes keep the cached result; changed bytes reload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_with_an_unchanged_file_keeps_the_cache() {
    let bin = Binary::start(&redis_config("v1"), &[]);
    let probe = || get(bin.port, &format!("/probe?module=r&target={}", db::REDIS)).unwrap();
    assert!(probe().contains("probe_success 1"));
    let run = || probes_run(&get(bin.port, "/metrics").unwrap(), "r");
    assert_eq!(run(), 1.0);
    for (content, runs) in [(redis_config("v1"), 1.0), (redis_config("v2"), 2.0)] {
        std::fs::write(&bin.config, content).unwrap();
        let before = metric_at(bin.port, RELOAD_TS).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        bin.signal(libc::SIGHUP);
        eventually(Duration::from_secs(3), "the SIGHUP reload", async || {
            metric_at(bin.port, RELOAD_TS).unwrap() > before
        })
        .await;
        assert!(probe().contains("probe_success 1"));
        assert_eq!(run(), runs, "{}", bin.log_text());
    }
}

#[test]
fn a_bad_auto_reload_interval_is_a_clear_flag_error() {
    for bad in ["0", "0s", "-5s", "soon", "5x"] {
        let out = Command::new(env!("CARGO_BIN_EXE_siembox-exporter"))
            .args(["--config.enable-auto-reload", "--config.check"])
            .arg(format!("--config.auto-reload-interval={bad}"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad}: {stderr}");
        assert!(
            stderr.contains(&format!(
                "invalid value '{bad}' for '--config.auto-reload-interval"
            )),
            "{bad}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

/// blackbox's own spelling (`--config.auto-reload-interval=1`, whole seconds), both processes
/// side by side: both serve a module written after start within a few intervals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_reload_flags_work_as_blackbox_spells_them() {
    let flags = [
        "--config.enable-auto-reload",
        "--config.auto-reload-interval=1",
    ];
    let bb_path = config_file(&tcp_config("a"));
    let bb = Blackbox::start_with_args(Version::V0_28, &bb_path, &flags).await;
    let bin = Binary::start(&tcp_config("a"), &flags);
    std::fs::write(&bb_path, tcp_config("b")).unwrap();
    std::fs::write(&bin.config, tcp_config("b")).unwrap();
    let q = "/probe?module=b&target=127.0.0.1:1";
    let (bb_wait, ours_wait) = tokio::join!(
        eventually(Duration::from_secs(5), "blackbox", async || {
            support::get(&format!("http://127.0.0.1:{}{q}", bb.port), &[])
                .await
                .status
                == 200
        }),
        eventually(Duration::from_secs(5), "ours", async || {
            get(bin.port, q).is_some_and(|r| r.starts_with("HTTP/1.1 200"))
        }),
    );
    eprintln!("module b served after: blackbox {bb_wait:?}, ours {ours_wait:?} (interval 1s)");
}
