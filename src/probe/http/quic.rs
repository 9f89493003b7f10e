//! HTTP/3 (`enable_http3`): one hop over QUIC. A UDP endpoint of its own per hop (the connect
//! phase), the QUIC handshake, which is the TLS handshake (the tls phase), the chain verified
//! right after it by the module's TLS client as over TCP, then an h3 connection on top.

use super::phases::{add_phase, Phase};
use crate::config::HttpProbe;
use crate::probe::recorder::{FailureReason, ProbeRecorder};
use crate::probe::tls::TlsClient;
use crate::probe::ProbeEnv;
use bytes::{Buf, Bytes};
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use rustls::pki_types::CertificateDer;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// The largest response header section accepted (names, values and 32 bytes a field).
const MAX_RESPONSE_HEADERS: u64 = 1024 * 1024;

/// The response body of an HTTP/3 request: the rest of its stream.
pub(super) type ResponseStream = h3::client::RequestStream<h3_quinn::BidiStream<Bytes>, Bytes>;

/// A ready HTTP/3 connection. Dropping it closes the QUIC connection at once, so the server
/// frees its state as it would on a TCP FIN.
pub(super) struct H3Sender {
    send: h3::client::SendRequest<h3_quinn::OpenStreams, Bytes>,
    connection: quinn::Connection,
    /// Keeps the UDP socket open for as long as the connection is used.
    _endpoint: quinn::Endpoint,
}

impl Drop for H3Sender {
    fn drop(&mut self) {
        self.connection.close(0u32.into(), b"");
    }
}

impl H3Sender {
    /// Sends one request and waits for the response headers; the body stays on the stream.
    pub async fn send(
        &mut self,
        req: Request<Full<Bytes>>,
    ) -> Result<Response<ResponseStream>, String> {
        let (parts, body) = req.into_parts();
        let body = match body.collect().await {
            Ok(b) => b.to_bytes(),
            Err(never) => match never {},
        };
        let mut stream = self
            .send
            .send_request(Request::from_parts(parts, ()))
            .await
            .map_err(|e| e.to_string())?;
        if !body.is_empty() {
            stream.send_data(body).await.map_err(|e| e.to_string())?;
        }
        stream.finish().await.map_err(|e| e.to_string())?;
        let response = stream.recv_response().await.map_err(|e| e.to_string())?;
        Ok(response.map(|()| stream))
    }
}

/// Polls the next piece of an HTTP/3 response body.
pub(super) fn poll_data(
    stream: &mut ResponseStream,
    cx: &mut Context<'_>,
) -> Poll<Option<Result<Bytes, String>>> {
    stream.poll_recv_data(cx).map(|r| match r {
        Ok(Some(mut buf)) => Some(Ok(buf.copy_to_bytes(buf.remaining()))),
        Ok(None) => None,
        Err(e) => Some(Err(e.to_string())),
    })
}

