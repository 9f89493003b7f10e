//! ICMP echo on a socket of our own, for the icmp prober.
//!
//! blackbox reads the reply's hop limit (`probe_icmp_reply_hop_limit`) from a control message:
//! `IPV6_HOPLIMIT` (Linux never hands the IPv6 header to user space) and `IP_TTL` on
//! unprivileged IPv4 sockets, which get no IP header either. surge-ping's receive path drops
//! control messages, so echoes are sent and received here with `recvmsg`; surge-ping still
//! decodes the packets.

use nix::sys::socket::SockaddrStorage;
use nix::sys::socket::{recvmsg, setsockopt, sockopt, ControlMessageOwned, MsgFlags};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::io::{self, IoSliceMut};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use surge_ping::{IcmpPacket, Icmpv4Packet, Icmpv6Packet, PingIdentifier, PingSequence};
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::time::Instant;

/// An ICMP socket of one family: datagram (unprivileged) when the kernel allows it, raw
/// otherwise.
pub struct EchoSocket {
    /// Tokio's datagram socket type only for readiness; every call on it is ICMP.
    inner: UdpSocket,
    kind: Type,
}

/// A reply to our echo request: the echo reply or an error quoting the request.
pub struct Reply {
    pub packet: IcmpPacket,
    pub received: Instant,
    /// From the control message or the IPv4 header; `None` when neither is there.
    pub hop_limit: Option<u8>,
}

impl EchoSocket {
    /// Opens a socket for `target`'s family, binds `source` and sets the outgoing hop limit
    /// (TTL) when given, and asks the kernel for the hop limit of every packet received.
    pub fn open(target: IpAddr, source: Option<IpAddr>, hops: Option<u32>) -> io::Result<Self> {
        let (domain, proto) = match target {
            IpAddr::V4(_) => (Domain::IPV4, Protocol::ICMPV4),
            IpAddr::V6(_) => (Domain::IPV6, Protocol::ICMPV6),
        };
        let (socket, kind) = match Socket::new(domain, Type::DGRAM, Some(proto)) {
            Ok(s) => (s, Type::DGRAM),
            Err(unprivileged) => Socket::new(domain, Type::RAW, Some(proto))
                .map(|s| (s, Type::RAW))
                // The first error says why the ordinary way failed; the raw one only "EPERM".
                .map_err(|_| unprivileged)?,
        };
        socket.set_nonblocking(true)?;
        if let Some(src) = source {
            socket.bind(&SockAddr::from(SocketAddr::new(src, 0)))?;
        }
        match target {
            IpAddr::V4(_) => {
                if let Some(h) = hops {
                    socket.set_ttl_v4(h)?;
                }
                setsockopt(&socket, sockopt::Ipv4RecvTtl, &true).map_err(io::Error::from)?;
            }
            IpAddr::V6(_) => {
                if let Some(h) = hops {
                    socket.set_unicast_hops_v6(h)?;
                }
                socket.set_recv_hoplimit_v6(true)?;
            }
        }
        Ok(Self {
            inner: UdpSocket::from_std(OwnedFd::from(socket).into())?,
            kind,
        })
    }

    pub fn is_raw(&self) -> bool {
        self.kind == Type::RAW
    }

    /// For socket options the prober sets itself (don't-fragment).
    pub fn fd(&self) -> RawFd {
        self.inner.as_raw_fd()
    }

    /// Sends one echo request and waits for its reply (the caller bounds the wait).
    pub async fn echo(
        &self,
        target: IpAddr,
        ident: PingIdentifier,
        seq: PingSequence,
        payload: &[u8],
    ) -> io::Result<(Instant, Reply)> {
        let sent = self.send(target, ident, seq, payload).await?;
        loop {
            let reply = self.receive().await?;
            if self.concerns_us(&reply, target, ident) && reply.packet.get_sequence() == seq {
                return Ok((sent, reply));
            }
        }
    }

    /// Sends one echo request; returns when it left.
    pub async fn send(
        &self,
        target: IpAddr,
        ident: PingIdentifier,
        seq: PingSequence,
        payload: &[u8],
    ) -> io::Result<Instant> {
        let request = echo_request(target, ident.0, seq.0, payload);
        self.inner
            .send_to(&request, SocketAddr::new(target, 0))
            .await?;
        Ok(Instant::now())
    }

