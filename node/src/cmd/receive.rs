//! `alp receive TICKET`: fetch the file or folder a blob ticket from `alp
//! send` names, verified as it arrives, and write it out (by default into
//! the current folder, under its name). The sender must be a trusted peer.

use std::path::PathBuf;

use alp_blobstore::BlobHash;
use alp_blobstore::store::meta::check_name;
use alp_link::Via;
use alp_profiles::peers::PeerAddr;
use alp_protocol::blob_ticket::BlobTicket;
use clap::Args;
use serde::Serialize;

use super::blob::{self, Written};
use crate::ctx::Ctx;
use crate::error::{CliError, CliResult, RUNTIME, usage};

#[derive(Debug, Args)]
pub(crate) struct ReceiveArgs {
    /// The ticket `alp send` printed
    ticket: String,
    /// Where to write it: a new path, an existing folder (written inside), or - for stdout [default: .]
    #[arg(short, long, value_name = "PATH")]
    output: Option<PathBuf>,
    /// Replace files that exist
    #[arg(long)]
    force: bool,
}

#[derive(Serialize)]
struct ReceiveOut {
    hash: String,
    name: String,
    size: u64,
    received: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    files: Option<usize>,
    written: Written,
}

pub(crate) fn run(ctx: &Ctx, args: ReceiveArgs) -> CliResult {
    let ticket: BlobTicket = args.ticket.parse().map_err(usage)?;
    let profile = ctx.open()?;
    let config = ctx.config(&profile)?.config;
    let store = crate::store::open(&profile, &config)?;
    let peers = profile.peers().load()?;
    let Some(mut peer) = peers.into_iter().find(|p| p.node_id == ticket.node_id) else {
        return Err(usage(format!(
            "the ticket comes from node {}, which this profile does not trust: pair with it first \
             (`alp invite` on one side, `alp pair TICKET` on the other)",
            ticket.node_id
        )));
    };
    // The ticket's addresses first: they are where it is served now.
    let mut addrs: Vec<PeerAddr> = ticket.addrs.iter().map(|a| PeerAddr::from(*a)).collect();
    for a in &peer.addrs {
        if !addrs.contains(a) {
            addrs.push(a.clone());
        }
    }
    peer.addrs = addrs;
    let hash = BlobHash::from(blake3::Hash::from_bytes(ticket.hash));
    let name = ticket.name.clone();
    let dest = args.output.unwrap_or_else(|| PathBuf::from("."));
    // Nothing to overwrite: found out before a byte moves.
    if !blob::output::is_stdout(&dest) && !args.force {
        let shown = if check_name(&name).is_ok() { name.clone() } else { hash.to_string() };
        let target = blob::output::target(&dest, Some(&shown), &hash);
        if std::fs::symlink_metadata(&target).is_ok() {
            let what = if ticket.folder { "merge into it" } else { "replace it" };
            return Err(usage(format!("{} exists: add --force to {what}, or give -o PATH", target.display())));
        }
    }
    let who = peer.name.to_string();
    let node = crate::cmd::wg::Control::of(&profile);
    let got = if node.is_running() {
        // The running node redeems it over the link it keeps.
        use crate::service::blob_fetch;
        crate::say::status!("fetching {hash} from '{who}' through the running node...");
        let request = blob_fetch::Args {
            op: blob_fetch::OP.name.into(),
            peers: vec![who.clone()],
            hash: hash.to_string(),
            ticket: Some(args.ticket.clone()),
        };
        let s: blob_fetch::Fetch = node.run(&blob_fetch::OP, &request)?;
        blob::transfer::Got::from_node(&store, hash, s)?
    } else {
        super::net::client_runtime()?.block_on(super::net::with_peer(&profile, &config, &peer, async |d| {
            let sources = [alp_link::Source { link: &d.link, name: &who }];
            blob::transfer::fetch(ctx, &sources, &store, hash, Via::Ticket(ticket.secret), None).await
        }))?
    };
    blob::transfer::report_fetch(&got, &who);
    if !got.complete() {
        return Err(CliError { code: RUNTIME, error: anyhow::anyhow!("the blob did not arrive whole") });
    }
    if check_name(&name).is_ok() {
        let kind = store.meta(&hash).map(|m| m.kind).unwrap_or_default();
        let origin = store.meta(&hash).map(|m| m.origin);
        if let Some(origin) = origin.filter(|o| !matches!(o, alp_blobstore::store::meta::Origin::Added)) {
            store.note_received(&hash, Some(&name), origin, alp_profiles::unix_now())?;
            store.set_kind(&hash, kind, alp_profiles::unix_now())?;
        }
    }
    let written = blob::write_out(&store, &hash, &dest, args.force)?;
    let out = ReceiveOut {
        hash: hash.to_string(),
        name,
        size: got.size,
        received: got.received,
        files: got.files.as_ref().map(Vec::len),
        written,
    };
    if ctx.json {
        ctx.print_json(&out)
    } else if blob::output::is_stdout(&dest) {
        Ok(())
    } else {
        ctx.print(&out.written.path)
    }
}
