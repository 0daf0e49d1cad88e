//! `alp send`: a file or folder to a peer (`--to`: add, then push,
//! keeping the name), or as a blob ticket that a trusted peer redeems with
//! `alp receive`. The ticket grants that blob (and a folder's files) and
//! nothing else. If `alp serve` runs for this profile, it serves the
//! ticket; otherwise this command does, in the foreground, until Ctrl-C.

use crate::say::status;
use std::path::PathBuf;
use std::sync::Arc;

use alp_blobstore::store::meta::Kind;
use alp_link::verbs::blob_get::{BlobGet, Tickets};
use alp_link::{LinkEndpoint, LinkSettings, Router, Server, advertised_addrs, serve, verbs};
use alp_profiles::Profile;
use alp_profiles::shares::{ShareTarget, ticket_digest};
use alp_protocol::Verb;
use alp_protocol::blob_ticket::BlobTicket;
use clap::Args;
use serde::Serialize;

use super::blob;
use crate::ctx::Ctx;
use crate::error::{CliError, CliResult, RUNTIME};

#[derive(Debug, Args)]
pub(crate) struct SendArgs {
    /// A file, a folder, or - for standard input
    path: PathBuf,
    /// Push it to this peer (it must allow you blob.put); without --to, print a ticket
    #[arg(long, value_name = "PEER")]
    to: Option<String>,
    /// The name it travels under [default: its own]
    #[arg(long)]
    name: Option<String>,
    #[command(flatten)]
    how: crate::cli::AddHow,
    /// How long the ticket stays good (served by `alp serve`; a foreground
    /// `alp send` also ends it when it stops)
    #[arg(long, default_value = "7d", value_parser = humantime::parse_duration)]
    ttl: std::time::Duration,
}

#[derive(Serialize)]
struct SendOut {
    #[serde(flatten)]
    added: blob::BlobOut,
    #[serde(skip_serializing_if = "Option::is_none")]
    ticket: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sent: Option<u64>,
}

pub(crate) fn run(ctx: &Ctx, args: SendArgs) -> CliResult {
    let profile = ctx.open()?;
    let config = ctx.config(&profile)?.config;
    let store = crate::store::open(&profile, &config)?;
    let by_reference = args.how.by_reference(config.blob.reference);
    let added = blob::add(&store, &args.path, args.name.as_deref(), by_reference)?;
    let hash = added.info.hash;
    let mut out = SendOut { added: blob::BlobOut::from(&added), ticket: None, sent: None };
    if let Some(to) = &args.to {
        let totals = blob::transfer::push(ctx, &profile, &store, hash, to)?;
        out.sent = Some(totals.sent);
        return if ctx.json { ctx.print_json(&out) } else { ctx.print(&out.added.hash) };
    }
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret)
        .map_err(|e| CliError { code: RUNTIME, error: anyhow::anyhow!("no randomness: {e}") })?;
    let shares = profile.shares();
    let now = alp_profiles::unix_now();
    let _ = shares.drop_expired_tickets(now);
    let grant = ShareTarget::Ticket { digest: ticket_digest(&secret), expires: now.saturating_add(args.ttl.as_secs()) };
    shares.share(&hash.to_string(), &grant).map_err(|e| CliError { code: RUNTIME, error: e.into() })?;
    let folder = store.meta(&hash).is_some_and(|m| m.kind == Kind::Collection);
    let ticket = |addrs| BlobTicket {
        node_id: profile.identity().node_id(),
        secret,
        hash: *hash.as_bytes(),
        size: added.info.size,
        folder,
        name: added.name.clone().unwrap_or_default(),
        addrs,
    };
    if let Some(node) = alp_profiles::serve::running(profile.paths())? {
        out.ticket = Some(ticket(node.advertised).to_string());
        print(ctx, &out)?;
        status!(
            "`alp serve` is running for this profile and serves it to trusted peers holding the ticket for {}; \
             end it sooner with `alp blob unshare {hash} --with tickets`",
            humantime::format_duration(args.ttl)
        );
        return Ok(());
    }
    let served = serve_ticket(ctx, &profile, store, |addrs| {
        out.ticket = Some(ticket(addrs).to_string());
        print(ctx, &out)
    });
    // The ticket ends with this process.
    if let Err(e) = shares.unshare(&hash.to_string(), &grant) {
        status!("could not end the ticket: {e}; end it with `alp blob unshare {hash} --with tickets`");
    }
    served
}

fn print(ctx: &Ctx, out: &SendOut) -> CliResult {
    if ctx.json { ctx.print_json(out) } else { ctx.print(out.ticket.as_deref().unwrap_or_default()) }
}

/// Serves this profile's tickets (and nothing else) until Ctrl-C; `ready`
/// is told the addresses once peers can connect.
fn serve_ticket(
    ctx: &Ctx,
    profile: &Profile,
    store: alp_blobstore::store::Store,
    ready: impl FnOnce(Vec<std::net::SocketAddr>) -> CliResult,
) -> CliResult {
    let config = ctx.config(profile)?.config;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let settings = LinkSettings::from(&config.link);
        let me = alp_link::dial::me(profile, &config);
        // The profile's port, or any if something else holds it.
        let endpoint = match LinkEndpoint::bind(config.node.listen, me.clone(), settings.clone()) {
            Ok(e) => e,
            Err(_) => {
                let any = std::net::SocketAddr::new(config.node.listen.ip(), 0);
                LinkEndpoint::bind(any, me, settings)?
            }
        };
        let advertised = advertised_addrs(endpoint.local_addr()?);
        let endpoint = endpoint.with_addrs(advertised.clone())?;
        let peers = profile.peers();
        let on_sent: verbs::blob_get::OnSent = Arc::new(move |s| {
            let who = peers.load().ok().and_then(|ps| ps.into_iter().find(|p| p.node_id == s.peer));
            let who = who.map_or_else(|| s.peer.short(), |p| p.name.to_string());
            let (a, b) = s.range;
            status!("sent {} bytes of {} to {who}", b - a, s.hash);
        });
        let visibility = Tickets::new(profile.shares(), store.clone());
        let router = Router::builder()
            .accept(Verb::LinkPing, verbs::ping::Ping)
            .accept(Verb::LinkInfo, verbs::info::Info::new(&endpoint))
            .accept(Verb::BlobRedeem, BlobGet::new(store, visibility, &endpoint.me()).on_sent(on_sent))
            .build();
        let state = Server::new(&endpoint, profile.peers(), profile.tickets(), router);
        ready(advertised)?;
        status!("waiting for a trusted peer to run `alp receive` with this ticket; stop with Ctrl-C");
        serve(endpoint, state, super::serve::shutdown_signal()).await;
        Ok(())
    })
}
