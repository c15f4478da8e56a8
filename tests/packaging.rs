//! The files an operator deploys, checked as far as this machine can:
//! the sample settings resolve (`raft-mock --print-config`), and the
//! systemd unit passes `systemd-analyze verify` with no warning.

use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_raft-mock");
const ROOT: &str = env!("CARGO_MANIFEST_DIR");

#[test]
fn the_sample_settings_resolve() {
    let file = Path::new(ROOT).join("packaging/raft-mock.toml");
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&file)
        .arg("--print-config")
        .env_remove("RAFTSTACK_CONFIG")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for want in [
        "node = \"10.0.0.1:7001\"  # config file",
        "neighbours = [\"10.0.0.2:7001\", \"10.0.0.3:7001\"]  # config file",
        "log-format = \"json\"  # config file",
    ] {
        assert!(text.contains(want), "{want}\n{text}");
    }
}

#[test]
fn the_systemd_unit_verifies() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: no systemd-analyze here");
        return;
    }
    let unit = std::fs::read_to_string(Path::new(ROOT).join("packaging/systemd/raftstack.service"))
        .unwrap();
    assert!(unit.contains("RestartPreventExitStatus=2 3 4"));
    // Its binary and settings where they are here, not where it installs
    // them (verify checks that the binary exists).
    let settings = Path::new(ROOT).join("packaging/raft-mock.toml");
    let here = unit
        .replace("/usr/local/bin/raft-mock", BIN)
        .replace("/etc/raftstack/raft-mock.toml", settings.to_str().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("raftstack.service");
    std::fs::write(&path, here).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success() && said.trim().is_empty(), "{said}");
}
