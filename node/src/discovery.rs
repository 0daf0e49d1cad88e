//! Trusted peers on the local network, found by DNS-SD over mDNS
//! (`mdns-sd`), with nothing typed.
//!
//! A serving node announces the service `_alp._udp.local.` with its port
//! and one TXT property, `t`: a tag that changes every hour, the first 8
//! bytes of BLAKE3 keyed by the node id over "alp lan tag v1" and the hour.
//! A stranger on the network sees that an alp node listens at an address,
//! and a tag it can tie neither to a node id nor to the same node's tag
//! of another hour. A trusted peer knows the node id, computes the tag
//! (for this hour and the ones either side, for clocks that differ) and
//! learns the address (`How::Lan`), which its dials then try first.
//!
//! Off with `node.discovery = false`; never on for a node that listens
//! on loopback only (nothing on the network could reach it).

use std::net::SocketAddr;
use std::time::Duration;

use alp_profiles::peers::{How, Peer, PeerStore};
use alp_profiles::unix_now;
use alp_protocol::NodeId;
use mdns_sd::{ServiceDaemon, ServiceEvent, ServiceInfo};

/// The DNS-SD service type.
pub(crate) const SERVICE: &str = "_alp._udp.local.";
/// How long a tag lasts.
const HOUR: u64 = 3600;

/// The tag `node` announces during `hour` (Unix time / 3600).
pub(crate) fn tag(node: &NodeId, hour: u64) -> String {
    let mut h = blake3::Hasher::new_keyed(node.as_bytes());
    h.update(b"alp lan tag v1");
    h.update(&hour.to_le_bytes());
    h.finalize().as_bytes()[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// The trusted peer whose tag `tag` is, around `now` (Unix seconds).
pub(crate) fn owner<'a>(peers: &'a [Peer], tag: &str, now: u64) -> Option<&'a Peer> {
    let hour = now / HOUR;
    peers.iter().find(|p| [hour, hour.saturating_sub(1), hour + 1].iter().any(|&h| self::tag(&p.node_id, h) == tag))
}

/// A node announced on the network.
#[derive(Debug, Clone)]
pub(crate) struct Nearby {
    pub(crate) tag: String,
    pub(crate) addrs: Vec<SocketAddr>,
}

/// The addresses of a resolved announcement worth dialling.
fn nearby(r: &mdns_sd::ResolvedService) -> Option<Nearby> {
    let tag = r.get_property_val_str("t")?.to_owned();
    if tag.len() != 16 || r.port == 0 {
        return None;
    }
    let mut addrs: Vec<SocketAddr> = r
        .get_addresses()
        .iter()
        .map(|ip| ip.to_ip_addr())
        // Only addresses a LAN uses (an announcement is not authenticated:
        // it must not point this node at hosts elsewhere). A link-local
        // IPv6 address needs its interface, which is not carried here.
        .filter(|ip| alp_link::is_private(*ip) && !alp_link::is_v6_link_local(*ip))
        .map(|ip| SocketAddr::new(ip, r.port))
        .collect();
    addrs.sort();
    (!addrs.is_empty()).then_some(Nearby { tag, addrs })
}

/// The node's presence on the LAN: announcing until dropped, and learning
/// trusted peers' addresses as they announce.
pub(crate) struct Lan {
    daemon: ServiceDaemon,
}

impl std::fmt::Debug for Lan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Lan")
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        let _ = self.daemon.shutdown();
    }
}

/// Starts announcing `me` listening on `bound` and learning peers'
/// addresses into `peers`. `None` when the node listens on loopback only.
pub(crate) fn start(me: NodeId, bound: SocketAddr, peers: PeerStore) -> Result<Option<Lan>, mdns_sd::Error> {
    if bound.ip().is_loopback() {
        return Ok(None);
    }
    let daemon = ServiceDaemon::new()?;
    let events = daemon.browse(SERVICE)?;
    let d = daemon.clone();
    std::thread::Builder::new()
        .name("alp-lan".into())
        .spawn(move || run(d, events, me, bound, peers))
        .map_err(|e| mdns_sd::Error::Msg(format!("cannot start the discovery thread: {e}")))?;
    Ok(Some(Lan { daemon }))
}

