//! The prelude every network prober shares: split its target into host and port (each prober
//! with its own reading of the text), resolve the host the blackbox way, and dial TCP. Failures
//! are recorded on the probe with their reason; callers only see `None`.

use super::recorder::{FailureReason, ProbeRecorder};
use super::resolve::resolve_target;
use super::ProbeEnv;
use crate::config::IpProtocol;
use std::net::{IpAddr, SocketAddr};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpSocket, TcpStream};

/// Any byte stream a prober talks over: TCP, a unix socket, or TLS on either.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Where a probe goes: the host as the target names it (TLS server name, logs) and the address
/// chosen for it.
pub struct Endpoint<'t> {
    pub host: &'t str,
    pub addr: SocketAddr,
}

/// Splits `target` with the prober's `split`, then resolves its host with the module's address
/// family choice (`probe_ip_protocol`, `probe_dns_lookup_time_seconds`, allow-list check).
pub async fn resolve_endpoint<'t>(
    env: &ProbeEnv,
    target: &'t str,
    split: impl FnOnce(&'t str) -> Result<(&'t str, u16), String>,
    preferred: IpProtocol,
    fallback: bool,
    rec: &mut ProbeRecorder,
) -> Option<Endpoint<'t>> {
    let (host, port) = match split(target) {
        Ok(hp) => hp,
        Err(e) => {
            rec.fail(FailureReason::Config, e);
            return None;
        }
    };
    let ip = resolve_target(&env.resolver, host, preferred, fallback, rec).await?;
    Some(Endpoint {
        host,
        addr: SocketAddr::new(ip, port),
    })
}

/// Connects from `source` if given; records connection failures with their reason.
pub async fn dial_tcp(
    addr: SocketAddr,
    source: Option<&str>,
    rec: &mut ProbeRecorder,
) -> Option<TcpStream> {
    rec.debug(format!("Dialing TCP {addr}"));
    let result = match source {
        None => TcpStream::connect(addr).await,
        Some(src) => {
            let Ok(src_ip) = src.parse::<IpAddr>() else {
                rec.fail(
                    FailureReason::Config,
                    format!("source_ip_address {src:?} is not an IP address"),
                );
                return None;
            };
            let socket = if addr.is_ipv6() {
                TcpSocket::new_v6()
            } else {
                TcpSocket::new_v4()
            };
            match socket.and_then(|s| s.bind(SocketAddr::new(src_ip, 0)).map(|_| s)) {
                Ok(s) => s.connect(addr).await,
                Err(e) => Err(e),
            }
        }
    };
    match result {
        Ok(s) => {
            let _ = s.set_nodelay(true);
            rec.debug("Successfully dialed");
            Some(s)
        }
        Err(e) => {
            rec.fail(
                FailureReason::from_io(&e),
                format!("Error dialing target {addr}: {e}"),
            );
            None
        }
    }
}
