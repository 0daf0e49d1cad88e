//! `list_dir`: a directory of the workspace (name, kind, size).

use std::sync::Arc;

use super::{Args, Spec, Tier, Tool, Workspace, arg_or, blocking, path_schema};
use crate::provider::BoxFuture;

/// Most entries returned.
const MAX_ENTRIES: usize = 1000;

/// Lists a directory in the workspace.
#[derive(Debug)]
pub struct ListDir(pub Arc<Workspace>);

fn list(ws: &Workspace, rel: &str) -> Result<String, String> {
    let path = ws.resolve(rel)?;
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

impl Tool for ListDir {
    fn spec(&self) -> Spec {
        Spec::new("list_dir", Tier::ReadOnly, "List a directory in the workspace (name, kind, size).")
            .opt("path", path_schema())
    }

    fn call<'a>(&'a self, args: &'a Args) -> BoxFuture<'a, Result<String, String>> {
        let (ws, path) = (self.0.clone(), arg_or(args, "path", ".").to_owned());
        blocking(move || list(&ws, &path))
    }
}
