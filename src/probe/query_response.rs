//! blackbox's `query_response` dialogue, one implementation for every prober that has it (tcp,
//! unix, websocket): `expect` regexps (captures usable as `${1}` in the next `send` and in
//! `labels`, exported on `probe_expect_info`), `expect_bytes`, `send` and `starttls`. What a
//! "unit" is differs by transport (a line of a byte stream, a websocket message), so each
//! transport is a `Channel` and the steps are walked here once.

use super::connect::Io;
use super::recorder::{FailureReason, ProbeRecorder};
use super::tls::TlsClient;
use crate::config::{QueryResponse, Regexp};
use crate::metrics::cardinality::cap_value;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Why a dialogue failed, for the prober's `..._failed_due_to_...` gauges.
#[derive(Debug, PartialEq, Eq)]
pub enum Failed {
    Regex,
    Bytes,
    Other,
}

/// One transport of the dialogue.
pub(crate) trait Channel: Send {
    /// What an `expect` that found nothing read, for its failure message.
    fn unit(&self) -> &'static str;
    /// Reads until a unit matches `re` and returns its capture groups; `None` when none did
    /// (a stream ended; a websocket message did not match, as blackbox reads just one).
    async fn expect(&mut self, re: &Regexp) -> std::io::Result<Option<Vec<String>>>;
    /// Up to `n` bytes; fewer only when the peer stops sending.
    async fn read_bytes(&mut self, n: usize) -> std::io::Result<Vec<u8>>;
    /// Sends one `send` of the dialogue (framing is the transport's).
    async fn send(&mut self, data: &[u8]) -> std::io::Result<()>;
    /// Upgrades the channel to TLS; records its own failure.
    async fn start_tls(&mut self, client: &TlsClient, host: &str, rec: &mut ProbeRecorder) -> bool;
}

/// The dialogue of one module.
pub struct Dialogue<'a> {
    pub steps: &'a [QueryResponse],
    /// `probe_expect_info` label values are capped like every label of ours.
    pub max_label_len: usize,
    /// The TLS client for `starttls`, built only when a step asks for it.
    pub tls: &'a (dyn Fn() -> Result<Arc<TlsClient>, String> + Sync),
    /// TLS server name for `starttls` (unless the module's `tls_config.server_name` sets one).
    pub server_name: &'a str,
}

pub(crate) async fn run(
    d: &Dialogue<'_>,
    ch: &mut impl Channel,
    rec: &mut ProbeRecorder,
) -> Result<(), Failed> {
    let mut captures: Vec<String> = Vec::new();
    for (i, step) in d.steps.iter().enumerate() {
        if let Some(re) = &step.expect {
            rec.debug(format!(
                "Processing query response entry {i}: expecting {:?}",
                re.as_str()
            ));
            match ch.expect(re).await {
                Ok(Some(groups)) => {
                    captures = groups;
                    expect_info(step, &captures, d.max_label_len, rec);
                }
                Ok(None) => {
                    rec.fail(
                        FailureReason::Regexp,
                        format!("Regexp {:?} did not match {}", re.as_str(), ch.unit()),
                    );
                    return Err(Failed::Regex);
                }
                Err(e) => {
                    rec.fail(
                        FailureReason::from_io(&e),
                        format!("Error reading from connection: {e}"),
                    );
                    return Err(Failed::Other);
                }
            }
        }
        if let Some(expected) = step.expect_bytes.as_ref().filter(|b| !b.is_empty()) {
            let want = expected.as_bytes();
            let got = match ch.read_bytes(want.len()).await {
                Ok(got) => got,
                Err(e) => {
                    rec.fail(
                        FailureReason::from_io(&e),
                        format!("Error reading from connection: {e}"),
                    );
                    return Err(Failed::Other);
                }
            };
            // A short read is a read failure in blackbox, a different read a bytes mismatch.
            if got.len() < want.len() {
                rec.fail(
                    FailureReason::Protocol,
                    format!("Read less data than expected: got {got:?}, expected {want:?}"),
                );
                return Err(Failed::Other);
            }
            if got != want {
                rec.fail(
                    FailureReason::Protocol,
                    format!("Bytes did not match: got {got:?}, expected {want:?}"),
                );
                return Err(Failed::Bytes);
            }
        }
        if let Some(send) = step.send.as_ref().filter(|b| !b.is_empty()) {
            // Text gets `${N}` captures expanded; raw bytes (`!!binary`) go out as they are.
            let data = match std::str::from_utf8(send.as_bytes()) {
                Ok(text) => expand(text, &captures).into_bytes(),
                Err(_) => send.as_bytes().to_vec(),
            };
            rec.debug(format!("Sending {:?}", String::from_utf8_lossy(&data)));
            if let Err(e) = ch.send(&data).await {
                rec.fail(FailureReason::from_io(&e), format!("Failed to send: {e}"));
                return Err(Failed::Other);
            }
        }
        if step.starttls {
            let client = match (d.tls)() {
                Ok(c) => c,
                Err(e) => {
                    rec.fail(FailureReason::Config, e);
                    return Err(Failed::Other);
                }
            };
            if !ch.start_tls(&client, d.server_name, rec).await {
                return Err(Failed::Other);
            }
            rec.debug("TLS upgrade (STARTTLS) done");
        }
    }
    Ok(())
}

