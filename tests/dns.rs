//! The dns prober against a real DNS server (dnsmasq, see tests/support/dnsmasq.rs).

mod support;

use support::dnsmasq::{Dnsmasq, DotFrontend, SOA_SERIAL};
use support::{metric_value, metric_value_with, Exporter};

const CONFIG: &str = r#"
modules:
  a:
    prober: dns
    timeout: 3s
    dns:
      query_name: www.example.test
      query_type: A
  a_tcp:
    prober: dns
    timeout: 3s
    dns:
      transport_protocol: tcp
      query_name: www.example.test
      query_type: A
  blackbox_example_rr:
    prober: dns
    timeout: 3s
    dns:
      query_name: www.prometheus.io
      query_type: A
      validate_answer_rrs:
        fail_if_not_matches_regexp:
          - "www.prometheus.io.\t300\tIN\tA\t127.0.0.1"
  nx_default:
    prober: dns
    timeout: 3s
    dns:
      query_name: nope.example.test
      query_type: A
  nx_allowed:
    prober: dns
    timeout: 3s
    dns:
      query_name: nope.example.test
      query_type: A
      valid_rcodes: [NXDOMAIN]
      validate_authority_rrs:
        fail_if_none_matches_regexp: ["\tSOA\tns\\.example\\.test\\. "]
  soa:
    prober: dns
    timeout: 3s
    dns:
      query_name: example.test
      query_type: SOA
  mx_txt_text:
    prober: dns
    timeout: 3s
    dns:
      query_name: example.test
      query_type: MX
      validate_answer_rrs:
        fail_if_not_matches_regexp: ["^example\\.test\\.\t300\tIN\tMX\t10 mail\\.example\\.test\\.$"]
  txt_text:
    prober: dns
    timeout: 3s
    dns:
      query_name: example.test
      query_type: TXT
      validate_answer_rrs:
        fail_if_not_matches_regexp: ["^example\\.test\\.\t300\tIN\tTXT\t\"v=spf1 -all\"$"]
  # The four rules, each once passing and once failing, on the two A records 127.0.0.2/3.
  matches_pass:
    prober: dns
    timeout: 3s
    dns:
      query_name: www.example.test
      query_type: A
      validate_answer_rrs: {fail_if_matches_regexp: ["127\\.0\\.0\\.9"]}
  matches_fail:
    prober: dns
    timeout: 3s
    dns:
      query_name: www.example.test
      query_type: A
      validate_answer_rrs: {fail_if_matches_regexp: ["127\\.0\\.0\\.3$"]}
  all_match_pass:
    prober: dns
    timeout: 3s
    dns:
      query_name: www.example.test
      query_type: A
      validate_answer_rrs: {fail_if_all_match_regexp: ["\tA\t127\\.0\\.0\\.[23]$"]}
  all_match_fail:
    prober: dns
    timeout: 3s
    dns:
      query_name: www.example.test
      query_type: A
      validate_answer_rrs: {fail_if_all_match_regexp: ["127\\.0\\.0\\.2$"]}
  not_matches_pass:
    prober: dns
    timeout: 3s
    dns:
      query_name: www.example.test
      query_type: A
      validate_answer_rrs: {fail_if_not_matches_regexp: ["^www\\.example\\.test\\.\t300\tIN\tA\t"]}
  not_matches_fail:
    prober: dns
    timeout: 3s
    dns:
      query_name: www.example.test
      query_type: A
      validate_answer_rrs: {fail_if_not_matches_regexp: ["127\\.0\\.0\\.2$"]}
  none_matches_pass:
    prober: dns
    timeout: 3s
    dns:
      query_name: www.example.test
      query_type: A
      validate_answer_rrs: {fail_if_none_matches_regexp: ["127\\.0\\.0\\.3$"]}
  none_matches_fail:
    prober: dns
    timeout: 3s
    dns:
      query_name: www.example.test
      query_type: A
      validate_answer_rrs: {fail_if_none_matches_regexp: ["127\\.0\\.0\\.9"]}
  a_from_source:
    prober: dns
    timeout: 3s
    dns:
      source_ip_address: 127.0.0.2
      query_name: www.example.test
      query_type: A
  short_timeout:
    prober: dns
    timeout: 1s
    dns:
      query_name: www.example.test
      query_type: A
"#;

