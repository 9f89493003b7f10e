//! The audit script's output split into its `==siembox:NAME==` sections, and the small readers
//! the checks share (key=value lines). Pure functions: the unit tests feed captured outputs.

use std::collections::HashMap;

/// The script, sent on stdin to `sh -s`.
pub const SCRIPT: &str = include_str!("audit.sh");

/// The command that runs the script: cached boot id ("-" for none), the heavy sections to run
/// this time (comma-separated, "-" for none) and whether it may use `sudo -n`.
pub fn command(cached_boot_id: Option<&str>, heavy: &[&str], sudo: bool) -> String {
    // The boot id is echoed back by the server; keep only its own characters so nothing else
    // can reach the remote shell (section names come from the check table, the same rule
    // keeps them plain words).
    let boot: String = cached_boot_id
        .unwrap_or("-")
        .chars()
        .filter(|c| c.is_ascii_hexdigit() || *c == '-')
        .collect();
    let boot = if boot.is_empty() { "-".into() } else { boot };
    let heavy: Vec<&str> = heavy
        .iter()
        .copied()
        .filter(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        .collect();
    let heavy = if heavy.is_empty() {
        "-".to_string()
    } else {
        heavy.join(",")
    };
    format!("sh -s -- {boot} {heavy} {}", u8::from(sudo))
}

/// Section name → its text (without the marker line).
#[derive(Debug, Default)]
pub struct Sections<'a> {
    map: HashMap<&'a str, &'a str>,
}

impl<'a> Sections<'a> {
    pub fn parse(output: &'a str) -> Sections<'a> {
        let mut map = HashMap::new();
        let mut current: Option<(&'a str, usize)> = None;
        let mut offset = 0;
        for line in output.split_inclusive('\n') {
            let trimmed = line.trim_end();
            if let Some(name) = trimmed
                .strip_prefix("==siembox:")
                .and_then(|r| r.strip_suffix("=="))
            {
                if let Some((prev, start)) = current.take() {
                    map.insert(prev, &output[start..offset]);
                }
                current = Some((name, offset + line.len()));
            }
            offset += line.len();
        }
        if let Some((prev, start)) = current {
            map.insert(prev, &output[start..]);
        }
        Sections { map }
    }

    pub fn get(&self, name: &str) -> Option<&'a str> {
        self.map.get(name).copied()
    }

    pub fn has(&self, name: &str) -> bool {
        self.map.contains_key(name)
    }

    /// Whether the script ran to its end (a cut-off output is an audit error, not findings).
    pub fn complete(&self) -> bool {
        self.has("meta") && self.has("end")
    }

    /// `key=value` of a section; the last occurrence wins.
    pub fn value(&self, section: &str, key: &str) -> Option<&'a str> {
        self.get(section)?.lines().rev().find_map(|l| {
            l.strip_prefix(key)
                .and_then(|r| r.strip_prefix('='))
                .map(str::trim)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_sections_and_reads_values() {
        let out =
            "==siembox:meta==\nboot_id=abc\ncpus=2\n==siembox:disk==\n/ 44%\n==siembox:end==\n";
        let s = Sections::parse(out);
        assert!(s.complete());
        assert_eq!(s.value("meta", "cpus"), Some("2"));
        assert_eq!(s.get("disk"), Some("/ 44%\n"));
        assert_eq!(s.value("meta", "nope"), None);
        assert!(!Sections::parse("==siembox:meta==\nx=1\n").complete());
    }

    #[test]
    fn command_keeps_only_boot_id_characters() {
        assert_eq!(command(None, &["updates"], false), "sh -s -- - updates 0");
        assert_eq!(
            command(Some("ab-12; rm -rf /"), &["updates", "suid", "x;y"], true),
            "sh -s -- ab-12-f updates,suid 1"
        );
        assert_eq!(command(None, &[], true), "sh -s -- - - 1");
    }
}
