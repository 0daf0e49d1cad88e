//! `alp status`: the profile at a glance: who it is, whether its node is
//! serving and where, its peers and when each was last seen, its blobs,
//! and today's spending against its caps.

use alp_agent::ledger::{Ledger, day};
use alp_profiles::{format_time, unix_now};
use serde::Serialize;

use crate::ctx::Ctx;
use crate::error::CliResult;

#[derive(Serialize)]
struct Status {
    profile: String,
    node_id: String,
    /// Where `alp serve` listens for this profile, if it runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    serving: Option<Serving>,
    peers: Vec<PeerStatus>,
    /// Blob transfers the running node has under way.
    #[serde(skip_serializing_if = "Option::is_none")]
    transfers: Option<Vec<serde_json::Value>>,
    blobs: Blobs,
    today: Spend,
}

#[derive(Serialize)]
struct Serving {
    addr: String,
    pid: u32,
    since: u64,
}

#[derive(Serialize)]
struct PeerStatus {
    name: String,
    node_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_seen: Option<u64>,
    addrs: Vec<String>,
    /// Whether the running node holds a live connection to it (absent
    /// when no node runs).
    #[serde(skip_serializing_if = "Option::is_none")]
    connected: Option<bool>,
}

#[derive(Serialize)]
struct Blobs {
    count: usize,
    bytes: u64,
    partial: usize,
    partial_bytes_kept: u64,
}

#[derive(Serialize)]
struct Spend {
    /// UTC day.
    day: String,
    tokens: u64,
    usd: f64,
    /// 0: no cap.
    daily_tokens_cap: u64,
    /// 0: no cap.
    daily_usd_cap: f64,
}

pub(crate) fn run(ctx: &Ctx) -> CliResult {
    let profile = ctx.open()?;
    let config = ctx.config(&profile)?.config;
    let store = crate::store::open(&profile, &config)?;
    let serving = alp_profiles::serve::running(profile.paths())?.map(|r| Serving {
        addr: r.addr.to_string(),
        pid: r.pid,
        since: r.started_at,
    });
    // What the running node knows live: its connections and transfers.
    let live =
        serving.as_ref().and_then(|_| super::wg::Control::of(&profile).call(&crate::wg::api::Request::Node).ok());
    let connected = |id: &str| -> Option<bool> {
        let peers = live.as_ref()?["peers"].as_array()?;
        Some(peers.iter().any(|p| p["node_id"] == id && p["online"] == true))
    };
    let peers = profile
        .peers()
        .load()?
        .into_iter()
        .map(|p| PeerStatus {
            name: p.name.to_string(),
            node_id: p.node_id.to_string(),
            last_seen: p.last_seen,
            addrs: p.addrs.iter().map(ToString::to_string).collect(),
            connected: connected(&p.node_id.to_string()),
        })
        .collect();
    let transfers = live.as_ref().map(|v| v["transfers"].as_array().cloned().unwrap_or_default());
    let list = store.list()?;
    let partials = store.partials()?;
    let blobs = Blobs {
        count: list.len(),
        bytes: list.iter().map(|b| b.size).sum(),
        partial: partials.len(),
        partial_bytes_kept: partials.iter().map(|p| p.have_bytes()).sum(),
    };
    let today = day(unix_now());
    let totals = Ledger::new(&profile.paths().ledger()).totals(&today, None)?;
    let spend = Spend {
        day: today,
        tokens: totals.tokens,
        usd: totals.cost,
        daily_tokens_cap: config.budget.daily_tokens,
        daily_usd_cap: config.budget.daily_cost,
    };
    let status = Status {
        profile: profile.name().to_string(),
        node_id: profile.identity().node_id().to_string(),
        serving,
        peers,
        transfers,
        blobs,
        today: spend,
    };
    if ctx.json {
        return ctx.print_json(&status);
    }
    ctx.print(&render(&status))
}

fn render(s: &Status) -> String {
    let mut out = vec![format!("profile  {} ({})", s.profile, s.node_id)];
    out.push(match &s.serving {
        Some(n) => format!("node     serving on {} (pid {}, since {})", n.addr, n.pid, format_time(n.since)),
        None => "node     not serving (start it with `alp serve`)".to_owned(),
    });
    if s.peers.is_empty() {
        out.push("peers    none (pair with `alp invite` / `alp pair`)".to_owned());
    }
    for (i, p) in s.peers.iter().enumerate() {
        let seen = p.last_seen.map_or_else(|| "never seen".to_owned(), |t| format!("last seen {}", format_time(t)));
        let label = if i == 0 { "peers   " } else { "        " };
        let link = if p.connected == Some(true) { ", connected" } else { "" };
        out.push(format!("{label} {:<12} {seen}{link}", p.name));
    }
    for t in s.transfers.iter().flatten() {
        out.push(format!(
            "transfer {} {} {}: {} of {} bytes",
            t["direction"].as_str().unwrap_or_default(),
            t["hash"].as_str().unwrap_or_default().get(..12).unwrap_or_default(),
            t["peer"].as_str().unwrap_or_default(),
            t["done"],
            t["total"]
        ));
    }
    let b = &s.blobs;
    out.push(format!(
        "blobs    {} ({} bytes); {} partial ({} bytes kept)",
        b.count, b.bytes, b.partial, b.partial_bytes_kept
    ));
    let t = &s.today;
    let tokens = match t.daily_tokens_cap {
        0 => format!("{} tokens (no cap)", t.tokens),
        cap => format!("{} of {cap} tokens", t.tokens),
    };
    let usd = if t.daily_usd_cap > 0.0 {
        format!("${:.4} of ${:.2}", t.usd, t.daily_usd_cap)
    } else {
        format!("${:.4} (no cap)", t.usd)
    };
    out.push(format!("today    {tokens}, {usd}"));
    out.join("\n")
}
