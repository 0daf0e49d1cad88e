//! Hole punching, the waiting side: the serving node keeps a request
//! waiting at each of its rendezvous peers (`node.rendezvous`, the
//! `link.meet` verb). When another trusted peer asks the rendezvous for
//! this node, the waiting request is answered with that peer and its
//! address as the rendezvous sees it, and this node dials it at once while
//! it dials here: both NATs then have a mapping for the other side.
//!
//! The dialling side is `wg::links::Links::get`, which asks the
//! rendezvous when the peer's addresses do not answer at once.

use std::sync::Arc;
use std::time::Duration;

use alp_profiles::peers::How;
use alp_protocol::envelope::{MeetRequest, MeetResponse};
use alp_protocol::{NodeId, Verb};

use crate::wg::links::Links;

/// Starts waiting at every rendezvous; runs until the process ends.
pub(crate) fn start(links: Arc<Links>) {
    for &via in links.rendezvous() {
        tokio::spawn(wait(links.clone(), via));
    }
    if !links.rendezvous().is_empty() {
        tokio::spawn(upgrade(links));
    }
}

/// How often relayed links try for a direct path.
const UPGRADE_EVERY: Duration = Duration::from_secs(5);

/// Prefers a direct path as soon as one works: every few seconds, each
/// peer reached through a relay is punched to again, and a link that
/// comes up replaces the relayed one (which then closes).
async fn upgrade(links: Arc<Links>) {
    loop {
        tokio::time::sleep(UPGRADE_EVERY).await;
        for peer in links.relayed_peers() {
            let vias: Vec<NodeId> = links.rendezvous().iter().copied().filter(|v| *v != peer).collect();
            if let Ok(link) = links.punch(peer, &vias).await {
                tracing::info!(peer = %links.name_of(peer), at = %link.remote_addr(), "direct path now, instead of the relay");
                links.adopt(link);
            }
        }
    }
}

/// Waits for introductions at `via`, again and again (each wait lasts at
/// most `link.meet`'s 25 s, which also keeps this node's NAT mapping to
/// `via` alive).
async fn wait(links: Arc<Links>, via: NodeId) {
    let mut pause = Duration::from_secs(1);
    loop {
        let asked = links.request::<_, MeetResponse>(via, Verb::LinkMeet, &MeetRequest { want: None }).await;
        match asked {
            Ok(MeetResponse { peer: Some(peer), relay: true, .. }) => {
                pause = Duration::from_secs(1);
                tokio::spawn(join_relay(links.clone(), via, peer));
            }
            Ok(MeetResponse { peer: Some(peer), addr: Some(addr), .. }) => {
                pause = Duration::from_secs(1);
                tokio::spawn(punch(links.clone(), peer, addr));
            }
            Ok(_) => pause = Duration::from_secs(1),
            Err(e) => {
                tracing::debug!("waiting at rendezvous {}: {e}", links.name_of(via));
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(30));
            }
        }
    }
}

/// Joins the relayed path `peer` asked `via` for: its packets then arrive
/// here as if from its virtual address, and it dials this node over it.
async fn join_relay(links: Arc<Links>, via: NodeId, peer: NodeId) {
    if !matches!(links.peers().find(&peer), Ok(Some(_))) {
        tracing::warn!(peer = %peer.short(), "a relay asked for a path to a node that is not a trusted peer here: ignored");
        return;
    }
    let Some(socket) = links.endpoint().relay().cloned() else { return };
    let joined = async {
        let link = links.get(via).await.map_err(|e| e.to_string())?;
        link.relay(peer).await.map_err(|e| e.to_string())
    };
    match joined.await {
        Ok((send, recv)) => {
            tracing::info!(peer = %links.name_of(peer), via = %links.name_of(via), "joined a relayed path");
            socket.attach(&peer, send, recv);
        }
        Err(e) => tracing::debug!(peer = %links.name_of(peer), "joining a relayed path failed: {e}"),
    }
}

/// Dials `peer` at `addr` while it dials here; keeps the link.
async fn punch(links: Arc<Links>, peer: NodeId, addr: String) {
    // A rendezvous introduces only its own peers; this node talks only to
    // its own.
    if !matches!(links.peers().find(&peer), Ok(Some(_))) {
        tracing::warn!(peer = %peer.short(), "a rendezvous introduced a node that is not a trusted peer here: ignored");
        return;
    }
    let Ok(at) = addr.parse::<std::net::SocketAddr>() else {
        tracing::warn!(%addr, "a rendezvous gave an address that is not one: ignored");
        return;
    };
    let name = links.name_of(peer);
    match links.endpoint().punch(at, peer).await {
        Ok(link) => {
            tracing::info!(peer = %name, %at, "punched through to it");
            links.adopt(link);
            let now = alp_profiles::unix_now();
            let _ = links.peers().update(|ps| {
                if let Some(p) = ps.iter_mut().find(|p| p.node_id == peer) {
                    p.learn(at, How::Seen, now);
                }
                Ok(())
            });
        }
        Err(e) => tracing::debug!(peer = %name, %at, "punching failed: {e}"),
    }
}
