//! The icmp prober (blackbox `prober/icmp.go` semantics): one echo request, success on the
//! matching echo reply before the deadline. With `packets` above 1 (ours), a train of requests
//! instead (`icmp_train`).
//!
//! Socket: an unprivileged datagram ICMP socket (`SOCK_DGRAM`/`IPPROTO_ICMP`) first, which Linux
//! allows when the process's group is inside `net.ipv4.ping_group_range` (it covers IPv6 too);
//! otherwise a raw socket, which needs root or `CAP_NET_RAW`. Without either the probe fails with
//! a clear message. Which one was used is written to the probe log. The socket work is in
//! `icmp_echo`, which also reads the reply's hop limit (`probe_icmp_reply_hop_limit`) as
//! blackbox does; surge-ping decodes the packets.

use super::icmp_echo::EchoSocket;
use super::recorder::{FailureReason, ProbeRecorder};
use super::resolve::resolve_target;
use super::{ProbeEnv, ProbeRequest};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::OnceLock;
use surge_ping::{IcmpPacket, PingIdentifier, PingSequence, SurgeError};
use tokio::time::Instant;

const PHASE_HELP: &str = "Duration of icmp request by phase";
const PAYLOAD: &[u8] = b"siembox-exporter ICMP probe";

pub async fn probe(req: &ProbeRequest<'_>, env: &ProbeEnv, rec: &mut ProbeRecorder) -> bool {
    let cfg = &req.module.icmp;
    for phase in ["resolve", "setup", "rtt"] {
        rec.gauge_with(
            "probe_icmp_duration_seconds",
            PHASE_HELP,
            &[("phase", phase)],
            0.0,
        );
    }
    let Some(ip) = resolve_target(
        &env.resolver,
        req.target,
        cfg.preferred_ip_protocol,
        cfg.ip_protocol_fallback,
        rec,
    )
    .await
    else {
        return false;
    };
    let lookup = rec.value("probe_dns_lookup_time_seconds").unwrap_or(0.0);
    set_phase(rec, "resolve", lookup);

    let setup_start = Instant::now();
    let mut source = None;
    if let Some(src) = &cfg.source_ip_address {
        match src.parse::<IpAddr>() {
            Ok(s) if s.is_ipv6() == ip.is_ipv6() => {
                rec.info(format!("Using source address {s}"));
                source = Some(s);
            }
            Ok(s) => {
                rec.fail(
                    FailureReason::Config,
                    format!("source_ip_address {s} is not of the target's address family ({ip})"),
                );
                return false;
            }
            Err(_) => {
                rec.fail(
                    FailureReason::Config,
                    format!("source_ip_address {src:?} is not an IP address"),
                );
                return false;
            }
        }
    }
    let ttl = cfg.ttl.filter(|t| *t > 0).map(u32::from);
    if let Some(ttl) = ttl {
        rec.debug(format!("Setting TTL (hop limit) {ttl}"));
    }
    let socket = match EchoSocket::open(ip, source, ttl) {
        Ok(s) => s,
        Err(e) => {
            rec.fail(
                FailureReason::Connection,
                format!(
                    "Error creating ICMP socket (unprivileged needs net.ipv4.ping_group_range to \
                     include this group, raw needs root or CAP_NET_RAW): {e}"
                ),
            );
            return false;
        }
    };
    rec.info(if socket.is_raw() {
        "Created raw ICMP socket (privileged)"
    } else {
        "Created unprivileged datagram ICMP socket"
    });
    if cfg.dont_fragment {
        if ip.is_ipv6() {
            rec.debug("dont_fragment applies to ip4 only; ignored for an IPv6 target");
        } else if let Err(e) = set_dont_fragment(socket.fd()) {
            rec.fail(
                FailureReason::Config,
                format!("cannot set the don't-fragment bit: {e}"),
            );
            return false;
        } else {
            rec.debug("Set the don't-fragment bit (IP_PMTUDISC_DO)");
        }
    }
    let payload = payload(cfg.payload_size);
    if cfg.packets > 1 {
        let first = next_sequences(cfg.packets);
        set_phase(rec, "setup", setup_start.elapsed().as_secs_f64());
        let ident = PingIdentifier(identifier());
        return super::icmp_train::probe(
            &socket,
            ip,
            ident,
            first.0,
            &payload,
            cfg,
            req.deadline,
            rec,
        )
        .await;
    }
    let seq = next_sequence();
    set_phase(rec, "setup", setup_start.elapsed().as_secs_f64());

    rec.info(format!(
        "Sending echo request: seq={} payload_bytes={}",
        seq.0,
        payload.len()
    ));
    let exchange = socket.echo(ip, PingIdentifier(identifier()), seq, &payload);
    let result = match tokio::time::timeout_at(req.deadline, exchange).await {
        Ok(r) => r.map_err(SurgeError::from),
        Err(_) => Err(SurgeError::Timeout { seq }),
    };
    match result {
        Ok((sent, echo)) => match reply_kind(&echo.packet) {
            Reply::Echo => {
                let rtt = echo.received.saturating_duration_since(sent);
                set_phase(rec, "rtt", rtt.as_secs_f64());
                if let Some(hops) = echo.hop_limit {
                    rec.gauge(
                        "probe_icmp_reply_hop_limit",
                        "Replied packet hop limit (TTL for ipv4)",
                        f64::from(hops),
                    );
                }
                rec.info("Found matching reply packet");
                true
            }
            Reply::Error(t, c) => {
                rec.fail(
                    FailureReason::Connection,
                    format!("received ICMP type {t} code {c} instead of an echo reply from {ip}"),
                );
                false
            }
        },
        Err(SurgeError::Timeout { .. }) => {
            rec.fail(
                FailureReason::Timeout,
                format!("no echo reply from {ip} before the deadline"),
            );
            false
        }
        Err(e) => {
            rec.fail(
                FailureReason::Connection,
                format!("Error sending or receiving ICMP: {e}"),
            );
            false
        }
    }
}

