//! TLS for probes: one client config per module (built once, never per probe: blackbox #269),
//! certificate verification deferred until after the handshake, so an expired or untrusted chain
//! still reports its expiry and chain metrics before the probe fails (blackbox #653).

use super::cert_names;
use super::recorder::{FailureReason, ProbeRecorder};
use super::tls_verify::ChainVerifier;
use crate::config::{TlsConfig, TlsVersion};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use sha2::{Digest, Sha256};
use std::sync::{Arc, OnceLock};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// The system's trust roots, loaded once per process (webpki's bundle where the system has none).
fn system_roots() -> Arc<RootCertStore> {
    static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let mut store = RootCertStore::empty();
            let native = rustls_native_certs::load_native_certs();
            let (added, _) = store.add_parsable_certificates(native.certs);
            if added == 0 {
                store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            }
            Arc::new(store)
        })
        .clone()
}

/// The one crypto provider (ring), built once: signature checks run on every handshake.
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    static PROVIDER: OnceLock<Arc<rustls::crypto::CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

/// A ready TLS client for one module's `tls_config`.
pub struct TlsClient {
    connector: TlsConnector,
    /// `None` when `insecure_skip_verify` is set.
    verifier: Option<ChainVerifier>,
    server_name: Option<String>,
}

impl TlsClient {
    /// Builds the client; reads CA and client-certificate files now, so errors surface at load.
    pub fn build(cfg: &TlsConfig, alpn: &[&[u8]]) -> Result<TlsClient, String> {
        let versions = protocol_versions(cfg.min_version, cfg.max_version)?;
        Self::build_with(cfg, alpn, provider(), &versions)
    }

    /// The client for QUIC (HTTP/3): TLS 1.3 only, as QUIC requires (blackbox raises the
    /// minimum to 1.3 too), ALPN `h3`, and one cipher suite, TLS_AES_128_GCM_SHA256. Every
    /// QUIC stack implements it (RFC 9001 §5.3, RFC 8446 §9.1), and quinn does not tell which
    /// suite was negotiated, so offering only this one keeps `probe_tls_cipher_info` exact.
    pub fn build_quic(cfg: &TlsConfig) -> Result<TlsClient, String> {
        if cfg.max_version.is_some_and(|v| v < TlsVersion::TLS13) {
            return Err("HTTP/3 needs TLS 1.3, but tls_config.max_version is below it".into());
        }
        let mut quic_provider = (*provider()).clone();
        quic_provider.cipher_suites =
            vec![rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256];
        Self::build_with(
            cfg,
            &[b"h3"],
            Arc::new(quic_provider),
            &[&rustls::version::TLS13],
        )
    }

    fn build_with(
        cfg: &TlsConfig,
        alpn: &[&[u8]],
        handshake_provider: Arc<rustls::crypto::CryptoProvider>,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> Result<TlsClient, String> {
        let mut anchors = Vec::new();
        let roots = match (&cfg.ca_file, &cfg.ca) {
            (None, None) => system_roots(),
            (file, inline) => {
                let pem = match (file, inline) {
                    (Some(f), _) => f
                        .read()
                        .map_err(|e| format!("cannot read ca_file {}: {e}", f.0.display()))?,
                    (None, Some(s)) => s.as_bytes().to_vec(),
                    (None, None) => unreachable!("matched above"),
                };
                let mut store = RootCertStore::empty();
                let certs = parse_certs(&pem).map_err(|e| format!("ca_file: {e}"))?;
                anchors.clone_from(&certs);
                let (added, _) = store.add_parsable_certificates(certs);
                if added == 0 {
                    return Err("ca_file holds no usable CA certificate".into());
                }
                Arc::new(store)
            }
        };
        let verifier = if cfg.insecure_skip_verify {
            None
        } else {
            Some(ChainVerifier::new(
                WebPkiServerVerifier::builder_with_provider(roots.clone(), provider())
                    .build()
                    .map_err(|e| format!("cannot build certificate verifier: {e}"))?,
                roots,
                anchors,
            ))
        };
        let builder = ClientConfig::builder_with_provider(handshake_provider)
            .with_protocol_versions(versions)
            .map_err(|e| format!("TLS versions: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(DeferredVerifier {
                inner: verifier.as_ref().map(|v| v.webpki.clone()),
            }));
        let mut config = match client_identity(cfg)? {
            Some((certs, key)) => builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| format!("client certificate: {e}"))?,
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(TlsClient {
            connector: TlsConnector::from(Arc::new(config)),
            verifier,
            server_name: cfg.server_name.clone(),
        })
    }

