//! One running MCP server: the child process (its own process group, in
//! the tools' sandbox where there is one) and the rmcp client over its
//! stdin and stdout.

use std::path::{Path, PathBuf};
use std::time::Duration;

use alp_agent::tools::{Sandbox, allowed_env};
use alp_profiles::mcp::McpSpec;
use rmcp::ServiceExt;
use rmcp::service::{RoleClient, RunningService};
use tokio::io::AsyncReadExt;

use crate::cache::{Cached, CachedTool, MAX_TOOLS};

/// Longest a server may take to start and list its tools (or its call
/// timeout, if shorter).
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Most pages of tools read from a server.
const MAX_PAGES: usize = 16;
/// What is kept of a server's stderr, for errors.
const STDERR_TAIL: usize = 2048;

/// How to start one server.
#[derive(Debug, Clone)]
pub struct Launch {
    pub name: String,
    pub spec: McpSpec,
    /// Where it works (its current directory; with its own `HOME`, the
    /// only places it may write in the sandbox).
    pub workspace: PathBuf,
    /// Its own `HOME` (caches, settings), out of the workspace so that a
    /// tool writing files there cannot change what the server runs.
    pub home: PathBuf,
    /// It runs for a peer: only in a sandbox.
    pub require_sandbox: bool,
}

impl Launch {
    /// `cache_dir` is the profile's MCP directory; the server's `HOME` is
    /// made under it.
    pub fn new(name: &str, spec: &McpSpec, workspace: &Path, cache_dir: &Path) -> Self {
        Launch {
            name: name.to_owned(),
            spec: spec.clone(),
            workspace: workspace.to_owned(),
            home: cache_dir.join("home").join(name),
            require_sandbox: false,
        }
    }

    /// What the sandbox lets it read besides the system: `read` from the
    /// config, and every absolute path among its arguments: a file itself,
    /// a directory, or, for a file in a `node_modules`, that whole
    /// `node_modules` (where its dependencies are). Never `/`, the user's
    /// home, or anything holding alp's own files.
    fn readable(&self) -> Vec<PathBuf> {
        let home = std::env::var_os("HOME").map(PathBuf::from);
        let alp = self.home.ancestors().nth(5).map(Path::to_owned); // <home>/profiles/P/mcp/home/NAME
        let too_wide = |p: &Path| {
            p.parent().is_none()
                || home.as_deref() == Some(p)
                || alp.as_deref().is_some_and(|a| a.starts_with(p) || p.starts_with(a))
        };
        let mut dirs = self.spec.read.clone();
        for arg in &self.spec.command {
            let path = Path::new(arg);
            if !path.is_absolute() || !path.exists() {
                continue;
            }
            let modules = path.ancestors().find(|a| a.file_name().is_some_and(|n| n == "node_modules"));
            let p = modules.unwrap_or(path);
            if too_wide(p) {
                tracing::warn!(server = %self.name, path = %p.display(), "not made readable in the sandbox: too wide");
                continue;
            }
            dirs.push(p.to_owned());
        }
        dirs
    }

