//! The dns prober (blackbox `prober/dns.go` semantics): one query to the DNS server named by the
//! target (`host[:port]`, port 53, or 853 with `dns_over_tls`) over UDP, TCP or TLS, then the
//! rcode and the answer/authority/additional records are checked against the module.
//!
//! The message is built and parsed with hickory-proto; the I/O is our own so each phase
//! (resolve, connect, request) is timed exactly and DoT goes through the module's `TlsClient`
//! (TLS metrics, deferred verification) like every other prober.

mod rr_text;

use crate::config::dns_names as names;
pub use crate::config::dns_names::{query_class, query_type, rcode};
pub use rr_text::rr_text;

use super::connect::{dial_tcp, resolve_endpoint};
use super::recorder::{FailureReason, ProbeRecorder};
use super::resolve::bare_host;
use super::{ProbeEnv, ProbeRequest};
use crate::config::{DnsProbe, DnsRrValidator, DnsTransport};
use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use std::net::{IpAddr, SocketAddr};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::UdpSocket;
use tokio::time::{timeout_at, Instant};

const PHASE_HELP: &str = "Duration of DNS request by phase";
/// Largest UDP answer we accept (EDNS maximum); plain DNS answers are at most 512 bytes.
const MAX_UDP: usize = 65535;

pub async fn probe(req: &ProbeRequest<'_>, env: &ProbeEnv, rec: &mut ProbeRecorder) -> bool {
    let cfg = &req.module.dns;
    // Blackbox registers these up front, so a failed probe still shows them at 0.
    for phase in ["resolve", "connect", "request"] {
        rec.gauge_with(
            "probe_dns_duration_seconds",
            PHASE_HELP,
            &[("phase", phase)],
            0.0,
        );
    }
    set_counts(rec, 0.0, 0.0, 0.0);
    rec.gauge(
        "probe_dns_query_succeeded",
        "Displays whether or not the query was executed successfully",
        0.0,
    );

    let (qtype, qclass, name) = match (
        query_type(&cfg.query_type),
        query_class(&cfg.query_class),
        Name::from_utf8(&cfg.query_name),
    ) {
        (Ok(t), Ok(c), Ok(mut n)) => {
            n.set_fqdn(true);
            (t, c, n)
        }
        (Err(e), _, _) | (_, Err(e), _) => {
            rec.fail(FailureReason::Config, e);
            return false;
        }
        (_, _, Err(e)) => {
            rec.fail(
                FailureReason::Config,
                format!("invalid query_name {:?}: {e}", cfg.query_name),
            );
            return false;
        }
    };
    // DoT is DNS over TCP; blackbox insists on `transport_protocol: tcp` with it, we imply it.
    let transport = if cfg.dns_over_tls {
        Transport::Tls
    } else {
        match cfg.transport_protocol {
            DnsTransport::Udp => Transport::Udp,
            DnsTransport::Tcp => Transport::Tcp,
            DnsTransport::Unsupported => {
                rec.fail(
                    FailureReason::Config,
                    "transport_protocol: expected udp or tcp",
                );
                return false;
            }
        }
    };
    let default_port = if cfg.dns_over_tls { 853 } else { 53 };
    let Some(at) = resolve_endpoint(
        env,
        req.target,
        |t| split_target(t, default_port),
        cfg.preferred_ip_protocol,
        cfg.ip_protocol_fallback,
        rec,
    )
    .await
    else {
        return false;
    };
    let (host, server) = (at.host, at.addr);
    let lookup = rec.value("probe_dns_lookup_time_seconds").unwrap_or(0.0);
    rec.gauge_with(
        "probe_dns_duration_seconds",
        PHASE_HELP,
        &[("phase", "resolve")],
        lookup,
    );

    let mut query = Message::query();
    query.metadata.recursion_desired = cfg.recursion_desired;
    let mut q = Query::query(name.clone(), qtype);
    q.set_query_class(qclass);
    query.add_query(q);
    let wire = match query.to_vec() {
        Ok(w) => w,
        Err(e) => {
            rec.fail(
                FailureReason::Config,
                format!("cannot encode the query for {name}: {e}"),
            );
            return false;
        }
    };
    rec.info(format!(
        "Making DNS query: target={server} dial_protocol={}{} query={name} type={} class={}",
        transport.as_str(),
        if server.is_ipv6() { "6" } else { "4" },
        rr_text::type_text(qtype),
        rr_text::class_text(qclass)
    ));
    let Some(response) = exchange(req, env, transport, host, server, &wire, rec).await else {
        return false;
    };
    if response.metadata.id != query.metadata.id {
        rec.fail(
            FailureReason::Protocol,
            "DNS response ID does not match the query",
        );
        return false;
    }
    evaluate(cfg, qtype, &response, rec)
}

