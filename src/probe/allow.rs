//! The `/probe` target allow-list (off unless configured): host wildcards, URL wildcards and CIDR
//! ranges. A target passes when the host its prober resolves matches a host pattern, when the URL
//! it requests matches a URL pattern, or when the address the prober is about to connect to lies
//! in an allowed range. Names and URLs are taken from the prober's own parse of the target (see
//! `target::endpoint`), never from a second reading of the text, and the decision is enforced
//! inside `resolve_target` on the very host and address then probed: a host other than the one
//! approved by name is checked by address, so no parser disagreement can widen the list.

use crate::config::{AllowPattern, UrlPattern};
use ipnet::IpNet;
use std::net::IpAddr;
use std::sync::Arc;
use url::Url;

/// What a probe (or one redirect hop of it) may reach.
#[derive(Clone, Debug)]
pub enum Access {
    /// No allow-list applies.
    Unrestricted,
    /// `approved_host` (normalised) matched a host or URL pattern: any of its addresses may be
    /// probed. Any other host is allowed only at an address inside `nets`.
    Restricted {
        approved_host: Option<String>,
        nets: Arc<Vec<IpNet>>,
    },
    /// Nothing in the list can match this target.
    Denied,
}

/// Decides access for a prober that will resolve `host` (and, for http, request `url`) from
/// the patterns that apply (module's, else global).
pub fn decide(patterns: &[AllowPattern], host: &str, url: Option<&Url>) -> Access {
    if patterns.is_empty() {
        return Access::Unrestricted;
    }
    let host = normalize_host(host);
    let nets: Vec<IpNet> = patterns
        .iter()
        .filter_map(|p| match p {
            AllowPattern::Network(n) => Some(*n),
            _ => None,
        })
        .collect();
    let name_ok = patterns.iter().any(|p| match p {
        AllowPattern::Host(h) => is_plain_host(&host) && glob(h, &host, None, true),
        AllowPattern::Url(u) => url.is_some_and(|url| url_matches(u, url)),
        AllowPattern::Network(_) | AllowPattern::UnixPath(_) => false,
    });
    // An IP literal can be decided now, before any work.
    let literal_ok = host.parse::<IpAddr>().ok().map(|ip| in_nets(&nets, ip));
    match (name_ok, literal_ok) {
        (true, _) | (false, Some(true)) => Access::Restricted {
            approved_host: Some(host),
            nets: Arc::new(nets),
        },
        (false, Some(false)) => Access::Denied,
        (false, None) if nets.is_empty() => Access::Denied,
        (false, None) => Access::Restricted {
            approved_host: None,
            nets: Arc::new(nets),
        },
    }
}

/// Decides access for the unix prober to the socket at `path`: allowed when no allow-list
/// applies or a `unix:` pattern matches it. A path that is not absolute or walks up (`..`,
/// `.`, `//`) is judged by no pattern, so `unix:/run/app/*` cannot reach outside /run/app.
pub fn decide_unix(patterns: &[AllowPattern], path: &str) -> Access {
    if patterns.is_empty() {
        return Access::Unrestricted;
    }
    let clean = path.starts_with('/')
        && path
            .split('/')
            .skip(1)
            .all(|part| !part.is_empty() && part != "." && part != "..");
    let matched = clean
        && patterns.iter().any(|p| match p {
            AllowPattern::UnixPath(pattern) => glob(pattern, path, Some(b'/'), true),
            _ => false,
        });
    if matched {
        // Nothing is resolved or dialled by address on this path.
        Access::Unrestricted
    } else {
        Access::Denied
    }
}

impl Access {
    /// Whether `ip`, the address of `host` about to be probed, is allowed.
    pub fn allows(&self, host: &str, ip: IpAddr) -> bool {
        match self {
            Access::Unrestricted => true,
            Access::Denied => false,
            Access::Restricted {
                approved_host,
                nets,
            } => {
                approved_host.as_deref() == Some(normalize_host(host).as_str()) || in_nets(nets, ip)
            }
        }
    }

    /// Whether `host` may be handed to someone else to resolve (a proxy), its address unseen:
    /// only when the name itself was approved.
    pub fn allows_unresolved(&self, host: &str) -> bool {
        match self {
            Access::Unrestricted => true,
            Access::Denied => false,
            Access::Restricted { approved_host, .. } => {
                approved_host.as_deref() == Some(normalize_host(host).as_str())
            }
        }
    }
}

/// An IPv4-mapped IPv6 address (`::ffff:10.0.0.1`) is checked as the IPv4 address it reaches.
fn in_nets(nets: &[IpNet], ip: IpAddr) -> bool {
    let ip = ip.to_canonical();
    nets.iter().any(|n| n.contains(&ip))
}

/// Lower-case, without IPv6 brackets; an IP literal in its canonical text.
fn normalize_host(host: &str) -> String {
    let bare = super::resolve::bare_host(host);
    match bare.parse::<IpAddr>() {
        Ok(ip) => ip.to_canonical().to_string(),
        Err(_) => bare.to_ascii_lowercase(),
    }
}

