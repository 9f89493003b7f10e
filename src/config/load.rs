//! Reading a config file: YAML parse errors with file, line, column and field path; then the
//! cross-field checks of `validate`, all reported at once.

use super::Config;
use std::fmt;
use std::path::Path;

/// One thing wrong with a config, located as precisely as we know.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigProblem {
    pub line: Option<u64>,
    pub column: Option<u64>,
    /// Dotted path of the field, e.g. `modules.http_2xx.http.method`.
    pub field: String,
    pub message: String,
}

/// Everything wrong with one config file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub origin: String,
    pub problems: Vec<ConfigProblem>,
}

impl std::error::Error for ConfigError {}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            f.write_str(&self.origin)?;
            match (p.line, p.column) {
                (Some(l), Some(c)) => write!(f, ":{l}:{c}")?,
                (Some(l), None) => write!(f, ":{l}")?,
                _ => {}
            }
            if p.field.is_empty() {
                write!(f, ": {}", p.message)?;
            } else {
                write!(f, ": field {}: {}", p.field, p.message)?;
            }
        }
        Ok(())
    }
}

impl ConfigError {
    pub fn single(origin: &str, field: &str, message: impl Into<String>) -> Self {
        ConfigError {
            origin: origin.to_string(),
            problems: vec![ConfigProblem {
                line: None,
                column: None,
                field: field.to_string(),
                message: message.into(),
            }],
        }
    }
}

/// The largest config file we read; anything bigger is an operator mistake or an attack.
pub const MAX_CONFIG_BYTES: u64 = 16 * 1024 * 1024;

impl Config {
    pub fn load_file(path: &Path) -> Result<Config, ConfigError> {
        let text = Config::read_source(path)?;
        Config::from_yaml_str(&text, &path.display().to_string())
    }

    /// The config file's text, size-capped; what a reload hashes before deciding to parse.
    pub fn read_source(path: &Path) -> Result<String, ConfigError> {
        read_capped(path)
    }

    /// Parses and validates; `origin` names the source in errors (a file path). The result
    /// carries the checksum of `text`.
    pub fn from_yaml_str(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let mut config = Config::parse_and_validate(text, origin)?;
        config.source_checksum = Some(source_checksum(text));
        Ok(config)
    }

    fn parse_and_validate(text: &str, origin: &str) -> Result<Config, ConfigError> {
        if text.trim().is_empty() {
            return Ok(Config::default());
        }
        let _ = super::types::take_unreadable_files();
        let mut config: Config = parse_yaml(text, origin)?;
        let unreadable = super::types::take_unreadable_files();
        config.unreadable_files = unreadable.iter().map(|(path, _)| path.clone()).collect();
        config.warnings = unreadable
            .into_iter()
            .map(|(path, message)| ConfigProblem {
                line: line_of_text(text, &path),
                column: None,
                field: String::new(),
                message: format!("{message} (probes that use it will fail until it exists)"),
            })
            .collect();
        set_aside_unknown_probers(&mut config, text);
        config.warnings.extend(binary_outside_bytes_fields(text));
        let (problems, warnings) = super::validate::validate(&config, text);
        config.warnings.extend(warnings);
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError {
                origin: origin.to_string(),
                problems,
            })
        }
    }
}

/// Moves modules whose `prober` names no prober of ours from `modules` to `unknown_probers`,
/// with a warning. The typed parse cannot keep the name (it reads a placeholder), so it comes
/// from a second, shallow read of `modules.*.prober`.
fn set_aside_unknown_probers(config: &mut Config, text: &str) {
    #[derive(serde::Deserialize)]
    struct Shallow {
        #[serde(default)]
        modules: std::collections::BTreeMap<String, Option<ShallowModule>>,
    }
    #[derive(serde::Deserialize)]
    struct ShallowModule {
        #[serde(default)]
        prober: Option<String>,
    }
    let Ok(shallow) = parse_yaml::<Shallow>(text, "") else {
        return;
    };
    for (name, module) in shallow.modules {
        let prober = module.and_then(|m| m.prober).unwrap_or_default();
        if super::ProberKind::from_name(&prober).is_some() {
            continue;
        }
        config.modules.remove(&name);
        config.warnings.push(ConfigProblem {
            line: line_of_field(text, &name, "prober"),
            column: None,
            field: format!("modules.{name}.prober"),
            message: format!(
                "unknown prober {prober:?}: /probe answers 400 for module {name} (as blackbox does)"
            ),
        });
        config.unknown_probers.insert(name, prober);
    }
}

/// `!!binary` is decoded where bytes go on the wire (`WireBytes`: `send`, `expect_bytes`); any
/// other string field gets its base64 text (see `parse_yaml`), which is worth a warning.
fn binary_outside_bytes_fields(text: &str) -> Vec<ConfigProblem> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let code = line.split(" #").next().unwrap_or(line);
        let Some((key, value)) = code.trim_start().trim_start_matches("- ").split_once(':') else {
            continue;
        };
        let binary = value.trim_start().starts_with("!!binary")
            || value
                .trim_start()
                .starts_with("!<tag:yaml.org,2002:binary>");
        if binary && !matches!(key.trim(), "send" | "expect_bytes") {
            out.push(ConfigProblem {
                line: Some(i as u64 + 1),
                column: None,
                field: key.trim().to_string(),
                message: "!!binary is decoded only in send and expect_bytes; here its base64 text is used as it is".into(),
            });
        }
    }
    out
}

