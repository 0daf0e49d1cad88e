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

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::provider::{BoxFuture, ToolCall, ToolSpec};

mod edit_file;
mod list_dir;
mod read_file;
mod search_files;
mod shell;
mod workspace;
mod write_file;

pub use edit_file::EditFile;
pub use list_dir::ListDir;
pub use read_file::ReadFile;
pub use search_files::SearchFiles;
pub use shell::{MAX_SHELL_TIMEOUT, Shell};
pub use workspace::Workspace;
pub use write_file::WriteFile;

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

/// A tool the model may call.
pub trait Tool: Send + Sync {
    /// Its name, as the model calls it (letters, digits and `_`).
    fn name(&self) -> &'static str;
    /// One line for the model.
    fn description(&self) -> &'static str;
    /// How much it can do.
    fn tier(&self) -> Tier;
    /// JSON Schema of its arguments object.
    fn schema(&self) -> Value;
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

/// The tools of one context, in the order they are offered.
#[derive(Clone, Default)]
pub struct Registry {
    tools: Vec<Arc<dyn Tool>>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.tools.iter().map(|t| t.name())).finish()
    }
}

impl Registry {
    /// The built-in tools, working in `workspace`; `shell` runs for at most
    /// `shell_timeout` (capped at [`MAX_SHELL_TIMEOUT`]).
    pub fn builtin(workspace: &Arc<Workspace>, shell_timeout: Duration) -> Self {
        Registry::default()
            .with(ReadFile::new(workspace))
            .with(ListDir::new(workspace))
            .with(SearchFiles::new(workspace))
            .with(WriteFile::new(workspace))
            .with(EditFile::new(workspace))
            .with(Shell::new(workspace, shell_timeout))
    }

    /// Adds `tool` (replacing one of the same name).
    #[must_use]
    pub fn with(mut self, tool: impl Tool + 'static) -> Self {
        self.tools.retain(|t| t.name() != tool.name());
        self.tools.push(Arc::new(tool));
        self
    }

    /// The tools' names, in order.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.tools.iter().map(|t| t.name())
    }

    /// The tier of the tool `name`, if there is one.
    pub fn tier(&self, name: &str) -> Option<Tier> {
        self.tools.iter().find(|t| t.name() == name).map(|t| t.tier())
    }

    /// What one run may be offered: every tool but those `denied`, and
    /// only those in `only` when it is given (a peer's grant).
    pub fn offer(&self, denied: &BTreeSet<String>, only: Option<&BTreeSet<String>>) -> Toolset {
        let offered = |t: &Arc<dyn Tool>| !denied.contains(t.name()) && only.is_none_or(|o| o.contains(t.name()));
        Toolset { tools: self.tools.iter().map(|t| (t.clone(), offered(t))).collect() }
    }
}

/// The tools of one run: the context's tools, each offered to the model
/// or not. Calls to a tool not offered fail with a message the model can
/// act on; approvals still go by every tool's tier.
#[derive(Clone)]
pub struct Toolset {
    tools: Vec<(Arc<dyn Tool>, bool)>,
}

impl fmt::Debug for Toolset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.offered().map(|t| t.name())).finish()
    }
}

impl Toolset {
    fn offered(&self) -> impl Iterator<Item = &Arc<dyn Tool>> {
        self.tools.iter().filter(|(_, offered)| *offered).map(|(t, _)| t)
    }

    /// Whether no tool is offered.
    pub fn is_empty(&self) -> bool {
        self.offered().next().is_none()
    }

    /// What the model is told about the offered tools.
    pub fn specs(&self) -> Vec<ToolSpec> {
        self.offered()
            .map(|t| ToolSpec { name: t.name().into(), description: t.description().into(), parameters: t.schema() })
            .collect()
    }

    /// The tier of the tool `name`, offered or not.
    pub fn tier(&self, name: &str) -> Option<Tier> {
        self.tools.iter().find(|(t, _)| t.name() == name).map(|(t, _)| t.tier())
    }

    /// Runs one call. `Err` carries a message for the model.
    pub async fn call(&self, call: &ToolCall) -> Result<String, String> {
        let tool = match self.tools.iter().find(|(t, _)| t.name() == call.name) {
            Some((tool, true)) => tool,
            Some((_, false)) => return Err(format!("tool {} is denied on this profile", call.name)),
            None => return Err(format!("no tool named {:?}", call.name)),
        };
        let args = call.arguments.as_object().ok_or("arguments must be a JSON object")?;
        tool.call(args).await.map(cap)
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
