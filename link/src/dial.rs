//! Reaching a trusted peer of a profile by its name: this node's identity
//! as configured, a fresh client endpoint, the peer's addresses in turn,
//! the work, then hanging up. Every command and tool that talks to one
//! peer goes through [`with_peer`].

use std::time::{Duration, Instant};

use alp_profiles::config::Config;
use alp_profiles::peers::{NoiseKey, Peer, PeerStore};
use alp_profiles::{Profile, unix_now};
use alp_protocol::NodeId;
use alp_protocol::addr_record::{AddrRecord, AddrRecordError};

use crate::{DialError, Link, LinkEndpoint, LinkSettings, Me, resolve};

/// This node as configured.
pub fn me(profile: &Profile, config: &Config) -> Me {
    let display_name = match config.node.display_name.trim() {
        "" => profile.name().to_string(),
        name => name.to_owned(),
    };
    Me { key: profile.identity().signing_key().clone(), display_name, addrs: Vec::new() }
}

/// A dialled, authenticated link to a trusted peer.
#[derive(Debug)]
pub struct Dialled {
    /// The peer's entry.
    pub peer: Peer,
    /// The endpoint the link runs on.
    pub endpoint: LinkEndpoint,
    /// The link.
    pub link: Link,
    /// From the first packet to an authenticated link.
    pub connect_time: Duration,
}

/// Why a peer could not be reached.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PeerDialError {
    /// The entry has no address that resolves.
    #[error("peer '{name}' ({node_id}) has no usable address: give it one with `alp peer set {name} --addr HOST:PORT`")]
    NoAddress {
        /// The peer's name.
        name: String,
        /// Its node id.
        node_id: String,
    },
    /// Every address failed.
    #[error(transparent)]
    Dial(#[from] DialError),
    /// A local socket could not be opened.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Dials `peer` (a trusted peer of `profile`), runs `work` on the link,
/// and hangs up whatever `work` returned.
pub async fn with_peer<T>(
    profile: &Profile,
    config: &Config,
    peer: &Peer,
    work: impl AsyncFnOnce(&Dialled) -> T,
) -> Result<T, PeerDialError> {
    let dialled = dial(profile, config, peer.clone()).await?;
    let out = work(&dialled).await;
    hang_up(dialled).await;
    Ok(out)
}

/// Dials `peer` at its addresses from a fresh ephemeral endpoint, and
/// notes that it answered.
pub async fn dial(profile: &Profile, config: &Config, peer: Peer) -> Result<Dialled, PeerDialError> {
    let settings = LinkSettings::from(&config.link);
    let addrs = resolve(&peer.dial_order(unix_now()), settings.handshake_timeout).await;
    if addrs.is_empty() {
        return Err(PeerDialError::NoAddress { name: peer.name.to_string(), node_id: peer.node_id.to_string() });
    }
    let endpoint = LinkEndpoint::client(me(profile, config), settings)?;
    if let Some(NoiseKey(key)) = peer.noise_key {
        endpoint.known_keys().remember(peer.node_id, key);
    }
    let start = Instant::now();
    let link = endpoint.dial_any(&addrs, peer.node_id).await?;
    let connect_time = start.elapsed();
    record_seen(profile, &peer, &link);
    Ok(Dialled { peer, endpoint, link, connect_time })
}

/// Notes that `peer` answered just now, on `link` (and where).
fn record_seen(profile: &Profile, peer: &Peer, link: &Link) {
    let key = NoiseKey(link.remote().static_key);
    if let Err(e) = profile.peers().dialled(&peer.node_id, unix_now(), key, link.remote_addr()) {
        tracing::warn!("cannot record last_seen: {e}");
    }
}

/// Checks `record`, a signed address record said to be `node`'s (from its
/// `link.info` answer over a link that authenticated it, or passed on by a
/// rendezvous). `None`: there was none.
pub fn check_record(node: &NodeId, record: Option<&[u8]>) -> Option<Result<AddrRecord, AddrRecordError>> {
    let checked = AddrRecord::verify(record?, node, unix_now());
    if let Err(e) = &checked {
        tracing::warn!(peer = %node.short(), "refused its address record: {e}");
    }
    Some(checked)
}

/// Learns the addresses of a checked `record` into `peers` (reads and
/// writes the peers file: not on an async runtime's threads). `over`: the
/// address of the link it came over from the node itself (its loopback
/// addresses count only over a loopback link); `None`: passed on by a
/// rendezvous, trusted for at most [`crate::verbs::info::RECORD_LIFETIME`]
/// whatever it says.
pub fn learn_record(peers: &PeerStore, record: &AddrRecord, over: Option<std::net::SocketAddr>) {
    let now = unix_now();
    let (until, local) = match over {
        Some(at) => (record.expires_at, crate::addrs::canonical(at).ip().is_loopback()),
        None => (now.saturating_add(crate::verbs::info::RECORD_LIFETIME), false),
    };
    if let Err(e) = peers.announced(&record.node_id, record, now, until, local) {
        tracing::warn!("cannot record the addresses {} announces: {e}", record.node_id.short());
    }
}

/// Closes the link and lets the close reach the peer.
pub async fn hang_up(d: Dialled) {
    d.link.close();
    let _ = tokio::time::timeout(Duration::from_millis(200), d.endpoint.quinn().wait_idle()).await;
}
