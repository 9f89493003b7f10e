//! blackbox_exporter 0.28's load-time rules for one module, so a file is accepted or rejected as
//! blackbox would: the "at most one of" rules of Prometheus' HTTP client and TLS settings, the
//! http prober's cross-field rules, header matchers and `query_response` steps. Values blackbox
//! only checks when probing (an unknown `valid_rcodes` name, a `compression` it cannot decode,
//! a `transport_protocol` other than udp or tcp)
//! are warnings here: the file loads, and probes of that module fail with the reason.

use super::module::{HeaderMatch, HttpProbe, Module, QueryResponse, TlsConfig};
use super::ProberKind;

/// One rule broken, at `field` (dotted, relative to the module).
pub(super) struct Finding {
    pub field: String,
    pub message: String,
    /// Rejects the file (blackbox refuses it too); otherwise a load warning.
    pub fatal: bool,
}

pub(super) fn module_findings(module: &Module) -> Vec<Finding> {
    let mut out = Findings(Vec::new());
    http_client(&mut out, &module.http);
    http_probe(&mut out, &module.http);
    let tls_sections = [
        ("http.tls_config", Some(&module.http.tls_config)),
        (
            "http.oauth2.tls_config",
            module
                .http
                .oauth2
                .as_ref()
                .and_then(|o| o.tls_config.as_ref()),
        ),
        ("tcp.tls_config", Some(&module.tcp.tls_config)),
        ("dns.tls_config", Some(&module.dns.tls_config)),
        ("grpc.tls_config", Some(&module.grpc.tls_config)),
        ("unix.tls_config", Some(&module.unix.tls_config)),
        (
            "websocket.http_config.tls_config",
            Some(&module.websocket.http_config.tls_config),
        ),
    ];
    for (at, tls) in tls_sections {
        if let Some(tls) = tls {
            tls_config(&mut out, at, tls);
        }
    }
    let dialogues = [
        ("tcp", &module.tcp.query_response),
        ("unix", &module.unix.query_response),
        ("websocket", &module.websocket.query_response),
    ];
    for (section, steps) in dialogues {
        for (i, step) in steps.iter().enumerate() {
            query_response(&mut out, &format!("{section}.query_response[{i}]"), step);
        }
    }
    dns(&mut out, module);
    out.0
}

struct Findings(Vec<Finding>);

impl Findings {
    fn error(&mut self, field: &str, message: impl Into<String>) {
        self.push(field, message, true);
    }
    fn warn(&mut self, field: &str, message: impl Into<String>) {
        self.push(field, message, false);
    }
    fn push(&mut self, field: &str, message: impl Into<String>, fatal: bool) {
        self.0.push(Finding {
            field: field.to_string(),
            message: message.into(),
            fatal,
        });
    }
}

fn given<T>(o: &Option<T>) -> bool {
    o.is_some()
}

/// Prometheus common's `HTTPClientConfig.Validate`, which blackbox runs on every `http:` section.
/// Headers Prometheus' HTTP client will not let `http_headers` set (its `ReservedHeaders`).
const RESERVED_HEADERS: &[&str] = &[
    "authorization",
    "host",
    "content-encoding",
    "content-length",
    "content-type",
    "user-agent",
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "www-authenticate",
    "accept-encoding",
    "x-prometheus-remote-write-version",
    "x-prometheus-remote-read-version",
    "x-prometheus-scrape-timeout-seconds",
    "x-amz-date",
    "x-amz-security-token",
    "x-amz-content-sha256",
];

