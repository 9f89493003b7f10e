//! `/metrics` encoding of scheduled results at 1k, 10k and 100k series (goal: 10k targets'
//! results in well under 20 ms).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use prometheus_client::registry::Registry;
use siembox_exporter::metrics::results::{ScheduledResults, SeriesLabels};
use siembox_exporter::probe::recorder::{FailureReason, Format};
use std::sync::Arc;

fn store(series: usize) -> ScheduledResults {
    let mut reg = Registry::default();
    let results = ScheduledResults::new(usize::MAX, 128, &mut reg);
    // probe_success + probe_duration_seconds: two series per target.
    let outcome = Arc::new(siembox_exporter::probe::refused(
        FailureReason::Timeout,
        "bench".into(),
    ));
    for i in 0..series / outcome.families.len() {
        let target = format!("https://host-{i}.example.org/health");
        let labels = Arc::new(SeriesLabels::new(
            format!("k{i}"),
            &[
                ("module", "http_2xx"),
                ("target", &target),
                ("prober", "http"),
                ("env", "prod"),
            ],
            128,
        ));
        results.record(&labels, outcome.clone());
    }
    results
}

fn encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("metrics_encode");
    group.sample_size(20);
    for series in [1_000usize, 10_000, 100_000] {
        let results = store(series);
        group.throughput(Throughput::Elements(series as u64));
        group.bench_with_input(BenchmarkId::from_parameter(series), &results, |b, r| {
            b.iter(|| {
                let mut out = String::with_capacity(series * 96);
                r.encode(&mut out, Format::Text);
                out
            })
        });
    }
    group.finish();
}

criterion_group!(benches, encode);
criterion_main!(benches);
