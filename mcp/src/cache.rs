//! What a server offered when last started, kept per profile in
//! `mcp/NAME.json`, so that its tools can be offered without starting it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Most tools kept per server.
pub(crate) const MAX_TOOLS: usize = 256;
/// Longest description kept.
const MAX_DESCRIPTION: usize = 2048;
/// Largest schema kept, as JSON text.
const MAX_SCHEMA: usize = 64 << 10;

/// A server's tools.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Cached {
    pub tools: Vec<CachedTool>,
}

/// One tool, as the server described it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CachedTool {
    /// Its name on the server.
    pub name: String,
    /// Its name for the model: letters, digits, `_` and `-` only.
    pub local: String,
    pub description: String,
    /// JSON Schema of its arguments (an object schema).
    pub schema: serde_json::Value,
    /// The server says it only reads (a hint; the config's tier decides).
    #[serde(default)]
    pub read_only_hint: bool,
}

impl CachedTool {
    /// The tool a server listed (as JSON), checked and bounded; `None` for
    /// one that cannot be offered.
    pub fn from_listed(tool: &serde_json::Value) -> Option<Self> {
        let name = tool.get("name")?.as_str()?.to_owned();
        if name.is_empty() || name.len() > 64 {
            return None;
        }
        let local: String =
            name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
        let mut description = tool.get("description").and_then(|d| d.as_str()).unwrap_or_default().to_owned();
        if description.len() > MAX_DESCRIPTION {
            let mut end = MAX_DESCRIPTION;
            while !description.is_char_boundary(end) {
                end -= 1;
            }
            description.truncate(end);
        }
        let mut schema = tool
            .get("inputSchema")
            .filter(|s| s.is_object())
            .cloned()
            .unwrap_or_else(|| serde_json::json!({"type": "object", "properties": {}}));
        // Providers take only object schemas: one that says otherwise
        // would fail every request, not just this tool's.
        match schema.get("type").and_then(|t| t.as_str()) {
            Some("object") => {}
            None => schema["type"] = serde_json::json!("object"),
            Some(_) => return None,
        }
        if schema.to_string().len() > MAX_SCHEMA {
            return None;
        }
        let read_only_hint = tool.pointer("/annotations/readOnlyHint").and_then(|v| v.as_bool()).unwrap_or(false);
        Some(CachedTool { name, local, description, schema, read_only_hint })
    }
}

fn path(dir: &Path, server: &str) -> PathBuf {
    dir.join(format!("{server}.json"))
}

/// The cached tools of `server`, if any (a damaged file counts as none).
pub fn load(dir: &Path, server: &str) -> Option<Cached> {
    let text = std::fs::read(path(dir, server)).ok()?;
    serde_json::from_slice(&text).ok()
}

/// Records what `server` offers (temp file, fsync, rename).
pub fn save(dir: &Path, server: &str, cached: &Cached) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let text = serde_json::to_vec_pretty(cached).map_err(std::io::Error::other)?;
    alp_profiles::write_atomic(&path(dir, server), &text, 0o600)
}

/// Forgets `server`'s tools.
pub fn remove(dir: &Path, server: &str) {
    let _ = std::fs::remove_file(path(dir, server));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listed_tools_are_checked_and_named_for_providers() {
        let t = CachedTool::from_listed(&serde_json::json!({
            "name": "get sum.v2", "description": "adds", "inputSchema": {"type": "object"},
            "annotations": {"readOnlyHint": true}
        }))
        .unwrap();
        assert_eq!((t.name.as_str(), t.local.as_str(), t.read_only_hint), ("get sum.v2", "get_sum_v2", true));
        assert!(CachedTool::from_listed(&serde_json::json!({"name": ""})).is_none());
        assert!(CachedTool::from_listed(&serde_json::json!({"name": "x".repeat(65)})).is_none());
        let no_schema = CachedTool::from_listed(&serde_json::json!({"name": "a", "inputSchema": 5})).unwrap();
        assert_eq!(no_schema.schema["type"], "object");
    }

    #[test]
    fn the_cache_round_trips_and_damage_reads_as_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let c = Cached { tools: vec![CachedTool::from_listed(&serde_json::json!({"name": "echo"})).unwrap()] };
        save(dir.path(), "ev", &c).unwrap();
        assert_eq!(load(dir.path(), "ev"), Some(c));
        std::fs::write(dir.path().join("ev.json"), b"{nonsense").unwrap();
        assert_eq!(load(dir.path(), "ev"), None);
    }
}
