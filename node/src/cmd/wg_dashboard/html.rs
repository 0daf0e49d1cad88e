//! The dashboard's HTML, made here from the node's JSON views. Every
//! field that came from a peer or a model goes through [`esc`]; the page
//! carries no inline script (the policy forbids it), only `app.js`.

use std::fmt::Write as _;

use serde_json::Value;

/// A whole page: `body` inside, `app.js` loaded when `live` (the group
/// page), a plain reload every few seconds for a browser without script.
pub(super) fn page(token: &str, title: &str, body: &str, live: bool) -> String {
    let script = if live { format!("<script src=\"/{token}/app.js\" defer></script>") } else { String::new() };
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\
         <noscript><meta http-equiv=\"refresh\" content=\"3\"></noscript>\
         <title>alp · {t}</title><style>{STYLE}</style>{script}</head><body><nav><a href=\"/{token}/\">workgroups</a></nav>\
         <h1>{t}</h1>{body}</body></html>",
        t = esc(title),
    )
}

const STYLE: &str = "body{font:14px system-ui,sans-serif;margin:24px;color:#222}table{border-collapse:collapse;margin-bottom:16px}\
td,th{padding:4px 10px;border-bottom:1px solid #ddd;text-align:left;vertical-align:top}.task rect{stroke:#555;rx:6}\
.status-completed rect{fill:#cfeecf}.status-failed rect,.status-canceled rect,.status-rejected rect{fill:#f6cccc}\
.status-working rect,.status-input-required rect{fill:#fde9b8}.status-waiting rect{fill:#eee}.status-submitted rect{fill:#dde8fb}\
.status-awaiting-approval rect{fill:#f3d9fa;stroke:#a0a;stroke-width:2}\
.edge{stroke:#777;stroke-width:1.5;marker-end:url(#arrow)}.edge.optional{stroke-dasharray:4 3}\
.online{color:#1a7f37}.offline{color:#999}.over{color:#b00}.ok{color:#1a7f37}.bad{color:#b00;font-weight:bold}\
.approvals{background:#fbf0fd;padding:8px 12px;border:1px solid #e2b6ec;margin-bottom:16px}\
nav{margin-bottom:8px}#message{min-height:1.2em;color:#555}";

/// The first page: groups, peers and transfers, refreshed by polling.
pub(super) fn index(base: &str, list: &Value, overview: &Value) -> String {
    format!("<div id=\"live\" data-base=\"{}\" data-poll=\"1000\">{}</div>", esc(base), index_live(list, overview))
}

/// What changes on the first page.
pub(super) fn index_live(list: &Value, overview: &Value) -> String {
    let mut out = String::from("<h2>Workgroups</h2>");
    out.push_str(&groups(list));
    out.push_str("<h2>Peers</h2><table><tr><th>peer</th><th>node id</th><th>connection</th></tr>");
    for p in overview["peers"].as_array().into_iter().flatten() {
        let online = p["online"].as_bool().unwrap_or(false);
        let _ = write!(
            out,
            "<tr class=\"peer\"><td>{}</td><td><small>{}</small></td><td class=\"{}\">{}</td></tr>",
            esc(p["name"].as_str().unwrap_or_default()),
            esc(p["node_id"].as_str().unwrap_or_default()),
            if online { "online" } else { "offline" },
            if online { "● connected" } else { "○ not connected" },
        );
    }
    out.push_str("</table><h2>Transfers</h2>");
    let transfers: Vec<&Value> = overview["transfers"].as_array().into_iter().flatten().collect();
    if transfers.is_empty() {
        out.push_str("<p class=\"transfers-none\">none under way</p>");
        return out;
    }
    out.push_str("<table><tr><th>blob</th><th>peer</th><th>direction</th><th>progress</th></tr>");
    for t in transfers {
        let (done, total) = (t["done"].as_u64().unwrap_or(0), t["total"].as_u64().unwrap_or(0));
        let pct = done.saturating_mul(100).checked_div(total).unwrap_or(100);
        let _ = write!(
            out,
            "<tr class=\"transfer\"><td><small>{}</small></td><td>{}</td><td>{}</td><td><progress max=\"100\" value=\"{pct}\"></progress> {done} of {total} bytes</td></tr>",
            esc(short(t["hash"].as_str().unwrap_or_default())),
            esc(t["peer"].as_str().unwrap_or_default()),
            esc(t["direction"].as_str().unwrap_or_default()),
        );
    }
    out.push_str("</table>");
    out
}

