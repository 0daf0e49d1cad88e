//! What every networked command shares: a runtime, and dialling a trusted
//! peer by name (see [`alp_node::dial`]).

use alp_node::dial::PeerDialError;
pub(crate) use alp_node::dial::{Dialled, hang_up, me};
use alp_profiles::Profile;
use alp_profiles::config::Config;
use alp_profiles::peers::Peer;

use crate::error::{CliError, CliResult, usage};

/// A single-threaded runtime for client commands.
pub(crate) fn client_runtime() -> CliResult<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread().enable_all().build()?)
}

/// Dials `peer` at its addresses from a fresh ephemeral endpoint.
pub(crate) async fn dial(profile: &Profile, config: &Config, peer: &Peer) -> CliResult<Dialled> {
    alp_node::dial::dial(profile, config, peer).await.map_err(|e| match e {
        e @ PeerDialError::NoAddress { .. } => usage(e),
        PeerDialError::Dial(e) => CliError::from(e),
        PeerDialError::Io(e) => CliError::from(e),
    })
}
