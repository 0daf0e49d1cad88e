//! What every networked command shares: this node's identity and limits,
//! a runtime, and dialling a trusted peer by name.

use std::time::Instant;

use alp_node::link::{Link, LinkEndpoint, LinkSettings, Me, resolve};
use alp_profiles::config::Config;
use alp_profiles::peers::Peer;
use alp_profiles::{Profile, unix_now};

use crate::error::{CliResult, usage};

/// This node as configured.
pub(crate) fn me(profile: &Profile, config: &Config) -> Me {
    let display_name = match config.node.display_name.trim() {
        "" => profile.name().to_string(),
        name => name.to_owned(),
    };
    Me { key: profile.identity().signing_key().clone(), display_name, addrs: Vec::new() }
}

/// A single-threaded runtime for client commands.
pub(crate) fn client_runtime() -> CliResult<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread().enable_all().build()?)
}

/// A dialled, authenticated link to a trusted peer.
pub(crate) struct Dialled {
    pub(crate) endpoint: LinkEndpoint,
    pub(crate) link: Link,
    pub(crate) connect_time: std::time::Duration,
}

/// Dials `peer` at its addresses from a fresh ephemeral endpoint.
pub(crate) async fn dial(profile: &Profile, config: &Config, peer: &Peer) -> CliResult<Dialled> {
    let settings = LinkSettings::from(&config.link);
    let addrs = resolve(&peer.addrs, settings.handshake_timeout).await;
    if addrs.is_empty() {
        return Err(usage(format!(
            "peer '{}' has no usable address: re-add it with `alp peer remove {0}` and `alp peer add {0} {} --addr HOST:PORT`",
            peer.name, peer.node_id
        )));
    }
    let endpoint = LinkEndpoint::client(addrs.first().copied(), me(profile, config), settings)?;
    let start = Instant::now();
    let link = endpoint.dial_any(&addrs, peer.node_id).await?;
    let connect_time = start.elapsed();
    record_seen(profile, peer);
    Ok(Dialled { endpoint, link, connect_time })
}

/// Notes that `peer` answered just now.
pub(crate) fn record_seen(profile: &Profile, peer: &Peer) {
    let result = profile.peers().mark_seen(&peer.node_id, unix_now());
    if let Err(e) = result {
        tracing::warn!("cannot record last_seen: {e}");
    }
}

/// Closes the link and lets the close reach the peer.
pub(crate) async fn hang_up(d: Dialled) {
    d.link.close();
    let _ = tokio::time::timeout(std::time::Duration::from_millis(200), d.endpoint.quinn().wait_idle()).await;
}
