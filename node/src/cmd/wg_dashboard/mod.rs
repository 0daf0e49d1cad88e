//! `alp ui` (also `alp wg dashboard`): a page on this machine that draws
//! each group's task graph with live states, spend against budgets, who
//! is online, what awaits approval (approve or deny from the page), and
//! whether the log verifies.
//!
//! - It listens on loopback unless told otherwise (then it warns), and
//!   every path starts with a random token printed once: another user of
//!   the machine, or a web page in the browser, cannot read or act on it.
//! - Changes come as server-sent events: the page subscribes to the
//!   node's stream of the group's events and fetches the live part of the
//!   page again (rendered and escaped here) after each.
//! - Approving is a POST of JSON to a path under the token, with the
//!   Origin (if sent) and Host of this address: a cross-site page can
//!   neither know the token nor send JSON without a preflight that is
//!   never granted.
//! - Nothing comes from the network: the one script is embedded.

mod html;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::Semaphore;

use super::wg::Control;
use crate::ctx::Ctx;
use crate::error::CliResult;
use crate::say::status;
use crate::wg::api::Request;

/// Largest request head read.
const MAX_HEAD: usize = 8 << 10;
/// Largest request body (a decision).
const MAX_BODY: usize = 4 << 10;
/// Pages answered at once.
const PAGES: usize = 4;
/// Event streams open at once.
const STREAMS: usize = 16;
/// Connections open at once; more are closed as they come.
const CONNECTIONS: usize = 64;
/// A comment on an idle event stream this often keeps it open.
const HEARTBEAT: Duration = Duration::from_secs(15);

const APP_JS: &str = include_str!("app.js");

/// The dashboard: its address, the token every path starts with.
struct Ui {
    node: Control,
    token: String,
    host: String,
    /// Listening on every address: any `Host` with this port is ours.
    any_host_port: Option<u16>,
}

/// `alp ui` / `alp wg dashboard`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct UiArgs {
    /// Where to listen; another interface than loopback exposes the page (guarded by its token) to the network
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    pub(crate) listen: SocketAddr,
}

pub(crate) fn serve(ctx: &Ctx, node: Control, listen: SocketAddr) -> CliResult {
    if !listen.ip().is_loopback() {
        status!(
            "warning: the dashboard listens on {listen}, not only on this machine: anyone who can reach it and learns \
             its address (token included) can read the groups and approve or deny"
        );
    }
    let mut token = [0u8; 16];
    getrandom::fill(&mut token).map_err(|e| std::io::Error::other(e.to_string()))?;
    let token = alp_profiles::hex(&token);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let host = listener.local_addr()?.to_string();
        let url = format!("http://{host}/{token}/");
        status!("dashboard of profile '{}' at {url} (Ctrl-C stops it)", ctx.profile);
        ctx.print(&url)?;
        let bound = listener.local_addr()?;
        let any_host_port = bound.ip().is_unspecified().then_some(bound.port());
        let ui = Arc::new(Ui { node, token, host, any_host_port });
        let pages = Arc::new(Semaphore::new(PAGES));
        let streams = Arc::new(Semaphore::new(STREAMS));
        let connections = Arc::new(Semaphore::new(CONNECTIONS));
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((stream, _)) = accepted else {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    };
                    let Ok(slot) = connections.clone().try_acquire_owned() else { continue };
                    let (ui, pages, streams) = (ui.clone(), pages.clone(), streams.clone());
                    tokio::spawn(async move {
                        let _ = connection(stream, &ui, pages, streams).await;
                        drop(slot);
                    });
                }
                _ = tokio::signal::ctrl_c() => return Ok(()),
            }
        }
    })
}

impl Ui {
    /// Whether `host` (a `Host` header) names this dashboard: its address,
    /// or, listening on every address, an IP address with its port (never
    /// a name, which a rebinding page could point here).
    fn is_ours(&self, host: &str) -> bool {
        if host == self.host {
            return true;
        }
        let Some(port) = self.any_host_port else { return false };
        host.parse::<SocketAddr>().is_ok_and(|a| a.port() == port)
    }
}

/// One request (the connection closes after it).
struct Req {
    method: String,
    /// The path below the token, if the token was right.
    rest: Option<String>,
    origin: Option<String>,
    host: Option<String>,
    json: bool,
    body: Vec<u8>,
}

