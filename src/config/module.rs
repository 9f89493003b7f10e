//! A probe module: blackbox_exporter's module format, unchanged, plus our own probers' sections.
//! Every section defaults, so a blackbox file loads as it is; unknown fields are errors.

use super::cel::CelExpression;
use super::duration::PromDuration;
use super::services::{MongoProbe, MysqlProbe, PostgresProbe, RedisProbe, SshAuditProbe, SshProbe};
use super::types::{
    AllowPattern, ByteSize, ExistingFile, IpProtocol, LabelName, Regexp, Secret, WireBytes,
};
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;

/// Which prober a module uses. Also the key of the per-type concurrency limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProberKind {
    Http,
    Tcp,
    Dns,
    Icmp,
    Grpc,
    Ssh,
    SshAudit,
    Postgres,
    Mysql,
    Redis,
    Mongodb,
    Unix,
    Websocket,
}

impl ProberKind {
    pub const ALL: [ProberKind; 13] = [
        ProberKind::Http,
        ProberKind::Tcp,
        ProberKind::Dns,
        ProberKind::Icmp,
        ProberKind::Grpc,
        ProberKind::Ssh,
        ProberKind::SshAudit,
        ProberKind::Postgres,
        ProberKind::Mysql,
        ProberKind::Redis,
        ProberKind::Mongodb,
        ProberKind::Unix,
        ProberKind::Websocket,
    ];

    /// The kind a `prober:` name stands for; `None` for a name this build does not know.
    pub fn from_name(name: &str) -> Option<ProberKind> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ProberKind::Http => "http",
            ProberKind::Tcp => "tcp",
            ProberKind::Dns => "dns",
            ProberKind::Icmp => "icmp",
            ProberKind::Grpc => "grpc",
            ProberKind::Ssh => "ssh",
            ProberKind::SshAudit => "ssh_audit",
            ProberKind::Postgres => "postgres",
            ProberKind::Mysql => "mysql",
            ProberKind::Redis => "redis",
            ProberKind::Mongodb => "mongodb",
            ProberKind::Unix => "unix",
            ProberKind::Websocket => "websocket",
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Module {
    /// blackbox loads a module whose prober it does not know and fails its probes; so do we:
    /// such a name reads as a placeholder here, and `load` moves the module to
    /// `Config::unknown_probers`, so no code ever runs a placeholder.
    #[serde(
        default = "placeholder_prober",
        deserialize_with = "known_or_placeholder"
    )]
    pub prober: ProberKind,
    /// Upper bound of one probe; the scrape timeout header may shorten it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<PromDuration>,
    /// Serve a result this fresh from cache instead of probing again (ours, not blackbox's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_for: Option<PromDuration>,
    /// This module's own target allow-list; replaces `web.allowed_targets` for it (ours).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_targets: Option<Vec<AllowPattern>>,
    #[serde(default, deserialize_with = "or_default")]
    pub http: HttpProbe,
    #[serde(default, deserialize_with = "or_default")]
    pub tcp: TcpProbe,
    #[serde(default, deserialize_with = "dns_section")]
    pub dns: DnsProbe,
    #[serde(default, deserialize_with = "or_default")]
    pub icmp: IcmpProbe,
    #[serde(default, deserialize_with = "or_default")]
    pub grpc: GrpcProbe,
    #[serde(default, deserialize_with = "or_default")]
    pub unix: UnixProbe,
    #[serde(default, deserialize_with = "or_default")]
    pub websocket: WebsocketProbe,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh: Option<SshProbe>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_audit: Option<SshAuditProbe>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres: Option<PostgresProbe>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mysql: Option<MysqlProbe>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis: Option<RedisProbe>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mongodb: Option<MongoProbe>,
}

impl Module {
    /// A module with every section at its default: what blackbox does for `prober: X` alone.
    pub fn new(prober: ProberKind) -> Self {
        Module {
            prober,
            timeout: None,
            cache_for: None,
            allowed_targets: None,
            http: HttpProbe::default(),
            tcp: TcpProbe::default(),
            dns: DnsProbe::default(),
            icmp: IcmpProbe::default(),
            grpc: GrpcProbe::default(),
            unix: UnixProbe::default(),
            websocket: WebsocketProbe::default(),
            ssh: None,
            ssh_audit: None,
            postgres: None,
            mysql: None,
            redis: None,
            mongodb: None,
        }
    }
}

