//! Accounts: password policy.

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
