//! sshd: the settings of every listening sshd (see `audit::sshd`), graded per listener.

use super::{finding, unknown, CheckStatus, Finding, Rules};
use crate::audit::sshd::{Listener, SshdSettings};

/// One check over every listening sshd: the worst verdict wins, and a listener the audit could
/// not read outranks pass and warn (it may hide a fail) but not a proven fail.
pub(super) fn per_listener(
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

pub(super) fn root_login(sshd: &SshdSettings) -> Finding {
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
pub(super) fn password_auth(sshd: &SshdSettings) -> Finding {
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

pub(super) fn ssh_port(sshd: &SshdSettings, rules: &Rules<'_>) -> Finding {
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

/// PermitEmptyPasswords yes lets an account without a password log in with none.
pub(super) fn empty_passwords(sshd: &SshdSettings) -> Finding {
    per_listener("ssh_empty_passwords", sshd, |l| {
        let v = l.get(&l.permit_empty_passwords, "no")?;
        let (status, value) = if v == "no" {
            (CheckStatus::Pass, 0.0)
        } else {
            (CheckStatus::Fail, 1.0)
        };
        Ok((status, value, format!("PermitEmptyPasswords {v}")))
    })
}

/// Attempts per connection (sshd's default 6); CIS asks for 4 or fewer.
pub(super) fn max_auth_tries(sshd: &SshdSettings, rules: &Rules<'_>) -> Finding {
    per_listener("ssh_max_auth_tries", sshd, |l| {
        let v = l.get(&l.max_auth_tries, "6")?;
        let n: f64 = v
            .parse::<u32>()
            .map_err(|_| format!("MaxAuthTries {v:?} is not a number"))?
            .into();
        Ok((
            rules.grade("ssh_max_auth_tries", n, 5.0, 11.0),
            n,
            format!("MaxAuthTries {v}"),
        ))
    })
}

/// AllowUsers / AllowGroups limit who may log in at all; without them any account with a key or
/// password can.
pub(super) fn allow_users(sshd: &SshdSettings) -> Finding {
    per_listener("ssh_allow_users", sshd, |l| {
        let users = l.get(&l.allow_users, "");
        let groups = l.get(&l.allow_groups, "");
        let named = |v: &Result<&str, String>| v.as_ref().is_ok_and(|v| !v.is_empty());
        let count = |v: &Result<&str, String>| {
            v.as_ref().map_or(0, |v| v.split_whitespace().count()) as f64
        };
        if named(&users) || named(&groups) {
            let mut parts = Vec::new();
            for (key, v) in [("AllowUsers", &users), ("AllowGroups", &groups)] {
                if let Some(v) = v.as_ref().ok().filter(|v| !v.is_empty()) {
                    let shown: Vec<&str> = v.split_whitespace().take(5).collect();
                    parts.push(format!("{key} {}", shown.join(" ")));
                }
            }
            return Ok((
                CheckStatus::Pass,
                count(&users) + count(&groups),
                parts.join(", "),
            ));
        }
        users?;
        groups?;
        Ok((
            CheckStatus::Warn,
            0.0,
            "no AllowUsers or AllowGroups: any account with a key or password may log in".into(),
        ))
    })
}
