//! `read_file`: a UTF-8 text file of the workspace.

use std::sync::Arc;

use super::{Args, Spec, Tier, Tool, Workspace, arg, blocking, path_schema};
use crate::provider::BoxFuture;

/// Reads a text file in the workspace.
#[derive(Debug)]
pub struct ReadFile(pub Arc<Workspace>);

impl Tool for ReadFile {
    fn spec(&self) -> Spec {
        Spec::new("read_file", Tier::ReadOnly, "Read a UTF-8 text file in the workspace.").arg("path", path_schema())
    }

    fn call<'a>(&'a self, args: &'a Args) -> BoxFuture<'a, Result<String, String>> {
        let (ws, path) = (self.0.clone(), arg(args, "path").map(str::to_owned));
        blocking(move || ws.read_text(&path?))
    }
}
