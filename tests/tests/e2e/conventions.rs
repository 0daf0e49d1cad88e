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

/// Completions load in bash, the manual page renders, and the version
/// names the commit; all three come from the parser's own definitions.
#[test]
fn completions_load_the_man_page_renders_and_the_version_names_the_commit() {
    let h = Home::new();
    let script = h.run(&["completions", "bash"]).ok().to_owned();
    let path = h.path().join("alp.bash");
    std::fs::write(&path, &script).unwrap();
    let loaded = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!("source {} && complete -p alp", path.display()))
        .output()
        .unwrap();
    assert!(loaded.status.success() && String::from_utf8_lossy(&loaded.stdout).contains("_alp"), "{loaded:?}");
    for shell in ["zsh", "fish", "powershell"] {
        assert!(!h.run(&["completions", shell]).ok().is_empty());
    }
    let page = h.run(&["man"]).ok().to_owned();
    let page_path = h.path().join("alp.1");
    std::fs::write(&page_path, &page).unwrap();
    let rendered = std::process::Command::new("man").arg("-l").arg(&page_path).env("MANPAGER", "cat").output().unwrap();
    let text = String::from_utf8_lossy(&rendered.stdout);
    assert!(rendered.status.success() && text.contains("SYNOPSIS") && text.contains("completions"), "{rendered:?}");
    let version = h.run(&["--version"]).ok().to_owned();
    assert!(version.starts_with("alp 0.") && version.contains('('), "{version}");
}

/// The usual short names work everywhere.
#[test]
fn ls_and_rm_are_aliases_of_list_and_remove_and_back() {
    let h = Home::new();
    h.init("personal");
    h.run(&["peer", "ls"]).ok();
    h.run(&["profile", "ls"]).ok();
    h.run(&["sessions", "ls"]).ok();
    h.run(&["blob", "list"]).ok();
    let id = h.run(&["-p", "other", "init"]).ok().trim().to_owned();
    h.run(&["peer", "add", "other", &id]).ok();
    h.run(&["peer", "rm", "other"]).ok();
    h.run(&["blob", "remove", &"ab".repeat(32)]).fails(2, &["not in the store"]);
}

/// Under `--json`, errors are JSON on stderr too, with the same exit codes.
#[test]
fn json_errors_are_json_on_stderr_with_the_same_codes() {
    let h = Home::new();
    let parse = |r: &crate::common::Run| -> serde_json::Value {
        assert!(r.stdout.is_empty(), "{}", r.stdout);
        serde_json::from_str(r.stderr.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {}", r.stderr))
    };
    let r = h.run(&["--json", "status"]);
    assert_eq!(r.code, 2);
    let v = parse(&r);
    assert_eq!((v["error"]["code"].as_u64(), v["error"]["kind"].as_str()), (Some(2), Some("usage")));
    assert!(v["error"]["message"].as_str().unwrap().contains("alp init"));
    let r = h.run(&["--json", "blob", "bogus"]);
    assert_eq!(r.code, 2);
    assert!(parse(&r)["error"]["message"].as_str().unwrap().contains("bogus"));
    // Without --json, the usual line.
    assert!(h.run(&["status"]).stderr.starts_with("alp: error: "));
}

/// `-q` drops status lines but keeps errors; `-qq` leaves stderr empty and
/// lets the exit code speak.
#[test]
fn quiet_silences_status_lines_and_twice_errors_too() {
    let h = Home::new();
    let loud = h.run(&["init"]);
    assert!(loud.stderr.contains("created profile"), "{}", loud.stderr);
    let r = h.run(&["-q", "-p", "research", "init"]);
    r.ok();
    assert_eq!(r.stderr, "", "status lines under -q");
    let r = h.run(&["-q", "peer", "add", "x", "nonsense"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("error"), "errors remain under -q: {}", r.stderr);
    let r = h.run(&["-qq", "peer", "add", "x", "nonsense"]);
    assert_eq!((r.code, r.stderr.as_str()), (2, ""));
    let r = h.run(&["-qq", "peer", "add", "research", &crate::common::node_id(&h, "research").to_string()]);
    assert_eq!((r.code, r.stderr.as_str()), (0, ""));
}