/// Counts, serial, rcode and record checks of a received response.
fn evaluate(cfg: &DnsProbe, qtype: RecordType, resp: &Message, rec: &mut ProbeRecorder) -> bool {
    // hickory lifts the OPT pseudo-record out of the additional section; miekg counts it.
    let additional = resp.additionals.len() + usize::from(resp.edns.is_some());
    set_counts(
        rec,
        resp.answers.len() as f64,
        resp.authorities.len() as f64,
        additional as f64,
    );
    rec.gauge(
        "probe_dns_query_succeeded",
        "Displays whether or not the query was executed successfully",
        1.0,
    );
    if qtype == RecordType::SOA {
        // Blackbox reads the serial from the answer; a NODATA answer carries the zone's SOA in
        // the authority section, which we use when the answer has none.
        let serial = resp
            .answers
            .iter()
            .chain(resp.authorities.iter())
            .find_map(|r| match &r.data {
                RData::SOA(soa) => Some(soa.serial),
                _ => None,
            });
        rec.gauge(
            "probe_dns_serial",
            "Returns the serial number of the zone",
            serial.map_or(0.0, f64::from),
        );
    }
    let code = u16::from(resp.metadata.response_code);
    // An unknown rcode name fails the probe after the query, as in blackbox (the config loaded
    // with a warning).
    let valid: Vec<u16> = if cfg.valid_rcodes.is_empty() {
        vec![0]
    } else {
        match cfg.valid_rcodes.iter().map(|r| rcode(r)).collect() {
            Ok(codes) => codes,
            Err(e) => {
                rec.fail(FailureReason::Config, format!("valid_rcodes: {e}"));
                return false;
            }
        }
    };
    if !valid.contains(&code) {
        rec.fail(
            FailureReason::Dns,
            format!(
                "Rcode {} is not one of the valid rcodes {:?}",
                names::rcode_name(code),
                if cfg.valid_rcodes.is_empty() {
                    vec!["NOERROR".to_string()]
                } else {
                    cfg.valid_rcodes.clone()
                }
            ),
        );
        return false;
    }
    rec.info(format!("Rcode {} is valid", names::rcode_name(code)));
    for (section, rrs, validator) in [
        ("Answer", &resp.answers, &cfg.validate_answer_rrs),
        ("Authority", &resp.authorities, &cfg.validate_authority_rrs),
        (
            "Additional",
            &resp.additionals,
            &cfg.validate_additional_rrs,
        ),
    ] {
        if let Err(why) = valid_rrs(rrs, validator, rec) {
            rec.fail(
                FailureReason::Regexp,
                format!("{section} RRs validation failed: {why}"),
            );
            return false;
        }
    }
    true
}

fn set_counts(rec: &mut ProbeRecorder, answer: f64, authority: f64, additional: f64) {
    rec.gauge(
        "probe_dns_answer_rrs",
        "Returns number of entries in the answer resource record list",
        answer,
    );
    rec.gauge(
        "probe_dns_authority_rrs",
        "Returns number of entries in the authority resource record list",
        authority,
    );
    rec.gauge(
        "probe_dns_additional_rrs",
        "Returns number of entries in the additional resource record list",
        additional,
    );
}