    /// Starts the server (or, for an HTTP server, connects to it) and
    /// completes the MCP handshake.
    pub async fn start(&self) -> Result<Connection, String> {
        let name = &self.name;
        if let Some(url) = &self.spec.url {
            return self.connect(url).await;
        }
        let (program, args) =
            self.spec.command.split_first().ok_or_else(|| format!("MCP server {name} has no command"))?;
        // Not probed first (a probe costs another bwrap start): where bwrap
        // cannot make namespaces, the start fails with its error, and
        // `sandbox = false` in the server's table is the way out.
        let sandbox = if self.spec.sandbox { Sandbox::find(self.spec.network) } else { None };
        if sandbox.is_none() && self.require_sandbox {
            return Err(format!(
                "MCP server {name} runs for peers only in a sandbox, and {}",
                if self.spec.sandbox { "bubblewrap is not installed here" } else { "its table says sandbox = false" }
            ));
        }
        std::fs::create_dir_all(&self.home)
            .map_err(|e| format!("MCP server {name}: cannot make its home {}: {e}", self.home.display()))?;
        let mut cmd = match &sandbox {
            Some(s) => {
                let mut c = tokio::process::Command::new(s.program());
                c.args(s.args_for(&self.workspace, &self.readable(), std::slice::from_ref(&self.home), &self.home))
                    .arg(program)
                    .args(args);
                c
            }
            None => {
                let mut c = tokio::process::Command::new(program);
                c.args(args);
                c
            }
        };
        cmd.current_dir(&self.workspace)
            .env_clear()
            .env("HOME", &self.home)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        cmd.envs(allowed_env()).envs(&self.spec.env);
        let mut child = cmd.spawn().map_err(|e| format!("MCP server {name}: cannot run {program}: {e}"))?;
        let group = child.id();
        let (Some(stdin), Some(stdout), Some(mut stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(format!("MCP server {name}: no pipes to the process"));
        };
        // Keeps the end of what it says on stderr, for errors.
        let tail = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
        let keep = tail.clone();
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 1024];
            while let Ok(n) = stderr.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                let mut t = keep.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                t.extend_from_slice(&buf[..n]);
                let over = t.len().saturating_sub(STDERR_TAIL);
                t.drain(..over);
            }
        });
        let mut conn = Connection {
            name: name.clone(),
            client: None,
            child: Some(child),
            group,
            tail,
            reader: Some(reader),
            timeout: self.spec.timeout.0,
            hung: false,
        };
        let start = START_TIMEOUT.min(self.spec.timeout.0);
        let client = match tokio::time::timeout(start, Progress(name.clone()).serve((stdout, stdin))).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return Err(conn.failure(&format!("did not complete the MCP handshake ({e})")).await),
            Err(_) => {
                return Err(conn.failure(&format!("did not answer within {}s of starting", start.as_secs())).await);
            }
        };
        conn.client = Some(client);
        tracing::info!(server = %name, sandboxed = sandbox.is_some(), "MCP server started");
        Ok(conn)
    }
}

impl Launch {
    /// Connects to a streamable HTTP server: https, or plain http on this
    /// machine only (as for model downloads).
    async fn connect(&self, url: &str) -> Result<Connection, String> {
        let name = &self.name;
        alp_agent::fetch::check_url(url).map_err(|e| format!("MCP server {name}: {e}"))?;
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let transport = rmcp::transport::StreamableHttpClientTransport::from_uri(url.to_owned());
        let start = START_TIMEOUT.min(self.spec.timeout.0);
        let client = match tokio::time::timeout(start, Progress(name.clone()).serve(transport)).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return Err(format!("MCP server {name} at {url} did not complete the MCP handshake ({e})")),
            Err(_) => return Err(format!("MCP server {name} at {url} did not answer within {}s", start.as_secs())),
        };
        Ok(Connection {
            name: name.clone(),
            client: Some(client),
            child: None,
            group: None,
            tail: Default::default(),
            reader: None,
            timeout: self.spec.timeout.0,
            hung: false,
        })
    }
}

/// What alp does with what a server tells it unasked: progress of a long
/// call goes to the log (`-v`), naming the server.
#[derive(Debug, Clone)]
pub(crate) struct Progress(String);

impl rmcp::ClientHandler for Progress {
    async fn on_progress(
        &self,
        params: rmcp::model::ProgressNotificationParam,
        _context: rmcp::service::NotificationContext<RoleClient>,
    ) {
        let total = params.total.map_or(String::new(), |t| format!("/{t}"));
        let message = params.message.unwrap_or_default();
        tracing::info!(server = %self.0, "MCP progress {}{total} {message}", params.progress);
    }
}

