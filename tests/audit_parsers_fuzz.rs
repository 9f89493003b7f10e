//! Fuzzing of the audit output parsers: the text an audited (possibly compromised) server sends
//! back goes through the section splitter, every check, the sshd config reader (includes, globs),
//! the mount, listener and static-fact readers. None may panic, loop or blow up, and whatever the
//! text, the findings stay well formed: known checks, each once, finite values.
//!
//! Seeds: the captured outputs in tests/fixtures/audit/ and the hand-made ones in
//! tests/fixtures/audit-fuzz/; proptest mutates them line by line with a dictionary of the
//! script's own words. A failing case is saved in tests/audit_parsers_fuzz.proptest-regressions
//! (commit it) and replayed first on every run.
//!
//!   short run (the suite, CI): cargo test --test audit_parsers_fuzz
//!   long run:                  PROPTEST_CASES=100000 cargo test --release --test audit_parsers_fuzz

use proptest::prelude::*;
use siembox_exporter::audit::checks::{
    disk_mounts, evaluate, public_listeners, static_facts, Rules, CHECKS,
};
use siembox_exporter::audit::sections::Sections;
use siembox_exporter::audit::sshd::{Setting, SshdSettings};
use siembox_exporter::config::CheckConfig;
use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::Duration;

const SECTIONS: &[&str] = &[
    "meta",
    "static",
    "procs",
    "sshd",
    "fail2ban",
    "firewall",
    "auto_updates",
    "updates",
    "reboot",
    "failed_logins",
    "disk",
    "memory",
    "load",
    "listening",
    "time_sync",
    "sudo",
    "password_policy",
    "suid",
    "accounts",
    "kernel",
    "sysctl",
    "mounts",
    "mac",
    "end",
];

const KEYS: &[&str] = &[
    "boot_id",
    "cpus",
    "ID",
    "VERSION_ID",
    "KERNEL",
    "ufw",
    "firewalld",
    "nft_rules",
    "iptables_rules",
    "iptables_input_policy",
    "apt_unattended",
    "unattended_upgrades",
    "unit dnf-automatic.timer",
    "unit apt-daily-upgrade.timer",
    "sshd_jail",
    "lists_mtime",
    "now",
    "netfilter_loaded",
    "netfilter_builtin",
    "manager",
    "pending",
    "security",
    "reboot_required",
    "source",
    "count",
    "ntp_synchronized",
    "chrony_leap",
    "sudo",
    "readable",
    "login_defs",
    "passwd",
    "shadow",
    "accounts",
    "running",
    "apparmor_enforce",
    "apparmor_complain",
    "apparmor_profiles",
    "confined_enforce",
    "getenforce",
    "/sys/fs/selinux/enforce",
    "/sys/module/apparmor/parameters/enabled",
    "/sys/kernel/security/lsm",
    "kernel.randomize_va_space ",
];

/// Values that mean something to some reader, and values that only look like numbers.
const VALUES: &[&str] = &[
    "inf",
    "-inf",
    "NaN",
    "infinity",
    "-1",
    "0",
    "1e309",
    "18446744073709551616",
    "65536",
    "yes",
    "no",
    "missing",
    "running",
    "present",
    "unreadable",
    "Status: active",
    "Normal",
    "DROP",
    "install ok installed",
    "enabled",
    "*",
    "?",
    "/etc/ssh/*.conf",
    "/etc/ssh/sshd_config",
    "[::]:22",
    "Y",
    "Enforcing",
    "uid0 root",
    "status x NP",
    "installed /boot/vmlinuz-6.1.0-99-amd64",
    "jail_port /etc/fail2ban/jail.local 1:65535",
    "tmpfs /tmp tmpfs rw,nosuid 0 0",
    "",
];

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(VALUES).prop_map(str::to_string),
        "[0-9]{1,6}(\\.[0-9]{1,3})?",
        "\\PC{0,24}",
    ]
}

