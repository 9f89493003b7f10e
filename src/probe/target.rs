//! Cheap checks of a `/probe` target before any work: a malformed target is the caller's
//! mistake (HTTP 400), not a failed probe.

use crate::config::{Config, ProberKind};

/// The longest target accepted; URLs longer than this are not monitoring targets.
pub const MAX_TARGET_LEN: usize = 2048;

pub fn check(config: &Config, kind: ProberKind, target: &str) -> Result<(), String> {
    // The parsers' messages quote the target: never with the credentials it may hold.
    check_unredacted(config, kind, target).map_err(|e| e.replace(target, &redacted(target)))
}

fn check_unredacted(config: &Config, kind: ProberKind, target: &str) -> Result<(), String> {
    if target.len() > MAX_TARGET_LEN {
        return Err(format!("longer than {MAX_TARGET_LEN} bytes"));
    }
    if target.chars().any(|c| c.is_control() || c == ' ') {
        return Err("contains spaces or control characters".into());
    }
    match kind {
        ProberKind::Tcp | ProberKind::Ssh => super::resolve::split_host_port(target).map(|_| ()),
        ProberKind::Http => super::http::parse_target(target).map(|_| ()),
        ProberKind::Websocket => super::websocket::parse_target(target).map(|_| ()),
        // Credentials only ever go to servers named in the config: anything else is refused
        // before a connection is made.
        ProberKind::SshAudit => {
            if config.servers.iter().any(|s| s.name == target) {
                Ok(())
            } else {
                Err("not a configured server name (ssh_audit audits only servers listed under `servers:`)".into())
            }
        }
        ProberKind::Unix if target.is_empty() => Err("no unix socket path".into()),
        _ => Ok(()),
    }
}

/// The host the prober of `kind` will resolve for `target`, read by that prober's own parser,
/// and for http the URL it will request: what the allow-list judges. `None` when the prober
/// refuses the target anyway.
pub fn endpoint(kind: ProberKind, target: &str) -> Option<(String, Option<url::Url>)> {
    use super::{db, dns, grpc, http, resolve, websocket};
    let host = match kind {
        ProberKind::Http => {
            let url = http::parse_target(target).ok()?;
            return Some((url.host_str()?.to_string(), Some(url)));
        }
        ProberKind::Websocket => {
            let url = websocket::parse_target(target).ok()?;
            return Some((url.host_str()?.to_string(), Some(url)));
        }
        ProberKind::Tcp | ProberKind::Ssh => resolve::split_host_port(target).ok()?.0.to_string(),
        ProberKind::Dns => dns::split_target(target, 53).ok()?.0.to_string(),
        ProberKind::Grpc => grpc::split_target(target, false).ok()?.0.to_string(),
        ProberKind::Postgres | ProberKind::Mysql | ProberKind::Redis | ProberKind::Mongodb => {
            db::parse_target(kind, target).ok()?.host
        }
        ProberKind::Icmp | ProberKind::SshAudit | ProberKind::Unix => target.to_string(),
    };
    Some((host, None))
}

/// The target for a log line: userinfo (`user:password@`) replaced, so a credential pasted into
/// a target never reaches the logs.
pub fn redacted(target: &str) -> std::borrow::Cow<'_, str> {
    let Some(at) = target.rfind('@') else {
        return std::borrow::Cow::Borrowed(target);
    };
    let start = target.find("://").map_or(0, |i| i + 3);
    if start > at {
        return std::borrow::Cow::Borrowed(target);
    }
    std::borrow::Cow::Owned(format!(
        "{}<credentials>@{}",
        &target[..start],
        &target[at + 1..]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_userinfo_for_logs() {
        assert_eq!(
            redacted("postgres://u:pw@db:5432/x"),
            "postgres://<credentials>@db:5432/x"
        );
        assert_eq!(redacted("u:pw@db:6379"), "<credentials>@db:6379");
        assert_eq!(redacted("db:5432"), "db:5432");
    }

    #[test]
    fn rejects_malformed_targets() {
        let cfg = Config::default();
        assert!(check(&cfg, ProberKind::Tcp, "localhost").is_err());
        assert!(check(&cfg, ProberKind::Tcp, "localhost:22").is_ok());
        assert!(check(&cfg, ProberKind::Http, "ftp://x").is_err());
        assert!(check(&cfg, ProberKind::Http, "example.org/path").is_ok());
        assert!(check(&cfg, ProberKind::Http, "http://a b").is_err());
        assert!(check(&cfg, ProberKind::Icmp, &"a".repeat(3000)).is_err());
    }

    #[test]
    fn ssh_audit_accepts_only_configured_server_names() {
        let cfg = Config::from_yaml_str(
            "servers:\n  - {name: web-1, address: 127.0.0.1:22}\n",
            "<test>",
        )
        .unwrap();
        assert!(check(&cfg, ProberKind::SshAudit, "web-1").is_ok());
        assert!(check(&cfg, ProberKind::SshAudit, "127.0.0.1:22").is_err());
        assert!(check(&cfg, ProberKind::SshAudit, "web-2").is_err());
    }
}
