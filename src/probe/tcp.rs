//! The tcp prober: connect (optionally TLS), then blackbox's `query_response` dialogue with
//! `expect` regexps (captures usable as `${1}` in the next `send`), `expect_bytes` and `starttls`.

use super::recorder::{FailureReason, ProbeRecorder};
use super::resolve::{resolve_target, split_host_port};
use super::{ProbeEnv, ProbeRequest};
use crate::config::QueryResponse;
use std::net::{IpAddr, SocketAddr};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Any byte stream the dialogue can run over: plain TCP, or TLS after `tls`/`starttls`.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// The largest line an `expect` step buffers before giving up on it.
const MAX_LINE: usize = 64 * 1024;

pub async fn probe(req: &ProbeRequest<'_>, env: &ProbeEnv, rec: &mut ProbeRecorder) -> bool {
    // Present on every outcome, as blackbox registers them before probing.
    rec.gauge(REGEX_METRIC, REGEX_HELP, 0.0);
    rec.gauge(BYTES_METRIC, BYTES_HELP, 0.0);
    let ok = connect_and_talk(req, env, rec).await;
    if rec.failure() == Some(FailureReason::Regexp) {
        rec.gauge(REGEX_METRIC, REGEX_HELP, 1.0);
    }
    ok
}

const REGEX_METRIC: &str = "probe_failed_due_to_regex";
const REGEX_HELP: &str = "Indicates if probe failed due to regex";
const BYTES_METRIC: &str = "probe_failed_due_to_bytes";
const BYTES_HELP: &str = "Indicates if probe failed due to bytes";

async fn connect_and_talk(req: &ProbeRequest<'_>, env: &ProbeEnv, rec: &mut ProbeRecorder) -> bool {
    let cfg = &req.module.tcp;
    let (host, port) = match split_host_port(req.target) {
        Ok(hp) => hp,
        Err(e) => {
            rec.fail(FailureReason::Config, e);
            return false;
        }
    };
    let Some(ip) = resolve_target(
        &env.resolver,
        host,
        cfg.preferred_ip_protocol,
        cfg.ip_protocol_fallback,
        rec,
    )
    .await
    else {
        return false;
    };
    let stream = match connect(
        SocketAddr::new(ip, port),
        cfg.source_ip_address.as_deref(),
        rec,
    )
    .await
    {
        Some(s) => s,
        None => return false,
    };
    let mut conn: Box<dyn Io> = Box::new(stream);
    // blackbox: `hostname=` is the TLS server name unless tls_config.server_name sets one.
    let host = req.hostname.filter(|h| !h.is_empty()).unwrap_or(host);
    if cfg.tls {
        let client = match env.tls_client(req.module_name, "tcp", &cfg.tls_config, &[]) {
            Ok(c) => c,
            Err(e) => {
                rec.fail(FailureReason::Config, e);
                return false;
            }
        };
        match client.connect(conn, host, rec).await {
            Some(tls) => conn = Box::new(tls),
            None => return false,
        }
    }
    dialogue(req, env, host, conn, &cfg.query_response, rec).await
}

/// Connects from `source` if given; records connection failures with their reason.
pub async fn connect(
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

async fn dialogue(
    req: &ProbeRequest<'_>,
    env: &ProbeEnv,
    host: &str,
    mut conn: Box<dyn Io>,
    steps: &[QueryResponse],
    rec: &mut ProbeRecorder,
) -> bool {
    let mut buf: Vec<u8> = Vec::new();
    let mut captures: Vec<String> = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        if let Some(re) = &step.expect {
            rec.debug(format!(
                "Processing query response entry {i}: expecting {:?}",
                re.as_str()
            ));
            match read_until_match(&mut conn, &mut buf, re).await {
                Ok(Some(groups)) => {
                    captures = groups;
                    expect_info(step, &captures, rec);
                }
                Ok(None) => {
                    rec.fail(
                        FailureReason::Regexp,
                        format!(
                            "Regexp {:?} did not match any line before end of stream",
                            re.as_str()
                        ),
                    );
                    return false;
                }
                Err(e) => {
                    rec.fail(
                        FailureReason::from_io(&e),
                        format!("Error reading from connection: {e}"),
                    );
                    return false;
                }
            }
        }
        if let Some(expected) = step.expect_bytes.as_ref().filter(|b| !b.is_empty()) {
            let want = expected.as_bytes();
            let mut got = Vec::with_capacity(want.len());
            while got.len() < want.len() {
                if buf.is_empty() && fill(&mut conn, &mut buf).await.unwrap_or(0) == 0 {
                    break;
                }
                let take = (want.len() - got.len()).min(buf.len());
                got.extend(buf.drain(..take));
            }
            // A short read is a read failure in blackbox, a different read a bytes mismatch.
            if got.len() < want.len() {
                rec.fail(
                    FailureReason::Protocol,
                    format!("Read less data than expected: got {got:?}, expected {want:?}"),
                );
                return false;
            }
            if got != want {
                rec.gauge(BYTES_METRIC, BYTES_HELP, 1.0);
                rec.fail(
                    FailureReason::Protocol,
                    format!("Bytes did not match: got {got:?}, expected {want:?}"),
                );
                return false;
            }
        }
        if let Some(send) = step.send.as_ref().filter(|b| !b.is_empty()) {
            // Text gets `${N}` captures expanded; raw bytes (`!!binary`) go out as they are.
            let mut data = match std::str::from_utf8(send.as_bytes()) {
                Ok(text) => expand(text, &captures).into_bytes(),
                Err(_) => send.as_bytes().to_vec(),
            };
            rec.debug(format!("Sending {:?}", String::from_utf8_lossy(&data)));
            data.push(b'\n');
            if let Err(e) = conn.write_all(&data).await {
                rec.fail(FailureReason::from_io(&e), format!("Failed to send: {e}"));
                return false;
            }
        }
        if step.starttls {
            let client =
                match env.tls_client(req.module_name, "tcp", &req.module.tcp.tls_config, &[]) {
                    Ok(c) => c,
                    Err(e) => {
                        rec.fail(FailureReason::Config, e);
                        return false;
                    }
                };
            buf.clear();
            match client.connect(conn, host, rec).await {
                Some(tls) => conn = Box::new(tls),
                None => return false,
            }
            rec.debug("TLS upgrade (STARTTLS) done");
        }
    }
    true
}