/// One line an audit output could hold.
fn line() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(SECTIONS).prop_map(|s| format!("==siembox:{s}==")),
        (prop::sample::select(KEYS), value()).prop_map(|(k, v)| format!("{k}={v}")),
        (
            prop::sample::select(
                &[
                    "Include",
                    "Port",
                    "PermitRootLogin",
                    "PasswordAuthentication",
                    "Match",
                    "port",
                    "permitrootlogin",
                ][..]
            ),
            value(),
        )
            .prop_map(|(k, v)| format!("{k} {v}")),
        "(/etc/ssh/|/etc/ssh/sshd_config.d/)[a-z*?.]{0,12}"
            .prop_map(|p| format!("#siembox-file {p}")),
        (
            prop::sample::select(
                &[
                    "#siembox-unreadable ",
                    "#siembox-mtime ",
                    "listener pid=1 config=/etc/ssh/sshd_config loaded=",
                    "effective sshd -T",
                    "KbdInteractiveAuthentication ",
                    "UsePAM ",
                ][..]
            ),
            value(),
        )
            .prop_map(|(k, v)| format!("{k}{v}")),
        ("/[a-z/]{0,12}", value()).prop_map(|(m, v)| format!("{m} {v}%")),
        (
            prop::sample::select(&["tcp", "udp", "tcp6", "udp6", "x"][..]),
            "(0\\.0\\.0\\.0|127\\.0\\.0\\.1|\\[::\\]|\\[::1\\]|::|\\[fe80::1%eth0\\]|localhost|)",
            value(),
        )
            .prop_map(|(p, h, port)| format!("{p} {h}:{port}")),
        (
            prop::sample::select(&["MemTotal", "MemAvailable", "MemFree", "Buffers", "Cached"][..]),
            value(),
        )
            .prop_map(|(k, v)| format!("{k}: {v} kB")),
        (value(), value(), value()).prop_map(|(a, b, c)| format!("{a} {b} {c}")),
        "\\PC{0,60}",
    ]
}

#[derive(Clone, Debug)]
enum Edit {
    Delete(usize),
    Insert(usize, String),
    Replace(usize, String),
    /// Copies line `.1` of another seed `.0` to position `.2`.
    Splice(usize, usize, usize),
    Repeat(usize, u16),
    /// Cuts the text at this byte (rounded down to a character boundary).
    Truncate(usize),
    CrLf,
}

fn edit() -> impl Strategy<Value = Edit> {
    let i = any::<usize>();
    prop_oneof![
        3 => i.prop_map(Edit::Delete),
        4 => (i, line()).prop_map(|(i, l)| Edit::Insert(i, l)),
        4 => (i, line()).prop_map(|(i, l)| Edit::Replace(i, l)),
        2 => (i, i, i).prop_map(|(a, b, c)| Edit::Splice(a, b, c)),
        1 => (i, 1..400u16).prop_map(|(i, n)| Edit::Repeat(i, n)),
        1 => i.prop_map(Edit::Truncate),
        1 => Just(Edit::CrLf),
    ]
}

fn seeds() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut out = Vec::new();
    for dir in ["audit", "audit-fuzz"] {
        let mut paths: Vec<_> = std::fs::read_dir(root.join(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "txt"))
            .collect();
        paths.sort();
        out.extend(paths.iter().map(|p| std::fs::read_to_string(p).unwrap()));
    }
    assert!(out.len() >= 8, "corpus missing: {} seeds", out.len());
    out
}

fn mutate(seeds: &[String], seed: usize, edits: &[Edit]) -> String {
    let mut lines: Vec<String> = seeds[seed % seeds.len()]
        .lines()
        .map(str::to_string)
        .collect();
    let mut tail_cut: Option<usize> = None;
    let mut crlf = false;
    for e in edits {
        let n = lines.len();
        match e {
            Edit::Delete(i) if n > 0 => {
                lines.remove(i % n);
            }
            Edit::Insert(i, l) => lines.insert(i % (n + 1), l.clone()),
            Edit::Replace(i, l) if n > 0 => lines[i % n] = l.clone(),
            Edit::Splice(s, l, at) => {
                let other: Vec<&str> = seeds[s % seeds.len()].lines().collect();
                if !other.is_empty() {
                    lines.insert(at % (n + 1), other[l % other.len()].to_string());
                }
            }
            Edit::Repeat(i, times) if n > 0 => {
                let l = lines[i % n].clone();
                let at = i % n;
                lines.splice(at..at, std::iter::repeat_n(l, usize::from(*times)));
            }
            Edit::Truncate(b) => tail_cut = Some(*b),
            Edit::CrLf => crlf = true,
            _ => {}
        }
    }
    let mut text = lines.join(if crlf { "\r\n" } else { "\n" });
    text.push('\n');
    if let Some(b) = tail_cut {
        let mut b = b % (text.len() + 1);
        while !text.is_char_boundary(b) {
            b -= 1;
        }
        text.truncate(b);
    }
    text
}

