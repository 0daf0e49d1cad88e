//! The tools `alp mcp serve` offers: one table entry each, naming the
//! `alp` command that does the work. Adding a tool is one entry here.

use std::path::PathBuf;
use std::time::Duration;

use rmcp::model::{Tool, ToolAnnotations};
use serde_json::{Map, Value, json};

/// A tool's arguments.
type Args = Map<String, Value>;

/// One tool.
pub(super) struct Def {
    pub(super) name: &'static str,
    description: &'static str,
    /// JSON Schema of the arguments, as text.
    schema: fn() -> Value,
    /// Whether it changes anything (a blob stored, sent, a task made).
    side_effect: bool,
    /// The `alp` arguments (after the global ones) for a call.
    pub(super) argv: fn(&Args) -> Result<Vec<String>, String>,
    pub(super) timeout: Duration,
}

const SHORT: Duration = Duration::from_secs(60);
const LONG: Duration = Duration::from_secs(30 * 60);

pub(super) const TOOLS: &[Def] = &[
    Def {
        name: "peers_list",
        description: "The trusted peers of this node: name, node id, addresses, when each was last seen, what it may call.",
        schema: || json!({"type": "object", "properties": {}}),
        side_effect: false,
        argv: |_| Ok(words(&["peer", "list"])),
        timeout: SHORT,
    },
    Def {
        name: "peer_ping",
        description: "Round trip to a trusted peer over the authenticated link: whether it answers, and how fast.",
        schema: || object(&[("peer", "The peer's name (see peers_list)")], &["peer"]),
        side_effect: false,
        argv: |a| Ok([words(&["peer", "ping", "-c", "1", "--"]), vec![name(a, "peer")?]].concat()),
        timeout: SHORT,
    },
    Def {
        name: "blob_add",
        description: "Add a local file or folder to this node's blob store; returns its BLAKE3 hash.",
        schema: || object(&[("path", "Absolute path of the file or folder")], &["path"]),
        side_effect: true,
        argv: |a| Ok([words(&["blob", "add", "--"]), vec![path(a, "path")?]].concat()),
        timeout: LONG,
    },
    Def {
        name: "blob_put",
        description: "Send a file, folder or stored blob (hash) to a trusted peer, verified end to end with a signed receipt.",
        schema: || {
            object(
                &[("peer", "The peer's name"), ("what", "Absolute path of a file or folder, or a blob hash")],
                &["peer", "what"],
            )
        },
        side_effect: true,
        argv: |a| {
            let what = text(a, "what")?;
            let what = if what.starts_with('/') { path(a, "what")? } else { hash(a, "what")? };
            Ok([words(&["blob", "put", "--to"]), vec![name(a, "peer")?, "--".into(), what]].concat())
        },
        timeout: LONG,
    },
    Def {
        name: "blob_get",
        description: "Fetch a blob by hash from a trusted peer into this node's store (and to a file, if output is given).",
        schema: || {
            object(
                &[
                    ("peer", "The peer's name"),
                    ("hash", "The blob's hash (or a unique prefix)"),
                    ("output", "Absolute path to write it to (optional)"),
                ],
                &["peer", "hash"],
            )
        },
        side_effect: true,
        argv: |a| {
            let mut v = [words(&["blob", "get", "--from"]), vec![name(a, "peer")?]].concat();
            if a.contains_key("output") {
                v.extend(["-o".into(), path(a, "output")?]);
            }
            v.extend(["--".into(), hash(a, "hash")?]);
            Ok(v)
        },
        timeout: LONG,
    },
    Def {
        name: "ask_peer",
        description: "Ask a trusted peer's agent: the prompt runs on that node, with its model, tools and budget; returns its answer.",
        schema: || object(&[("peer", "The peer's name"), ("prompt", "What to ask")], &["peer", "prompt"]),
        side_effect: true,
        argv: |a| {
            let prompt = text(a, "prompt")?;
            if prompt.trim().is_empty() || prompt == "-" {
                return Err("the prompt is empty".into());
            }
            Ok([words(&["ask", "--"]), vec![name(a, "peer")?, prompt]].concat())
        },
        timeout: LONG,
    },
    Def {
        name: "wg_task",
        description: "Give a workgroup a task: it runs on a member's agent (one named, or one with the role), results come back as the log records them.",
        schema: || {
            object(
                &[
                    ("group", "The workgroup's name"),
                    ("goal", "What to do"),
                    ("to", "A member (optional)"),
                    ("role", "A role (optional)"),
                ],
                &["group", "goal"],
            )
        },
        side_effect: true,
        argv: |a| {
            let mut v = words(&["wg", "task"]);
            for (key, flag) in [("to", "--to"), ("role", "--role")] {
                if a.contains_key(key) {
                    v.extend([flag.into(), name(a, key)?]);
                }
            }
            v.extend(["--".into(), name(a, "group")?, text(a, "goal")?]);
            Ok(v)
        },
        timeout: SHORT,
    },
    Def {
        name: "wg_status",
        description: "A workgroup's state: members, tasks and their status, budgets.",
        schema: || object(&[("group", "The workgroup's name")], &["group"]),
        side_effect: false,
        argv: |a| Ok([words(&["wg", "status", "--"]), vec![name(a, "group")?]].concat()),
        timeout: SHORT,
    },
];