    /// Handshakes over `io`, verifies the chain against `host` (or `server_name`), then records
    /// blackbox's TLS metrics. Fails the probe with reason `tls` on any error; a chain that fails
    /// verification gets no blackbox TLS series (blackbox's handshake fails before it has any),
    /// only `probe_ssl_unverified_cert_expiry`, so its expiry stays known.
    pub async fn connect<IO: AsyncRead + AsyncWrite + Unpin>(
        &self,
        io: IO,
        host: &str,
        rec: &mut ProbeRecorder,
    ) -> Option<TlsStream<IO>> {
        let server_name = self.server_name_for(host, rec)?;
        let stream = match self.connector.connect(server_name.clone(), io).await {
            Ok(s) => s,
            Err(e) => {
                rec.fail(FailureReason::Tls, format!("TLS handshake failed: {e}"));
                return None;
            }
        };
        let (_, conn) = stream.get_ref();
        let certs: Vec<CertificateDer<'static>> = conn
            .peer_certificates()
            .map(|c| c.iter().map(|c| c.clone().into_owned()).collect())
            .unwrap_or_default();
        let verified = self.verify_and_record(
            &certs,
            &server_name,
            conn.protocol_version(),
            conn.negotiated_cipher_suite(),
            rec,
        );
        verified.then_some(stream)
    }

    /// The name the handshake sends and the chain is verified for: `server_name` of the
    /// config, else `host`. An invalid one fails the probe with reason `tls`.
    pub fn server_name_for(
        &self,
        host: &str,
        rec: &mut ProbeRecorder,
    ) -> Option<ServerName<'static>> {
        let name_text = self.server_name.as_deref().unwrap_or(host);
        let name_text = super::resolve::bare_host(name_text);
        match ServerName::try_from(name_text.to_string()) {
            Ok(n) => Some(n),
            Err(e) => {
                rec.fail(
                    FailureReason::Tls,
                    format!("invalid TLS server name {name_text:?}: {e}"),
                );
                None
            }
        }
    }

    /// The rustls config this client hands to a transport that runs the handshake itself
    /// (QUIC); `verify_and_record` must follow the handshake.
    pub fn client_config(&self) -> Arc<ClientConfig> {
        self.connector.config().clone()
    }

    /// After a handshake: verifies the chain the server sent (unless `insecure_skip_verify`),
    /// then records blackbox's TLS metrics. False, with the reason recorded, when it fails.
    pub fn verify_and_record(
        &self,
        certs: &[CertificateDer<'static>],
        server_name: &ServerName<'_>,
        version: Option<rustls::ProtocolVersion>,
        suite: Option<rustls::SupportedCipherSuite>,
        rec: &mut ProbeRecorder,
    ) -> bool {
        let mut last_chain = None;
        if let Some(verifier) = &self.verifier {
            let Some((end, intermediates)) = certs.split_first() else {
                rec.fail(FailureReason::Tls, "server sent no certificate");
                return false;
            };
            if let Err(e) = verifier.verify(end, intermediates, server_name) {
                if let Some(expiry) = earliest_expiry(certs) {
                    rec.gauge(
                        "probe_ssl_unverified_cert_expiry",
                        "Earliest notAfter (unixtime) of a certificate chain that failed verification",
                        expiry as f64,
                    );
                }
                rec.fail(
                    FailureReason::Tls,
                    format!("certificate verification failed: {e}"),
                );
                return false;
            }
            last_chain = verifier.last_chain_expiry(
                end,
                intermediates,
                provider().signature_verification_algorithms.all,
            );
        }
        record_tls_state(version, suite, certs, last_chain, rec);
        true
    }
}

