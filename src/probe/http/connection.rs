//! One fresh connection per hop, timing each phase on the way: resolve, connect (TCP, and the
//! proxy's CONNECT tunnel), tls (handshake plus verification), then the hyper handshake over it;
//! or, with `enable_http3`, the QUIC connection of `quic`.

use super::phases::{add_phase, Phase};
use super::proxy::Proxy;
use super::quic;
use crate::config::HttpProbe;
use crate::probe::connect::{dial_tcp as connect, Io};
use crate::probe::recorder::{FailureReason, Family, ProbeRecorder};
use crate::probe::resolve::{bare_host, resolve_target};
use crate::probe::ProbeEnv;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::{Frame, Incoming};
use hyper::client::conn::{http1, http2};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use url::Url;

/// Where one hop goes and how it is named on the wire.
pub(super) struct Endpoint<'a> {
    pub url: &'a Url,
    pub port: u16,
    pub tls: bool,
    /// The name the TLS handshake verifies (a `tls_config.server_name` still wins).
    pub tls_name: &'a str,
    /// The first hop's lookup feeds `probe_ip_protocol` and friends; later hops only log.
    pub first: bool,
    /// Keys the cached TLS client: the OAuth2 token endpoint has its own `tls_config`.
    pub oauth2: bool,
}

/// A ready HTTP connection; the task driving it stops when this is dropped.
pub(super) struct Connection {
    sender: Sender,
    pub tls: bool,
    pub h2: bool,
    pub h3: bool,
    /// Plain HTTP through a proxy: requests go in absolute form.
    pub via_proxy: bool,
    /// The address requests name when they go through a proxy (resolved IP or host, and port).
    pub authority: String,
    /// TLS metrics of this connection's handshake, for the probe if this hop is the final one.
    pub tls_metrics: Vec<Family>,
    _driver: AbortOnDrop,
}

enum Sender {
    H1(http1::SendRequest<Full<Bytes>>),
    H2(http2::SendRequest<Full<Bytes>>),
    H3(quic::H3Sender),
}

/// A response body of any HTTP version, read by `body` alone whatever the version.
pub(super) enum ResponseBody {
    Hyper(Incoming),
    /// Boxed: an h3 stream is ten times the size of hyper's body.
    H3(Box<quic::ResponseStream>),
}

impl hyper::body::Body for ResponseBody {
    type Data = Bytes;
    /// The error as one line, with its cause.
    type Error = String;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, String>>> {
        match self.get_mut() {
            ResponseBody::Hyper(b) => Pin::new(b)
                .poll_frame(cx)
                .map(|f| f.map(|r| r.map_err(|e| describe(&e)))),
            ResponseBody::H3(s) => quic::poll_data(s, cx).map(|d| d.map(|r| r.map(Frame::data))),
        }
    }
}

struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Connection {
    /// Sends one request; the caller times it as the processing phase.
    pub async fn send(
        &mut self,
        req: Request<Full<Bytes>>,
    ) -> Result<Response<ResponseBody>, String> {
        let response = match &mut self.sender {
            Sender::H1(s) => {
                s.ready().await.map_err(|e| describe(&e))?;
                s.send_request(req).await.map_err(|e| describe(&e))?
            }
            Sender::H2(s) => {
                s.ready().await.map_err(|e| describe(&e))?;
                s.send_request(req).await.map_err(|e| describe(&e))?
            }
            Sender::H3(s) => return Ok(s.send(req).await?.map(|b| ResponseBody::H3(Box::new(b)))),
        };
        Ok(response.map(ResponseBody::Hyper))
    }

    /// Requests name scheme and authority in pseudo-headers (HTTP/2 and HTTP/3), not `Host`.
    pub fn pseudo_headers(&self) -> bool {
        self.h2 || self.h3
    }
}

