//! Turns the script's sections into findings: one per check, pass / warn / fail / unknown plus a
//! value where the check has one. Pure functions over text; thresholds come from
//! `ssh_audit.checks.<name>` (warn, fail, allow, enabled).

use super::sections::Sections;
use super::sshd::{Listener, SshdSettings};
use crate::config::CheckConfig;
use std::collections::BTreeMap;

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

/// Every check, in the order they are reported. Heavy ones run on their own interval.
pub const CHECKS: &[&str] = &[
    "ssh_root_login",
    "ssh_password_auth",
    "ssh_port",
    "firewall",
    "intrusion_prevention",
    "auto_updates",
    "pending_updates",
    "security_updates",
    "reboot_required",
    "failed_logins",
    "disk_usage",
    "memory_usage",
    "load_per_core",
    "public_ports",
    "time_sync",
    "sudo_logging",
    "password_policy",
    "suid_files",
];

/// Checks whose section is expensive on the server; `checks.<name>.interval` sets how often.
pub const HEAVY: &[(&str, u64)] = &[("pending_updates", 6 * 3600), ("suid_files", 24 * 3600)];

/// SUID programs a stock Debian, Ubuntu, RHEL-family or Alpine system ships.
const STANDARD_SUID: &[&str] = &[
    "/bin/su",
    "/bin/mount",
    "/bin/umount",
    "/bin/ping",
    "/bin/bbsuid",
    "/bin/fusermount",
    "/bin/fusermount3",
    "/usr/bin/su",
    "/usr/bin/sudo",
    "/usr/bin/passwd",
    "/usr/bin/chsh",
    "/usr/bin/chfn",
    "/usr/bin/gpasswd",
    "/usr/bin/newgrp",
    "/usr/bin/mount",
    "/usr/bin/umount",
    "/usr/bin/pkexec",
    "/usr/bin/crontab",
    "/usr/bin/at",
    "/usr/bin/ping",
    "/usr/bin/fusermount",
    "/usr/bin/fusermount3",
    "/usr/bin/ntfs-3g",
    "/usr/bin/staprun",
    "/usr/sbin/pam_timestamp_check",
    "/usr/sbin/unix_chkpwd",
    "/usr/sbin/userhelper",
    "/usr/sbin/mount.nfs",
    "/usr/lib/openssh/ssh-keysign",
    "/usr/libexec/openssh/ssh-keysign",
    "/usr/lib/dbus-1.0/dbus-daemon-launch-helper",
    "/usr/libexec/dbus-1/dbus-daemon-launch-helper",
    "/usr/lib/polkit-1/polkit-agent-helper-1",
    "/usr/libexec/polkit-agent-helper-1",
    "/usr/lib/snapd/snap-confine",
    "/usr/lib/eject/dmcrypt-get-device",
    "/usr/lib/x86_64-linux-gnu/lxc/lxc-user-nic",
];

/// The check settings of one module, with each check's defaults.
pub struct Rules<'a> {
    pub checks: &'a BTreeMap<String, CheckConfig>,
}

impl Rules<'_> {
    pub fn enabled(&self, check: &str) -> bool {
        // security_updates shares the pending_updates section and switch.
        let key = if check == "security_updates" {
            "pending_updates"
        } else {
            check
        };
        self.checks.get(key).and_then(|c| c.enabled).unwrap_or(true)
    }

    fn warn(&self, check: &str, default: f64) -> f64 {
        self.checks
            .get(check)
            .and_then(|c| c.warn)
            .unwrap_or(default)
    }

    fn fail(&self, check: &str, default: f64) -> f64 {
        self.checks
            .get(check)
            .and_then(|c| c.fail)
            .unwrap_or(default)
    }

    fn allow(&self, check: &str) -> Option<&[String]> {
        self.checks
            .get(check)
            .map(|c| c.allow.as_slice())
            .filter(|a| !a.is_empty())
    }

    /// pass below warn, warn from `warn`, fail from `fail` (thresholds inclusive).
    fn grade(&self, check: &str, value: f64, warn: f64, fail: f64) -> CheckStatus {
        if value >= self.fail(check, fail) {
            CheckStatus::Fail
        } else if value >= self.warn(check, warn) {
            CheckStatus::Warn
        } else {
            CheckStatus::Pass
        }
    }
}

