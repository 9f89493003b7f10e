//! ICMPv6 echo on a socket of our own, for the icmp prober.
//!
//! Linux hands an IPv6 socket the reply's hop limit only as an `IPV6_HOPLIMIT` control message
//! (the IPv6 header never reaches user space, raw socket or not); blackbox reads the same message
//! for `probe_icmp_reply_hop_limit`. surge-ping's receive path drops control messages, so IPv6
//! echoes are sent and received here with `recvmsg`; surge-ping still decodes the packets.

use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags, SockaddrIn6};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::io::{self, IoSliceMut};
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6};
use std::os::fd::{AsRawFd, OwnedFd};
use surge_ping::{Icmpv6Packet, PingIdentifier, PingSequence};
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::time::Instant;

const ECHO_REQUEST: u8 = 128;

/// An ICMPv6 socket: datagram (unprivileged) when the kernel allows it, raw otherwise.
pub struct Icmp6Socket {
    /// Tokio's datagram socket type only for readiness; every call on it is ICMPv6.
    inner: UdpSocket,
    raw: bool,
}

/// A reply to one of our echo requests: the echo reply or an error quoting the request.
pub struct Reply6 {
    pub packet: Icmpv6Packet,
    pub received: Instant,
    /// From the control message; `None` when the kernel did not attach one.
    pub hop_limit: Option<u8>,
}

impl Icmp6Socket {
    /// Opens the socket, binds `source` and sets the outgoing hop limit when given, and asks the
    /// kernel for the hop limit of every packet received.
    pub fn open(source: Option<Ipv6Addr>, hops: Option<u32>) -> io::Result<Self> {
        let (socket, raw) = match Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::ICMPV6)) {
            Ok(s) => (s, false),
            Err(unprivileged) => Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6))
                .map(|s| (s, true))
                // The first error says why the ordinary way failed; the raw one only "EPERM".
                .map_err(|_| unprivileged)?,
        };
        socket.set_nonblocking(true)?;
        if let Some(src) = source {
            socket.bind(&SockAddr::from(SocketAddr::new(src.into(), 0)))?;
        }
        if let Some(h) = hops {
            socket.set_unicast_hops_v6(h)?;
        }
        socket.set_recv_hoplimit_v6(true)?;
        Ok(Self {
            inner: UdpSocket::from_std(OwnedFd::from(socket).into())?,
            raw,
        })
    }

    pub fn is_raw(&self) -> bool {
        self.raw
    }

    /// Sends one echo request and waits for its reply (the caller bounds the wait). On a
    /// datagram socket the kernel owns the identifier and delivers only this socket's replies;
    /// a raw socket sees every ICMPv6 packet of the host, so the identifier is matched too.
    pub async fn echo(
        &self,
        target: Ipv6Addr,
        ident: PingIdentifier,
        seq: PingSequence,
        payload: &[u8],
    ) -> io::Result<(Instant, Reply6)> {
        let request = echo_request(ident.0, seq.0, payload);
        let to = SocketAddrV6::new(target, 0, 0, 0);
        self.inner.send_to(&request, to).await?;
        let sent = Instant::now();
        loop {
            let reply = self.receive().await?;
            let ours = reply.packet.get_real_dest() == target
                && reply.packet.get_sequence() == seq
                && (!self.raw || reply.packet.get_identifier() == ident);
            if ours {
                return Ok((sent, reply));
            }
        }
    }

    /// The next ICMPv6 packet that decodes (our own echo requests, seen on raw sockets over
    /// loopback, and malformed packets are skipped).
    async fn receive(&self) -> io::Result<Reply6> {
        let mut buf = [0u8; 2048];
        loop {
            let (len, from, hop_limit) = self
                .inner
                .async_io(Interest::READABLE, || {
                    let mut iov = [IoSliceMut::new(&mut buf)];
                    let mut cmsg = nix::cmsg_space!(libc::c_int);
                    let msg = recvmsg::<SockaddrIn6>(
                        self.inner.as_raw_fd(),
                        &mut iov,
                        Some(&mut cmsg),
                        MsgFlags::empty(),
                    )
                    .map_err(io::Error::from)?;
                    let hop_limit = msg.cmsgs().map_err(io::Error::from)?.find_map(|c| match c {
                        ControlMessageOwned::Ipv6HopLimit(h) => u8::try_from(h).ok(),
                        _ => None,
                    });
                    Ok((msg.bytes, msg.address.map(|a| a.ip()), hop_limit))
                })
                .await?;
            let received = Instant::now();
            let Some(from) = from else { continue };
            if let Ok(packet) = Icmpv6Packet::decode(&buf[..len], from) {
                return Ok(Reply6 {
                    packet,
                    received,
                    hop_limit,
                });
            }
        }
    }
}

/// An echo request; the checksum is left zero because the kernel fills it in for every
/// ICMPv6 socket (RFC 3542 section 3.1).
fn echo_request(ident: u16, seq: u16, payload: &[u8]) -> Vec<u8> {
    let mut packet = vec![ECHO_REQUEST, 0, 0, 0];
    packet.extend_from_slice(&ident.to_be_bytes());
    packet.extend_from_slice(&seq.to_be_bytes());
    packet.extend_from_slice(payload);
    packet
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_request_layout() {
        assert_eq!(
            echo_request(0x1234, 0xabcd, b"hi"),
            [128, 0, 0, 0, 0x12, 0x34, 0xab, 0xcd, b'h', b'i']
        );
    }
}
