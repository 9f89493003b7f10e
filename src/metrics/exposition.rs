//! prometheus-client writes OpenMetrics; Prometheus' classic text format differs only in a few
//! lines, so a client that does not ask for OpenMetrics gets the same content rewritten.

/// Rewrites OpenMetrics text to the classic format: no `# EOF`/`# UNIT`, counters typed under
/// their `_total` sample name, `info`/`stateset`/`unknown` typed as gauge/untyped.
pub fn openmetrics_to_text(om: &str) -> String {
    let mut out = String::with_capacity(om.len());
    let mut counters: Vec<&str> = Vec::new();
    for line in om.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.rsplit_once(' ').unwrap_or((rest, "untyped"));
            match kind {
                "counter" => {
                    counters.push(name);
                    out.push_str(&format!("# TYPE {name}_total counter\n"));
                }
                "info" | "stateset" => out.push_str(&format!("# TYPE {name} gauge\n")),
                "unknown" => out.push_str(&format!("# TYPE {name} untyped\n")),
                _ => {
                    out.push_str(line);
                    out.push('\n');
                }
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap_or("");
            if counters.last() == Some(&name) || om.contains(&format!("# TYPE {name} counter")) {
                out.push_str(&format!("# HELP {name}_total{}\n", &rest[name.len()..]));
                continue;
            }
        }
        // Exemplars (` # {...}`) and `_created` samples are OpenMetrics-only.
        if !line.starts_with('#') {
            let sample_name = line.split(['{', ' ']).next().unwrap_or("");
            if sample_name.ends_with("_created") {
                continue;
            }
            if let Some(i) = line.find(" # {") {
                out.push_str(&line[..i]);
                out.push('\n');
                continue;
            }
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_counters_and_drops_eof() {
        let om = "# HELP x_requests Requests.\n# TYPE x_requests counter\nx_requests_total 3\nx_requests_created 1.5\n# HELP g A gauge.\n# TYPE g gauge\ng 1\n# EOF\n";
        let text = openmetrics_to_text(om);
        assert_eq!(
            text,
            "# HELP x_requests_total Requests.\n# TYPE x_requests_total counter\nx_requests_total 3\n# HELP g A gauge.\n# TYPE g gauge\ng 1\n"
        );
    }
}
