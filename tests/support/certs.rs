//! A throwaway PKI for TLS tests: a CA (its PEM written to a temp file for `tls_config.ca_file`),
//! a valid leaf for 127.0.0.1/localhost, an expired leaf, and a leaf from a CA nobody trusts.

use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use std::path::PathBuf;

/// A server certificate with its key.
pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
    /// notAfter, unix seconds.
    pub not_after: i64,
}

impl Leaf {
    /// A TLS acceptor serving this certificate, offering `alpn` protocols.
    pub fn acceptor(&self, alpn: &[&[u8]]) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(self.server_config(alpn)))
    }

    /// The rustls server settings for this certificate, offering `alpn` protocols.
    pub fn server_config(&self, alpn: &[&[u8]]) -> rustls::ServerConfig {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let certs = vec![CertificateDer::from_pem_slice(self.cert_pem.as_bytes()).unwrap()];
        let key = PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).unwrap();
        let mut config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        config
    }
}

pub struct TestPki {
    _dir: tempfile::TempDir,
    /// PEM of the trusted CA.
    pub ca_file: PathBuf,
    /// Valid until 2040-01-01, signed by the trusted CA.
    pub valid: Leaf,
    /// Expired on 2021-01-01, signed by the trusted CA.
    pub expired: Leaf,
    /// Valid, but signed by a CA that `ca_file` does not hold.
    pub untrusted: Leaf,
    /// Self-signed with CA:TRUE for localhost/127.0.0.1 (what `openssl req -x509` makes by
    /// default), trusted through its own file `self_signed_ca_file`.
    pub self_signed_ca: Leaf,
    pub self_signed_ca_file: PathBuf,
}

/// 2040-01-01T00:00:00Z
pub const VALID_NOT_AFTER: i64 = 2_208_988_800;
/// 2021-01-01T00:00:00Z
pub const EXPIRED_NOT_AFTER: i64 = 1_609_459_200;

impl TestPki {
    pub fn generate() -> TestPki {
        let (ca_pem, ca) = new_ca("siembox test CA");
        let (_, other_ca) = new_ca("untrusted test CA");
        let dir = tempfile::tempdir().unwrap();
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, ca_pem).unwrap();
        let self_signed_ca = self_signed_ca_leaf();
        let self_signed_ca_file = dir.path().join("self-signed-ca.pem");
        std::fs::write(&self_signed_ca_file, &self_signed_ca.cert_pem).unwrap();
        TestPki {
            _dir: dir,
            ca_file,
            valid: leaf(&ca, (2020, 1, 1), (2040, 1, 1), VALID_NOT_AFTER),
            expired: leaf(&ca, (2020, 1, 1), (2021, 1, 1), EXPIRED_NOT_AFTER),
            untrusted: leaf(&other_ca, (2020, 1, 1), (2040, 1, 1), VALID_NOT_AFTER),
            self_signed_ca,
            self_signed_ca_file,
        }
    }
}

/// A CA certificate's settings valid from 2019 to the first day of `until`, no name yet.
fn ca_params(until: i32) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = date_time_ymd(2019, 1, 1);
    params.not_after = date_time_ymd(until, 1, 1);
    params
}

fn new_ca(name: &str) -> (String, Issuer<'static, KeyPair>) {
    let key = KeyPair::generate().unwrap();
    let mut params = ca_params(2099);
    params.distinguished_name.push(DnType::CommonName, name);
    // More than a CN, so name formatting (Go prints the most specific first) is exercised.
    params
        .distinguished_name
        .push(DnType::OrganizationName, "siembox, tests");
    params.distinguished_name.push(DnType::CountryName, "DE");
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), Issuer::new(params, key))
}

fn self_signed_ca_leaf() -> Leaf {
    let key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.not_before = date_time_ymd(2020, 1, 1);
    params.not_after = date_time_ymd(2040, 1, 1);
    let cert = params.self_signed(&key).unwrap();
    Leaf {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        not_after: VALID_NOT_AFTER,
    }
}

fn leaf(
    ca: &Issuer<'static, KeyPair>,
    from: (i32, u8, u8),
    until: (i32, u8, u8),
    not_after: i64,
) -> Leaf {
    let key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    // emailAddress: an attribute Go does not name (it prints it as OID=#DER, last).
    params.distinguished_name.push(
        DnType::CustomDnType(vec![1, 2, 840, 113_549, 1, 9, 1]),
        rcgen::DnValue::Ia5String("ops@example.org".try_into().unwrap()),
    );
    params.not_before = date_time_ymd(from.0, from.1, from.2);
    params.not_after = date_time_ymd(until.0, until.1, until.2);
    let cert = params.signed_by(&key, ca).unwrap();
    Leaf {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        not_after,
    }
}

/// A CA re-issued with a longer validity under the same name and key (both copies in
/// `ca_file`, the shorter first) and a leaf it signed, with an Organization and a Common Name,
/// DNS and IP SANs and a serial whose DER has a leading zero byte: what blackbox's
/// `probe_ssl_last_chain_*` series are computed from.
pub struct ReissuedCa {
    _dir: tempfile::TempDir,
    pub ca_file: PathBuf,
    pub leaf: Leaf,
}

/// notAfter of the first root, 2030-01-01T00:00:00Z.
pub const SHORT_ROOT_NOT_AFTER: i64 = 1_893_456_000;
/// notAfter of the re-issued root, 2035-01-01T00:00:00Z.
pub const LONG_ROOT_NOT_AFTER: i64 = 2_051_222_400;

impl ReissuedCa {
    pub fn generate() -> ReissuedCa {
        let key = KeyPair::generate().unwrap();
        let root = |until: i32| {
            let mut params = ca_params(until);
            params
                .distinguished_name
                .push(DnType::OrganizationName, "Siembox Test, Inc.");
            params
                .distinguished_name
                .push(DnType::CommonName, "siembox reissued CA");
            params
        };
        let short = root(2030).self_signed(&key).unwrap();
        let long_params = root(2035);
        let long = long_params.self_signed(&key).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let ca_file = dir.path().join("reissued-ca.pem");
        std::fs::write(&ca_file, format!("{}{}", short.pem(), long.pem())).unwrap();

        let leaf_key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec![
            "localhost".to_string(),
            "chain.test".to_string(),
            "127.0.0.1".to_string(),
        ])
        .unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "chain.test");
        params
            .distinguished_name
            .push(DnType::OrganizationName, "Siembox Org");
        params.serial_number = Some(rcgen::SerialNumber::from_slice(&[0x8f, 0x12, 0x34, 0x56]));
        params.not_before = date_time_ymd(2020, 1, 1);
        params.not_after = date_time_ymd(2040, 1, 1);
        let cert = params
            .signed_by(&leaf_key, &Issuer::new(long_params, key))
            .unwrap();
        ReissuedCa {
            _dir: dir,
            ca_file,
            leaf: Leaf {
                cert_pem: cert.pem(),
                key_pem: leaf_key.serialize_pem(),
                not_after: VALID_NOT_AFTER,
            },
        }
    }
}
