//! The built-in tools, called as the run loop calls them.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::*;
/// A shell that runs programs directly (the sandbox has its own tests).
const SHELL: ShellConfig =
    ShellConfig { timeout: Duration::from_secs(5), sandbox: false, require_sandbox: false, network: false };

/// The built-in tools in a fresh workspace, all offered.
fn tb() -> (tempfile::TempDir, Arc<Workspace>, Toolset) {
    let d = tempfile::tempdir().unwrap();
    let ws = Workspace::open(&d.path().join("ws")).unwrap();
    let t = Registry::builtin(&ws, &SHELL).offer(&BTreeSet::new(), None);
    (d, ws, t)
}

fn call(name: &str, args: Value) -> ToolCall {
    ToolCall { id: "1".into(), name: name.into(), arguments: args }
}

#[tokio::test]
async fn files_round_trip_inside_the_workspace() {
    let (_d, ws, t) = tb();
    t.call(&call("write_file", json!({"path": "a/b.txt", "content": "hello\nworld\n"}))).await.unwrap();
    assert_eq!(t.call(&call("read_file", json!({"path": "a/b.txt"}))).await.unwrap(), "hello\nworld\n");
    t.call(&call("edit_file", json!({"path": "a/b.txt", "old": "world", "new": "there"}))).await.unwrap();
    assert_eq!(std::fs::read_to_string(ws.root().join("a/b.txt")).unwrap(), "hello\nthere\n");
    assert!(t.call(&call("list_dir", json!({}))).await.unwrap().contains("a/"));
    assert_eq!(t.call(&call("search_files", json!({"text": "there"}))).await.unwrap(), "a/b.txt:2: there");
    let e = t.call(&call("edit_file", json!({"path": "a/b.txt", "old": "l", "new": "L"}))).await.unwrap_err();
    assert!(e.contains("2 times"), "{e}");
}

#[tokio::test]
async fn escapes_are_refused() {
    let (d, ws, t) = tb();
    std::fs::write(d.path().join("secret"), "s3cret").unwrap();
    std::os::unix::fs::symlink(d.path(), ws.root().join("link")).unwrap();
    for path in ["../secret", "/etc/passwd", "link/secret", "a/../../secret"] {
        let e = t.call(&call("read_file", json!({"path": path}))).await.unwrap_err();
        assert!(e.contains("outside the workspace"), "{path}: {e}");
    }
    let e = t.call(&call("write_file", json!({"path": "link/new", "content": "x"}))).await.unwrap_err();
    assert!(e.contains("outside"), "{e}");
    assert!(!d.path().join("new").exists());
    // search does not follow the link out either.
    assert_eq!(t.call(&call("search_files", json!({"text": "s3cret"}))).await.unwrap(), "no matches");
}

#[tokio::test]
async fn shell_runs_argv_with_a_clean_environment() {
    let (_d, ws, t) = tb();
    let out = t.call(&call("shell", json!({"argv": ["sh", "-c", "echo $HOME; env | wc -l; pwd"]}))).await.unwrap();
    let ws = ws.root().display().to_string();
    assert!(out.starts_with("exit status 0"), "{out}");
    assert!(out.contains(&ws), "{out}");
    let e = t.call(&call("shell", json!({"argv": ["false"]}))).await.unwrap_err();
    assert!(e.starts_with("exit status 1"), "{e}");
    let e = t.call(&call("shell", json!({"argv": ["/nonexistent/prog"]}))).await.unwrap_err();
    assert!(e.contains("cannot run"), "{e}");
}

#[tokio::test]
async fn shell_timeout_kills_the_process_group() {
    let (_d, ws, t) = tb();
    let marker = ws.root().join("survived");
    let script = format!("(sleep 2; touch {}) & sleep 30", marker.display());
    let started = std::time::Instant::now();
    let e = t.call(&call("shell", json!({"argv": ["sh", "-c", script], "timeout_secs": 1}))).await.unwrap_err();
    assert!(e.contains("timed out"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(3));
    assert!(!marker.exists(), "a process of the group survived the timeout");
}

#[tokio::test]
async fn denied_and_malformed_calls() {
    let d = tempfile::tempdir().unwrap();
    let ws = Workspace::open(d.path()).unwrap();
    let t = Registry::builtin(&ws, &SHELL).offer(&["shell".to_string()].into(), None);
    assert!(!t.specs().iter().any(|s| s.name == "shell"));
    assert!(t.call(&call("shell", json!({"argv": ["true"]}))).await.unwrap_err().contains("denied"));
    assert!(t.call(&call("read_file", json!("not an object"))).await.unwrap_err().contains("JSON object"));
    assert!(t.call(&call("read_file", json!({}))).await.unwrap_err().contains("path"));
    assert!(t.call(&call("nope", json!({}))).await.unwrap_err().contains("no tool"));
}

#[test]
fn output_is_capped_on_a_char_boundary() {
    let s = "é".repeat(MAX_OUTPUT);
    let c = cap(s);
    assert!(c.len() <= MAX_OUTPUT + 20 && c.ends_with("(output truncated)"));
}

#[tokio::test]
async fn a_peer_grant_offers_only_what_it_names() {
    let d = tempfile::tempdir().unwrap();
    let ws = Workspace::open(d.path()).unwrap();
    let granted: BTreeSet<String> = ["read_file".to_string(), "shell".to_string()].into();
    let t = Registry::builtin(&ws, &SHELL).offer(&["shell".to_string()].into(), Some(&granted));
    let names: Vec<String> = t.specs().into_iter().map(|s| s.name).collect();
    assert_eq!(names, ["read_file"], "denied beats granted");
    assert!(t.call(&call("write_file", json!({"path": "x", "content": ""}))).await.unwrap_err().contains("denied"));
    assert_eq!(t.tier("write_file"), Some(Tier::SideEffect), "approvals still see every tool's tier");
}

#[test]
fn registration_keeps_order_and_replaces_by_name() {
    let d = tempfile::tempdir().unwrap();
    let ws = Workspace::open(d.path()).unwrap();
    let r = Registry::builtin(&ws, &SHELL);
    let names: Vec<&str> = r.names().collect();
    assert_eq!(names, ["read_file", "list_dir", "search_files", "write_file", "edit_file", "shell"]);
    let r = r.with(read_file::ReadFile(ws.clone()));
    assert_eq!(r.names().filter(|n| *n == "read_file").count(), 1);
    assert_eq!(r.tier("shell"), Some(Tier::Privileged));
    assert_eq!(r.tier("nope"), None);
}

#[test]
fn only_server_wildcards_widen_an_allow_list() {
    use super::name_matches;
    assert!(name_matches("fs__*", "fs__read_file"));
    assert!(!name_matches("fs__*", "fs2__read_file"));
    assert!(!name_matches("fs__*", "fsadmin__x"));
    assert!(name_matches("read_file", "read_file"));
    for not_a_wildcard in ["*", "read*", "s*", "__*", "f*__*"] {
        assert!(!name_matches(not_a_wildcard, "shell") && !name_matches(not_a_wildcard, "read_file"));
    }
}
