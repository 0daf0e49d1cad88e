//! `alp mcp serve`: this node as an MCP server on stdio, for any MCP
//! client (Claude Desktop, Claude Code, Cursor, another agent).
//!
//! Each tool runs the `alp` command that does the same thing, as this
//! profile, with `--json` (see [`tools`]): the same permission checks,
//! limits and errors as on the command line, and nothing a client could
//! do that the user could not type. Arguments go in as argv entries after
//! `--`, never through a shell, so a value cannot become a flag.

mod tools;

use std::sync::Arc;

use rmcp::ServiceExt;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, ServerConfig,
};
use rmcp::service::{RequestContext, RoleServer};

use crate::ctx::Ctx;
use crate::error::{CliError, CliResult, RUNTIME};

pub(crate) fn serve(ctx: &Ctx) -> CliResult {
    // The profile must exist: every tool acts as it.
    ctx.open()?;
    let exe = std::env::current_exe()?;
    let mut base = vec![
        "--home".to_owned(),
        ctx.home.root().display().to_string(),
        "--profile".to_owned(),
        ctx.profile.to_string(),
    ];
    // `alp --set K=V mcp serve` applies to every tool's command too.
    for o in &ctx.overrides {
        base.extend(["--set".to_owned(), o.clone()]);
    }
    let calls = Arc::new(tokio::sync::Semaphore::new(MAX_CALLS));
    let handler = Handler(Arc::new(tools::Runner { exe, base }), calls);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    rt.block_on(async {
        let running = handler
            .serve(rmcp::transport::stdio())
            .await
            .map_err(|e| CliError { code: RUNTIME, error: anyhow::anyhow!("MCP client handshake failed: {e}") })?;
        let _ = running.waiting().await;
        Ok(())
    })
}

/// Tool calls run at once; more wait their turn.
const MAX_CALLS: usize = 4;

#[derive(Clone)]
struct Handler(Arc<tools::Runner>, Arc<tokio::sync::Semaphore>);

impl rmcp::ServerHandler for Handler {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("alp", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "alp: this user's node. Trusted peers by name; verified blobs (BLAKE3 hashes) moved between \
                 them; questions to a peer's agent; workgroup tasks. Every call acts as the user's profile, \
                 with its permissions.",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, rmcp::ErrorData> {
        Ok(ListToolsResult::with_all_items(tools::TOOLS.iter().map(tools::Def::describe).collect()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, rmcp::ErrorData> {
        let Some(def) = tools::TOOLS.iter().find(|d| d.name == request.name) else {
            return Err(rmcp::ErrorData::invalid_params(format!("no tool named {}", request.name), None));
        };
        let args = request.arguments.unwrap_or_default();
        let result = match (def.argv)(&args) {
            Err(e) => CallToolResult::error(vec![ContentBlock::text(e)]),
            Ok(argv) => {
                let _turn = self.1.acquire().await.map_err(|_| rmcp::ErrorData::internal_error("closing", None))?;
                // A call the client cancels stops its command (dropped, killed).
                let run = tokio::select! {
                    r = self.0.run(&argv, def.timeout) => r,
                    () = context.ct.cancelled() => Err("canceled by the client".to_owned()),
                };
                match run {
                    Ok(out) => CallToolResult::success(vec![ContentBlock::text(out)]),
                    Err(e) => CallToolResult::error(vec![ContentBlock::text(e)]),
                }
            }
        };
        Ok(result.into())
    }
}
