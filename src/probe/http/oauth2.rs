//! OAuth2 client credentials (`oauth2:` of a module): POST to `token_url`, cache the access token
//! per module until shortly before it expires. The token request runs inside the probe's deadline
//! but outside its metrics (its own connection, phases and TLS state are not the target's).

use super::connection::{self, Endpoint};
use super::proxy::Proxy;
use crate::config::{HttpProbe, OAuth2};
use crate::probe::recorder::{FailureReason, ProbeRecorder};
use crate::probe::{ProbeEnv, ProbeRequest};
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{HeaderValue, ACCEPT, AUTHORIZATION, CONNECTION, CONTENT_TYPE, HOST};
use hyper::{Method, Request};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::time::Duration;
use tokio::time::Instant;
use url::Url;

/// Tokens are renewed this long before they expire.
const EXPIRY_MARGIN: Duration = Duration::from_secs(10);
/// A token without `expires_in` is kept this long.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);
/// The largest token response read.
const MAX_RESPONSE: usize = 64 * 1024;

/// Access tokens by module name; emptied on config reload.
#[derive(Default)]
pub struct TokenCache {
    tokens: Mutex<HashMap<String, (String, Instant)>>,
}

impl TokenCache {
    pub fn clear(&self) {
        self.tokens.lock().clear();
    }

    fn get(&self, module: &str) -> Option<String> {
        let tokens = self.tokens.lock();
        let (token, until) = tokens.get(module)?;
        (Instant::now() < *until).then(|| token.clone())
    }

    fn put(&self, module: &str, token: String, until: Instant) {
        self.tokens
            .lock()
            .insert(module.to_string(), (token, until));
    }
}

/// The access token for the module's requests; `None` after recording why there is none.
pub(super) async fn token(
    env: &ProbeEnv,
    req: &ProbeRequest<'_>,
    cfg: &HttpProbe,
    oauth: &OAuth2,
    rec: &mut ProbeRecorder,
) -> Option<String> {
    if let Some(t) = env.http_tokens.get(req.module_name) {
        rec.debug("Using cached OAuth2 token");
        return Some(t);
    }
    match fetch(env, req, cfg, oauth).await {
        Ok((token, lifetime)) => {
            let until = Instant::now() + lifetime.saturating_sub(EXPIRY_MARGIN);
            env.http_tokens.put(req.module_name, token.clone(), until);
            rec.debug("Fetched an OAuth2 token");
            Some(token)
        }
        Err((reason, message)) => {
            rec.fail(reason, format!("oauth2 token request failed: {message}"));
            None
        }
    }
}

type Failure = (FailureReason, String);

