//! `write_file`: creates or replaces a file of the workspace.

use std::sync::Arc;

use serde_json::{Value, json};

use super::{Args, Tier, Tool, Workspace, arg, blocking, path_schema};
use crate::provider::BoxFuture;

/// Writes a file in the workspace.
#[derive(Debug)]
pub struct WriteFile(Arc<Workspace>);

impl WriteFile {
    /// Writes in `workspace`.
    pub fn new(workspace: &Arc<Workspace>) -> Self {
        Self(workspace.clone())
    }
}

impl Tool for WriteFile {
    fn name(&self) -> &'static str {
        "write_file"
    }

    fn description(&self) -> &'static str {
        "Create or replace a file in the workspace."
    }

    fn tier(&self) -> Tier {
        Tier::SideEffect
    }

    fn schema(&self) -> Value {
        json!({"type": "object", "properties": {
            "path": path_schema(), "content": {"type": "string"}}, "required": ["path", "content"]})
    }

    fn call<'a>(&'a self, args: &'a Args) -> BoxFuture<'a, Result<String, String>> {
        let ws = self.0.clone();
        let input = arg(args, "path").and_then(|p| Ok((p.to_owned(), arg(args, "content")?.to_owned())));
        blocking(move || {
            let (path, content) = input?;
            ws.write_text(&path, &content)
        })
    }
}
