//! Probes per second through the connection pool against a fresh connection per probe, for
//! PostgreSQL (127.0.0.1:5432, user postgres, db test) and Redis (127.0.0.1:6379), one probe at
//! a time, driven in-process through `App::probe` (no HTTP). A fresh connection per probe is the
//! same prober with `max_lifetime: 0s`, so every probe opens (and the pool closes) a connection.
//!
//! Run: `cargo bench --bench db_pool`; criterion prints `thrpt` in probes per second.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use siembox_exporter::{App, AppOptions, Config};
use std::sync::Arc;
use std::time::Duration;

const CONFIG: &str = "
modules:
  pg_pooled:
    prober: postgres
    postgres: {user: postgres, database: test}
  pg_fresh:
    prober: postgres
    postgres: {user: postgres, database: test, pool: {max_lifetime: 0s}}
  redis_pooled:
    prober: redis
  redis_fresh:
    prober: redis
    redis: {pool: {max_lifetime: 0s}}
";

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let config = Arc::new(Config::from_yaml_str(CONFIG, "bench.yml").unwrap());
    let app = rt.block_on(async { App::new((*config).clone(), None, AppOptions::default()) });
    let mut group = c.benchmark_group("db_probe");
    group.throughput(Throughput::Elements(1));
    group.sample_size(30);
    group.measurement_time(Duration::from_secs(6));
    for (module, target) in [
        ("pg_pooled", "127.0.0.1:5432"),
        ("pg_fresh", "127.0.0.1:5432"),
        ("redis_pooled", "127.0.0.1:6379"),
        ("redis_fresh", "127.0.0.1:6379"),
    ] {
        // Fail loudly rather than benchmark a failing probe.
        let first = rt.block_on(app.probe(&config, module, target, None, Duration::from_secs(5)));
        assert!(first.success, "{module} fails: {:?}", first.log);
        group.bench_function(module, |b| {
            b.to_async(&rt).iter(|| async {
                let out = app
                    .probe(&config, module, target, None, Duration::from_secs(5))
                    .await;
                assert!(out.success);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
