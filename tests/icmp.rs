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