fn placeholder_prober() -> ProberKind {
    ProberKind::Http
}

fn known_or_placeholder<'de, D: Deserializer<'de>>(d: D) -> Result<ProberKind, D::Error> {
    let name = String::deserialize(d)?;
    Ok(ProberKind::from_name(&name).unwrap_or_else(placeholder_prober))
}

/// An empty section (`http:` with no value) is that section's defaults, as in blackbox.
pub(super) fn or_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// The `dns:` section, remembering that it was written: blackbox requires `query_name` only then.
fn dns_section<'de, D: Deserializer<'de>>(d: D) -> Result<DnsProbe, D::Error> {
    Ok(match Option::<DnsProbe>::deserialize(d)? {
        Some(mut dns) => {
            dns.section_written = true;
            dns
        }
        None => DnsProbe::default(),
    })
}

fn yes() -> bool {
    true
}
fn is_true(b: &bool) -> bool {
    *b
}
fn is_false(b: &bool) -> bool {
    !*b
}

/// TLS client settings, as in Prometheus' common config.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<ExistingFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_file: Option<ExistingFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<ExistingFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub insecure_skip_verify: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_version: Option<TlsVersion>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_version: Option<TlsVersion>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
pub enum TlsVersion {
    TLS10,
    TLS11,
    TLS12,
    TLS13,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    #[serde(default)]
    pub username: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username_file: Option<ExistingFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<ExistingFile>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Authorization {
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_file: Option<ExistingFile>,
}

/// Where the values of one `http_headers` entry come from (Prometheus common's `Header`).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderSources {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<Secret>,
    /// Read when probing, as blackbox reads them (a missing file fails the probe, not the load).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<std::path::PathBuf>,
}

/// OAuth2 client-credentials settings; accepted so blackbox files load (see README for support).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OAuth2 {
    pub client_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_file: Option<ExistingFile>,
    #[serde(default)]
    pub scopes: Vec<String>,
    pub token_url: String,
    #[serde(default)]
    pub endpoint_params: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_config: Option<TlsConfig>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "super::types::serialize_redacted_url"
    )]
    pub proxy_url: Option<String>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderMatch {
    pub header: String,
    pub regexp: Regexp,
    #[serde(default)]
    pub allow_missing: bool,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HttpProbe {
    /// Empty means any 2xx.
    #[serde(default)]
    pub valid_status_codes: Vec<u16>,
    #[serde(default)]
    pub valid_http_versions: Vec<String>,
    #[serde(default)]
    pub preferred_ip_protocol: IpProtocol,
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub ip_protocol_fallback: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub skip_resolve_phase_with_proxy: bool,
    /// Deprecated blackbox spelling of `follow_redirects: false`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_follow_redirects: Option<bool>,
    #[serde(default = "yes")]
    pub follow_redirects: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub fail_if_ssl: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub fail_if_not_ssl: bool,
    #[serde(default = "default_method")]
    pub method: String,
    /// Values of credential-like names print as `<secret>` in /config and the debug output.
    #[serde(
        default,
        deserialize_with = "or_default",
        serialize_with = "super::types::serialize_headers"
    )]
    pub headers: BTreeMap<String, String>,
    /// Prometheus' HTTP client `http_headers` (blackbox 0.28 takes them): each header gets all
    /// its `values`, `secrets` and the trimmed content of its `files`, read at each probe.
    #[serde(
        default,
        deserialize_with = "or_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub http_headers: BTreeMap<String, HeaderSources>,
    #[serde(default)]
    pub fail_if_body_matches_regexp: Vec<Regexp>,
    #[serde(default)]
    pub fail_if_body_not_matches_regexp: Vec<Regexp>,
    /// blackbox 0.27+: the probe fails if the JSON body matches (or does not match) the CEL
    /// expression, or if the body is not JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_if_body_json_matches_cel: Option<CelExpression>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_if_body_json_not_matches_cel: Option<CelExpression>,
    #[serde(default)]
    pub fail_if_header_matches: Vec<HeaderMatch>,
    #[serde(default)]
    pub fail_if_header_not_matches: Vec<HeaderMatch>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_file: Option<ExistingFile>,
    #[serde(default)]
    pub compression: String,
    #[serde(default)]
    pub body_size_limit: ByteSize,
    // Prometheus common HTTP client settings, inlined as blackbox does.
    #[serde(default, deserialize_with = "or_default")]
    pub tls_config: TlsConfig,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic_auth: Option<BasicAuth>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_token: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_token_file: Option<ExistingFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization: Option<Authorization>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth2: Option<OAuth2>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "super::types::serialize_redacted_url"
    )]
    pub proxy_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_proxy: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub proxy_from_environment: bool,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub proxy_connect_header: BTreeMap<String, Vec<Secret>>,
    #[serde(default = "yes")]
    pub enable_http2: bool,
    /// HTTP/3 over QUIC instead of TCP (blackbox 0.28); needs `enable_http2: false`, and
    /// `valid_http_versions` may then hold only `HTTP/3.0`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub enable_http3: bool,
    /// Reuse connections between probes of this module (ours; blackbox never reuses).
    #[serde(default, skip_serializing_if = "is_false")]
    pub keep_alive: bool,
}