fn finding(
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

fn unknown(check: &'static str, detail: &str) -> Finding {
    finding(check, CheckStatus::Unknown, None, detail)
}

/// Evaluates every enabled check whose section is in this output. Heavy checks whose section did
/// not run this time are absent from the result (the caller keeps their cached findings).
pub fn evaluate(s: &Sections<'_>, rules: &Rules<'_>) -> Vec<Finding> {
    let sshd = SshdSettings::from_sections(s);
    let procs: Vec<&str> = s
        .get("procs")
        .map(|t| t.lines().collect())
        .unwrap_or_default();
    let mut out = Vec::with_capacity(CHECKS.len());
    let mut push = |f: Finding| {
        if rules.enabled(f.check) {
            out.push(f);
        }
    };
    push(root_login(&sshd));
    push(password_auth(&sshd));
    push(ssh_port(&sshd, rules));
    push(firewall(s));
    push(intrusion_prevention(s, &procs));
    push(auto_updates(s));
    if s.has("updates") {
        let (pending, security) = updates(s, rules);
        push(pending);
        push(security);
    }
    push(reboot_required(s));
    push(failed_logins(s, rules));
    push(disk_usage(s, rules));
    push(memory_usage(s, rules));
    push(load_per_core(s, rules));
    push(public_ports(s, &sshd, rules));
    push(time_sync(s, &procs));
    push(sudo_logging(s, &procs));
    push(password_policy(s, rules));
    if s.has("suid") {
        push(suid_files(s, rules));
    }
    out
}

/// One check over every listening sshd: the worst verdict wins, and a listener the audit could
/// not read outranks pass and warn (it may hide a fail) but not a proven fail.
fn per_listener(
    check: &'static str,
    sshd: &SshdSettings,
    grade: impl Fn(&Listener) -> Result<(CheckStatus, f64, String), String>,
) -> Finding {
    if sshd.listeners.is_empty() {
        return unknown(check, "the audit found no sshd settings");
    }
    let rank = |s: CheckStatus| match s {
        CheckStatus::Pass => 0,
        CheckStatus::Warn => 1,
        CheckStatus::Unknown => 2,
        CheckStatus::Fail => 3,
    };
    let mut worst: Option<(CheckStatus, Option<f64>)> = None;
    let mut details = Vec::new();
    for l in &sshd.listeners {
        let (status, value, detail) = match grade(l) {
            Ok((s, v, d)) => (s, Some(v), format!("{d} ({})", l.source)),
            Err(why) => (CheckStatus::Unknown, None, why),
        };
        if worst.is_none_or(|(w, _)| rank(status) > rank(w)) {
            worst = Some((status, value));
        }
        details.push(if sshd.listeners.len() > 1 {
            format!("sshd pid {} ({}): {detail}", l.pid, l.config)
        } else {
            detail
        });
    }
    let (status, value) = worst.unwrap_or((CheckStatus::Unknown, None));
    finding(check, status, value, details.join("; "))
}

fn root_login(sshd: &SshdSettings) -> Finding {
    per_listener("ssh_root_login", sshd, |l| {
        let v = l.get(&l.permit_root_login, "prohibit-password")?;
        let (status, value) = match v {
            "no" => (CheckStatus::Pass, 0.0),
            "prohibit-password" | "without-password" | "forced-commands-only" => {
                (CheckStatus::Warn, 1.0)
            }
            _ => (CheckStatus::Fail, 2.0),
        };
        Ok((status, value, format!("PermitRootLogin {v}")))
    })
}

/// Passwords are accepted by PasswordAuthentication, and also by keyboard-interactive when PAM
/// runs it (PAM's first prompt is the password).
fn password_auth(sshd: &SshdSettings) -> Finding {
    per_listener("ssh_password_auth", sshd, |l| {
        let pa = l.get(&l.password_authentication, "yes")?;
        if pa != "no" {
            return Ok((
                CheckStatus::Fail,
                1.0,
                format!("PasswordAuthentication {pa}"),
            ));
        }
        match (
            l.get(&l.kbd_interactive, "yes"),
            l.get(&l.use_pam, "no"),
        ) {
            (Ok("no"), _) | (_, Ok("no")) => Ok((
                CheckStatus::Pass,
                0.0,
                "PasswordAuthentication no, no keyboard-interactive PAM login".into(),
            )),
            (Ok(_), Ok(_)) => Ok((
                CheckStatus::Fail,
                1.0,
                "PasswordAuthentication no, but KbdInteractiveAuthentication yes with UsePAM yes still accepts passwords".into(),
            )),
            (Err(why), _) | (_, Err(why)) => Err(why),
        }
    })
}

fn ssh_port(sshd: &SshdSettings, rules: &Rules<'_>) -> Finding {
    let allow = rules.allow("ssh_port");
    per_listener("ssh_port", sshd, |l| {
        let ports = l.listen_ports()?;
        let outside = |p: &u16| !allow.is_some_and(|a| a.iter().any(|a| a == &p.to_string()));
        let status = if allow.is_some() && ports.iter().any(outside) {
            CheckStatus::Warn
        } else {
            CheckStatus::Pass
        };
        let list: Vec<String> = ports.iter().map(u16::to_string).collect();
        Ok((
            status,
            f64::from(ports[0]),
            format!("Port {}", list.join(",")),
        ))
    })
}

fn count(v: Option<&str>) -> Option<u64> {
    v.and_then(|v| v.trim().parse().ok())
}

/// A measured number. Rust also reads `inf` and `NaN`, which no tool prints for a real value
/// and which would grade as pass (NaN compares false) or hide the other mounts.
fn number(v: &str) -> Option<f64> {
    v.trim().parse::<f64>().ok().filter(|n| n.is_finite())
}

fn firewall(s: &Sections<'_>) -> Finding {
    let ufw = s.value("firewall", "ufw").unwrap_or("missing");
    let firewalld = s.value("firewall", "firewalld").unwrap_or("missing");
    let nft = s.value("firewall", "nft_rules").unwrap_or("missing");
    let ipt = s.value("firewall", "iptables_rules").unwrap_or("missing");
    let policy = s.value("firewall", "iptables_input_policy").unwrap_or("");
    let mut active = Vec::new();
    if ufw.contains("Status: active") {
        active.push("ufw");
    }
    if firewalld == "running" {
        active.push("firewalld");
    }
    if count(Some(nft)).is_some_and(|n| n > 0) {
        active.push("nftables");
    }
    if count(Some(ipt)).is_some_and(|n| n > 0) || matches!(policy, "DROP" | "REJECT") {
        active.push("iptables");
    }
    if !active.is_empty() {
        return finding(
            "firewall",
            CheckStatus::Pass,
            Some(1.0),
            format!("active: {}", active.join(", ")),
        );
    }
    // Nothing seen: a failure only if some tool answered; otherwise we cannot tell.
    let answered = (ufw != "missing" && !ufw.is_empty())
        || firewalld != "missing"
        || count(Some(nft)).is_some()
        || count(Some(ipt)).is_some();
    // Unprivileged evidence: no netfilter module loaded and none built in means no rules.
    let no_netfilter = s.value("firewall", "netfilter_loaded") == Some("")
        && s.value("firewall", "netfilter_builtin") == Some("0");
    if answered {
        finding(
            "firewall",
            CheckStatus::Fail,
            Some(0.0),
            "no active firewall rules",
        )
    } else if no_netfilter {
        finding(
            "firewall",
            CheckStatus::Fail,
            Some(0.0),
            "no firewall: neither nf_tables nor ip_tables is loaded (/proc/modules) or built into the kernel",
        )
    } else {
        unknown(
            "firewall",
            "no firewall tool answered (ufw, firewalld, nft, iptables need root: audit as root or set sudo: true with examples/sudoers-siembox-audit)",
        )
    }
}

fn intrusion_prevention(s: &Sections<'_>, procs: &[&str]) -> Finding {
    if !s.has("procs") {
        return unknown("intrusion_prevention", "process list not available");
    }
    let running: Vec<&str> = procs
        .iter()
        .copied()
        .filter(|p| *p == "fail2ban-server" || *p == "crowdsec")
        .collect();
    if running == ["fail2ban-server"] {
        return match s.value("fail2ban", "sshd_jail") {
            Some("active") => finding(
                "intrusion_prevention",
                CheckStatus::Pass,
                Some(1.0),
                "fail2ban's sshd jail is active",
            ),
            Some("missing") => finding(
                "intrusion_prevention",
                CheckStatus::Warn,
                Some(0.0),
                "fail2ban runs without an sshd jail",
            ),
            _ => unknown(
                "intrusion_prevention",
                "fail2ban runs; whether its sshd jail is active needs root (fail2ban-client status sshd: audit as root or set sudo: true)",
            ),
        };
    }
    if running.is_empty() {
        finding(
            "intrusion_prevention",
            CheckStatus::Warn,
            Some(0.0),
            "neither fail2ban nor CrowdSec is running",
        )
    } else {
        finding(
            "intrusion_prevention",
            CheckStatus::Pass,
            Some(1.0),
            format!("running: {}", running.join(", ")),
        )
    }
}

fn auto_updates(s: &Sections<'_>) -> Finding {
    let Some(text) = s.get("auto_updates") else {
        return unknown("auto_updates", "section missing");
    };
    let apt = s.value("auto_updates", "apt_unattended");
    let uu_installed = s
        .value("auto_updates", "unattended_upgrades")
        .is_some_and(|v| v.contains("install ok installed"));
    let unit = |name: &str| s.value("auto_updates", &format!("unit {name}"));
    let dnf_enabled = text
        .lines()
        .any(|l| l.starts_with("unit dnf-automatic") && l.ends_with("=enabled"))
        || unit("yum-cron.service") == Some("enabled");
    // Under systemd, unattended-upgrades runs from apt-daily-upgrade.timer.
    let apt_timer_off = unit("apt-daily-upgrade.timer")
        .filter(|state| matches!(*state, "masked" | "masked-runtime" | "disabled"));
    if dnf_enabled {
        return finding(
            "auto_updates",
            CheckStatus::Pass,
            Some(1.0),
            "dnf-automatic/yum-cron enabled",
        );
    }
    if let Some(apt) = apt {
        return if let (Some(state), true) = (apt_timer_off, apt == "1" && uu_installed) {
            finding(
                "auto_updates",
                CheckStatus::Warn,
                Some(0.0),
                format!("unattended-upgrades is configured but apt-daily-upgrade.timer is {state}"),
            )
        } else if apt == "1" && uu_installed {
            finding(
                "auto_updates",
                CheckStatus::Pass,
                Some(1.0),
                "unattended-upgrades enabled",
            )
        } else if uu_installed {
            finding(
                "auto_updates",
                CheckStatus::Warn,
                Some(0.0),
                "unattended-upgrades installed but APT::Periodic::Unattended-Upgrade is not 1",
            )
        } else {
            finding(
                "auto_updates",
                CheckStatus::Warn,
                Some(0.0),
                "unattended-upgrades is not installed",
            )
        };
    }
    if text
        .lines()
        .any(|l| l.starts_with("unit ") && !l.starts_with("unit apt-") && l.contains("=disabled"))
    {
        return finding(
            "auto_updates",
            CheckStatus::Warn,
            Some(0.0),
            "dnf-automatic is not enabled",
        );
    }
    unknown(
        "auto_updates",
        "no known automatic update mechanism to inspect",
    )
}

/// Package lists older than this give counts of long ago.
const MAX_LIST_AGE_DAYS: i64 = 7;

/// Why the package lists cannot be trusted, when the script reported their age.
fn stale_lists(s: &Sections<'_>) -> Option<String> {
    let mtime = s.value("updates", "lists_mtime")?;
    if mtime == "none" {
        return Some("no package lists (apt-get update never ran)".into());
    }
    let now: i64 = s.value("meta", "now")?.parse().ok()?;
    let days = (now - mtime.parse::<i64>().ok()?) / 86_400;
    (days > MAX_LIST_AGE_DAYS).then(|| {
        format!("package lists are {days} days old (run apt-get update, or enable apt-daily.timer)")
    })
}

fn updates(s: &Sections<'_>, rules: &Rules<'_>) -> (Finding, Finding) {
    if let Some(why) = stale_lists(s) {
        return (
            unknown("pending_updates", &why),
            unknown("security_updates", &why),
        );
    }
    let manager = s.value("updates", "manager").unwrap_or("missing");
    let pending = count(s.value("updates", "pending"));
    let security = count(s.value("updates", "security"));
    let p = match pending {
        Some(n) if manager != "missing" => {
            let v = n as f64;
            finding(
                "pending_updates",
                rules.grade("pending_updates", v, 20.0, 100.0),
                Some(v),
                format!("{n} pending ({manager})"),
            )
        }
        _ => unknown("pending_updates", "no package manager found"),
    };
    let sec = match security {
        Some(n) if manager != "missing" => {
            let v = n as f64;
            finding(
                "security_updates",
                rules.grade("security_updates", v, 1.0, 10.0),
                Some(v),
                format!("{n} security updates pending ({manager})"),
            )
        }
        _ => unknown(
            "security_updates",
            "package manager cannot tell security updates",
        ),
    };
    (p, sec)
}

fn reboot_required(s: &Sections<'_>) -> Finding {
    match s.value("reboot", "reboot_required") {
        Some("yes") => finding(
            "reboot_required",
            CheckStatus::Warn,
            Some(1.0),
            "reboot required",
        ),
        Some("no") => finding(
            "reboot_required",
            CheckStatus::Pass,
            Some(0.0),
            "no reboot required",
        ),
        _ => unknown("reboot_required", "cannot tell on this system"),
    }
}

fn failed_logins(s: &Sections<'_>, rules: &Rules<'_>) -> Finding {
    let source = s.value("failed_logins", "source").unwrap_or("none");
    match count(s.value("failed_logins", "count")) {
        Some(n) if matches!(source, "journal" | "file") => {
            let v = n as f64;
            finding(
                "failed_logins",
                rules.grade("failed_logins", v, 10.0, 50.0),
                Some(v),
                format!("{n} failed logins in 24h ({source})"),
            )
        }
        _ if source == "unreadable" => unknown(
            "failed_logins",
            "the auth log or journal is not readable by the audit user (add it to group adm, or systemd-journal)",
        ),
        _ => unknown("failed_logins", "no journal or auth log found"),
    }
}

/// Used percentage per mount, from `df -P` lines reduced to "mount NN%".
pub fn disk_mounts(s: &Sections<'_>) -> Vec<(String, f64)> {
    s.get("disk")
        .unwrap_or("")
        .lines()
        .filter_map(|l| {
            let (mount, pct) = l.trim().rsplit_once(' ')?;
            let v = number(pct.trim_end_matches('%'))?;
            Some((mount.to_string(), v))
        })
        .collect()
}

fn disk_usage(s: &Sections<'_>, rules: &Rules<'_>) -> Finding {
    let mounts = disk_mounts(s);
    let allow = rules.allow("disk_usage").unwrap_or(&[]);
    let watched = mounts.iter().filter(|(m, _)| !allow.iter().any(|a| a == m));
    let Some((mount, worst)) = watched.max_by(|a, b| a.1.total_cmp(&b.1)) else {
        return unknown("disk_usage", "df gave no mounts");
    };
    finding(
        "disk_usage",
        rules.grade("disk_usage", *worst, 80.0, 90.0),
        Some(*worst),
        format!("fullest mount {mount} at {worst}%"),
    )
}

fn meminfo(s: &Sections<'_>, key: &str) -> Option<f64> {
    s.get("memory")?.lines().find_map(|l| {
        let rest = l.strip_prefix(key)?.strip_prefix(':')?;
        number(rest.split_whitespace().next()?)
    })
}

fn memory_usage(s: &Sections<'_>, rules: &Rules<'_>) -> Finding {
    let Some(total) = meminfo(s, "MemTotal").filter(|t| *t > 0.0) else {
        return unknown("memory_usage", "/proc/meminfo not readable");
    };
    // Kernels before 3.14 have no MemAvailable: free + buffers + cache approximates it.
    let available = meminfo(s, "MemAvailable").or_else(|| {
        Some(
            meminfo(s, "MemFree")?
                + meminfo(s, "Buffers").unwrap_or(0.0)
                + meminfo(s, "Cached").unwrap_or(0.0),
        )
    });
    let Some(available) = available else {
        return unknown("memory_usage", "/proc/meminfo has no MemAvailable");
    };
    let used = ((total - available) / total * 100.0).clamp(0.0, 100.0);
    let used = (used * 10.0).round() / 10.0;
    finding(
        "memory_usage",
        rules.grade("memory_usage", used, 85.0, 95.0),
        Some(used),
        format!("{used}% of memory in use"),
    )
}

fn load_per_core(s: &Sections<'_>, rules: &Rules<'_>) -> Finding {
    let cpus = count(s.value("meta", "cpus")).filter(|n| *n > 0);
    let load5: Option<f64> = s
        .get("load")
        .and_then(|t| t.split_whitespace().nth(1))
        .and_then(number);
    match (cpus, load5) {
        (Some(c), Some(l)) => {
            let v = ((l / c as f64) * 100.0).round() / 100.0;
            finding(
                "load_per_core",
                rules.grade("load_per_core", v, 1.0, 2.0),
                Some(v),
                format!("5m load {l} on {c} cores"),
            )
        }
        _ => unknown("load_per_core", "no /proc/loadavg or CPU count"),
    }
}

/// Listening sockets on a non-loopback address, as (proto, port).
pub fn public_listeners(s: &Sections<'_>) -> Option<Vec<(String, u16)>> {
    let text = s.get("listening")?;
    if text.trim() == "missing" {
        return None;
    }
    let mut out: Vec<(String, u16)> = Vec::new();
    // A set beside the list: a hostile server may print every port there is.
    let mut seen = std::collections::HashSet::new();
    for line in text.lines() {
        let mut it = line.split_whitespace();
        let (Some(proto), Some(addr)) = (it.next(), it.next()) else {
            continue;
        };
        let Some((host, port)) = addr.rsplit_once(':') else {
            continue;
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let host = host.split('%').next().unwrap_or(host);
        let loopback = host.starts_with("127.") || host == "::1" || host == "localhost";
        let Ok(port) = port.parse::<u16>() else {
            continue;
        };
        let proto = if proto.starts_with("udp") {
            "udp"
        } else {
            "tcp"
        };
        if !loopback && seen.insert((proto, port)) {
            out.push((proto.to_string(), port));
        }
    }
    Some(out)
}

fn public_ports(s: &Sections<'_>, sshd: &SshdSettings, rules: &Rules<'_>) -> Finding {
    let Some(listeners) = public_listeners(s) else {
        return unknown("public_ports", "neither ss nor netstat is available");
    };
    let ssh_ports = sshd.ports();
    let allow = rules.allow("public_ports");
    let expected = |proto: &str, port: u16| match allow {
        Some(list) => list
            .iter()
            .any(|a| a == &port.to_string() || a == &format!("{port}/{proto}")),
        None => proto == "tcp" && ssh_ports.contains(&port),
    };
    let unexpected: Vec<String> = listeners
        .iter()
        .filter(|(proto, port)| !expected(proto, *port))
        .map(|(proto, port)| format!("{port}/{proto}"))
        .collect();
    let v = unexpected.len() as f64;
    let detail = if unexpected.is_empty() {
        format!("{} public listeners, all expected", listeners.len())
    } else {
        format!("unexpected public listeners: {}", unexpected.join(", "))
    };
    finding(
        "public_ports",
        rules.grade("public_ports", v, 1.0, f64::INFINITY),
        Some(v),
        detail,
    )
}

/// Synchronized per the kernel (timedatectl) or chrony's leap status; a daemon that merely runs
/// proves nothing, and chrony saying "Not synchronised" is not a pass.
fn time_sync(s: &Sections<'_>, procs: &[&str]) -> Finding {
    let synced = s.value("time_sync", "ntp_synchronized").unwrap_or("");
    let leap = s.value("time_sync", "chrony_leap").unwrap_or("");
    let daemon = procs
        .iter()
        .find(|p| matches!(**p, "chronyd" | "ntpd" | "openntpd" | "systemd-timesyn"));
    let not_synced = |why: String| finding("time_sync", CheckStatus::Warn, Some(0.0), why);
    match (synced, leap, daemon) {
        ("yes", _, _) => finding(
            "time_sync",
            CheckStatus::Pass,
            Some(1.0),
            "NTP synchronized",
        ),
        // chronyc's leap status is "Not synchronised" until chrony has a source.
        (_, "Normal" | "Insert second" | "Delete second", _) => finding(
            "time_sync",
            CheckStatus::Pass,
            Some(1.0),
            "chrony synchronized",
        ),
        (_, l, _) if !l.is_empty() => not_synced(format!("chrony leap status: {l}")),
        ("no", _, Some(d)) => not_synced(format!("{d} running but not synchronized")),
        ("no", _, None) => finding(
            "time_sync",
            CheckStatus::Fail,
            Some(0.0),
            "not synchronized and no time daemon running",
        ),
        (_, _, Some(d)) => unknown(
            "time_sync",
            &format!(
                "{d} runs but neither timedatectl nor chronyc tells whether it is synchronized"
            ),
        ),
        _ if s.has("procs") => finding(
            "time_sync",
            CheckStatus::Fail,
            Some(0.0),
            "no time synchronization daemon running",
        ),
        _ => unknown("time_sync", "cannot tell"),
    }
}

fn sudo_logging(s: &Sections<'_>, procs: &[&str]) -> Finding {
    match s.value("sudo", "sudo") {
        Some("missing") => {
            return finding(
                "sudo_logging",
                CheckStatus::Pass,
                None,
                "sudo is not installed",
            )
        }
        Some("present") => {}
        _ => return unknown("sudo_logging", "section missing"),
    }
    if s.value("sudo", "readable") != Some("yes") {
        return unknown("sudo_logging", "sudoers not readable by the audit user");
    }
    let defaults: Vec<&str> = s
        .get("sudo")
        .unwrap_or("")
        .lines()
        .filter(|l| l.trim_start().starts_with("Defaults"))
        .collect();
    let has = |w: &str| defaults.iter().any(|l| l.contains(w));
    if has("logfile") || has("log_output") || has("log_server") {
        return finding(
            "sudo_logging",
            CheckStatus::Pass,
            Some(1.0),
            "sudo logs to a file or server",
        );
    }
    if has("!syslog") {
        return finding(
            "sudo_logging",
            CheckStatus::Fail,
            Some(0.0),
            "sudo syslog logging is disabled (!syslog)",
        );
    }
    // sudo logs to syslog by default; that only helps if something collects syslog.
    if procs
        .iter()
        .any(|p| matches!(*p, "rsyslogd" | "syslog-ng" | "syslogd" | "systemd-journal"))
    {
        finding(
            "sudo_logging",
            CheckStatus::Pass,
            Some(1.0),
            "sudo logs to syslog",
        )
    } else {
        finding(
            "sudo_logging",
            CheckStatus::Warn,
            Some(0.0),
            "sudo logs to syslog but no syslog daemon runs",
        )
    }
}

fn password_policy(s: &Sections<'_>, rules: &Rules<'_>) -> Finding {
    let Some(text) = s.get("password_policy") else {
        return unknown("password_policy", "section missing");
    };
    if text.contains("login_defs=unreadable") && !text.contains("pam ") {
        return unknown("password_policy", "login.defs not readable");
    }
    let quality_module = text.lines().any(|l| l.starts_with("pam "));
    let minlen = text
        .lines()
        .find_map(|l| l.strip_prefix("pwquality "))
        .and_then(|l| l.split('=').nth(1))
        .and_then(number)
        .or_else(|| {
            text.lines()
                .find_map(|l| l.trim().strip_prefix("PASS_MIN_LEN"))
                .and_then(number)
        });
    let want = rules.warn("password_policy", 12.0);
    match (quality_module, minlen) {
        (true, Some(m)) if m < want => finding(
            "password_policy",
            CheckStatus::Warn,
            Some(m),
            format!("quality module on, minimum length {m} below {want}"),
        ),
        (true, m) => finding(
            "password_policy",
            CheckStatus::Pass,
            m,
            "password quality module enabled",
        ),
        (false, m) => finding(
            "password_policy",
            CheckStatus::Warn,
            m,
            "no password quality module (pam_pwquality, pam_cracklib, pam_passwdqc)",
        ),
    }
}

fn suid_files(s: &Sections<'_>, rules: &Rules<'_>) -> Finding {
    let allow = rules.allow("suid_files").unwrap_or(&[]);
    let unexpected: Vec<&str> = s
        .get("suid")
        .unwrap_or("")
        .lines()
        .map(str::trim)
        .filter(|p| p.starts_with('/'))
        .filter(|p| !STANDARD_SUID.contains(p) && !allow.iter().any(|a| a == p))
        .collect();
    let v = unexpected.len() as f64;
    // find could not read some directories: what it found stands, "none" does not.
    let text = s.get("suid").unwrap_or("");
    let denied = text
        .lines()
        .find_map(|l| l.strip_prefix("#denied_count "))
        .and_then(|n| count(Some(n)))
        .unwrap_or(0);
    let partial = (denied > 0).then(|| {
        let first = text
            .lines()
            .find_map(|l| l.strip_prefix("#denied "))
            .unwrap_or("")
            .trim();
        format!("scan partial: {denied} places unreadable by the audit user ({first})")
    });
    if let (true, Some(why)) = (unexpected.is_empty(), &partial) {
        return unknown("suid_files", why);
    }
    let mut detail = if unexpected.is_empty() {
        "no unexpected SUID files".to_string()
    } else {
        let shown: Vec<&str> = unexpected.iter().take(10).copied().collect();
        format!("unexpected SUID files: {}", shown.join(", "))
    };
    if let Some(why) = partial {
        detail = format!("{detail}; {why}");
    }
    finding(
        "suid_files",
        rules.grade("suid_files", v, 1.0, f64::INFINITY),
        Some(v),
        detail,
    )
}

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

    const DEBIAN_ROOT: &str = include_str!("../../tests/fixtures/audit/debian12-root.txt");
    const ALPINE_USER: &str = include_str!("../../tests/fixtures/audit/alpine-user.txt");

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

    #[test]
    fn time_sync_needs_a_synchronized_state_not_a_running_daemon() {
        let ts = |body: &str| {
            let out = format!(
                "==siembox:procs==\nchronyd\n==siembox:time_sync==\n{body}==siembox:end==\n"
            );
            let s = Sections::parse(&out);
            time_sync(&s, &["chronyd"]).status
        };
        assert_eq!(ts("chrony_leap=Not synchronised\n"), CheckStatus::Warn);
        assert_eq!(
            ts("ntp_synchronized=\nchrony_leap=Normal\n"),
            CheckStatus::Pass
        );
        assert_eq!(ts("ntp_synchronized=no\n"), CheckStatus::Warn);
        assert_eq!(ts("ntp_synchronized=yes\n"), CheckStatus::Pass);
        assert_eq!(ts(""), CheckStatus::Unknown);
    }

    #[test]
    fn fail2ban_passes_only_with_an_active_sshd_jail() {
        let ip = |jail: &str| {
            let out = format!(
                "==siembox:procs==\nfail2ban-server\n==siembox:fail2ban==\n{jail}==siembox:end==\n"
            );
            intrusion_prevention(&Sections::parse(&out), &["fail2ban-server"]).status
        };
        assert_eq!(ip("sshd_jail=active\n"), CheckStatus::Pass);
        assert_eq!(ip("sshd_jail=missing\n"), CheckStatus::Warn);
        assert_eq!(ip("sshd_jail=denied\n"), CheckStatus::Unknown);
        assert_eq!(ip(""), CheckStatus::Unknown);
    }

    #[test]
    fn a_partial_suid_scan_finding_nothing_is_unknown() {
        let suid = |body: &str| {
            let out = format!("==siembox:suid==\n{body}==siembox:end==\n");
            let checks = BTreeMap::new();
            suid_files(&Sections::parse(&out), &Rules { checks: &checks })
        };
        let partial = "#denied '/root': Permission denied\n#denied_count 2\n";
        let f = suid(partial);
        assert_eq!(f.status, CheckStatus::Unknown);
        assert!(
            f.detail.contains("2 places") && f.detail.contains("/root"),
            "{}",
            f.detail
        );
        let f = suid(&format!("{partial}/usr/local/bin/x\n"));
        assert_eq!((f.status, f.value), (CheckStatus::Warn, Some(1.0)));
        assert_eq!(
            suid("#denied_count 0\n/usr/bin/su\n").status,
            CheckStatus::Pass
        );
    }

    #[test]
    fn firewall_variants() {
        let fw = |body: &str| {
            firewall(&Sections::parse(&format!(
                "==siembox:firewall==\n{body}==siembox:end==\n"
            )))
            .status
        };
        assert_eq!(fw("ufw=Status: active\nfirewalld=missing\nnft_rules=missing\niptables_rules=missing\n"), CheckStatus::Pass);
        assert_eq!(fw("ufw=Status: inactive\nfirewalld=missing\nnft_rules=0\niptables_rules=0\niptables_input_policy=ACCEPT\n"), CheckStatus::Fail);
        assert_eq!(
            fw("ufw=missing\nfirewalld=missing\nnft_rules=denied\niptables_rules=denied\n"),
            CheckStatus::Unknown
        );
        assert_eq!(
            fw("ufw=missing\nfirewalld=running\nnft_rules=missing\niptables_rules=missing\n"),
            CheckStatus::Pass
        );
        assert_eq!(
            fw("ufw=missing\nfirewalld=missing\nnft_rules=12\niptables_rules=missing\n"),
            CheckStatus::Pass
        );
        // As an ordinary user: tools denied, but the kernel has no netfilter at all.
        let denied = "ufw=\nfirewalld=missing\nnft_rules=denied\niptables_rules=denied\n";
        assert_eq!(
            fw(&format!("{denied}netfilter_loaded=\nnetfilter_builtin=0\n")),
            CheckStatus::Fail
        );
        assert_eq!(
            fw(&format!(
                "{denied}netfilter_loaded=nf_tables \nnetfilter_builtin=0\n"
            )),
            CheckStatus::Unknown
        );
        assert_eq!(
            fw(&format!(
                "{denied}netfilter_loaded=\nnetfilter_builtin=unknown\n"
            )),
            CheckStatus::Unknown
        );
    }
}