fn http_client(out: &mut Findings, h: &HttpProbe) {
    for name in h.http_headers.keys() {
        if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
            out.error(
                &format!("http.http_headers.{name}"),
                format!("setting header {name:?} is not allowed"),
            );
        }
    }
    let bearer = h.bearer_token.as_ref().is_some_and(|s| !s.is_empty());
    let bearer_file = given(&h.bearer_token_file);
    if bearer && bearer_file {
        out.error(
            "http.bearer_token_file",
            "at most one of bearer_token & bearer_token_file must be configured",
        );
    }
    if (given(&h.basic_auth) || given(&h.oauth2)) && (bearer || bearer_file) {
        out.error(
            "http.bearer_token",
            "at most one of basic_auth, oauth2, bearer_token & bearer_token_file must be configured",
        );
    }
    if let Some(b) = &h.basic_auth {
        if !b.username.is_empty() && given(&b.username_file) {
            out.error(
                "http.basic_auth.username_file",
                "at most one of basic_auth username & username_file must be configured",
            );
        }
        if b.password.as_ref().is_some_and(|p| !p.is_empty()) && given(&b.password_file) {
            out.error(
                "http.basic_auth.password_file",
                "at most one of basic_auth password & password_file must be configured",
            );
        }
    }
    if let Some(a) = &h.authorization {
        if bearer || bearer_file {
            out.error(
                "http.authorization",
                "authorization is not compatible with bearer_token & bearer_token_file",
            );
        }
        if a.credentials.as_ref().is_some_and(|c| !c.is_empty()) && given(&a.credentials_file) {
            out.error(
                "http.authorization.credentials_file",
                "at most one of authorization credentials & credentials_file must be configured",
            );
        }
        if a.kind
            .as_deref()
            .is_some_and(|k| k.trim().eq_ignore_ascii_case("basic"))
        {
            out.error(
                "http.authorization.type",
                "authorization type cannot be set to \"basic\", use \"basic_auth\" instead",
            );
        }
        if given(&h.basic_auth) || given(&h.oauth2) {
            out.error(
                "http.authorization",
                "at most one of basic_auth, oauth2 & authorization must be configured",
            );
        }
    }
    if let Some(o) = &h.oauth2 {
        if given(&h.basic_auth) && !given(&h.authorization) {
            out.error(
                "http.oauth2",
                "at most one of basic_auth, oauth2 & authorization must be configured",
            );
        }
        if o.client_id.is_empty() {
            out.error(
                "http.oauth2.client_id",
                "oauth2 client_id must be configured",
            );
        }
        if o.token_url.is_empty() {
            out.error(
                "http.oauth2.token_url",
                "oauth2 token_url must be configured",
            );
        }
        if o.client_secret.as_ref().is_some_and(|s| !s.is_empty()) && given(&o.client_secret_file) {
            out.error(
                "http.oauth2.client_secret_file",
                "at most one of oauth2 client_secret & client_secret_file must be configured",
            );
        }
    }
    // ProxyConfig.Validate: a URL given as "" counts as given only where Go checks for nil.
    let proxy_url = h.proxy_url.as_deref().filter(|u| !u.is_empty());
    if !h.proxy_connect_header.is_empty() && !h.proxy_from_environment && proxy_url.is_none() {
        out.error(
            "http.proxy_connect_header",
            "if proxy_connect_header is configured, proxy_url or proxy_from_environment must also be configured",
        );
    }
    if h.proxy_from_environment && proxy_url.is_some() {
        out.error(
            "http.proxy_url",
            "if proxy_from_environment is configured, proxy_url must not be configured",
        );
    }
    let no_proxy = h.no_proxy.as_deref().is_some_and(|n| !n.is_empty());
    if h.proxy_from_environment && no_proxy {
        out.error(
            "http.no_proxy",
            "if proxy_from_environment is configured, no_proxy must not be configured",
        );
    }
    if h.proxy_url.is_none() && no_proxy {
        out.error(
            "http.no_proxy",
            "if no_proxy is configured, proxy_url must also be configured",
        );
    }
}

/// Prometheus common's `TLSConfig.Validate`.
fn tls_config(out: &mut Findings, at: &str, t: &TlsConfig) {
    let ca = t.ca.as_ref().is_some_and(|s| !s.is_empty());
    let cert = t.cert.as_ref().is_some_and(|s| !s.is_empty());
    let key = t.key.as_ref().is_some_and(|s| !s.is_empty());
    if ca && given(&t.ca_file) {
        out.error(
            &format!("{at}.ca_file"),
            "at most one of ca & ca_file must be configured",
        );
    }
    if cert && given(&t.cert_file) {
        out.error(
            &format!("{at}.cert_file"),
            "at most one of cert & cert_file must be configured",
        );
    }
    if key && given(&t.key_file) {
        out.error(
            &format!("{at}.key_file"),
            "at most one of key and key_file must be configured",
        );
    }
    let using_cert = cert || given(&t.cert_file);
    let using_key = key || given(&t.key_file);
    if using_cert && !using_key {
        out.error(
            &format!("{at}.key_file"),
            "exactly one of key or key_file must be configured when a client certificate is configured",
        );
    } else if using_key && !using_cert {
        out.error(
            &format!("{at}.cert_file"),
            "exactly one of cert or cert_file must be configured when a client key is configured",
        );
    }
}

/// blackbox's own rules for the `http:` section.
fn http_probe(out: &mut Findings, h: &HttpProbe) {
    if h.body.as_ref().is_some_and(|b| !b.is_empty()) && given(&h.body_file) {
        out.error(
            "http.body",
            "setting body and body_file both are not allowed",
        );
    }
    for (name, value) in &h.headers {
        if name.eq_ignore_ascii_case("accept-encoding")
            && !accept_encoding_allows(&h.compression, value)
        {
            out.error(
                &format!("http.headers.{name}"),
                format!(
                    "invalid configuration \"{name}: {value}\", \"compression: {}\": the Accept-Encoding header does not accept the configured compression",
                    h.compression
                ),
            );
        }
    }
    if !h.enable_http3 && h.valid_http_versions.iter().any(|v| v == "HTTP/3.0") {
        out.error(
            "http.valid_http_versions",
            "HTTP/3 cannot be used as a valid HTTP version when enable_http3 is false",
        );
    }
    if h.enable_http3 {
        if h.valid_http_versions
            .iter()
            .any(|v| v == "HTTP/2.0" || v == "HTTP/1.1")
        {
            out.error(
                "http.valid_http_versions",
                "HTTP/3 and HTTP/2.0/1.1 cannot be used together - only HTTP/3.0 is allowed when enable_http3 is true",
            );
        }
        if h.enable_http2 {
            out.error(
                "http.enable_http2",
                "when enable_http3 is true, enable_http2 must be set to false",
            );
        } else {
            // blackbox 0.28 logs the same at load.
            out.warn(
                "http.enable_http3",
                "HTTP/3 is enabled for this module: http:// targets are probed as https:// (HTTP/3 runs over TLS only); consider https:// targets",
            );
        }
    }
    match h.compression.to_ascii_lowercase().as_str() {
        "" | "identity" | "gzip" | "deflate" | "br" => {}
        other => out.warn(
            "http.compression",
            format!("compression {other:?} is not supported (gzip, deflate, br or identity): probes with this module will fail"),
        ),
    }
    let matchers = [
        ("fail_if_header_matches", &h.fail_if_header_matches),
        ("fail_if_header_not_matches", &h.fail_if_header_not_matches),
    ];
    for (list, matchers) in matchers {
        for (i, m) in matchers.iter().enumerate() {
            header_match(out, &format!("http.{list}[{i}]"), m);
        }
    }
}