/// The list of groups.
pub(super) fn groups(list: &Value) -> String {
    let mut out = String::from(
        "<table><tr><th>workgroup</th><th>this node</th><th>members</th><th>open tasks</th><th>tasks</th></tr>",
    );
    for g in list.as_array().into_iter().flatten() {
        let id = g["id"].as_str().unwrap_or_default();
        let _ = write!(
            out,
            "<tr><td><a href=\"g/{}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(id),
            esc(g["name"].as_str().unwrap_or(id)),
            esc(g["me"].as_str().unwrap_or_default()),
            g["members"].as_u64().unwrap_or(0),
            g["open_tasks"].as_u64().unwrap_or(0),
            g["tasks"].as_u64().unwrap_or(0),
        );
    }
    out.push_str("</table>");
    out
}

/// A group's page around its live part: the log's verification, then
/// the part `app.js` replaces on every change.
pub(super) fn group_page(base: &str, v: &Value, verified: &Value) -> String {
    let log = match (verified["ok"].as_bool(), verified["problem"].as_str()) {
        (Some(true), _) => format!(
            "<p id=\"verify\" class=\"ok\">log verified: {} events, every signature, chain link and reference checks out</p>",
            verified["events"].as_u64().unwrap_or(0)
        ),
        (_, Some(p)) => format!("<p id=\"verify\" class=\"bad\">the log does not check out: {}</p>", esc(p)),
        _ => format!(
            "<p id=\"verify\" class=\"bad\">the log does not check out: {}</p>",
            esc(&verified["equivocations"].to_string())
        ),
    };
    format!("{log}<p id=\"message\" role=\"status\"></p><div id=\"live\" data-base=\"{}\">{}</div>", esc(base), live(v))
}

/// What changes: pending approvals, the graph, spend against budgets,
/// tasks and members.
pub(super) fn live(v: &Value) -> String {
    let tasks: Vec<&Value> = v["tasks"].as_array().into_iter().flatten().collect();
    let mut out = String::new();
    let _ = write!(
        out,
        "<p class=\"summary\" data-events=\"{}\">{} events · {} tasks · {} running · spent {} tokens, ${:.4}{}</p>",
        v["events"].as_u64().unwrap_or(0),
        v["events"].as_u64().unwrap_or(0),
        tasks.len(),
        v["running"].as_u64().unwrap_or(0),
        v["spent_tokens"].as_u64().unwrap_or(0),
        v["spent_usd"].as_f64().unwrap_or(0.0),
        budget_left(v),
    );
    out.push_str(&approvals(v));
    out.push_str(&graph_svg(&tasks));
    out.push_str("<h2>Tasks</h2><table><tr><th>task</th><th>goal</th><th>status</th><th>tier</th><th>by</th><th>spent / budget</th></tr>");
    for t in &tasks {
        let status = t["status"].as_str().unwrap_or_default();
        let detail = t["reason"].as_str().or(t["question"].as_str()).unwrap_or_default();
        let _ = write!(
            out,
            "<tr class=\"status-{s}\" data-task=\"{id}\"><td>{id}</td><td class=\"goal\">{goal}</td><td>{s}<br><small>{detail}</small></td>\
             <td>{tier}</td><td>{who}</td><td>{spent}</td></tr>",
            s = esc(status),
            id = esc(short(t["id"].as_str().unwrap_or_default())),
            goal = esc(t["goal"].as_str().unwrap_or_default()),
            detail = esc(detail),
            tier = esc(t["tier"].as_str().unwrap_or_default()),
            who = esc(t["output_by"].as_str().or(t["assignee"].as_str()).unwrap_or("")),
            spent = spent(t["spent_tokens"].as_u64(), t["spent_usd"].as_f64(), &t["budget"]),
        );
    }
    out.push_str("</table><h2>Members</h2><table><tr><th>member</th><th>roles</th><th>status</th><th>online</th><th>load</th><th>spent</th></tr>");
    for m in v["members"].as_array().into_iter().flatten() {
        let roles: Vec<&str> = m["roles"].as_array().into_iter().flatten().filter_map(|r| r.as_str()).collect();
        let online = m["online"].as_bool().unwrap_or(false);
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}{}</td><td class=\"{}\">{}</td><td>{}</td><td>{} tokens, ${:.4}</td></tr>",
            esc(m["name"].as_str().unwrap_or_default()),
            esc(&roles.join(", ")),
            esc(m["status"].as_str().unwrap_or_default()),
            if m["admin"].as_bool().unwrap_or(false) { " (admin)" } else { "" },
            if online { "online" } else { "offline" },
            if online { "● online" } else { "○ offline" },
            m["load"].as_u64().unwrap_or(0),
            m["spent_tokens"].as_u64().unwrap_or(0),
            m["spent_usd"].as_f64().unwrap_or(0.0),
        );
    }
    out.push_str("</table>");
    out
}

