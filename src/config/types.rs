//! Small typed values shared by every section: regexps compiled at load, secrets that never print,
//! file paths checked at load, IP protocol preference.

use ipnet::IpNet;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;

/// A regular expression compiled while the config loads, so a bad one is a load error with a line.
#[derive(Clone)]
pub struct Regexp(pub regex::Regex);

impl Regexp {
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
    pub fn is_match(&self, s: &str) -> bool {
        self.0.is_match(s)
    }
}

impl fmt::Debug for Regexp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0.as_str())
    }
}

impl<'de> Deserialize<'de> for Regexp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        regex::Regex::new(&s).map(Regexp).map_err(|e| {
            serde::de::Error::custom(format!(
                "invalid regexp {s:?}: {}",
                one_line(&e.to_string())
            ))
        })
    }
}

impl Serialize for Regexp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0.as_str())
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A secret written inline in the config. It is shown as `<secret>` everywhere it could leak:
/// `/config`, debug output, logs.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

pub const REDACTED: &str = "<secret>";

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(REDACTED)
    }
}

/// Whether a header or metadata name usually carries a credential (`Authorization`, `Cookie`,
/// `X-Api-Key`, `X-Auth-Token`, …): its values print as `<secret>`.
pub fn is_credential_name(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    [
        "auth",
        "token",
        "secret",
        "password",
        "cookie",
        "key",
        "credential",
        "session",
        "signature",
    ]
    .iter()
    .any(|w| n.contains(w))
}

/// A URL for display: its user info (`user:password@`) replaced by `<secret>`. Text that does
/// not parse as a URL is hidden whole if it might hold user info.
pub fn redact_url(text: &str) -> String {
    match url::Url::parse(text) {
        Ok(mut u) if !u.username().is_empty() || u.password().is_some() => {
            let _ = u.set_password(None);
            let _ = u.set_username(REDACTED);
            u.to_string()
        }
        Ok(_) => text.to_string(),
        Err(_) if text.contains('@') => REDACTED.to_string(),
        Err(_) => text.to_string(),
    }
}

/// serde `serialize_with` for an optional URL that may carry user info (`proxy_url`).
pub fn serialize_redacted_url<S: Serializer>(
    url: &Option<String>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match url {
        Some(u) => s.serialize_some(&redact_url(u)),
        None => s.serialize_none(),
    }
}

/// serde `serialize_with` for request headers: values of credential-like names as `<secret>`.
pub fn serialize_headers<S: Serializer>(
    headers: &std::collections::BTreeMap<String, String>,
    s: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut map = s.serialize_map(Some(headers.len()))?;
    for (name, value) in headers {
        let shown = if is_credential_name(name) {
            REDACTED
        } else {
            value.as_str()
        };
        map.serialize_entry(name, shown)?;
    }
    map.end()
}

/// A path to a file that must exist when the config loads (certificates, keys, password files).
/// Its content is read when used, so rotated files are picked up without a reload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct ExistingFile(pub PathBuf);

impl<'de> Deserialize<'de> for ExistingFile {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let path = PathBuf::from(&s);
        // Opened, not only stat'ed: a key file mode 600 root exists but a non-root exporter
        // cannot read it.
        let problem = match std::fs::metadata(&path) {
            Ok(m) if !m.is_file() => Some(format!("{s:?} is not a regular file")),
            Ok(_) => std::fs::File::open(&path)
                .err()
                .map(|e| format!("cannot read file {s:?}: {e}")),
            Err(e) => Some(format!("cannot read file {s:?}: {e}")),
        };
        if let Some(message) = problem {
            UNREADABLE_FILES.with(|f| f.borrow_mut().push((s, message)));
        }
        Ok(ExistingFile(path))
    }
}