fn header_match(out: &mut Findings, at: &str, m: &HeaderMatch) {
    if m.header.is_empty() {
        out.error(
            &format!("{at}.header"),
            "header name must be set for HTTP header matchers",
        );
    }
    if m.regexp.as_str().is_empty() {
        out.error(
            &format!("{at}.regexp"),
            "regexp must be set for HTTP header matchers",
        );
    }
}

fn query_response(out: &mut Findings, at: &str, step: &QueryResponse) {
    if step.expect.is_some() && step.expect_bytes.as_ref().is_some_and(|b| !b.is_empty()) {
        out.error(at, "expect and expect_bytes are mutually exclusive");
    }
}

/// blackbox checks `query_name`, `query_type` and `query_class` when a `dns:` section is
/// written; everything else (rcode names, the name's syntax, the source address) when probing.
fn dns(out: &mut Findings, module: &Module) {
    let d = &module.dns;
    if d.transport_protocol == super::module::DnsTransport::Unsupported {
        out.warn(
            "dns.transport_protocol",
            "transport_protocol is neither udp nor tcp: probes with this module will fail",
        );
    }
    if d.section_written && d.query_name.is_empty() {
        out.error("dns.query_name", "query name must be set for DNS module");
    } else if module.prober == ProberKind::Dns && d.query_name.is_empty() {
        out.warn(
            "dns.query_name",
            "the dns prober has no query_name: probes with this module will fail",
        );
    }
}

/// blackbox's rule for `compression` next to an `Accept-Encoding` header: the header must accept
/// the compression (by name or `*`) with a quality above 0, where the highest-quality entry
/// that names it (or `*`) decides.
pub(super) fn accept_encoding_allows(compression: &str, header: &str) -> bool {
    if compression.is_empty() || header.is_empty() {
        return true;
    }
    let mut entries: Vec<(&str, f64)> = header
        .split(',')
        .map(|part| match part.rsplit_once(';') {
            None => (part.trim(), 1.0),
            Some((name, q)) => {
                let q = q.trim();
                let q = q.strip_prefix("q=").unwrap_or(q);
                let quality = q
                    .parse::<f64>()
                    .map_or(0.0, |v| (v * 1000.0).round() / 1000.0);
                (name.trim(), quality)
            }
        })
        .collect();
    // Highest quality first; equal qualities keep their order (a stable sort, as blackbox).
    entries.sort_by(|a, b| b.1.partial_cmp(&a.1).unwrap_or(std::cmp::Ordering::Equal));
    entries
        .iter()
        .find(|(name, _)| *name == compression || *name == "*")
        .is_some_and(|(_, q)| *q > 0.0)
}

#[cfg(test)]
mod tests {
    use super::accept_encoding_allows;

    // blackbox config/config_test.go TestIsEncodingAcceptable: its cases, as (compression,
    // Accept-Encoding, allowed).
    #[test]
    fn accept_encoding_against_compression() {
        let cases = [
            ("", "gzip", true),
            ("gzip", "gzip", true),
            ("gzip", "gzip;q=1.0", true),
            ("gzip", "gzip, compress", true),
            ("gzip", "compress, gzip", true),
            ("br", "gzip, compress", false),
            ("br", "gzip, compress, *", true),
            ("br", "gzip, compress, *;q=0.1", true),
            ("br", "gzip, compress, br;q=0.0", false),
            ("br", "gzip, compress, *;q=0.0", false),
            ("br", "gzip;q=1.0, compress;q=0.5, br;q=0.1, *;q=0.0", true),
            ("br", "*;q=0.0, compress;q=0.5, br;q=0.1, gzip;q=1.0", true),
            (
                "br",
                " gzip;q=1.0, compress; q=0.5, br;q=0.1, *; q=0.0 ",
                true,
            ),
            // Ours: no header, and a quality that does not parse (0, as in Go).
            ("gzip", "", true),
            ("gzip", "gzip;q=high", false),
        ];
        for (compression, header, want) in cases {
            assert_eq!(
                accept_encoding_allows(compression, header),
                want,
                "compression {compression:?}, Accept-Encoding {header:?}"
            );
        }
    }
}
