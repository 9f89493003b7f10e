//! Logs: failed logins in the auth log or journal, sudo's logging.

use super::{count, finding, unknown, CheckStatus, Finding, Rules};
use crate::audit::sections::Sections;

pub(super) fn failed_logins(s: &Sections<'_>, rules: &Rules<'_>) -> Finding {
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

pub(super) fn sudo_logging(s: &Sections<'_>, procs: &[&str]) -> Finding {
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
