//! A train of echo requests, for an icmp module with `packets` above 1 (ours; blackbox sends one,
//! its #115 asks for more): the requests go out `interval` apart on one socket while replies are
//! collected until every request is answered or the deadline passes. The probe succeeds when any
//! echo reply came back; what was lost and how the RTT spread are series of their own.

use super::icmp::{reply_kind, set_phase, Reply as ReplyKind};
use super::icmp_echo::EchoSocket;
use super::recorder::{FailureReason, ProbeRecorder};
use crate::config::IcmpProbe;
use std::net::IpAddr;
use std::time::Duration;
use surge_ping::{PingIdentifier, PingSequence};
use tokio::time::Instant;

/// What a train saw.
#[derive(Default)]
struct Train {
    sent: u32,
    /// One per echo reply, in the order they came.
    rtts: Vec<Duration>,
    hop_limit: Option<u8>,
    /// ICMP errors quoting one of our requests (type, code): unreachable, time exceeded, …
    errors: Vec<(u8, u8)>,
    io_error: Option<std::io::Error>,
}

/// The train's part of the icmp probe: sends, collects, records the series.
#[allow(clippy::too_many_arguments)]
pub(super) async fn probe(
    socket: &EchoSocket,
    target: IpAddr,
    ident: PingIdentifier,
    first_seq: u16,
    payload: &[u8],
    cfg: &IcmpProbe,
    deadline: Instant,
    rec: &mut ProbeRecorder,
) -> bool {
    let interval = cfg.interval();
    let last_send = interval.saturating_mul(cfg.packets - 1);
    let left = deadline.saturating_duration_since(Instant::now());
    if last_send >= left {
        rec.fail(
            FailureReason::Config,
            format!(
                "{} packets every {interval:?} do not fit the {left:?} left of this probe's \
                 timeout: lower icmp.packets or icmp.interval, or raise the timeout",
                cfg.packets
            ),
        );
        return false;
    }
    rec.info(format!(
        "Sending {} echo requests every {interval:?}: first seq={first_seq} payload_bytes={}",
        cfg.packets,
        payload.len()
    ));
    let train = run(
        socket,
        target,
        ident,
        first_seq,
        cfg.packets,
        interval,
        payload,
        deadline,
    )
    .await;
    record(&train, target, rec)
}

#[allow(clippy::too_many_arguments)]
async fn run(
    socket: &EchoSocket,
    target: IpAddr,
    ident: PingIdentifier,
    first_seq: u16,
    packets: u32,
    interval: Duration,
    payload: &[u8],
    deadline: Instant,
) -> Train {
    let n = packets as usize;
    let mut sent_at: Vec<Option<Instant>> = vec![None; n];
    let mut settled = vec![false; n];
    let mut settled_count = 0u32;
    let mut train = Train::default();
    let start = Instant::now();
    while train.sent < packets || settled_count < train.sent {
        let due = start + interval.saturating_mul(train.sent);
        tokio::select! {
            biased;
            _ = tokio::time::sleep_until(deadline) => break,
            _ = tokio::time::sleep_until(due), if train.sent < packets => {
                let seq = PingSequence(first_seq.wrapping_add(train.sent as u16));
                match socket.send(target, ident, seq, payload).await {
                    Ok(at) => {
                        sent_at[train.sent as usize] = Some(at);
                        train.sent += 1;
                    }
                    Err(e) => {
                        train.io_error = Some(e);
                        break;
                    }
                }
            }
            received = socket.receive() => {
                let reply = match received {
                    Ok(r) => r,
                    Err(e) => {
                        train.io_error = Some(e);
                        break;
                    }
                };
                if !socket.concerns_us(&reply, target, ident) {
                    continue;
                }
                let i = usize::from(reply.packet.get_sequence().0.wrapping_sub(first_seq));
                // Not of this train, a duplicate, or our own request looped back to a raw socket.
                let Some(Some(at)) = sent_at.get(i).copied() else { continue };
                if settled[i] {
                    continue;
                }
                match reply_kind(&reply.packet) {
                    ReplyKind::Echo => {
                        train.rtts.push(reply.received.saturating_duration_since(at));
                        train.hop_limit = train.hop_limit.or(reply.hop_limit);
                    }
                    ReplyKind::Error(8 | 128, 0) => continue,
                    ReplyKind::Error(t, c) => train.errors.push((t, c)),
                }
                settled[i] = true;
                settled_count += 1;
            }
        }
    }
    train
}

