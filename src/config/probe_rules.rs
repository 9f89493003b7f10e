//! Checks of one prober's options that need more than their types (protocol names, header
//! syntax), run at load so a bad module is refused with its field. They live here, below the
//! probers, so config never calls into a prober.

use super::dns_names;
use super::{DnsProbe, GrpcProbe, WebsocketProbe};
use std::net::IpAddr;

/// Problems with a dns module that can be found without probing, as (field, message).
pub fn dns_problems(cfg: &DnsProbe) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    if let Err(e) = dns_names::query_type(&cfg.query_type) {
        out.push(("query_type", e));
    }
    if let Err(e) = dns_names::query_class(&cfg.query_class) {
        out.push(("query_class", e));
    }
    for r in &cfg.valid_rcodes {
        if let Err(e) = dns_names::rcode(r) {
            out.push(("valid_rcodes", e));
        }
    }
    if !cfg.query_name.is_empty() {
        if let Err(e) = hickory_proto::rr::Name::from_utf8(&cfg.query_name) {
            out.push((
                "query_name",
                format!("invalid query_name {:?}: {e}", cfg.query_name),
            ));
        }
    }
    if let Some(src) = &cfg.source_ip_address {
        if src.parse::<IpAddr>().is_err() {
            out.push((
                "source_ip_address",
                format!("source_ip_address {src:?} is not an IP address"),
            ));
        }
    }
    out
}

/// Problems with a grpc module found at load, as (field, message).
pub fn grpc_problems(cfg: &GrpcProbe) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    for (name, values) in &cfg.metadata {
        if http::HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()).is_err() {
            out.push(("metadata", format!("{name:?} is not a valid metadata key")));
        }
        if values
            .iter()
            .any(|v| http::HeaderValue::from_str(v).is_err())
        {
            out.push((
                "metadata",
                format!("a value of metadata key {name:?} has characters a header cannot carry"),
            ));
        }
    }
    out
}

/// Problems with a websocket module found at load, as (field, message).
pub fn websocket_problems(cfg: &WebsocketProbe) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (name, sources) in &cfg.headers {
        if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            out.push((
                format!("headers.{name}"),
                format!("{name:?} is not a valid header name"),
            ));
        }
        if sources
            .values
            .iter()
            .any(|v| http::HeaderValue::from_str(v).is_err())
        {
            out.push((
                format!("headers.{name}"),
                format!("a value of header {name:?} has characters a header cannot carry"),
            ));
        }
    }
    let auth = &cfg.http_config;
    if auth.basic_auth.is_some() && auth.authorization.is_some() {
        out.push((
            "http_config.authorization".into(),
            "at most one of basic_auth and authorization must be configured".into(),
        ));
    }
    for (i, step) in cfg.query_response.iter().enumerate() {
        if step.starttls {
            // blackbox lists it but never acts on it: a TLS upgrade inside websocket messages
            // is no protocol anyone speaks; use a wss:// target for TLS.
            out.push((
                format!("query_response[{i}].starttls"),
                "starttls cannot upgrade a websocket connection; probe a wss:// URL for TLS".into(),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_problems_name_the_field() {
        let cfg = DnsProbe {
            query_name: "example.org".into(),
            query_type: "AXX".into(),
            valid_rcodes: vec!["NOERROR".into(), "nope".into()],
            ..DnsProbe::default()
        };
        let fields: Vec<_> = dns_problems(&cfg).into_iter().map(|(f, _)| f).collect();
        assert_eq!(fields, vec!["query_type", "valid_rcodes"]);
    }
}
