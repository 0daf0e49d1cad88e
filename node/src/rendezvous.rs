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

use alp_protocol::envelope::{MeetRequest, MeetResponse};
use alp_protocol::{NodeId, Verb};

use crate::wg::links::Links;

/// Starts waiting at every rendezvous; runs until the process ends.
pub(crate) fn start(links: Arc<Links>) {
    let limits = Arc::new(Limits::default());
    for &via in links.rendezvous() {
        tokio::spawn(wait(links.clone(), via, limits.clone()));
    }
    if !links.rendezvous().is_empty() {
        tokio::spawn(upgrade(links));
    }
}

/// Punches and relay joins in flight at once, over all rendezvous.
const IN_FLIGHT: usize = 8;
/// Introductions taken from one rendezvous per minute; more are ignored
/// (a rendezvous cannot make this node dial without end).
const PER_MINUTE: usize = 10;

/// What bounds the work rendezvous can cause.
struct Limits {
    slots: tokio::sync::Semaphore,
    /// Peers with a punch (false) or a relay join (true) in flight: one of
    /// each per peer (a relay is asked for while a punch still runs).
    busy: std::sync::Mutex<std::collections::HashSet<(NodeId, bool)>>,
}

impl Default for Limits {
    fn default() -> Self {
        Self { slots: tokio::sync::Semaphore::new(IN_FLIGHT), busy: Default::default() }
    }
}

impl Limits {
    /// A slot for a punch or relay join (`relay`) to `peer`, if one is
    /// free and none of that kind is under way.
    fn take(self: &Arc<Self>, peer: NodeId, relay: bool) -> Option<Busy> {
        let permit = self.slots.try_acquire().ok()?;
        permit.forget();
        if !self.busy.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert((peer, relay)) {
            self.slots.add_permits(1);
            return None;
        }
        Some(Busy { limits: self.clone(), key: (peer, relay) })
    }
}

/// A taken slot, given back when dropped.
struct Busy {
    limits: Arc<Limits>,
    key: (NodeId, bool),
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.limits.busy.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&self.key);
        self.limits.slots.add_permits(1);
    }
}

/// How often relayed links try for a direct path, at first; each failure
/// doubles the wait, up to [`UPGRADE_MAX`].
const UPGRADE_EVERY: Duration = Duration::from_secs(5);
const UPGRADE_MAX: Duration = Duration::from_secs(600);
/// How long an upgrade waits for a peer's known addresses to answer.
const DIRECT_WITHIN: Duration = Duration::from_secs(3);

/// Prefers a direct path as soon as one works: each peer reached through a
/// relay is dialled at the addresses it is known at (its address record,
/// learned over the relayed link, may list one this node can reach) and
/// punched to again, after 5 s, then less and less often; a link that
/// comes up replaces the relayed one (which then closes).
async fn upgrade(links: Arc<Links>) {
    let mut next: std::collections::HashMap<NodeId, (tokio::time::Instant, Duration)> = Default::default();
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let relayed = links.relayed_peers();
        next.retain(|p, _| relayed.contains(p));
        let now = tokio::time::Instant::now();
        for peer in relayed {
            let (when, pause) = *next.entry(peer).or_insert((now + UPGRADE_EVERY, UPGRADE_EVERY));
            if now < when {
                continue;
            }
            let vias: Vec<NodeId> = links.rendezvous().iter().copied().filter(|v| *v != peer).collect();
            let direct = links.dial_known(peer, DIRECT_WITHIN).await;
            let result = match direct {
                Ok(link) => Ok(link),
                Err(_) => links.punch(peer, &vias).await,
            };
            match result {
                Ok(link) => {
                    tracing::info!(peer = %links.name_of(peer), at = %link.remote_addr(), "direct path now, instead of the relay");
                    links.adopt(link);
                    next.remove(&peer);
                }
                Err(_) => {
                    let pause = (pause * 2).min(UPGRADE_MAX);
                    next.insert(peer, (tokio::time::Instant::now() + pause, pause));
                }
            }
        }
    }
}