fn default_method() -> String {
    "GET".into()
}

impl Default for HttpProbe {
    fn default() -> Self {
        HttpProbe {
            valid_status_codes: Vec::new(),
            valid_http_versions: Vec::new(),
            preferred_ip_protocol: IpProtocol::Ip6,
            ip_protocol_fallback: true,
            skip_resolve_phase_with_proxy: false,
            no_follow_redirects: None,
            follow_redirects: true,
            fail_if_ssl: false,
            fail_if_not_ssl: false,
            method: default_method(),
            headers: BTreeMap::new(),
            http_headers: BTreeMap::new(),
            fail_if_body_matches_regexp: Vec::new(),
            fail_if_body_not_matches_regexp: Vec::new(),
            fail_if_body_json_matches_cel: None,
            fail_if_body_json_not_matches_cel: None,
            fail_if_header_matches: Vec::new(),
            fail_if_header_not_matches: Vec::new(),
            body: None,
            body_file: None,
            compression: String::new(),
            body_size_limit: ByteSize(0),
            tls_config: TlsConfig::default(),
            basic_auth: None,
            bearer_token: None,
            bearer_token_file: None,
            authorization: None,
            oauth2: None,
            proxy_url: None,
            no_proxy: None,
            proxy_from_environment: false,
            proxy_connect_header: BTreeMap::new(),
            enable_http2: true,
            enable_http3: false,
            keep_alive: false,
        }
    }
}

