//! Network exposure: packet filter, intrusion prevention, public listeners.

use super::{count, finding, unknown, CheckStatus, Finding, Rules};
use crate::audit::sections::Sections;
use crate::audit::sshd::SshdSettings;

pub(super) fn firewall(s: &Sections<'_>) -> Finding {
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

pub(super) fn intrusion_prevention(
    s: &Sections<'_>,
    procs: &[&str],
    sshd_ports: &[u16],
) -> Finding {
    if !s.has("procs") {
        return unknown("intrusion_prevention", "process list not available");
    }
    let running: Vec<&str> = procs
        .iter()
        .copied()
        .filter(|p| *p == "fail2ban-server" || *p == "crowdsec")
        .collect();
    if running == ["fail2ban-server"] {
        // A jail banning port 22 does nothing for an sshd on 2222.
        let ports = if sshd_ports.is_empty() {
            Err("sshd's ports are unknown".to_string())
        } else {
            jail_ports(s).map(|jail| {
                sshd_ports
                    .iter()
                    .filter(|p| !jail.iter().any(|(lo, hi)| (*lo..=*hi).contains(*p)))
                    .map(u16::to_string)
                    .collect::<Vec<_>>()
            })
        };
        return match (s.value("fail2ban", "sshd_jail"), ports) {
            (Some("missing"), _) => finding(
                "intrusion_prevention",
                CheckStatus::Warn,
                Some(0.0),
                "fail2ban runs without an sshd jail",
            ),
            (_, Ok(outside)) if !outside.is_empty() => finding(
                "intrusion_prevention",
                CheckStatus::Warn,
                Some(0.0),
                format!(
                    "fail2ban's sshd jail does not ban on sshd's port {} (its [sshd] port setting)",
                    outside.join(", ")
                ),
            ),
            (Some("active"), Ok(_)) => finding(
                "intrusion_prevention",
                CheckStatus::Pass,
                Some(1.0),
                "fail2ban's sshd jail is active on sshd's ports",
            ),
            (Some("active"), Err(why)) => unknown(
                "intrusion_prevention",
                &format!("fail2ban's sshd jail is active, but {why}"),
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

/// The ports fail2ban's sshd jail bans, as port ranges: the last `port` line of its `[sshd]`
/// section in the files the script read (`ssh` and the other names in jail.conf are services).
fn jail_ports(s: &Sections<'_>) -> Result<Vec<(u16, u16)>, String> {
    let text = s.get("fail2ban").unwrap_or("");
    if let Some(file) = text
        .lines()
        .find_map(|l| l.strip_prefix("jail_unreadable "))
    {
        return Err(format!(
            "{} is not readable by the audit user: the sshd jail's ports are unknown",
            file.trim()
        ));
    }
    let Some(line) = text
        .lines()
        .filter_map(|l| l.strip_prefix("jail_port "))
        .next_back()
    else {
        return Err("no port setting found for fail2ban's sshd jail".into());
    };
    // "jail_port FILE VALUE": file names hold no spaces (the glob's own names).
    let value = line.split_once(' ').map_or("", |x| x.1);
    // fail2ban reads `#` and `;` after the value as an inline comment.
    let value = value.split(['#', ';']).next().unwrap_or("");
    let mut out = Vec::new();
    for item in value
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|x| !x.is_empty())
        .take(64)
    {
        let port = |x: &str| match x {
            "ssh" => Some(22),
            _ => x.parse::<u16>().ok(),
        };
        let range = match item.split_once(':') {
            Some((lo, hi)) => port(lo).zip(port(hi)),
            None => port(item).map(|p| (p, p)),
        };
        match range {
            Some(r) => out.push(r),
            None => return Err(format!("fail2ban's sshd jail port {item:?} is not a port")),
        }
    }
    Ok(out)
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

pub(super) fn public_ports(s: &Sections<'_>, sshd: &SshdSettings, rules: &Rules<'_>) -> Finding {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fail2ban_passes_only_with_an_active_sshd_jail() {
        let ip = |jail: &str| {
            let out = format!(
                "==siembox:procs==\nfail2ban-server\n==siembox:fail2ban==\n{jail}==siembox:end==\n"
            );
            intrusion_prevention(&Sections::parse(&out), &["fail2ban-server"], &[22]).status
        };
        let conf = "jail_port /etc/fail2ban/jail.conf ssh\n";
        assert_eq!(ip(&format!("sshd_jail=active\n{conf}")), CheckStatus::Pass);
        assert_eq!(
            ip("sshd_jail=active\n"),
            CheckStatus::Unknown,
            "no port setting read"
        );
        assert_eq!(ip("sshd_jail=missing\n"), CheckStatus::Warn);
        assert_eq!(ip("sshd_jail=denied\n"), CheckStatus::Unknown);
        assert_eq!(ip(""), CheckStatus::Unknown);
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

    #[test]
    fn fail2ban_jail_ports_follow_the_last_setting() {
        let ip = |body: &str, sshd: &[u16]| {
            let out = format!(
                "==siembox:procs==\nfail2ban-server\n==siembox:fail2ban==\nsshd_jail=active\n{body}==siembox:end==\n"
            );
            intrusion_prevention(&Sections::parse(&out), &["fail2ban-server"], sshd).status
        };
        let conf = "jail_port /etc/fail2ban/jail.conf ssh\n";
        assert_eq!(ip(conf, &[2222]), CheckStatus::Warn);
        assert_eq!(
            ip(
                &format!("{conf}jail_port /etc/fail2ban/jail.local ssh,2222\n"),
                &[22, 2222]
            ),
            CheckStatus::Pass
        );
        assert_eq!(
            ip(
                &format!("{conf}jail_port /etc/fail2ban/jail.d/ssh.local 2000:3000\n"),
                &[2222]
            ),
            CheckStatus::Pass
        );
        assert_eq!(
            ip(
                &format!("{conf}jail_unreadable /etc/fail2ban/jail.local\n"),
                &[22]
            ),
            CheckStatus::Unknown
        );
        assert_eq!(
            ip("jail_port /etc/fail2ban/jail.local %(sshd_port)s\n", &[22]),
            CheckStatus::Unknown
        );
        assert_eq!(ip(conf, &[]), CheckStatus::Unknown, "sshd's ports unknown");
        assert_eq!(
            ip("jail_port /etc/fail2ban/jail.local 2222 # moved\n", &[2222]),
            CheckStatus::Pass
        );
    }
}