impl TlsClient {
    /// Handshake and chain verification without a recorder, for drivers that open connections
    /// inside a pool (postgres). Errors are one line, prefixed `TLS`.
    pub async fn connect_verified<IO: AsyncRead + AsyncWrite + Unpin>(
        &self,
        io: IO,
        host: &str,
    ) -> Result<TlsStream<IO>, String> {
        let name_text = super::resolve::bare_host(self.server_name.as_deref().unwrap_or(host));
        let server_name = ServerName::try_from(name_text.to_string())
            .map_err(|e| format!("TLS: invalid server name {name_text:?}: {e}"))?;
        let stream = self
            .connector
            .connect(server_name.clone(), io)
            .await
            .map_err(|e| format!("TLS handshake failed: {e}"))?;
        if let Some(verifier) = &self.verifier {
            let (_, conn) = stream.get_ref();
            let certs = conn.peer_certificates().unwrap_or_default();
            let (end, intermediates) = certs
                .split_first()
                .ok_or_else(|| "TLS: server sent no certificate".to_string())?;
            verifier
                .verify(end, intermediates, &server_name)
                .map_err(|e| format!("TLS certificate verification failed: {e}"))?;
        }
        Ok(stream)
    }
}

fn parse_certs(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    use rustls::pki_types::pem::PemObject;
    let certs: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(pem).collect();
    let certs = certs.map_err(|e| format!("invalid PEM: {e}"))?;
    if certs.is_empty() {
        return Err("no certificate found in PEM".into());
    }
    Ok(certs)
}

fn client_identity(
    cfg: &TlsConfig,
) -> Result<Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>, String> {
    use rustls::pki_types::pem::PemObject;
    let cert_pem = match (&cfg.cert_file, &cfg.cert) {
        (Some(f), _) => Some(
            f.read()
                .map_err(|e| format!("cannot read cert_file {}: {e}", f.0.display()))?,
        ),
        (None, Some(s)) => Some(s.as_bytes().to_vec()),
        _ => None,
    };
    let key_pem = match (&cfg.key_file, &cfg.key) {
        (Some(f), _) => Some(
            f.read()
                .map_err(|e| format!("cannot read key_file {}: {e}", f.0.display()))?,
        ),
        (None, Some(s)) => Some(s.expose().as_bytes().to_vec()),
        _ => None,
    };
    match (cert_pem, key_pem) {
        (None, None) => Ok(None),
        (Some(c), Some(k)) => {
            let certs = parse_certs(&c).map_err(|e| format!("cert_file: {e}"))?;
            let key = PrivateKeyDer::from_pem_slice(&k)
                .map_err(|_| "key_file holds no usable private key".to_string())?;
            Ok(Some((certs, key)))
        }
        _ => Err("cert_file and key_file must be given together".into()),
    }
}

fn protocol_versions(
    min: Option<TlsVersion>,
    max: Option<TlsVersion>,
) -> Result<Vec<&'static rustls::SupportedProtocolVersion>, String> {
    let lo = min.unwrap_or(TlsVersion::TLS12);
    let hi = max.unwrap_or(TlsVersion::TLS13);
    if lo > hi {
        return Err("tls_config.min_version is above max_version".into());
    }
    let mut out = Vec::new();
    // TLS 1.0 and 1.1 are not implemented by rustls; a range reaching down to them uses 1.2.
    if hi >= TlsVersion::TLS12 && lo <= TlsVersion::TLS12 {
        out.push(&rustls::version::TLS12);
    }
    if hi >= TlsVersion::TLS13 {
        out.push(&rustls::version::TLS13);
    }
    if out.is_empty() {
        return Err("tls_config allows only TLS 1.0/1.1, which are not supported".into());
    }
    Ok(out)
}

