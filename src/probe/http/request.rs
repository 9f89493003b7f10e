//! The request a module describes (method, headers, body, credentials, compression), and how it
//! changes from hop to hop when redirects are followed (Go's rules, which blackbox inherits).

use super::connection::{tls_name_of, Connection};
use super::cookies::Cookies;
use super::proxy::Proxy;
use crate::config::HttpProbe;
use crate::probe::{credentials, ProbeRequest};
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{
    HeaderName, HeaderValue, ACCEPT_ENCODING, AUTHORIZATION, CONNECTION, COOKIE, HOST,
    PROXY_AUTHORIZATION, USER_AGENT,
};
use hyper::{HeaderMap, Method, Request, StatusCode};
use url::Url;

const DEFAULT_USER_AGENT: &str = concat!("siembox-exporter/", env!("CARGO_PKG_VERSION"));

/// How the response body is encoded, per the module's `compression`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Compression {
    Identity,
    Gzip,
    Deflate,
    Brotli,
}

impl Compression {
    pub fn from_config(name: &str) -> Result<Compression, String> {
        match name.to_ascii_lowercase().as_str() {
            "" | "identity" => Ok(Compression::Identity),
            "gzip" => Ok(Compression::Gzip),
            "deflate" => Ok(Compression::Deflate),
            "br" => Ok(Compression::Brotli),
            other => Err(format!(
                "compression {other:?} is not supported (use gzip, deflate, br or identity)"
            )),
        }
    }
}

/// What every hop of one probe shares.
pub(super) struct Template {
    pub method: Method,
    /// Module headers (without Host) plus User-Agent and Accept-Encoding defaults.
    pub headers: HeaderMap,
    /// `hostname` parameter or a `Host` module header.
    pub custom_host: Option<String>,
    pub body: Bytes,
    /// From basic_auth, bearer_token, authorization or oauth2; never logged.
    pub authorization: Option<HeaderValue>,
    pub compression: Compression,
}

impl Template {
    /// Builds the template; errors name the offending field and never include a secret.
    pub async fn build(
        req: &ProbeRequest<'_>,
        cfg: &HttpProbe,
        target: &Url,
        oauth2_token: Option<&str>,
    ) -> Result<Template, String> {
        let method = Method::from_bytes(cfg.method.as_bytes())
            .map_err(|_| format!("http.method {:?} is not a valid method", cfg.method))?;
        let compression = Compression::from_config(&cfg.compression)?;
        let mut headers = HeaderMap::with_capacity(cfg.headers.len() + 2);
        let mut custom_host = None;
        for (name, value) in &cfg.headers {
            let header = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("http.headers: {name:?} is not a valid header name"))?;
            if header == HOST {
                custom_host = Some(value.clone());
                continue;
            }
            let mut v = HeaderValue::from_str(value)
                .map_err(|_| format!("http.headers: the value of {name} is not valid"))?;
            if header == AUTHORIZATION {
                v.set_sensitive(true);
            }
            headers.insert(header, v);
        }
        for (name, sources) in &cfg.http_headers {
            let header = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("http.http_headers: {name:?} is not a valid header name"))?;
            for value in
                credentials::header_source_values("http.http_headers", name, sources).await?
            {
                let mut v = HeaderValue::from_str(&value)
                    .map_err(|_| format!("http.http_headers: a value of {name} is not valid"))?;
                v.set_sensitive(!sources.secrets.is_empty() || !sources.files.is_empty());
                headers.append(header.clone(), v);
            }
        }
        if let Some(h) = req.hostname.filter(|h| !h.is_empty()) {
            custom_host = Some(h.to_string());
        }
        if !headers.contains_key(USER_AGENT) {
            headers.insert(USER_AGENT, HeaderValue::from_static(DEFAULT_USER_AGENT));
        }
        if compression != Compression::Identity && !headers.contains_key(ACCEPT_ENCODING) {
            let name = cfg.compression.to_ascii_lowercase();
            headers.insert(
                ACCEPT_ENCODING,
                HeaderValue::from_str(&name).expect("checked above"),
            );
        }
        let body = match (&cfg.body, &cfg.body_file) {
            (Some(b), _) if !b.is_empty() => Bytes::from(b.clone()),
            (_, Some(f)) => crate::probe::credentials::read_file(&f.0)
                .await
                .map(Bytes::from)
                .map_err(|e| format!("http.body_file: cannot read {}: {e}", f.0.display()))?,
            _ => Bytes::new(),
        };
        let authorization = credentials(cfg, target, oauth2_token)?;
        Ok(Template {
            method,
            headers,
            custom_host,
            body,
            authorization,
            compression,
        })
    }
}