/// Blackbox's four rules over one section, each regexp searched (unanchored) in the RR text.
fn valid_rrs(rrs: &[Record], v: &DnsRrValidator, rec: &mut ProbeRecorder) -> Result<(), String> {
    if rrs.is_empty() && !v.fail_if_not_matches_regexp.is_empty() {
        return Err("fail_if_not_matches_regexp specified but no RRs returned".into());
    }
    if rrs.is_empty() && !v.fail_if_none_matches_regexp.is_empty() {
        return Err("fail_if_none_matches_regexp specified but no RRs returned".into());
    }
    let mut all_match = true;
    let mut any_match = false;
    for rr in rrs {
        let text = rr_text(rr);
        rec.debug(format!("Validating RR: {text:?}"));
        if let Some(re) = v
            .fail_if_matches_regexp
            .iter()
            .find(|re| re.is_match(&text))
        {
            return Err(format!(
                "RR {text:?} matched fail_if_matches_regexp {:?}",
                re.as_str()
            ));
        }
        if v.fail_if_all_match_regexp
            .iter()
            .any(|re| !re.is_match(&text))
        {
            all_match = false;
        }
        if let Some(re) = v
            .fail_if_not_matches_regexp
            .iter()
            .find(|re| !re.is_match(&text))
        {
            return Err(format!(
                "RR {text:?} did not match fail_if_not_matches_regexp {:?}",
                re.as_str()
            ));
        }
        if v.fail_if_none_matches_regexp
            .iter()
            .any(|re| re.is_match(&text))
        {
            any_match = true;
        }
    }
    // Blackbox fails here when NOT every RR matched (despite the option's name); configs in
    // use rely on that, so we keep it.
    if !v.fail_if_all_match_regexp.is_empty() && !all_match {
        return Err("Not all RRs matched fail_if_all_match_regexp".into());
    }
    if !v.fail_if_none_matches_regexp.is_empty() && !any_match {
        return Err("no RR matched fail_if_none_matches_regexp".into());
    }
    Ok(())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Transport {
    Udp,
    Tcp,
    Tls,
}

impl Transport {
    fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Tls => "tcp-tls",
        }
    }
}

/// Connects, sends the query and reads one response, recording the connect and request phases.
async fn exchange(
    req: &ProbeRequest<'_>,
    env: &ProbeEnv,
    transport: Transport,
    host: &str,
    server: SocketAddr,
    wire: &[u8],
    rec: &mut ProbeRecorder,
) -> Option<Message> {
    let source = req.module.dns.source_ip_address.as_deref();
    let connect_start = Instant::now();
    let result = match transport {
        Transport::Udp => {
            let socket = timeout_at(req.deadline, udp_socket(server, source)).await;
            record_phase(rec, "connect", connect_start);
            let socket = match socket {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    rec.fail(
                        FailureReason::from_io(&e),
                        format!("Error opening UDP socket to {server}: {e}"),
                    );
                    return None;
                }
                Err(_) => return timed_out(rec, "connecting"),
            };
            let request_start = Instant::now();
            let r = timeout_at(req.deadline, udp_exchange(&socket, wire)).await;
            record_phase(rec, "request", request_start);
            r
        }
        Transport::Tcp | Transport::Tls => {
            let stream = match timeout_at(req.deadline, dial_tcp(server, source, rec)).await {
                Ok(Some(s)) => s,
                Ok(None) => {
                    record_phase(rec, "connect", connect_start);
                    return None;
                }
                Err(_) => {
                    record_phase(rec, "connect", connect_start);
                    return timed_out(rec, "connecting");
                }
            };
            if transport == Transport::Tls {
                let client =
                    match env.tls_client(req.module_name, "dns", &req.module.dns.tls_config, &[]) {
                        Ok(c) => c,
                        Err(e) => {
                            rec.fail(FailureReason::Config, e);
                            return None;
                        }
                    };
                let tls = timeout_at(req.deadline, client.connect(stream, host, rec)).await;
                record_phase(rec, "connect", connect_start);
                let mut tls = match tls {
                    Ok(Some(t)) => t,
                    Ok(None) => return None,
                    Err(_) => return timed_out(rec, "in the TLS handshake"),
                };
                let request_start = Instant::now();
                let r = timeout_at(req.deadline, stream_exchange(&mut tls, wire)).await;
                record_phase(rec, "request", request_start);
                r
            } else {
                record_phase(rec, "connect", connect_start);
                let mut stream = stream;
                let request_start = Instant::now();
                let r = timeout_at(req.deadline, stream_exchange(&mut stream, wire)).await;
                record_phase(rec, "request", request_start);
                r
            }
        }
    };
    match result {
        Ok(Ok(bytes)) => match Message::from_vec(&bytes) {
            Ok(m) => {
                rec.info(format!(
                    "Got response: rcode={} answer={} authority={} additional={}",
                    names::rcode_name(u16::from(m.metadata.response_code)),
                    m.answers.len(),
                    m.authorities.len(),
                    m.additionals.len()
                ));
                Some(m)
            }
            Err(e) => {
                rec.fail(
                    FailureReason::Protocol,
                    format!("Error parsing the DNS response: {e}"),
                );
                None
            }
        },
        Ok(Err(e)) => {
            rec.fail(
                FailureReason::from_io(&e),
                format!("Error while sending a DNS query: {e}"),
            );
            None
        }
        Err(_) => timed_out(rec, "waiting for the DNS response"),
    }
}

