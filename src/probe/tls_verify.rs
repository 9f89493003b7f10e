//! Certificate chain verification as blackbox (Go's crypto/x509) decides it. webpki refuses a
//! leaf that is itself a CA (`CaUsedAsEndEntity`), so a self-signed CA:TRUE certificate trusted
//! through `ca_file` fails here and passes in blackbox; Go accepts a leaf that is one of the
//! roots as a chain of its own. We do the same for the configured anchors (byte-equal), still
//! checking its validity dates and its name.

use rustls::client::danger::ServerCertVerifier;
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use std::sync::Arc;

#[derive(Debug)]
pub struct ChainVerifier {
    pub webpki: Arc<WebPkiServerVerifier>,
    /// The certificates of `ca_file` / `ca`; empty with the system's roots.
    anchors: Vec<CertificateDer<'static>>,
}

impl ChainVerifier {
    pub fn new(webpki: Arc<WebPkiServerVerifier>, anchors: Vec<CertificateDer<'static>>) -> Self {
        ChainVerifier { webpki, anchors }
    }

    /// Verifies the chain the server sent for `name`; the error is one line.
    pub fn verify(
        &self,
        end: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        name: &ServerName<'_>,
    ) -> Result<(), String> {
        let now = UnixTime::now();
        let err = match self
            .webpki
            .verify_server_cert(end, intermediates, name, &[], now)
        {
            Ok(_) => return Ok(()),
            Err(e) => e,
        };
        if !self.anchors.iter().any(|a| a.as_ref() == end.as_ref()) {
            return Err(err.to_string());
        }
        anchor_as_leaf(end, name, now)
    }
}

/// A leaf that is a configured trust anchor: valid now and issued for `name`.
fn anchor_as_leaf(
    end: &CertificateDer<'_>,
    name: &ServerName<'_>,
    now: UnixTime,
) -> Result<(), String> {
    let (_, cert) = x509_parser::parse_x509_certificate(end.as_ref())
        .map_err(|e| format!("cannot parse the certificate: {e}"))?;
    let now = now.as_secs() as i64;
    let validity = cert.validity();
    if now < validity.not_before.timestamp() {
        return Err("certificate is not valid yet".into());
    }
    if now > validity.not_after.timestamp() {
        return Err("certificate has expired".into());
    }
    let parsed = rustls::server::ParsedCertificate::try_from(end).map_err(|e| e.to_string())?;
    rustls::client::verify_server_name(&parsed, name).map_err(|e| e.to_string())
}