/// The `Authorization` value from the module's credentials (first one configured wins, in
/// Prometheus' order), or the target URL's user info.
fn credentials(
    cfg: &HttpProbe,
    target: &Url,
    oauth2_token: Option<&str>,
) -> Result<Option<HeaderValue>, String> {
    let text = if let Some(b) = &cfg.basic_auth {
        Some(credentials::basic_auth(b)?)
    } else if let Some(a) = &cfg.authorization {
        Some(credentials::authorization(a)?)
    } else if let Some(t) = &cfg.bearer_token {
        Some(format!("Bearer {}", t.expose()))
    } else if let Some(f) = &cfg.bearer_token_file {
        let t = f
            .read_secret()
            .map_err(|e| format!("bearer_token_file: cannot read it: {e}"))?;
        Some(format!("Bearer {}", t.expose()))
    } else if let Some(token) = oauth2_token {
        Some(format!("Bearer {token}"))
    } else if !target.username().is_empty() {
        let user = percent_encoding::percent_decode_str(target.username()).decode_utf8_lossy();
        let pass = percent_encoding::percent_decode_str(target.password().unwrap_or(""))
            .decode_utf8_lossy();
        Some(credentials::basic(&user, &pass))
    } else {
        None
    };
    text.map(|t| {
        HeaderValue::from_str(&t)
            .map(|mut v| {
                v.set_sensitive(true);
                v
            })
            // Deliberately vague: the value is a secret.
            .map_err(|_| {
                "the configured credentials contain characters not allowed in an HTTP header"
                    .to_string()
            })
    })
    .transpose()
}

/// One request of the probe: the first, or one after a redirect.
pub(super) struct Hop {
    pub url: Url,
    pub method: Method,
    pub body: Bytes,
    pub host_header: String,
    /// False once a redirect leaves the first URL's host: credentials stay with their host.
    pub same_origin: bool,
}

impl Hop {
    pub fn first(url: Url, tpl: &Template) -> Hop {
        let host_header = tpl
            .custom_host
            .clone()
            .unwrap_or_else(|| authority_of(&url));
        Hop {
            url,
            method: tpl.method.clone(),
            body: tpl.body.clone(),
            host_header,
            same_origin: true,
        }
    }

    pub fn port(&self) -> u16 {
        self.url.port_or_known_default().unwrap_or(80)
    }

    pub fn is_tls(&self) -> bool {
        self.url.scheme() == "https"
    }

    pub fn tls_name(&self) -> &str {
        tls_name_of(&self.host_header)
    }

    /// The URL without user info, for logs.
    pub fn url_for_log(&self) -> String {
        let mut u = self.url.clone();
        let _ = u.set_username("");
        let _ = u.set_password(None);
        u.to_string()
    }

    /// The next hop after a redirect to `location`, or why it cannot be followed.
    pub fn redirected(
        &self,
        status: StatusCode,
        location: &str,
        first: &Url,
        tpl: &Template,
    ) -> Result<Hop, String> {
        let url = self
            .url
            .join(location)
            .map_err(|e| format!("invalid redirect location {location:?}: {e}"))?;
        if url.scheme() != "http" && url.scheme() != "https" {
            return Err(format!("redirect to unsupported scheme {:?}", url.scheme()));
        }
        // Go keeps a custom Host header only through relative redirects.
        let relative = Url::parse(location).is_err();
        let host_header = match (&tpl.custom_host, relative) {
            (Some(h), true) if self.host_header == *h => h.clone(),
            _ => authority_of(&url),
        };
        // 301/302/303 turn anything but GET and HEAD into a GET without body; 307/308 keep both.
        let keep = matches!(status.as_u16(), 307 | 308);
        let (method, body) = if keep || self.method == Method::GET || self.method == Method::HEAD {
            (
                self.method.clone(),
                if keep {
                    self.body.clone()
                } else {
                    Bytes::new()
                },
            )
        } else {
            (Method::GET, Bytes::new())
        };
        let same_origin = self.same_origin
            && url.host_str() == first.host_str()
            && url.port_or_known_default() == first.port_or_known_default();
        Ok(Hop {
            url,
            method,
            body,
            host_header,
            same_origin,
        })
    }

