//! Target name resolution through one caching resolver (hickory, honours TTLs), with blackbox's
//! address-family choice and its `probe_ip_protocol`, `probe_ip_addr_hash`, lookup-time metrics.

use super::recorder::{FailureReason, ProbeRecorder};
use crate::config::IpProtocol;
use hickory_resolver::config::{ResolveHosts, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::op::Query;
use hickory_resolver::proto::rr::{Name, RData, RecordType};
use hickory_resolver::{Hosts, TokioResolver};
use std::net::IpAddr;
use std::time::Instant;

/// The process-wide caching resolver.
#[derive(Clone)]
pub struct Resolver {
    inner: TokioResolver,
    hosts: std::sync::Arc<Hosts>,
}

impl Resolver {
    /// Uses the system's resolv.conf and hosts file; falls back to an empty config (hosts file only)
    /// where the system has none, so the exporter still starts.
    pub fn from_system() -> Self {
        let builder = TokioResolver::builder_tokio().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot read the system resolver config; only /etc/hosts and IP literals will resolve");
            TokioResolver::builder_with_config(ResolverConfig::default(), TokioRuntimeProvider::default())
        });
        let mut opts = ResolverOpts::default();
        opts.use_hosts_file = ResolveHosts::Always;
        opts.cache_size = 4096;
        let inner = builder
            .with_options(opts)
            .build()
            .expect("resolver builds from a valid config");
        let hosts = Hosts::from_system().unwrap_or_default();
        Resolver {
            inner,
            hosts: std::sync::Arc::new(hosts),
        }
    }

    /// A name listed in the hosts file resolves to its entries there only, as in Go's and glibc's
    /// resolvers (hickory would otherwise answer `::1` for `localhost` where the file lists only
    /// 127.0.0.1, and probes would disagree with blackbox_exporter).
    fn lookup_hosts_file(&self, host: &str) -> Option<Vec<IpAddr>> {
        let name = Name::from_str_relaxed(host).ok()?;
        let mut found = None::<Vec<IpAddr>>;
        for rtype in [RecordType::AAAA, RecordType::A] {
            let query = Query::query(name.clone(), rtype);
            if let Some(lookup) = self.hosts.lookup_static_host(&query) {
                let list = found.get_or_insert_with(Vec::new);
                list.extend(lookup.answers().iter().filter_map(|r| match &r.data {
                    RData::A(a) => Some(IpAddr::V4(a.0)),
                    RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                    _ => None,
                }));
            }
        }
        found
    }

    /// All addresses of `host`, in the resolver's order.
    pub async fn lookup(&self, host: &str) -> Result<Vec<IpAddr>, String> {
        if let Some(addrs) = self.lookup_hosts_file(host) {
            return Ok(addrs);
        }
        self.inner
            .lookup_ip(host)
            .await
            .map(|l| l.iter().collect())
            .map_err(|e| e.to_string())
    }
}

