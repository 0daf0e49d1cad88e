//! `write_file`: creates or replaces a file of the workspace.

use std::sync::Arc;

use super::{Args, Spec, Tier, Tool, Workspace, arg, blocking, path_schema, text};
use crate::provider::BoxFuture;

/// Writes a file in the workspace.
#[derive(Debug)]
pub struct WriteFile(pub Arc<Workspace>);

impl Tool for WriteFile {
    fn spec(&self) -> Spec {
        Spec::new("write_file", Tier::SideEffect, "Create or replace a file in the workspace.")
            .arg("path", path_schema())
            .arg("content", text(""))
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