thread_local! {
    /// Files named in the config being parsed on this thread that cannot be read. Blackbox reads
    /// such files only when probing, so a missing one must not stop a blackbox config from
    /// loading: it is a warning at load (with its line) and an error in every probe that uses it.
    static UNREADABLE_FILES: std::cell::RefCell<Vec<(String, String)>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Takes the unreadable files recorded since the last call on this thread: (path, message).
pub(super) fn take_unreadable_files() -> Vec<(String, String)> {
    UNREADABLE_FILES.with(|f| std::mem::take(&mut *f.borrow_mut()))
}

impl ExistingFile {
    /// Reads a secret file, trimming the trailing newline editors add.
    pub fn read_secret(&self) -> std::io::Result<Secret> {
        let s = super::bounded_read::read_bounded_text(
            &self.0,
            super::load::MAX_CONFIG_BYTES,
            super::bounded_read::FIFO_WAIT,
        )?;
        Ok(Secret(s.trim_end_matches(['\n', '\r']).to_string()))
    }
    /// The file's bytes, at most the config size cap (a key or certificate is far smaller).
    pub fn read(&self) -> std::io::Result<Vec<u8>> {
        super::bounded_read::read_bounded(
            &self.0,
            super::load::MAX_CONFIG_BYTES,
            super::bounded_read::FIFO_WAIT,
        )
    }
}

/// Bytes for the wire (`send`, `expect_bytes`): plain text, or a YAML `!!binary` scalar for bytes
/// that are not UTF-8 (blackbox's stock config sends PostgreSQL's SSLRequest this way). The YAML
/// reader hands `!!binary` over as its base64 text (see `load::parse_yaml`); it is decoded here.
#[derive(Clone, PartialEq, Eq)]
pub struct WireBytes(pub Vec<u8>);

impl WireBytes {
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for WireBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match std::str::from_utf8(&self.0) {
            Ok(s) => write!(f, "{s:?}"),
            Err(_) => write!(f, "{:?}", self.0),
        }
    }
}

impl<'de> Deserialize<'de> for WireBytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let serde_saphyr::Tagged(text, tag) = serde_saphyr::Tagged::<String>::deserialize(d)?;
        let binary = tag.as_deref().is_some_and(|t| {
            t == "!!binary" || t == "tag:yaml.org,2002:binary" || t == "!<tag:yaml.org,2002:binary>"
        });
        if !binary {
            return Ok(WireBytes(text.into_bytes()));
        }
        use base64::Engine as _;
        let compact: String = text.split_whitespace().collect();
        base64::engine::general_purpose::STANDARD
            .decode(compact.as_bytes())
            .map(WireBytes)
            .map_err(|e| serde::de::Error::custom(format!("invalid !!binary (base64): {e}")))
    }
}

impl Serialize for WireBytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match std::str::from_utf8(&self.0) {
            Ok(text) => s.serialize_str(text),
            Err(_) => {
                use base64::Engine as _;
                let b64 = base64::engine::general_purpose::STANDARD.encode(&self.0);
                s.collect_str(&format_args!("base64:{b64}"))
            }
        }
    }
}

/// A Prometheus label name from the config (`query_response` `labels`), checked at load. Probe
/// metrics take `'static` label names, so each distinct name is interned once for the life of
/// the process: a handful of strings, however often the config reloads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct LabelName(pub &'static str);

impl<'de> Deserialize<'de> for LabelName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        static NAMES: std::sync::Mutex<std::collections::BTreeSet<&'static str>> =
            std::sync::Mutex::new(std::collections::BTreeSet::new());
        let s = String::deserialize(d)?;
        let valid = s
            .chars()
            .enumerate()
            .all(|(i, c)| c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit()));
        if s.is_empty() || !valid || s.starts_with("__") {
            return Err(serde::de::Error::custom(format!(
                "{s:?} is not a valid label name ([a-zA-Z_][a-zA-Z0-9_]*, not starting with __)"
            )));
        }
        let mut names = NAMES.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(known) = names.get(s.as_str()) {
            return Ok(LabelName(known));
        }
        let leaked: &'static str = Box::leak(s.into_boxed_str());
        names.insert(leaked);
        Ok(LabelName(leaked))
    }
}