    /// Whether `reply` is about a request of ours to `target` (its sequence is the caller's to
    /// match). On a datagram socket the kernel owns the identifier and delivers only this
    /// socket's replies; a raw socket sees every ICMP packet of the host, so the identifier is
    /// matched too.
    pub fn concerns_us(&self, reply: &Reply, target: IpAddr, ident: PingIdentifier) -> bool {
        reply.packet.real_destination() == target
            && (!self.is_raw() || reply.packet.get_identifier() == ident)
    }

    /// The next ICMP packet that decodes (our own echo requests, seen on raw sockets over
    /// loopback, and malformed packets are skipped).
    pub async fn receive(&self) -> io::Result<Reply> {
        let mut buf = [0u8; 2048];
        let local = match self.inner.local_addr()?.ip() {
            IpAddr::V4(a) => a,
            IpAddr::V6(_) => Ipv4Addr::UNSPECIFIED,
        };
        loop {
            let (len, from, cmsg_hops) =
                self.inner
                    .async_io(Interest::READABLE, || {
                        let mut iov = [IoSliceMut::new(&mut buf)];
                        let mut cmsg = nix::cmsg_space!(libc::c_int);
                        let msg = recvmsg::<SockaddrStorage>(
                            self.inner.as_raw_fd(),
                            &mut iov,
                            Some(&mut cmsg),
                            MsgFlags::empty(),
                        )
                        .map_err(io::Error::from)?;
                        let hops = msg.cmsgs().map_err(io::Error::from)?.find_map(|c| match c {
                            ControlMessageOwned::Ipv6HopLimit(h)
                            | ControlMessageOwned::Ipv4Ttl(h) => u8::try_from(h).ok(),
                            _ => None,
                        });
                        Ok((msg.bytes, msg.address.and_then(|a| ip_of(&a)), hops))
                    })
                    .await?;
            let received = Instant::now();
            let packet = match from {
                Some(IpAddr::V6(from)) => {
                    Icmpv6Packet::decode(&buf[..len], from).map(IcmpPacket::V6)
                }
                Some(IpAddr::V4(from)) => {
                    Icmpv4Packet::decode(&buf[..len], self.kind, from, local).map(IcmpPacket::V4)
                }
                None => continue,
            };
            let Ok(packet) = packet else { continue };
            // A raw IPv4 socket carries the IP header; surge-ping read the TTL from it.
            let header_ttl = match &packet {
                IcmpPacket::V4(p) => p.get_ttl(),
                IcmpPacket::V6(_) => None,
            };
            return Ok(Reply {
                packet,
                received,
                hop_limit: cmsg_hops.or(header_ttl),
            });
        }
    }
}

fn ip_of(addr: &SockaddrStorage) -> Option<IpAddr> {
    if let Some(a) = addr.as_sockaddr_in() {
        return Some(IpAddr::V4(a.ip()));
    }
    addr.as_sockaddr_in6().map(|a| IpAddr::V6(a.ip()))
}

/// An echo request. ICMPv6 checksums are the kernel's on every socket (RFC 3542 section 3.1);
/// ICMPv4 ones on raw sockets are ours (datagram sockets recompute them).
fn echo_request(target: IpAddr, ident: u16, seq: u16, payload: &[u8]) -> Vec<u8> {
    let kind = if target.is_ipv6() { 128 } else { 8 };
    let mut packet = vec![kind, 0, 0, 0];
    packet.extend_from_slice(&ident.to_be_bytes());
    packet.extend_from_slice(&seq.to_be_bytes());
    packet.extend_from_slice(payload);
    if target.is_ipv4() {
        let sum = checksum(&packet);
        packet[2..4].copy_from_slice(&sum.to_be_bytes());
    }
    packet
}

/// The Internet checksum (RFC 1071).
fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_request_layout() {
        let v6 = "::1".parse().unwrap();
        assert_eq!(
            echo_request(v6, 0x1234, 0xabcd, b"hi"),
            [128, 0, 0, 0, 0x12, 0x34, 0xab, 0xcd, b'h', b'i']
        );
        // RFC 1071: a message with its checksum in place sums to zero.
        let v4 = echo_request("127.0.0.1".parse().unwrap(), 0x1234, 0xabcd, b"odd");
        assert_eq!(v4[0], 8);
        assert_eq!(checksum(&v4), 0);
    }
}