/// hyper's error with its cause, which holds the useful part (e.g. "connection reset").
pub(super) fn describe(e: &hyper::Error) -> String {
    use std::error::Error as _;
    match e.source() {
        Some(src) => format!("{e}: {src}"),
        None => e.to_string(),
    }
}

/// Opens the connection for `ep`; on failure the reason is recorded and `None` returned.
pub(super) async fn open(
    env: &ProbeEnv,
    module_name: &str,
    cfg: &HttpProbe,
    ep: &Endpoint<'_>,
    proxy: Option<&Proxy>,
    deadline: Instant,
    rec: &mut ProbeRecorder,
) -> Option<Connection> {
    let host = ep.url.host_str().unwrap_or_default();
    // Resolve: skipped with a proxy when asked, as blackbox does.
    let skip_resolve = proxy.is_some() && cfg.skip_resolve_phase_with_proxy;
    let mut target_ip: Option<IpAddr> = None;
    if skip_resolve && !crate::probe::allow::current().allows_unresolved(host) {
        rec.fail(
            FailureReason::Denied,
            format!("{host}: with skip_resolve_phase_with_proxy the proxy picks the address, so only a host or URL pattern of the allow-list can allow this target"),
        );
        return None;
    }
    if !skip_resolve {
        let started = Instant::now();
        target_ip = resolve_hop(env, cfg, host, ep.first, rec).await;
        add_phase(rec, Phase::Resolve, started.elapsed());
        target_ip?;
    }
    let authority = match target_ip {
        Some(IpAddr::V6(ip)) => format!("[{ip}]:{}", ep.port),
        Some(ip) => format!("{ip}:{}", ep.port),
        None => format!("{}:{}", host, ep.port),
    };
    if cfg.enable_http3 && !ep.oauth2 {
        let Some(ip) = target_ip else {
            rec.fail(
                FailureReason::Config,
                "HTTP/3 connects directly, not through a proxy",
            );
            return None;
        };
        return open_h3(
            env,
            module_name,
            cfg,
            ep,
            SocketAddr::new(ip, ep.port),
            deadline,
            rec,
        )
        .await;
    }

    // Connect: to the target, or to the proxy (and through it for TLS).
    let started = Instant::now();
    let connected = tokio::time::timeout_at(deadline, async {
        let addr = match (proxy, target_ip) {
            (Some(p), _) => p.socket_addr(env, cfg, rec).await?,
            (None, Some(ip)) => SocketAddr::new(ip, ep.port),
            (None, None) => unreachable!("resolved above when there is no proxy"),
        };
        let stream = connect(addr, None, rec).await?;
        let mut io: Box<dyn Io> = Box::new(stream);
        if let (Some(p), true) = (proxy, ep.tls) {
            tunnel(&mut io, p, &authority, rec).await?;
        }
        Some(io)
    })
    .await;
    add_phase(rec, Phase::Connect, started.elapsed());
    let mut io = match connected {
        Ok(Some(io)) => io,
        Ok(None) => return None,
        Err(_) => {
            rec.fail(FailureReason::Timeout, "timed out while connecting");
            return None;
        }
    };

    // TLS, with ALPN offering h2 when allowed.
    let mut h2 = false;
    let mut tls_metrics = Vec::new();
    if ep.tls {
        let (purpose, alpn): (&'static str, &[&[u8]]) = if ep.oauth2 {
            ("oauth2", &[b"http/1.1"])
        } else if cfg.enable_http2 {
            ("h2", &[b"h2", b"http/1.1"])
        } else {
            ("http", &[b"http/1.1"])
        };
        let client = match env.tls_client(module_name, purpose, &cfg.tls_config, alpn) {
            Ok(c) => c,
            Err(e) => {
                rec.fail(FailureReason::Config, format!("tls_config: {e}"));
                return None;
            }
        };
        // The handshake records into its own recorder: only the final hop's TLS state is the
        // probe's (blackbox reports the TLS of the final response), unless this hop fails here.
        let mut hop_tls = ProbeRecorder::new();
        let started = Instant::now();
        let handshake =
            tokio::time::timeout_at(deadline, client.connect(io, ep.tls_name, &mut hop_tls)).await;
        add_phase(rec, Phase::Tls, started.elapsed());
        tls_metrics = take_tls_outcome(rec, hop_tls);
        let stream = match handshake {
            Ok(Some(s)) => s,
            Ok(None) => {
                replay(rec, &tls_metrics);
                return None;
            }
            Err(_) => {
                rec.fail(FailureReason::Timeout, "timed out during the TLS handshake");
                return None;
            }
        };
        h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
        io = Box::new(stream);
    }

    // The hyper handshake does no I/O of its own for HTTP/1; for HTTP/2 the preface goes out
    // with the first request, so it is counted in processing.
    let io = TokioIo::new(io);
    let (sender, driver) = if h2 {
        match http2::handshake(TokioExecutor::new(), io).await {
            Ok((s, conn)) => (
                Sender::H2(s),
                tokio::spawn(async move {
                    let _ = conn.await;
                }),
            ),
            Err(e) => {
                rec.fail(
                    FailureReason::Protocol,
                    format!("HTTP/2 handshake failed: {}", describe(&e)),
                );
                return None;
            }
        }
    } else {
        match http1::handshake(io).await {
            Ok((s, conn)) => (
                Sender::H1(s),
                // Without hyper's shutdown(2) at the end: close(2) sends the same FIN, and a
                // probe saves a syscall.
                tokio::spawn(async move {
                    let _ = conn.without_shutdown().await;
                }),
            ),
            Err(e) => {
                rec.fail(
                    FailureReason::Protocol,
                    format!("HTTP/1 handshake failed: {}", describe(&e)),
                );
                return None;
            }
        }
    };
    Some(Connection {
        sender,
        tls: ep.tls,
        h2,
        h3: false,
        via_proxy: proxy.is_some() && !ep.tls,
        authority,
        tls_metrics,
        _driver: AbortOnDrop(driver),
    })
}

