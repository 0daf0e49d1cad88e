//! `alp config show` and the precedence of config layers.

use crate::common::{Home, output};

fn entry<'a>(v: &'a serde_json::Value, key: &str) -> &'a serde_json::Value {
    v.as_array().unwrap().iter().find(|e| e["key"] == key).unwrap()
}

#[test]
fn show_reports_value_and_layer() {
    let h = Home::new();
    h.init("personal");
    let text = h.run(&["config", "show"]).ok().to_owned();
    assert!(text.contains("node.listen = \"[::]:7117\"") && text.contains("# default"), "{text}");

    let cfg = h.path().join("profiles/personal/config.toml");
    std::fs::write(&cfg, "[node]\nlisten = \"127.0.0.1:1\"\ndisplay_name = \"Ada\"\n[log]\nlevel = \"info\"\n")
        .unwrap();
    let mut c = h.cmd(&["config", "show", "--json", "--set", "log.level=debug"]);
    c.env("ALP__NODE__LISTEN", "127.0.0.1:2").env("ALP__LOG__LEVEL", "error");
    let v = output(c).json();
    assert_eq!(entry(&v, "node.display_name")["value"], "Ada");
    assert_eq!(entry(&v, "node.display_name")["source"], format!("file {}", cfg.display()));
    assert_eq!(entry(&v, "node.listen")["value"], "127.0.0.1:2");
    assert_eq!(entry(&v, "node.listen")["source"], "env ALP__NODE__LISTEN");
    assert_eq!(entry(&v, "log.level")["value"], "debug");
    assert_eq!(entry(&v, "log.level")["source"], "flag --set log.level=debug");
}

#[test]
fn malformed_config_names_file_key_and_reason() {
    let h = Home::new();
    h.init("personal");
    let cfg = h.path().join("profiles/personal/config.toml");
    let path = cfg.to_str().unwrap();

    std::fs::write(&cfg, "[node]\nlisten = \"nowhere\"\n").unwrap();
    h.run(&["config", "show"]).fails(2, &[path, "node.listen", "invalid socket address"]);

    std::fs::write(&cfg, "[node]\nlisten = 7117\n").unwrap();
    h.run(&["config", "show"]).fails(2, &[path, "node.listen", "invalid value"]);

    std::fs::write(&cfg, "[nodes]\nlisten = \"x\"\n").unwrap();
    h.run(&["config", "show"]).fails(2, &[path, "unknown config key `nodes.listen`"]);

    std::fs::write(&cfg, "[node\n").unwrap();
    h.run(&["config", "show"]).fails(2, &[path, "not valid TOML", "line 1"]);
    assert_eq!(std::fs::read_to_string(&cfg).unwrap(), "[node\n");
}

#[test]
fn malformed_env_and_flag_values_are_named() {
    let h = Home::new();
    h.init("personal");
    let mut c = h.cmd(&["config", "show"]);
    c.env("ALP__LOG__LEVEL", "shouty");
    output(c).fails(2, &["ALP__LOG__LEVEL", "log.level", "shouty"]);
    let mut c = h.cmd(&["config", "show"]);
    c.env("ALP__NODE__NOPE", "1");
    output(c).fails(2, &["ALP__NODE__NOPE", "unknown config key `node.nope`"]);
    h.run(&["config", "show", "--set", "node.listen"]).fails(2, &["section.key=value"]);
    h.run(&["config", "show", "--set", "node.listen=::"]).fails(2, &["--set node.listen=::", "node.listen"]);
}

/// `alp config set` checks the key and value first, keeps the file's
/// comments, and the value then shows in `config show`.
#[test]
fn config_set_checks_first_and_keeps_the_comments() {
    let h = Home::new();
    h.init("personal");
    let path = h.path().join("profiles/personal/config.toml");
    let before = std::fs::read_to_string(&path).unwrap();
    h.run(&["config", "set", "model.max_tokens", "lots"])
        .fails(2, &["alp config set model.max_tokens", "expected u32"]);
    h.run(&["config", "set", "model.max_token", "5"]).fails(2, &["did you mean `model.max_tokens`"]);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), before, "refused values never reach the file");
    h.run(&["config", "set", "model.max_tokens", "77"]).ok();
    h.run(&["config", "set", "node.display_name", "Research box"]).ok();
    let after = std::fs::read_to_string(&path).unwrap();
    assert!(after.contains("max_tokens = 77") && after.contains("display_name = \"Research box\""), "{after}");
    let comments = |t: &str| t.lines().filter(|l| l.trim_start().starts_with('#')).count();
    assert_eq!(comments(&after), comments(&before), "comments kept");
    let shown = h.run(&["--json", "config", "show"]).json();
    let value = |k: &str| shown.as_array().unwrap().iter().find(|e| e["key"] == k).unwrap()["value"].clone();
    assert_eq!(value("model.max_tokens"), 77);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
}
