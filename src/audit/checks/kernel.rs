//! Kernel: a newer kernel installed than the one running, hardening sysctls, AppArmor or SELinux
//! enforcing, the audit daemon.

use super::{finding, unknown, CheckStatus, Finding, Rules};
use crate::audit::sections::Sections;
use std::cmp::Ordering;

/// The flavour of a kernel release: the `-`-separated parts from the first that starts with a
/// letter (`amd64`, `cloud-amd64`, `generic`, `lts`, `virt`; none on RHEL). Kernels of another
/// flavour are not upgrades of the running one.
fn flavour(release: &str) -> String {
    let parts: Vec<&str> = release.split('-').collect();
    parts
        .iter()
        .position(|p| p.starts_with(|c: char| c.is_ascii_alphabetic()))
        .map(|i| parts[i..].join("-"))
        .unwrap_or_default()
}

/// Version order as `sort -V` sees it: runs of digits compare as numbers, other runs as text.
pub(super) fn version_cmp(a: &str, b: &str) -> Ordering {
    fn runs(s: &str) -> Vec<&str> {
        let mut out = Vec::new();
        let mut start = 0;
        let b = s.as_bytes();
        for i in 1..=b.len() {
            if i == b.len() || b[i].is_ascii_digit() != b[i - 1].is_ascii_digit() {
                out.push(&s[start..i]);
                start = i;
            }
        }
        out
    }
    for (x, y) in runs(a).iter().zip(runs(b).iter()) {
        let o = if x.starts_with(|c: char| c.is_ascii_digit())
            && y.starts_with(|c: char| c.is_ascii_digit())
        {
            let (x, y) = (x.trim_start_matches('0'), y.trim_start_matches('0'));
            x.len().cmp(&y.len()).then_with(|| x.cmp(y))
        } else {
            x.cmp(y)
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    runs(a).len().cmp(&runs(b).len())
}

/// The installed kernels: `/boot/vmlinuz-VERSION` where the names carry versions (Debian,
/// Ubuntu, RHEL), else `/lib/modules/VERSION` (Alpine's /boot/vmlinuz-lts has none).
fn installed(text: &str) -> Vec<&str> {
    let of = |prefix: &str| -> Vec<&str> {
        text.lines()
            .filter_map(|l| l.strip_prefix("installed "))
            .filter_map(|l| l.trim().strip_prefix(prefix))
            .filter(|v| v.starts_with(|c: char| c.is_ascii_digit()) && !v.contains("rescue"))
            .collect()
    };
    let boot = of("/boot/vmlinuz-");
    if boot.is_empty() {
        of("/lib/modules/")
    } else {
        boot
    }
}

/// The running kernel is older than the newest installed one of its flavour: updated, not
/// rebooted into.
pub(super) fn running_kernel(s: &Sections<'_>, rules: &Rules<'_>) -> Finding {
    let Some(text) = s.get("kernel") else {
        return unknown("running_kernel", "section missing");
    };
    let Some(running) = s.value("kernel", "running").filter(|r| !r.is_empty()) else {
        return unknown(
            "running_kernel",
            "the running kernel's release is not readable",
        );
    };
    let want = flavour(running);
    let same: Vec<&str> = installed(text)
        .into_iter()
        .filter(|v| flavour(v) == want)
        .collect();
    let Some(newest) = same.iter().copied().max_by(|a, b| version_cmp(a, b)) else {
        return unknown(
            "running_kernel",
            &format!("no installed kernel of the running one's flavour in /boot or /lib/modules (running {running}: a container or a kernel from elsewhere)"),
        );
    };
    if version_cmp(newest, running) == Ordering::Greater {
        finding(
            "running_kernel",
            rules.grade("running_kernel", 1.0, 1.0, f64::INFINITY),
            Some(1.0),
            format!("running {running}, newest installed {newest}: reboot to run it"),
        )
    } else {
        finding(
            "running_kernel",
            CheckStatus::Pass,
            Some(0.0),
            format!("running the newest installed kernel {running}"),
        )
    }
}

/// Hardening sysctls and the values that pass, after the Lynis KRNL-6000 profile and the CIS
/// benchmarks (section 1.5 and 3.2/3.3): address-space randomization, kernel pointers and the
/// kernel log hidden from users, ptrace limited, no core dumps of SUID programs, link
/// protections, and no ICMP redirects, source routing or spoofed sources accepted.
pub const HARDENING_SYSCTLS: &[(&str, &[&str])] = &[
    ("kernel.randomize_va_space", &["2"]),
    ("kernel.kptr_restrict", &["1", "2"]),
    ("kernel.dmesg_restrict", &["1"]),
    ("kernel.yama.ptrace_scope", &["1", "2", "3"]),
    ("kernel.unprivileged_bpf_disabled", &["1", "2"]),
    ("fs.protected_symlinks", &["1"]),
    ("fs.protected_hardlinks", &["1"]),
    ("fs.suid_dumpable", &["0"]),
    ("net.ipv4.conf.all.accept_redirects", &["0"]),
    ("net.ipv4.conf.default.accept_redirects", &["0"]),
    ("net.ipv4.conf.all.send_redirects", &["0"]),
    ("net.ipv4.conf.all.accept_source_route", &["0"]),
    ("net.ipv4.conf.all.rp_filter", &["1"]),
    ("net.ipv4.tcp_syncookies", &["1"]),
    ("net.ipv4.icmp_echo_ignore_broadcasts", &["1"]),
    ("net.ipv6.conf.all.accept_redirects", &["0"]),
];

/// Value: how many of [`HARDENING_SYSCTLS`] (minus `allow`) are off their hardened value. One
/// the kernel does not have (no Yama, no IPv6) does not count.
pub(super) fn kernel_hardening(s: &Sections<'_>, rules: &Rules<'_>) -> Finding {
    let Some(text) = s.get("sysctl") else {
        return unknown("kernel_hardening", "section missing");
    };
    let allow = rules.allow("kernel_hardening").unwrap_or(&[]);
    let mut read = 0;
    let mut off = Vec::new();
    let mut unreadable = Vec::new();
    for (name, good) in HARDENING_SYSCTLS {
        if allow.iter().any(|a| a == name) {
            continue;
        }
        let value = text.lines().rev().find_map(|l| {
            let (k, v) = l.split_once('=')?;
            (k.trim() == *name).then(|| v.trim())
        });
        match value {
            Some("?") => unreadable.push(*name),
            Some(v) => {
                read += 1;
                if !good.contains(&v) {
                    off.push(format!("{name} = {v} (want {})", good.join(" or ")));
                }
            }
            None => {}
        }
    }
    if read == 0 {
        return unknown(
            "kernel_hardening",
            "no hardening sysctl readable in /proc/sys",
        );
    }
    let v = off.len() as f64;
    let mut detail = if off.is_empty() {
        format!("{read} hardening sysctls as recommended")
    } else {
        format!("{} of {read} off: {}", off.len(), off.join(", "))
    };
    if !unreadable.is_empty() {
        detail = format!("{detail}; not readable: {}", unreadable.join(", "));
    }
    finding(
        "kernel_hardening",
        rules.grade("kernel_hardening", v, 1.0, f64::INFINITY),
        Some(v),
        detail,
    )
}

/// AppArmor or SELinux enforcing: SELinux's enforce flag, or AppArmor enabled with profiles in
/// enforce mode. Value 1 enforcing, 0 not.
pub(super) fn mac_enforcing(s: &Sections<'_>) -> Finding {
    if !s.has("mac") {
        return unknown("mac_enforcing", "section missing");
    }
    let v = |k: &str| s.value("mac", k);
    let lsm = v("/sys/kernel/security/lsm").unwrap_or("");
    let selinux = v("/sys/fs/selinux/enforce").or(match v("getenforce") {
        Some("Enforcing") => Some("1"),
        Some("Permissive") => Some("0"),
        _ => None,
    });
    let yes = |d: &str| finding("mac_enforcing", CheckStatus::Pass, Some(1.0), d);
    let no = |d: String| finding("mac_enforcing", CheckStatus::Warn, Some(0.0), d);
    match selinux {
        Some("1") => return yes("SELinux enforcing"),
        Some("0") => return no("SELinux is permissive: it logs, but denies nothing".into()),
        _ => {}
    }
    let apparmor = v("/sys/module/apparmor/parameters/enabled") == Some("Y")
        && (lsm.is_empty() || lsm.split(',').any(|m| m == "apparmor"));
    if apparmor {
        let count = |k: &str| v(k).and_then(|n| n.parse::<u64>().ok());
        return match (count("apparmor_enforce"), count("confined_enforce")) {
            (Some(n), _) if n > 0 => yes(&format!("AppArmor: {n} profiles in enforce mode")),
            (Some(_), _) => no(format!(
                "AppArmor is enabled but no profile is in enforce mode ({} in complain mode)",
                count("apparmor_complain").unwrap_or(0)
            )),
            (None, Some(n)) if n > 0 => yes(&format!(
                "AppArmor: {n} processes confined in enforce mode"
            )),
            _ => unknown(
                "mac_enforcing",
                "AppArmor is enabled; whether any profile enforces needs root (its profile list), and no process was seen confined",
            ),
        };
    }
    if s.value("mac", "getenforce") == Some("Disabled") || !lsm.is_empty() {
        return no(format!(
            "neither AppArmor nor SELinux is active (LSMs: {})",
            if lsm.is_empty() { "-" } else { lsm }
        ));
    }
    // Without /sys/kernel/security/lsm (securityfs not mounted, old kernels) an absent AppArmor
    // module and no SELinux filesystem still say neither runs.
    no("neither AppArmor nor SELinux is active".into())
}

/// auditd records security events (logins, privilege use, changed files) for later review.
pub(super) fn auditd(s: &Sections<'_>, procs: &[&str]) -> Finding {
    if !s.has("procs") {
        return unknown("auditd", "process list not available");
    }
    if procs.contains(&"auditd") {
        finding("auditd", CheckStatus::Pass, Some(1.0), "auditd is running")
    } else {
        finding(
            "auditd",
            CheckStatus::Warn,
            Some(0.0),
            "auditd is not running",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(name: &str, body: &str) -> String {
        format!("==siembox:{name}==\n{body}==siembox:end==\n")
    }

    #[test]
    fn kernel_versions_compare_as_versions_within_a_flavour() {
        assert_eq!(
            version_cmp("6.8.0-100-generic", "6.8.0-45-generic"),
            Ordering::Greater
        );
        assert_eq!(
            version_cmp(
                "5.14.0-503.11.1.el9_5.x86_64",
                "5.14.0-427.13.1.el9_4.x86_64"
            ),
            Ordering::Greater
        );
        assert_eq!(version_cmp("6.6.58-0-lts", "6.6.58-0-lts"), Ordering::Equal);
        assert_eq!(
            version_cmp("6.1.0-9-amd64", "6.1.0-10-amd64"),
            Ordering::Less
        );
        assert_eq!(flavour("6.1.0-26-cloud-amd64"), "cloud-amd64");
        assert_eq!(flavour("6.8.0-45-generic"), "generic");
        assert_eq!(flavour("5.14.0-503.11.1.el9_5.x86_64"), "");
        assert_eq!(flavour("6.6.58-0-virt"), "virt");
    }

    #[test]
    fn running_kernel_without_installed_kernels_is_unknown() {
        let checks = Default::default();
        let rules = Rules { checks: &checks };
        let out = section("kernel", "running=6.18.44-fc-v669\n");
        let f = running_kernel(&Sections::parse(&out), &rules);
        assert_eq!(f.status, CheckStatus::Unknown);
        assert!(f.detail.contains("container"), "{}", f.detail);
        // Ubuntu keeps the previous kernel: an older one installed is no reason to reboot.
        let out = section(
            "kernel",
            "running=6.8.0-45-generic\ninstalled /boot/vmlinuz-6.8.0-41-generic\ninstalled /boot/vmlinuz-6.8.0-45-generic\n",
        );
        let f = running_kernel(&Sections::parse(&out), &rules);
        assert_eq!((f.status, f.value), (CheckStatus::Pass, Some(0.0)));
    }

    #[test]
    fn sysctls_missing_or_unreadable_do_not_count() {
        let checks = Default::default();
        let rules = Rules { checks: &checks };
        let hs = |body: &str| kernel_hardening(&Sections::parse(&section("sysctl", body)), &rules);
        let f = hs("kernel.randomize_va_space = 0\nkernel.kptr_restrict = ?\n");
        assert_eq!((f.status, f.value), (CheckStatus::Warn, Some(1.0)));
        assert!(
            f.detail.contains("not readable: kernel.kptr_restrict"),
            "{}",
            f.detail
        );
        assert_eq!(hs("").status, CheckStatus::Unknown);
        assert_eq!(hs("kernel.kptr_restrict = 2\n").status, CheckStatus::Pass);
    }

    #[test]
    fn mac_variants() {
        let mac = |body: &str| {
            let f = mac_enforcing(&Sections::parse(&section("mac", body)));
            (f.status, f.value)
        };
        use CheckStatus::*;
        // getenforce alone (no readable selinuxfs), as on an older RHEL-family system.
        assert_eq!(mac("getenforce=Enforcing\n"), (Pass, Some(1.0)));
        assert_eq!(mac("getenforce=Permissive\n"), (Warn, Some(0.0)));
        assert_eq!(mac("getenforce=Disabled\n"), (Warn, Some(0.0)));
        assert_eq!(
            mac("/sys/kernel/security/lsm=lockdown,capability,yama,selinux\n/sys/fs/selinux/enforce=0\ngetenforce=Permissive\n"),
            (Warn, Some(0.0))
        );
        // AppArmor read as root: profiles by mode.
        let aa = "/sys/kernel/security/lsm=lockdown,capability,landlock,yama,apparmor\n/sys/module/apparmor/parameters/enabled=Y\n";
        assert_eq!(
            mac(&format!("{aa}apparmor_enforce=31\napparmor_complain=2\n")),
            (Pass, Some(1.0))
        );
        assert_eq!(
            mac(&format!("{aa}apparmor_enforce=0\napparmor_complain=4\n")),
            (Warn, Some(0.0))
        );
        // As a user: no confined process seen proves nothing.
        assert_eq!(
            mac(&format!(
                "{aa}apparmor_profiles=denied\nconfined_enforce=0\n"
            ))
            .0,
            Unknown
        );
        // The module loaded but another major LSM active: AppArmor does not run.
        assert_eq!(
            mac("/sys/kernel/security/lsm=capability,yama,selinux\n/sys/module/apparmor/parameters/enabled=Y\n"),
            (Warn, Some(0.0))
        );
        assert_eq!(mac(""), (Warn, Some(0.0)));
    }
}
