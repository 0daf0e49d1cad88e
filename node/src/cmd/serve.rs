//! `alp serve`: run the node in the foreground.

use crate::say::status;
use std::net::SocketAddr;
use std::sync::Arc;

use alp_agent::Setup;
use alp_agent::ledger::Ledger;
use alp_agent::tools::{Registry, ShellConfig, Workspace};
use alp_blobstore::store::Store;
use alp_link::verbs::blob_get::{BlobGet, Shares, Tickets};
use alp_link::verbs::blob_put::{Announce, BlobPut, PutLimits};
use alp_link::{LinkEndpoint, LinkSettings, Router, Server, advertised_addrs, serve, verbs};
use alp_profiles::Profile;
use alp_profiles::config::{Override, Resolved};
use alp_profiles::serve::{ServeRecord, claim};
use alp_profiles::unix_now;
use alp_protocol::Verb;
use serde::Serialize;

use crate::ask::{Ask, AskService, Cancel};
use crate::ctx::Ctx;
use crate::discovery;
use crate::error::{CliResult, usage};
use crate::wg::links::Links;
use crate::wg::replicate::Replicator;
use crate::wg::verbs::{WgBlobs, WgPush, WgSync};
use crate::wg::{self, WgNode, Workgroups};

#[derive(Serialize)]
struct Serving {
    profile: String,
    node_id: String,
    addr: SocketAddr,
    advertised: Vec<SocketAddr>,
}

pub(crate) fn run(ctx: &Ctx, listen: Option<SocketAddr>) -> CliResult {
    let profile = ctx.open()?;
    let extra = listen
        .map(|l| Override { flag: format!("--listen {l}"), assignment: format!("node.listen={l}") })
        .into_iter()
        .collect();
    let resolved = ctx.config_with(&profile, extra)?;
    let config = resolved.config.clone();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let settings = LinkSettings::from(&config.link);
        // Already serving? Say so, with the process, before the port clash.
        if let Some(node) = alp_profiles::serve::running(profile.paths())? {
            return Err(crate::error::CliError {
                code: crate::error::RUNTIME,
                error: anyhow::anyhow!(
                    "profile '{}' is already served by process {} on {}: stop that one first, or use it",
                    profile.name(),
                    node.pid,
                    node.addr
                ),
            });
        }
        let listen = config.node.listen;
        let endpoint = match LinkEndpoint::bind(listen, alp_link::dial::me(&profile, &config), settings) {
            Ok(e) => e,
            Err(alp_link::DialError::Bind { source, .. }) if source.kind() == std::io::ErrorKind::AddrInUse => {
                return Err(usage(format!(
                    "{listen} is taken, perhaps by another profile's node: give this one another port (`alp serve --listen [::]:7118`, or 0 for any free port) or set node.listen in its config"
                )));
            }
            Err(e) => return Err(e.into()),
        };
        let bound = endpoint.local_addr()?;
        let advertised = advertised_addrs(bound);
        let endpoint = endpoint.with_addrs(advertised.clone())?;
        let started_at = unix_now();
        let claimed = Arc::new(claim(profile.paths(), ServeRecord::new(bound, advertised.clone(), started_at))?);
        let store = crate::store::open(&profile, &config)?;
        // Totals drift if a process died between a change and its record.
        store.rebuild_usage()?;
        tokio::spawn(collect_partials(store.clone(), config.blob.partial_ttl.0));
        let asks = ask_service(ctx, &profile, resolved.clone())?;
        let key = profile.identity().signing_key().clone();
        let groups = Arc::new(Workgroups::open(&profile.paths().workgroups(), key));
        let mut vias = Vec::new();
        for name in &config.node.rendezvous {
            match profile.peers().get(name) {
                Ok(p) if !vias.contains(&p.node_id) => vias.push(p.node_id),
                Ok(_) => {}
                Err(e) => tracing::warn!("node.rendezvous names {name}, which is not a trusted peer: {e}"),
            }
        }
        let links = Arc::new(Links::new(endpoint.clone(), profile.peers(), vias));
        crate::rendezvous::start(links.clone());
        crate::netwatch::start(links.clone(), bound, advertised.clone(), claimed.clone(), started_at);
        let replicator = Replicator::new(groups.clone(), links.clone(), config.workgroup.sync_interval.0);
        let transfers = alp_link::Transfers::default();
        let node = Arc::new(WgNode {
            transfers: transfers.clone(),
            edits: Default::default(),
            wg: groups.clone(),
            links,
            replicator,
            store: store.clone(),
            config: config.clone(),
            asks: asks.clone(),
            runner: Default::default(),
        });
        wg::start(node, profile.paths().control_socket()).await?;
        // Held until the node stops: its drop ends the announcement.
        let _lan = if config.node.discovery {
            discovery::start(profile.identity().node_id(), bound, profile.peers()).unwrap_or_else(|e| {
                tracing::warn!("local network discovery is off: {e}");
                None
            })
        } else {
            None
        };
        let router = router(&profile, &endpoint, store, &resolved, asks, groups, &transfers);
        let state = Server::new(&endpoint, profile.peers(), profile.tickets(), router);
        // Ready: the address goes out once commands can act through the node.
        let node_id = profile.identity().node_id();
        tracing::debug!(%bound, node = %node_id, "serving");
        status!("serving profile '{}' as {node_id} on {bound}; stop with Ctrl-C", profile.name());
        let out =
            Serving { profile: profile.name().to_string(), node_id: node_id.to_string(), addr: bound, advertised };
        if ctx.json {
            ctx.print_json(&out)?
        } else {
            ctx.print(&bound.to_string())?
        }
        serve(endpoint, state, shutdown_signal()).await;
        drop(claimed);
        status!("stopped");
        Ok(())
    })
}

