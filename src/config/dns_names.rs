//! The mnemonics a dns module may use (query_type, query_class, valid_rcodes), spelled as in
//! miekg/dns, which blackbox uses: checked when the config loads, resolved when probing.

use hickory_proto::rr::{DNSClass, RecordType};

/// Types hickory has no variant for but miekg knows by name (blackbox accepts them).
const EXTRA_TYPES: &[(&str, u16)] = &[
    ("MD", 3),
    ("MF", 4),
    ("MB", 7),
    ("MG", 8),
    ("MR", 9),
    ("MINFO", 14),
    ("RP", 17),
    ("AFSDB", 18),
    ("X25", 19),
    ("ISDN", 20),
    ("RT", 21),
    ("NSAPPTR", 23),
    ("PX", 26),
    ("GPOS", 27),
    ("LOC", 29),
    ("NXT", 30),
    ("KX", 36),
    ("APL", 42),
    ("IPSECKEY", 45),
    ("DHCID", 49),
    ("HIP", 55),
    ("ZONEMD", 63),
    ("SPF", 99),
    ("NID", 104),
    ("L32", 105),
    ("L64", 106),
    ("LP", 107),
    ("EUI48", 108),
    ("EUI64", 109),
    ("TKEY", 249),
    ("IXFR", 251),
    ("MAILB", 253),
    ("MAILA", 254),
    ("URI", 256),
    ("AVC", 258),
    ("AMTRELAY", 260),
    ("RESINFO", 261),
    ("TA", 32768),
    ("DLV", 32769),
];

/// miekg's `StringToRcode`.
const RCODES: &[(&str, u16)] = &[
    ("NOERROR", 0),
    ("FORMERR", 1),
    ("SERVFAIL", 2),
    ("NXDOMAIN", 3),
    ("NOTIMP", 4),
    ("REFUSED", 5),
    ("YXDOMAIN", 6),
    ("YXRRSET", 7),
    ("NXRRSET", 8),
    ("NOTAUTH", 9),
    ("NOTZONE", 10),
    ("BADSIG", 16),
    ("BADVERS", 16),
    ("BADKEY", 17),
    ("BADTIME", 18),
    ("BADMODE", 19),
    ("BADNAME", 20),
    ("BADALG", 21),
    ("BADTRUNC", 22),
    ("BADCOOKIE", 23),
];

/// `query_type`: a mnemonic (`A`, `MX`, `ANY`, …) or `TYPEnnn`; empty means ANY.
pub fn query_type(s: &str) -> Result<RecordType, String> {
    if s.is_empty() {
        return Ok(RecordType::ANY);
    }
    if let Ok(t) = s.parse::<RecordType>() {
        return Ok(t);
    }
    if let Some((_, code)) = EXTRA_TYPES.iter().find(|(n, _)| *n == s) {
        return Ok(RecordType::from(*code));
    }
    if let Some(code) = s.strip_prefix("TYPE").and_then(|n| n.parse::<u16>().ok()) {
        return Ok(RecordType::from(code));
    }
    Err(format!(
        "unknown query_type {s:?} (expected a record type such as A, AAAA, MX, SOA, TXT, ANY)"
    ))
}

/// `query_class`: IN, CS, CH, HS, NONE or ANY; empty means IN.
pub fn query_class(s: &str) -> Result<DNSClass, String> {
    match s {
        "" | "IN" => Ok(DNSClass::IN),
        "CS" => Ok(DNSClass::from(2)),
        "CH" => Ok(DNSClass::CH),
        "HS" => Ok(DNSClass::HS),
        "NONE" => Ok(DNSClass::NONE),
        "ANY" => Ok(DNSClass::ANY),
        _ => Err(format!(
            "unknown query_class {s:?} (expected IN, CH, HS, CS, NONE or ANY)"
        )),
    }
}

/// One `valid_rcodes` entry as its number.
pub fn rcode(s: &str) -> Result<u16, String> {
    RCODES
        .iter()
        .find(|(n, _)| *n == s)
        .map(|(_, c)| *c)
        .ok_or_else(|| {
            format!("unknown rcode {s:?} (expected e.g. NOERROR, NXDOMAIN, SERVFAIL, REFUSED)")
        })
}

/// The mnemonic of a received rcode, for logs.
pub fn rcode_name(code: u16) -> String {
    RCODES
        .iter()
        .find(|(_, c)| *c == code)
        .map(|(n, _)| (*n).to_string())
        .unwrap_or_else(|| code.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mnemonics_resolve() {
        assert_eq!(query_type("A").unwrap(), RecordType::A);
        assert_eq!(query_type("").unwrap(), RecordType::ANY);
        assert_eq!(query_type("IXFR").unwrap(), RecordType::IXFR);
        assert_eq!(u16::from(query_type("SPF").unwrap()), 99);
        assert_eq!(u16::from(query_type("TYPE65280").unwrap()), 65280);
        assert!(query_type("a").unwrap_err().contains("\"a\""));
        assert_eq!(query_class("CH").unwrap(), DNSClass::CH);
        assert!(query_class("XX").is_err());
        assert_eq!(rcode("NXDOMAIN").unwrap(), 3);
        assert!(rcode("nxdomain").is_err());
        assert_eq!(rcode_name(2), "SERVFAIL");
    }
}
