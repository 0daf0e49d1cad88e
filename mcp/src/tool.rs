//! The tools of one server, sharing one lazily started connection.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use alp_agent::provider::BoxFuture;
use alp_agent::tools::{Args, Spec, Tier, Tool};
use alp_profiles::mcp::McpTier;

use crate::cache::{self, CachedTool};
use crate::conn::{Connection, Launch};

/// One server's connection, started by the first call to one of its
/// tools and kept for the rest of the run. A server that failed to start
/// is not started again in that run: its tools fail at once, saying why.
#[derive(Clone)]
pub struct Pool(Arc<Inner>);

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Pool").field(&self.0.launch.name).finish()
    }
}

struct Inner {
    launch: Launch,
    cache_dir: PathBuf,
    state: tokio::sync::Mutex<State>,
}

enum State {
    Idle,
    Up(Box<Connection>),
    Failed(String),
}

impl Pool {
    pub fn new(launch: Launch, cache_dir: &Path) -> Self {
        Pool(Arc::new(Inner { launch, cache_dir: cache_dir.to_owned(), state: tokio::sync::Mutex::new(State::Idle) }))
    }

    /// Calls `tool` on the server, starting it first if need be. One call
    /// at a time per server (stdio servers answer in turn anyway).
    pub async fn call(&self, tool: &str, args: &Args) -> Result<String, String> {
        let mut state = self.0.state.lock().await;
        if let State::Idle = &*state {
            *state = match self.0.launch.start().await {
                Ok(mut conn) => {
                    // What it offers now is what the next run offers.
                    if let Ok(listed) = conn.list().await {
                        let _ = cache::save(&self.0.cache_dir, &self.0.launch.name, &listed);
                    }
                    State::Up(Box::new(conn))
                }
                Err(e) => State::Failed(e),
            };
        }
        match &mut *state {
            State::Up(conn) => {
                let result = conn.call(tool, args).await;
                if result.is_err() && !conn.alive() {
                    let why = result.as_ref().err().cloned().unwrap_or_default();
                    *state = State::Failed(why);
                }
                result
            }
            State::Failed(why) => Err(format!("{why} (its tools are unavailable for the rest of this run)")),
            State::Idle => Err("unreachable: the server was just started".into()),
        }
    }
}

/// One tool of an MCP server, as `SERVER__TOOL`.
#[derive(Debug)]
pub struct McpTool {
    pool: Pool,
    tier: Tier,
    tool: CachedTool,
    name: String,
}

impl McpTool {
    pub fn new(pool: Pool, tier: McpTier, tool: CachedTool) -> Self {
        let name = format!("{}__{}", pool.0.launch.name, tool.local);
        let tier = match tier {
            McpTier::ReadOnly => Tier::ReadOnly,
            McpTier::SideEffect => Tier::SideEffect,
            McpTier::Privileged => Tier::Privileged,
        };
        McpTool { pool, tier, tool, name }
    }
}

impl Tool for McpTool {
    fn spec(&self) -> Spec {
        let description = format!("[MCP server {}] {}", self.pool.0.launch.name, self.tool.description);
        Spec::dynamic(self.name.clone(), self.tier, description, self.tool.schema.clone())
    }

    fn call<'a>(&'a self, args: &'a Args) -> BoxFuture<'a, Result<String, String>> {
        Box::pin(self.pool.call(&self.tool.name, args))
    }
}