/// Waits for introductions at `via`, again and again (each wait lasts at
/// most `link.meet`'s 25 s, which also keeps this node's NAT mapping to
/// `via` alive).
async fn wait(links: Arc<Links>, via: NodeId, limits: Arc<Limits>) {
    let mut pause = Duration::from_secs(1);
    let mut recent: std::collections::VecDeque<tokio::time::Instant> = Default::default();
    loop {
        let asked_at = tokio::time::Instant::now();
        // This node's address record, passed on to whoever asks for it.
        let record = links.endpoint().me().addr_record(alp_profiles::unix_now());
        let asked = links.request::<_, MeetResponse>(via, Verb::LinkMeet, &MeetRequest { want: None, record }).await;
        let answer = match asked {
            Ok(a) => {
                pause = Duration::from_secs(1);
                a
            }
            Err(e) => {
                tracing::debug!("waiting at rendezvous {}: {e}", links.name_of(via));
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(30));
                continue;
            }
        };
        let Some(peer) = answer.peer else {
            // An empty answer at once (another wait of this node replaced
            // this one): not in a tight loop.
            if asked_at.elapsed() < Duration::from_secs(1) {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            continue;
        };
        let now = tokio::time::Instant::now();
        while recent.front().is_some_and(|t| now.duration_since(*t) > Duration::from_secs(60)) {
            recent.pop_front();
        }
        if recent.len() >= PER_MINUTE {
            tracing::warn!(via = %links.name_of(via), "too many introductions from this rendezvous: ignoring them for now");
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        recent.push_back(now);
        let Some(busy) = limits.take(peer, answer.relay) else { continue };
        if answer.relay {
            tokio::spawn(join_relay(links.clone(), via, peer, busy));
        } else if let Some(addr) = answer.addr {
            tokio::spawn(punch(links.clone(), peer, addr, answer.record, busy));
        }
    }
}

/// Joins the relayed path `peer` asked `via` for: its packets then arrive
/// here as if from its virtual address, and it dials this node over it.
async fn join_relay(links: Arc<Links>, via: NodeId, peer: NodeId, _busy: Busy) {
    if !matches!(links.peers().find(&peer), Ok(Some(_))) {
        tracing::warn!(peer = %peer.short(), "a relay asked for a path to a node that is not a trusted peer here: ignored");
        return;
    }
    let Some(socket) = links.endpoint().relay().cloned() else { return };
    let Some(link) = links.live(&via) else { return };
    let limit = links.endpoint().settings().request_timeout;
    match tokio::time::timeout(limit, link.relay(peer)).await {
        Ok(Ok((send, recv))) => {
            if socket.attach(&peer, send, recv, alp_link::verbs::meet::RELAY_IDLE) {
                tracing::info!(peer = %links.name_of(peer), via = %links.name_of(via), "joined a relayed path");
            }
        }
        Ok(Err(e)) => tracing::debug!(peer = %links.name_of(peer), "joining a relayed path failed: {e}"),
        Err(_) => tracing::debug!(peer = %links.name_of(peer), "joining a relayed path: no answer within {limit:?}"),
    }
}

/// Dials `peer` at `addr` (and at the addresses of its address record, if
/// the rendezvous passed one on) while it dials here; keeps the link.
async fn punch(links: Arc<Links>, peer: NodeId, addr: String, record: Option<Vec<u8>>, _busy: Busy) {
    // A rendezvous introduces only its own peers; this node talks only to
    // its own.
    if !matches!(links.peers().find(&peer), Ok(Some(_))) {
        tracing::warn!(peer = %peer.short(), "a rendezvous introduced a node that is not a trusted peer here: ignored");
        return;
    }
    let Some(at) = addr.parse::<std::net::SocketAddr>().ok().filter(alp_link::dialable) else {
        tracing::warn!(%addr, "a rendezvous gave an address not worth dialling: ignored");
        return;
    };
    // Already linked directly: nothing to punch.
    if links.is_connected(&peer) && !links.relayed_peers().contains(&peer) {
        return;
    }
    let name = links.name_of(peer);
    let addrs = links.punch_addrs(peer, at, record.as_deref());
    match links.endpoint().punch_any(&addrs, peer).await {
        Ok(link) => {
            tracing::info!(peer = %name, at = %link.remote_addr(), "punched through to it");
            links.adopt(link);
        }
        Err(e) => tracing::debug!(peer = %name, ?addrs, "punching failed: {e}"),
    }
}