/// Every verb this node serves, with its handler: one line each.
fn router(
    profile: &Profile,
    endpoint: &LinkEndpoint,
    store: Store,
    resolved: &Resolved,
    asks: Arc<AskService>,
    groups: Arc<Workgroups>,
    transfers: &alp_link::Transfers,
) -> Router {
    let b = &resolved.config.blob;
    let limits = PutLimits { max_size: b.max_size, peer_quota: b.peer_quota, partials_per_peer: b.partials_per_peer };
    let me = &endpoint.me();
    let meet = Arc::new(verbs::meet::Meet::default());
    Router::builder()
        .accept(Verb::LinkPing, verbs::ping::Ping)
        .accept(Verb::LinkInfo, verbs::info::Info::new(endpoint))
        .accept_shared(Verb::LinkMeet, meet.clone())
        .accept_shared(Verb::LinkRelay, meet)
        .accept(
            Verb::BlobGet,
            BlobGet::new(store.clone(), Shares::new(profile.shares(), store.clone()), me).tracked(transfers),
        )
        .accept(
            Verb::BlobRedeem,
            BlobGet::new(store.clone(), Tickets::new(profile.shares(), store.clone()), me).tracked(transfers),
        )
        .accept(
            Verb::BlobPut,
            BlobPut::new(store.clone(), profile.shares(), limits, me).announcing(announce(profile)).tracked(transfers),
        )
        .accept(Verb::AgentAsk, Ask(asks.clone()))
        .accept(Verb::AgentCancel, Cancel(asks))
        .accept(Verb::WgSync, WgSync(groups.clone()))
        .accept(Verb::WgPush, WgPush(groups.clone()))
        .accept(Verb::WgBlob, BlobGet::new(store, WgBlobs(groups), me).tracked(transfers))
        .build()
}

/// A line on stderr for every blob a peer pushes here, naming the peer.
fn announce(profile: &Profile) -> Announce {
    let peers = profile.peers();
    Arc::new(move |r| {
        let who = peers
            .load()
            .ok()
            .and_then(|ps| ps.into_iter().find(|p| p.node_id == r.peer))
            .map_or_else(|| r.peer.short(), |p| p.name.to_string());
        let what = r.name.as_deref().map_or_else(|| format!("blob {}", r.hash), |n| format!("'{n}' ({})", r.hash));
        status!("received {what}, {} bytes, from {who} (see `alp blob ls --received`)", r.size);
    })
}

/// Peers' asks: this profile's model, built-in tools (what each peer may
/// use is its grant) and ledger. The model is chosen and loaded on the
/// first ask, not here.
fn ask_service(ctx: &Ctx, profile: &Profile, resolved: Resolved) -> CliResult<Arc<AskService>> {
    let paths = profile.paths();
    let workspace = Workspace::open(&paths.workspace())?;
    let tools = Registry::builtin(&workspace, &ShellConfig::for_peers(&resolved.config.agent));
    let ledger = Ledger::new(&paths.ledger());
    // MCP tools too, new for each ask (sandboxed, as for peers), offered to
    // a peer only when granted by name.
    let (servers, cache, dir) = (resolved.mcp.clone(), paths.mcp_cache(), paths.workspace());
    let setup = Setup::new(resolved, ctx.home.clone(), Some(ledger), Some(tools));
    Ok(AskService::with_mcp(setup, move || alp_mcp::tools(&servers, &cache, &dir, true)))
}

/// Removes partial blobs idle for longer than `ttl`, now and every hour
/// (partials being written are left alone).
async fn collect_partials(store: Store, ttl: std::time::Duration) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(3600));
    loop {
        every.tick().await;
        let s = store.clone();
        match tokio::task::spawn_blocking(move || s.gc(ttl)).await {
            Ok(Ok(removed)) if !removed.is_empty() => {
                tracing::info!(count = removed.len(), "removed idle partial blobs")
            }
            Ok(Err(e)) => tracing::warn!("collecting partial blobs failed: {e}"),
            _ => {}
        }
    }
}

/// Completes on SIGINT or SIGTERM.
pub(crate) async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}
