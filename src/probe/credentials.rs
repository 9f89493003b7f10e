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
        let text = read_file(file)
            .await
            .and_then(|b| {
                String::from_utf8(b).map_err(|_| {
                    std::io::Error::new(std::io::ErrorKind::InvalidData, "not valid UTF-8 text")
                })
            })
            .map_err(|e| format!("{section}.{name}: cannot read {}: {e}", file.display()))?;
        out.push(text.trim().to_string());
    }
    Ok(out)
}

/// A file a module names (header values, a request body), read off the runtime's threads and
/// capped as config files are, so a FIFO or /dev/zero cannot hold a probe or its memory.
pub async fn read_file(path: &std::path::Path) -> std::io::Result<Vec<u8>> {
    use crate::config::bounded_read::{read_bounded, FIFO_WAIT};
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        read_bounded(&path, crate::config::MAX_CONFIG_BYTES, FIFO_WAIT)
    })
    .await
    .unwrap_or_else(|e| Err(std::io::Error::other(e)))
}