impl Def {
    /// The tool as MCP lists it, annotated: clients ask before side effects.
    pub(super) fn describe(&self) -> Tool {
        let schema = match (self.schema)() {
            Value::Object(o) => o,
            _ => Map::new(),
        };
        let notes = ToolAnnotations::new()
            .read_only(!self.side_effect)
            .destructive(false)
            .idempotent(!self.side_effect)
            .open_world(self.name != "blob_add" && self.name != "peers_list");
        Tool::new(self.name, self.description, schema).annotate(notes)
    }
}

fn words(w: &[&str]) -> Vec<String> {
    w.iter().map(|s| (*s).to_owned()).collect()
}

fn object(props: &[(&str, &str)], required: &[&str]) -> Value {
    let properties: Map<String, Value> =
        props.iter().map(|(k, d)| ((*k).to_owned(), json!({"type": "string", "description": d}))).collect();
    json!({"type": "object", "properties": properties, "required": required})
}

/// A string argument, at most 64 KiB.
fn text(a: &Args, key: &str) -> Result<String, String> {
    let v = a.get(key).and_then(Value::as_str).ok_or_else(|| format!("missing string argument {key:?}"))?;
    if v.len() > 64 << 10 {
        return Err(format!("{key} is longer than 64 KiB"));
    }
    Ok(v.to_owned())
}

/// A name or hash: one short token that cannot pass for a flag.
fn name(a: &Args, key: &str) -> Result<String, String> {
    let v = text(a, key)?;
    if v.is_empty() || v.len() > 128 || v.starts_with('-') || v.chars().any(char::is_control) {
        return Err(format!("{key} must be a name or hash (not empty, not starting with '-')"));
    }
    Ok(v)
}

/// A blob hash, or a unique prefix of one (4 to 64 hex digits).
fn hash(a: &Args, key: &str) -> Result<String, String> {
    let v = text(a, key)?;
    if !(4..=64).contains(&v.len()) || !v.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("{key} must be a blob hash (hex) or an absolute path"));
    }
    Ok(v)
}

/// An absolute path.
fn path(a: &Args, key: &str) -> Result<String, String> {
    let v = text(a, key)?;
    if !PathBuf::from(&v).is_absolute() {
        return Err(format!("{key} must be an absolute path"));
    }
    Ok(v)
}

/// Runs `alp` as this profile.
pub(super) struct Runner {
    pub(super) exe: PathBuf,
    /// `--home H --profile P`.
    pub(super) base: Vec<String>,
}

impl Runner {
    /// Runs `alp --json BASE ARGV`; its JSON on success, its error otherwise.
    pub(super) async fn run(&self, argv: &[String], timeout: Duration) -> Result<String, String> {
        let mut cmd = tokio::process::Command::new(&self.exe);
        cmd.args(&self.base)
            .arg("--json")
            .args(argv)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        let out = match tokio::time::timeout(timeout, cmd.output()).await {
            Ok(Ok(out)) => out,
            Ok(Err(e)) => return Err(format!("cannot run alp: {e}")),
            Err(_) => return Err(format!("no result within {}s", timeout.as_secs())),
        };
        let cap = |b: &[u8]| String::from_utf8_lossy(&b[..b.len().min(1 << 20)]).trim().to_owned();
        if out.status.success() {
            let stdout = cap(&out.stdout);
            return Ok(if stdout.is_empty() { "done".into() } else { stdout });
        }
        // The JSON error's message and hint, else whatever it said.
        let stderr = cap(&out.stderr);
        let said = stderr
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find_map(|v| {
                let e = v.get("error")?;
                let message = e.get("message")?.as_str()?.to_owned();
                let hint = e.get("hint").and_then(Value::as_str).filter(|h| !h.is_empty());
                Some(hint.map_or(message.clone(), |h| format!("{message}\n{h}")))
            })
            .unwrap_or(stderr);
        Err(said)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: Value) -> Args {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn arguments_cannot_become_flags_and_paths_are_absolute() {
        let put = TOOLS.iter().find(|d| d.name == "blob_put").unwrap();
        assert_eq!(
            (put.argv)(&args(json!({"peer": "bob", "what": "/tmp/x"}))).unwrap(),
            ["blob", "put", "--to", "bob", "--", "/tmp/x"]
        );
        assert!((put.argv)(&args(json!({"peer": "--force", "what": "/tmp/x"}))).is_err());
        assert!((put.argv)(&args(json!({"peer": "bob", "what": "-rf"}))).is_err());
        assert!((put.argv)(&args(json!({"peer": "bob", "what": "notes.txt"}))).is_err(), "relative paths too");
        let add = TOOLS.iter().find(|d| d.name == "blob_add").unwrap();
        assert!((add.argv)(&args(json!({"path": "relative/x"}))).is_err());
        let ask = TOOLS.iter().find(|d| d.name == "ask_peer").unwrap();
        // A prompt may start with '-': it comes after `--`.
        assert_eq!((ask.argv)(&args(json!({"peer": "bob", "prompt": "-v?"}))).unwrap(), ["ask", "--", "bob", "-v?"]);
        for d in TOOLS {
            assert!(d.describe().annotations.is_some(), "{}", d.name);
        }
    }
}