/// `preferred_ip_protocol`: which address family to try first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, Default)]
pub enum IpProtocol {
    #[default]
    #[serde(rename = "ip6", alias = "ipv6", alias = "IP6")]
    Ip6,
    #[serde(rename = "ip4", alias = "ipv4", alias = "IP4")]
    Ip4,
}

/// A password or token given inline, in a file, or in an environment variable.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SecretSource {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<ExistingFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_env: Option<String>,
}

impl SecretSource {
    /// Resolves the secret now; `Ok(None)` when none is configured.
    pub fn resolve(&self) -> Result<Option<Secret>, String> {
        if let Some(p) = &self.password {
            return Ok(Some(p.clone()));
        }
        if let Some(f) = &self.password_file {
            return f
                .read_secret()
                .map(Some)
                .map_err(|e| format!("cannot read password_file {}: {e}", f.0.display()));
        }
        if let Some(var) = &self.password_env {
            return std::env::var(var)
                .map(|v| Some(Secret(v)))
                .map_err(|_| format!("environment variable {var} (password_env) is not set"));
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_user_info_for_display() {
        let shown = redact_url("http://u:p%40ss@proxy:3128/");
        assert!(
            !shown.contains("p%40ss") && !shown.contains("u:"),
            "{shown}"
        );
        assert!(shown.ends_with("@proxy:3128/"), "{shown}");
        assert_eq!(redact_url("http://proxy:3128"), "http://proxy:3128");
        assert_eq!(redact_url("not a url u:p@x"), REDACTED);
        assert!(is_credential_name("X-Api-Key") && is_credential_name("Cookie"));
        assert!(!is_credential_name("Accept-Language"));
    }

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), REDACTED);
        assert!(!serde_json::to_string(&s).unwrap().contains("hunter2"));
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn bad_regexp_is_an_error() {
        let e = serde_json::from_str::<Regexp>("\"a(\"")
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("invalid regexp"), "{e}");
    }

    #[test]
    fn missing_file_is_recorded_not_fatal() {
        let _ = take_unreadable_files();
        let f = serde_json::from_str::<ExistingFile>("\"/nonexistent/x.pem\"").unwrap();
        assert_eq!(f.0, PathBuf::from("/nonexistent/x.pem"));
        let seen = take_unreadable_files();
        assert_eq!(seen.len(), 1);
        assert!(seen[0].1.contains("/nonexistent/x.pem"), "{seen:?}");
        assert!(take_unreadable_files().is_empty());
    }
}

/// A byte size like blackbox's `body_size_limit`: a plain number or `10MB`, `512KiB`
/// (KB/MB/GB are powers of 1024, as in Prometheus' Base2Bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct ByteSize(pub u64);

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) => Ok(ByteSize(n)),
            Raw::S(s) => parse_byte_size(&s)
                .map(ByteSize)
                .map_err(serde::de::Error::custom),
        }
    }
}

fn parse_byte_size(text: &str) -> Result<u64, String> {
    let s = text.trim();
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    let n: u64 = s[..digits]
        .parse()
        .map_err(|_| format!("invalid size {text:?}: expected e.g. 10MB"))?;
    let mult: u64 = match s[digits..].trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "KB" | "KIB" | "K" => 1 << 10,
        "MB" | "MIB" | "M" => 1 << 20,
        "GB" | "GIB" | "G" => 1 << 30,
        "TB" | "TIB" | "T" => 1 << 40,
        u => return Err(format!("invalid size {text:?}: unknown unit {u:?}")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("invalid size {text:?}: too large"))
}

/// One allow-list entry, parsed at config load.
#[derive(Clone, Debug)]
pub enum AllowPattern {
    Network(IpNet),
    /// `*.example.org`, `db-??.internal`: matched against the target's host name.
    Host(String),
    /// `https://status.example.org/*`: matched part by part against the target's parsed URL.
    Url(UrlPattern),
    /// `unix:/run/app/*.sock`: a unix socket path the unix prober may connect to (`*` stays
    /// within one directory, `**` crosses them).
    UnixPath(String),
}

