//! `read_file`: a UTF-8 text file of the workspace.

use std::sync::Arc;

use serde_json::{Value, json};

use super::{Args, Tier, Tool, Workspace, arg, blocking, path_schema};
use crate::provider::BoxFuture;

/// Reads a text file in the workspace.
#[derive(Debug)]
pub struct ReadFile(Arc<Workspace>);

impl ReadFile {
    /// Reads in `workspace`.
    pub fn new(workspace: &Arc<Workspace>) -> Self {
        Self(workspace.clone())
    }
}

impl Tool for ReadFile {
    fn name(&self) -> &'static str {
        "read_file"
    }

    fn description(&self) -> &'static str {
        "Read a UTF-8 text file in the workspace."
    }

    fn tier(&self) -> Tier {
        Tier::ReadOnly
    }

    fn schema(&self) -> Value {
        json!({"type": "object", "properties": {"path": path_schema()}, "required": ["path"]})
    }

    fn call<'a>(&'a self, args: &'a Args) -> BoxFuture<'a, Result<String, String>> {
        let (ws, path) = (self.0.clone(), arg(args, "path").map(str::to_owned));
        blocking(move || ws.read_text(&path?))
    }
}