fn record(train: &Train, target: IpAddr, rec: &mut ProbeRecorder) -> bool {
    let received = train.rtts.len() as u32;
    rec.gauge(
        "probe_icmp_packets_sent",
        "Echo requests sent by this probe (icmp.packets above 1)",
        f64::from(train.sent),
    );
    rec.gauge(
        "probe_icmp_packets_received",
        "Echo replies received by this probe (icmp.packets above 1)",
        f64::from(received),
    );
    if train.sent > 0 {
        rec.gauge(
            "probe_icmp_packet_loss_ratio",
            "Share of this probe's echo requests that got no echo reply, 0 to 1",
            1.0 - f64::from(received) / f64::from(train.sent),
        );
    }
    rec.info(format!(
        "Sent {} echo requests, received {received} echo replies",
        train.sent
    ));
    if let Some(stats) = RttStats::of(&train.rtts) {
        set_phase(rec, "rtt", stats.avg);
        for (name, help, value) in [
            (
                "probe_icmp_rtt_min_seconds",
                "Shortest round trip of this probe's echo replies",
                stats.min,
            ),
            (
                "probe_icmp_rtt_avg_seconds",
                "Mean round trip of this probe's echo replies",
                stats.avg,
            ),
            (
                "probe_icmp_rtt_max_seconds",
                "Longest round trip of this probe's echo replies",
                stats.max,
            ),
            (
                "probe_icmp_rtt_stddev_seconds",
                "Population standard deviation of this probe's round trips (jitter, ping's mdev)",
                stats.stddev,
            ),
        ] {
            rec.gauge(name, help, value);
        }
        if let Some(hops) = train.hop_limit {
            rec.gauge(
                "probe_icmp_reply_hop_limit",
                "Replied packet hop limit (TTL for ipv4)",
                f64::from(hops),
            );
        }
    }
    if let Some(e) = &train.io_error {
        rec.fail(
            FailureReason::Connection,
            format!("Error sending or receiving ICMP: {e}"),
        );
        return false;
    }
    if received > 0 {
        return true;
    }
    match train.errors.first() {
        Some((t, c)) => rec.fail(
            FailureReason::Connection,
            format!("received ICMP type {t} code {c} instead of an echo reply from {target}"),
        ),
        None => rec.fail(
            FailureReason::Timeout,
            format!(
                "no echo reply from {target} to any of {} requests before the deadline",
                train.sent
            ),
        ),
    }
    false
}

/// Round-trip statistics in seconds.
#[derive(Debug, PartialEq)]
struct RttStats {
    min: f64,
    avg: f64,
    max: f64,
    stddev: f64,
}

impl RttStats {
    fn of(rtts: &[Duration]) -> Option<RttStats> {
        if rtts.is_empty() {
            return None;
        }
        let secs: Vec<f64> = rtts.iter().map(Duration::as_secs_f64).collect();
        let n = secs.len() as f64;
        let avg = secs.iter().sum::<f64>() / n;
        let variance = secs.iter().map(|s| (s - avg).powi(2)).sum::<f64>() / n;
        Some(RttStats {
            min: secs.iter().copied().fold(f64::INFINITY, f64::min),
            avg,
            max: secs.iter().copied().fold(0.0, f64::max),
            stddev: variance.sqrt(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtt_stats_are_ping_s() {
        assert_eq!(RttStats::of(&[]), None);
        let ms = |v: u64| Duration::from_millis(v);
        let s = RttStats::of(&[ms(10), ms(20), ms(30), ms(40)]).unwrap();
        assert!((s.min - 0.010).abs() < 1e-9, "{s:?}");
        assert!((s.max - 0.040).abs() < 1e-9, "{s:?}");
        assert!((s.avg - 0.025).abs() < 1e-9, "{s:?}");
        // Population standard deviation: sqrt(((15²+5²)·2)/4) ms = 11.18 ms.
        assert!((s.stddev - 0.011_180_34).abs() < 1e-7, "{s:?}");
        let one = RttStats::of(&[ms(7)]).unwrap();
        assert_eq!(one.stddev, 0.0);
    }

    #[test]
    fn loss_is_counted_from_what_was_sent() {
        let mut rec = ProbeRecorder::new();
        let train = Train {
            sent: 4,
            rtts: vec![Duration::from_millis(1); 3],
            ..Train::default()
        };
        assert!(record(&train, "127.0.0.1".parse().unwrap(), &mut rec));
        assert_eq!(rec.value("probe_icmp_packets_sent"), Some(4.0));
        assert_eq!(rec.value("probe_icmp_packets_received"), Some(3.0));
        assert_eq!(rec.value("probe_icmp_packet_loss_ratio"), Some(0.25));
        let mut rec = ProbeRecorder::new();
        let lost = Train {
            sent: 3,
            ..Train::default()
        };
        assert!(!record(&lost, "127.0.0.1".parse().unwrap(), &mut rec));
        assert_eq!(rec.value("probe_icmp_packet_loss_ratio"), Some(1.0));
        assert_eq!(rec.value("probe_icmp_rtt_avg_seconds"), None);
    }
}