/// Host patterns judge only ordinary DNS names: a name with escapes (`a\.example.org`) or other
/// characters a resolver may read differently is left to the address check.
fn is_plain_host(host: &str) -> bool {
    !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_')
}

/// Each part of the pattern against the same part of the URL the prober requests.
fn url_matches(p: &UrlPattern, url: &Url) -> bool {
    let default_port = match p.scheme.as_str() {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    };
    let path = &url[url::Position::BeforePath..url::Position::AfterQuery];
    url.scheme() == p.scheme
        && glob(&p.host, url.host_str().unwrap_or_default(), None, true)
        && url.port_or_known_default() == p.port.or(default_port)
        && glob(&p.path, path, Some(b'/'), false)
}

/// Wildcard match of the whole `text`: `*` matches any run of bytes without `stop`, `**` any
/// run at all, `?` (when `question` is a wildcard) one byte other than `stop`. Linear in
/// pattern × text, whatever the pattern.
fn glob(pattern: &str, text: &str, stop: Option<u8>, question: bool) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let not_stop = |b: u8| Some(b) != stop;
    // reach[j]: the pattern so far can consume exactly text[..j].
    let mut reach = vec![false; t.len() + 1];
    reach[0] = true;
    let mut i = 0;
    while i < p.len() {
        let mut next = vec![false; t.len() + 1];
        if p[i] == b'*' {
            let crosses = p.get(i + 1) == Some(&b'*');
            next[0] = reach[0];
            for j in 1..=t.len() {
                next[j] = reach[j] || (next[j - 1] && (crosses || not_stop(t[j - 1])));
            }
            i += if crosses { 2 } else { 1 };
        } else {
            for j in 0..t.len() {
                let ok = if p[i] == b'?' && question {
                    not_stop(t[j])
                } else {
                    t[j] == p[i]
                };
                next[j + 1] = reach[j] && ok;
            }
            i += 1;
        }
        reach = next;
    }
    reach[t.len()]
}

tokio::task_local! {
    /// The access decision of the probe (or redirect hop) running on this task;
    /// `resolve_target` enforces it so that no prober can forget the check.
    pub static ACCESS: Access;
}