pub(super) enum Reply {
    Echo,
    Error(u8, u8),
}

pub(super) fn reply_kind(packet: &IcmpPacket) -> Reply {
    match packet {
        IcmpPacket::V4(p) if p.get_icmp_type().0 == 0 => Reply::Echo,
        IcmpPacket::V4(p) => Reply::Error(p.get_icmp_type().0, p.get_icmp_code().0),
        IcmpPacket::V6(p) if p.get_icmpv6_type().0 == 129 => Reply::Echo,
        IcmpPacket::V6(p) => Reply::Error(p.get_icmpv6_type().0, p.get_icmpv6_code().0),
    }
}

pub(super) fn set_phase(rec: &mut ProbeRecorder, phase: &str, seconds: f64) {
    rec.gauge_with(
        "probe_icmp_duration_seconds",
        PHASE_HELP,
        &[("phase", phase)],
        seconds,
    );
}

/// `payload_size` bytes starting with our marker (the marker alone when unset).
fn payload(size: Option<u16>) -> Vec<u8> {
    match size {
        Some(n) if n > 0 => {
            let mut data = vec![0u8; usize::from(n)];
            let k = PAYLOAD.len().min(data.len());
            data[..k].copy_from_slice(&PAYLOAD[..k]);
            data
        }
        _ => PAYLOAD.to_vec(),
    }
}

/// The echo identifier of this process (raw sockets; the kernel picks it for datagram ones):
/// the PID, or random when the PID is 1 in a container, as blackbox does.
fn identifier() -> u16 {
    static ID: OnceLock<u16> = OnceLock::new();
    *ID.get_or_init(|| match std::process::id() {
        1 => random_u16(),
        pid => (pid & 0xffff) as u16,
    })
}

/// Sequence numbers shared by every probe of the process, starting at a random offset, so
/// concurrent probes on raw sockets (which see every reply) never take each other's reply.
fn next_sequence() -> PingSequence {
    next_sequences(1)
}

/// The first of `n` consecutive sequence numbers (wrapping), reserved for one train.
fn next_sequences(n: u32) -> PingSequence {
    static SEQ: OnceLock<AtomicU16> = OnceLock::new();
    let seq = SEQ.get_or_init(|| AtomicU16::new(random_u16()));
    PingSequence(seq.fetch_add(n as u16, Ordering::Relaxed))
}

fn random_u16() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    (h.finish() & 0xffff) as u16
}

/// Sets DF on every packet of the socket (Linux `IP_MTU_DISCOVER = IP_PMTUDISC_DO`); works on
/// datagram ICMP sockets too, so unlike blackbox we need no raw socket for it.
#[cfg(target_os = "linux")]
fn set_dont_fragment(fd: std::os::unix::io::RawFd) -> std::io::Result<()> {
    let value: libc::c_int = libc::IP_PMTUDISC_DO;
    // SAFETY: `fd` is the open socket owned by the surge-ping client, alive for this call;
    // the option value is a c_int of the size given.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_IP,
            libc::IP_MTU_DISCOVER,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
fn set_dont_fragment(_fd: std::os::unix::io::RawFd) -> std::io::Result<()> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "dont_fragment is implemented on Linux only",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_is_padded_or_cut_to_size() {
        assert_eq!(payload(None), PAYLOAD);
        assert_eq!(payload(Some(4)), &PAYLOAD[..4]);
        let p = payload(Some(100));
        assert_eq!(p.len(), 100);
        assert!(p.starts_with(PAYLOAD));
    }

    #[test]
    fn sequences_do_not_repeat_back_to_back() {
        let a = next_sequence().0;
        let b = next_sequence().0;
        assert_eq!(b, a.wrapping_add(1));
    }
}
