//! The host's addresses, watched while the node serves on an unspecified
//! address (`[::]` or `0.0.0.0`): a laptop that moves to another network,
//! a DHCP lease that changes. When the addresses the node would announce
//! change, it announces the new ones from then on (handshakes, address
//! records, the serve record `alp invite` reads) and dials each trusted
//! peer it knows an address of again, so that their nodes learn from the
//! handshake where it is now; the new link replaces the kept one, and
//! requests still running on the old one finish there.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use alp_profiles::serve::{ServeGuard, ServeRecord};

use crate::wg::links::Links;

/// How often the interfaces are looked at (one netlink dump).
const EVERY: Duration = Duration::from_secs(3);
/// How long a dial to a peer after a change may take.
const DIAL_WITHIN: Duration = Duration::from_secs(10);

/// Watches for changes to what a node bound to `bound` announces (now
/// `announced`), if it is bound to an unspecified address.
pub(crate) fn start(links: Arc<Links>, bound: SocketAddr, announced: Vec<SocketAddr>, record: Arc<ServeGuard>) {
    if bound.ip().is_unspecified() {
        tokio::spawn(watch(links, bound, announced, record));
    }
}

async fn watch(links: Arc<Links>, bound: SocketAddr, mut announced: Vec<SocketAddr>, record: Arc<ServeGuard>) {
    let started_at = alp_profiles::unix_now();
    loop {
        tokio::time::sleep(EVERY).await;
        let now = match tokio::task::spawn_blocking(move || alp_link::advertised_addrs(bound)).await {
            Ok(now) => now,
            Err(_) => continue,
        };
        if now == announced {
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

/// Dials every trusted peer with a known address from where this node is
/// now, and keeps the new links.
async fn greet_again(links: &Arc<Links>) {
    let peers = links.peers().load().unwrap_or_default();
    let mut dials = tokio::task::JoinSet::new();
    for peer in peers.into_iter().filter(|p| !p.addrs.is_empty() || !p.learned.is_empty()) {
        let links = links.clone();
        dials.spawn(async move {
            match links.dial_known(peer.node_id, DIAL_WITHIN).await {
                Ok(link) => {
                    links.adopt(link);
                }
                Err(e) => tracing::debug!(peer = %peer.name, "greeting it from the new address: {e}"),
            }
        });
    }
    while dials.join_next().await.is_some() {}
}
