//! The tools an agent may call. Each tool is one type implementing
//! [`Tool`] (its name, description, JSON schema, safety tier and `call`);
//! a [`Registry`] lists the tools of a context, and
//! [`Registry::offer`] filters them by policy into the [`Toolset`] one
//! run offers the model. Adding a tool is one new file and one
//! registration line ([`Registry::builtin`] here, or the registry the
//! `alp` binary builds for the tools that reach peers).
//!
//! File tools work inside the profile's [`Workspace`] only. `shell` runs
//! an argv (never a shell string) in the workspace with an explicit
//! environment, a timeout, capped output, and its whole process group
//! killed on timeout or cancellation.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

use serde_json::Value;

use crate::provider::{BoxFuture, ToolCall, ToolSpec};

pub mod edit_file;
pub mod list_dir;
pub mod read_file;
pub mod sandbox;
pub mod search_files;
pub mod shell;
mod workspace;
pub mod write_file;

pub use sandbox::Sandbox;
pub use shell::{MAX_SHELL_TIMEOUT, SHELL_ENV, ShellConfig, allowed_env};
pub use workspace::Workspace;

/// Largest tool output handed back to the model.
pub const MAX_OUTPUT: usize = 64 << 10;

/// How much a tool can do, which decides whether it needs approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Tier {
    /// Reads inside the workspace; never needs approval; may run in parallel.
    ReadOnly,
    /// Changes files inside the workspace, or reaches a peer.
    SideEffect,
    /// Runs programs.
    Privileged,
}

/// The arguments of a call: a JSON object.
pub type Args = serde_json::Map<String, Value>;

/// What a tool is: its name (as the model calls it: letters, digits,
/// `_` and `-`), its tier, the line the model reads about it, and its
/// arguments.
#[derive(Debug, Clone)]
pub struct Spec {
    name: Cow<'static, str>,
    tier: Tier,
    description: Cow<'static, str>,
    properties: serde_json::Map<String, Value>,
    required: Vec<&'static str>,
    /// A whole schema given as is (a tool described by someone else).
    schema: Option<Value>,
}

impl Spec {
    /// A tool named `name`, of `tier`, described to the model by `description`.
    pub fn new(name: &'static str, tier: Tier, description: &'static str) -> Self {
        Self {
            name: Cow::Borrowed(name),
            tier,
            description: Cow::Borrowed(description),
            properties: serde_json::Map::new(),
            required: Vec::new(),
            schema: None,
        }
    }

    /// A tool known only at run time (an MCP server's), with its whole
    /// arguments schema.
    pub fn dynamic(name: String, tier: Tier, description: String, schema: Value) -> Self {
        Self {
            name: Cow::Owned(name),
            description: Cow::Owned(description),
            schema: Some(schema),
            ..Self::new("", tier, "")
        }
    }

    /// A required argument, with its JSON Schema.
    pub fn arg(mut self, name: &'static str, schema: Value) -> Self {
        self.required.push(name);
        self.opt(name, schema)
    }

    /// An optional argument, with its JSON Schema.
    pub fn opt(mut self, name: &'static str, schema: Value) -> Self {
        self.properties.insert(name.to_owned(), schema);
        self
    }

    /// The tool's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How much it can do.
    pub fn tier(&self) -> Tier {
        self.tier
    }

    /// JSON Schema of its arguments object.
    pub fn schema(&self) -> Value {
        if let Some(schema) = &self.schema {
            return schema.clone();
        }
        let mut schema = serde_json::json!({"type": "object", "properties": self.properties});
        if !self.required.is_empty() {
            schema["required"] = serde_json::json!(self.required);
        }
        schema
    }

    fn to_tool_spec(&self) -> ToolSpec {
        ToolSpec { name: self.name.to_string(), description: self.description.to_string(), parameters: self.schema() }
    }
}

/// The schema of a string argument, with a description when it is not
/// empty.
pub fn text(description: &str) -> Value {
    match description {
        "" => serde_json::json!({"type": "string"}),
        d => serde_json::json!({"type": "string", "description": d}),
    }
}

/// A tool the model may call.
pub trait Tool: Send + Sync {
    /// What it is.
    fn spec(&self) -> Spec;
    /// Runs one call. `Err` is a message for the model: the call failed.
    /// Dropping the future cancels the call.
    fn call<'a>(&'a self, args: &'a Args) -> BoxFuture<'a, Result<String, String>>;
}

/// A string argument.
pub fn arg<'a>(args: &'a Args, key: &str) -> Result<&'a str, String> {
    args.get(key).and_then(Value::as_str).ok_or_else(|| format!("missing string argument {key:?}"))
}

/// An optional string argument, `default` when absent.
pub fn arg_or<'a>(args: &'a Args, key: &str, default: &'a str) -> &'a str {
    args.get(key).and_then(Value::as_str).unwrap_or(default)
}

/// Runs blocking work (file I/O) on the blocking pool, so that several
/// calls proceed side by side.
pub fn blocking(
    f: impl FnOnce() -> Result<String, String> + Send + 'static,
) -> BoxFuture<'static, Result<String, String>> {
    Box::pin(
        async move { tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| Err(format!("the tool failed: {e}"))) },
    )
}