/// Accepts any chain during the handshake (signatures are still checked); `TlsClient::connect`
/// verifies the chain right after, before any application data is sent.
#[derive(Debug)]
struct DeferredVerifier {
    inner: Option<Arc<WebPkiServerVerifier>>,
}

impl ServerCertVerifier for DeferredVerifier {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &provider().signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &provider().signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        match &self.inner {
            Some(v) => v.supported_verify_schemes(),
            None => provider()
                .signature_verification_algorithms
                .supported_schemes(),
        }
    }
}

/// Blackbox's TLS metrics from what the server sent.
///
/// `probe_ssl_earliest_cert_expiry` is the earliest `notAfter` over every certificate the server
/// sent (leaf and intermediates, not the trust anchor it may omit).
/// `probe_ssl_last_chain_expiry_timestamp_seconds` is `last_chain`, the expiry of the verified
/// chain that lasts longest (see `tls_chains`), or without verification the earliest `notAfter`
/// of the chain as sent; `probe_ssl_last_chain_info` describes the leaf as Go prints it.
pub fn record_tls_state(
    version: Option<rustls::ProtocolVersion>,
    suite: Option<rustls::SupportedCipherSuite>,
    certs: &[CertificateDer<'_>],
    last_chain: Option<i64>,
    rec: &mut ProbeRecorder,
) {
    if let Some(v) = version {
        let name = match v {
            rustls::ProtocolVersion::TLSv1_3 => "TLS 1.3",
            rustls::ProtocolVersion::TLSv1_2 => "TLS 1.2",
            _ => "unknown",
        };
        rec.gauge_with(
            "probe_tls_version_info",
            "Returns the TLS version used or NaN when unknown",
            &[("version", name)],
            1.0,
        );
    }
    if let Some(s) = suite {
        let raw = s.suite().as_str().unwrap_or("unknown");
        let name = raw.replacen("TLS13_", "TLS_", 1);
        rec.gauge_with(
            "probe_tls_cipher_info",
            "Returns the TLS cipher negotiated during handshake",
            &[("cipher", &name)],
            1.0,
        );
    }
    if let Some(e) = earliest_expiry(certs) {
        rec.gauge(
            "probe_ssl_earliest_cert_expiry",
            "Returns last SSL chain expiry in unixtime",
            e as f64,
        );
        rec.gauge(
            "probe_ssl_last_chain_expiry_timestamp_seconds",
            "Returns last SSL chain expiry in timestamp",
            last_chain.unwrap_or(e) as f64,
        );
    }
    if let Some(leaf) = certs.first() {
        if let Ok((_, cert)) = x509_parser::parse_x509_certificate(leaf.as_ref()) {
            let fingerprint = cert_names::hex(&Sha256::digest(leaf.as_ref()));
            rec.gauge_with(
                "probe_ssl_last_chain_info",
                "Contains SSL leaf certificate information",
                &[
                    // In the order Go's client prints them (sorted), so the series line is
                    // byte-for-byte blackbox's.
                    ("fingerprint_sha256", &fingerprint),
                    ("issuer", &cert_names::go_dn(cert.issuer())),
                    ("serialnumber", &cert_names::go_serial(&cert)),
                    ("subject", &cert_names::go_dn(cert.subject())),
                    ("subjectalternative", &cert_names::dns_names(&cert)),
                ],
                1.0,
            );
        }
    }
}

/// The earliest `notAfter` (unixtime) among `certs`.
fn earliest_expiry(certs: &[CertificateDer<'_>]) -> Option<i64> {
    certs
        .iter()
        .filter_map(|der| x509_parser::parse_x509_certificate(der.as_ref()).ok())
        .map(|(_, cert)| cert.validity().not_after.timestamp())
        .min()
}