/// Thresholds and allow lists as an operator might set them, and the defaults.
fn rule_sets() -> Vec<BTreeMap<String, CheckConfig>> {
    let mut tuned = BTreeMap::new();
    for (check, allow) in [
        ("ssh_port", vec!["22", "2222"]),
        ("public_ports", vec!["22", "443/tcp", "123/udp"]),
        ("disk_usage", vec!["/boot"]),
        ("suid_files", vec!["/usr/local/bin/odd"]),
    ] {
        tuned.insert(
            check.to_string(),
            CheckConfig {
                warn: Some(1.0),
                fail: Some(2.0),
                allow: allow.into_iter().map(str::to_string).collect(),
                ..Default::default()
            },
        );
    }
    tuned.insert(
        "firewall".to_string(),
        CheckConfig {
            enabled: Some(false),
            ..Default::default()
        },
    );
    vec![BTreeMap::new(), tuned]
}

/// Every reader over `text`, and what must hold whatever the text.
fn check_output(text: &str) {
    let s = Sections::parse(text);
    if !text.contains("==siembox:end==") {
        assert!(!s.complete(), "complete without an end marker");
    }
    for checks in rule_sets() {
        let findings = evaluate(&s, &Rules { checks: &checks });
        let mut seen = HashSet::new();
        for f in &findings {
            assert!(
                CHECKS.iter().any(|c| c.name == f.check),
                "unknown check {}",
                f.check
            );
            assert!(seen.insert(f.check), "{} reported twice", f.check);
            if let Some(v) = f.value {
                assert!(v.is_finite(), "{} has value {v}", f.check);
            }
        }
    }
    for (mount, pct) in disk_mounts(&s) {
        assert!(pct.is_finite(), "{mount}: {pct}");
    }
    if let Some(listeners) = public_listeners(&s) {
        let unique: HashSet<_> = listeners.iter().collect();
        assert_eq!(unique.len(), listeners.len(), "listeners repeated");
    }
    let sshd = SshdSettings::from_sections(&s);
    assert!(
        sshd.listeners.len() <= 16,
        "{} listeners",
        sshd.listeners.len()
    );
    for l in &sshd.listeners {
        let ports: HashSet<_> = l.ports.iter().collect();
        assert_eq!(ports.len(), l.ports.len(), "ports repeated");
        assert!(l.ports.len() <= 256, "{} ports", l.ports.len());
    }
    assert!(sshd.ports().len() <= 256);
    let _ = static_facts(&s);
}

/// Runs `f` on its own thread and fails if it has not returned after `limit`: a guard against
/// inputs that make a parser loop or explode, not a speed goal.
fn finishes_within(limit: Duration, what: &str, f: impl FnOnce() + Send + 'static) {
    let (tx, rx) = std::sync::mpsc::channel();
    let worker = std::thread::spawn(move || {
        f();
        let _ = tx.send(());
    });
    match rx.recv_timeout(limit) {
        Ok(()) => worker.join().unwrap(),
        // The worker panicked: join to report its message.
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => worker.join().unwrap(),
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            panic!("{what}: still running after {limit:?}")
        }
    }
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn mutated_outputs_parse_into_well_formed_findings(
        seed in any::<usize>(),
        edits in prop::collection::vec(edit(), 0..24),
    ) {
        let seeds = seeds();
        let text = mutate(&seeds, seed, &edits);
        check_output(&text);
    }

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,2000}") {
        check_output(&text);
    }
}