    /// The hyper request for this hop over `conn`.
    pub fn request(
        &self,
        tpl: &Template,
        conn: &Connection,
        proxy: Option<&Proxy>,
        cookies: &Cookies,
    ) -> Result<Request<Full<Bytes>>, String> {
        let path = &self.url[url::Position::BeforePath..url::Position::AfterQuery];
        let path = if path.is_empty() { "/" } else { path };
        let uri = if conn.pseudo_headers() {
            format!("{}://{}{}", self.url.scheme(), self.host_header, path)
        } else if conn.via_proxy {
            format!("http://{}{}", conn.authority, path)
        } else {
            path.to_string()
        };
        let mut builder = Request::builder().method(self.method.clone()).uri(&uri);
        let headers = builder.headers_mut().expect("builder is fresh");
        for (k, v) in &tpl.headers {
            if !self.same_origin && (k == AUTHORIZATION || k == COOKIE) {
                continue;
            }
            // append: a header may carry several values (`http_headers`).
            headers.append(k.clone(), v.clone());
        }
        if !headers.contains_key(COOKIE) {
            if let Some(c) = cookies.header_for(self.url.host_str().unwrap_or_default()) {
                headers.insert(COOKIE, c);
            }
        }
        if self.same_origin && !headers.contains_key(AUTHORIZATION) {
            if let Some(a) = &tpl.authorization {
                headers.insert(AUTHORIZATION, a.clone());
            }
        }
        if !conn.pseudo_headers() {
            let host = HeaderValue::from_str(&self.host_header)
                .map_err(|_| format!("Host {:?} is not a valid header value", self.host_header))?;
            headers.insert(HOST, host);
            // A fresh connection per probe, as blackbox: tell the server not to keep it.
            headers.insert(CONNECTION, HeaderValue::from_static("close"));
            if let Some(auth) = proxy
                .filter(|_| conn.via_proxy)
                .and_then(Proxy::authorization)
            {
                let mut v = HeaderValue::from_str(auth)
                    .map_err(|_| "proxy credentials are not a valid header value".to_string())?;
                v.set_sensitive(true);
                headers.insert(PROXY_AUTHORIZATION, v);
            }
        }
        builder
            .body(Full::new(self.body.clone()))
            .map_err(|e| format!("cannot build the request for {}: {e}", self.url_for_log()))
    }
}

/// `host[:port]` as the URL names it (default ports left out, as browsers do).
fn authority_of(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template() -> Template {
        Template {
            method: Method::POST,
            headers: HeaderMap::new(),
            custom_host: Some("vhost.example".into()),
            body: Bytes::from_static(b"payload"),
            authorization: None,
            compression: Compression::Identity,
        }
    }

    #[test]
    fn redirects_follow_go_rules() {
        let tpl = template();
        let first = Url::parse("http://127.0.0.1:8080/a").unwrap();
        let hop = Hop::first(first.clone(), &tpl);
        assert_eq!(hop.host_header, "vhost.example");
        let r = hop
            .redirected(StatusCode::FOUND, "/b", &first, &tpl)
            .unwrap();
        assert_eq!(r.url.as_str(), "http://127.0.0.1:8080/b");
        assert_eq!(r.method, Method::GET);
        assert!(r.body.is_empty());
        assert_eq!(r.host_header, "vhost.example", "relative keeps Host");
        assert!(r.same_origin);
        let r = hop
            .redirected(
                StatusCode::TEMPORARY_REDIRECT,
                "https://other.example/x",
                &first,
                &tpl,
            )
            .unwrap();
        assert_eq!(r.method, Method::POST);
        assert_eq!(&r.body[..], b"payload");
        assert_eq!(r.host_header, "other.example");
        assert!(!r.same_origin);
        assert!(hop
            .redirected(StatusCode::FOUND, "ftp://x/", &first, &tpl)
            .is_err());
    }

    #[test]
    fn compression_names() {
        assert_eq!(Compression::from_config("GZIP").unwrap(), Compression::Gzip);
        assert_eq!(Compression::from_config("").unwrap(), Compression::Identity);
        assert_eq!(Compression::from_config("br").unwrap(), Compression::Brotli);
        assert!(Compression::from_config("zstd")
            .unwrap_err()
            .contains("not supported"));
    }
}
