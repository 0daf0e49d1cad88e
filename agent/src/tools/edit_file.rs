//! `edit_file`: replaces one exact, unique excerpt of a workspace file.

use std::sync::Arc;

use serde_json::{Value, json};

use super::{Args, Tier, Tool, Workspace, arg, blocking, path_schema};
use crate::provider::BoxFuture;

/// Edits a file in the workspace.
#[derive(Debug)]
pub struct EditFile(Arc<Workspace>);

impl EditFile {
    /// Edits in `workspace`.
    pub fn new(workspace: &Arc<Workspace>) -> Self {
        Self(workspace.clone())
    }
}

/// Replaces the one occurrence of `old` in the file `rel` with `new`.
fn edit(ws: &Workspace, rel: &str, old: &str, new: &str) -> Result<String, String> {
    let text = ws.read_text(rel)?;
    if old.is_empty() {
        return Err("\"old\" is empty".into());
    }
    match text.matches(old).count() {
        0 => Err(format!("{rel} does not contain the text to replace")),
        1 => {
            ws.write_text(rel, &text.replacen(old, new, 1))?;
            Ok(format!("edited {rel}"))
        }
        n => Err(format!("{rel} contains the text {n} times; give a longer, unique excerpt")),
    }
}

impl Tool for EditFile {
    fn name(&self) -> &'static str {
        "edit_file"
    }

    fn description(&self) -> &'static str {
        "Replace one exact, unique occurrence of a text in a workspace file."
    }

    fn tier(&self) -> Tier {
        Tier::SideEffect
    }

    fn schema(&self) -> Value {
        json!({"type": "object", "properties": {
            "path": path_schema(), "old": {"type": "string"}, "new": {"type": "string"}},
            "required": ["path", "old", "new"]})
    }

    fn call<'a>(&'a self, args: &'a Args) -> BoxFuture<'a, Result<String, String>> {
        let ws = self.0.clone();
        let input = (|| {
            Ok::<_, String>((arg(args, "path")?.to_owned(), arg(args, "old")?.to_owned(), arg(args, "new")?.to_owned()))
        })();
        blocking(move || {
            let (path, old, new) = input?;
            edit(&ws, &path, &old, &new)
        })
    }
}