/// Announces under this hour's tag (again when the hour turns) and learns
/// from what others announce, until the daemon shuts down.
fn run(
    daemon: ServiceDaemon,
    events: mdns_sd::Receiver<ServiceEvent>,
    me: NodeId,
    bound: SocketAddr,
    peers: PeerStore,
) {
    let mut announced: Option<(u64, String)> = None;
    let mut tags = Tags::default();
    // When each peer's LAN address was last written (at most once a minute).
    let mut written: std::collections::HashMap<NodeId, std::time::Instant> = Default::default();
    loop {
        let now = unix_now();
        let hour = now / HOUR;
        if announced.as_ref().is_none_or(|(h, _)| *h != hour) {
            if let Some((_, old)) = announced.take() {
                let _ = daemon.unregister(&old);
            }
            match announce(&daemon, &me, bound, hour) {
                Ok(fullname) => announced = Some((hour, fullname)),
                Err(e) => tracing::warn!("cannot announce this node on the local network: {e}"),
            }
        }
        let left = Duration::from_secs((hour + 1) * HOUR - now.min((hour + 1) * HOUR - 1));
        match events.recv_timeout(left) {
            Ok(ServiceEvent::ServiceResolved(r)) => {
                let Some(n) = nearby(&r) else { continue };
                let Some(id) = tags.owner(&peers, &n.tag) else { continue };
                if id == me || written.get(&id).is_some_and(|t| t.elapsed() < Duration::from_secs(60)) {
                    continue;
                }
                if written.len() > 4096 {
                    written.clear();
                }
                written.insert(id, std::time::Instant::now());
                learn(&peers, &n, id);
            }
            Ok(_) | Err(mdns_sd::RecvTimeoutError::Timeout) => {}
            Err(mdns_sd::RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// The tags of the trusted peers for this hour and the ones either side,
/// computed once a minute rather than per announcement.
#[derive(Default)]
struct Tags {
    made: Option<std::time::Instant>,
    table: std::collections::HashMap<String, NodeId>,
}

impl Tags {
    fn owner(&mut self, peers: &PeerStore, tag: &str) -> Option<NodeId> {
        if self.made.is_none_or(|t| t.elapsed() > Duration::from_secs(60)) {
            let hour = unix_now() / HOUR;
            self.table.clear();
            for p in peers.load().unwrap_or_default() {
                for h in [hour.saturating_sub(1), hour, hour + 1] {
                    self.table.insert(self::tag(&p.node_id, h), p.node_id);
                }
            }
            self.made = Some(std::time::Instant::now());
        }
        self.table.get(tag).copied()
    }
}

fn announce(daemon: &ServiceDaemon, me: &NodeId, bound: SocketAddr, hour: u64) -> Result<String, mdns_sd::Error> {
    let tag = tag(me, hour);
    let host = format!("alp-{tag}.local.");
    let props = [("v", "1"), ("t", tag.as_str())];
    let info = if bound.ip().is_unspecified() {
        ServiceInfo::new(SERVICE, &tag, &host, "", bound.port(), &props[..])?.enable_addr_auto()
    } else {
        ServiceInfo::new(SERVICE, &tag, &host, bound.ip(), bound.port(), &props[..])?
    };
    let fullname = info.get_fullname().to_owned();
    daemon.register(info)?;
    tracing::debug!(%tag, "announced on the local network");
    Ok(fullname)
}

/// Records trusted peer `id`'s LAN addresses (at most
/// `alp_profiles::peers::MAX_LAN` are kept).
fn learn(peers: &PeerStore, n: &Nearby, id: NodeId) {
    let now = unix_now();
    let result = peers.update(|ps| {
        if let Some(p) = ps.iter_mut().find(|p| p.node_id == id) {
            for a in n.addrs.iter().rev() {
                p.learn(*a, How::Lan, now);
            }
        }
        Ok(())
    });
    match result {
        Ok(()) => tracing::info!(peer = %id.short(), addrs = ?n.addrs, "found on the local network"),
        Err(e) => tracing::warn!("cannot record {}'s address on the local network: {e}", id.short()),
    }
}

/// Browses for `wait` and returns every node announced meanwhile (for
/// `alp peer discover`).
pub(crate) fn browse(wait: Duration) -> Result<Vec<Nearby>, mdns_sd::Error> {
    let daemon = ServiceDaemon::new()?;
    let events = daemon.browse(SERVICE)?;
    let deadline = std::time::Instant::now() + wait;
    let mut found: Vec<Nearby> = Vec::new();
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        match events.recv_timeout(left) {
            Ok(ServiceEvent::ServiceResolved(r)) => {
                if let Some(n) = nearby(&r) {
                    match found.iter_mut().find(|f| f.tag == n.tag) {
                        Some(f) => {
                            f.addrs.extend(n.addrs);
                            f.addrs.sort();
                            f.addrs.dedup();
                        }
                        None => found.push(n),
                    }
                }
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    let _ = daemon.shutdown();
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tag_changes_every_hour_and_only_its_node_matches_it() {
        let a = NodeId::from(ed25519_dalek::SigningKey::from_bytes(&[1; 32]).verifying_key());
        let b = NodeId::from(ed25519_dalek::SigningKey::from_bytes(&[2; 32]).verifying_key());
        let now = 1_800_000_000;
        let t = tag(&a, now / HOUR);
        assert_eq!(t.len(), 16);
        assert_ne!(t, tag(&a, now / HOUR + 1));
        assert_ne!(t, tag(&b, now / HOUR));
        let peers = vec![Peer::new("b".parse().unwrap(), b, vec![], 0), Peer::new("a".parse().unwrap(), a, vec![], 0)];
        assert_eq!(owner(&peers, &t, now).map(|p| p.name.to_string()), Some("a".into()));
        // A clock an hour off either way still matches; two hours does not.
        assert!(owner(&peers, &t, now + HOUR).is_some() && owner(&peers, &t, now - HOUR).is_some());
        assert!(owner(&peers, &t, now + 2 * HOUR).is_none());
    }
}
