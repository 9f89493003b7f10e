//! Certificate chain verification as blackbox (Go's crypto/x509) decides it. webpki refuses a
//! leaf that is itself a CA (`CaUsedAsEndEntity`), so a self-signed CA:TRUE certificate trusted
//! through `ca_file` fails here and passes in blackbox; Go accepts a leaf that is one of the
//! roots as a chain of its own. We do the same for the configured anchors (byte-equal), still
//! checking its validity dates and its name.

use rustls::client::danger::ServerCertVerifier;
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::RootCertStore;
use std::sync::Arc;

#[derive(Debug)]
pub struct ChainVerifier {
    pub webpki: Arc<WebPkiServerVerifier>,
    /// The trust anchors `webpki` was built from.
    roots: Arc<RootCertStore>,
    /// The certificates of `ca_file` / `ca`; empty with the system's roots.
    anchors: Vec<CertificateDer<'static>>,
}

impl ChainVerifier {
    pub fn new(
        webpki: Arc<WebPkiServerVerifier>,
        roots: Arc<RootCertStore>,
        anchors: Vec<CertificateDer<'static>>,
    ) -> Self {
        ChainVerifier {
            webpki,
            roots,
            anchors,
        }
    }

    /// The latest expiry over the chains that verify the leaf (see `tls_chains`); a leaf that
    /// is itself a configured anchor is a chain of its own.
    pub fn last_chain_expiry(
        &self,
        end: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        algs: &[&dyn rustls::pki_types::SignatureVerificationAlgorithm],
    ) -> Option<i64> {
        super::tls_chains::last_chain_expiry(
            end,
            intermediates,
            &self.roots.roots,
            &self.anchors,
            algs,
        )
        .or_else(|| {
            self.anchors
                .iter()
                .any(|a| a.as_ref() == end.as_ref())
                .then(|| x509_parser::parse_x509_certificate(end.as_ref()).ok())
                .flatten()
                .map(|(_, c)| c.validity().not_after.timestamp())
        })
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

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{date_time_ymd, BasicConstraints, CertificateParams, IsCa, KeyPair};
    use rustls::RootCertStore;

    /// A self-signed CA:TRUE certificate for `localhost`, valid between the two years.
    fn self_signed_ca(from: i32, until: i32) -> CertificateDer<'static> {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.not_before = date_time_ymd(from, 1, 1);
        params.not_after = date_time_ymd(until, 1, 1);
        params.self_signed(&key).unwrap().der().clone()
    }

    fn verifier_trusting(cert: &CertificateDer<'static>) -> ChainVerifier {
        let mut roots = RootCertStore::empty();
        roots.add(cert.clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots.clone()), provider)
            .build()
            .unwrap();
        ChainVerifier::new(webpki, Arc::new(roots), vec![cert.clone()])
    }

    #[test]
    fn a_trusted_self_signed_ca_leaf_is_checked_for_dates_and_name() {
        let name = ServerName::try_from("localhost").unwrap();
        let valid = self_signed_ca(2020, 2090);
        // webpki alone refuses it (CaUsedAsEndEntity); as a configured anchor it verifies.
        let v = verifier_trusting(&valid);
        assert!(v
            .webpki
            .verify_server_cert(&valid, &[], &name, &[], UnixTime::now())
            .is_err());
        assert_eq!(v.verify(&valid, &[], &name), Ok(()));
        let other = ServerName::try_from("other.example").unwrap();
        assert!(v.verify(&valid, &[], &other).is_err());

        let expired = self_signed_ca(2018, 2020);
        let e = verifier_trusting(&expired)
            .verify(&expired, &[], &name)
            .unwrap_err();
        assert!(e.contains("expired"), "{e}");
        let future = self_signed_ca(2080, 2090);
        let e = verifier_trusting(&future)
            .verify(&future, &[], &name)
            .unwrap_err();
        assert!(e.contains("not valid yet"), "{e}");

        // Not an anchor: webpki's verdict stands.
        let stranger = self_signed_ca(2020, 2090);
        assert!(verifier_trusting(&valid)
            .verify(&stranger, &[], &name)
            .is_err());
    }
}
