//! `alp peer …`: the trusted-peer list and permissions.

use crate::say::status;
use std::io::{BufRead, IsTerminal};

use alp_agent::tools::{Registry, Sandbox, ShellConfig, Tier, Workspace};
use alp_profiles::peers::{Peer, PeerAddr, PeerError};
use alp_profiles::{Profile, ProfileName, format_time, unix_now};
use alp_protocol::{NodeId, Verb};

use crate::cli::PeerCmd;
use crate::ctx::Ctx;
use crate::error::CliResult;

/// Refuses a grant naming a tool that peers' asks do not have, and one
/// that runs programs unless the owner confirms it (`--yes`, or a yes on
/// the terminal) knowing what it means.
fn check_ask_tools(ctx: &Ctx, profile: &Profile, peer: &str, tools: &[String], yes: bool) -> CliResult {
    let resolved = ctx.config(profile)?;
    let workspace = Workspace::open(&profile.paths().workspace())?;
    let mcp = alp_mcp::tools(&resolved.mcp, &profile.paths().mcp_cache(), &profile.paths().workspace(), true);
    let known = Registry::builtin(&workspace, &ShellConfig::for_peers(&resolved.config.agent)).with_all(mcp);
    if let Some(bad) = tools.iter().find(|t| !t.is_empty() && known.tier(t).is_none()) {
        let names: Vec<&str> = known.names().collect();
        return Err(crate::error::usage(format!("no tool named {bad:?} (peers' asks may use: {})", names.join(", "))));
    }
    let programs: Vec<&str> =
        tools.iter().map(String::as_str).filter(|t| known.tier(t) == Some(Tier::Privileged)).collect();
    if programs.is_empty() || yes {
        return Ok(());
    }
    let sandbox = match Sandbox::detect(resolved.config.agent.shell_network) {
        Some(_) => {
            "in a sandbox that sees only this profile's workspace (no network, no other process, nothing else of this machine)"
        }
        None => "but no sandbox (bubblewrap) is installed here, so this node will refuse to run them until one is",
    };
    let what = format!(
        "granting {} lets '{peer}' run programs on this machine through its asks, {sandbox}",
        programs.join(", ")
    );
    if !std::io::stdin().is_terminal() {
        return Err(crate::error::usage(format!("{what}; rerun with --yes to grant it")));
    }
    eprint!("{what}. Grant it? [y/N] ");
    let mut line = String::new();
    let granted = std::io::stdin().lock().read_line(&mut line).is_ok() && matches!(line.trim(), "y" | "Y" | "yes");
    if granted { Ok(()) } else { Err(crate::error::usage("nothing changed: the grant was not confirmed")) }
}

pub(crate) fn run(ctx: &Ctx, cmd: PeerCmd) -> CliResult {
    let profile = ctx.open()?;
    match cmd {
        PeerCmd::Add { name, node_id, addrs } => add(ctx, &profile, name, node_id, addrs),
        PeerCmd::List => list(ctx, &profile),
        PeerCmd::Show { name } => show(ctx, &profile.peers().get(&name)?),
        PeerCmd::Remove { name } => {
            let peer = profile.peers().remove(&name)?;
            status!("removed peer '{}' ({})", peer.name, peer.node_id);
            Ok(())
        }
        PeerCmd::Rename { name, new_name } => {
            let peer = profile.peers().rename(&name, new_name)?;
            status!("peer '{name}' is now '{}' ({})", peer.name, peer.node_id);
            Ok(())
        }
        PeerCmd::Ping { name, count, interval, direct } => {
            super::ping::ping(ctx, &profile, &name, count, interval, direct)
        }
        PeerCmd::Info { name, direct } => super::ping::info(ctx, &profile, &name, direct),
        PeerCmd::Discover { wait } => super::discover::discover(ctx, &profile, wait),
        PeerCmd::Allow { name, verbs } => set_allowed(ctx, &profile, &name, &verbs, true),
        PeerCmd::Deny { name, verbs } => set_allowed(ctx, &profile, &name, &verbs, false),
        PeerCmd::Set { name, addrs, ask_tools, ask_daily_tokens, ask_daily_cost, yes } => {
            if let Some(tools) = &ask_tools {
                check_ask_tools(ctx, &profile, &name, tools, yes)?;
            }
            if let Some(c) = ask_daily_cost
                && (c.is_nan() || c < 0.0)
            {
                return Err(crate::error::usage(format!("--ask-daily-cost {c} must be zero or more")));
            }
            let peer = profile.peers().update(|peers| {
                let suggestion = alp_profiles::suggest::closest(&name, peers.iter().map(|p| p.name.as_str()));
                let p = peers
                    .iter_mut()
                    .find(|p| p.name.as_str() == name)
                    .ok_or_else(|| alp_profiles::peers::PeerError::Unknown { name: name.clone(), suggestion })?;
                if !addrs.is_empty() {
                    // What the user says replaces what was learned too.
                    p.addrs = addrs;
                    p.observed.clear();
                    p.learned.clear();
                }
                if let Some(tools) = ask_tools {
                    p.ask_tools = tools.into_iter().filter(|t| !t.is_empty()).collect();
                }
                if let Some(n) = ask_daily_tokens {
                    p.ask_daily_tokens = n;
                }
                if let Some(c) = ask_daily_cost {
                    p.ask_daily_cost = c;
                }
                Ok(p.clone())
            })?;
            show(ctx, &peer)
        }
    }
}

