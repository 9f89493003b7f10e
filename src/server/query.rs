//! Query strings read as blackbox reads `/probe`'s (Go's `url.ParseQuery`, then
//! `Values.Get`): pairs split on `&`; a pair holding `;` or a broken `%` escape is dropped
//! (so a target spelled that way is "missing", as in 0.28); `+` is a space; a parameter given
//! twice takes its first value.

/// The decoded pairs, in order, without the ones Go drops.
pub fn parse(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty() && !pair.contains(';'))
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            Some((unescape(k)?, unescape(v)?))
        })
        .collect()
}

/// The first value of `key`.
pub fn first<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// Go's `QueryUnescape`: `%XX` with two hex digits, `+` as a space; `None` on a broken escape.
fn unescape(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                if !hex.iter().all(u8::is_ascii_hexdigit) {
                    return None;
                }
                out.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_go_drops_are_dropped_and_the_first_value_wins() {
        let p = parse("target=a%3Ab&target=second&module=x+y&bad=%zz&semi=1;2&&flag");
        assert_eq!(first(&p, "target"), Some("a:b"));
        assert_eq!(first(&p, "module"), Some("x y"));
        assert_eq!(first(&p, "bad"), None);
        assert_eq!(first(&p, "semi"), None);
        assert_eq!(first(&p, "flag"), Some(""));
        assert_eq!(first(&parse("target=%2"), "target"), None);
        // `%+1` is no hex escape although from_str_radix would take "+1".
        assert_eq!(first(&parse("target=%+1"), "target"), None);
    }
}
