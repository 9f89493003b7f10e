//! Resources and clock: disk, memory, load, time synchronization.

use super::{count, finding, number, unknown, CheckStatus, Finding, Rules};
use crate::audit::sections::Sections;

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

pub(super) fn disk_usage(s: &Sections<'_>, rules: &Rules<'_>) -> Finding {
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

pub(super) fn meminfo(s: &Sections<'_>, key: &str) -> Option<f64> {
    s.get("memory")?.lines().find_map(|l| {
        let rest = l.strip_prefix(key)?.strip_prefix(':')?;
        number(rest.split_whitespace().next()?)
    })
}

pub(super) fn memory_usage(s: &Sections<'_>, rules: &Rules<'_>) -> Finding {
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

pub(super) fn load_per_core(s: &Sections<'_>, rules: &Rules<'_>) -> Finding {
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

/// Synchronized per the kernel (timedatectl) or chrony's leap status; a daemon that merely runs
/// proves nothing, and chrony saying "Not synchronised" is not a pass.
pub(super) fn time_sync(s: &Sections<'_>, procs: &[&str]) -> Finding {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
