//! Cost of the probe history on the hot path (one `record` per probe) and of rendering the status
//! page from a full history; prints the memory a full history holds.
//!
//! cargo bench --bench history

use criterion::{criterion_group, Criterion};
use siembox_exporter::history::{HistoryLimits, ProbeHistory};
use siembox_exporter::probe::recorder::FailureReason;
use siembox_exporter::probe::{refused, ProbeOutcome};
use siembox_exporter::{App, AppOptions, Config};
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

fn outcome(success: bool) -> Arc<ProbeOutcome> {
    if success {
        Arc::new(ProbeOutcome {
            success: true,
            duration: Duration::from_micros(180),
            families: Vec::new(),
            log: Vec::new(),
            failure: None,
            finished_at: SystemTime::now(),
        })
    } else {
        Arc::new(refused(
            FailureReason::ConnectionRefused,
            "dial tcp 10.0.0.1:80: connection refused".into(),
        ))
    }
}

fn targets(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("10.{}.{}.{}:80", i >> 16, (i >> 8) & 255, i & 255))
        .collect()
}

/// A history at its key cap with every ring full.
fn full_history(h: &ProbeHistory) {
    let limits = h.limits();
    let (ok, bad) = (outcome(true), outcome(false));
    for t in targets(limits.max_keys) {
        for _ in 0..limits.failures {
            h.record("tcp_connect", &t, &bad);
        }
        for _ in 0..limits.successes {
            h.record("tcp_connect", &t, &ok);
        }
    }
}

fn record(c: &mut Criterion) {
    let mut g = c.benchmark_group("history_record");
    let h = ProbeHistory::default();
    full_history(&h);
    let known = targets(5_000);
    let ok = outcome(true);
    let mut i = 0;
    g.bench_function("known_key_full_rings", |b| {
        b.iter(|| {
            i = (i + 1) % known.len();
            h.record("tcp_connect", black_box(&known[i]), &ok)
        })
    });
    // Every probe a target never seen: the eviction path at the key cap.
    let fresh = targets(2_000_000);
    let h = ProbeHistory::default();
    full_history(&h);
    let mut j = 0;
    g.bench_function("new_key_at_cap", |b| {
        b.iter(|| {
            j = (j + 1) % fresh.len();
            h.record("tcp_http", black_box(&fresh[j]), &ok)
        })
    });
    // Two threads recording at once (this machine has 2 cores): lock contention included.
    let shared = Arc::new(ProbeHistory::default());
    full_history(&shared);
    g.bench_function("known_key_2_threads", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            std::thread::scope(|s| {
                for t in 0..2 {
                    let (h, known, ok) = (&shared, &known, &ok);
                    s.spawn(move || {
                        for k in 0..iters as usize {
                            h.record("tcp_connect", &known[(k * 2 + t) % known.len()], ok);
                        }
                    });
                }
            });
            // Per record, both threads' work counted.
            start.elapsed() / 2
        })
    });
    g.finish();
}

fn page(c: &mut Criterion) {
    let app = App::new(Config::builtin(), None, AppOptions::default());
    full_history(&app.history);
    c.bench_function("status_page_5000_keys", |b| {
        b.iter(|| black_box(siembox_exporter::server::status_page(&app)))
    });
    let bytes = siembox_exporter::server::status_page(&app).len();
    println!("status page with a full history: {bytes} bytes");
}

fn rss_kib() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4
}

/// Memory of a full history (5,000 keys, 20 successes and 50 failures each; every failure its
/// own outcome as in real use).
fn memory() {
    let before = rss_kib();
    let h = ProbeHistory::new(HistoryLimits::default());
    let limits = h.limits();
    for t in targets(limits.max_keys) {
        for _ in 0..limits.failures {
            h.record("tcp_connect", &t, &outcome(false));
        }
        for _ in 0..limits.successes {
            h.record("tcp_connect", &t, &outcome(true));
        }
    }
    let after = rss_kib();
    println!(
        "full history: {} keys, {} records, RSS +{} KiB ({} bytes per key)",
        h.len(),
        h.record_count(),
        after.saturating_sub(before),
        after.saturating_sub(before) * 1024 / limits.max_keys as u64
    );
    drop(h);
}

criterion_group!(benches, record, page);

fn main() {
    memory();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
