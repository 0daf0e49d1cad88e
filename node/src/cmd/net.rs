//! What every networked command shares: a runtime, and running work on a
//! link to a trusted peer (see [`alp_link::dial`]).

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
    alp_link::dial::with_peer(profile, config, peer, work).await.map_err(dial_error)?
}

fn dial_error(e: PeerDialError) -> CliError {
    match e {
        e @ PeerDialError::NoAddress { .. } => usage(e),
        PeerDialError::Dial(e) => e.into(),
        PeerDialError::Io(e) => e.into(),
        other => CliError::from(std::io::Error::other(other.to_string())),
    }
}