/// A started server. Dropping it kills its whole process group.
pub struct Connection {
    name: String,
    client: Option<RunningService<RoleClient, Progress>>,
    /// The process of a stdio server.
    child: Option<tokio::process::Child>,
    group: Option<u32>,
    tail: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    /// The task keeping `tail`, done once the process's stderr closes.
    reader: Option<tokio::task::JoinHandle<()>>,
    timeout: Duration,
    /// A call ran out of time: the server is not asked again.
    hung: bool,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection").field("name", &self.name).field("group", &self.group).finish_non_exhaustive()
    }
}

impl Connection {
    /// An error naming the server, with what it said on stderr and how it
    /// ended, if it did.
    async fn failure(&mut self, what: &str) -> String {
        // A broken pipe comes a moment before the exit status.
        let status = match self.child.as_mut() {
            Some(child) => {
                tokio::time::timeout(Duration::from_millis(300), child.wait()).await.ok().and_then(Result::ok)
            }
            None => None,
        };
        let exited = match status {
            Some(status) => {
                // Its last words may still be on their way through the pipe.
                if let Some(reader) = self.reader.take() {
                    let _ = tokio::time::timeout(Duration::from_millis(500), reader).await;
                }
                format!("; it exited ({status})")
            }
            _ => String::new(),
        };
        let tail = self.tail.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        let said = String::from_utf8_lossy(&tail);
        let said = said.trim();
        let said = match said {
            "" => String::new(),
            s if s.contains("bwrap:") => format!(
                "; the sandbox says: {s} (where bubblewrap cannot run, set sandbox = false in [mcp.{}])",
                self.name
            ),
            s => format!("; its last words: {s}"),
        };
        format!("MCP server {} {what}{exited}{said}", self.name)
    }

    fn client(&self) -> Result<&RunningService<RoleClient, Progress>, String> {
        self.client.as_ref().ok_or_else(|| format!("MCP server {} is not connected", self.name))
    }

    /// Its tools, checked and bounded.
    pub async fn list(&mut self) -> Result<Cached, String> {
        // Page by page, up to MAX_TOOLS (a server cannot make alp collect
        // without end).
        let mut listed = Vec::new();
        let mut cursor = None;
        for _ in 0..MAX_PAGES {
            let params = rmcp::model::PaginatedRequestParams::default().with_cursor(cursor.take());
            let page =
                match tokio::time::timeout(START_TIMEOUT.min(self.timeout), self.client()?.list_tools(Some(params)))
                    .await
                {
                    Ok(Ok(p)) => p,
                    Ok(Err(e)) => return Err(self.failure(&format!("could not list its tools ({e})")).await),
                    Err(_) => return Err(self.failure("did not list its tools in time").await),
                };
            listed.extend(page.tools);
            cursor = page.next_cursor;
            if cursor.is_none() || listed.len() >= MAX_TOOLS {
                break;
            }
        }
        let mut tools: Vec<CachedTool> = Vec::new();
        for t in listed.iter().take(MAX_TOOLS) {
            let json = serde_json::to_value(t).unwrap_or_default();
            match CachedTool::from_listed(&json) {
                Some(c) if !tools.iter().any(|o| o.local == c.local) && self.name.len() + 2 + c.local.len() <= 64 => {
                    tools.push(c)
                }
                _ => tracing::warn!(server = %self.name, tool = %t.name, "a tool that cannot be offered was left out"),
            }
        }
        Ok(Cached { tools })
    }

