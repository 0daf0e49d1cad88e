//! Smoke test of the built binary. Its presence also makes every
//! `cargo test`/`nextest` run of the workspace rebuild `alp`, which the
//! end-to-end tests in `tests/` then run.

use std::process::Command;

#[test]
fn version_and_help() {
    let bin = env!("CARGO_BIN_EXE_alp");
    let out = Command::new(bin).arg("--version").output().expect("run alp");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    // The version, then the commit it was built from.
    let expected = concat!("alp ", env!("CARGO_PKG_VERSION"), " (");
    assert!(text.trim().starts_with(expected) && text.trim().ends_with(')'), "{text}");
    let out = Command::new(bin).arg("--help").output().expect("run alp");
    let help = String::from_utf8_lossy(&out.stdout);
    for cmd in ["init", "id", "profile", "config", "peer", "serve", "invite", "pair"] {
        assert!(help.contains(cmd), "help lacks {cmd}: {help}");
    }
}
