//! The shipped systemd unit is valid for systemd (checked by `systemd-analyze verify`).

use std::process::Command;

#[test]
fn systemd_unit_verifies() {
    let unit = std::fs::read_to_string("examples/systemd/siembox-exporter.service").unwrap();
    let unit = unit.replace(
        "/usr/local/bin/siembox-exporter",
        env!("CARGO_BIN_EXE_siembox-exporter"),
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("siembox-exporter.service");
    std::fs::write(&path, unit).unwrap();
    let out = match Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
    {
        Ok(o) => o,
        Err(e) => panic!("systemd-analyze is needed (Debian package systemd): {e}"),
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !stderr.contains("siembox-exporter.service:"),
        "{stderr}"
    );
}
