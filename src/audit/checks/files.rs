//! Files: SUID programs outside the stock list (heavy); nosuid and noexec where anyone writes.

#[cfg(test)]
use super::CheckStatus;
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

/// World-writable directories where a user could drop a SUID or executable file.
const SHARED_DIRS: &[&str] = &["/tmp", "/var/tmp", "/dev/shm"];
/// Mount options each of them should have (CIS 1.1.2-1.1.10).
const SHARED_DIR_OPTIONS: &[&str] = &["nosuid", "noexec"];

/// The mount a directory is on: the longest mount point containing it, the last mounted over
/// the same point winning (as /proc/mounts lists them, in order).
fn mount_of<'a>(mounts: &[(&'a str, &'a str)], dir: &str) -> Option<(&'a str, &'a str)> {
    let contains = |mp: &str| {
        mp == "/" || dir == mp || dir.strip_prefix(mp).is_some_and(|r| r.starts_with('/'))
    };
    // max_by_key keeps the last of equal keys: the latest mount over a point.
    mounts
        .iter()
        .filter(|(mp, _)| contains(mp))
        .max_by_key(|(mp, _)| mp.len())
        .copied()
}

/// Value: (directory, option) pairs missing, minus `allow` ("/dev/shm", or "/dev/shm:noexec").
pub(super) fn tmp_mounts(s: &Sections<'_>, rules: &Rules<'_>) -> Finding {
    let Some(text) = s.get("mounts") else {
        return unknown("tmp_mounts", "section missing");
    };
    let mounts: Vec<(&str, &str)> = text
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 4).then(|| (f[1], f[3]))
        })
        .collect();
    if mounts.is_empty() {
        return unknown("tmp_mounts", "/proc/mounts not readable");
    }
    let allow = rules.allow("tmp_mounts").unwrap_or(&[]);
    let allowed = |dir: &str, opt: &str| {
        allow
            .iter()
            .any(|a| a == dir || *a == format!("{dir}:{opt}"))
    };
    let mut missing = Vec::new();
    for dir in SHARED_DIRS {
        let Some((mp, options)) = mount_of(&mounts, dir) else {
            continue;
        };
        let lacks: Vec<&str> = SHARED_DIR_OPTIONS
            .iter()
            .copied()
            .filter(|o| !options.split(',').any(|x| x == *o) && !allowed(dir, o))
            .collect();
        if !lacks.is_empty() {
            let on = if mp == *dir {
                String::new()
            } else {
                format!(" (on {mp})")
            };
            missing.push((
                lacks.len(),
                format!("{dir}{on} without {}", lacks.join(", ")),
            ));
        }
    }
    let v = missing.iter().map(|(n, _)| *n).sum::<usize>() as f64;
    let detail = if missing.is_empty() {
        "/tmp, /var/tmp and /dev/shm are nosuid and noexec".to_string()
    } else {
        missing
            .into_iter()
            .map(|(_, d)| d)
            .collect::<Vec<_>>()
            .join("; ")
    };
    finding(
        "tmp_mounts",
        rules.grade("tmp_mounts", v, 1.0, f64::INFINITY),
        Some(v),
        detail,
    )
}

#[cfg(test)]
mod tests {
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

    #[test]
    fn a_directory_is_on_its_longest_and_latest_mount() {
        let m = [
            ("/", "rw"),
            ("/var", "rw,nosuid"),
            ("/tmp", "rw"),
            ("/tmp", "rw,nosuid,noexec"),
            ("/tmpfoo", "rw"),
        ];
        assert_eq!(mount_of(&m, "/var/tmp"), Some(("/var", "rw,nosuid")));
        assert_eq!(mount_of(&m, "/tmp"), Some(("/tmp", "rw,nosuid,noexec")));
        assert_eq!(mount_of(&m, "/dev/shm"), Some(("/", "rw")));
        let out = "==siembox:mounts==\n/dev/vda1 / ext4 rw 0 0\ntmpfs /tmp tmpfs rw,nosuid,noexec 0 0\ntmpfs /tmp tmpfs rw,nodev 0 0\n==siembox:end==\n";
        let checks = BTreeMap::new();
        let f = tmp_mounts(&Sections::parse(out), &Rules { checks: &checks });
        assert!(
            f.detail.starts_with("/tmp without nosuid, noexec"),
            "{}",
            f.detail
        );
        assert_eq!(f.value, Some(6.0), "mounted over: the last /tmp counts");
    }
}
