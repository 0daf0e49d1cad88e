//! What every networked command shares: a runtime, and running work on a
//! link to a trusted peer (see [`alp_link::dial`]).

use crate::say::status;
use alp_link::dial::{Dialled, PeerDialError};
use alp_profiles::Profile;
use alp_profiles::config::Config;
use alp_profiles::peers::Peer;

use crate::error::{CliError, CliResult, usage};

/// A single-threaded runtime for client commands.
pub(crate) fn client_runtime() -> CliResult<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread().enable_all().build()?)
}

/// Runs `work` on a link to `peer`, then hangs up.
pub(crate) async fn with_peer<T>(
    profile: &Profile,
    config: &Config,
    peer: &Peer,
    work: impl AsyncFnOnce(&Dialled) -> CliResult<T>,
) -> CliResult<T> {
    connecting(peer);
    alp_link::dial::with_peer(profile, config, peer, work).await.map_err(dial_error)?
}

/// On a terminal, says whom alp is dialling and where, so a silent peer
/// is not a silent wait.
fn connecting(peer: &Peer) {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return;
    }
    let addrs: Vec<String> = peer.addrs.iter().map(ToString::to_string).collect();
    match addrs.as_slice() {
        [] => {}
        [one] => status!("connecting to {} at {one}...", peer.name),
        many => status!("connecting to {} at {}...", peer.name, many.join(" or ")),
    }
}

fn dial_error(e: PeerDialError) -> CliError {
    match e {
        e @ PeerDialError::NoAddress { .. } => usage(e),
        PeerDialError::Dial(e) => e.into(),
        PeerDialError::Io(e) => e.into(),
        other => CliError::from(std::io::Error::other(other.to_string())),
    }
}

/// Runs `work` on links to every peer of `peers` that answers (dialled at
/// once; the others are named on stderr), then hangs up. Fails if none
/// answers.
pub(crate) async fn with_peers<T>(
    profile: &Profile,
    config: &Config,
    peers: &[Peer],
    work: impl AsyncFnOnce(&[Dialled]) -> CliResult<T>,
) -> CliResult<T> {
    peers.iter().for_each(connecting);
    let dials = peers.iter().map(|p| alp_link::dial::dial(profile, config, p.clone()));
    let mut up = Vec::new();
    let mut first_error = None;
    for (peer, d) in peers.iter().zip(futures_util::future::join_all(dials).await) {
        match d {
            Ok(d) => up.push(d),
            Err(e) => {
                status!("'{}' cannot be reached, fetching without it: {e}", peer.name);
                first_error.get_or_insert(e);
            }
        }
    }
    if up.is_empty() {
        return Err(match first_error {
            Some(e) => dial_error(e),
            None => usage("no peer to fetch from"),
        });
    }
    let out = work(&up).await;
    futures_util::future::join_all(up.into_iter().map(alp_link::dial::hang_up)).await;
    out
}
