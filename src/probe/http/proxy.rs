//! `proxy_url` (or the environment's HTTP_PROXY/HTTPS_PROXY with `proxy_from_environment`),
//! `no_proxy` and `proxy_connect_header`. Plain HTTP goes to the proxy in absolute form; HTTPS
//! goes through a CONNECT tunnel.

use crate::config::HttpProbe;
use crate::probe::recorder::{FailureReason, ProbeRecorder};
use crate::probe::resolve::bare_host;
use crate::probe::ProbeEnv;
use base64::Engine as _;
use std::net::{IpAddr, SocketAddr};
use url::Url;

pub(super) struct Proxy {
    host: String,
    port: u16,
    /// `Proxy-Authorization` from the proxy URL's user info, if any.
    authorization: Option<String>,
    connect_headers: Vec<(String, String)>,
}

impl Proxy {
    /// The proxy for requests to `target`, if any.
    pub fn for_url(cfg: &HttpProbe, target: &Url) -> Result<Option<Proxy>, String> {
        let (raw, no_proxy) = if let Some(p) = cfg.proxy_url.as_deref().filter(|p| !p.is_empty()) {
            (p.to_string(), cfg.no_proxy.clone().unwrap_or_default())
        } else if cfg.proxy_from_environment {
            let names: &[&str] = if target.scheme() == "https" {
                &["HTTPS_PROXY", "https_proxy"]
            } else {
                &["HTTP_PROXY", "http_proxy"]
            };
            match env_any(names) {
                Some(p) => (p, env_any(&["NO_PROXY", "no_proxy"]).unwrap_or_default()),
                None => return Ok(None),
            }
        } else {
            return Ok(None);
        };
        let host = target.host_str().unwrap_or_default();
        if bypassed(&no_proxy, host) {
            return Ok(None);
        }
        let url = Url::parse(&raw).map_err(|_| "proxy_url is not a valid URL".to_string())?;
        if url.scheme() != "http" {
            return Err(format!(
                "proxy_url scheme {:?} is not supported (only http:// proxies)",
                url.scheme()
            ));
        }
        let proxy_host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or("proxy_url has no host")?
            .to_string();
        let authorization = (!url.username().is_empty()).then(|| {
            let user = percent_encoding::percent_decode_str(url.username()).decode_utf8_lossy();
            let pass = percent_encoding::percent_decode_str(url.password().unwrap_or(""))
                .decode_utf8_lossy();
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
            )
        });
        let mut connect_headers = Vec::new();
        for (name, values) in &cfg.proxy_connect_header {
            for v in values {
                connect_headers.push((name.clone(), v.expose().to_string()));
            }
        }
        if let Some(a) = &authorization {
            connect_headers.push(("Proxy-Authorization".into(), a.clone()));
        }
        Ok(Some(Proxy {
            host: proxy_host,
            port: url.port_or_known_default().unwrap_or(80),
            authorization,
            connect_headers,
        }))
    }

    pub fn connect_headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.connect_headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn authorization(&self) -> Option<&str> {
        self.authorization.as_deref()
    }

    /// The proxy's address, preferring the module's IP family.
    pub async fn socket_addr(
        &self,
        env: &ProbeEnv,
        cfg: &HttpProbe,
        rec: &mut ProbeRecorder,
    ) -> Option<SocketAddr> {
        let host = bare_host(&self.host);
        let addrs = match host.parse::<IpAddr>() {
            Ok(ip) => vec![ip],
            Err(_) => match env.resolver.lookup(host).await {
                Ok(a) => a,
                Err(e) => {
                    rec.fail(
                        FailureReason::Dns,
                        format!("cannot resolve proxy {host}: {e}"),
                    );
                    return None;
                }
            },
        };
        let wants_v6 = cfg.preferred_ip_protocol == crate::config::IpProtocol::Ip6;
        let ip = addrs
            .iter()
            .find(|a| a.is_ipv6() == wants_v6)
            .or(addrs.first())
            .copied();
        match ip {
            Some(ip) => Some(SocketAddr::new(ip, self.port)),
            None => {
                rec.fail(FailureReason::Dns, format!("proxy {host} has no address"));
                None
            }
        }
    }
}

fn env_any(names: &[&str]) -> Option<String> {
    names
        .iter()
        .find_map(|n| std::env::var(n).ok().filter(|v| !v.is_empty()))
}

/// `no_proxy`: comma-separated hosts; `*` matches all, `example.org` and `.example.org` also
/// match subdomains.
fn bypassed(no_proxy: &str, host: &str) -> bool {
    let host = bare_host(host).to_ascii_lowercase();
    no_proxy.split(',').map(str::trim).any(|entry| {
        if entry == "*" {
            return true;
        }
        let entry = entry.trim_start_matches('.').to_ascii_lowercase();
        !entry.is_empty()
            && (host == entry
                || host
                    .strip_suffix(&entry)
                    .is_some_and(|rest| rest.ends_with('.')))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_proxy_matches_hosts_and_subdomains() {
        assert!(bypassed("example.org", "example.org"));
        assert!(bypassed(" .example.org", "www.example.org"));
        assert!(!bypassed("example.org", "badexample.org"));
        assert!(bypassed("*", "anything"));
        assert!(!bypassed("", "anything"));
    }

    #[test]
    fn proxy_from_config_with_credentials() {
        let cfg = HttpProbe {
            proxy_url: Some("http://u:p%40ss@127.0.0.1:3128".into()),
            ..HttpProbe::default()
        };
        let target = Url::parse("https://example.org/").unwrap();
        let p = Proxy::for_url(&cfg, &target).unwrap().unwrap();
        assert_eq!((p.host.as_str(), p.port), ("127.0.0.1", 3128));
        // base64("u:p@ss")
        assert_eq!(p.authorization(), Some("Basic dTpwQHNz"));
        let socks = HttpProbe {
            proxy_url: Some("socks5://127.0.0.1:1080".into()),
            ..HttpProbe::default()
        };
        assert!(Proxy::for_url(&socks, &target).is_err());
    }
}