/// A tool and its spec (taken once, when it is registered).
type Entry = (Arc<dyn Tool>, Arc<Spec>);

/// The tools of one context, in the order they are offered.
#[derive(Clone, Default)]
pub struct Registry {
    tools: Vec<Entry>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

impl Registry {
    /// The built-in tools, working in `workspace`; `shell` runs as `shell`
    /// says.
    pub fn builtin(workspace: &Arc<Workspace>, shell: &ShellConfig) -> Self {
        Registry::default()
            .with(read_file::ReadFile(workspace.clone()))
            .with(list_dir::ListDir(workspace.clone()))
            .with(search_files::SearchFiles(workspace.clone()))
            .with(write_file::WriteFile(workspace.clone()))
            .with(edit_file::EditFile(workspace.clone()))
            .with(shell::Shell::new(workspace, shell))
    }

    /// Adds `tool` (replacing one of the same name).
    #[must_use]
    pub fn with(mut self, tool: impl Tool + 'static) -> Self {
        let spec = Arc::new(tool.spec());
        self.tools.retain(|(_, s)| s.name != spec.name);
        self.tools.push((Arc::new(tool), spec));
        self
    }

    /// The tools' names, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> + '_ {
        self.tools.iter().map(|(_, s)| s.name())
    }

    /// Adds every tool of `tools` (replacing ones of the same names).
    #[must_use]
    pub fn with_all(mut self, tools: Vec<Arc<dyn Tool>>) -> Self {
        for tool in tools {
            let spec = Arc::new(tool.spec());
            self.tools.retain(|(_, s)| s.name != spec.name);
            self.tools.push((tool, spec));
        }
        self
    }

    /// The tier of the tool `name`, if there is one.
    pub fn tier(&self, name: &str) -> Option<Tier> {
        self.tools.iter().find(|(_, s)| s.name == name).map(|(_, s)| s.tier)
    }

    /// What one run may be offered: every tool but those `denied`, and
    /// only those in `only` when it is given (a peer's grant).
    pub fn offer(&self, denied: &BTreeSet<String>, only: Option<&BTreeSet<String>>) -> Toolset {
        // `agent.deny_tools` may use `server__*`; a peer's grant names each tool.
        let offered =
            |s: &Spec| !denied.iter().any(|d| name_matches(d, s.name())) && only.is_none_or(|o| o.contains(s.name()));
        Toolset { tools: self.tools.iter().map(|(t, s)| (t.clone(), s.clone(), offered(s))).collect() }
    }
}

/// The tools of one run: the context's tools, each offered to the model
/// or not. Calls to a tool not offered fail with a message the model can
/// act on; approvals still go by every tool's tier.
#[derive(Clone)]
pub struct Toolset {
    tools: Vec<(Arc<dyn Tool>, Arc<Spec>, bool)>,
}

impl fmt::Debug for Toolset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.offered().map(Spec::name)).finish()
    }
}

impl Toolset {
    fn offered(&self) -> impl Iterator<Item = &Spec> {
        self.tools.iter().filter(|(_, _, offered)| *offered).map(|(_, s, _)| s.as_ref())
    }

    /// Whether no tool is offered.
    pub fn is_empty(&self) -> bool {
        self.offered().next().is_none()
    }

    /// What the model is told about the offered tools.
    pub fn specs(&self) -> Vec<ToolSpec> {
        self.offered().map(Spec::to_tool_spec).collect()
    }

    /// The tier of the tool `name`, offered or not.
    pub fn tier(&self, name: &str) -> Option<Tier> {
        self.tools.iter().find(|(_, s, _)| s.name == name).map(|(_, s, _)| s.tier)
    }

    /// Runs one call. `Err` carries a message for the model.
    pub async fn call(&self, call: &ToolCall) -> Result<String, String> {
        let tool = match self.tools.iter().find(|(_, s, _)| s.name == call.name) {
            Some((tool, _, true)) => tool,
            Some((_, _, false)) => return Err(format!("tool {} is denied on this profile", call.name)),
            None => return Err(format!("no tool named {:?}", call.name)),
        };
        let args = call.arguments.as_object().ok_or("arguments must be a JSON object")?;
        tool.call(args).await.map(cap).map_err(cap)
    }
}

/// Whether a tool name as the user wrote it (in `--allow-tools` or
/// `agent.allow_tools`) covers `name`: the name itself, or `SERVER__*`
/// for every tool of the MCP server `SERVER`. No other pattern: `*`
/// alone, or `read*`, is only a name (that no tool has).
pub fn name_matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix("__*") {
        Some(server) if !server.is_empty() && !server.contains('*') => {
            name.split_once("__").is_some_and(|(s, _)| s == server)
        }
        _ => pattern == name,
    }
}

/// Cuts `s` to [`MAX_OUTPUT`] bytes, on a character boundary.
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

/// The JSON schema of a path argument.
pub fn path_schema() -> Value {
    serde_json::json!({"type": "string", "description": "Path relative to the workspace"})
}

#[cfg(test)]
mod tests;