fn add(ctx: &Ctx, profile: &Profile, name: ProfileName, node_id: NodeId, addrs: Vec<PeerAddr>) -> CliResult {
    if node_id == profile.identity().node_id() {
        return Err(PeerError::OwnId(node_id).into());
    }
    let peer = Peer::new(name, node_id, addrs, unix_now());
    profile.peers().add(peer.clone())?;
    status!("added peer '{}' ({}); it may call: {}", peer.name, peer.node_id, verbs(&peer));
    if ctx.json { ctx.print_json(&peer) } else { Ok(()) }
}

fn set_allowed(ctx: &Ctx, profile: &Profile, name: &str, v: &[Verb], allow: bool) -> CliResult {
    let peer = profile.peers().set_allowed(name, v, allow)?;
    status!("peer '{}' may call: {}", peer.name, verbs(&peer));
    if ctx.json { ctx.print_json(&peer) } else { Ok(()) }
}

fn list(ctx: &Ctx, profile: &Profile) -> CliResult {
    let peers = profile.peers().load()?;
    if ctx.json {
        return ctx.print_json(&peers);
    }
    if peers.is_empty() {
        status!("no trusted peers: add one with `alp peer add NAME NODE_ID --addr HOST:PORT`");
        return Ok(());
    }
    let width = peers.iter().map(|p| p.name.as_str().len()).max().unwrap_or(0).max(4);
    let mut lines = vec![format!("{:width$}  {:62}  {:20}  ADDRESSES", "NAME", "NODE ID", "LAST SEEN")];
    for p in &peers {
        let addrs: Vec<String> = p.addrs.iter().map(|a| addr_label(p, a)).collect();
        let seen = p.last_seen.map_or_else(|| "never".to_owned(), format_time);
        let addrs = if addrs.is_empty() { "-".to_owned() } else { addrs.join(",") };
        lines.push(format!("{:width$}  {}  {seen:20}  {addrs}", p.name.as_str(), p.node_id));
    }
    ctx.print(&lines.join("\n"))
}

fn show(ctx: &Ctx, p: &Peer) -> CliResult {
    if ctx.json {
        return ctx.print_json(p);
    }
    let addrs: Vec<String> = p.addrs.iter().map(|a| addr_label(p, a)).collect();
    let text = format!(
        "name:      {}\nnode id:   {}\naddresses: {}\nallowed:   {}\nadded:     {}\nlast seen: {}\n\
         ask tools: {}\nask daily: {} tokens{}",
        p.name,
        p.node_id,
        if addrs.is_empty() { "-".to_owned() } else { addrs.join(", ") },
        verbs(p),
        format_time(p.added_at),
        p.last_seen.map_or_else(|| "never".to_owned(), format_time),
        if p.ask_tools.is_empty() { "none".to_owned() } else { p.ask_tools.join(", ") },
        p.ask_daily_tokens,
        if p.ask_daily_cost > 0.0 { format!(", ${}", p.ask_daily_cost) } else { String::new() },
    );
    ctx.print(&text)
}

/// An address, marked when this node made it from where the peer's
/// connection came from rather than the peer announcing it.
fn addr_label(p: &Peer, a: &alp_profiles::peers::PeerAddr) -> String {
    if p.observed.contains(a) { format!("{a} (observed)") } else { a.to_string() }
}

pub(crate) fn verbs(p: &Peer) -> String {
    if p.allow.is_empty() {
        return "nothing".to_owned();
    }
    p.allow.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(", ")
}
