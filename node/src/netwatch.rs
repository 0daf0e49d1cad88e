//! The host's addresses, watched while the node serves on an unspecified
//! address (`[::]` or `0.0.0.0`): a laptop that moves to another network,
//! a DHCP lease that changes. When the addresses the node would announce
//! change, and stay changed for a second look, it announces the new ones
//! from then on (handshakes, address records, the serve record `alp
//! invite` reads) and greets the peers it has been in touch with lately:
//! a handshake and a ping from the new address, on a connection of its
//! own closed after, tells their nodes where it is now. Kept links stay (QUIC
//! follows the new address where it can). Offline (nothing but loopback)
//! is not a change: the node waits for a network.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use alp_profiles::serve::{ServeGuard, ServeRecord};

use crate::wg::links::Links;

/// How often the interfaces are looked at (one netlink dump).
const EVERY: Duration = Duration::from_secs(3);
/// How long a greeting dial may take.
const DIAL_WITHIN: Duration = Duration::from_secs(10);
/// Greeting dials at once.
const GREETINGS: usize = 8;
/// Peers seen within this long are greeted (seconds).
const RECENT: u64 = 7 * 24 * 3600;

/// Watches for changes to what a node bound to `bound` announces (now
/// `announced`; its serve record, claimed at `started_at`), if it is bound
/// to an unspecified address.
pub(crate) fn start(
    links: Arc<Links>,
    bound: SocketAddr,
    announced: Vec<SocketAddr>,
    record: Arc<ServeGuard>,
    started_at: u64,
) {
    if bound.ip().is_unspecified() {
        tokio::spawn(watch(links, bound, announced, record, started_at));
    }
}

async fn watch(
    links: Arc<Links>,
    bound: SocketAddr,
    mut announced: Vec<SocketAddr>,
    record: Arc<ServeGuard>,
    started_at: u64,
) {
    let mut last_look = announced.clone();
    loop {
        tokio::time::sleep(EVERY).await;
        let now = match tokio::task::spawn_blocking(move || alp_link::advertised_addrs(bound)).await {
            Ok(now) => now,
            Err(_) => continue,
        };
        // Acted on once two looks agree (an interface coming up takes a
        // moment to get all its addresses), and never to go offline.
        let settled = now == last_look;
        last_look = now.clone();
        let offline = now.iter().all(|a| a.ip().is_loopback());
        if now == announced || !settled || offline {
            continue;
        }
        tracing::info!(was = ?announced, now = ?now, "this host's addresses changed: announcing the new ones");
        if let Err(e) = links.endpoint().set_addrs(now.clone()) {
            tracing::warn!("cannot announce the new addresses: {e}");
            continue;
        }
        if let Err(e) = record.update(&ServeRecord::new(bound, now.clone(), started_at)) {
            tracing::warn!("cannot update the serve record: {e}");
        }
        announced = now;
        greet_again(&links).await;
    }
}

/// Greets, [`GREETINGS`] at a time, each trusted peer this node has a
/// kept link to or has seen within [`RECENT`], at the addresses it knows:
/// a handshake from where this node is now, then the connection closes.
async fn greet_again(links: &Arc<Links>) {
    let store = links.peers().clone();
    let peers = tokio::task::spawn_blocking(move || store.load().unwrap_or_default()).await.unwrap_or_default();
    let since = alp_profiles::unix_now().saturating_sub(RECENT);
    let recent =
        |p: &alp_profiles::peers::Peer| links.is_connected(&p.node_id) || p.last_seen.is_some_and(|t| t >= since);
    let turns = Arc::new(tokio::sync::Semaphore::new(GREETINGS));
    let mut dials = tokio::task::JoinSet::new();
    for peer in peers.into_iter().filter(recent) {
        let (links, turns) = (links.clone(), turns.clone());
        dials.spawn(async move {
            let Ok(_turn) = turns.acquire_owned().await else { return };
            match links.dial_known(peer.node_id, DIAL_WITHIN).await {
                Ok(link) => {
                    // A round trip: the handshake has been taken in there
                    // before the connection closes.
                    let _ = tokio::time::timeout(DIAL_WITHIN, link.ping(0)).await;
                    link.close();
                }
                Err(e) => tracing::debug!(peer = %peer.name, "greeting it from the new address: {e}"),
            }
        });
    }
    while dials.join_next().await.is_some() {}
}
