//! Certificate fields as Go's crypto/x509 prints them, so the labels of
//! `probe_ssl_last_chain_info` match blackbox's: a distinguished name as `pkix.Name.String()`
//! (RFC 2253 order, most specific first), the serial as `%x` of its magnitude, DNS names only.

use x509_parser::prelude::{GeneralName, X509Certificate, X509Name};

/// Attribute types Go names (others print as `OID=#<hex DER>`), by the last arc under 2.5.4.
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

/// `name` as Go's `pkix.Name.String()`: Go keeps the named attributes in fixed fields (C, ST, L,
/// STREET, POSTALCODE, O, OU, then the last CN and SERIALNUMBER), other attributes before them
/// in certificate order, and prints the sequence last to first.
pub fn go_dn(name: &X509Name<'_>) -> String {
    let mut rdns: Vec<Vec<String>> = Vec::new();
    let mut named: Vec<Vec<String>> = vec![Vec::new(); NAMED.len()];
    for atv in name.iter_rdn().flat_map(|rdn| rdn.iter()) {
        let arcs: Vec<u64> = atv
            .attr_type()
            .iter()
            .map(|i| i.collect())
            .unwrap_or_default();
        let slot = match arcs.as_slice() {
            [2, 5, 4, t] => NAMED.iter().position(|(n, _)| n == t),
            _ => None,
        };
        match (slot, atv.as_str()) {
            (Some(i), Ok(v)) => {
                let short = NAMED[i].1;
                // Go keeps one CN and one SERIALNUMBER: the last one seen.
                if short == "CN" || short == "SERIALNUMBER" {
                    named[i].clear();
                }
                named[i].push(format!("{short}={}", escape(v)));
            }
            // A named type whose value is not a string is dropped by Go's parser.
            (Some(_), Err(_)) => {}
            (None, _) => rdns.push(vec![format!(
                "{}=#{}",
                atv.attr_type().to_id_string(),
                hex(&der_of(
                    atv.as_str().ok(),
                    atv.attr_value().tag().0,
                    atv.as_slice()
                ))
            )]),
        }
    }
    rdns.extend(named.into_iter().filter(|v| !v.is_empty()));
    rdns.iter()
        .rev()
        .map(|rdn| rdn.join("+"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The DER Go writes for an attribute it does not name: a string re-encoded as Go marshals one
/// (PrintableString when its characters allow, else UTF8String), anything else as it came.
fn der_of(text: Option<&str>, tag: u32, raw: &[u8]) -> Vec<u8> {
    let (tag, body) = match text {
        Some(s) if s.bytes().all(printable) => (0x13, s.as_bytes()),
        Some(s) => (0x0c, s.as_bytes()),
        None => (tag as u8, raw),
    };
    let mut out = vec![tag];
    let len = body.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(body);
    out
}

/// Go's PrintableString alphabet (with `*` and `&`, which its marshaller accepts).
fn printable(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b" '()+,-./:=?*&".contains(&b)
}

/// RFC 2253 escaping as Go does it.
fn escape(v: &str) -> String {
    let last = v.chars().count().saturating_sub(1);
    let mut out = String::with_capacity(v.len());
    for (i, c) in v.chars().enumerate() {
        let escaped = match c {
            ',' | '+' | '"' | '\\' | '<' | '>' | ';' => true,
            ' ' => i == 0 || i == last,
            '#' => i == 0,
            _ => false,
        };
        if escaped {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The serial as blackbox prints it: `%x` of the number's bytes, without DER's sign byte.
pub fn go_serial(cert: &X509Certificate<'_>) -> String {
    let raw = cert.raw_serial();
    let start = raw.iter().position(|b| *b != 0).unwrap_or(raw.len());
    hex(&raw[start..])
}

/// The subject alternative DNS names, comma-separated (Go's `cert.DNSNames`).
pub fn dns_names(cert: &X509Certificate<'_>) -> String {
    cert.subject_alternative_name()
        .ok()
        .flatten()
        .map(|ext| {
            ext.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    GeneralName::DNSName(d) => Some(*d),
                    _ => None,
                })
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, DnType, KeyPair, SerialNumber};

    fn parsed(params: CertificateParams) -> Vec<u8> {
        let key = KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn names_serials_and_dns_names_print_as_go_does() {
        let mut params =
            CertificateParams::new(vec!["a.example".to_string(), "127.0.0.1".to_string()]).unwrap();
        params.distinguished_name.push(DnType::CountryName, "DE");
        params
            .distinguished_name
            .push(DnType::OrganizationName, "Acme, Inc.");
        params.distinguished_name.push(DnType::CommonName, " lead");
        params.serial_number = Some(SerialNumber::from_slice(&[0x00, 0x8a, 0x01]));
        let der = parsed(params);
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        // As Go prints it: most specific first, no spaces, RFC 2253 escapes.
        assert_eq!(go_dn(cert.subject()), "CN=\\ lead,O=Acme\\, Inc.,C=DE");
        assert_eq!(go_serial(&cert), "8a01");
        assert_eq!(dns_names(&cert), "a.example");
    }

    #[test]
    fn unnamed_attributes_print_as_oid_and_der() {
        // emailAddress (1.2.840.113549.1.9.1): '@' is not PrintableString, so Go marshals a
        // UTF8String (tag 0x0c) and puts it last.
        let der = der_of(Some("a@b"), 22, b"a@b");
        assert_eq!(hex(&der), "0c03614062");
        assert_eq!(hex(&der_of(Some("ab"), 22, b"ab")), "13026162");
    }
}
