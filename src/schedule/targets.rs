//! What the schedule runs: every job's targets (inline, Prometheus file_sd files, configured
//! servers for audits) with their labels, reduced to this replica's shard.

use super::shard::Shard;
use crate::config::{Config, ProberKind, ScheduleJob, ServerSelection};
use crate::metrics::cardinality::{fnv1a64, is_valid_label_name, target_label};
use crate::metrics::results::SeriesLabels;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Labels every scheduled series has; job and file_sd labels cannot override them.
const RESERVED: [&str; 3] = ["module", "target", "prober"];

/// One scheduled (module, target, labels) of this replica.
#[derive(Debug)]
pub struct ScheduledTarget {
    pub module: String,
    pub target: String,
    pub prober: ProberKind,
    pub interval: Duration,
    /// Stable offset of this target's runs within the interval (spreads load over `jitter`).
    pub phase: Duration,
    pub labels: Arc<SeriesLabels>,
}

impl ScheduledTarget {
    /// What a running task must match to be kept on refresh.
    pub fn same_timing(&self, other: &ScheduledTarget) -> bool {
        self.interval == other.interval && self.phase == other.phase
    }
}

/// A Prometheus file_sd target group.
#[derive(Debug, Clone, Deserialize)]
pub struct TargetGroup {
    #[serde(default)]
    pub targets: Vec<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// The last good content of every file_sd file: a file that turns bad (half-written, invalid)
/// keeps its previous targets, as Prometheus does.
#[derive(Debug, Default)]
pub struct FileSdCache {
    files: HashMap<PathBuf, Vec<TargetGroup>>,
}

impl FileSdCache {
    fn groups(&mut self, path: &Path) -> Vec<TargetGroup> {
        match read_file_sd(path) {
            Ok(groups) => {
                self.files.insert(path.to_path_buf(), groups.clone());
                groups
            }
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "cannot read file_sd file; keeping its previous targets");
                self.files.get(path).cloned().unwrap_or_default()
            }
        }
    }
}

pub fn read_file_sd(path: &Path) -> Result<Vec<TargetGroup>, String> {
    let text = crate::config::read_config_text(path)?;
    let is_json = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    if is_json {
        serde_json::from_str(&text).map_err(|e| format!("invalid file_sd JSON: {e}"))
    } else if text.trim().is_empty() {
        Ok(Vec::new())
    } else {
        serde_saphyr::from_str(&text).map_err(|e| format!("invalid file_sd YAML: {e}"))
    }
}

/// Files matching a file_sd pattern: `*` and `?` in the file name only (as Prometheus allows).
pub fn glob(pattern: &str) -> Vec<PathBuf> {
    let path = Path::new(pattern);
    let (dir, name) = match (path.parent(), path.file_name().and_then(|n| n.to_str())) {
        (Some(d), Some(n)) => (d, n),
        _ => return Vec::new(),
    };
    if !name.contains(['*', '?']) {
        return if path.is_file() {
            vec![path.to_path_buf()]
        } else {
            Vec::new()
        };
    }
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| {
            let n = e.file_name();
            // Editors' and ConfigMaps' hidden files (`..data`, `.x.swp`) are not target files.
            n.to_str()
                .is_some_and(|n| !n.starts_with('.') && wildcard_match(name, n))
        })
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    found.sort();
    found
}

