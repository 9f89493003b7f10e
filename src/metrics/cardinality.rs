//! Cardinality control helpers (SPEC §7): bounded label values and valid label names.
//! Every label value of scheduled results passes through here.

use std::borrow::Cow;

/// FNV-1a (64 bit) over raw bytes: a hash that is the same in every process and every version
/// (unlike std's `RandomState`/`Hash`), for shard assignment and truncation markers.
pub fn fnv1a64(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            // A separator, so ("ab","c") and ("a","bc") differ.
            h ^= 0xff;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        for b in *p {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

/// Caps a label value at `max` characters. A cut value ends in `…` and 8 hex digits of its hash,
/// so two long values sharing a prefix stay two series instead of colliding.
pub fn cap_value(v: &str, max: usize) -> Cow<'_, str> {
    if v.len() <= max || v.chars().count() <= max {
        return Cow::Borrowed(v);
    }
    if max < 12 {
        let mut s: String = v.chars().take(max.saturating_sub(1)).collect();
        s.push('…');
        return Cow::Owned(s);
    }
    let mut s: String = v.chars().take(max - 9).collect();
    s.push('…');
    s.push_str(&format!("{:08x}", fnv1a64(&[v.as_bytes()]) as u32));
    Cow::Owned(s)
}

/// The `target` label value of a scheduled target. URLs lose their query string and fragment
/// (unbounded values: session ids, cache busters, tokens) and any `user:password@` part (a
/// secret must never reach a label); the probe itself still uses the full target.
pub fn target_label(target: &str) -> Cow<'_, str> {
    let Some((scheme, rest)) = target.split_once("://") else {
        return Cow::Borrowed(target);
    };
    let end = rest.find(['?', '#']).unwrap_or(rest.len());
    let rest = &rest[..end];
    let auth_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(auth_end);
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if end == target.len() - scheme.len() - 3 && authority.len() == auth_end {
        return Cow::Borrowed(target);
    }
    Cow::Owned(format!("{scheme}://{authority}{path}"))
}

/// A label name Prometheus accepts and that is not internal (`__…`, dropped as Prometheus drops
/// `__meta_*` labels after relabelling).
pub fn is_valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with("__")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_is_the_published_function() {
        // Published FNV-1a 64 test vectors: the hash must never change between versions.
        assert_eq!(fnv1a64(&[b""]), 0xcbf29ce484222325);
        assert_eq!(fnv1a64(&[b"a"]), 0xaf63dc4c8601ec8c);
        assert_eq!(fnv1a64(&[b"foobar"]), 0x85944171f73967e8);
        assert_ne!(fnv1a64(&[b"ab", b"c"]), fnv1a64(&[b"a", b"bc"]));
    }

    #[test]
    fn long_values_are_cut_with_a_distinct_marker() {
        let a = "x".repeat(300) + "a";
        let b = "x".repeat(300) + "b";
        let (ca, cb) = (cap_value(&a, 32), cap_value(&b, 32));
        assert_eq!(ca.chars().count(), 32);
        assert!(ca.contains('…'));
        assert_ne!(ca, cb);
        assert_eq!(cap_value("short", 32), "short");
        assert_eq!(cap_value("ééééé", 3), "éé…");
    }

    #[test]
    fn target_labels_drop_query_and_credentials() {
        assert_eq!(
            target_label("https://u:pw@example.org:8443/a/b?token=1#f"),
            "https://example.org:8443/a/b"
        );
        assert_eq!(target_label("http://x/?a=1"), "http://x/");
        assert_eq!(
            target_label("https://example.org/p"),
            "https://example.org/p"
        );
        assert_eq!(target_label("10.0.0.1:22"), "10.0.0.1:22");
        assert_eq!(target_label("web-1"), "web-1");
    }

    #[test]
    fn label_names() {
        assert!(is_valid_label_name("env"));
        assert!(is_valid_label_name("_x1"));
        assert!(!is_valid_label_name("__meta_x"));
        assert!(!is_valid_label_name("1x"));
        assert!(!is_valid_label_name("a-b"));
        assert!(!is_valid_label_name(""));
    }
}