/// Pending approvals, each with its buttons.
fn approvals(v: &Value) -> String {
    let pending: Vec<&Value> = v["pending_approvals"].as_array().into_iter().flatten().collect();
    if pending.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        "<section class=\"approvals\"><h2>Awaiting approval</h2><table><tr><th>what</th><th>tier</th><th>asked by</th>\
         <th>approvals</th><th>decide</th></tr>",
    );
    for a in pending {
        let id = a["id"].as_str().unwrap_or_default();
        let by: Vec<&str> = a["approved_by"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        let _ = write!(
            out,
            "<tr class=\"approval\" data-approval=\"{id}\"><td><small>{kind} {sid}</small><br><span class=\"action\">{action}</span></td>\
             <td>{tier}</td><td>{who}</td><td>{n} of {k}{by}</td><td><input name=\"reason\" placeholder=\"reason\" maxlength=\"500\">\
             <button data-decide=\"approve\" data-id=\"{id}\">Approve</button> <button data-decide=\"deny\" data-id=\"{id}\">Deny</button></td></tr>",
            id = esc(id),
            sid = esc(short(id)),
            kind = esc(a["kind"].as_str().unwrap_or_default()),
            action = esc(a["action"].as_str().unwrap_or_default()),
            tier = esc(a["tier"].as_str().unwrap_or_default()),
            who = esc(a["requester"].as_str().unwrap_or_default()),
            n = by.len(),
            k = a["needed"].as_u64().unwrap_or(0),
            by = if by.is_empty() { String::new() } else { format!(" ({})", esc(&by.join(", "))) },
        );
    }
    out.push_str("</table></section>");
    out
}

fn budget_left(v: &Value) -> String {
    let mut parts = Vec::new();
    if let Some(t) = v["available_tokens"].as_u64() {
        parts.push(format!("{t} tokens"));
    }
    if let Some(u) = v["available_usd"].as_f64() {
        parts.push(format!("${u:.4}"));
    }
    if parts.is_empty() { String::new() } else { format!(" · budget left: {}", parts.join(", ")) }
}

fn spent(tokens: Option<u64>, usd: Option<f64>, budget: &Value) -> String {
    let tokens = tokens.unwrap_or(0);
    let mut out = format!("{tokens} tokens");
    if let Some(b) = budget["tokens"].as_u64() {
        let class = if tokens > b { "over" } else { "" };
        out = format!("<span class=\"{class}\">{tokens} / {b} tokens</span>");
    }
    let usd = usd.unwrap_or(0.0);
    match budget["usd_micros"].as_u64() {
        Some(b) => {
            let _ = write!(out, ", ${usd:.4} / ${:.4}", b as f64 / 1e6);
        }
        None if usd > 0.0 => {
            let _ = write!(out, ", ${usd:.4}");
        }
        None => {}
    }
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

pub(super) fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// Text as HTML: nothing from a group (goals are anyone's words) can
/// become markup.
pub(super) fn esc(s: &str) -> String {
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