fn wildcard_match(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut pi, mut ni, mut star, mut mark) = (0, 0, None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Every target of every job in `config` that this replica runs, deduplicated by series.
pub fn expand(
    config: &Config,
    shard: Shard,
    files: &mut FileSdCache,
    max_label_len: usize,
) -> HashMap<String, ScheduledTarget> {
    let mut out = HashMap::new();
    for job in &config.schedule {
        let Some(module) = config.modules.get(&job.module) else {
            continue;
        };
        let mut groups: Vec<TargetGroup> = vec![TargetGroup {
            targets: job.targets.clone(),
            labels: BTreeMap::new(),
        }];
        for pattern in &job.file_sd {
            for file in glob(pattern) {
                groups.extend(files.groups(&file));
            }
        }
        if let Some(sel) = &job.servers {
            for s in &config.servers {
                let chosen = match sel {
                    ServerSelection::Keyword(_) => true,
                    ServerSelection::Named(names) => names.contains(&s.name),
                };
                if chosen {
                    groups.push(TargetGroup {
                        targets: vec![s.name.clone()],
                        labels: s.labels.clone(),
                    });
                }
            }
        }
        for group in &groups {
            for target in &group.targets {
                if target.is_empty() || !shard.owns(&job.module, target) {
                    continue;
                }
                let t = scheduled(job, module.prober, target, &group.labels, max_label_len);
                out.entry(t.labels.key.clone()).or_insert(t);
            }
        }
    }
    out
}

fn scheduled(
    job: &ScheduleJob,
    prober: ProberKind,
    target: &str,
    group_labels: &BTreeMap<String, String>,
    max_label_len: usize,
) -> ScheduledTarget {
    // Job labels, then file_sd group labels over them.
    let mut extra: BTreeMap<&str, &str> = BTreeMap::new();
    for (k, v) in job.labels.iter().chain(group_labels) {
        if is_valid_label_name(k) && !RESERVED.contains(&k.as_str()) {
            extra.insert(k, v);
        } else {
            tracing::debug!(label = %k, module = %job.module, "label skipped: reserved or not a valid label name");
        }
    }
    let shown = target_label(target);
    let mut pairs: Vec<(&str, &str)> = vec![
        ("module", &job.module),
        ("target", &shown),
        ("prober", prober.as_str()),
    ];
    pairs.extend(extra.iter().map(|(k, v)| (*k, *v)));
    let mut key = String::new();
    for (k, v) in &pairs {
        key.push_str(k);
        key.push('\u{1}');
        key.push_str(v);
        key.push('\u{0}');
    }
    // The full target too: two URLs differing only in their query string are two probes
    // (their series collide on `target` and the later one is dropped by the cardinality cap).
    key.push_str(target);
    let interval = job.interval.get();
    let phase = match job.jitter.map(|j| j.get()).filter(|j| !j.is_zero()) {
        Some(j) => {
            let window = j.min(interval).as_nanos().max(1) as u64;
            Duration::from_nanos(fnv1a64(&[key.as_bytes()]) % window)
        }
        None => Duration::ZERO,
    };
    ScheduledTarget {
        module: job.module.clone(),
        target: target.to_string(),
        prober,
        interval,
        phase,
        labels: Arc::new(SeriesLabels::new(key, &pairs, max_label_len)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(wildcard_match("*.yml", "a.yml"));
        assert!(wildcard_match("tg_*.json", "tg_1.json"));
        assert!(!wildcard_match("tg_*.json", "tg_1.yml"));
        assert!(wildcard_match("a?c", "abc"));
        assert!(wildcard_match("*", "x"));
        assert!(!wildcard_match("a*b", "ac"));
    }

    #[test]
    fn file_sd_in_json_and_yaml_with_labels_and_shards() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a.json"),
            r#"[{"targets": ["h1:1", "h2:1"], "labels": {"env": "prod", "__meta_x": "y", "module": "evil"}}]"#,
        )
        .unwrap();
        std::fs::write(dir.path().join("b.yml"), "- targets: ['h3:1']\n").unwrap();
        std::fs::write(dir.path().join("c.txt"), "not matched").unwrap();
        let yaml = format!(
            "modules: {{tcp_connect: {{prober: tcp}}}}\nschedule:\n  - {{module: tcp_connect, interval: 30s, jitter: 10s, targets: ['h0:1'], labels: {{team: a}}, file_sd: ['{0}/*.json', '{0}/*.yml']}}\n",
            dir.path().display()
        );
        let config = Config::from_yaml_str(&yaml, "t.yml").unwrap();
        let mut cache = FileSdCache::default();
        let all = expand(&config, Shard::default(), &mut cache, 128);
        assert_eq!(all.len(), 4);
        let h1 = all.values().find(|t| t.target == "h1:1").unwrap();
        assert_eq!(
            h1.labels.rendered,
            "module=\"tcp_connect\",target=\"h1:1\",prober=\"tcp\",env=\"prod\",team=\"a\""
        );
        assert!(all.values().all(|t| t.phase < Duration::from_secs(10)));
        // Shards split the same set exactly.
        let mut total = 0;
        for i in 0..3 {
            total += expand(&config, Shard { index: i, count: 3 }, &mut cache, 128).len();
        }
        assert_eq!(total, 4);
        // A broken file keeps its last good targets.
        std::fs::write(dir.path().join("a.json"), "[{").unwrap();
        assert_eq!(expand(&config, Shard::default(), &mut cache, 128).len(), 4);
    }

    #[test]
    fn jobs_without_targets_or_with_directory_wildcards_are_config_errors() {
        let e = Config::from_yaml_str(
            "modules: {t: {prober: tcp}}\nschedule:\n  - {module: t, interval: 1m}\n",
            "x.yml",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("needs targets, file_sd or servers"), "{e}");
        let e = Config::from_yaml_str(
            "modules: {t: {prober: tcp}}\nschedule:\n  - {module: t, interval: 1m, file_sd: ['/etc/*/x.yml']}\n",
            "x.yml",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("only allowed in the file name"), "{e}");
    }
}
