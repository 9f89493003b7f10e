//! `--web.config.file`: TLS and basic auth on our own endpoints, in the Prometheus exporter-toolkit
//! format (`tls_server_config`, `basic_auth_users` with bcrypt hashes, `http_server_config.headers`).

use super::basic_auth::BasicAuth;
use crate::config::{read_yaml_file, ConfigError, ExistingFile, TlsVersion};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct WebConfigFile {
    #[serde(default)]
    tls_server_config: Option<TlsServerConfig>,
    #[serde(default)]
    basic_auth_users: BTreeMap<String, String>,
    #[serde(default)]
    http_server_config: Option<HttpServerConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsServerConfig {
    cert_file: ExistingFile,
    key_file: ExistingFile,
    #[serde(default)]
    client_auth_type: Option<String>,
    #[serde(default)]
    client_ca_file: Option<ExistingFile>,
    #[serde(default)]
    min_version: Option<TlsVersion>,
    #[serde(default)]
    max_version: Option<TlsVersion>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpServerConfig {
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    http2: Option<bool>,
}

/// The loaded web security settings, shared by every connection.
pub struct WebSecurity {
    pub tls: Option<Arc<ServerConfig>>,
    pub auth: BasicAuth,
    pub headers: Vec<(hyper::header::HeaderName, hyper::header::HeaderValue)>,
    /// `http_server_config.http2: false` serves HTTP/1.1 only.
    pub http2: bool,
}

impl WebSecurity {
    pub fn load(path: &Path) -> Result<WebSecurity, ConfigError> {
        let origin = path.display().to_string();
        let file: WebConfigFile = read_yaml_file(path)?;
        let fail = |field: &str, msg: String| ConfigError::single(&origin, field, msg);
        let tls = match &file.tls_server_config {
            Some(t) => Some(Arc::new(
                server_tls(t).map_err(|e| fail("tls_server_config", e))?,
            )),
            None => None,
        };
        for (user, hash) in &file.basic_auth_users {
            if !hash.starts_with("$2") {
                return Err(fail(
                    &format!("basic_auth_users.{user}"),
                    "expected a bcrypt hash ($2y$…)".into(),
                ));
            }
        }
        let mut headers = Vec::new();
        if let Some(h) = &file.http_server_config {
            for (k, v) in &h.headers {
                let name = hyper::header::HeaderName::try_from(k.as_str()).map_err(|_| {
                    fail(
                        "http_server_config.headers",
                        format!("invalid header name {k:?}"),
                    )
                })?;
                let value = hyper::header::HeaderValue::try_from(v.as_str()).map_err(|_| {
                    fail(
                        "http_server_config.headers",
                        format!("invalid value for header {k}"),
                    )
                })?;
                headers.push((name, value));
            }
        }
        let http2 = file
            .http_server_config
            .as_ref()
            .and_then(|h| h.http2)
            .unwrap_or(true);
        let tls = match (tls, http2) {
            (Some(mut t), false) => {
                Arc::make_mut(&mut t).alpn_protocols = vec![b"http/1.1".to_vec()];
                Some(t)
            }
            (t, _) => t,
        };
        Ok(WebSecurity {
            tls,
            auth: BasicAuth::new(file.basic_auth_users),
            headers,
            http2,
        })
    }

    pub fn requires_auth(&self) -> bool {
        !self.auth.is_empty()
    }

    /// Checks an `Authorization` header value against `basic_auth_users` (see `basic_auth`).
    pub async fn authorized(self: &Arc<Self>, header: Option<&str>) -> bool {
        if self.auth.is_empty() {
            return true;
        }
        let Some((user, password)) = header.and_then(decode_basic) else {
            return false;
        };
        self.auth.check(&user, &password).await
    }
}

fn decode_basic(header: &str) -> Option<(String, String)> {
    use base64::Engine;
    let encoded = header
        .strip_prefix("Basic ")
        .or_else(|| header.strip_prefix("basic "))?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (u, p) = text.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

fn server_tls(t: &TlsServerConfig) -> Result<ServerConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&t.cert_file.0)
        .and_then(|i| i.collect())
        .map_err(|e| format!("cert_file {}: {e}", t.cert_file.0.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "cert_file {} holds no certificate",
            t.cert_file.0.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&t.key_file.0).map_err(|_| {
        format!(
            "key_file {} holds no usable private key",
            t.key_file.0.display()
        )
    })?;
    let lo = t.min_version.unwrap_or(TlsVersion::TLS12);
    let hi = t.max_version.unwrap_or(TlsVersion::TLS13);
    let mut versions = Vec::new();
    if lo <= TlsVersion::TLS12 && hi >= TlsVersion::TLS12 {
        versions.push(&rustls::version::TLS12);
    }
    if hi >= TlsVersion::TLS13 && lo <= TlsVersion::TLS13 {
        versions.push(&rustls::version::TLS13);
    }
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| format!("TLS versions: {e}"))?;
    let client_auth = t.client_auth_type.as_deref().unwrap_or("NoClientCert");
    let builder = match client_auth {
        "NoClientCert" => builder.with_no_client_auth(),
        "RequireAndVerifyClientCert" | "VerifyClientCertIfGiven" => {
            let ca = t.client_ca_file.as_ref().ok_or("client_auth_type needs client_ca_file")?;
            let mut roots = RootCertStore::empty();
            for c in CertificateDer::pem_file_iter(&ca.0).map_err(|e| format!("client_ca_file: {e}"))? {
                roots.add(c.map_err(|e| format!("client_ca_file: {e}"))?).map_err(|e| format!("client_ca_file: {e}"))?;
            }
            let v = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let v = if client_auth == "VerifyClientCertIfGiven" { v.allow_unauthenticated() } else { v };
            builder.with_client_cert_verifier(v.build().map_err(|e| format!("client_ca_file: {e}"))?)
        }
        other => return Err(format!("client_auth_type {other:?} is not supported (NoClientCert, RequireAndVerifyClientCert, VerifyClientCertIfGiven)")),
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| format!("certificate and key: {e}"))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_basic_credentials() {
        assert_eq!(
            decode_basic("Basic dXNlcjpwYTpzcw=="),
            Some(("user".into(), "pa:ss".into()))
        );
        assert_eq!(decode_basic("Bearer x"), None);
        assert_eq!(decode_basic("Basic !!!"), None);
    }
}