    /// Calls `tool` with `args`; the text of its result, or an error for
    /// the model (the tool's own error, or why the server failed).
    pub async fn call(
        &mut self,
        tool: &str,
        args: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<String, String> {
        let mut params = rmcp::model::CallToolRequestParams::new(tool.to_owned());
        params.arguments = Some(args.clone());
        // Long calls report progress (shown with -v).
        rmcp::model::RequestParamsMeta::set_progress_token(
            &mut params,
            rmcp::model::ProgressToken(rmcp::model::NumberOrString::Number(1)),
        );
        let result = match tokio::time::timeout(self.timeout, self.client()?.call_tool(params)).await {
            Ok(Ok(r)) => r,
            // The server answered with an error: its message, nothing more.
            Ok(Err(rmcp::ServiceError::McpError(e))) => {
                return Err(format!("MCP server {} refused {tool}: {}", self.name, e.message));
            }
            Ok(Err(e)) => return Err(self.failure(&format!("failed the call to {tool} ({e})")).await),
            Err(_) => {
                self.hung = true;
                return Err(self.failure(&format!("did not answer {tool} within {}s", self.timeout.as_secs())).await);
            }
        };
        let json = serde_json::to_value(&result).unwrap_or_default();
        let text = content_text(&json);
        if json.get("isError").and_then(|v| v.as_bool()).unwrap_or(false) { Err(text) } else { Ok(text) }
    }

    /// The text of resource `uri`.
    pub async fn read_resource(&mut self, uri: &str) -> Result<String, String> {
        let params = rmcp::model::ReadResourceRequestParams::new(uri.to_owned());
        let result = match tokio::time::timeout(self.timeout, self.client()?.read_resource(params)).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => return Err(self.failure(&format!("could not read {uri} ({e})")).await),
            Err(_) => return Err(self.failure(&format!("did not return {uri} in time")).await),
        };
        let json = serde_json::to_value(&result).unwrap_or_default();
        let parts: Vec<String> = json
            .get("contents")
            .and_then(|c| c.as_array())
            .map(|items| {
                items
                    .iter()
                    .map(|c| match c.get("text").and_then(|t| t.as_str()) {
                        Some(t) => t.to_owned(),
                        None => format!("[binary content of {uri}]"),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(parts.join("\n"))
    }

    /// Whether the server is still of use: running (an HTTP server: its
    /// session open), and it answered its last call in time.
    pub fn alive(&mut self) -> bool {
        if self.hung {
            return false;
        }
        let session = self.client.as_ref().is_some_and(|c| !c.is_closed());
        match &mut self.child {
            Some(child) => session && matches!(child.try_wait(), Ok(None)),
            None => session,
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        if let Some(pid) = self.group
            && let Ok(pid) = i32::try_from(pid)
        {
            let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        }
    }
}

/// A tool result's content as text: text items as they are, others named.
fn content_text(result: &serde_json::Value) -> String {
    let Some(items) = result.get("content").and_then(|c| c.as_array()) else {
        return result.get("structuredContent").map(ToString::to_string).unwrap_or_default();
    };
    let parts: Vec<String> = items
        .iter()
        .map(|item| match item.get("type").and_then(|t| t.as_str()) {
            Some("text") => item.get("text").and_then(|t| t.as_str()).unwrap_or_default().to_owned(),
            Some("image") => format!("[image, {}]", item.get("mimeType").and_then(|m| m.as_str()).unwrap_or("?")),
            Some("audio") => format!("[audio, {}]", item.get("mimeType").and_then(|m| m.as_str()).unwrap_or("?")),
            Some("resource") => item
                .pointer("/resource/text")
                .and_then(|t| t.as_str())
                .map(str::to_owned)
                .unwrap_or_else(|| "[embedded resource]".into()),
            Some("resource_link") => {
                format!("[resource {}]", item.get("uri").and_then(|u| u.as_str()).unwrap_or("?"))
            }
            _ => item.to_string(),
        })
        .collect();
    parts.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_read_as_text() {
        let r = serde_json::json!({"content": [
            {"type": "text", "text": "a"}, {"type": "image", "mimeType": "image/png", "data": "xx"},
            {"type": "resource", "resource": {"uri": "x://1", "text": "inner"}}
        ]});
        assert_eq!(content_text(&r), "a\n[image, image/png]\ninner");
        assert_eq!(content_text(&serde_json::json!({"structuredContent": {"n": 1}})), r#"{"n":1}"#);
    }
}
