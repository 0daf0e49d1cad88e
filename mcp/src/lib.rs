//! MCP servers as tools for alp's agent.
//!
//! A profile names its servers in `config.toml` (`[mcp.NAME]`, see
//! [`alp_profiles::mcp`]). What each one offers is cached when it was
//! last started (`alp mcp add`, `alp mcp list`, or a run that used it), so
//! offering its tools to the model costs nothing: a server starts only
//! when the model first calls one of its tools, and is stopped, its whole
//! process group, when the run ends.
//!
//! Each tool is offered as `SERVER__TOOL` (providers accept only letters,
//! digits, `_` and `-` in tool names), with the server's JSON schema and
//! the tier the config gives the server. A server that cannot start,
//! hangs or talks nonsense fails only the calls to its tools, with an
//! error naming it; the run carries on.

mod cache;
mod conn;
mod tool;

pub use cache::{Cached, CachedTool, load as load_cache, remove as remove_cache, save as save_cache};
pub use conn::{Connection, Launch};
pub use tool::{McpTool, Pool};

use std::path::Path;
use std::sync::Arc;

use alp_agent::tools::Tool;
use alp_profiles::mcp::McpSpec;

/// The text of resource `uri` of server `name`, started for it and
/// stopped after (`alp chat --resource NAME:URI`).
pub async fn read_resource(
    name: &str,
    spec: &McpSpec,
    workspace: &Path,
    cache_dir: &Path,
    uri: &str,
) -> Result<String, String> {
    let mut conn = Launch::new(name, spec, workspace, cache_dir).start().await?;
    conn.read_resource(uri).await
}

/// The tools of every configured server whose tool list is cached in
/// `cache_dir`, each working in `workspace`. Every call of this makes new
/// pools: one run's servers are its own. `for_peers`: the servers run
/// only in a sandbox (a peer's ask).
pub fn tools(
    servers: &std::collections::BTreeMap<String, McpSpec>,
    cache_dir: &Path,
    workspace: &Path,
    for_peers: bool,
) -> Vec<Arc<dyn Tool>> {
    let mut out: Vec<Arc<dyn Tool>> = Vec::new();
    for (name, spec) in servers {
        let Some(cached) = cache::load(cache_dir, name) else {
            tracing::warn!(server = %name, "the tools of MCP server {name} are not known yet: `alp mcp list` starts it once");
            continue;
        };
        let launch = Launch { require_sandbox: for_peers, ..Launch::new(name, spec, workspace, cache_dir) };
        let pool = Pool::new(launch, cache_dir);
        for t in cached.tools {
            out.push(Arc::new(McpTool::new(pool.clone(), spec.tier, t)));
        }
    }
    out
}
