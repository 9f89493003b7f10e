//! Turns the script's sections into findings: one per check, pass / warn / fail / unknown plus a
//! value where the check has one. Pure functions over text; thresholds come from
//! `ssh_audit.checks.<name>` (warn, fail, allow, enabled, interval).
//!
//! Every check is one row of [`CHECKS`]: its name, family, cost and default, and the function
//! that grades it. The functions live in one file per family.

mod accounts;
mod files;
mod kernel;
mod logs;
mod network;
mod sshd;
mod system;
mod updates;

use super::sections::Sections;
use super::sshd::SshdSettings;
use crate::config::CheckConfig;
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum CheckStatus {
    Pass = 0,
    Warn = 1,
    Fail = 2,
    Unknown = 3,
}

impl CheckStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckStatus::Pass => "pass",
            CheckStatus::Warn => "warn",
            CheckStatus::Fail => "fail",
            CheckStatus::Unknown => "unknown",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Finding {
    pub check: &'static str,
    pub status: CheckStatus,
    pub value: Option<f64>,
    /// A short human explanation for the status page and debug output (never a metric label).
    pub detail: String,
}

/// Which part of the server a check looks at (one source file each).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    Sshd,
    Network,
    Updates,
    Logs,
    System,
    Accounts,
    Files,
    Kernel,
}

/// What a check costs the audited server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cost {
    /// Reads of /proc, /sys and small files, or one quick command: every audit.
    Light,
    /// Its script section runs only when due: every `checks.<name>.interval`, by default
    /// `every_secs`, and again after a reboot. The audit schedules, asks the script for
    /// (`wants SECTION` in audit.sh) and caches each section from this row alone.
    Heavy {
        section: &'static str,
        every_secs: u64,
    },
}

/// One check: the only place a new check is added (plus its grading function and, when it
/// needs new facts, the script's section).
pub struct Check {
    pub name: &'static str,
    pub family: Family,
    pub cost: Cost,
    /// Whether it runs when the module does not set `checks.<name>.enabled`.
    pub default_on: bool,
    /// The check whose `enabled` switches this one (itself, except for checks sharing a section).
    pub switch: &'static str,
    pub grade: fn(&Input<'_>) -> Finding,
}

const fn light(name: &'static str, family: Family, grade: fn(&Input<'_>) -> Finding) -> Check {
    Check {
        name,
        family,
        cost: Cost::Light,
        default_on: true,
        switch: name,
        grade,
    }
}

