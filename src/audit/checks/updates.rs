//! Updates: automatic updates, pending and security updates (heavy), reboot flag.

use super::{count, finding, unknown, CheckStatus, Finding, Rules};
use crate::audit::sections::Sections;

pub(super) fn auto_updates(s: &Sections<'_>) -> Finding {
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
pub(super) fn stale_lists(s: &Sections<'_>) -> Option<String> {
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

pub(super) fn updates(s: &Sections<'_>, rules: &Rules<'_>) -> (Finding, Finding) {
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

pub(super) fn reboot_required(s: &Sections<'_>) -> Finding {
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
