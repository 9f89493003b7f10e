//! Debian's headless Chromium, run against the exporter to render pages as a browser does.

use std::path::Path;
use std::process::Output;
use std::time::Duration;

fn binary() -> &'static str {
    for p in ["/usr/bin/chromium", "/usr/bin/chromium-browser"] {
        if Path::new(p).exists() {
            return p;
        }
    }
    panic!("chromium is not installed: run scripts/test-prerequisites (Debian package chromium)");
}

/// Flags that keep a headless run quiet, offline and independent of any profile.
fn base_args(profile: &Path) -> Vec<String> {
    [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([format!("--user-data-dir={}", profile.display())])
    .collect()
}

async fn run(args: Vec<String>) -> Output {
    let mut cmd = tokio::process::Command::new(binary());
    cmd.args(&args).kill_on_drop(true);
    tokio::time::timeout(Duration::from_secs(90), cmd.output())
        .await
        .unwrap_or_else(|_| panic!("chromium did not finish within 90s: {args:?}"))
        .expect("chromium starts")
}

/// Renders `url` into a PNG at `png`.
pub async fn screenshot(url: &str, png: &Path, width: u32, height: u32) {
    let profile = tempfile::tempdir().unwrap();
    let mut args = base_args(profile.path());
    args.push(format!("--screenshot={}", png.display()));
    args.push(format!("--window-size={width},{height}"));
    args.push(url.to_string());
    let out = run(args).await;
    assert!(
        out.status.success(),
        "chromium --screenshot failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The DOM of `url` after parsing, serialised back to HTML.
pub async fn dump_dom(url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let mut args = base_args(profile.path());
    args.push("--dump-dom".into());
    args.push(url.to_string());
    let out = run(args).await;
    assert!(
        out.status.success(),
        "chromium --dump-dom failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
