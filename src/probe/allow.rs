//! The `/probe` target allow-list (off unless configured): host wildcards, URL wildcards and CIDR
//! ranges. A target passes when its name matches a host or URL pattern, or when the address the
//! prober is about to use lies in an allowed range. The address check runs inside
//! `resolve_target`, on the very address that is then probed, so DNS rebinding cannot slip an
//! internal address past a check done on an earlier lookup.

use crate::config::AllowPattern;
use ipnet::IpNet;
use std::net::IpAddr;
use std::sync::Arc;
use wildmatch::WildMatch;

/// What a probe may reach, decided before it starts.
#[derive(Clone, Debug)]
pub enum Access {
    /// No allow-list applies.
    Unrestricted,
    /// The name matched a host or URL pattern.
    NameAllowed,
    /// Only addresses inside these ranges may be probed.
    AddressesIn(Arc<Vec<IpNet>>),
    /// Nothing in the list can match this target.
    Denied,
}

/// Decides access for `target` from the patterns that apply (module's, else global).
pub fn decide(patterns: &[AllowPattern], target: &str) -> Access {
    if patterns.is_empty() {
        return Access::Unrestricted;
    }
    let host = target_host(target).to_ascii_lowercase();
    let name_ok = patterns.iter().any(|p| match p {
        AllowPattern::Host(h) => WildMatch::new(h).matches(&host),
        AllowPattern::Url(u) => target.contains("://") && WildMatch::new(u).matches(target),
        AllowPattern::Network(_) => false,
    });
    if name_ok {
        return Access::NameAllowed;
    }
    let nets: Vec<IpNet> = patterns
        .iter()
        .filter_map(|p| match p {
            AllowPattern::Network(n) => Some(*n),
            _ => None,
        })
        .collect();
    if nets.is_empty() {
        return Access::Denied;
    }
    // An IP literal can be decided now, before any work.
    if let Ok(ip) = host.parse::<IpAddr>() {
        return if nets.iter().any(|n| n.contains(&ip)) {
            Access::NameAllowed
        } else {
            Access::Denied
        };
    }
    Access::AddressesIn(Arc::new(nets))
}

impl Access {
    /// Whether `ip`, about to be probed, is allowed.
    pub fn allows_address(&self, ip: IpAddr) -> bool {
        match self {
            Access::Unrestricted | Access::NameAllowed => true,
            Access::AddressesIn(nets) => nets.iter().any(|n| n.contains(&ip)),
            Access::Denied => false,
        }
    }
}

tokio::task_local! {
    /// The access decision of the probe running on this task; `resolve_target` enforces it so
    /// that no prober can forget the check.
    pub static ACCESS: Access;
}

/// The access decision in force for the current probe (unrestricted outside a probe).
pub fn current() -> Access {
    ACCESS
        .try_with(Clone::clone)
        .unwrap_or(Access::Unrestricted)
}

/// The host part of a target in any of the probers' forms: URL, `host:port`, `[v6]:port`, `host`.
pub fn target_host(target: &str) -> &str {
    let rest = match target.split_once("://") {
        Some((_, r)) => r,
        None => target,
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if let Some(v6) = authority.strip_prefix('[') {
        return v6.split(']').next().unwrap_or(v6);
    }
    match authority.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') && p.chars().all(|c| c.is_ascii_digit()) => h,
        _ => authority,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::config::AllowPattern;

    fn list(items: &[&str]) -> Vec<AllowPattern> {
        items
            .iter()
            .map(|s| AllowPattern::parse(s).unwrap())
            .collect()
    }

    #[test]
    fn extracts_hosts_from_every_target_form() {
        assert_eq!(
            target_host("https://user:pw@Example.org:8443/x?y"),
            "Example.org"
        );
        assert_eq!(target_host("db.internal:5432"), "db.internal");
        assert_eq!(target_host("[::1]:22"), "::1");
        assert_eq!(target_host("10.1.2.3"), "10.1.2.3");
        assert_eq!(target_host("::1"), "::1");
        assert_eq!(target_host("example.org/path"), "example.org");
    }

    #[test]
    fn names_urls_and_networks() {
        let l = list(&[
            "10.0.0.0/8",
            "*.example.org",
            "https://status.example.net/*",
        ]);
        assert!(matches!(
            decide(&l, "https://www.example.org/"),
            Access::NameAllowed
        ));
        assert!(matches!(
            decide(&l, "https://status.example.net/health"),
            Access::NameAllowed
        ));
        assert!(matches!(
            decide(&l, "http://status.example.net/health"),
            Access::AddressesIn(_)
        ));
        assert!(matches!(decide(&l, "10.2.3.4:22"), Access::NameAllowed));
        assert!(matches!(decide(&l, "192.168.1.1:22"), Access::Denied));
        let a = decide(&l, "intranet.corp:80");
        assert!(a.allows_address("10.9.9.9".parse().unwrap()));
        assert!(!a.allows_address("127.0.0.1".parse().unwrap()));
        assert!(matches!(
            decide(&list(&["*.example.org"]), "evil.com:80"),
            Access::Denied
        ));
        assert!(matches!(decide(&[], "anything"), Access::Unrestricted));
    }

    #[test]
    fn rejects_malformed_patterns() {
        assert!(AllowPattern::parse("10.0.0.0/33").is_err());
        assert!(AllowPattern::parse("a b").is_err());
        assert!(AllowPattern::parse("").is_err());
    }
}