/// The HTTP/3 connection of one hop, to the address already resolved (and allowed).
async fn open_h3(
    env: &ProbeEnv,
    module_name: &str,
    cfg: &HttpProbe,
    ep: &Endpoint<'_>,
    addr: SocketAddr,
    deadline: Instant,
    rec: &mut ProbeRecorder,
) -> Option<Connection> {
    if !ep.tls {
        // quic-go refuses such a hop too (blackbox turns only the target itself into https).
        rec.fail(
            FailureReason::Protocol,
            format!("HTTP/3 needs https, not {}", ep.url.scheme()),
        );
        return None;
    }
    let mut hop_tls = ProbeRecorder::new();
    let opened = quic::open(
        env,
        module_name,
        cfg,
        addr,
        ep.tls_name,
        deadline,
        rec,
        &mut hop_tls,
    )
    .await;
    let tls_metrics = take_tls_outcome(rec, hop_tls);
    let Some((sender, driver)) = opened else {
        replay(rec, &tls_metrics);
        return None;
    };
    Some(Connection {
        sender: Sender::H3(sender),
        tls: true,
        h2: false,
        h3: true,
        via_proxy: false,
        authority: addr.to_string(),
        tls_metrics,
        _driver: AbortOnDrop(driver),
    })
}

/// Moves a hop's TLS log into the probe's (its error, if the hop failed there, as the probe's
/// failure) and returns the hop's TLS metrics, which are the probe's only if the hop is final.
fn take_tls_outcome(rec: &mut ProbeRecorder, mut hop_tls: ProbeRecorder) -> Vec<Family> {
    let failure = hop_tls.failure();
    for line in hop_tls.take_log() {
        match (line.level, failure) {
            ("error", Some(reason)) => rec.fail(reason, line.message),
            _ => rec.debug(line.message),
        }
    }
    hop_tls.into_families()
}

