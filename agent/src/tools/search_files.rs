//! `search_files`: lines containing a text, in the workspace's files.

use std::path::Path;
use std::sync::Arc;

use super::{Args, Spec, Tier, Tool, Workspace, arg, arg_or, blocking, path_schema, text};
use crate::provider::BoxFuture;

/// Most matches returned.
const MAX_MATCHES: usize = 200;
/// Files skipped: larger than this, or not UTF-8.
const MAX_SEARCH_FILE: u64 = 1 << 20;

/// Searches the workspace's files.
#[derive(Debug)]
pub struct SearchFiles(pub Arc<Workspace>);

fn search(ws: &Workspace, text: &str, rel: &str) -> Result<String, String> {
    if text.is_empty() {
        return Err("the search text is empty".into());
    }
    let mut hits = Vec::new();
    let mut stack = vec![ws.resolve(rel)?];
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
                let shown = e.path().strip_prefix(ws.root()).map(Path::to_path_buf).unwrap_or_default();
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

impl Tool for SearchFiles {
    fn spec(&self) -> Spec {
        Spec::new("search_files", Tier::ReadOnly, "Find lines containing a text in the workspace's files.")
            .arg("text", text("Text to find (case-sensitive)"))
            .opt("path", path_schema())
    }

    fn call<'a>(&'a self, args: &'a Args) -> BoxFuture<'a, Result<String, String>> {
        let ws = self.0.clone();
        let (text, path) = (arg(args, "text").map(str::to_owned), arg_or(args, "path", ".").to_owned());
        blocking(move || search(&ws, &text?, &path))
    }
}
