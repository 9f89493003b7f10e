//! `probe_ssl_last_chain_expiry_timestamp_seconds` as blackbox defines it (prober/tls.go
//! `getLastChainExpiry`): over every chain Go's verifier builds from the leaf to a trusted root,
//! the earliest `notAfter` in the chain, root included; the series is the latest of those.
//!
//! webpki stops at the first chain it finds; its `verify_path` callback, refusing each path,
//! makes it walk them all. A trust anchor keeps only the root's name and key, so every
//! configured root certificate with that name and key, valid now, counts as its own chain, as
//! in Go (a CA re-issued with a longer validity verifies the leaf through either).

use rustls::pki_types::{CertificateDer, TrustAnchor, UnixTime};
use std::cell::RefCell;

/// The latest chain expiry (unix seconds); `None` when no chain verifies.
pub fn last_chain_expiry(
    end: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    anchors: &[TrustAnchor<'_>],
    root_certs: &[CertificateDer<'_>],
    algs: &[&dyn rustls::pki_types::SignatureVerificationAlgorithm],
) -> Option<i64> {
    let now = UnixTime::now();
    let leaf = webpki::EndEntityCert::try_from(end).ok()?;
    let chains: RefCell<Vec<i64>> = RefCell::new(Vec::new());
    let record = |path: &webpki::VerifiedPath<'_>| {
        let mut sent = vec![not_after(end)];
        sent.extend(
            path.intermediate_certificates()
                .map(|c| not_after(&c.der())),
        );
        let sent = sent.into_iter().flatten().min();
        let anchor = path.anchor();
        let mut roots: Vec<Option<i64>> = root_certs
            .iter()
            .filter(|r| same_anchor(r, anchor) && valid_now(r, now))
            .map(not_after)
            .collect();
        // A system root comes without its certificate: its expiry is not known.
        if roots.is_empty() {
            roots.push(None);
        }
        for root in roots {
            if let Some(e) = sent.into_iter().chain(root).min() {
                chains.borrow_mut().push(e);
            }
        }
        Err(webpki::Error::UnknownIssuer)
    };
    // The result is always an error (every path is refused); the paths are what we want.
    let _ = leaf.verify_for_usage(
        algs,
        anchors,
        intermediates,
        now,
        webpki::KeyUsage::server_auth(),
        None,
        Some(&record),
    );
    chains.into_inner().into_iter().max()
}

fn not_after(der: &CertificateDer<'_>) -> Option<i64> {
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
    Some(cert.validity().not_after.timestamp())
}

fn valid_now(der: &CertificateDer<'_>, now: UnixTime) -> bool {
    x509_parser::parse_x509_certificate(der.as_ref()).is_ok_and(|(_, c)| {
        let now = now.as_secs() as i64;
        c.validity().not_before.timestamp() <= now && now <= c.validity().not_after.timestamp()
    })
}

fn same_anchor(root: &CertificateDer<'_>, anchor: &TrustAnchor<'_>) -> bool {
    webpki::anchor_from_trusted_cert(root).is_ok_and(|a| {
        a.subject == anchor.subject && a.subject_public_key_info == anchor.subject_public_key_info
    })
}
