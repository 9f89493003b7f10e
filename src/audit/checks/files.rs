//! Files: SUID programs outside the stock list (heavy).

use super::{count, finding, unknown, Finding, Rules};
use crate::audit::sections::Sections;

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

pub(super) fn suid_files(s: &Sections<'_>, rules: &Rules<'_>) -> Finding {
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

#[cfg(test)]
mod tests {
    use super::super::CheckStatus;
    use super::*;
    use std::collections::BTreeMap;

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
}
