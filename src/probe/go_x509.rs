//! Certificate fields as Go's crypto/x509 prints them, for the labels of
//! `probe_ssl_last_chain_info` (blackbox prober/tls.go: `pkix.Name.String()` for subject and
//! issuer, `DNSNames` joined by ",").

use x509_parser::prelude::{GeneralName, X509Certificate, X509Name};

/// The attributes Go parses into named fields, in the order `pkix.Name.ToRDNSequence` emits
/// them (C, ST, L, STREET, POSTALCODE, O, OU, CN, SERIALNUMBER), with their short names.
const NAMED: [(u64, &str); 9] = [
    (6, "C"),
    (8, "ST"),
    (7, "L"),
    (9, "STREET"),
    (17, "POSTALCODE"),
    (10, "O"),
    (11, "OU"),
    (3, "CN"),
    (5, "SERIALNUMBER"),
];

/// `pkix.Name.String()`: other attributes first, each its own RDN; then the named ones grouped
/// by type in Go's order (CN and SERIALNUMBER keep only their last value); the RDNs printed in
/// reverse, joined by "," (values of one RDN by "+"), with RFC 4514 escaping.
pub fn name(name: &X509Name<'_>) -> String {
    let mut rdns: Vec<Vec<String>> = Vec::new();
    let mut named: Vec<Vec<String>> = vec![Vec::new(); NAMED.len()];
    for attr in name.iter_attributes() {
        let oid = attr.attr_type();
        let arcs: Vec<u64> = oid.iter().map(|a| a.collect()).unwrap_or_default();
        let slot = match arcs.as_slice() {
            [2, 5, 4, t] => NAMED.iter().position(|(n, _)| n == t),
            _ => None,
        };
        let value = attr.as_str().ok();
        match (slot, value) {
            (Some(i), Some(v)) => {
                let (_, short) = NAMED[i];
                if matches!(short, "CN" | "SERIALNUMBER") {
                    named[i].clear();
                }
                named[i].push(format!("{short}={}", escape(v)));
            }
            (Some(_), None) => {}
            (None, Some(v)) => {
                rdns.push(vec![format!("{}=#{}", oid.to_id_string(), der_string(v))])
            }
            (None, None) => {}
        }
    }
    rdns.extend(named.into_iter().filter(|r| !r.is_empty()));
    rdns.iter()
        .rev()
        .map(|rdn| rdn.join("+"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The certificate's DNS names only (Go's `DNSNames`; IP addresses are not among them).
pub fn dns_names(cert: &X509Certificate<'_>) -> String {
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return String::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|n| match n {
            GeneralName::DNSName(d) => Some(*d),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Go's value escaping in `RDNSequence.String()`.
fn escape(value: &str) -> String {
    let last = value.chars().count().saturating_sub(1);
    let mut out = String::with_capacity(value.len());
    for (k, c) in value.chars().enumerate() {
        let special = match c {
            ',' | '+' | '"' | '\\' | '<' | '>' | ';' => true,
            ' ' => k == 0 || k == last,
            '#' => k == 0,
            _ => false,
        };
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Hex of the DER Go's `asn1.Marshal` gives a string: PrintableString when every character is
/// in its set, UTF8String otherwise.
fn der_string(v: &str) -> String {
    let printable = v
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || " '()+,-./:=?".contains(c));
    let mut der = vec![if printable { 0x13 } else { 0x0c }];
    let len = v.len();
    if len < 0x80 {
        der.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        der.push(0x80 | bytes.len() as u8);
        der.extend(bytes);
    }
    der.extend(v.as_bytes());
    der.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped_as_go_does() {
        assert_eq!(escape("a,b+c"), "a\\,b\\+c");
        assert_eq!(escape(" #x# "), "\\ #x#\\ ");
        assert_eq!(escape("#lead"), "\\#lead");
    }

    #[test]
    fn other_attributes_are_hex_of_their_der() {
        // emailAddress has '@', outside PrintableString: a UTF8String.
        assert_eq!(der_string("a@b"), "0c03614062");
        assert_eq!(der_string("ab"), "13026162");
    }
}
