//! The icmp prober, on loopback only (ICMP to other addresses is not allowed on this network).
//! As root a raw socket is used when `net.ipv4.ping_group_range` leaves root out; as any user in
//! that range the unprivileged datagram socket is used; the log says which.

mod support;

use support::{metric_value, metric_value_with, Exporter};

const CONFIG: &str = r#"
modules:
  icmp:
    prober: icmp
    timeout: 3s
  icmp_ttl:
    prober: icmp
    timeout: 3s
    icmp:
      ttl: 7
      payload_size: 1200
      dont_fragment: true
      source_ip_address: 127.0.0.1
  icmp_v6:
    prober: icmp
    timeout: 3s
    icmp:
      preferred_ip_protocol: ip6
      ip_protocol_fallback: false
  icmp_v4_only:
    prober: icmp
    timeout: 3s
    icmp:
      preferred_ip_protocol: ip4
      ip_protocol_fallback: false
"#;

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

fn reason(body: &str) -> Option<&str> {
    body.lines().find_map(|l| l.strip_prefix("failure_reason="))
}

fn rtt(body: &str) -> f64 {
    metric_value_with(body, "probe_icmp_duration_seconds", &[("phase", "rtt")])
        .unwrap_or_else(|| panic!("no rtt phase in\n{body}"))
}

fn says_which_socket(body: &str) -> bool {
    body.contains("Created raw ICMP socket (privileged)")
        || body.contains("Created unprivileged datagram ICMP socket")
}

#[tokio::test]
async fn echo_to_ipv4_loopback_succeeds_with_an_rtt() {
    let ex = Exporter::start(CONFIG).await;
    let body = probe(&ex, "icmp", "127.0.0.1").await;
    assert_eq!(metric_value(&body, "probe_success"), Some(1.0), "{body}");
    let rtt = rtt(&body);
    assert!(rtt > 0.0 && rtt < 3.0, "rtt {rtt}");
    assert_eq!(metric_value(&body, "probe_ip_protocol"), Some(4.0));
    assert!(says_which_socket(&body), "{body}");
    for phase in ["resolve", "setup"] {
        assert!(
            metric_value_with(&body, "probe_icmp_duration_seconds", &[("phase", phase)]).is_some()
        );
    }
    // A raw socket sees the IP header, hence the reply's TTL (64 from Linux on loopback).
    if body.contains("Created raw ICMP socket") {
        assert_eq!(
            metric_value(&body, "probe_icmp_reply_hop_limit"),
            Some(64.0),
            "{body}"
        );
    }
}

#[tokio::test]
async fn ttl_payload_size_dont_fragment_and_source_are_accepted() {
    let ex = Exporter::start(CONFIG).await;
    let body = probe(&ex, "icmp_ttl", "127.0.0.1").await;
    assert_eq!(metric_value(&body, "probe_success"), Some(1.0), "{body}");
    assert!(rtt(&body) > 0.0);
    assert!(body.contains("Setting TTL (hop limit) 7"), "{body}");
    assert!(body.contains("payload_bytes=1200"), "{body}");
    assert!(body.contains("Set the don't-fragment bit"), "{body}");
    assert!(body.contains("Using source address 127.0.0.1"), "{body}");
}

#[tokio::test]
async fn echo_to_ipv6_loopback_when_the_machine_has_it() {
    if std::net::UdpSocket::bind("[::1]:0").is_err() {
        eprintln!("no ::1 on this machine; IPv6 echo not tested");
        return;
    }
    let ex = Exporter::start(CONFIG).await;
    let body = probe(&ex, "icmp_v6", "::1").await;
    assert_eq!(metric_value(&body, "probe_success"), Some(1.0), "{body}");
    assert!(rtt(&body) > 0.0);
    assert_eq!(metric_value(&body, "probe_ip_protocol"), Some(6.0));
    // Linux loopback's default hop limit, read from the reply's IPV6_HOPLIMIT control message
    // (blackbox prober/icmp.go reads the same; 0.28 reports 64 here too).
    assert_eq!(
        metric_value(&body, "probe_icmp_reply_hop_limit"),
        Some(64.0),
        "{body}"
    );
}

#[tokio::test]
async fn a_target_without_an_address_fails_with_reason_dns() {
    let ex = Exporter::start(CONFIG).await;
    // .invalid never resolves (RFC 6761).
    let body = probe(&ex, "icmp", "no-such-host.invalid").await;
    assert_eq!(metric_value(&body, "probe_success"), Some(0.0), "{body}");
    assert_eq!(reason(&body), Some("dns"), "{body}");
    // An IPv6 literal with ip4 required and no fallback: no usable address either.
    let body = probe(&ex, "icmp_v4_only", "::1").await;
    assert_eq!(metric_value(&body, "probe_success"), Some(0.0), "{body}");
    assert_eq!(reason(&body), Some("dns"), "{body}");
}

#[tokio::test]
async fn concurrent_probes_each_get_their_own_reply() {
    let ex = Exporter::start(CONFIG).await;
    let probes = (0..8).map(|_| probe(&ex, "icmp", "127.0.0.1"));
    for body in futures::future::join_all(probes).await {
        assert_eq!(metric_value(&body, "probe_success"), Some(1.0), "{body}");
    }
}