const fn heavy(
    name: &'static str,
    family: Family,
    section: &'static str,
    every_secs: u64,
    grade: fn(&Input<'_>) -> Finding,
) -> Check {
    Check {
        name,
        family,
        cost: Cost::Heavy {
            section,
            every_secs,
        },
        default_on: true,
        switch: name,
        grade,
    }
}

/// Every check, in the order they are reported.
pub const CHECKS: &[Check] = &[
    light("ssh_root_login", Family::Sshd, |i| {
        sshd::root_login(&i.sshd)
    }),
    light("ssh_password_auth", Family::Sshd, |i| {
        sshd::password_auth(&i.sshd)
    }),
    light("ssh_port", Family::Sshd, |i| {
        sshd::ssh_port(&i.sshd, i.rules)
    }),
    light("ssh_empty_passwords", Family::Sshd, |i| {
        sshd::empty_passwords(&i.sshd)
    }),
    light("ssh_max_auth_tries", Family::Sshd, |i| {
        sshd::max_auth_tries(&i.sshd, i.rules)
    }),
    light("ssh_allow_users", Family::Sshd, |i| {
        sshd::allow_users(&i.sshd)
    }),
    light("firewall", Family::Network, |i| network::firewall(i.s)),
    light("intrusion_prevention", Family::Network, |i| {
        network::intrusion_prevention(i.s, &i.procs, &i.sshd.ports())
    }),
    light("auto_updates", Family::Updates, |i| {
        updates::auto_updates(i.s)
    }),
    heavy(
        "pending_updates",
        Family::Updates,
        "updates",
        6 * 3600,
        |i| updates::updates(i.s, i.rules).0,
    ),
    // Graded from the same section, switched and scheduled with pending_updates.
    Check {
        switch: "pending_updates",
        ..heavy(
            "security_updates",
            Family::Updates,
            "updates",
            6 * 3600,
            |i| updates::updates(i.s, i.rules).1,
        )
    },
    light("reboot_required", Family::Updates, |i| {
        updates::reboot_required(i.s)
    }),
    light("running_kernel", Family::Kernel, |i| {
        kernel::running_kernel(i.s, i.rules)
    }),
    light("kernel_hardening", Family::Kernel, |i| {
        kernel::kernel_hardening(i.s, i.rules)
    }),
    light("mac_enforcing", Family::Kernel, |i| {
        kernel::mac_enforcing(i.s)
    }),
    light("auditd", Family::Kernel, |i| kernel::auditd(i.s, &i.procs)),
    light("failed_logins", Family::Logs, |i| {
        logs::failed_logins(i.s, i.rules)
    }),
    light("disk_usage", Family::System, |i| {
        system::disk_usage(i.s, i.rules)
    }),
    light("memory_usage", Family::System, |i| {
        system::memory_usage(i.s, i.rules)
    }),
    light("load_per_core", Family::System, |i| {
        system::load_per_core(i.s, i.rules)
    }),
    light("public_ports", Family::Network, |i| {
        network::public_ports(i.s, &i.sshd, i.rules)
    }),
    light("time_sync", Family::System, |i| {
        system::time_sync(i.s, &i.procs)
    }),
    light("sudo_logging", Family::Logs, |i| {
        logs::sudo_logging(i.s, &i.procs)
    }),
    light("password_policy", Family::Accounts, |i| {
        accounts::password_policy(i.s, i.rules)
    }),
    light("uid0_accounts", Family::Accounts, |i| {
        accounts::uid0_accounts(i.s, i.rules)
    }),
    light("empty_passwords", Family::Accounts, |i| {
        accounts::empty_passwords(i.s, i.rules)
    }),
    light("tmp_mounts", Family::Files, |i| {
        files::tmp_mounts(i.s, i.rules)
    }),
    heavy("suid_files", Family::Files, "suid", 24 * 3600, |i| {
        files::suid_files(i.s, i.rules)
    }),
];

/// The row of a check, by name.
pub fn check(name: &str) -> Option<&'static Check> {
    CHECKS.iter().find(|c| c.name == name)
}

/// The heavy checks that own their script section (the ones others share it through `switch`),
/// with that section: what the audit schedules and caches.
pub fn heavy_sections() -> impl Iterator<Item = (&'static Check, &'static str)> {
    CHECKS.iter().filter_map(|c| match c.cost {
        Cost::Heavy { section, .. } if c.switch == c.name => Some((c, section)),
        _ => None,
    })
}

/// The checks graded from `owner`'s heavy section: itself and those switched with it.
pub fn graded_with(owner: &str) -> Vec<&'static str> {
    CHECKS
        .iter()
        .filter(|c| c.switch == owner)
        .map(|c| c.name)
        .collect()
}

/// What the grading functions read: the sections, the module's rules, and what several checks
/// share (parsed once).
pub struct Input<'a> {
    pub s: &'a Sections<'a>,
    pub rules: &'a Rules<'a>,
    pub sshd: SshdSettings,
    /// Process names from the `procs` section.
    pub procs: Vec<&'a str>,
}

/// The check settings of one module, with each check's defaults.
pub struct Rules<'a> {
    pub checks: &'a BTreeMap<String, CheckConfig>,
}

impl Rules<'_> {
    pub fn enabled(&self, name: &str) -> bool {
        let (key, default) = check(name).map_or((name, true), |c| (c.switch, c.default_on));
        self.checks
            .get(key)
            .and_then(|c| c.enabled)
            .unwrap_or(default)
    }

    /// How often a heavy check runs: `checks.<name>.interval`, else its default.
    pub fn interval(&self, name: &str) -> Duration {
        let default = match check(name).map(|c| c.cost) {
            Some(Cost::Heavy { every_secs, .. }) => every_secs,
            _ => 0,
        };
        self.checks
            .get(name)
            .and_then(|c| c.interval)
            .map_or(Duration::from_secs(default), |d| d.get())
    }

    pub(super) fn warn(&self, check: &str, default: f64) -> f64 {
        self.checks
            .get(check)
            .and_then(|c| c.warn)
            .unwrap_or(default)
    }

    pub(super) fn fail(&self, check: &str, default: f64) -> f64 {
        self.checks
            .get(check)
            .and_then(|c| c.fail)
            .unwrap_or(default)
    }

    pub(super) fn allow(&self, check: &str) -> Option<&[String]> {
        self.checks
            .get(check)
            .map(|c| c.allow.as_slice())
            .filter(|a| !a.is_empty())
    }

    /// pass below warn, warn from `warn`, fail from `fail` (thresholds inclusive).
    pub(super) fn grade(&self, check: &str, value: f64, warn: f64, fail: f64) -> CheckStatus {
        if value >= self.fail(check, fail) {
            CheckStatus::Fail
        } else if value >= self.warn(check, warn) {
            CheckStatus::Warn
        } else {
            CheckStatus::Pass
        }
    }
}

