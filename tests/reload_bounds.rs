//! Reloads off the request path and config files read with a bound (issue #16): `/-/healthy`
//! answers while four reloads of a 15 MB file run, and `/dev/zero`, a FIFO or an oversized file
//! as the config, a reloaded config or a file_sd file give an error naming the file, at once.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::binary::{get, post, Binary};

const SMALL: &str = "modules:\n  tcp:\n    prober: tcp\n    timeout: 2s\n";

/// A valid config of about `bytes`: http modules with long header values, so the parse is real
/// work (not a comment the scanner skips).
fn big_config(bytes: usize) -> String {
    let value = "v".repeat(1500);
    let mut out = String::from("modules:\n");
    let mut i = 0;
    while out.len() < bytes {
        out.push_str(&format!(
            "  m{i}:\n    prober: http\n    timeout: 5s\n    http:\n      headers: {{X-A: {value}}}\n"
        ));
        i += 1;
    }
    out
}

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo on a path in the test's own temporary directory.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

#[test]
fn healthy_answers_within_a_second_during_four_concurrent_reloads_of_a_15_mb_file() {
    let b = Binary::start(SMALL, &[]);
    let text = big_config(15 << 20);
    std::fs::write(&b.config, &text).unwrap();
    let port = b.port;
    let started = Instant::now();
    let reloads: Vec<_> = (0..4)
        .map(|_| std::thread::spawn(move || post(port, "/-/reload")))
        .collect();
    let mut slowest = Duration::ZERO;
    let mut samples = 0;
    while !reloads.iter().all(|r| r.is_finished()) {
        let asked = Instant::now();
        let answer = get(port, "/-/healthy").expect("/-/healthy answered");
        assert!(answer.contains("200 OK"), "{answer}");
        slowest = slowest.max(asked.elapsed());
        samples += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
    let took = started.elapsed();
    let answers: Vec<String> = reloads
        .into_iter()
        .map(|r| r.join().unwrap().expect("/-/reload answered"))
        .collect();
    for a in &answers {
        assert!(a.contains("200 OK"), "{a}");
    }
    // One parse applied the file; the requests that came during it shared the next reload,
    // which found the same bytes.
    assert!(
        answers.iter().any(|a| a.contains("config reloaded")),
        "{answers:?}"
    );
    eprintln!(
        "4 concurrent reloads of a {} MB file took {took:?}; /-/healthy answered {samples} times, slowest {slowest:?}",
        text.len() >> 20
    );
    assert!(
        samples >= 3,
        "the reloads were too quick to show anything ({took:?})"
    );
    assert!(
        slowest < Duration::from_secs(1),
        "/-/healthy took {slowest:?} during the reloads"
    );
    let log = b.log_text();
    assert_eq!(
        log.matches("configuration reloaded").count(),
        1,
        "one parse applied the file, the others shared: {log}"
    );
}

/// The exporter started on `config`: its exit status and stderr, within `limit`.
fn start_and_fail(config: &Path, limit: Duration) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_siembox-exporter"))
        .arg("--config.file")
        .arg(config)
        .args([
            "--web.listen-address",
            &format!("127.0.0.1:{}", support::free_port()),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let until = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(!status.success(), "{config:?} was accepted");
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
            return err;
        }
        if Instant::now() > until {
            let _ = child.kill();
            panic!("the exporter neither started nor failed on {config:?} within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn dev_zero_a_fifo_and_an_oversized_file_as_config_are_clear_errors() {
    let err = start_and_fail(Path::new("/dev/zero"), Duration::from_secs(10));
    assert!(err.contains("/dev/zero"), "{err}");
    assert!(err.contains("more than 16777216 bytes"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("config.fifo");
    mkfifo(&fifo);
    let err = start_and_fail(&fifo, Duration::from_secs(10));
    assert!(err.contains(fifo.to_str().unwrap()), "{err}");
    assert!(err.contains("no writer"), "{err}");

    let big = dir.path().join("big.yml");
    std::fs::write(&big, big_config((16 << 20) + 1)).unwrap();
    let err = start_and_fail(&big, Duration::from_secs(10));
    assert!(err.contains(big.to_str().unwrap()), "{err}");
    assert!(err.contains("more than 16777216 bytes"), "{err}");
}

#[test]
fn reloading_a_config_swapped_for_dev_zero_or_a_fifo_fails_at_once_naming_it() {
    let b = Binary::start(SMALL, &[]);
    let path: PathBuf = b.config.clone();
    std::fs::remove_file(&path).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &path).unwrap();
    let answer = post(b.port, "/-/reload").unwrap_or_else(|| panic!("no answer: {}", b.log_text()));
    assert!(answer.contains("500"), "{answer}");
    assert!(answer.contains(path.to_str().unwrap()), "{answer}");
    assert!(answer.contains("more than 16777216 bytes"), "{answer}");

    std::fs::remove_file(&path).unwrap();
    mkfifo(&path);
    let asked = Instant::now();
    let answer = post(b.port, "/-/reload").unwrap_or_else(|| panic!("no answer: {}", b.log_text()));
    assert!(answer.contains("500"), "{answer}");
    assert!(answer.contains(path.to_str().unwrap()), "{answer}");
    assert!(answer.contains("no writer"), "{answer}");
    assert!(asked.elapsed() < Duration::from_secs(5));
    // The old config still serves.
    assert!(get(b.port, "/-/healthy").unwrap().contains("200 OK"));
}

#[test]
fn file_sd_files_are_capped_while_reading_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.yml");
    let entry = "- targets: ['127.0.0.1:1']\n  labels: {pad: 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'}\n";
    std::fs::write(&big, entry.repeat((17 << 20) / entry.len())).unwrap();
    let config = format!(
        "{SMALL}schedule:\n  - module: tcp\n    interval: 1m\n    file_sd: [{}]\n",
        big.display()
    );
    let b = Binary::start(&config, &[]);
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let log = b.log_text();
        let named = |p: &Path| {
            log.lines().any(|l| {
                l.contains("cannot read file_sd file")
                    && l.contains(p.to_str().unwrap())
                    && l.contains("more than 16777216 bytes")
            })
        };
        if named(&big) {
            break;
        }
        assert!(Instant::now() < until, "no clear file_sd errors in {log}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(get(b.port, "/-/healthy").unwrap().contains("200 OK"));
}