/// Set in the copy of this test binary that runs inside the namespace: what it must see.
const CHILD_MODE: &str = "SIEMBOX_ICMP_CHILD_MODE";

/// The unprivileged path, tested for real: this test runs itself again as `nobody` inside a new
/// network namespace (where `net.ipv4.ping_group_range` is the namespace's own, so the machine's
/// setting is untouched), once with the range opened (datagram socket, success) and once with
/// the default closed range (no socket at all: a clear error, no panic). Needs root, `unshare`
/// and `setpriv` (util-linux); skipped with a note otherwise.
#[tokio::test]
async fn unprivileged_datagram_socket_when_ping_group_range_allows() {
    if let Ok(mode) = std::env::var(CHILD_MODE) {
        let ex = Exporter::start(CONFIG).await;
        let body = probe(&ex, "icmp", "127.0.0.1").await;
        if mode == "allowed" {
            assert_eq!(metric_value(&body, "probe_success"), Some(1.0), "{body}");
            assert!(
                body.contains("Created unprivileged datagram ICMP socket"),
                "{body}"
            );
            assert!(rtt(&body) > 0.0);
            // A datagram socket hides the IP header; the TTL comes from the IP_TTL control
            // message, as blackbox prober/icmp.go reads it (ipv4.FlagTTL on "udp4" sockets).
            assert_eq!(
                metric_value(&body, "probe_icmp_reply_hop_limit"),
                Some(64.0),
                "{body}"
            );
        } else {
            assert_eq!(metric_value(&body, "probe_success"), Some(0.0), "{body}");
            assert!(body.contains("ping_group_range"), "{body}");
            assert!(body.contains("CAP_NET_RAW"), "{body}");
        }
        return;
    }
    let is_root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0\n"))
        .unwrap_or(false);
    let have = |tool: &str| {
        std::process::Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    };
    if !is_root || !have("unshare") || !have("setpriv") || !have("ip") {
        eprintln!("not root or no unshare/setpriv/ip: unprivileged ICMP not tested");
        return;
    }
    let exe = std::env::current_exe().unwrap();
    for (mode, sysctl) in [
        (
            "allowed",
            "sysctl -qw net.ipv4.ping_group_range='0 2147483647' && ",
        ),
        ("denied", ""),
    ] {
        let script = format!(
            "ip link set lo up && {sysctl}exec setpriv --reuid=65534 --regid=65534 --clear-groups \
             {} --exact unprivileged_datagram_socket_when_ping_group_range_allows --test-threads=1",
            exe.display()
        );
        let out = std::process::Command::new("unshare")
            .args(["-n", "sh", "-c", &script])
            .env(CHILD_MODE, mode)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{mode}:\n{text}");
        assert!(text.contains("1 passed"), "{mode}:\n{text}");
    }
}

/// Trains of echo requests (`icmp.packets` above 1, ours; blackbox sends one).
const TRAIN_CONFIG: &str = r#"
modules:
  icmp:
    prober: icmp
    timeout: 3s
  train:
    prober: icmp
    timeout: 3s
    icmp:
      preferred_ip_protocol: ip4
      packets: 5
      interval: 50ms
  train_half:
    prober: icmp
    timeout: 3s
    icmp:
      preferred_ip_protocol: ip4
      packets: 4
      interval: 400ms
  train_lost:
    prober: icmp
    timeout: 1s
    icmp:
      preferred_ip_protocol: ip4
      packets: 3
      interval: 100ms
  train_untimed:
    prober: icmp
    icmp:
      preferred_ip_protocol: ip4
      packets: 5
"#;

const TRAIN_SERIES: &[&str] = &[
    "probe_icmp_packets_sent",
    "probe_icmp_packets_received",
    "probe_icmp_packet_loss_ratio",
    "probe_icmp_rtt_min_seconds",
    "probe_icmp_rtt_avg_seconds",
    "probe_icmp_rtt_max_seconds",
    "probe_icmp_rtt_stddev_seconds",
];

/// sent, received, loss ratio of a train probe.
fn counts(body: &str) -> (Option<f64>, Option<f64>, Option<f64>) {
    (
        metric_value(body, "probe_icmp_packets_sent"),
        metric_value(body, "probe_icmp_packets_received"),
        metric_value(body, "probe_icmp_packet_loss_ratio"),
    )
}

