//! The tools an agent may call, each with a safety tier.
//!
//! File tools work inside the profile's workspace directory only: absolute
//! paths and `..` are refused, and every path is resolved through the
//! filesystem so a symlink cannot lead outside. `shell` runs an argv (never
//! a shell string) in the workspace with an explicit environment, a
//! timeout, capped output, and its whole process group killed on timeout or
//! cancellation.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use super::provider::{ToolCall, ToolSpec};

/// Largest tool output handed back to the model.
pub const MAX_OUTPUT: usize = 64 << 10;
/// Largest file `read_file` reads.
const MAX_READ: u64 = 1 << 20;
/// Most entries `list_dir` returns, and most matches `search_files` returns.
const MAX_ENTRIES: usize = 1000;
const MAX_MATCHES: usize = 200;
/// Files `search_files` skips: larger than this, or not UTF-8.
const MAX_SEARCH_FILE: u64 = 1 << 20;
/// The longest a shell command may run.
pub const MAX_SHELL_TIMEOUT: Duration = Duration::from_secs(600);
/// Environment variables a shell command inherits; everything else is dropped.
const SHELL_ENV: &[&str] = &["PATH", "LANG", "LC_ALL", "TZ"];

/// How much a tool can do, which decides whether it needs approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Tier {
    /// Reads inside the workspace; never needs approval; may run in parallel.
    ReadOnly,
    /// Changes files inside the workspace.
    SideEffect,
    /// Runs programs.
    Privileged,
}

/// The tool catalogue: name, tier, description, JSON Schema.
pub const TOOLS: &[(&str, Tier, &str)] = &[
    ("read_file", Tier::ReadOnly, "Read a UTF-8 text file in the workspace."),
    ("list_dir", Tier::ReadOnly, "List a directory in the workspace (name, kind, size)."),
    ("search_files", Tier::ReadOnly, "Find lines containing a text in the workspace's files."),
    ("write_file", Tier::SideEffect, "Create or replace a file in the workspace."),
    ("edit_file", Tier::SideEffect, "Replace one exact, unique occurrence of a text in a workspace file."),
    ("shell", Tier::Privileged, "Run a program (argv list, no shell) in the workspace, with a timeout."),
    ("ask_peer", Tier::SideEffect, "Ask a trusted peer's agent; returns its answer."),
    ("send_blob", Tier::SideEffect, "Send a workspace file to a trusted peer as a verified blob."),
    ("fetch_blob", Tier::SideEffect, "Fetch a blob by hash from a trusted peer into a workspace file."),
];

/// The tools that reach other nodes; offered only with [`ToolBox::with_link`].
const LINK_TOOLS: &[&str] = &["ask_peer", "send_blob", "fetch_blob"];

/// The tier of `name`, if it is a tool.
pub fn tier(name: &str) -> Option<Tier> {
    TOOLS.iter().find(|t| t.0 == name).map(|t| t.1)
}

fn schema(name: &str) -> Value {
    let path = json!({"type": "string", "description": "Path relative to the workspace"});
    match name {
        "read_file" => json!({"type": "object", "properties": {"path": path}, "required": ["path"]}),
        "list_dir" => json!({"type": "object", "properties": {"path": path}}),
        "search_files" => json!({"type": "object", "properties": {
            "text": {"type": "string", "description": "Text to find (case-sensitive)"},
            "path": path}, "required": ["text"]}),
        "write_file" => json!({"type": "object", "properties": {
            "path": path, "content": {"type": "string"}}, "required": ["path", "content"]}),
        "edit_file" => json!({"type": "object", "properties": {
            "path": path, "old": {"type": "string"}, "new": {"type": "string"}}, "required": ["path", "old", "new"]}),
        "ask_peer" => json!({"type": "object", "properties": {
            "peer": {"type": "string", "description": "The peer's name"},
            "prompt": {"type": "string"}}, "required": ["peer", "prompt"]}),
        "send_blob" => json!({"type": "object", "properties": {
            "peer": {"type": "string", "description": "The peer's name"}, "path": path}, "required": ["peer", "path"]}),
        "fetch_blob" => json!({"type": "object", "properties": {
            "peer": {"type": "string", "description": "The peer's name"},
            "hash": {"type": "string", "description": "BLAKE3 hash, 64 hex characters"},
            "path": path}, "required": ["peer", "hash", "path"]}),
        "shell" => json!({"type": "object", "properties": {
            "argv": {"type": "array", "items": {"type": "string"}, "description": "Program and arguments"},
            "timeout_secs": {"type": "integer", "description": "At most 600"}}, "required": ["argv"]}),
        _ => json!({"type": "object"}),
    }
}