async fn fetch(
    env: &ProbeEnv,
    req: &ProbeRequest<'_>,
    cfg: &HttpProbe,
    oauth: &OAuth2,
) -> Result<(String, Duration), Failure> {
    let config = |m: String| (FailureReason::Config, m);
    let url = Url::parse(&oauth.token_url)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
        .ok_or_else(|| config("oauth2.token_url is not an http(s) URL".into()))?;
    let secret = match (&oauth.client_secret, &oauth.client_secret_file) {
        (Some(s), _) => s.expose().to_string(),
        (None, Some(f)) => f
            .read_secret()
            .map_err(|e| config(format!("oauth2.client_secret_file: cannot read it: {e}")))?
            .expose()
            .to_string(),
        (None, None) => String::new(),
    };
    // The token endpoint's own client settings; address family as the module's.
    let token_cfg = HttpProbe {
        tls_config: oauth.tls_config.clone().unwrap_or_default(),
        proxy_url: oauth.proxy_url.clone(),
        enable_http2: false,
        preferred_ip_protocol: cfg.preferred_ip_protocol,
        ip_protocol_fallback: cfg.ip_protocol_fallback,
        ..HttpProbe::default()
    };
    let proxy = Proxy::for_url(&token_cfg, &url).map_err(|e| config(format!("oauth2: {e}")))?;
    let host = url.host_str().unwrap_or_default().to_string();
    let endpoint = Endpoint {
        url: &url,
        port: url.port_or_known_default().unwrap_or(80),
        tls: url.scheme() == "https",
        tls_name: super::connection::tls_name_of(&host),
        first: true,
        oauth2: true,
    };
    let mut scratch = ProbeRecorder::new();
    let opening = connection::open(
        env,
        req.module_name,
        &token_cfg,
        &endpoint,
        proxy.as_ref(),
        req.deadline,
        &mut scratch,
    );
    // The token endpoint comes from the config, not from the request: the allow-list is for
    // targets.
    let unrestricted = crate::probe::allow::Access::Unrestricted;
    let Some(mut conn) = crate::probe::allow::ACCESS
        .scope(unrestricted, opening)
        .await
    else {
        let reason = scratch.failure().unwrap_or(FailureReason::Connection);
        let why = scratch
            .take_log()
            .into_iter()
            .rev()
            .find(|l| l.level == "error")
            .map(|l| l.message)
            .unwrap_or_default();
        return Err((reason, why));
    };

    // Built in a block: the serializer is not Send and must not live across an await.
    let form = {
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        form.append_pair("grant_type", "client_credentials");
        if !oauth.scopes.is_empty() {
            form.append_pair("scope", &oauth.scopes.join(" "));
        }
        for (k, v) in &oauth.endpoint_params {
            form.append_pair(k, v);
        }
        form.finish()
    };
    // RFC 6749 §2.3.1: id and secret form-encoded, then HTTP Basic.
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let basic = base64::engine::general_purpose::STANDARD.encode(format!(
        "{}:{}",
        enc(&oauth.client_id),
        enc(&secret)
    ));
    let mut auth = HeaderValue::from_str(&format!("Basic {basic}"))
        .map_err(|_| config("oauth2 client credentials are not valid in a header".into()))?;
    auth.set_sensitive(true);
    let path = &url[url::Position::BeforePath..url::Position::AfterQuery];
    let path = if path.is_empty() { "/" } else { path };
    let uri = if conn.via_proxy {
        format!("http://{}{}", conn.authority, path)
    } else {
        path.to_string()
    };
    let host_header = match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.clone(),
    };
    let request = Request::builder()
        .method(Method::POST)
        .uri(uri)
        .header(HOST, host_header)
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(ACCEPT, "application/json")
        .header(CONNECTION, "close")
        .header(AUTHORIZATION, auth)
        .body(Full::new(Bytes::from(form)))
        .map_err(|e| config(format!("cannot build the oauth2 token request: {e}")))?;
    let response = conn
        .send(request)
        .await
        .map_err(|e| (FailureReason::Connection, e))?;
    let status = response.status();
    let body = Limited::new(response.into_body(), MAX_RESPONSE)
        .collect()
        .await
        .map_err(|e| {
            (
                FailureReason::Connection,
                format!("reading the answer: {e}"),
            )
        })?
        .to_bytes();
    if !status.is_success() {
        return Err((
            FailureReason::Auth,
            format!("the token endpoint answered {}", status.as_u16()),
        ));
    }
    parse_token(&body).map_err(|e| (FailureReason::Auth, e))
}

/// The access token and its lifetime from a token response.
fn parse_token(body: &[u8]) -> Result<(String, Duration), String> {
    #[derive(serde::Deserialize)]
    struct TokenResponse {
        access_token: String,
        #[serde(default)]
        expires_in: Option<serde_json::Value>,
    }
    let t: TokenResponse = serde_json::from_slice(body)
        .map_err(|_| "the token endpoint's answer is not a JSON token response".to_string())?;
    if t.access_token.is_empty() {
        return Err("the token endpoint returned an empty access_token".into());
    }
    // Some servers send expires_in as a string.
    let secs = match t.expires_in {
        Some(serde_json::Value::Number(n)) => n.as_u64(),
        Some(serde_json::Value::String(s)) => s.parse().ok(),
        _ => None,
    };
    let lifetime = secs.map(Duration::from_secs).unwrap_or(DEFAULT_LIFETIME);
    Ok((t.access_token, lifetime))
}

#[cfg(test)]
mod tests {
    use super::parse_token;
    use std::time::Duration;

    #[test]
    fn parses_token_responses() {
        let (t, l) =
            parse_token(br#"{"access_token":"abc","token_type":"Bearer","expires_in":60}"#)
                .unwrap();
        assert_eq!((t.as_str(), l), ("abc", Duration::from_secs(60)));
        let (_, l) = parse_token(br#"{"access_token":"abc","expires_in":"120"}"#).unwrap();
        assert_eq!(l, Duration::from_secs(120));
        assert!(parse_token(br#"{"error":"invalid_client"}"#).is_err());
        assert!(parse_token(br#"{"access_token":""}"#).is_err());
    }
}
