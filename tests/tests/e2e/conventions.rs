//! CLI conventions every command follows: stdout purity, exit codes, a
//! closed stdout, logging flags.

use std::io::Read;
use std::process::Stdio;

use crate::common::{Home, output};

#[test]
fn closed_stdout_exits_quietly() {
    let h = Home::new();
    h.init("personal");
    for i in 0..40 {
        let id = h.init(&format!("p{i}"));
        h.run(&["peer", "add", &format!("p{i}"), &id]).ok();
    }
    let mut child = h.cmd(&["peer", "list", "--json"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    drop(child.stdout.take());
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "exit {status:?}, stderr: {err}");
    assert!(!err.contains("panicked") && !err.contains("error"), "{err}");
}

#[test]
fn diagnostics_never_reach_stdout() {
    let h = Home::new();
    let r = h.run(&["-vvv", "init"]);
    assert_eq!(r.ok().lines().count(), 1, "stdout: {}", r.stdout);
    assert!(r.stderr.contains("initialised"), "stderr: {}", r.stderr);
    let r = h.run(&["-vvv", "id"]);
    assert_eq!(r.ok().lines().count(), 1);
    let mut c = h.cmd(&["id"]);
    c.env("RUST_LOG", "trace");
    assert_eq!(output(c).ok().lines().count(), 1);
    let r = h.run(&["-q", "init"]);
    assert_eq!(r.ok().lines().count(), 1);
}

#[test]
fn no_colour_when_not_a_terminal() {
    let h = Home::new();
    let r = h.run(&["-v", "init"]);
    assert!(!r.stderr.contains('\u{1b}'), "{:?}", r.stderr);
}

#[test]
fn usage_errors_exit_2_and_help_exits_0() {
    let h = Home::new();
    h.run(&["frobnicate"]).fails(2, &["frobnicate"]);
    h.run(&["peer", "add"]).fails(2, &["NAME"]);
    h.run(&["-v", "-q", "id"]).fails(2, &["cannot be used with"]);
    let r = h.run(&["--help"]);
    assert!(r.ok().contains("Usage: alp"));
    let r = h.run(&["--version"]);
    assert!(r.ok().starts_with("alp "));
}

#[test]
fn every_data_command_speaks_json() {
    let h = Home::new();
    h.init("personal");
    let bob = h.init("bob");
    h.run(&["peer", "add", "bob", &bob]).ok();
    for args in [
        &["init", "--json"][..],
        &["id", "--json"],
        &["profile", "list", "--json"],
        &["profile", "show", "--json"],
        &["config", "show", "--json"],
        &["peer", "list", "--json"],
        &["peer", "show", "bob", "--json"],
        &["peer", "allow", "bob", "blob.get", "--json"],
    ] {
        h.run(args).json();
    }
}