/// The tools of one profile: its workspace and what is denied.
#[derive(Debug, Clone)]
pub struct ToolBox {
    workspace: PathBuf,
    denied: BTreeSet<String>,
    shell_timeout: Duration,
    link: Option<std::sync::Arc<super::link_tools::LinkTools>>,
}

impl ToolBox {
    /// Tools working in `workspace` (created if missing), minus `denied`.
    pub fn new(workspace: &Path, denied: BTreeSet<String>, shell_timeout: Duration) -> std::io::Result<Self> {
        std::fs::create_dir_all(workspace)?;
        let workspace = workspace.canonicalize()?;
        Ok(ToolBox { workspace, denied, shell_timeout: shell_timeout.min(MAX_SHELL_TIMEOUT), link: None })
    }

    /// Also offers the tools that reach peers (`ask_peer`, `send_blob`, `fetch_blob`).
    pub fn with_link(mut self, link: super::link_tools::LinkTools) -> Self {
        self.link = Some(std::sync::Arc::new(link));
        self
    }

    pub fn workspace(&self) -> &Path {
        &self.workspace
    }

    /// The specs of every tool not denied.
    pub fn specs(&self) -> Vec<ToolSpec> {
        TOOLS
            .iter()
            .filter(|t| !self.denied.contains(t.0))
            .filter(|t| self.link.is_some() || !LINK_TOOLS.contains(&t.0))
            .map(|&(name, _, description)| ToolSpec {
                name: name.into(),
                description: description.into(),
                parameters: schema(name),
            })
            .collect()
    }