/// The access decision in force for the current probe (unrestricted outside a probe).
pub fn current() -> Access {
    ACCESS
        .try_with(Clone::clone)
        .unwrap_or(Access::Unrestricted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(items: &[&str]) -> Vec<AllowPattern> {
        items
            .iter()
            .map(|s| AllowPattern::parse(s).unwrap())
            .collect()
    }

    fn decide_url(l: &[AllowPattern], target: &str) -> Access {
        let url = Url::parse(target).unwrap();
        decide(l, url.host_str().unwrap(), Some(&url))
    }

    fn approved(a: &Access) -> Option<&str> {
        match a {
            Access::Restricted { approved_host, .. } => approved_host.as_deref(),
            _ => None,
        }
    }

    #[test]
    fn names_urls_and_networks() {
        let l = list(&[
            "10.0.0.0/8",
            "*.example.org",
            "https://status.example.net/*",
        ]);
        assert_eq!(
            approved(&decide_url(&l, "https://www.example.org/")),
            Some("www.example.org")
        );
        assert_eq!(
            approved(&decide_url(&l, "https://status.example.net/health")),
            Some("status.example.net")
        );
        // Another scheme, so another port: only the ranges can allow it.
        let a = decide_url(&l, "http://status.example.net/health");
        assert_eq!(approved(&a), None);
        assert!(matches!(a, Access::Restricted { .. }));
        assert_eq!(approved(&decide(&l, "10.2.3.4", None)), Some("10.2.3.4"));
        assert!(matches!(decide(&l, "192.168.1.1", None), Access::Denied));
        let a = decide(&l, "intranet.corp", None);
        assert!(a.allows("intranet.corp", "10.9.9.9".parse().unwrap()));
        assert!(!a.allows("intranet.corp", "127.0.0.1".parse().unwrap()));
        assert!(!a.allows_unresolved("intranet.corp"));
        assert!(matches!(
            decide(&list(&["*.example.org"]), "evil.com", None),
            Access::Denied
        ));
        assert!(matches!(
            decide(&[], "anything", None),
            Access::Unrestricted
        ));
    }

    #[test]
    fn a_name_approval_covers_that_host_only() {
        let l = list(&["*.example.org", "10.0.0.0/8"]);
        let a = decide(&l, "WWW.Example.org", None);
        assert!(a.allows("www.example.org", "127.0.0.1".parse().unwrap()));
        assert!(a.allows_unresolved("www.example.org"));
        // A host the prober resolves that is not the approved one falls back to the ranges.
        assert!(!a.allows("evil.test", "127.0.0.1".parse().unwrap()));
        assert!(a.allows("evil.test", "10.0.0.1".parse().unwrap()));
        assert!(!a.allows_unresolved("evil.test"));
    }

    #[test]
    fn host_patterns_ignore_names_a_resolver_could_read_differently() {
        let l = list(&["*.example.org"]);
        assert!(matches!(
            decide(&l, "a\\.example.org", None),
            Access::Denied
        ));
        assert!(matches!(
            decide(&l, "a@b.example.org", None),
            Access::Denied
        ));
        assert!(matches!(
            decide(&l, "evil.com%2f.example.org", None),
            Access::Denied
        ));
        assert!(matches!(
            decide(&l, "x.example.org.evil.com", None),
            Access::Denied
        ));
    }

    #[test]
    fn url_wildcards_stay_in_their_part() {
        let l = list(&["https://*.example.org/status/*"]);
        assert!(approved(&decide_url(&l, "https://a.example.org/status/ok")).is_some());
        assert!(approved(&decide_url(&l, "https://a.example.org/status/ok?x=1")).is_some());
        // `*` does not cross `/` …
        assert!(matches!(
            decide_url(&l, "https://a.example.org/status/a/b"),
            Access::Denied
        ));
        // … nor reach from the path back into the authority.
        for t in [
            "https://evil.com/.example.org/status/x",
            "https://evil.com/x.example.org/status/x",
            "https://evil.com?.example.org/status/x",
            "https://evil.com#.example.org/status/x",
            "https://a.example.org@evil.com/status/x",
            "https://a.example.org:444/status/x",
            "http://a.example.org/status/x",
        ] {
            assert!(matches!(decide_url(&l, t), Access::Denied), "{t}");
        }
        let deep = list(&["https://status.example.org/**"]);
        assert!(approved(&decide_url(&deep, "https://status.example.org/a/b/c")).is_some());
        assert!(matches!(
            decide_url(&deep, "https://status.example.org.evil.com/a"),
            Access::Denied
        ));
    }

    #[test]
    fn ipv4_mapped_ipv6_is_checked_as_ipv4() {
        let l = list(&["10.0.0.0/8"]);
        assert!(matches!(
            decide(&l, "[::ffff:127.0.0.1]", None),
            Access::Denied
        ));
        assert!(approved(&decide(&l, "::ffff:10.1.2.3", None)).is_some());
        let a = decide(&l, "name.test", None);
        assert!(!a.allows("name.test", "::ffff:127.0.0.1".parse().unwrap()));
        assert!(a.allows("name.test", "::ffff:10.0.0.1".parse().unwrap()));
    }

    #[test]
    fn unix_paths_match_only_unix_patterns_and_stay_in_their_directory() {
        let l = list(&["unix:/run/app/*.sock", "10.0.0.0/8", "*.example.org"]);
        let allowed = |p: &str| !matches!(decide_unix(&l, p), Access::Denied);
        assert!(allowed("/run/app/api.sock"));
        assert!(!allowed("/run/app/sub/api.sock"));
        assert!(!allowed("/run/app/../../etc/x.sock"));
        assert!(!allowed("/run/app//x.sock"));
        assert!(!allowed("run/app/api.sock"));
        assert!(!allowed("/run/other.sock"));
        // No allow-list: every path, as blackbox.
        assert!(allowed_without_list("/anything.sock"));
        // A list without unix patterns allows no socket.
        let hosts = list(&["*.example.org"]);
        assert!(matches!(
            decide_unix(&hosts, "/run/app/api.sock"),
            Access::Denied
        ));
        assert!(AllowPattern::parse("unix:run/x").is_err());
        assert!(AllowPattern::parse("unix:/run/../x").is_err());
    }

    fn allowed_without_list(p: &str) -> bool {
        matches!(decide_unix(&[], p), Access::Unrestricted)
    }

    #[test]
    fn glob_is_anchored_and_linear() {
        assert!(glob("a*c", "abbbc", None, true));
        assert!(!glob("a*c", "abbbcd", None, true));
        assert!(!glob("/*", "/a/b", Some(b'/'), false));
        assert!(glob("/**", "/a/b", Some(b'/'), false));
        assert!(!glob("/?", "/a", Some(b'/'), false));
        assert!(glob("/?", "/?", Some(b'/'), false));
        let many = "*a".repeat(200);
        assert!(!glob(&many, &"a".repeat(150), None, true));
    }

    #[test]
    fn rejects_malformed_patterns() {
        assert!(AllowPattern::parse("10.0.0.0/33").is_err());
        assert!(AllowPattern::parse("a b").is_err());
        assert!(AllowPattern::parse("").is_err());
        assert!(AllowPattern::parse("https://u@example.org/").is_err());
        assert!(AllowPattern::parse("https://example.org\\x/").is_err());
        assert!(AllowPattern::parse("https://example.org:x/").is_err());
        assert!(AllowPattern::parse("https:///x").is_err());
    }
}