/// blackbox's `probe_expect_info`: the step's labels, values expanded from the match.
fn expect_info(step: &QueryResponse, captures: &[String], max_len: usize, rec: &mut ProbeRecorder) {
    if step.labels.is_empty() {
        return;
    }
    let values: Vec<String> = step
        .labels
        .iter()
        .map(|l| cap_value(&expand(&l.value, captures), max_len).into_owned())
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

/// Replaces `${N}` and `$N` with capture group N of the last `expect` match.
pub fn expand(template: &str, captures: &[String]) -> String {
    group_reference()
        .replace_all(template, |c: &regex::Captures<'_>| {
            let idx: usize = c
                .get(1)
                .or_else(|| c.get(2))
                .and_then(|m| m.as_str().parse().ok())
                .unwrap_or(usize::MAX);
            captures.get(idx).cloned().unwrap_or_default()
        })
        .into_owned()
}

fn group_reference() -> &'static regex::Regex {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| regex::Regex::new(r"\$\{(\d+)\}|\$(\d+)").expect("static regex"))
}

/// The capture groups of `re` in `text`, if it matches.
pub fn captures(re: &Regexp, text: &str) -> Option<Vec<String>> {
    re.0.captures(text).map(|caps| {
        caps.iter()
            .map(|m| m.map(|m| m.as_str().to_string()).unwrap_or_default())
            .collect()
    })
}

/// The largest line an `expect` step buffers before giving up on it.
const MAX_LINE: usize = 64 * 1024;

/// A byte stream (tcp, unix, TLS on either) read line by line, as blackbox's `bufio.Scanner`.
pub struct StreamChannel {
    conn: Box<dyn Io>,
    buf: Vec<u8>,
}

impl StreamChannel {
    pub fn new(conn: Box<dyn Io>) -> Self {
        StreamChannel {
            conn,
            buf: Vec::new(),
        }
    }

    async fn fill(&mut self) -> std::io::Result<usize> {
        let mut chunk = [0u8; 4096];
        let n = self.conn.read(&mut chunk).await?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }
}

impl Channel for StreamChannel {
    fn unit(&self) -> &'static str {
        "any line before end of stream"
    }

    async fn expect(&mut self, re: &Regexp) -> std::io::Result<Option<Vec<String>>> {
        loop {
            while let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                let text = String::from_utf8_lossy(&line);
                if let Some(groups) = captures(re, text.trim_end_matches(['\n', '\r'])) {
                    return Ok(Some(groups));
                }
            }
            if self.buf.len() > MAX_LINE {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "line longer than 64 KiB",
                ));
            }
            if self.fill().await? == 0 {
                // A last line without newline still counts.
                let text = String::from_utf8_lossy(&self.buf).into_owned();
                self.buf.clear();
                if text.is_empty() {
                    return Ok(None);
                }
                return Ok(captures(re, text.trim_end_matches('\r')));
            }
        }
    }

    async fn read_bytes(&mut self, n: usize) -> std::io::Result<Vec<u8>> {
        let mut got = Vec::with_capacity(n);
        while got.len() < n {
            if self.buf.is_empty() && self.fill().await? == 0 {
                break;
            }
            let take = (n - got.len()).min(self.buf.len());
            got.extend(self.buf.drain(..take));
        }
        Ok(got)
    }

    async fn send(&mut self, data: &[u8]) -> std::io::Result<()> {
        let mut line = Vec::with_capacity(data.len() + 1);
        line.extend_from_slice(data);
        line.push(b'\n');
        self.conn.write_all(&line).await
    }

    async fn start_tls(&mut self, client: &TlsClient, host: &str, rec: &mut ProbeRecorder) -> bool {
        self.buf.clear();
        // The stream is moved into the TLS session; a placeholder holds its place meanwhile.
        let plain = std::mem::replace(
            &mut self.conn,
            Box::new(tokio::io::join(tokio::io::empty(), tokio::io::sink())),
        );
        match client.connect(plain, host, rec).await {
            Some(tls) => {
                self.conn = Box::new(tls);
                true
            }
            None => false,
        }
    }
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
