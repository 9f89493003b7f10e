//! Accounts: UID-0 accounts besides root, accounts without a password, password policy.

use super::{finding, number, unknown, CheckStatus, Finding, Rules};
use crate::audit::sections::Sections;

pub(super) fn password_policy(s: &Sections<'_>, rules: &Rules<'_>) -> Finding {
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

/// Names listed after `prefix` in the accounts section (bounded by the script).
fn names<'a>(text: &'a str, prefix: &str) -> Vec<&'a str> {
    text.lines()
        .filter_map(|l| l.strip_prefix(prefix))
        .filter_map(|l| l.split_whitespace().next())
        .collect()
}

fn listed(names: &[&str]) -> String {
    let shown: Vec<&str> = names.iter().take(10).copied().collect();
    shown.join(", ")
}

/// Accounts with UID 0 besides root: each is root under another name (a classic backdoor).
pub(super) fn uid0_accounts(s: &Sections<'_>, rules: &Rules<'_>) -> Finding {
    let Some(text) = s.get("accounts") else {
        return unknown("uid0_accounts", "section missing");
    };
    if s.value("accounts", "passwd") == Some("unreadable") {
        return unknown(
            "uid0_accounts",
            "/etc/passwd is not readable by the audit user",
        );
    }
    let allow = rules.allow("uid0_accounts").unwrap_or(&[]);
    let extra: Vec<&str> = names(text, "uid0 ")
        .into_iter()
        .filter(|n| *n != "root" && !allow.iter().any(|a| a == n))
        .collect();
    let v = extra.len() as f64;
    let detail = if extra.is_empty() {
        "root is the only account with UID 0".to_string()
    } else {
        format!("accounts with UID 0 besides root: {}", listed(&extra))
    };
    finding(
        "uid0_accounts",
        rules.grade("uid0_accounts", v, 1.0, 1.0),
        Some(v),
        detail,
    )
}

/// Accounts whose password field is empty (no password at all), in /etc/passwd (anyone can read
/// it) or /etc/shadow (root, or `passwd -S -a` through sudo).
pub(super) fn empty_passwords(s: &Sections<'_>, rules: &Rules<'_>) -> Finding {
    let Some(text) = s.get("accounts") else {
        return unknown("empty_passwords", "section missing");
    };
    let allow = rules.allow("empty_passwords").unwrap_or(&[]);
    let mut empty: Vec<&str> = Vec::new();
    for n in names(text, "passwd_empty ").into_iter().chain(
        text.lines()
            .filter_map(|l| l.strip_prefix("status "))
            .filter_map(|l| {
                let mut f = l.split_whitespace();
                let name = f.next()?;
                (f.next() == Some("NP")).then_some(name)
            }),
    ) {
        if !empty.contains(&n) && !allow.iter().any(|a| a == n) {
            empty.push(n);
        }
    }
    let source = s.value("accounts", "shadow").unwrap_or("unreadable");
    let v = empty.len() as f64;
    if empty.is_empty() && !matches!(source, "file" | "passwd-S") {
        return unknown(
            "empty_passwords",
            "/etc/shadow needs root (audit as root, or set sudo: true with examples/sudoers-siembox-audit for passwd -S -a)",
        );
    }
    let detail = if empty.is_empty() {
        "no account without a password".to_string()
    } else {
        format!("accounts without a password: {}", listed(&empty))
    };
    finding(
        "empty_passwords",
        rules.grade("empty_passwords", v, 1.0, 1.0),
        Some(v),
        detail,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accounts(body: &str) -> (Finding, Finding) {
        let out = format!("==siembox:accounts==\n{body}==siembox:end==\n");
        let s = Sections::parse(&out);
        let checks = Default::default();
        let rules = Rules { checks: &checks };
        (uid0_accounts(&s, &rules), empty_passwords(&s, &rules))
    }

    #[test]
    fn empty_password_fields_from_passwd_shadow_or_passwd_s() {
        // An empty field in /etc/passwd itself is proof enough without root.
        let (u, e) = accounts("uid0 root\npasswd_empty guest\nshadow=unreadable\n");
        assert_eq!(u.status, CheckStatus::Pass);
        assert_eq!((e.status, e.value), (CheckStatus::Fail, Some(1.0)));
        // passwd -S -a lines as Debian's shadow-utils prints them (through sudo).
        let (_, e) = accounts(
            "uid0 root\nshadow=passwd-S\nstatus kiosk NP 2024-05-02 0 99999 7 -1\naccounts=31\n",
        );
        assert_eq!((e.status, e.value), (CheckStatus::Fail, Some(1.0)));
        assert!(e.detail.contains("kiosk"));
        // Alpine's old images shipped root:::0::::: in /etc/shadow (CVE-2019-5021).
        let (_, e) = accounts("uid0 root\nshadow=file\nstatus root NP\naccounts=23\n");
        assert_eq!(e.status, CheckStatus::Fail);
        let (_, e) = accounts("uid0 root\nshadow=file\naccounts=23\n");
        assert_eq!((e.status, e.value), (CheckStatus::Pass, Some(0.0)));
        let (u, _) = accounts("passwd=unreadable\nshadow=unreadable\n");
        assert_eq!(u.status, CheckStatus::Unknown);
    }
}
