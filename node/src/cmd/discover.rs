//! `alp peer discover`: the alp nodes announcing themselves on the local
//! network, with the trusted peers among them named.

use std::time::Duration;

use alp_profiles::Profile;
use serde::Serialize;

use crate::ctx::Ctx;
use crate::discovery;
use crate::error::CliResult;
use crate::say::status;

#[derive(Serialize)]
struct Found {
    /// The trusted peer's name here, if it is one.
    peer: Option<String>,
    node_id: Option<String>,
    addrs: Vec<String>,
    /// This hour's tag (what a stranger sees).
    tag: String,
}

pub(crate) fn discover(ctx: &Ctx, profile: &Profile, wait: Duration) -> CliResult {
    status!("listening for alp nodes on the local network for {wait:?}...");
    let nearby = discovery::browse(wait).map_err(|e| std::io::Error::other(format!("mDNS: {e}")))?;
    let peers = profile.peers().load()?;
    let me = profile.identity().node_id();
    let now = alp_profiles::unix_now();
    let found: Vec<Found> = nearby
        .into_iter()
        .filter_map(|n| {
            let peer = discovery::owner(&peers, &n.tag, now);
            // This profile's own node is not news.
            if discovery::tag(&me, now / 3600) == n.tag {
                return None;
            }
            Some(Found {
                peer: peer.map(|p| p.name.to_string()),
                node_id: peer.map(|p| p.node_id.to_string()),
                addrs: n.addrs.iter().map(ToString::to_string).collect(),
                tag: n.tag,
            })
        })
        .collect();
    if ctx.json {
        return ctx.print_json(&found);
    }
    if found.is_empty() {
        status!(
            "no other alp node answered (is discovery on there, `node.discovery`, and its node serving on this network?)"
        );
        return Ok(());
    }
    let lines: Vec<String> = found
        .iter()
        .map(|f| {
            let who = f.peer.clone().unwrap_or_else(|| format!("(not a peer; tag {})", f.tag));
            format!("{who}\t{}", f.addrs.join(" "))
        })
        .collect();
    ctx.print(&lines.join("\n"))
}