#[tokio::test]
async fn a_train_to_loopback_addresses_is_all_received() {
    let ex = Exporter::start(TRAIN_CONFIG).await;
    for target in ["127.0.0.1", "127.0.0.2", "127.0.0.3"] {
        let body = probe(&ex, "train", target).await;
        assert_eq!(metric_value(&body, "probe_success"), Some(1.0), "{body}");
        assert_eq!(counts(&body), (Some(5.0), Some(5.0), Some(0.0)), "{body}");
        let v = |name| metric_value(&body, name).unwrap_or_else(|| panic!("{name}:\n{body}"));
        let (min, avg, max, sd) = (
            v("probe_icmp_rtt_min_seconds"),
            v("probe_icmp_rtt_avg_seconds"),
            v("probe_icmp_rtt_max_seconds"),
            v("probe_icmp_rtt_stddev_seconds"),
        );
        assert!(0.0 < min && min <= avg && avg <= max && max < 3.0, "{body}");
        assert!(sd >= 0.0 && sd <= max - min, "{body}");
        // The blackbox phase series stays, holding the mean round trip.
        assert_eq!(rtt(&body), avg, "{body}");
        assert!(
            body.contains("Sending 5 echo requests every 50ms"),
            "{body}"
        );
        assert!(
            body.contains("Sent 5 echo requests, received 5 echo replies"),
            "{body}"
        );
    }
    // Trains of several probes at once each get their own replies (sequence ranges differ).
    let probes = (0..4).map(|_| probe(&ex, "train", "127.0.0.1"));
    for body in futures::future::join_all(probes).await {
        assert_eq!(counts(&body), (Some(5.0), Some(5.0), Some(0.0)), "{body}");
    }
    // One packet, the default, is blackbox's probe: none of the train's series.
    let body = probe(&ex, "icmp", "127.0.0.1").await;
    assert_eq!(metric_value(&body, "probe_success"), Some(1.0), "{body}");
    for name in TRAIN_SERIES {
        assert_eq!(metric_value(&body, name), None, "{name}:\n{body}");
    }
}

#[tokio::test]
async fn a_train_longer_than_the_scrape_timeout_fails_with_a_reason() {
    let ex = Exporter::start(TRAIN_CONFIG).await;
    // No module timeout: 5 packets 1s apart need more than a 2s scrape leaves.
    let r = support::request(
        "GET",
        &ex.url("/probe?module=train_untimed&target=127.0.0.1&debug=true"),
        &[("X-Prometheus-Scrape-Timeout-Seconds", "2")],
    )
    .await;
    assert_eq!(
        metric_value(&r.body, "probe_success"),
        Some(0.0),
        "{}",
        r.body
    );
    assert_eq!(reason(&r.body), Some("config"), "{}", r.body);
    assert!(
        r.body.contains("5 packets every 1s do not fit"),
        "{}",
        r.body
    );
}

/// Set in the copy of this test binary that runs in a network namespace of its own.
const LOSS_CHILD: &str = "SIEMBOX_ICMP_LOSS_CHILD";

fn ignore_echo(on: bool) {
    std::fs::write(
        "/proc/sys/net/ipv4/icmp_echo_ignore_all",
        if on { "1" } else { "0" },
    )
    .expect("write icmp_echo_ignore_all in the test's own network namespace");
}

/// Loss, for real: this test runs itself again in a new network namespace (so the machine's
/// settings are untouched) where the kernel is told to ignore echo requests
/// (`net.ipv4.icmp_echo_ignore_all`): first for the whole train (all lost), then from the
/// middle of a train on (packets 0 and 1 answered at 0 and 400 ms, the switch at 600 ms,
/// packets 2 and 3 at 800 and 1200 ms lost). Needs root, `unshare` and `ip`.
#[tokio::test]
async fn a_train_reports_lost_packets_truthfully() {
    if std::env::var(LOSS_CHILD).is_ok() {
        let ex = Exporter::start(TRAIN_CONFIG).await;
        ignore_echo(false);
        let body = probe(&ex, "train", "127.0.0.1").await;
        assert_eq!(counts(&body), (Some(5.0), Some(5.0), Some(0.0)), "{body}");

        ignore_echo(true);
        let body = probe(&ex, "train_lost", "127.0.0.1").await;
        assert_eq!(metric_value(&body, "probe_success"), Some(0.0), "{body}");
        assert_eq!(counts(&body), (Some(3.0), Some(0.0), Some(1.0)), "{body}");
        assert_eq!(reason(&body), Some("timeout"), "{body}");
        assert!(body.contains("to any of 3 requests"), "{body}");
        assert_eq!(metric_value(&body, "probe_icmp_rtt_avg_seconds"), None);

        ignore_echo(false);
        let switch = tokio::spawn(async {
            tokio::time::sleep(std::time::Duration::from_millis(600)).await;
            ignore_echo(true);
        });
        let body = probe(&ex, "train_half", "127.0.0.1").await;
        switch.await.unwrap();
        assert_eq!(metric_value(&body, "probe_success"), Some(1.0), "{body}");
        assert_eq!(counts(&body), (Some(4.0), Some(2.0), Some(0.5)), "{body}");
        assert!(metric_value(&body, "probe_icmp_rtt_max_seconds").is_some());
        return;
    }
    let is_root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0\n"))
        .unwrap_or(false);
    let have = |tool: &str| {
        std::process::Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    };
    if !is_root || !have("unshare") || !have("ip") {
        eprintln!("not root or no unshare/ip: ICMP loss not tested");
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let script = format!(
        "ip link set lo up && exec {} --exact a_train_reports_lost_packets_truthfully --test-threads=1",
        exe.display()
    );
    let out = std::process::Command::new("unshare")
        .args(["-n", "sh", "-c", &script])
        .env(LOSS_CHILD, "1")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("1 passed"), "{text}");
}