pub(super) fn finding(
    check: &'static str,
    status: CheckStatus,
    value: Option<f64>,
    detail: impl Into<String>,
) -> Finding {
    Finding {
        check,
        status,
        value,
        detail: detail.into(),
    }
}

pub(super) fn unknown(check: &'static str, detail: &str) -> Finding {
    finding(check, CheckStatus::Unknown, None, detail)
}

pub(super) fn count(v: Option<&str>) -> Option<u64> {
    v.and_then(|v| v.trim().parse().ok())
}

/// A measured number. Rust also reads `inf` and `NaN`, which no tool prints for a real value
/// and which would grade as pass (NaN compares false) or hide the other mounts.
pub(super) fn number(v: &str) -> Option<f64> {
    v.trim().parse::<f64>().ok().filter(|n| n.is_finite())
}

/// Evaluates every enabled check; a heavy check only when its section is in this output (the
/// caller keeps the cached findings of heavy checks that did not run this time).
pub fn evaluate(s: &Sections<'_>, rules: &Rules<'_>) -> Vec<Finding> {
    let input = Input {
        s,
        rules,
        sshd: SshdSettings::from_sections(s),
        procs: s
            .get("procs")
            .map(|t| t.lines().collect())
            .unwrap_or_default(),
    };
    CHECKS
        .iter()
        .filter(|c| rules.enabled(c.name))
        .filter(|c| match c.cost {
            Cost::Light => true,
            Cost::Heavy { section, .. } => s.has(section),
        })
        .map(|c| {
            let f = (c.grade)(&input);
            debug_assert_eq!(f.check, c.name);
            f
        })
        .collect()
}

pub use network::public_listeners;
pub use system::disk_mounts;

/// OS and kernel from the `static` section (printed only when the boot id changed).
pub fn static_facts(s: &Sections<'_>) -> Option<(String, String)> {
    let text = s.get("static")?;
    let field = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(k).and_then(|r| r.strip_prefix('=')))
            .map(|v| v.trim().trim_matches('"').to_string())
    };
    let os = match (field("ID"), field("VERSION_ID")) {
        (Some(id), Some(v)) => format!("{id} {v}"),
        (Some(id), None) => id,
        _ => "unknown".to_string(),
    };
    Some((os, field("KERNEL").unwrap_or_else(|| "unknown".into())))
}
#[cfg(test)]
mod tests {
    use super::*;

    const DEBIAN_ROOT: &str = include_str!("../../../tests/fixtures/audit/debian12-root.txt");
    const ALPINE_USER: &str = include_str!("../../../tests/fixtures/audit/alpine-user.txt");

    fn eval(out: &str) -> Vec<Finding> {
        let checks = BTreeMap::new();
        evaluate(&Sections::parse(out), &Rules { checks: &checks })
    }

