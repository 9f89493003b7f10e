//! Resource records as text, the way Go's miekg/dns `RR.String()` writes them
//! (`name.<TAB>ttl<TAB>class<TAB>type<TAB>rdata`): blackbox users' `validate_*_rrs` regexps are
//! written against that text, so it must match byte for byte for the common types.

use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use std::fmt::Write as _;

/// One record in miekg's presentation format.
pub fn rr_text(record: &Record) -> String {
    let mut out = String::with_capacity(64);
    out.push_str(&name_text(&record.name));
    let _ = write!(
        out,
        "\t{}\t{}\t{}\t",
        record.ttl,
        class_text(record.dns_class),
        type_text(record.record_type())
    );
    rdata_text(&record.data, &mut out);
    out
}

/// Names in ASCII (punycode kept, as miekg does), always fully qualified.
fn name_text(name: &Name) -> String {
    let mut s = name.to_ascii();
    if !s.ends_with('.') {
        s.push('.');
    }
    s
}

pub fn class_text(class: DNSClass) -> String {
    match class {
        DNSClass::IN => "IN".into(),
        DNSClass::CH => "CH".into(),
        DNSClass::HS => "HS".into(),
        DNSClass::NONE => "NONE".into(),
        DNSClass::ANY => "ANY".into(),
        other => format!("CLASS{}", u16::from(other)),
    }
}

pub fn type_text(rtype: RecordType) -> String {
    match rtype {
        RecordType::Unknown(code) => format!("TYPE{code}"),
        other => <&'static str>::from(other).to_string(),
    }
}

fn rdata_text(data: &RData, out: &mut String) {
    match data {
        RData::A(a) => {
            let _ = write!(out, "{}", a.0);
        }
        RData::AAAA(a) => {
            let _ = write!(out, "{}", a.0);
        }
        RData::CNAME(n) => out.push_str(&name_text(&n.0)),
        RData::NS(n) => out.push_str(&name_text(&n.0)),
        RData::PTR(n) => out.push_str(&name_text(&n.0)),
        RData::ANAME(n) => out.push_str(&name_text(&n.0)),
        RData::MX(mx) => {
            let _ = write!(out, "{} {}", mx.preference, name_text(&mx.exchange));
        }
        RData::SOA(soa) => {
            // miekg prints the timers as unsigned 32-bit numbers.
            let _ = write!(
                out,
                "{} {} {} {} {} {} {}",
                name_text(&soa.mname),
                name_text(&soa.rname),
                soa.serial,
                soa.refresh as u32,
                soa.retry as u32,
                soa.expire as u32,
                soa.minimum
            );
        }
        RData::SRV(srv) => {
            let _ = write!(
                out,
                "{} {} {} {}",
                srv.priority,
                srv.weight,
                srv.port,
                name_text(&srv.target)
            );
        }
        RData::TXT(txt) => {
            for (i, s) in txt.txt_data.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                quoted(s, out);
            }
        }
        RData::HINFO(h) => {
            quoted(&h.cpu, out);
            out.push(' ');
            quoted(&h.os, out);
        }
        RData::Unknown { rdata, .. } => generic(&rdata.anything, out),
        RData::NULL(n) => generic(&n.anything, out),
        RData::Update0(_) => {}
        // CAA, SSHFP, TLSA, SVCB, HTTPS, NAPTR, …: hickory writes the usual zone-file form.
        other => {
            let _ = write!(out, "{other}");
        }
    }
}

/// A character-string: quoted, `"` and `\` escaped, bytes outside printable ASCII as `\DDD`.
fn quoted(bytes: &[u8], out: &mut String) {
    out.push('"');
    for &b in bytes {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b' '..=b'~' => out.push(b as char),
            _ => {
                let _ = write!(out, "\\{b:03}");
            }
        }
    }
    out.push('"');
}

/// RFC 3597 form for types without a text form: `\# length hex`.
fn generic(bytes: &[u8], out: &mut String) {
    let _ = write!(out, "\\# {}", bytes.len());
    if !bytes.is_empty() {
        out.push(' ');
        for b in bytes {
            let _ = write!(out, "{b:02x}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::rdata::{A, MX, SOA, SRV, TXT};
    use std::str::FromStr;

    fn name(s: &str) -> Name {
        Name::from_str(s).unwrap()
    }

    #[test]
    fn a_record_matches_the_blackbox_example() {
        let r = Record::from_rdata(
            name("www.prometheus.io."),
            300,
            RData::A(A("127.0.0.1".parse().unwrap())),
        );
        assert_eq!(rr_text(&r), "www.prometheus.io.\t300\tIN\tA\t127.0.0.1");
    }

    #[test]
    fn names_in_rdata_are_fully_qualified() {
        let r = Record::from_rdata(
            name("example.org."),
            60,
            RData::MX(MX::new(10, name("mail.example.org."))),
        );
        assert_eq!(
            rr_text(&r),
            "example.org.\t60\tIN\tMX\t10 mail.example.org."
        );
        let r = Record::from_rdata(
            name("_sip._tcp.example.org."),
            60,
            RData::SRV(SRV::new(1, 2, 5060, name("sip.example.org."))),
        );
        assert_eq!(
            rr_text(&r),
            "_sip._tcp.example.org.\t60\tIN\tSRV\t1 2 5060 sip.example.org."
        );
    }

    #[test]
    fn soa_lists_every_field() {
        let soa = SOA::new(
            name("ns.example.org."),
            name("hostmaster.example.org."),
            2024010101,
            1200,
            180,
            1209600,
            600,
        );
        let r = Record::from_rdata(name("example.org."), 600, RData::SOA(soa));
        assert_eq!(
            rr_text(&r),
            "example.org.\t600\tIN\tSOA\tns.example.org. hostmaster.example.org. 2024010101 1200 180 1209600 600"
        );
    }

    #[test]
    fn txt_strings_are_quoted_and_escaped() {
        let txt = TXT::from_bytes(vec![b"v=spf1 -all", b"say \"hi\"\\", b"\x01\xc3\xa9"]);
        let r = Record::from_rdata(name("example.org."), 300, RData::TXT(txt));
        assert_eq!(
            rr_text(&r),
            "example.org.\t300\tIN\tTXT\t\"v=spf1 -all\" \"say \\\"hi\\\"\\\\\" \"\\001\\195\\169\""
        );
    }

    #[test]
    fn unknown_types_use_the_generic_form() {
        assert_eq!(type_text(RecordType::Unknown(65280)), "TYPE65280");
        let mut out = String::new();
        generic(&[0xde, 0xad], &mut out);
        assert_eq!(out, "\\# 2 dead");
    }

    #[test]
    fn idn_owner_names_stay_in_punycode() {
        let r = Record::from_rdata(
            Name::from_utf8("bücher.example.").unwrap(),
            1,
            RData::A(A("192.0.2.1".parse().unwrap())),
        );
        assert!(
            rr_text(&r).starts_with("xn--bcher-kva.example.\t"),
            "{}",
            rr_text(&r)
        );
    }
}