/// Reads a whole YAML file of type `T`, with the errors of [`parse_yaml`].
pub fn read_yaml_file<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    parse_yaml(&read_capped(path)?, &path.display().to_string())
}

/// SHA-256 of a config file's bytes, as blackbox 0.28 compares them: content, not mtime, so a
/// ConfigMap's symlink swap counts and a touch does not.
pub fn source_checksum(text: &str) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    Sha256::digest(text.as_bytes()).into()
}

fn read_capped(path: &Path) -> Result<String, ConfigError> {
    read_config_text(path).map_err(|e| ConfigError::single(&path.display().to_string(), "", e))
}

/// A file the config is or names (file_sd too), at most [`MAX_CONFIG_BYTES`], measured while
/// reading; the error says why, the caller names the file.
pub fn read_config_text(path: &Path) -> Result<String, String> {
    super::bounded_read::read_bounded_text(path, MAX_CONFIG_BYTES, super::bounded_read::FIFO_WAIT)
        .map_err(|e| format!("cannot read file: {e}"))
}

/// Deserialises YAML into `T`; an error names the origin, line, column and field path.
pub fn parse_yaml<T: serde::de::DeserializeOwned>(
    text: &str,
    origin: &str,
) -> Result<T, ConfigError> {
    let mut path_seen = String::new();
    // `!!binary` scalars reach `WireBytes` as their base64 text plus the tag, so bytes that are
    // not UTF-8 (which a Rust string cannot hold) still load; `WireBytes` decodes them.
    let options = serde_saphyr::options! { ignore_binary_tag_for_string: true };
    let parsed = serde_saphyr::with_deserializer_from_str_with_options(text, options, |de| {
        serde_path_to_error::deserialize::<_, T>(de).map_err(|e| {
            path_seen = e.path().to_string();
            e.into_inner()
        })
    });
    parsed.map_err(|e| {
        let loc = e.location();
        ConfigError {
            origin: origin.to_string(),
            problems: vec![ConfigProblem {
                line: loc.map(|l| l.line()),
                column: loc.map(|l| l.column()),
                field: clean_path(&path_seen),
                message: first_line_of(&e),
            }],
        }
    })
}

/// serde-saphyr renders a snippet after the message; we keep the message and give the location
/// ourselves, so every error is one line in logs.
fn first_line_of(e: &serde_saphyr::Error) -> String {
    let full = e.to_string();
    let mut line = full.lines().next().unwrap_or("invalid YAML").trim();
    // Drop the location serde-saphyr repeats; we print it in front already.
    line = line.strip_prefix("error: ").unwrap_or(line);
    if let Some(rest) = line.strip_prefix("line ") {
        if let Some((_, msg)) = rest.split_once(": ") {
            line = msg;
        }
    }
    match line.find(" at line ") {
        Some(i) => line[..i].to_string(),
        None => line.to_string(),
    }
}

/// serde_path_to_error writes `?` for positions it could not name (a YAML syntax error).
fn clean_path(path: &str) -> String {
    if path == "." {
        return String::new();
    }
    let parts: Vec<&str> = path.split('.').filter(|p| *p != "?").collect();
    parts.join(".")
}

/// The 1-based line where `needle` first appears.
fn line_of_text(text: &str, needle: &str) -> Option<u64> {
    text.lines()
        .position(|l| l.contains(needle))
        .map(|i| i as u64 + 1)
}

/// Formats warnings like errors: `file:line: message`, one per line.
pub fn format_warnings(origin: &str, warnings: &[ConfigProblem]) -> String {
    let e = ConfigError {
        origin: origin.to_string(),
        problems: warnings.to_vec(),
    };
    e.to_string()
}

/// The 1-based line where `key:` first appears, to locate problems found after parsing.
pub(super) fn line_of_key(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .position(|l| is_key_line(l, key))
        .map(|i| i as u64 + 1)
}

fn is_key_line(line: &str, key: &str) -> bool {
    let t = line.trim_start().trim_start_matches("- ");
    [key.to_string(), format!("\"{key}\""), format!("'{key}'")]
        .iter()
        .any(|k| {
            t.strip_prefix(k.as_str())
                .is_some_and(|rest| rest.starts_with(':'))
        })
}

/// The 1-based line of a problem at `field` (dotted, e.g. `http.tls_config.ca_file`) in the block
/// of key `block` (a module name): each segment's key is looked for inside the block of the one
/// before; the line is that of the deepest key found.
pub(super) fn line_of_field(text: &str, block: &str, field: &str) -> Option<u64> {
    let lines: Vec<&str> = text.lines().collect();
    let mut at = line_of_key(text, block)? as usize;
    for segment in field.split('.') {
        let key = segment.split('[').next().unwrap_or(segment);
        match key_in_block(&lines, at, key) {
            Some(line) => at = line,
            None => break,
        }
    }
    Some(at as u64)
}

/// The 1-based line of `key:` among the lines indented under line `start` (1-based).
fn key_in_block(lines: &[&str], start: usize, key: &str) -> Option<usize> {
    let indent = |l: &str| l.len() - l.trim_start().len();
    let base = indent(lines[start - 1]);
    for (i, l) in lines.iter().enumerate().skip(start) {
        let t = l.trim_start();
        let list_item_at_base = indent(l) == base && t.starts_with("- ");
        if !t.is_empty() && !t.starts_with('#') && indent(l) <= base && !list_item_at_base {
            return None;
        }
        if is_key_line(l, key) {
            return Some(i + 1);
        }
    }
    None
}
