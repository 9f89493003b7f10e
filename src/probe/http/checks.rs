//! The response checks of an http module: status codes, HTTP versions, header and body regexps.
//! Log texts follow blackbox's.

use crate::config::{HeaderMatch, HttpProbe};
use crate::probe::recorder::{FailureReason, ProbeRecorder};
use hyper::{HeaderMap, Version};

/// Empty `valid_status_codes` means any 2xx.
pub(super) fn status_ok(code: u16, cfg: &HttpProbe, rec: &mut ProbeRecorder) -> bool {
    let ok = if cfg.valid_status_codes.is_empty() {
        (200..300).contains(&code)
    } else {
        cfg.valid_status_codes.contains(&code)
    };
    if !ok {
        let wanted = if cfg.valid_status_codes.is_empty() {
            "2xx".to_string()
        } else {
            format!("{:?}", cfg.valid_status_codes)
        };
        rec.fail(
            FailureReason::Status,
            format!("Invalid HTTP response status code {code}, wanted {wanted}"),
        );
    }
    ok
}

/// The version as blackbox names it (`resp.Proto`) and as `probe_http_version` reports it.
pub(super) fn version_of(v: Version) -> (&'static str, f64) {
    match v {
        Version::HTTP_09 => ("HTTP/0.9", 0.9),
        Version::HTTP_10 => ("HTTP/1.0", 1.0),
        Version::HTTP_11 => ("HTTP/1.1", 1.1),
        Version::HTTP_2 => ("HTTP/2.0", 2.0),
        Version::HTTP_3 => ("HTTP/3.0", 3.0),
        _ => ("unknown", 0.0),
    }
}

pub(super) fn version_ok(name: &str, cfg: &HttpProbe, rec: &mut ProbeRecorder) -> bool {
    if cfg.valid_http_versions.is_empty() || cfg.valid_http_versions.iter().any(|v| v == name) {
        return true;
    }
    rec.fail(
        FailureReason::Protocol,
        format!(
            "Invalid HTTP version number {name}, wanted one of {:?}",
            cfg.valid_http_versions
        ),
    );
    false
}

/// `fail_if_header_matches` fails if any value matches; `fail_if_header_not_matches` fails if
/// none does. A missing header fails both unless `allow_missing`.
pub(super) fn headers_ok(headers: &HeaderMap, cfg: &HttpProbe, rec: &mut ProbeRecorder) -> bool {
    for spec in &cfg.fail_if_header_matches {
        let Some(values) = values_of(headers, spec, rec) else {
            return false;
        };
        if values.iter().any(|v| spec.regexp.is_match(v)) {
            rec.fail(
                FailureReason::Regexp,
                format!(
                    "Header {} matched regular expression {:?}",
                    spec.header,
                    spec.regexp.as_str()
                ),
            );
            return false;
        }
    }
    for spec in &cfg.fail_if_header_not_matches {
        let Some(values) = values_of(headers, spec, rec) else {
            return false;
        };
        if !values.is_empty() && !values.iter().any(|v| spec.regexp.is_match(v)) {
            rec.fail(
                FailureReason::Regexp,
                format!(
                    "Header {} did not match regular expression {:?}",
                    spec.header,
                    spec.regexp.as_str()
                ),
            );
            return false;
        }
    }
    true
}

/// The header's values; `None` (and a recorded failure) when it is missing and must not be.
fn values_of(
    headers: &HeaderMap,
    spec: &HeaderMatch,
    rec: &mut ProbeRecorder,
) -> Option<Vec<String>> {
    let values: Vec<String> = headers
        .get_all(spec.header.as_str())
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect();
    if values.is_empty() && !spec.allow_missing {
        rec.fail(
            FailureReason::Regexp,
            format!("Missing required header {}", spec.header),
        );
        return None;
    }
    Some(values)
}

pub(super) fn body_ok(body: &[u8], cfg: &HttpProbe, rec: &mut ProbeRecorder) -> bool {
    let text = String::from_utf8_lossy(body);
    for re in &cfg.fail_if_body_matches_regexp {
        if re.is_match(&text) {
            rec.fail(
                FailureReason::Regexp,
                format!("Body matched regular expression {:?}", re.as_str()),
            );
            return false;
        }
    }
    for re in &cfg.fail_if_body_not_matches_regexp {
        if !re.is_match(&text) {
            rec.fail(
                FailureReason::Regexp,
                format!("Body did not match regular expression {:?}", re.as_str()),
            );
            return false;
        }
    }
    true
}
