//! Bodies no prober may hold (issue #16): a gzip bomb and an endless body against the real
//! binary, whose resident memory must stay within a few MiB of idle, and the probe must fail
//! naming the limit it hit.

mod support;

use support::binary::{get, Binary};
use support::http_server::{HostileServer, BOMB_DECODED};
use support::metric_value;

const CONFIG: &str = "modules:
  plain:
    prober: http
    timeout: 5s
    http: {preferred_ip_protocol: ip4}
  gzip:
    prober: http
    timeout: 5s
    http: {preferred_ip_protocol: ip4, compression: gzip}
  gzip_regexp:
    prober: http
    timeout: 5s
    http: {preferred_ip_protocol: ip4, compression: gzip, fail_if_body_matches_regexp: [never-there]}
  regexp:
    prober: http
    timeout: 5s
    http: {preferred_ip_protocol: ip4, fail_if_body_not_matches_regexp: ['y']}
";

/// The default `limits.body_size_limit` (README, differences from blackbox).
const DEFAULT_LIMIT: u64 = 4 << 20;

fn probe(b: &Binary, module: &str, target: &str) -> String {
    let response = get(
        b.port,
        &format!("/probe?module={module}&target={target}&debug=true"),
    )
    .expect("the exporter answered");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    response
}

#[test]
fn a_gzip_bomb_and_an_endless_body_cost_no_more_than_the_limit() {
    let server = HostileServer::start();
    let b = Binary::start(CONFIG, &[]);
    // Warm up what every probe allocates once (runtime, resolver, buffers).
    for _ in 0..3 {
        let out = probe(&b, "plain", &server.url("/small"));
        assert!(out.contains("probe_success 1"), "{out}");
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    let idle = b.memory_kib("VmRSS");
    b.reset_peak_memory();

    // Without body checks nothing is held: the bytes are decoded, counted and dropped.
    let unheld = probe_each(&b, &server, &[("gzip", "/bomb"), ("plain", "/endless")]);
    let peak_unheld = b.memory_kib("VmHWM").saturating_sub(idle);
    // Body regexps hold the body up to the limit (4 MiB here), not more.
    let held = probe_each(
        &b,
        &server,
        &[("gzip_regexp", "/bomb"), ("regexp", "/endless")],
    );
    let peak_held = b.memory_kib("VmHWM").saturating_sub(idle);
    eprintln!(
        "idle RSS {idle} KiB; peak +{peak_unheld} KiB after {unheld} probes without body checks, +{peak_held} KiB after {held} more with regexps ({} KiB gzip bomb of {} MiB, endless body)",
        server.bomb_len >> 10,
        BOMB_DECODED >> 20
    );
    assert!(
        peak_unheld < 3 << 10,
        "peak RSS grew by {peak_unheld} KiB over idle {idle} KiB without body checks"
    );
    assert!(
        peak_held < (DEFAULT_LIMIT >> 10) + (4 << 10),
        "peak RSS grew by {peak_held} KiB over idle {idle} KiB with body regexps"
    );
}

/// Probes each (module, path) three times; each must fail fast, naming the limit, with the
/// uncompressed length at the limit (as blackbox counts it). Returns the number of probes.
fn probe_each(b: &Binary, server: &HostileServer, cases: &[(&str, &str)]) -> usize {
    for &(module, path) in cases {
        for _ in 0..3 {
            let started = std::time::Instant::now();
            let out = probe(b, module, &server.url(path));
            assert!(out.contains("probe_success 0"), "{module} {path}: {out}");
            assert!(
                out.contains(&format!(
                    "response body is larger than limits.body_size_limit ({DEFAULT_LIMIT} bytes)"
                )),
                "{module} {path}: the reason names the limit: {out}"
            );
            // Read as far as the limit, not until the 5 s timeout.
            assert!(
                started.elapsed() < std::time::Duration::from_secs(3),
                "{module} {path} took {:?}",
                started.elapsed()
            );
            assert_eq!(
                metric_value(&out, "probe_http_uncompressed_body_length"),
                Some(DEFAULT_LIMIT as f64),
                "{module} {path}: {out}"
            );
            // blackbox's regexps fail on a body they cannot read whole.
            let wanted = if module.contains("regexp") { 1.0 } else { 0.0 };
            assert_eq!(
                metric_value(&out, "probe_failed_due_to_regex"),
                Some(wanted),
                "{module} {path}: {out}"
            );
        }
    }
    cases.len() * 3
}
