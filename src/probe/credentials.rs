//! Credentials and extra headers from Prometheus' HTTP client settings (`basic_auth`,
//! `authorization`, `http_headers`), read at each probe so rotated files apply; shared by the
//! http and websocket probers. Error messages name the field, never a secret.

use crate::config::{Authorization, BasicAuth, HeaderSources};
use base64::Engine as _;

/// `Basic <base64(user:password)>` from `basic_auth`.
pub fn basic_auth(b: &BasicAuth) -> Result<String, String> {
    let user = match &b.username_file {
        Some(f) => f
            .read_secret()
            .map_err(|e| format!("basic_auth.username_file: cannot read it: {e}"))?
            .expose()
            .to_string(),
        None => b.username.clone(),
    };
    let pass = match (&b.password, &b.password_file) {
        (Some(p), _) => p.expose().to_string(),
        (None, Some(f)) => f
            .read_secret()
            .map_err(|e| format!("basic_auth.password_file: cannot read it: {e}"))?
            .expose()
            .to_string(),
        (None, None) => String::new(),
    };
    Ok(basic(&user, &pass))
}

pub fn basic(user: &str, pass: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    )
}

/// `<type, default Bearer> <credentials>` from `authorization`.
pub fn authorization(a: &Authorization) -> Result<String, String> {
    let kind = a.kind.as_deref().unwrap_or("Bearer");
    let cred = match (&a.credentials, &a.credentials_file) {
        (Some(c), _) => c.expose().to_string(),
        (None, Some(f)) => f
            .read_secret()
            .map_err(|e| format!("authorization.credentials_file: cannot read it: {e}"))?
            .expose()
            .to_string(),
        (None, None) => String::new(),
    };
    Ok(format!("{kind} {cred}"))
}

/// The values of one header entry in Prometheus' order: values, secrets, then each file's
/// content without surrounding white space. `section` names the config field in errors.
pub async fn header_source_values(
    section: &str,
    name: &str,
    sources: &HeaderSources,
) -> Result<Vec<String>, String> {
    let mut out = sources.values.clone();
    out.extend(sources.secrets.iter().map(|s| s.expose().to_string()));
    for file in &sources.files {
        let text = tokio::fs::read_to_string(file)
            .await
            .map_err(|e| format!("{section}.{name}: cannot read {}: {e}", file.display()))?;
        out.push(text.trim().to_string());
    }
    Ok(out)
}
