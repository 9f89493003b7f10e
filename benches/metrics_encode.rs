//! `/metrics` encoding of scheduled results at 1k, 10k, 100k and 220k series of http_2xx outcomes
//! (goal: 10 000 http targets' results, 220k series, in under 20 ms), and gzip of the largest.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use prometheus_client::registry::Registry;
use siembox_exporter::metrics::results::{ScheduledResults, SeriesLabels};
use siembox_exporter::probe::recorder::{Family, Format, MetricKind, Sample};
use siembox_exporter::probe::ProbeOutcome;
use std::sync::Arc;

/// What an http_2xx probe records: 22 series, five of them `probe_http_duration_seconds{phase}`.
fn http_outcome() -> ProbeOutcome {
    let gauge = |name: &'static str, samples: Vec<Sample>| Family {
        name,
        help: "bench",
        kind: MetricKind::Gauge,
        samples,
    };
    let one = |v: f64| {
        vec![Sample {
            labels: Vec::new(),
            value: v,
        }]
    };
    let phases = ["resolve", "connect", "tls", "processing", "transfer"]
        .iter()
        .map(|p| Sample {
            labels: vec![("phase", p.to_string())],
            value: 0.000_123_4,
        })
        .collect();
    let mut families = vec![gauge("probe_http_duration_seconds", phases)];
    for name in [
        "probe_http_content_length",
        "probe_http_uncompressed_body_length",
        "probe_http_redirects",
        "probe_http_ssl",
        "probe_http_status_code",
        "probe_http_version",
        "probe_failed_due_to_regex",
        "probe_http_last_modified_timestamp_seconds",
        "probe_ip_protocol",
        "probe_ip_addr_hash",
        "probe_dns_lookup_time_seconds",
        "probe_tls_version_info",
        "probe_ssl_earliest_cert_expiry",
        "probe_ssl_last_chain_expiry_timestamp_seconds",
        "probe_duration_seconds",
        "probe_success",
    ] {
        families.push(gauge(name, one(200.0)));
    }
    families.push(gauge("probe_http_info", one(1.0)));
    ProbeOutcome {
        success: true,
        duration: std::time::Duration::from_millis(2),
        families,
        log: Vec::new(),
        failure: None,
        finished_at: std::time::SystemTime::now(),
    }
}

fn store(series: usize) -> ScheduledResults {
    let mut reg = Registry::default();
    let results = ScheduledResults::new(usize::MAX, 128, &mut reg);
    let outcome = Arc::new(http_outcome());
    let per_target: usize = outcome.families.iter().map(|f| f.samples.len()).sum();
    for i in 0..series / per_target {
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
    // 220 000 series: 10 000 scheduled http targets, the scale of SPEC §11.
    for series in [1_000usize, 10_000, 100_000, 220_000] {
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

/// gzip of the 220k-series body, as Prometheus asks for it (two threads at this size).
fn gzip(c: &mut Criterion) {
    let mut group = c.benchmark_group("metrics_gzip");
    group.sample_size(10);
    let mut body = String::new();
    store(220_000).encode(&mut body, Format::Text);
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("220000", |b| {
        b.iter(|| siembox_exporter::server::gzip::compress(body.as_bytes()).unwrap())
    });
    group.finish();
}

criterion_group!(benches, encode, gzip);
criterion_main!(benches);
