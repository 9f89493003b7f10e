//! Programs built from the Go module proxy by `scripts/go-tools` (blackbox_exporter 0.28,
//! FerretDB), found where that script puts them.

use std::path::PathBuf;

/// Directories `scripts/go-tools` may have built into, in its order of preference.
fn tool_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(d) = std::env::var_os("SIEMBOX_TEST_TOOLS") {
        dirs.push(PathBuf::from(d));
    }
    dirs.push(PathBuf::from("/var/cache/siembox-tests"));
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")));
    if let Some(c) = cache {
        dirs.push(c.join("siembox-tests"));
    }
    dirs
}

/// The path of `name` (e.g. `blackbox_exporter-0.28.0`); panics saying how to get it.
pub fn go_tool(name: &str) -> PathBuf {
    let dirs = tool_dirs();
    dirs.iter()
        .map(|d| d.join("bin").join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("{name} is not built: run scripts/go-tools (or scripts/test-prerequisites); looked in {dirs:?}")
        })
}
