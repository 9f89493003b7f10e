//! How long loading and validating a config takes: the blackbox example file, and a large
//! generated one (1,000 modules, 10,000 scheduled targets).

use criterion::{criterion_group, criterion_main, Criterion};
use siembox_exporter::Config;
use std::fmt::Write;

fn large_config() -> String {
    let mut s = String::from("modules:\n");
    for i in 0..1000 {
        let _ = write!(
            s,
            "  m{i}:\n    prober: http\n    timeout: 5s\n    http:\n      valid_status_codes: [200, 204]\n      fail_if_body_matches_regexp: [\"error {i}\"]\n"
        );
    }
    s.push_str("schedule:\n  - module: m0\n    interval: 30s\n    targets:\n");
    for i in 0..10_000 {
        let _ = writeln!(s, "      - http://host{i}.example.org/health");
    }
    s
}

fn bench(c: &mut Criterion) {
    let example = include_str!("../examples/siembox.yml").replace("/etc/siembox/", "/etc/");
    let example = example.replace("password_file: /etc/pg.pass", "password_env: PG_PASS");
    let builtin = siembox_exporter::config::BUILTIN_YAML;
    c.bench_function("config_load/builtin", |b| {
        b.iter(|| Config::from_yaml_str(builtin, "builtin").unwrap())
    });
    let large = large_config();
    c.bench_function("config_load/1000_modules_10k_targets", |b| {
        b.iter(|| Config::from_yaml_str(&large, "large.yml").unwrap())
    });
    // Keep the example in the bench so a slow field type shows up, even though its files may
    // not exist on the bench machine (the error path is then what is measured).
    c.bench_function("config_load/spec_example", |b| {
        b.iter(|| Config::from_yaml_str(&example, "example.yml"))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
