//! `edit_file`: replaces one exact, unique excerpt of a workspace file.

use std::sync::Arc;

use super::{Args, Spec, Tier, Tool, Workspace, arg, blocking, path_schema, text};
use crate::provider::BoxFuture;

/// Edits a file in the workspace.
#[derive(Debug)]
pub struct EditFile(pub Arc<Workspace>);

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
    fn spec(&self) -> Spec {
        Spec::new("edit_file", Tier::SideEffect, "Replace one exact, unique occurrence of a text in a workspace file.")
            .arg("path", path_schema())
            .arg("old", text(""))
            .arg("new", text(""))
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
