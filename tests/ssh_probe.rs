//! The ssh prober against a real sshd: banner, key exchange, host-key check, no authentication.

mod support;

use support::sshd::{KeyPair, Sshd, SshdOptions};
use support::{metric_value, Exporter};

#[tokio::test]
async fn banner_kex_and_host_key_check() {
    let sshd = Sshd::start(SshdOptions::default());
    let dir = tempfile::tempdir().unwrap().keep();
    let kh = dir.join("known_hosts");
    std::fs::write(&kh, format!("{}\n", sshd.known_hosts_line())).unwrap();
    let other = KeyPair::generate(&dir, "other");
    let yaml = format!(
        "modules:\n  ssh_plain: {{prober: ssh, timeout: 5s}}\n  ssh_kh: {{prober: ssh, timeout: 5s, ssh: {{known_hosts_file: {}}}}}\n  ssh_pinned_wrong: {{prober: ssh, timeout: 5s, ssh: {{host_key_fingerprint: \"{}\"}}}}\n  ssh_pinned: {{prober: ssh, timeout: 5s, ssh: {{host_key_fingerprint: \"{}\"}}}}\n",
        kh.display(),
        other.fingerprint(),
        sshd.host_key.fingerprint()
    );
    let ex = Exporter::start(&yaml).await;
    let target = sshd.address();
    let (_, body) = ex.probe("ssh_plain", &target).await;
    assert_eq!(metric_value(&body, "probe_success"), Some(1.0), "{body}");
    let version = std::process::Command::new("sshd")
        .arg("-V")
        .output()
        .unwrap();
    let v = String::from_utf8_lossy(&version.stderr);
    let expected = v.split(',').next().unwrap().trim(); // "OpenSSH_9.2p1 ..." → first token
    let software = expected.split(' ').next().unwrap();
    assert!(
        body.contains(&format!("probe_ssh_banner_info{{software=\"{software}")),
        "{software}: {body}"
    );
    assert!(metric_value(&body, "probe_ssh_host_key_match").is_none());
    let (_, body) = ex.probe("ssh_kh", &target).await;
    assert_eq!(
        metric_value(&body, "probe_ssh_host_key_match"),
        Some(1.0),
        "{body}"
    );
    assert_eq!(metric_value(&body, "probe_success"), Some(1.0));
    let (_, body) = ex.probe("ssh_pinned", &target).await;
    assert_eq!(
        metric_value(&body, "probe_ssh_host_key_match"),
        Some(1.0),
        "{body}"
    );
    let (_, body) = ex.probe("ssh_pinned_wrong", &target).await;
    assert_eq!(
        metric_value(&body, "probe_ssh_host_key_match"),
        Some(0.0),
        "{body}"
    );
    assert_eq!(metric_value(&body, "probe_success"), Some(0.0));
    // Never authenticates.
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(
        !sshd.log_text().contains("userauth-request"),
        "{}",
        sshd.log_text()
    );
    // A closed port fails cleanly.
    let (_, body) = ex
        .probe("ssh_plain", &format!("127.0.0.1:{}", support::free_port()))
        .await;
    assert_eq!(metric_value(&body, "probe_success"), Some(0.0));
}
