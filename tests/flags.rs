//! Every flag refuses hostile values with a usage error naming the flag (exit 2), never a
//! panic; the extremes a flag accepts start an exporter that serves.

mod support;

use std::process::Command;
use support::binary::{get, Binary};

/// Runs the real binary with `args` and `--config.check` (so an accepted value exits at once).
fn run(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_siembox-exporter"))
        .args(args)
        .arg("--config.check")
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    (out.status.code(), text)
}

#[test]
fn hostile_flag_values_are_usage_errors_naming_the_flag() {
    let long = "9".repeat(5000);
    let cases: &[(&str, &[&str])] = &[
        (
            "--timeout-offset",
            &[
                "inf", "-inf", "NaN", "-1", "-0.5", "1e308", "3601", "", "abc", "0x10", &long,
            ],
        ),
        (
            "--web.shutdown-timeout",
            &[
                "",
                "-1s",
                "10",
                "1e3s",
                "25h",
                "999999999999999999999y",
                "1x",
                &long,
                "inf",
            ],
        ),
        (
            "--web.listen-address",
            &["", ":", ":99999", "nonsense", "[::1", "1.2.3.4:-1", &long],
        ),
        (
            "--schedule.shard",
            &[
                "",
                "0/0",
                "1/1",
                "-1/2",
                "2/1",
                "a/b",
                "4294967296/4294967297",
                &long,
            ],
        ),
        (
            "--web.max-connections",
            &[
                "",
                "0",
                "-1",
                "1000001",
                "1e3",
                "99999999999999999999",
                &long,
            ],
        ),
        ("--log.level", &["", "trace2", "DEBUG;", "[{", &long]),
        ("--log.format", &["", "xml", &long]),
        ("--completions", &["", "powershell", &long]),
    ];
    for (flag, values) in cases {
        for value in *values {
            let arg = format!("{flag}={value}");
            let (code, text) = run(&[&arg]);
            let shown = &arg[..arg.len().min(60)];
            assert!(!text.contains("panicked"), "{shown}: {text}");
            assert_eq!(code, Some(2), "{shown} was accepted or crashed: {text}");
            assert!(
                text.contains(flag),
                "{shown}: the error does not name the flag: {text}"
            );
        }
    }
}

#[test]
fn accepted_extremes_pass_the_config_check() {
    for arg in [
        "--timeout-offset=0",
        "--timeout-offset=3600",
        "--timeout-offset= 0.5 ",
        "--web.shutdown-timeout=0",
        "--web.shutdown-timeout=24h",
        "--schedule.shard=4294967294/4294967295",
        "--log.level=error",
        "--web.max-connections=1",
        "--web.max-connections=1000000",
    ] {
        let (code, text) = run(&[arg]);
        assert_eq!(code, Some(0), "{arg}: {text}");
    }
}

/// The largest offset leaves no time to probe: the request is refused with 400 and a reason,
/// and the process keeps serving.
#[test]
fn the_largest_offset_and_grace_period_serve_without_a_panic() {
    let bin = Binary::start(
        "modules:\n  tcp:\n    prober: tcp\n",
        &["--timeout-offset=3600", "--web.shutdown-timeout=24h"],
    );
    let answer = get(bin.port, "/probe?module=tcp&target=127.0.0.1:1").unwrap();
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("--timeout-offset"), "{answer}");
    assert!(get(bin.port, "/-/healthy").unwrap().contains("200 OK"));
    assert!(!bin.log_text().contains("panicked"), "{}", bin.log_text());
}