/// Copies gauge families recorded elsewhere into `rec`.
pub(super) fn replay(rec: &mut ProbeRecorder, families: &[Family]) {
    for f in families {
        for s in &f.samples {
            let labels: Vec<(&'static str, &str)> =
                s.labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
            rec.gauge_with(f.name, f.help, &labels, s.value);
        }
    }
}

/// The first hop resolves into the probe's own metrics; later hops (redirects) resolve into a
/// scratch recorder so `probe_ip_protocol` and the lookup time describe the target asked for.
async fn resolve_hop(
    env: &ProbeEnv,
    cfg: &HttpProbe,
    host: &str,
    first: bool,
    rec: &mut ProbeRecorder,
) -> Option<IpAddr> {
    let (pref, fallback) = (cfg.preferred_ip_protocol, cfg.ip_protocol_fallback);
    if first {
        return resolve_target(&env.resolver, host, pref, fallback, rec).await;
    }
    let mut scratch = ProbeRecorder::new();
    let ip = resolve_target(&env.resolver, host, pref, fallback, &mut scratch).await;
    for line in scratch.take_log() {
        match (line.level, scratch.failure()) {
            ("error", Some(reason)) => rec.fail(reason, line.message),
            _ => rec.debug(line.message),
        }
    }
    ip
}

/// Opens a CONNECT tunnel to `authority` through the proxy connection `io`.
async fn tunnel(
    io: &mut Box<dyn Io>,
    proxy: &Proxy,
    authority: &str,
    rec: &mut ProbeRecorder,
) -> Option<()> {
    let mut head = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n");
    for (name, value) in proxy.connect_headers() {
        head.push_str(name);
        head.push_str(": ");
        head.push_str(value);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    if let Err(e) = io.write_all(head.as_bytes()).await {
        rec.fail(
            FailureReason::from_io(&e),
            format!("writing CONNECT to the proxy failed: {e}"),
        );
        return None;
    }
    // Read the proxy's answer up to the blank line; it is small, and nothing follows it until
    // the TLS handshake starts, which waits for us.
    let mut buf = Vec::with_capacity(256);
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        match io.read(&mut byte).await {
            Ok(0) => {
                rec.fail(
                    FailureReason::Connection,
                    "the proxy closed the connection during CONNECT",
                );
                return None;
            }
            Ok(_) => buf.push(byte[0]),
            Err(e) => {
                rec.fail(
                    FailureReason::from_io(&e),
                    format!("reading the proxy's CONNECT answer failed: {e}"),
                );
                return None;
            }
        }
        if buf.len() > 16 * 1024 {
            rec.fail(
                FailureReason::Protocol,
                "the proxy's CONNECT answer is longer than 16 KiB",
            );
            return None;
        }
    }
    let status_line = String::from_utf8_lossy(buf.split(|b| *b == b'\n').next().unwrap_or(&[]));
    let status = status_line.split_whitespace().nth(1).unwrap_or("");
    if status != "200" {
        rec.fail(
            FailureReason::Connection,
            format!(
                "the proxy refused CONNECT to {authority}: {}",
                status_line.trim()
            ),
        );
        return None;
    }
    rec.debug(format!("Proxy tunnel to {authority} open"));
    Some(())
}

/// The TLS name of a host header value: without port and IPv6 brackets.
pub(super) fn tls_name_of(host_header: &str) -> &str {
    let without_port = match host_header.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) && !h.ends_with(':') => h,
        _ => host_header,
    };
    bare_host(without_port)
}

#[cfg(test)]
mod tests {
    use super::tls_name_of;

    #[test]
    fn tls_names_drop_port_and_brackets() {
        assert_eq!(tls_name_of("example.org"), "example.org");
        assert_eq!(tls_name_of("example.org:8443"), "example.org");
        assert_eq!(tls_name_of("[::1]:443"), "::1");
        assert_eq!(tls_name_of("[::1]"), "::1");
    }
}
