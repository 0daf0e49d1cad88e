//! Reaching a trusted peer by its entry: this node's identity as
//! configured, a fresh client endpoint, and the peer's addresses in turn.

use std::time::{Duration, Instant};

use alp_profiles::config::Config;
use alp_profiles::peers::{NoiseKey, Peer};
use alp_profiles::{Profile, unix_now};

use crate::link::{DialError, Link, LinkEndpoint, LinkSettings, Me, resolve};

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
    pub endpoint: LinkEndpoint,
    pub link: Link,
    pub connect_time: Duration,
}

/// Why a peer could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum PeerDialError {
    /// The entry has no address that resolves.
    #[error(
        "peer '{name}' has no usable address: re-add it with `alp peer remove {name}` and \
         `alp peer add {name} {node_id} --addr HOST:PORT`"
    )]
    NoAddress { name: String, node_id: String },
    #[error(transparent)]
    Dial(#[from] DialError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Dials `peer` at its addresses from a fresh ephemeral endpoint, and
/// notes that it answered.
pub async fn dial(profile: &Profile, config: &Config, peer: &Peer) -> Result<Dialled, PeerDialError> {
    let settings = LinkSettings::from(&config.link);
    let addrs = resolve(&peer.addrs, settings.handshake_timeout).await;
    if addrs.is_empty() {
        return Err(PeerDialError::NoAddress { name: peer.name.to_string(), node_id: peer.node_id.to_string() });
    }
    let endpoint = LinkEndpoint::client(addrs.first().copied(), me(profile, config), settings)?;
    if let Some(NoiseKey(key)) = peer.noise_key {
        endpoint.known_keys().remember(peer.node_id, key);
    }
    let start = Instant::now();
    let link = endpoint.dial_any(&addrs, peer.node_id).await?;
    let connect_time = start.elapsed();
    record_seen(profile, peer, &link);
    Ok(Dialled { endpoint, link, connect_time })
}

/// Notes that `peer` answered just now, on `link`.
fn record_seen(profile: &Profile, peer: &Peer, link: &Link) {
    let key = NoiseKey(link.remote().static_key);
    if let Err(e) = profile.peers().mark_seen(&peer.node_id, unix_now(), key) {
        tracing::warn!("cannot record last_seen: {e}");
    }
}

/// Closes the link and lets the close reach the peer.
pub async fn hang_up(d: Dialled) {
    d.link.close();
    let _ = tokio::time::timeout(Duration::from_millis(200), d.endpoint.quinn().wait_idle()).await;
}