async fn read_request(stream: &mut tokio::net::TcpStream, token: &str) -> std::io::Result<Option<Req>> {
    let mut reader = BufReader::new(stream.take((MAX_HEAD + MAX_BODY) as u64));
    let mut head = Vec::new();
    let mut line = String::new();
    let mut read = 0;
    loop {
        line.clear();
        read += reader.read_line(&mut line).await?;
        if line.is_empty() || read > MAX_HEAD {
            return Ok(None);
        }
        if line == "\r\n" || line == "\n" {
            break;
        }
        head.push(line.trim_end().to_owned());
    }
    let Some(first) = head.first() else { return Ok(None) };
    let mut parts = first.split(' ');
    let (method, path) = (parts.next().unwrap_or("").to_owned(), parts.next().unwrap_or(""));
    let header = |name: &str| {
        head.iter().skip(1).find_map(|h| {
            let (k, v) = h.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    };
    let length: usize = header("content-length").and_then(|l| l.parse().ok()).unwrap_or(0);
    if length > MAX_BODY {
        return Ok(None);
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).await?;
    // The token, compared in constant time.
    let given = path.strip_prefix('/').and_then(|p| p.get(..token.len())).unwrap_or("");
    let matches = given.len() == token.len()
        && given.bytes().zip(token.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
        && path.as_bytes().get(token.len() + 1) == Some(&b'/');
    let rest = path.get(token.len() + 2..).filter(|_| matches).map(str::to_owned);
    let json = header("content-type").is_some_and(|c| c.split(';').next() == Some("application/json"));
    Ok(Some(Req { method, rest, origin: header("origin"), host: header("host"), json, body }))
}

async fn connection(
    mut stream: tokio::net::TcpStream,
    ui: &Arc<Ui>,
    pages: Arc<Semaphore>,
    streams: Arc<Semaphore>,
) -> std::io::Result<()> {
    let Ok(Ok(Some(req))) = tokio::time::timeout(Duration::from_secs(10), read_request(&mut stream, &ui.token)).await
    else {
        return Ok(());
    };
    // A page whose Host is not this address (DNS rebinding) gets nothing.
    let host_ok = req.host.as_deref().is_some_and(|h| ui.is_ours(h));
    let Some(rest) = req.rest.clone().filter(|_| host_ok) else {
        return respond(
            &mut stream,
            "404 Not Found",
            "text/html",
            &html::page(&ui.token, "not found", "<p>Nothing here.</p>", false),
        )
        .await;
    };
    if req.method == "GET"
        && let Some(group) = rest.strip_prefix("g/").and_then(|g| g.strip_suffix("/events"))
    {
        let Ok(_turn) = streams.try_acquire_owned() else {
            return respond(&mut stream, "503 Service Unavailable", "text/plain", "too many open streams").await;
        };
        return events(stream, ui, group).await;
    }
    let Ok(_turn) = pages.acquire_owned().await else { return Ok(()) };
    let answer = {
        let ui = ui.clone();
        tokio::task::spawn_blocking(move || route(&ui, &req, &rest))
    };
    let (status, kind, body) = match tokio::time::timeout(Duration::from_secs(20), answer).await {
        Ok(Ok(a)) => a,
        _ => {
            ("500 Internal Server Error", "text/html", html::page(&ui.token, "error", "<p>The page failed.</p>", false))
        }
    };
    respond(&mut stream, status, kind, &body).await
}

/// Writes the answer, or gives up on a reader too slow to take it.
async fn respond(stream: &mut tokio::net::TcpStream, status: &str, kind: &str, body: &str) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {kind}; charset=utf-8\r\ncontent-length: {}\r\n{SECURITY}connection: close\r\n\r\n",
        body.len()
    );
    let write = async {
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body.as_bytes()).await?;
        stream.shutdown().await
    };
    tokio::time::timeout(Duration::from_secs(10), write)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "the reader is too slow"))?
}

/// Headers on every answer: no script but ours, no framing, no sniffing,
/// no caching.
const SECURITY: &str = "content-security-policy: default-src 'none'; script-src 'self'; connect-src 'self'; \
    style-src 'unsafe-inline'; img-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'\r\n\
    x-content-type-options: nosniff\r\nreferrer-policy: no-referrer\r\ncache-control: no-store\r\n";

type Answer = (&'static str, &'static str, String);

/// Everything but the event stream.
fn route(ui: &Ui, req: &Req, rest: &str) -> Answer {
    let html = "text/html";
    let page = |title: &str, body: &str, live: bool| html::page(&ui.token, title, body, live);
    match (req.method.as_str(), rest) {
        ("GET", "" | "live") => {
            let list = ui.node.call(&Request::List);
            let overview = ui.node.call(&Request::Node);
            match (list, overview) {
                (Ok(list), Ok(overview)) if rest == "live" => ("200 OK", html, html::index_live(&list, &overview)),
                (Ok(list), Ok(overview)) => {
                    let base = format!("/{}", ui.token);
                    ("200 OK", html, page("this node", &html::index(&base, &list, &overview), true))
                }
                (Err(e), _) | (_, Err(e)) => {
                    let text = format!("<p>{}</p>", html::esc(&e.error.to_string()));
                    ("503 Service Unavailable", html, page("no node", &text, false))
                }
            }
        }
        ("GET", "app.js") => ("200 OK", "text/javascript", APP_JS.to_owned()),
        ("POST", path) if path.starts_with("g/") && path.ends_with("/decide") => decide(ui, req),
        ("GET", path) if path.starts_with("g/") => {
            let path = &path[2..];
            let (group, fragment) = match path.strip_suffix("/live") {
                Some(g) => (g, true),
                None => (path, false),
            };
            let view = match ui.node.call(&Request::Status { group: group.to_owned(), task: None }) {
                Ok(v) => v,
                Err(e) => {
                    return (
                        "404 Not Found",
                        html,
                        page("no such group", &format!("<p>{}</p>", html::esc(&e.error.to_string())), false),
                    );
                }
            };
            if fragment {
                return ("200 OK", html, html::live(&view));
            }
            let verified = ui
                .node
                .call(&Request::Verify { group: group.to_owned() })
                .unwrap_or_else(|e| serde_json::json!({"ok": false, "problem": e.error.to_string()}));
            let base = format!("/{}/g/{group}", ui.token);
            (
                "200 OK",
                html,
                page(view["name"].as_str().unwrap_or("group"), &html::group_page(&base, &view, &verified), true),
            )
        }
        _ => ("404 Not Found", html, page("not found", "<p>Nothing here.</p>", false)),
    }
}