impl HttpProbe {
    /// `follow_redirects`, honouring the deprecated `no_follow_redirects`.
    pub fn follows_redirects(&self) -> bool {
        match self.no_follow_redirects {
            Some(no) => !no && self.follow_redirects,
            None => self.follow_redirects,
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct QueryResponse {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<Regexp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_bytes: Option<WireBytes>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send: Option<WireBytes>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub starttls: bool,
    /// Labels of `probe_expect_info` when `expect` matches; values may use `${N}` captures.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<ExpectLabel>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectLabel {
    pub name: LabelName,
    #[serde(default)]
    pub value: String,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TcpProbe {
    #[serde(default)]
    pub preferred_ip_protocol: IpProtocol,
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub ip_protocol_fallback: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ip_address: Option<String>,
    #[serde(default, deserialize_with = "or_default")]
    pub query_response: Vec<QueryResponse>,
    #[serde(default)]
    pub tls: bool,
    #[serde(default, deserialize_with = "or_default")]
    pub tls_config: TlsConfig,
}

impl Default for TcpProbe {
    fn default() -> Self {
        TcpProbe {
            preferred_ip_protocol: IpProtocol::Ip6,
            ip_protocol_fallback: true,
            source_ip_address: None,
            query_response: Vec::new(),
            tls: false,
            tls_config: TlsConfig::default(),
        }
    }
}

/// blackbox 0.28 `unix_probe`: the target is the socket's path.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UnixProbe {
    #[serde(default, deserialize_with = "or_default")]
    pub query_response: Vec<QueryResponse>,
    #[serde(default)]
    pub tls: bool,
    #[serde(default, deserialize_with = "or_default")]
    pub tls_config: TlsConfig,
}

/// blackbox's `websocket_probe` (on its master branch): the target is a `ws://` or `wss://` URL.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WebsocketProbe {
    #[serde(default, deserialize_with = "or_default")]
    pub http_config: WebsocketHttpConfig,
    /// Headers of the upgrade request, as Prometheus' `http_headers` (values, secrets, files).
    #[serde(
        default,
        deserialize_with = "or_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub headers: BTreeMap<String, HeaderSources>,
    #[serde(default, deserialize_with = "or_default")]
    pub query_response: Vec<QueryResponse>,
    #[serde(default)]
    pub preferred_ip_protocol: IpProtocol,
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub ip_protocol_fallback: bool,
}

impl Default for WebsocketProbe {
    fn default() -> Self {
        WebsocketProbe {
            http_config: WebsocketHttpConfig::default(),
            headers: BTreeMap::new(),
            query_response: Vec::new(),
            preferred_ip_protocol: IpProtocol::Ip6,
            ip_protocol_fallback: true,
        }
    }
}

/// The parts of Prometheus' HTTP client config the websocket prober uses (blackbox reads these
/// three and nothing else of it; other fields are refused rather than ignored).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WebsocketHttpConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic_auth: Option<BasicAuth>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization: Option<Authorization>,
    #[serde(default, deserialize_with = "or_default")]
    pub tls_config: TlsConfig,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DnsRrValidator {
    #[serde(default)]
    pub fail_if_matches_regexp: Vec<Regexp>,
    #[serde(default)]
    pub fail_if_all_match_regexp: Vec<Regexp>,
    #[serde(default)]
    pub fail_if_not_matches_regexp: Vec<Regexp>,
    #[serde(default)]
    pub fail_if_none_matches_regexp: Vec<Regexp>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DnsTransport {
    #[default]
    Udp,
    Tcp,
    /// Any other name: blackbox loads it and fails each probe; so do we (with a load warning).
    #[serde(other)]
    Unsupported,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DnsProbe {
    #[serde(default)]
    pub preferred_ip_protocol: IpProtocol,
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub ip_protocol_fallback: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ip_address: Option<String>,
    #[serde(default)]
    pub transport_protocol: DnsTransport,
    #[serde(default, skip_serializing_if = "is_false")]
    pub dns_over_tls: bool,
    #[serde(default, deserialize_with = "or_default")]
    pub tls_config: TlsConfig,
    #[serde(default)]
    pub query_name: String,
    #[serde(default = "default_query_type")]
    pub query_type: String,
    #[serde(default = "default_query_class")]
    pub query_class: String,
    #[serde(default = "yes")]
    pub recursion_desired: bool,
    /// Empty means NOERROR only.
    #[serde(default)]
    pub valid_rcodes: Vec<String>,
    #[serde(default, deserialize_with = "or_default")]
    pub validate_answer_rrs: DnsRrValidator,
    #[serde(default, deserialize_with = "or_default")]
    pub validate_authority_rrs: DnsRrValidator,
    #[serde(default, deserialize_with = "or_default")]
    pub validate_additional_rrs: DnsRrValidator,
    /// Whether the module had a `dns:` mapping (set by `dns_section`).
    #[serde(skip)]
    pub section_written: bool,
}

fn default_query_type() -> String {
    "ANY".into()
}
fn default_query_class() -> String {
    "IN".into()
}

impl Default for DnsProbe {
    fn default() -> Self {
        DnsProbe {
            preferred_ip_protocol: IpProtocol::Ip6,
            ip_protocol_fallback: true,
            source_ip_address: None,
            transport_protocol: DnsTransport::Udp,
            dns_over_tls: false,
            tls_config: TlsConfig::default(),
            query_name: String::new(),
            query_type: default_query_type(),
            query_class: default_query_class(),
            recursion_desired: true,
            valid_rcodes: Vec::new(),
            validate_answer_rrs: DnsRrValidator::default(),
            validate_authority_rrs: DnsRrValidator::default(),
            validate_additional_rrs: DnsRrValidator::default(),
            section_written: false,
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct IcmpProbe {
    #[serde(default)]
    pub preferred_ip_protocol: IpProtocol,
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub ip_protocol_fallback: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ip_address: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub dont_fragment: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_size: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<u8>,
    /// Echo requests per probe (ours, beyond blackbox): 1, the default, is blackbox's probe
    /// and its series; more send a train `interval` apart and report loss and RTT spread.
    #[serde(default = "one_packet", skip_serializing_if = "is_one_packet")]
    pub packets: u32,
    /// Time between the requests of a train (default 1s, as ping).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<PromDuration>,
}

fn one_packet() -> u32 {
    1
}

fn is_one_packet(n: &u32) -> bool {
    *n == 1
}

impl IcmpProbe {
    /// The most echo requests one probe may send: a train is a short measurement, not a flood.
    pub const MAX_PACKETS: u32 = 100;
    pub const DEFAULT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

    pub fn interval(&self) -> std::time::Duration {
        self.interval.map_or(Self::DEFAULT_INTERVAL, |d| d.get())
    }

    /// How long a train takes to send with a reply interval after its last request: it must
    /// fit the probe's timeout.
    pub fn train_duration(&self) -> std::time::Duration {
        self.interval().saturating_mul(self.packets)
    }

    /// Problems of `packets` and `interval`, as (field, message); `timeout` is the module's.
    pub fn train_problems(
        &self,
        timeout: Option<std::time::Duration>,
    ) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        if self.packets == 0 {
            problems.push(("packets", "packets must be at least 1".to_string()));
        } else if self.packets > Self::MAX_PACKETS {
            problems.push((
                "packets",
                format!(
                    "packets {} is above the limit of {}",
                    self.packets,
                    Self::MAX_PACKETS
                ),
            ));
        }
        if self.interval.is_some_and(|d| d.get().is_zero()) {
            problems.push(("interval", "interval must be above 0".to_string()));
        } else if let Some(t) = timeout.filter(|_| (2..=Self::MAX_PACKETS).contains(&self.packets))
        {
            if self.train_duration() > t {
                problems.push((
                    "packets",
                    format!(
                        "{} packets every {:?} take {:?}, longer than the module timeout {:?}",
                        self.packets,
                        self.interval(),
                        self.train_duration(),
                        t
                    ),
                ));
            }
        }
        problems
    }
}

impl Default for IcmpProbe {
    fn default() -> Self {
        IcmpProbe {
            preferred_ip_protocol: IpProtocol::Ip6,
            ip_protocol_fallback: true,
            source_ip_address: None,
            dont_fragment: false,
            payload_size: None,
            ttl: None,
            packets: 1,
            interval: None,
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GrpcProbe {
    #[serde(default)]
    pub service: String,
    #[serde(default)]
    pub preferred_ip_protocol: IpProtocol,
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub ip_protocol_fallback: bool,
    #[serde(default)]
    pub tls: bool,
    #[serde(default, deserialize_with = "or_default")]
    pub tls_config: TlsConfig,
    /// Request metadata (headers); values of credential-like keys never print (see below).
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        serialize_with = "serialize_metadata"
    )]
    pub metadata: BTreeMap<String, Vec<String>>,
}

impl Default for GrpcProbe {
    fn default() -> Self {
        GrpcProbe {
            service: String::new(),
            preferred_ip_protocol: IpProtocol::Ip6,
            ip_protocol_fallback: true,
            tls: false,
            tls_config: TlsConfig::default(),
            metadata: BTreeMap::new(),
        }
    }
}

/// gRPC metadata often carries credentials (`authorization: Bearer …`); /config and the debug
/// output show the values of such keys as `<secret>`.
fn serialize_metadata<S: serde::Serializer>(
    metadata: &BTreeMap<String, Vec<String>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut map = s.serialize_map(Some(metadata.len()))?;
    for (key, values) in metadata {
        if super::types::is_credential_name(key) {
            let hidden: Vec<&str> = values.iter().map(|_| super::types::REDACTED).collect();
            map.serialize_entry(key, &hidden)?;
        } else {
            map.serialize_entry(key, values)?;
        }
    }
    map.end()
}