    /// Runs one call. `Err` carries a message for the model (the call failed).
    pub async fn call(&self, call: &ToolCall) -> Result<String, String> {
        let asynchronous = call.name == "shell" || LINK_TOOLS.contains(&call.name.as_str());
        if !asynchronous || self.denied.contains(&call.name) {
            return self.call_sync(call);
        }
        let args = call.arguments.as_object().ok_or("arguments must be a JSON object")?;
        let s = |k: &str| args.get(k).and_then(Value::as_str).ok_or_else(|| format!("missing string argument {k:?}"));
        let link = || self.link.as_deref().ok_or_else(|| format!("{} is not available here", call.name));
        let out = match call.name.as_str() {
            "ask_peer" => link()?.ask_peer(s("peer")?, s("prompt")?).await,
            "send_blob" => {
                let path = self.resolve(s("path")?)?;
                link()?.send_blob(&path, s("peer")?).await
            }
            "fetch_blob" => {
                let rel = s("path")?;
                let path = self.resolve(rel)?;
                if path.symlink_metadata().is_ok_and(|m| m.file_type().is_symlink()) {
                    return Err(format!("{rel} is a symlink; not writing through it"));
                }
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| format!("{rel}: {e}"))?;
                }
                link()?.fetch_blob(s("hash")?, s("peer")?, &path).await
            }
            "shell" => {
                let argv: Vec<String> = args
                    .get("argv")
                    .and_then(Value::as_array)
                    .ok_or("missing array argument \"argv\"")?
                    .iter()
                    .map(|v| v.as_str().map(str::to_owned).ok_or("argv must hold strings"))
                    .collect::<Result<_, _>>()?;
                let timeout = args
                    .get("timeout_secs")
                    .and_then(Value::as_u64)
                    .map_or(self.shell_timeout, Duration::from_secs)
                    .min(self.shell_timeout);
                self.shell(&argv, timeout).await
            }
            other => Err(format!("no tool named {other:?}")),
        }?;
        Ok(cap(out))
    }

    /// Runs a call of a file tool (blocking I/O; `shell` needs [`ToolBox::call`]).
    pub fn call_sync(&self, call: &ToolCall) -> Result<String, String> {
        if self.denied.contains(&call.name) {
            return Err(format!("tool {} is denied on this profile", call.name));
        }
        let args = call.arguments.as_object().ok_or("arguments must be a JSON object")?;
        let s = |k: &str| args.get(k).and_then(Value::as_str).ok_or_else(|| format!("missing string argument {k:?}"));
        let out = match call.name.as_str() {
            "read_file" => self.read_file(s("path")?),
            "list_dir" => self.list_dir(args.get("path").and_then(Value::as_str).unwrap_or(".")),
            "search_files" => self.search(s("text")?, args.get("path").and_then(Value::as_str).unwrap_or(".")),
            "write_file" => self.write_file(s("path")?, s("content")?),
            "edit_file" => self.edit_file(s("path")?, s("old")?, s("new")?),
            "shell" | "ask_peer" | "send_blob" | "fetch_blob" => {
                Err(format!("{} runs only through the async call", call.name))
            }
            other => Err(format!("no tool named {other:?}")),
        }?;
        Ok(cap(out))
    }

    /// Resolves `rel` inside the workspace, refusing anything that leads out.
    pub fn resolve(&self, rel: &str) -> Result<PathBuf, String> {
        let p = Path::new(rel);
        if p.is_absolute() || p.components().any(|c| matches!(c, Component::ParentDir | Component::Prefix(_))) {
            return Err(format!("{rel:?} is outside the workspace: use a relative path without '..'"));
        }
        let full = self.workspace.join(p);
        // The deepest part that exists, resolved through symlinks, must
        // still be inside the workspace.
        let mut existing = full.as_path();
        while !existing.exists() {
            existing = existing.parent().ok_or("bad path")?;
        }
        let real = existing.canonicalize().map_err(|e| format!("{rel}: {e}"))?;
        if !real.starts_with(&self.workspace) {
            return Err(format!("{rel:?} leads outside the workspace (through a symlink)"));
        }
        Ok(full)
    }

    fn read_file(&self, rel: &str) -> Result<String, String> {
        let path = self.resolve(rel)?;
        let f = std::fs::File::open(&path).map_err(|e| format!("{rel}: {e}"))?;
        let mut text = String::new();
        f.take(MAX_READ)
            .read_to_string(&mut text)
            .map_err(|e| format!("{rel}: {e} (only UTF-8 text files can be read)"))?;
        Ok(text)
    }

    fn list_dir(&self, rel: &str) -> Result<String, String> {
        let path = self.resolve(rel)?;
        let mut entries: Vec<String> = std::fs::read_dir(&path)
            .map_err(|e| format!("{rel}: {e}"))?
            .filter_map(Result::ok)
            .take(MAX_ENTRIES)
            .map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                match e.metadata() {
                    Ok(m) if m.is_dir() => format!("{name}/"),
                    Ok(m) if m.is_symlink() => format!("{name}@"),
                    Ok(m) => format!("{name}\t{} bytes", m.len()),
                    Err(_) => name,
                }
            })
            .collect();
        entries.sort();
        Ok(if entries.is_empty() { "(empty)".into() } else { entries.join("\n") })
    }

    fn search(&self, text: &str, rel: &str) -> Result<String, String> {
        if text.is_empty() {
            return Err("the search text is empty".into());
        }
        let root = self.resolve(rel)?;
        let mut hits = Vec::new();
        let mut stack = vec![root];
        while let Some(dir) = stack.pop() {
            let Ok(rd) = std::fs::read_dir(&dir) else { continue };
            let mut entries: Vec<_> = rd.filter_map(Result::ok).collect();
            entries.sort_by_key(|e| e.file_name());
            for e in entries {
                // symlink_metadata: never follow links out of the workspace.
                let Ok(m) = e.path().symlink_metadata() else { continue };
                if m.is_dir() {
                    stack.push(e.path());
                } else if m.is_file() && m.len() <= MAX_SEARCH_FILE {
                    let Ok(content) = std::fs::read_to_string(e.path()) else { continue };
                    let shown = e.path().strip_prefix(&self.workspace).map(Path::to_path_buf).unwrap_or_default();
                    for (n, line) in content.lines().enumerate() {
                        if line.contains(text) {
                            hits.push(format!("{}:{}: {}", shown.display(), n + 1, line.trim_end()));
                            if hits.len() >= MAX_MATCHES {
                                hits.push(format!("(stopped at {MAX_MATCHES} matches)"));
                                return Ok(hits.join("\n"));
                            }
                        }
                    }
                }
            }
        }
        Ok(if hits.is_empty() { "no matches".into() } else { hits.join("\n") })
    }

    fn write_file(&self, rel: &str, content: &str) -> Result<String, String> {
        let path = self.resolve(rel)?;
        if path.symlink_metadata().is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(format!("{rel} is a symlink; not writing through it"));
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("{rel}: {e}"))?;
        }
        alp_profiles::write_atomic(&path, content.as_bytes(), 0o644).map_err(|e| format!("{rel}: {e}"))?;
        Ok(format!("wrote {} bytes to {rel}", content.len()))
    }

    fn edit_file(&self, rel: &str, old: &str, new: &str) -> Result<String, String> {
        let text = self.read_file(rel)?;
        if old.is_empty() {
            return Err("\"old\" is empty".into());
        }
        match text.matches(old).count() {
            0 => Err(format!("{rel} does not contain the text to replace")),
            1 => {
                self.write_file(rel, &text.replacen(old, new, 1))?;
                Ok(format!("edited {rel}"))
            }
            n => Err(format!("{rel} contains the text {n} times; give a longer, unique excerpt")),
        }
    }

    async fn shell(&self, argv: &[String], timeout: Duration) -> Result<String, String> {
        let (program, args) = argv.split_first().ok_or("argv is empty")?;
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(args)
            .current_dir(&self.workspace)
            .env_clear()
            .env("HOME", &self.workspace)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        for var in SHELL_ENV {
            if let Some(v) = std::env::var_os(var) {
                cmd.env(var, v);
            }
        }
        let child = cmd.spawn().map_err(|e| format!("cannot run {program}: {e}"))?;
        // Kills the whole group if this future is dropped (Ctrl-C) or times out.
        let group = GroupGuard(child.id());
        let result = tokio::time::timeout(timeout, child.wait_with_output()).await;
        let out = match result {
            Err(_) => {
                drop(group);
                return Err(format!("{program} timed out after {}s; its process group was killed", timeout.as_secs()));
            }
            Ok(r) => r.map_err(|e| format!("{program}: {e}"))?,
        };
        group.disarm();
        let status = out.status.code().map_or_else(|| "killed by a signal".to_string(), |c| format!("exit status {c}"));
        let text = format!(
            "{status}\nstdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stdout[..out.stdout.len().min(MAX_OUTPUT)]),
            String::from_utf8_lossy(&out.stderr[..out.stderr.len().min(MAX_OUTPUT)])
        );
        if out.status.success() { Ok(text) } else { Err(text) }
    }
}