/// blackbox's `probe_expect_info`: the step's labels, values expanded from the match.
fn expect_info(step: &QueryResponse, captures: &[String], rec: &mut ProbeRecorder) {
    if step.labels.is_empty() {
        return;
    }
    let values: Vec<String> = step
        .labels
        .iter()
        .map(|l| expand(&l.value, captures))
        .collect();
    let labels: Vec<(&'static str, &str)> = step
        .labels
        .iter()
        .zip(&values)
        .map(|(l, v)| (l.name.0, v.as_str()))
        .collect();
    rec.gauge_with(
        "probe_expect_info",
        "Explicit content matched",
        &labels,
        1.0,
    );
}

async fn fill(conn: &mut Box<dyn Io>, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    let mut chunk = [0u8; 4096];
    let n = conn.read(&mut chunk).await?;
    buf.extend_from_slice(&chunk[..n]);
    Ok(n)
}

/// Reads lines until one matches `re`; returns its capture groups, `None` at end of stream.
async fn read_until_match(
    conn: &mut Box<dyn Io>,
    buf: &mut Vec<u8>,
    re: &crate::config::Regexp,
) -> std::io::Result<Option<Vec<String>>> {
    loop {
        while let Some(pos) = buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buf.drain(..=pos).collect();
            let text = String::from_utf8_lossy(&line);
            let text = text.trim_end_matches(['\n', '\r']);
            if let Some(caps) = re.0.captures(text) {
                return Ok(Some(
                    caps.iter()
                        .map(|m| m.map(|m| m.as_str().to_string()).unwrap_or_default())
                        .collect(),
                ));
            }
        }
        if buf.len() > MAX_LINE {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "line longer than 64 KiB",
            ));
        }
        if fill(conn, buf).await? == 0 {
            // A last line without newline still counts.
            if !buf.is_empty() {
                let text = String::from_utf8_lossy(buf).to_string();
                buf.clear();
                if let Some(caps) = re.0.captures(text.trim_end_matches('\r')) {
                    return Ok(Some(
                        caps.iter()
                            .map(|m| m.map(|m| m.as_str().to_string()).unwrap_or_default())
                            .collect(),
                    ));
                }
            }
            return Ok(None);
        }
    }
}

/// Replaces `${N}` and `$N` with capture group N of the last `expect` match.
pub fn expand(template: &str, captures: &[String]) -> String {
    let re = regex_lite_groups();
    re.replace_all(template, |c: &regex::Captures<'_>| {
        let idx: usize = c
            .get(1)
            .or_else(|| c.get(2))
            .and_then(|m| m.as_str().parse().ok())
            .unwrap_or(usize::MAX);
        captures.get(idx).cloned().unwrap_or_default()
    })
    .into_owned()
}

fn regex_lite_groups() -> &'static regex::Regex {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| regex::Regex::new(r"\$\{(\d+)\}|\$(\d+)").expect("static regex"))
}

#[cfg(test)]
mod tests {
    use super::expand;

    #[test]
    fn expands_capture_groups() {
        let caps = vec!["PING :abc".to_string(), "abc".to_string()];
        assert_eq!(expand("PONG ${1}", &caps), "PONG abc");
        assert_eq!(expand("PONG $1 ${9}", &caps), "PONG abc ");
        assert_eq!(expand("no groups", &caps), "no groups");
    }
}