/// An approval or denial from the page, signed by this profile.
fn decide(ui: &Ui, req: &Req) -> Answer {
    let json = "application/json";
    let refuse = |status, message: &str| (status, json, serde_json::json!({"message": message}).to_string());
    // Cross-site requests: a browser sends Origin with every POST; it
    // must be this page's. JSON cannot be sent cross-site without a
    // preflight, which is never granted.
    let ours = format!("http://{}", req.host.as_deref().unwrap_or_default());
    if req.origin.as_deref().is_some_and(|o| o != ours) || !req.json {
        return refuse("403 Forbidden", "only the dashboard's own page may decide");
    }
    let Ok(v) = serde_json::from_slice::<Value>(&req.body) else {
        return refuse("400 Bad Request", "send {\"id\", \"approve\", \"reason\"} as JSON");
    };
    let (Some(id), Some(approve)) = (v["id"].as_str(), v["approve"].as_bool()) else {
        return refuse("400 Bad Request", "send {\"id\", \"approve\", \"reason\"} as JSON");
    };
    let mut reason = v["reason"].as_str().unwrap_or_default().to_owned();
    let mut end = reason.len().min(alp_workgroup::body::MAX_ACTION);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason.truncate(end);
    match ui.node.call(&Request::Decide { subject: id.to_owned(), approve, reason }) {
        Ok(a) => {
            let verdict = a["verdict"].as_str().unwrap_or_default();
            let what: String = a["action"].as_str().unwrap_or_default().chars().take(80).collect();
            let message = match (approve, verdict) {
                (true, "approved") => format!("approved: {what}"),
                (true, _) => format!("approval recorded: {what}"),
                (false, _) => format!("denied: {what}"),
            };
            ("200 OK", json, serde_json::json!({"message": message, "event": a["event"]}).to_string())
        }
        Err(e) => refuse("409 Conflict", &e.error.to_string()),
    }
}

/// Server-sent events: one `change` per event of the group, as the node
/// streams them, and a comment every [`HEARTBEAT`] while idle.
async fn events(mut stream: tokio::net::TcpStream, ui: &Ui, group: &str) -> std::io::Result<()> {
    let socket = ui.node.socket().to_owned();
    let mut watch = tokio::net::UnixStream::connect(&socket).await?;
    let mut request = serde_json::to_vec(&Request::Watch { group: group.to_owned() }).map_err(std::io::Error::other)?;
    request.push(b'\n');
    watch.write_all(&request).await?;
    let mut lines = BufReader::new(watch).lines();
    // The node's first line says whether it watches.
    match lines.next_line().await? {
        Some(l) if l.starts_with("{\"ok\"") => {}
        _ => return respond(&mut stream, "404 Not Found", "text/plain", "no such group").await,
    }
    let head = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n{SECURITY}connection: close\r\n\r\nretry: 1000\n\n"
    );
    write_within(&mut stream, head.as_bytes()).await?;
    loop {
        match tokio::time::timeout(HEARTBEAT, lines.next_line()).await {
            Ok(Ok(Some(line))) => {
                let kind = serde_json::from_str::<Value>(&line)
                    .ok()
                    .and_then(|v| v["kind"].as_str().map(str::to_owned))
                    .unwrap_or_default();
                let kind: String = kind.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').collect();
                write_within(&mut stream, format!("data: {kind}\n\n").as_bytes()).await?;
            }
            Ok(_) => return Ok(()),
            Err(_) => write_within(&mut stream, b": idle\n\n").await?,
        }
    }
}

/// Writes to an event stream, or gives up on a reader that stopped reading.
async fn write_within(stream: &mut tokio::net::TcpStream, bytes: &[u8]) -> std::io::Result<()> {
    tokio::time::timeout(Duration::from_secs(10), stream.write_all(bytes))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "the reader stopped reading"))?
}