#[test]
fn every_seed_parses_and_captured_ones_are_cut_off_when_truncated() {
    for seed in seeds() {
        check_output(&seed);
    }
    // An output cut anywhere before its end marker arrived is incomplete (an audit error).
    for name in ["debian12-root.txt", "alpine-user.txt"] {
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/audit")
                .join(name),
        )
        .unwrap();
        assert!(Sections::parse(&text).complete(), "{name}");
        let marker_end = text.rfind("==siembox:end==").unwrap() + "==siembox:end==".len();
        for cut in (0..marker_end).filter(|b| text.is_char_boundary(*b)) {
            assert!(
                !Sections::parse(&text[..cut]).complete(),
                "{name} cut at {cut} looks complete"
            );
        }
    }
}

/// The worst a server can send within the 4 MiB output cap: configs that include themselves
/// ten times per line, a glob that backtracks, every port listening, 100k mounts.
#[test]
fn hostile_outputs_finish_and_stay_bounded() {
    let fan_out = format!(
        "==siembox:sshd==\nlistener pid=1 config=/etc/ssh/sshd_config loaded=-\n#siembox-file /etc/ssh/sshd_config\nPermitRootLogin no\nInclude {}\n==siembox:end==\n",
        ["/etc/ssh/sshd_config"; 10].join(" ")
    );
    let glob = format!(
        "==siembox:sshd==\nlistener pid=1 config=/etc/ssh/sshd_config loaded=-\n#siembox-file /etc/ssh/sshd_config\nInclude /etc/ssh/{}*b\n#siembox-file /etc/ssh/{}\nPort 1\n==siembox:end==\n",
        "*a".repeat(40),
        "a".repeat(200)
    );
    let mut every_port = String::from("==siembox:listening==\n");
    let mut sshd_ports =
        String::from("==siembox:sshd==\nlistener pid=1 config=/c loaded=-\neffective sshd -T\n");
    for p in 1..=65535u32 {
        every_port.push_str(&format!("tcp 0.0.0.0:{p}\nudp [::]:{p}\n"));
        sshd_ports.push_str(&format!("port {p}\n"));
    }
    let hostile_ports = format!("{sshd_ports}{every_port}==siembox:end==\n");
    let mut mounts = String::from("==siembox:disk==\n");
    for i in 0..100_000 {
        mounts.push_str(&format!("/m{i} {}%\n", i % 100));
    }
    mounts.push_str("/ NaN%\n==siembox:end==\n");
    for (what, text) in [
        ("include fan-out", fan_out.clone()),
        ("backtracking glob", glob),
        ("every port", hostile_ports.clone()),
        ("100k mounts", mounts),
    ] {
        finishes_within(Duration::from_secs(60), what, move || check_output(&text));
    }
    // The fan-out still reads the first value, and the port list stops where sshd's would.
    let s = SshdSettings::from_sections(&Sections::parse(&fan_out));
    assert_eq!(s.listeners[0].permit_root_login, Setting::Set("no".into()));
    let s = SshdSettings::from_sections(&Sections::parse(&hostile_ports));
    assert_eq!(s.listeners[0].ports.len(), 256);
    let listeners = public_listeners(&Sections::parse(&hostile_ports)).unwrap();
    assert_eq!(listeners.len(), 2 * 65535);
}

/// Numbers Rust reads but no tool prints never grade a check: a NaN mount cannot hide a full one.
#[test]
fn non_finite_numbers_are_not_measurements() {
    let text = "==siembox:meta==\ncpus=2\n==siembox:disk==\n/ NaN%\n/data 97%\n/x inf%\n==siembox:memory==\nMemTotal: inf kB\nMemAvailable: 10 kB\n==siembox:load==\nNaN NaN NaN\n==siembox:end==\n";
    let checks = BTreeMap::new();
    let findings = evaluate(&Sections::parse(text), &Rules { checks: &checks });
    let get = |c: &str| findings.iter().find(|f| f.check == c).unwrap();
    assert_eq!(
        get("disk_usage").value,
        Some(97.0),
        "{:?}",
        get("disk_usage")
    );
    assert_eq!(get("memory_usage").value, None);
    assert_eq!(get("load_per_core").value, None);
}