/// Opens the HTTP/3 connection to `addr`, verifying the server as `tls_name` (a
/// `tls_config.server_name` wins). The TLS outcome is recorded into `hop_tls`, everything else
/// into `rec`; on failure the reason is recorded and `None` returned.
#[allow(clippy::too_many_arguments)]
pub(super) async fn open(
    env: &ProbeEnv,
    module_name: &str,
    cfg: &HttpProbe,
    addr: SocketAddr,
    tls_name: &str,
    deadline: Instant,
    rec: &mut ProbeRecorder,
    hop_tls: &mut ProbeRecorder,
) -> Option<(H3Sender, JoinHandle<()>)> {
    let client = match env.quic_tls_client(module_name, &cfg.tls_config) {
        Ok(c) => c,
        Err(e) => {
            rec.fail(FailureReason::Config, format!("tls_config: {e}"));
            return None;
        }
    };
    let quic_config = match quic_client_config(&client) {
        Ok(c) => c,
        Err(e) => {
            rec.fail(FailureReason::Config, format!("tls_config: {e}"));
            return None;
        }
    };

    // Connect: QUIC has no handshake of its own before TLS, so this is the UDP socket.
    let started = Instant::now();
    let local: SocketAddr = if addr.is_ipv6() {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    };
    let endpoint = quinn::Endpoint::client(local);
    add_phase(rec, Phase::Connect, started.elapsed());
    let endpoint = match endpoint {
        Ok(e) => e,
        Err(e) => {
            rec.fail(
                FailureReason::from_io(&e),
                format!("cannot open a UDP socket for QUIC: {e}"),
            );
            return None;
        }
    };
    rec.debug(format!("Dialing QUIC {addr}"));

    // TLS: the QUIC handshake, then the chain check.
    let server_name = client.server_name_for(tls_name, hop_tls)?;
    let started = Instant::now();
    let handshake = tokio::time::timeout_at(deadline, async {
        let connecting = endpoint
            .connect_with(quic_config, addr, &server_name.to_str())
            .map_err(|e| (FailureReason::Config, format!("cannot start QUIC: {e}")))?;
        connecting
            .await
            .map_err(|e| (handshake_failure(&e), format!("QUIC handshake failed: {e}")))
    })
    .await;
    let connection = match handshake {
        Ok(Ok(c)) => c,
        Ok(Err((reason, message))) => {
            add_phase(rec, Phase::Tls, started.elapsed());
            hop_tls.fail(reason, message);
            return None;
        }
        Err(_) => {
            add_phase(rec, Phase::Tls, started.elapsed());
            rec.fail(
                FailureReason::Timeout,
                "timed out during the QUIC handshake",
            );
            return None;
        }
    };
    let certs: Vec<CertificateDer<'static>> = connection
        .peer_identity()
        .and_then(|id| id.downcast::<Vec<CertificateDer<'static>>>().ok())
        .map(|c| *c)
        .unwrap_or_default();
    let verified = client.verify_and_record(
        &certs,
        &server_name,
        Some(rustls::ProtocolVersion::TLSv1_3),
        Some(rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256),
        hop_tls,
    );
    add_phase(rec, Phase::Tls, started.elapsed());
    if !verified {
        connection.close(0u32.into(), b"");
        return None;
    }

    // h3's setup sends its SETTINGS without waiting for the server's. Response headers are
    // bounded (h3 accepts any size by default) like hyper bounds them over TCP.
    let setup = tokio::time::timeout_at(
        deadline,
        h3::client::builder()
            .max_field_section_size(MAX_RESPONSE_HEADERS)
            .build(h3_quinn::Connection::new(connection.clone())),
    )
    .await;
    let (mut driver, send) = match setup {
        Ok(Ok(pair)) => pair,
        Ok(Err(e)) => {
            rec.fail(FailureReason::Protocol, format!("HTTP/3 setup failed: {e}"));
            return None;
        }
        Err(_) => {
            rec.fail(FailureReason::Timeout, "timed out setting up HTTP/3");
            return None;
        }
    };
    let driver = tokio::spawn(async move {
        let _ = std::future::poll_fn(|cx| driver.poll_close(cx)).await;
    });
    Some((
        H3Sender {
            send,
            connection,
            _endpoint: endpoint,
        },
        driver,
    ))
}

/// quinn's settings for one probe: the module's TLS client; quinn's transport defaults stay
/// (its idle timeout is longer than any probe, which its own deadline ends).
fn quic_client_config(client: &TlsClient) -> Result<quinn::ClientConfig, String> {
    let tls = quinn::crypto::rustls::QuicClientConfig::try_from(client.client_config())
        .map_err(|e| format!("cannot use it for QUIC: {e}"))?;
    Ok(quinn::ClientConfig::new(Arc::new(tls)))
}

/// A TLS alert (QUIC's crypto error codes) is a TLS failure; anything else is the connection's.
fn handshake_failure(e: &quinn::ConnectionError) -> FailureReason {
    let code = match e {
        quinn::ConnectionError::TransportError(t) => u64::from(t.code),
        quinn::ConnectionError::ConnectionClosed(c) => u64::from(c.error_code),
        quinn::ConnectionError::TimedOut => return FailureReason::Timeout,
        _ => return FailureReason::Connection,
    };
    if (0x100..=0x1ff).contains(&code) {
        FailureReason::Tls
    } else {
        FailureReason::Connection
    }
}