fn timed_out<T>(rec: &mut ProbeRecorder, during: &str) -> Option<T> {
    rec.fail(
        FailureReason::Timeout,
        format!("Error while sending a DNS query: deadline reached {during}"),
    );
    None
}

fn record_phase(rec: &mut ProbeRecorder, phase: &str, start: Instant) {
    rec.gauge_with(
        "probe_dns_duration_seconds",
        PHASE_HELP,
        &[("phase", phase)],
        start.elapsed().as_secs_f64(),
    );
}

async fn udp_socket(server: SocketAddr, source: Option<&str>) -> std::io::Result<UdpSocket> {
    let local: IpAddr = match source {
        Some(s) => s.parse().map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("source_ip_address {s:?} is not an IP address"),
            )
        })?,
        None if server.is_ipv6() => IpAddr::from([0u16; 8]),
        None => IpAddr::from([0u8; 4]),
    };
    let socket = UdpSocket::bind(SocketAddr::new(local, 0)).await?;
    socket.connect(server).await?;
    Ok(socket)
}

/// Sends the query and returns the first datagram that carries our message ID (others are
/// stray or spoofed answers and are skipped; the deadline bounds the wait).
async fn udp_exchange(socket: &UdpSocket, wire: &[u8]) -> std::io::Result<Vec<u8>> {
    socket.send(wire).await?;
    let mut buf = vec![0u8; MAX_UDP];
    loop {
        let n = socket.recv(&mut buf).await?;
        if n >= 2 && buf[..2] == wire[..2] {
            buf.truncate(n);
            return Ok(buf);
        }
    }
}

/// DNS over a byte stream (RFC 1035 4.2.2): two-byte length prefix each way.
async fn stream_exchange<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    wire: &[u8],
) -> std::io::Result<Vec<u8>> {
    let len = u16::try_from(wire.len())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "query too large"))?;
    let mut framed = Vec::with_capacity(wire.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(wire);
    stream.write_all(&framed).await?;
    stream.flush().await?;
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).await?;
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut buf).await?;
    Ok(buf)
}

/// `host`, `host:port`, `[v6]:port`, `[v6]` or a bare IPv6 address, as Go's
/// `net.SplitHostPort` with blackbox's fallback to the default port.
pub(crate) fn split_target(target: &str, default_port: u16) -> Result<(&str, u16), String> {
    let parse_port = |p: &str| {
        p.parse::<u16>()
            .map_err(|_| format!("target {target:?} has an invalid port {p:?}"))
    };
    let (host, port) = if let Some(rest) = target.strip_prefix('[') {
        let (h, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("target {target:?} has an unclosed '['"))?;
        match after {
            "" => (h, default_port),
            _ => match after.strip_prefix(':') {
                Some(p) => (h, parse_port(p)?),
                None => return Err(format!("target {target:?} is not host[:port]")),
            },
        }
    } else {
        match target.matches(':').count() {
            0 => (target, default_port),
            1 => {
                let (h, p) = target.split_once(':').expect("one colon");
                (h, parse_port(p)?)
            }
            // A bare IPv6 address: no port given.
            _ => (target, default_port),
        }
    };
    let host = bare_host(host);
    if host.is_empty() {
        return Err(format!("target {target:?} has no host"));
    }
    Ok((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_split_like_blackbox() {
        assert_eq!(split_target("127.0.0.1", 53).unwrap(), ("127.0.0.1", 53));
        assert_eq!(split_target("ns1:5353", 53).unwrap(), ("ns1", 5353));
        assert_eq!(split_target("[::1]:853", 53).unwrap(), ("::1", 853));
        assert_eq!(split_target("[::1]", 853).unwrap(), ("::1", 853));
        assert_eq!(
            split_target("2001:db8::1", 53).unwrap(),
            ("2001:db8::1", 53)
        );
        assert!(split_target("ns1:dns", 53).is_err());
        assert!(split_target(":53", 53).is_err());
        assert!(split_target("[::1", 53).is_err());
    }
}
