//! `alp wg dashboard`: a page on this machine that draws each group's
//! tasks as a graph (an SVG made here, no script), with their status,
//! members and spend, refreshed every two seconds.
//!
//! It listens on loopback only, and every path starts with a random token
//! printed once, so another user of the machine cannot read it; it reads
//! the running node through the control socket, as `alp wg status` does,
//! and changes nothing.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::wg::Control;
use crate::ctx::Ctx;
use crate::error::{CliResult, usage};
use crate::say::status;
use crate::wg::api::Request;

/// Largest request read.
const MAX_REQUEST: usize = 8 << 10;

pub(crate) fn serve(ctx: &Ctx, node: Control, listen: SocketAddr) -> CliResult {
    if !listen.ip().is_loopback() {
        return Err(usage(format!("the dashboard listens on this machine only: {listen} is not a loopback address")));
    }
    let mut token = [0u8; 16];
    getrandom::fill(&mut token).map_err(|e| std::io::Error::other(e.to_string()))?;
    let token = alp_profiles::hex(&token);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let url = format!("http://{}/{token}/", listener.local_addr()?);
        status!("dashboard of profile '{}' at {url} (Ctrl-C stops it)", ctx.profile);
        ctx.print(&url)?;
        let node = std::sync::Arc::new(node);
        // A few pages at a time; more wait for their turn.
        let turns = std::sync::Arc::new(tokio::sync::Semaphore::new(4));
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((stream, _)) = accepted else {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    };
                    let Ok(turn) = turns.clone().acquire_owned().await else { return Ok(()) };
                    let (node, token) = (node.clone(), token.clone());
                    tokio::spawn(async move {
                        let _ = tokio::time::timeout(Duration::from_secs(10), answer(stream, &node, &token)).await;
                        drop(turn);
                    });
                }
                _ = tokio::signal::ctrl_c() => return Ok(()),
            }
        }
    })
}

