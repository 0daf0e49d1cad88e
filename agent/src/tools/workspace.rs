//! The profile's workspace: the one directory file tools may touch.
//! Absolute paths and `..` are refused, and every path is resolved through
//! the filesystem so that a symlink cannot lead outside.

use std::io::Read;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

/// Largest file read as text.
const MAX_READ: u64 = 1 << 20;

/// A workspace directory, resolved once.
#[derive(Debug)]
pub struct Workspace {
    root: PathBuf,
}

impl Workspace {
    /// The workspace at `root`, created if missing.
    pub fn open(root: &Path) -> std::io::Result<Arc<Self>> {
        std::fs::create_dir_all(root)?;
        Ok(Arc::new(Self { root: root.canonicalize()? }))
    }

    /// Its directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Resolves `rel` inside the workspace, refusing anything that leads out.
    pub fn resolve(&self, rel: &str) -> Result<PathBuf, String> {
        let p = Path::new(rel);
        if p.is_absolute() || p.components().any(|c| matches!(c, Component::ParentDir | Component::Prefix(_))) {
            return Err(format!("{rel:?} is outside the workspace: use a relative path without '..'"));
        }
        let full = self.root.join(p);
        // The deepest part that exists, resolved through symlinks, must
        // still be inside the workspace.
        let mut existing = full.as_path();
        while !existing.exists() {
            existing = existing.parent().ok_or("bad path")?;
        }
        let real = existing.canonicalize().map_err(|e| format!("{rel}: {e}"))?;
        if !real.starts_with(&self.root) {
            return Err(format!("{rel:?} leads outside the workspace (through a symlink)"));
        }
        Ok(full)
    }

    /// Resolves `rel` as a file about to be written: not through a
    /// symlink, with its directory created.
    pub fn resolve_new(&self, rel: &str) -> Result<PathBuf, String> {
        let path = self.resolve(rel)?;
        if path.symlink_metadata().is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(format!("{rel} is a symlink; not writing through it"));
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("{rel}: {e}"))?;
        }
        Ok(path)
    }

    /// The UTF-8 text of the file `rel` (at most 1 MiB of it).
    pub fn read_text(&self, rel: &str) -> Result<String, String> {
        let path = self.resolve(rel)?;
        let f = std::fs::File::open(&path).map_err(|e| format!("{rel}: {e}"))?;
        let mut text = String::new();
        f.take(MAX_READ)
            .read_to_string(&mut text)
            .map_err(|e| format!("{rel}: {e} (only UTF-8 text files can be read)"))?;
        Ok(text)
    }

    /// Creates or replaces the file `rel` with `content`, atomically.
    pub fn write_text(&self, rel: &str, content: &str) -> Result<String, String> {
        let path = self.resolve_new(rel)?;
        alp_profiles::write_atomic(&path, content.as_bytes(), 0o644).map_err(|e| format!("{rel}: {e}"))?;
        Ok(format!("wrote {} bytes to {rel}", content.len()))
    }
}