/// Runs a probe with `debug=true`: the metrics plus the log and the failure reason.
async fn probe(ex: &Exporter, module: &str, target: &str) -> String {
    let q = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("module", module)
        .append_pair("target", target)
        .append_pair("debug", "true")
        .finish();
    let r = ex.get(&format!("/probe?{q}")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

fn success(body: &str) -> f64 {
    metric_value(body, "probe_success").unwrap_or_else(|| panic!("no probe_success in\n{body}"))
}

fn reason(body: &str) -> Option<&str> {
    body.lines().find_map(|l| l.strip_prefix("failure_reason="))
}

#[tokio::test]
async fn a_record_succeeds_with_counts_and_phases() {
    let dns = Dnsmasq::start();
    let ex = Exporter::start(CONFIG).await;
    let body = probe(&ex, "a", &dns.target()).await;
    assert_eq!(success(&body), 1.0, "{body}");
    assert_eq!(metric_value(&body, "probe_dns_answer_rrs"), Some(2.0));
    // dnsmasq answers authoritatively: the zone's NS in the authority section.
    assert_eq!(metric_value(&body, "probe_dns_authority_rrs"), Some(1.0));
    assert_eq!(metric_value(&body, "probe_dns_additional_rrs"), Some(0.0));
    assert_eq!(metric_value(&body, "probe_dns_query_succeeded"), Some(1.0));
    assert_eq!(metric_value(&body, "probe_ip_protocol"), Some(4.0));
    let request = metric_value_with(&body, "probe_dns_duration_seconds", &[("phase", "request")])
        .expect("request phase");
    assert!(request > 0.0 && request < 3.0, "request phase {request}");
    for phase in ["resolve", "connect"] {
        assert!(
            metric_value_with(&body, "probe_dns_duration_seconds", &[("phase", phase)]).is_some(),
            "{phase} phase missing:\n{body}"
        );
    }
    // Not an SOA query: no serial, as in blackbox.
    assert_eq!(metric_value(&body, "probe_dns_serial"), None);
    assert!(
        dns.log_text().contains("www.example.test"),
        "{}",
        dns.log_text()
    );
}

#[tokio::test]
async fn rr_text_is_formatted_like_miekg_dns() {
    let dns = Dnsmasq::start();
    let ex = Exporter::start(CONFIG).await;
    for module in ["blackbox_example_rr", "mx_txt_text", "txt_text"] {
        let body = probe(&ex, module, &dns.target()).await;
        assert_eq!(success(&body), 1.0, "{module}:\n{body}");
    }
}

#[tokio::test]
async fn nxdomain_fails_by_default_and_passes_when_allowed() {
    let dns = Dnsmasq::start();
    let ex = Exporter::start(CONFIG).await;
    let body = probe(&ex, "nx_default", &dns.target()).await;
    assert_eq!(success(&body), 0.0, "{body}");
    assert_eq!(reason(&body), Some("dns"), "{body}");
    assert!(
        body.contains("Rcode NXDOMAIN is not one of the valid rcodes"),
        "{body}"
    );
    // The query itself worked, so the counts are there.
    assert_eq!(metric_value(&body, "probe_dns_query_succeeded"), Some(1.0));
    let body = probe(&ex, "nx_allowed", &dns.target()).await;
    assert_eq!(success(&body), 1.0, "{body}");
    assert_eq!(metric_value(&body, "probe_dns_answer_rrs"), Some(0.0));
    assert_eq!(metric_value(&body, "probe_dns_authority_rrs"), Some(1.0));
}

#[tokio::test]
async fn each_rr_rule_passes_and_fails() {
    let dns = Dnsmasq::start();
    let ex = Exporter::start(CONFIG).await;
    for rule in ["matches", "all_match", "not_matches", "none_matches"] {
        let pass = probe(&ex, &format!("{rule}_pass"), &dns.target()).await;
        assert_eq!(success(&pass), 1.0, "{rule}_pass:\n{pass}");
        let fail = probe(&ex, &format!("{rule}_fail"), &dns.target()).await;
        assert_eq!(success(&fail), 0.0, "{rule}_fail:\n{fail}");
        assert_eq!(reason(&fail), Some("regexp"), "{rule}_fail:\n{fail}");
        assert!(fail.contains("Answer RRs validation failed"), "{fail}");
    }
}

#[tokio::test]
async fn tcp_transport_reaches_the_server_over_tcp() {
    let dns = Dnsmasq::start();
    let ex = Exporter::start(CONFIG).await;
    let body = probe(&ex, "a_tcp", &dns.target()).await;
    assert_eq!(success(&body), 1.0, "{body}");
    assert_eq!(metric_value(&body, "probe_dns_answer_rrs"), Some(2.0));
    assert!(body.contains("dial_protocol=tcp4"), "{body}");
    // With the server gone, the TCP connect is refused.
    drop(dns);
    let body = probe(&ex, "a_tcp", &format!("127.0.0.1:{}", support::free_port())).await;
    assert_eq!(success(&body), 0.0, "{body}");
    assert_eq!(reason(&body), Some("connection_refused"), "{body}");
}

#[tokio::test]
async fn soa_query_reports_the_zone_serial() {
    let dns = Dnsmasq::start();
    let ex = Exporter::start(CONFIG).await;
    let body = probe(&ex, "soa", &dns.target()).await;
    assert_eq!(success(&body), 1.0, "{body}");
    assert_eq!(
        metric_value(&body, "probe_dns_serial"),
        Some(f64::from(SOA_SERIAL)),
        "{body}"
    );
}

#[tokio::test]
async fn closed_port_and_silent_server_fail_by_the_deadline() {
    let ex = Exporter::start(CONFIG).await;
    // Closed UDP port: the kernel's port-unreachable ends the wait at once.
    let closed = support::dnsmasq::free_udp_and_tcp_port();
    let body = probe(&ex, "short_timeout", &format!("127.0.0.1:{closed}")).await;
    assert_eq!(success(&body), 0.0, "{body}");
    assert_eq!(reason(&body), Some("connection_refused"), "{body}");
    // A server that reads and never answers: the probe ends at the module's 1s deadline.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let target = silent.local_addr().unwrap().to_string();
    let started = std::time::Instant::now();
    let body = probe(&ex, "short_timeout", &target).await;
    let took = started.elapsed().as_secs_f64();
    assert_eq!(success(&body), 0.0, "{body}");
    assert_eq!(reason(&body), Some("timeout"), "{body}");
    assert!((0.9..5.0).contains(&took), "took {took}s");
    assert_eq!(metric_value(&body, "probe_dns_query_succeeded"), Some(0.0));
    let mut buf = [0u8; 512];
    silent.set_nonblocking(true).unwrap();
    assert!(
        silent.recv(&mut buf).unwrap() > 12,
        "the query reached the silent server"
    );
}

// blackbox config/config.go DNSProbe.UnmarshalYAML rejects an unknown query_type at load;
// prober/dns.go validRcode rejects an unknown rcode name only after the query: ours loads that
// with a warning naming the field, and the probe fails with reason config.
#[tokio::test]
async fn bad_dns_modules_are_rejected_at_load_naming_the_field() {
    let yaml = "modules:\n  d:\n    prober: dns\n    dns:\n      query_name: x.test\n      query_type: AAAAA\n      valid_rcodes: [NOERR]\n";
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yml");
    std::fs::write(&path, yaml).unwrap();
    let err = siembox_exporter::Config::load_file(&path)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("bad.yml:6: field modules.d.dns.query_type"),
        "{err}"
    );
    assert!(!err.contains("valid_rcodes"), "{err}");

    let dns = Dnsmasq::start();
    let yaml = "modules:\n  d:\n    prober: dns\n    dns:\n      query_name: www.example.test\n      query_type: A\n      preferred_ip_protocol: ip4\n      valid_rcodes: [NOERROR, NOERR]\n";
    let config = siembox_exporter::Config::from_yaml_str(yaml, "w.yml").unwrap();
    let w = siembox_exporter::config::format_warnings("w.yml", &config.warnings);
    assert!(
        w.contains("w.yml:8: field modules.d.dns.valid_rcodes") && w.contains("\"NOERR\""),
        "{w}"
    );
    let ex = Exporter::start(yaml).await;
    let body = probe(&ex, "d", &dns.target()).await;
    assert_eq!(success(&body), 0.0, "{body}");
    assert_eq!(reason(&body), Some("config"), "{body}");
    assert_eq!(
        metric_value(&body, "probe_dns_query_succeeded"),
        Some(1.0),
        "{body}"
    );
    // An unknown transport_protocol likewise loads (warning) and fails each probe.
    let ex = Exporter::start("modules:\n  q:\n    prober: dns\n    dns:\n      query_name: www.example.test\n      transport_protocol: quic\n").await;
    let body = probe(&ex, "q", &dns.target()).await;
    assert_eq!(success(&body), 0.0, "{body}");
    assert_eq!(reason(&body), Some("config"), "{body}");
}

const BLACKBOX_EXAMPLE: &str = "/usr/share/doc/prometheus-blackbox-exporter/examples/example.yml";

/// The `prober: dns` modules of blackbox's example.yml, unchanged (other modules of that file
/// name certificate files that do not exist here).
fn blackbox_dns_modules() -> String {
    let text = std::fs::read_to_string(BLACKBOX_EXAMPLE).unwrap_or_else(|e| {
        panic!("{BLACKBOX_EXAMPLE} (package prometheus-blackbox-exporter): {e}")
    });
    let mut out = String::from("modules:\n");
    let mut block = String::new();
    let mut flush = |block: &mut String| {
        if block.contains("\n    prober: dns\n") {
            out.push_str(block);
        }
        block.clear();
    };
    for line in text
        .lines()
        .skip_while(|l| !l.starts_with("modules:"))
        .skip(1)
    {
        if line.starts_with("  ") && !line.starts_with("   ") {
            flush(&mut block);
        }
        block.push_str(line);
        block.push('\n');
    }
    flush(&mut block);
    out
}

#[tokio::test]
async fn blackbox_example_dns_modules_load_and_run() {
    let yaml = blackbox_dns_modules();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("example-dns.yml");
    std::fs::write(&path, &yaml).unwrap();
    let config = siembox_exporter::Config::load_file(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.modules.len(), 3, "{yaml}");
    let udp = &config.modules["dns_udp_example"].dns;
    assert_eq!(udp.query_name, "www.prometheus.io");
    assert_eq!(udp.query_type, "A");
    assert_eq!(
        udp.validate_answer_rrs.fail_if_not_matches_regexp[0].as_str(),
        "www.prometheus.io.\t300\tIN\tA\t127.0.0.1"
    );
    assert_eq!(config.modules["dns_soa"].dns.query_type, "SOA");
    let tcp = &config.modules["dns_tcp_example"].dns;
    assert_eq!(
        tcp.transport_protocol,
        siembox_exporter::config::DnsTransport::Tcp
    );

    // Against a server answering www.prometheus.io with 127.0.0.1, the example module's
    // fail_if_matches_regexp ".*127.0.0.1" must fail the probe, on that very RR.
    let dns = Dnsmasq::start();
    let ex = Exporter::start_file(path.clone()).await;
    let body = probe(&ex, "dns_udp_example", &dns.target()).await;
    assert_eq!(success(&body), 0.0, "{body}");
    assert_eq!(reason(&body), Some("regexp"), "{body}");
    assert!(
        body.contains(r#"www.prometheus.io.\\t300\\tIN\\tA\\t127.0.0.1\" matched fail_if_matches_regexp \".*127.0.0.1\""#),
        "{body}"
    );
    assert_eq!(metric_value(&body, "probe_dns_answer_rrs"), Some(1.0));
    // The TCP example (query type ANY by default) runs over TCP and gets an answer.
    let body = probe(&ex, "dns_tcp_example", &dns.target()).await;
    assert!(body.contains("dial_protocol=tcp4"), "{body}");
    assert_eq!(
        metric_value(&body, "probe_dns_query_succeeded"),
        Some(1.0),
        "{body}"
    );
}

#[tokio::test]
async fn dns_over_tls_goes_through_the_tls_client() {
    let dns = Dnsmasq::start();
    let dot = DotFrontend::start(dns.port).await;
    let module = |server_name: &str| {
        format!(
            "modules:\n  dot:\n    prober: dns\n    timeout: 3s\n    dns:\n      dns_over_tls: true\n      transport_protocol: tcp\n      query_name: example.test\n      query_type: SOA\n      tls_config:\n        ca_file: {}\n        server_name: {server_name}\n",
            dot.ca_file.display()
        )
    };
    let ex = Exporter::start(&module("dns.example.test")).await;
    let body = probe(&ex, "dot", &format!("127.0.0.1:{}", dot.port)).await;
    assert_eq!(success(&body), 1.0, "{body}");
    assert!(body.contains("dial_protocol=tcp-tls4"), "{body}");
    assert_eq!(
        metric_value(&body, "probe_dns_serial"),
        Some(f64::from(SOA_SERIAL))
    );
    assert!(
        metric_value(&body, "probe_ssl_earliest_cert_expiry").is_some(),
        "{body}"
    );
    // A certificate for another name fails the probe with reason tls, before any query.
    let ex = Exporter::start(&module("other.example.test")).await;
    let body = probe(&ex, "dot", &format!("127.0.0.1:{}", dot.port)).await;
    assert_eq!(success(&body), 0.0, "{body}");
    assert_eq!(reason(&body), Some("tls"), "{body}");
    assert_eq!(metric_value(&body, "probe_dns_query_succeeded"), Some(0.0));
}

#[tokio::test]
async fn source_ip_address_is_used_for_the_query() {
    let dns = Dnsmasq::start();
    let ex = Exporter::start(CONFIG).await;
    let body = probe(&ex, "a_from_source", &dns.target()).await;
    assert_eq!(success(&body), 1.0, "{body}");
    // dnsmasq logs the client address of each query.
    let log = dns.log_text();
    assert!(log.contains("www.example.test from 127.0.0.2"), "{log}");
}