/// A URL pattern split into the parts of a URL at load, so each part is matched only against
/// the same part of the target's URL: a `*` can never reach from the path into the host.
#[derive(Clone, Debug)]
pub struct UrlPattern {
    /// As written, for `/config`.
    pub text: String,
    /// Lower-case.
    pub scheme: String,
    /// Lower-case host pattern (`*` and `?` wildcards); an IPv6 literal in brackets.
    pub host: String,
    /// `None`: the scheme's default port.
    pub port: Option<u16>,
    /// Path and query pattern, from its `/`: `*` stays within one segment, `**` crosses them.
    pub path: String,
}

impl UrlPattern {
    fn parse(text: &str) -> Result<UrlPattern, String> {
        let (scheme, rest) = text.split_once("://").ok_or("not a URL pattern")?;
        if scheme.is_empty()
            || !scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        {
            return Err(format!("{text:?}: invalid scheme {scheme:?}"));
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.contains(['@', '\\', '?', '#']) || path.contains(['\\', '#']) {
            return Err(format!(
                "{text:?}: a URL pattern holds no user info, backslash or fragment"
            ));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (ip, after) = v6
                .split_once(']')
                .ok_or(format!("{text:?}: unclosed '['"))?;
            let ip: std::net::Ipv6Addr = ip
                .parse()
                .map_err(|_| format!("{text:?}: {ip:?} is not an IPv6 address"))?;
            (format!("[{ip}]"), after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_ascii_lowercase(), Some(p)),
                None => (authority.to_ascii_lowercase(), None),
            }
        };
        if host.is_empty() || host.contains(':') {
            return Err(format!(
                "{text:?}: no host, or an IPv6 host without brackets"
            ));
        }
        let port = match port {
            Some(p) => Some(
                p.parse::<u16>()
                    .map_err(|_| format!("{text:?}: port {p:?} is not a number"))?,
            ),
            None => None,
        };
        Ok(UrlPattern {
            text: text.to_string(),
            scheme: scheme.to_ascii_lowercase(),
            host,
            port,
            path: path.to_string(),
        })
    }
}

impl AllowPattern {
    pub fn parse(s: &str) -> Result<AllowPattern, String> {
        let s = s.trim();
        if s.is_empty() {
            return Err("empty allow-list entry".into());
        }
        if let Some(path) = s.strip_prefix("unix:") {
            if !path.starts_with('/') || path.split('/').any(|part| part == "..") {
                return Err(format!(
                    "{s:?}: a unix socket pattern is an absolute path without `..`, as in unix:/run/app/*.sock"
                ));
            }
            return Ok(AllowPattern::UnixPath(path.to_string()));
        }
        if s.contains("://") {
            return UrlPattern::parse(s).map(AllowPattern::Url);
        }
        if let Ok(net) = s.parse::<IpNet>() {
            return Ok(AllowPattern::Network(net));
        }
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(AllowPattern::Network(IpNet::from(ip)));
        }
        if s.contains('/') {
            return Err(format!("{s:?} is neither a CIDR range nor a URL pattern"));
        }
        if s.chars().any(|c| c.is_whitespace() || c == ':') {
            return Err(format!("{s:?} is not a host name pattern"));
        }
        Ok(AllowPattern::Host(s.to_ascii_lowercase()))
    }

    fn text(&self) -> String {
        match self {
            AllowPattern::Network(n) => n.to_string(),
            AllowPattern::Host(h) => h.clone(),
            AllowPattern::Url(u) => u.text.clone(),
            AllowPattern::UnixPath(p) => format!("unix:{p}"),
        }
    }
}

impl<'de> Deserialize<'de> for AllowPattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        AllowPattern::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl Serialize for AllowPattern {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text())
    }
}