/// Kills a process group when dropped, unless disarmed.
struct GroupGuard(Option<u32>);

impl GroupGuard {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pid) = self.0.and_then(|p| i32::try_from(p).ok()) {
            let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        }
    }
}

fn cap(mut s: String) -> String {
    if s.len() > MAX_OUTPUT {
        let mut end = MAX_OUTPUT;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push_str("\n(output truncated)");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tb() -> (tempfile::TempDir, ToolBox) {
        let d = tempfile::tempdir().unwrap();
        let t = ToolBox::new(&d.path().join("ws"), BTreeSet::new(), Duration::from_secs(5)).unwrap();
        (d, t)
    }

    fn call(name: &str, args: Value) -> ToolCall {
        ToolCall { id: "1".into(), name: name.into(), arguments: args }
    }

    #[tokio::test]
    async fn files_round_trip_inside_the_workspace() {
        let (_d, t) = tb();
        t.call(&call("write_file", json!({"path": "a/b.txt", "content": "hello\nworld\n"}))).await.unwrap();
        assert_eq!(t.call(&call("read_file", json!({"path": "a/b.txt"}))).await.unwrap(), "hello\nworld\n");
        t.call(&call("edit_file", json!({"path": "a/b.txt", "old": "world", "new": "there"}))).await.unwrap();
        assert_eq!(std::fs::read_to_string(t.workspace().join("a/b.txt")).unwrap(), "hello\nthere\n");
        assert!(t.call(&call("list_dir", json!({}))).await.unwrap().contains("a/"));
        assert_eq!(t.call(&call("search_files", json!({"text": "there"}))).await.unwrap(), "a/b.txt:2: there");
        let e = t.call(&call("edit_file", json!({"path": "a/b.txt", "old": "l", "new": "L"}))).await.unwrap_err();
        assert!(e.contains("2 times"), "{e}");
    }

    #[tokio::test]
    async fn escapes_are_refused() {
        let (d, t) = tb();
        std::fs::write(d.path().join("secret"), "s3cret").unwrap();
        std::os::unix::fs::symlink(d.path(), t.workspace().join("link")).unwrap();
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
        let (_d, t) = tb();
        let out = t.call(&call("shell", json!({"argv": ["sh", "-c", "echo $HOME; env | wc -l; pwd"]}))).await.unwrap();
        let ws = t.workspace().display().to_string();
        assert!(out.starts_with("exit status 0"), "{out}");
        assert!(out.contains(&ws), "{out}");
        let e = t.call(&call("shell", json!({"argv": ["false"]}))).await.unwrap_err();
        assert!(e.starts_with("exit status 1"), "{e}");
        let e = t.call(&call("shell", json!({"argv": ["/nonexistent/prog"]}))).await.unwrap_err();
        assert!(e.contains("cannot run"), "{e}");
    }

    #[tokio::test]
    async fn shell_timeout_kills_the_process_group() {
        let (_d, t) = tb();
        let marker = t.workspace().join("survived");
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
        let t = ToolBox::new(d.path(), ["shell".to_string()].into(), Duration::from_secs(5)).unwrap();
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
}