    fn get<'a>(f: &'a [Finding], check: &str) -> &'a Finding {
        f.iter()
            .find(|x| x.check == check)
            .unwrap_or_else(|| panic!("no {check} in {f:?}"))
    }

    #[test]
    fn debian_container_output_is_graded() {
        let f = eval(DEBIAN_ROOT);
        let s = Sections::parse(DEBIAN_ROOT);
        assert!(s.complete());
        assert_eq!(
            static_facts(&s),
            Some(("debian 12".into(), "6.18.44-fc-v669".into()))
        );
        // sshd_config has only the Include line and the include dir is empty: sshd defaults.
        assert_eq!(get(&f, "ssh_root_login").status, CheckStatus::Warn);
        assert_eq!(get(&f, "ssh_password_auth").status, CheckStatus::Fail);
        assert_eq!(get(&f, "ssh_port").value, Some(22.0));
        assert_eq!(get(&f, "firewall").status, CheckStatus::Unknown);
        assert_eq!(get(&f, "pending_updates").value, Some(119.0));
        assert_eq!(get(&f, "pending_updates").status, CheckStatus::Fail);
        assert_eq!(get(&f, "security_updates").value, Some(69.0));
        assert_eq!(get(&f, "reboot_required").status, CheckStatus::Pass);
        assert_eq!(get(&f, "failed_logins").status, CheckStatus::Unknown);
        assert_eq!(get(&f, "disk_usage").value, Some(44.0));
        assert_eq!(get(&f, "disk_usage").status, CheckStatus::Pass);
        let mem = get(&f, "memory_usage").value.unwrap();
        assert_eq!(mem, 7.2);
        assert_eq!(get(&f, "load_per_core").value, Some(0.79));
        // 2024/tcp listens on 0.0.0.0; loopback listeners do not count.
        assert_eq!(get(&f, "public_ports").value, Some(1.0));
        assert!(get(&f, "public_ports").detail.contains("2024/tcp"));
        assert_eq!(get(&f, "sudo_logging").status, CheckStatus::Pass);
        assert_eq!(get(&f, "password_policy").status, CheckStatus::Warn);
        assert_eq!(get(&f, "time_sync").status, CheckStatus::Fail);
        assert!(
            !f.iter().any(|x| x.check == "suid_files"),
            "suid did not run"
        );
    }

    #[test]
    fn alpine_busybox_output_as_unprivileged_user() {
        let f = eval(ALPINE_USER);
        let s = Sections::parse(ALPINE_USER);
        assert_eq!(static_facts(&s).unwrap().0, "alpine 3.20.3");
        assert_eq!(get(&f, "ssh_root_login").status, CheckStatus::Pass);
        assert_eq!(get(&f, "ssh_password_auth").status, CheckStatus::Pass);
        assert_eq!(get(&f, "ssh_port").value, Some(2222.0));
        assert_eq!(get(&f, "firewall").status, CheckStatus::Unknown);
        // fail2ban runs, but an ordinary user cannot see whether its sshd jail is active.
        assert_eq!(get(&f, "intrusion_prevention").status, CheckStatus::Unknown);
        assert_eq!(get(&f, "auto_updates").status, CheckStatus::Unknown);
        assert_eq!(get(&f, "pending_updates").value, Some(3.0));
        assert_eq!(get(&f, "security_updates").status, CheckStatus::Unknown);
        assert_eq!(get(&f, "reboot_required").status, CheckStatus::Unknown);
        assert_eq!(get(&f, "failed_logins").value, Some(12.0));
        assert_eq!(get(&f, "failed_logins").status, CheckStatus::Warn);
        assert_eq!(get(&f, "disk_usage").status, CheckStatus::Fail);
        // chronyd runs but chronyc gave no leap status: running proves nothing.
        assert_eq!(get(&f, "time_sync").status, CheckStatus::Unknown);
        assert_eq!(get(&f, "sudo_logging").status, CheckStatus::Unknown);
        assert_eq!(get(&f, "public_ports").value, Some(0.0));
        assert_eq!(get(&f, "suid_files").value, Some(1.0));
        assert!(get(&f, "suid_files")
            .detail
            .contains("/usr/local/bin/backdoor"));
    }

    #[test]
    fn thresholds_and_switches_come_from_config() {
        let mut checks = BTreeMap::new();
        checks.insert(
            "disk_usage".to_string(),
            CheckConfig {
                warn: Some(40.0),
                fail: Some(95.0),
                ..Default::default()
            },
        );
        checks.insert(
            "firewall".to_string(),
            CheckConfig {
                enabled: Some(false),
                ..Default::default()
            },
        );
        checks.insert(
            "pending_updates".to_string(),
            CheckConfig {
                enabled: Some(false),
                ..Default::default()
            },
        );
        let f = evaluate(&Sections::parse(DEBIAN_ROOT), &Rules { checks: &checks });
        assert_eq!(get(&f, "disk_usage").status, CheckStatus::Warn);
        assert!(!f.iter().any(|x| x.check == "firewall"));
        assert!(!f.iter().any(|x| x.check == "security_updates"));
    }

    const DEBIAN_HARDENING: &str =
        include_str!("../../../tests/fixtures/audit/hardening-debian12.txt");
    const RHEL_HARDENING: &str = include_str!("../../../tests/fixtures/audit/hardening-rhel9.txt");
    const ALPINE_HARDENING: &str =
        include_str!("../../../tests/fixtures/audit/hardening-alpine320.txt");

    /// (status, value) of a check in a captured output.
    fn verdict(f: &[Finding], check: &str) -> (CheckStatus, Option<f64>) {
        let x = get(f, check);
        (x.status, x.value)
    }

    /// Debian 12 audited by an ordinary user with the sudoers entry (sshd -T, passwd -S -a).
    #[test]
    fn hardening_checks_on_debian() {
        let f = eval(DEBIAN_HARDENING);
        use CheckStatus::*;
        assert_eq!(verdict(&f, "ssh_empty_passwords"), (Pass, Some(0.0)));
        assert_eq!(verdict(&f, "ssh_max_auth_tries"), (Pass, Some(3.0)));
        assert_eq!(verdict(&f, "ssh_allow_users"), (Pass, Some(1.0)));
        assert!(get(&f, "ssh_allow_users")
            .detail
            .contains("AllowGroups ssh-users"));
        // jail.local moves the sshd jail to sshd's port 2222.
        assert_eq!(verdict(&f, "intrusion_prevention"), (Pass, Some(1.0)));
        assert_eq!(verdict(&f, "uid0_accounts"), (Pass, Some(0.0)));
        assert_eq!(verdict(&f, "empty_passwords"), (Pass, Some(0.0)));
        // 6.1.0-27 is installed; the newer cloud kernel is another flavour.
        assert_eq!(verdict(&f, "running_kernel"), (Warn, Some(1.0)));
        assert!(get(&f, "running_kernel")
            .detail
            .contains("newest installed 6.1.0-27-amd64"));
        let h = get(&f, "kernel_hardening");
        assert_eq!((h.status, h.value), (Warn, Some(7.0)), "{}", h.detail);
        assert!(
            h.detail.contains("kernel.kptr_restrict = 0"),
            "{}",
            h.detail
        );
        // /tmp and /var/tmp are on / (neither option), /dev/shm lacks noexec.
        let m = get(&f, "tmp_mounts");
        assert_eq!((m.status, m.value), (Warn, Some(5.0)), "{}", m.detail);
        assert!(
            m.detail.contains("/tmp (on /) without nosuid, noexec"),
            "{}",
            m.detail
        );
        assert_eq!(verdict(&f, "mac_enforcing"), (Pass, Some(1.0)));
        assert_eq!(verdict(&f, "auditd"), (Warn, Some(0.0)));
    }

    /// RHEL 9 (CIS-hardened mounts and sysctls) audited as root.
    #[test]
    fn hardening_checks_on_rhel() {
        let f = eval(RHEL_HARDENING);
        use CheckStatus::*;
        assert_eq!(verdict(&f, "ssh_empty_passwords"), (Pass, Some(0.0)));
        assert_eq!(verdict(&f, "ssh_max_auth_tries"), (Warn, Some(6.0)));
        assert_eq!(verdict(&f, "ssh_allow_users"), (Warn, Some(0.0)));
        assert_eq!(verdict(&f, "intrusion_prevention"), (Warn, Some(0.0)));
        assert_eq!(verdict(&f, "uid0_accounts"), (Pass, Some(0.0)));
        let e = get(&f, "empty_passwords");
        assert_eq!((e.status, e.value), (Fail, Some(1.0)));
        assert!(e.detail.contains("svc-backup"), "{}", e.detail);
        // The rescue image and the older el9_4 kernel are not newer.
        assert_eq!(verdict(&f, "running_kernel"), (Pass, Some(0.0)));
        assert_eq!(verdict(&f, "kernel_hardening"), (Pass, Some(0.0)));
        assert_eq!(verdict(&f, "tmp_mounts"), (Pass, Some(0.0)));
        assert_eq!(verdict(&f, "mac_enforcing"), (Pass, Some(1.0)));
        assert!(get(&f, "mac_enforcing").detail.contains("SELinux"));
        assert_eq!(verdict(&f, "auditd"), (Pass, Some(1.0)));
    }

    /// Alpine 3.20 (busybox, OpenRC) audited by an ordinary user without sudo.
    #[test]
    fn hardening_checks_on_alpine() {
        let f = eval(ALPINE_HARDENING);
        use CheckStatus::*;
        assert_eq!(verdict(&f, "ssh_empty_passwords"), (Pass, Some(0.0)));
        assert_eq!(verdict(&f, "ssh_max_auth_tries"), (Fail, Some(12.0)));
        assert_eq!(verdict(&f, "ssh_allow_users"), (Pass, Some(2.0)));
        // The jail's port is readable without root: it bans 22, sshd is on 2222.
        let ip = get(&f, "intrusion_prevention");
        assert_eq!(ip.status, Warn, "{}", ip.detail);
        assert!(ip.detail.contains("port 2222"), "{}", ip.detail);
        let u = get(&f, "uid0_accounts");
        assert_eq!((u.status, u.value), (Fail, Some(1.0)));
        assert!(u.detail.contains("toor"));
        let e = get(&f, "empty_passwords");
        assert_eq!(e.status, Unknown);
        assert!(e.detail.contains("needs root"), "{}", e.detail);
        // apk replaced the modules of the running kernel with 6.6.62's.
        assert_eq!(verdict(&f, "running_kernel"), (Warn, Some(1.0)));
        // No IPv6: that sysctl does not count.
        let h = get(&f, "kernel_hardening");
        assert_eq!((h.status, h.value), (Warn, Some(4.0)), "{}", h.detail);
        assert!(h.detail.contains("of 15 off"), "{}", h.detail);
        let m = get(&f, "tmp_mounts");
        assert_eq!((m.status, m.value), (Warn, Some(3.0)), "{}", m.detail);
        assert_eq!(verdict(&f, "mac_enforcing"), (Warn, Some(0.0)));
        assert_eq!(verdict(&f, "auditd"), (Warn, Some(0.0)));
    }

    #[test]
    fn new_checks_take_thresholds_allow_lists_and_switches() {
        let mut checks = BTreeMap::new();
        checks.insert(
            "ssh_max_auth_tries".to_string(),
            CheckConfig {
                warn: Some(13.0),
                fail: Some(20.0),
                ..Default::default()
            },
        );
        checks.insert(
            "uid0_accounts".to_string(),
            CheckConfig {
                allow: vec!["toor".into()],
                ..Default::default()
            },
        );
        checks.insert(
            "kernel_hardening".to_string(),
            CheckConfig {
                allow: vec![
                    "kernel.dmesg_restrict".into(),
                    "net.ipv4.conf.all.accept_redirects".into(),
                    "net.ipv4.conf.default.accept_redirects".into(),
                    "net.ipv4.conf.all.send_redirects".into(),
                ],
                ..Default::default()
            },
        );
        checks.insert(
            "tmp_mounts".to_string(),
            CheckConfig {
                allow: vec!["/var/tmp".into(), "/tmp:noexec".into()],
                fail: Some(1.0),
                ..Default::default()
            },
        );
        checks.insert(
            "auditd".to_string(),
            CheckConfig {
                enabled: Some(false),
                ..Default::default()
            },
        );
        let f = evaluate(
            &Sections::parse(ALPINE_HARDENING),
            &Rules { checks: &checks },
        );
        use CheckStatus::*;
        assert_eq!(verdict(&f, "ssh_max_auth_tries"), (Pass, Some(12.0)));
        assert_eq!(verdict(&f, "uid0_accounts"), (Pass, Some(0.0)));
        assert_eq!(verdict(&f, "kernel_hardening"), (Pass, Some(0.0)));
        // Only /var/tmp (allowed) and /tmp's noexec (allowed) were missing.
        assert_eq!(verdict(&f, "tmp_mounts"), (Pass, Some(0.0)));
        assert!(!f.iter().any(|x| x.check == "auditd"));
    }

    #[test]
    fn every_check_is_in_the_table_once() {
        let mut names: Vec<&str> = CHECKS.iter().map(|c| c.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), CHECKS.len());
        for c in CHECKS {
            assert!(
                check(c.switch).is_some(),
                "{} switched by unknown {}",
                c.name,
                c.switch
            );
        }
        let f = eval(RHEL_HARDENING);
        assert_eq!(
            f.len(),
            CHECKS.iter().filter(|c| c.cost == Cost::Light).count()
        );
    }
}
