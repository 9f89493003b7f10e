//! A small cookie jar for the hops of one probe.

use hyper::header::{HeaderValue, SET_COOKIE};
use hyper::HeaderMap;

/// Cookies set by redirect responses, sent back to the same host on later hops, as Go's cookie
/// jar in blackbox does for login redirects. Host-only matching (no Domain/Path attributes),
/// bounded, never logged.
#[derive(Default)]
pub(super) struct Cookies(Vec<(String, String, String)>);

const MAX_COOKIES: usize = 50;

impl Cookies {
    pub fn store(&mut self, host: &str, headers: &HeaderMap) {
        for v in headers.get_all(SET_COOKIE) {
            let Ok(text) = v.to_str() else { continue };
            let pair = text.split(';').next().unwrap_or("").trim();
            let Some((name, value)) = pair.split_once('=') else {
                continue;
            };
            let name = name.trim();
            if name.is_empty() {
                continue;
            }
            self.0.retain(|(h, n, _)| !(h == host && n == name));
            if self.0.len() < MAX_COOKIES {
                self.0
                    .push((host.to_string(), name.to_string(), value.trim().to_string()));
            }
        }
    }

    pub fn header_for(&self, host: &str) -> Option<HeaderValue> {
        let pairs: Vec<String> = self
            .0
            .iter()
            .filter(|(h, _, _)| h == host)
            .map(|(_, n, v)| format!("{n}={v}"))
            .collect();
        if pairs.is_empty() {
            return None;
        }
        let mut v = HeaderValue::from_str(&pairs.join("; ")).ok()?;
        v.set_sensitive(true);
        Some(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_go_back_to_their_host_only() {
        let mut jar = Cookies::default();
        let mut h = HeaderMap::new();
        h.append(
            SET_COOKIE,
            HeaderValue::from_static("session=abc; Path=/; HttpOnly"),
        );
        h.append(SET_COOKIE, HeaderValue::from_static("lang=en"));
        jar.store("a.example", &h);
        let mut h = HeaderMap::new();
        h.append(SET_COOKIE, HeaderValue::from_static("session=def"));
        jar.store("a.example", &h);
        assert_eq!(jar.header_for("a.example").unwrap(), "lang=en; session=def");
        assert!(jar.header_for("b.example").is_none());
    }
}