/// Strips the brackets of an IPv6 literal host (`[::1]` → `::1`).
pub fn bare_host(host: &str) -> &str {
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

/// Resolves `host` the blackbox way: the preferred family first, the other if `fallback`.
/// Records `probe_dns_lookup_time_seconds`, `probe_ip_protocol` and `probe_ip_addr_hash`.
pub async fn resolve_target(
    resolver: &Resolver,
    host: &str,
    preferred: IpProtocol,
    fallback: bool,
    rec: &mut ProbeRecorder,
) -> Option<IpAddr> {
    let host = bare_host(host);
    let start = Instant::now();
    let result = match host.parse::<IpAddr>() {
        Ok(ip) => Ok(vec![ip]),
        Err(_) => resolver.lookup(host).await,
    };
    rec.gauge(
        "probe_dns_lookup_time_seconds",
        "Returns the time taken for probe dns lookup in seconds",
        start.elapsed().as_secs_f64(),
    );
    // blackbox registers both before resolving, so a failed resolution shows them at 0.
    rec.gauge(
        "probe_ip_protocol",
        "Specifies whether probe ip protocol is IP4 or IP6",
        0.0,
    );
    rec.gauge("probe_ip_addr_hash", IP_HASH_HELP, 0.0);
    let addrs = match result {
        Ok(a) => a,
        Err(e) => {
            rec.fail(
                FailureReason::Dns,
                format!("Resolution with IP protocol failed: {e}"),
            );
            return None;
        }
    };
    let wants_v6 = preferred == IpProtocol::Ip6;
    let chosen = addrs
        .iter()
        .find(|a| a.is_ipv6() == wants_v6)
        .or_else(|| if fallback { addrs.first() } else { None })
        .copied();
    match chosen {
        Some(ip) if !super::allow::current().allows(host, ip) => {
            rec.fail(
                FailureReason::Denied,
                format!("{host} resolves to {ip}, which the target allow-list does not allow"),
            );
            None
        }
        Some(ip) => {
            rec.gauge(
                "probe_ip_protocol",
                "Specifies whether probe ip protocol is IP4 or IP6",
                if ip.is_ipv6() { 6.0 } else { 4.0 },
            );
            rec.gauge("probe_ip_addr_hash", IP_HASH_HELP, ip_hash(ip));
            rec.debug(format!("Resolved target address {ip} for {host}"));
            Some(ip)
        }
        None => {
            let family = if wants_v6 { "ip6" } else { "ip4" };
            rec.fail(
                FailureReason::Dns,
                format!("no {family} address for {host} and fallback is off"),
            );
            None
        }
    }
}

const IP_HASH_HELP: &str =
    "Specifies the hash of IP address. It's useful to detect if the IP address changes.";

/// FNV-1a 32-bit of the address octets (4 for IPv4, 16 for IPv6), as blackbox computes
/// `probe_ip_addr_hash` (checked against blackbox 0.23: 127.0.0.1 → 3668918509, ::1 → 1751717746).
pub fn ip_hash(ip: IpAddr) -> f64 {
    let octets: Vec<u8> = match ip {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    };
    let mut h: u32 = 0x811c_9dc5;
    for b in octets {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    f64::from(h)
}

/// Splits `host:port` (with `[v6]:port`); the port is required.
pub fn split_host_port(target: &str) -> Result<(&str, u16), String> {
    let (host, port) = target
        .rsplit_once(':')
        .ok_or_else(|| format!("target {target:?} has no port (expected host:port)"))?;
    if host.contains(':') && !host.starts_with('[') {
        return Err(format!(
            "IPv6 target {target:?} needs brackets, as in [::1]:80"
        ));
    }
    let port: u16 = port
        .parse()
        .map_err(|_| format!("target {target:?} has an invalid port"))?;
    if host.is_empty() {
        return Err(format!("target {target:?} has no host"));
    }
    Ok((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_host_and_port() {
        assert_eq!(
            split_host_port("example.org:443").unwrap(),
            ("example.org", 443)
        );
        assert_eq!(split_host_port("[::1]:22").unwrap(), ("[::1]", 22));
        assert!(split_host_port("example.org").is_err());
        assert!(split_host_port("::1:22").is_err());
        assert!(split_host_port(":80").is_err());
        assert!(split_host_port("h:99999").is_err());
    }

    #[test]
    fn ip_hash_is_fnv1a_of_the_octets_like_blackbox() {
        // The values blackbox_exporter 0.23 reports for these addresses.
        assert_eq!(ip_hash("127.0.0.1".parse().unwrap()), 3668918509.0);
        assert_eq!(ip_hash("::1".parse().unwrap()), 1751717746.0);
    }

    #[tokio::test]
    async fn ip_literal_needs_no_lookup_and_respects_fallback() {
        let r = Resolver::from_system();
        let mut rec = ProbeRecorder::new();
        let ip = resolve_target(&r, "127.0.0.1", IpProtocol::Ip6, true, &mut rec).await;
        assert_eq!(ip, Some("127.0.0.1".parse().unwrap()));
        assert_eq!(rec.value("probe_ip_protocol"), Some(4.0));
        let mut rec = ProbeRecorder::new();
        assert_eq!(
            resolve_target(&r, "127.0.0.1", IpProtocol::Ip6, false, &mut rec).await,
            None
        );
        assert_eq!(rec.failure(), Some(FailureReason::Dns));
    }
}