async fn answer(mut stream: tokio::net::TcpStream, node: &std::sync::Arc<Control>, token: &str) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < MAX_REQUEST {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let line = String::from_utf8_lossy(&buf);
    let path = line.lines().next().and_then(|l| l.strip_prefix("GET ")).and_then(|l| l.split(' ').next()).unwrap_or("");
    // The token compared in constant time.
    let given = path.strip_prefix('/').and_then(|p| p.get(..token.len())).unwrap_or("");
    let matches = given.len() == token.len()
        && given.bytes().zip(token.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
        && path.as_bytes().get(token.len() + 1) == Some(&b'/');
    let (status, body) = match path.get(token.len() + 2..).filter(|_| matches) {
        None => ("404 Not Found", page("not found", "<p>Nothing here.</p>")),
        Some(rest) => {
            let node = node.clone();
            let rest = rest.to_owned();
            tokio::task::spawn_blocking(move || route(&node, &rest))
                .await
                .unwrap_or_else(|_| ("500 Internal Server Error", page("error", "<p>The page failed.</p>")))
        }
    };
    let head = format!(
        "HTTP/1.1 {status}\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: {}\r\n\
         content-security-policy: default-src 'none'; style-src 'unsafe-inline'\r\n\
         x-content-type-options: nosniff\r\ncache-control: no-store\r\nconnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}

/// The page for a path below the token: the list of groups, or one group.
fn route(node: &Control, rest: &str) -> (&'static str, String) {
    match rest.strip_prefix("g/") {
        None => match node.call(&Request::List) {
            Ok(v) => ("200 OK", page("workgroups", &groups_html(&v))),
            Err(e) => ("503 Service Unavailable", page("no node", &format!("<p>{}</p>", esc(&e.error.to_string())))),
        },
        Some(group) => match node.call(&Request::Status { group: group.to_owned(), task: None }) {
            Ok(v) => ("200 OK", page(v["name"].as_str().unwrap_or("group"), &group_html(&v))),
            Err(e) => ("404 Not Found", page("no such group", &format!("<p>{}</p>", esc(&e.error.to_string())))),
        },
    }
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"2\">\
         <title>alp · {}</title><style>{STYLE}</style></head><body><h1>{}</h1>{body}</body></html>",
        esc(title),
        esc(title)
    )
}

const STYLE: &str = "body{font:14px system-ui,sans-serif;margin:24px;color:#222}table{border-collapse:collapse}\
td,th{padding:4px 10px;border-bottom:1px solid #ddd;text-align:left}.task rect{stroke:#555;rx:6}\
.status-completed rect{fill:#cfeecf}.status-failed rect,.status-canceled rect,.status-rejected rect{fill:#f6cccc}\
.status-working rect,.status-input-required rect{fill:#fde9b8}.status-waiting rect{fill:#eee}.status-submitted rect{fill:#dde8fb}\
.edge{stroke:#777;stroke-width:1.5;marker-end:url(#arrow)}.edge.optional{stroke-dasharray:4 3}";

fn groups_html(list: &Value) -> String {
    let mut out = String::from("<ul>");
    for g in list.as_array().into_iter().flatten() {
        let id = g["id"].as_str().unwrap_or_default();
        let _ = write!(out, "<li><a href=\"g/{}\">{}</a></li>", esc(id), esc(g["name"].as_str().unwrap_or(id)));
    }
    out.push_str("</ul>");
    out
}

/// A group: its task graph, then its tasks and members as tables.
fn group_html(v: &Value) -> String {
    let tasks: Vec<&Value> = v["tasks"].as_array().into_iter().flatten().collect();
    let mut out = graph_svg(&tasks);
    out.push_str("<h2>Tasks</h2><table><tr><th>task</th><th>goal</th><th>status</th><th>by</th><th>tokens</th></tr>");
    for t in &tasks {
        let _ = write!(
            out,
            "<tr class=\"status-{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(t["status"].as_str().unwrap_or_default()),
            esc(short(t["id"].as_str().unwrap_or_default())),
            esc(t["goal"].as_str().unwrap_or_default()),
            esc(t["status"].as_str().unwrap_or_default()),
            esc(t["output_by"].as_str().or(t["assignee"].as_str()).unwrap_or("")),
            t["spent_tokens"].as_u64().unwrap_or(0)
        );
    }
    out.push_str("</table><h2>Members</h2><table><tr><th>member</th><th>roles</th><th>status</th></tr>");
    for m in v["members"].as_array().into_iter().flatten() {
        let roles: Vec<&str> = m["roles"].as_array().into_iter().flatten().filter_map(|r| r.as_str()).collect();
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(m["name"].as_str().unwrap_or_default()),
            esc(&roles.join(", ")),
            esc(m["status"].as_str().unwrap_or_default())
        );
    }
    out.push_str("</table>");
    out
}

/// The tasks as a layered graph: a task's column is one more than the
/// deepest task it waits for; edges run from a task to those waiting for it.
fn graph_svg(tasks: &[&Value]) -> String {
    let ids: Vec<&str> = tasks.iter().map(|t| t["id"].as_str().unwrap_or_default()).collect();
    // Position by id, so that a large group lays out in linear time.
    let index: std::collections::HashMap<&str, usize> = ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
    let after = |t: &Value| -> Vec<(String, bool)> {
        t["after"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|a| Some((a["task"].as_str()?.to_owned(), a["optional"].as_bool().unwrap_or(false))))
            .collect()
    };
    // Tasks come in creation order, so what a task waits for comes first.
    let mut column: Vec<usize> = Vec::with_capacity(tasks.len());
    for t in tasks {
        let c = after(t)
            .iter()
            .filter_map(|(d, _)| index.get(d.as_str()).and_then(|p| column.get(*p)).map(|c| c + 1))
            .max()
            .unwrap_or(0);
        column.push(c);
    }
    let mut row_of = vec![0usize; tasks.len()];
    let mut rows = std::collections::BTreeMap::<usize, usize>::new();
    for (i, c) in column.iter().enumerate() {
        let r = rows.entry(*c).or_default();
        row_of[i] = *r;
        *r += 1;
    }
    let (w, h) = (200usize, 64usize);
    let at = |i: usize| (20 + column[i] * (w + 60), 20 + row_of[i] * (h + 30));
    let width = 40 + (column.iter().max().copied().unwrap_or(0) + 1) * (w + 60);
    let height = 40 + rows.values().max().copied().unwrap_or(1) * (h + 30);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" role=\"img\" aria-label=\"task graph\">\
         <defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"6\" markerHeight=\"6\" orient=\"auto\">\
         <path d=\"M0,0 L10,5 L0,10 z\" fill=\"#777\"/></marker></defs>"
    );
    for (i, t) in tasks.iter().enumerate() {
        for (dep, optional) in after(t) {
            let Some(&d) = index.get(dep.as_str()) else { continue };
            let ((x1, y1), (x2, y2)) = (at(d), at(i));
            let _ = write!(
                svg,
                "<line class=\"edge{}\" data-from=\"{}\" data-to=\"{}\" x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\"/>",
                if optional { " optional" } else { "" },
                esc(short(&dep)),
                esc(short(ids[i])),
                x1 + w,
                y1 + h / 2,
                x2,
                y2 + h / 2
            );
        }
    }
    for (i, t) in tasks.iter().enumerate() {
        let (x, y) = at(i);
        let status = t["status"].as_str().unwrap_or_default();
        let goal: String = t["goal"].as_str().unwrap_or_default().chars().take(28).collect();
        let who = t["output_by"].as_str().or(t["assignee"].as_str()).or(t["role"].as_str()).unwrap_or("");
        let _ = write!(
            svg,
            "<g class=\"task status-{s}\" data-task=\"{id}\"><title>{full}</title><rect x=\"{x}\" y=\"{y}\" width=\"{w}\" height=\"{h}\"/>\
             <text x=\"{tx}\" y=\"{ty}\">{goal}</text><text x=\"{tx}\" y=\"{ty2}\" font-size=\"12\">{s} · {who}</text></g>",
            s = esc(status),
            id = esc(short(ids[i])),
            full = esc(t["goal"].as_str().unwrap_or_default()),
            tx = x + 10,
            ty = y + 26,
            ty2 = y + 46,
            goal = esc(&goal),
            who = esc(who),
        );
    }
    svg.push_str("</svg>");
    svg
}

fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// Text as HTML: nothing from a group (goals are anyone's words) can
/// become markup.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_graph_lays_tasks_out_by_what_they_wait_for_and_escapes_everything() {
        let tasks = serde_json::json!([
            {"id": "aaaaaaaaaaaa1", "goal": "<script>alert(1)</script>", "status": "completed", "after": []},
            {"id": "bbbbbbbbbbbb2", "goal": "write", "status": "waiting", "after": [{"task": "aaaaaaaaaaaa1", "optional": false}]},
            {"id": "cccccccccccc3", "goal": "check", "status": "waiting", "after": [{"task": "aaaaaaaaaaaa1", "optional": true}]}
        ]);
        let list: Vec<&Value> = tasks.as_array().unwrap().iter().collect();
        let svg = graph_svg(&list);
        assert!(!svg.contains("<script>") && svg.contains("&lt;script&gt;"));
        assert_eq!(svg.matches("class=\"edge").count(), 2);
        assert!(svg.contains("class=\"edge optional\""));
        assert!(svg.contains("data-from=\"aaaaaaaaaaaa\" data-to=\"bbbbbbbbbbbb\""));
        // Both dependents sit in the second column, one under the other.
        assert!(svg.contains("<rect x=\"280\" y=\"20\"") && svg.contains("<rect x=\"280\" y=\"114\""), "{svg}");
    }
}
