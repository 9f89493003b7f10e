//! The ssh prober: connect, read the server's identification banner, run the key exchange and,
//! when `known_hosts_file` or `host_key_fingerprint` is configured, check the host key. It never
//! authenticates.

use super::connect::{dial_tcp, resolve_endpoint};
use super::recorder::{FailureReason, ProbeRecorder};
use super::resolve::split_host_port;
use super::{ProbeEnv, ProbeRequest};
use crate::audit::connect::{verify_host_key, HostKeyPolicy};
use crate::config::IpProtocol;
use russh::client;
use russh::keys::{HashAlg, PublicKey};
use std::io::Cursor;
use std::sync::Arc;
use tokio::io::AsyncReadExt;
use tokio::time::Instant;

/// The banner must come within this many bytes (RFC 4253 allows lines before it).
const MAX_PREAMBLE: usize = 8 * 1024;

pub async fn probe(req: &ProbeRequest<'_>, env: &ProbeEnv, rec: &mut ProbeRecorder) -> bool {
    let cfg = req.module.ssh.clone().unwrap_or_default();
    let Some(at) =
        resolve_endpoint(env, req.target, split_host_port, IpProtocol::Ip6, true, rec).await
    else {
        return false;
    };
    let start = Instant::now();
    let stream = match dial_tcp(at.addr, None, rec).await {
        Some(s) => s,
        None => return false,
    };
    let (mut read, write) = stream.into_split();
    // Read the identification line ourselves (russh does not expose it) and hand russh the
    // bytes already read, followed by the rest of the stream.
    let mut buf = Vec::with_capacity(512);
    let banner = loop {
        let mut chunk = [0u8; 512];
        let n = match read.read(&mut chunk).await {
            Ok(0) => {
                rec.fail(
                    FailureReason::Protocol,
                    "connection closed before the SSH banner",
                );
                return false;
            }
            Ok(n) => n,
            Err(e) => {
                rec.fail(
                    FailureReason::from_io(&e),
                    format!("reading the SSH banner: {e}"),
                );
                return false;
            }
        };
        buf.extend_from_slice(&chunk[..n]);
        if let Some(b) = find_banner(&buf) {
            break b;
        }
        if buf.len() > MAX_PREAMBLE {
            rec.fail(
                FailureReason::Protocol,
                "no SSH-2.0 banner in the first 8 KiB",
            );
            return false;
        }
    };
    rec.gauge(
        "probe_ssh_banner_seconds",
        "Time from connect to the server's SSH banner",
        start.elapsed().as_secs_f64(),
    );
    rec.info(format!("SSH banner: {banner:?}"));
    let software = banner_software(&banner);
    rec.gauge_with(
        "probe_ssh_banner_info",
        "The SSH server's software version from its banner",
        &[("software", &software)],
        1.0,
    );
    if !banner.starts_with("SSH-2.0-") && !banner.starts_with("SSH-1.99-") {
        rec.fail(
            FailureReason::Protocol,
            format!("not an SSH-2.0 server: {software}"),
        );
        return false;
    }

    let policy = match (&cfg.host_key_fingerprint, &cfg.known_hosts_file) {
        (Some(fp), _) => Some(HostKeyPolicy::Fingerprint(fp.trim().to_string())),
        (None, Some(f)) => Some(HostKeyPolicy::KnownHosts(f.0.clone())),
        (None, None) => None,
    };
    let seen = Arc::new(parking_lot::Mutex::new(None::<PublicKey>));
    let handler = KeyCatcher { seen: seen.clone() };
    let stream = tokio::io::join(Cursor::new(buf).chain(read), write);
    let kex_start = Instant::now();
    let config = Arc::new(client::Config {
        client_id: russh::SshId::Standard(std::borrow::Cow::Borrowed(concat!(
            "SSH-2.0-siembox_exporter_",
            env!("CARGO_PKG_VERSION")
        ))),
        ..Default::default()
    });
    let session = client::connect_stream(config, stream, handler).await;
    let key = seen.lock().take();
    let Some(key) = key else {
        let msg = match session {
            Err(e) => format!("key exchange failed: {e:?}"),
            Ok(_) => "key exchange ended without a host key".into(),
        };
        rec.fail(FailureReason::Protocol, msg);
        return false;
    };
    rec.gauge(
        "probe_ssh_kex_seconds",
        "Duration of the key exchange",
        kex_start.elapsed().as_secs_f64(),
    );
    let fp = key.fingerprint(HashAlg::Sha256).to_string();
    rec.info(format!("host key {} {fp}", key.algorithm()));
    if let Ok(s) = session {
        let _ = s
            .disconnect(russh::Disconnect::ByApplication, "", "en")
            .await;
    }
    let Some(policy) = policy else {
        return true;
    };
    match verify_host_key(at.host, at.addr.port(), &policy, &key) {
        Ok(()) => {
            rec.gauge(
                "probe_ssh_host_key_match",
                "Whether the host key matched known_hosts or the pinned fingerprint",
                1.0,
            );
            true
        }
        Err(why) => {
            rec.gauge(
                "probe_ssh_host_key_match",
                "Whether the host key matched known_hosts or the pinned fingerprint",
                0.0,
            );
            rec.fail(FailureReason::HostKey, why);
            false
        }
    }
}

/// Accepts any host key (the probe checks it afterwards and never authenticates) and keeps it.
struct KeyCatcher {
    seen: Arc<parking_lot::Mutex<Option<PublicKey>>>,
}

impl client::Handler for KeyCatcher {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &russh::keys::PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        if let russh::keys::PublicKeyOrCertificate::PublicKey { key, .. } = key {
            *self.seen.lock() = Some(key.clone());
            return Ok(true);
        }
        Ok(false)
    }
}

/// The first line starting with `SSH-`, once it is complete.
fn find_banner(buf: &[u8]) -> Option<String> {
    let mut start = 0;
    while let Some(end) = buf[start..].iter().position(|b| *b == b'\n') {
        let line = &buf[start..start + end];
        if line.starts_with(b"SSH-") {
            let s = String::from_utf8_lossy(line);
            return Some(s.trim_end_matches('\r').to_string());
        }
        start += end + 1;
    }
    None
}

/// `SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3` → `OpenSSH_9.2p1`: the software version only, so the
/// label stays bounded (comments carry distribution patch levels and free text).
pub fn banner_software(banner: &str) -> String {
    let rest = banner.splitn(3, '-').nth(2).unwrap_or("");
    let software = rest.split(' ').next().unwrap_or("");
    let s: String = software
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(64)
        .collect();
    if s.is_empty() {
        "unknown".into()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn banner_is_found_after_preamble_lines_and_reduced_to_software() {
        let b = find_banner(b"hello\r\nSSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n\0\0").unwrap();
        assert_eq!(b, "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3");
        assert_eq!(banner_software(&b), "OpenSSH_9.2p1");
        assert!(find_banner(b"SSH-2.0-partial").is_none());
        assert_eq!(banner_software("SSH-2.0-"), "unknown");
    }
}
