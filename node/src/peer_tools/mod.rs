//! Tools that reach other nodes, offered to this profile's own agent:
//! ask a peer's agent, send a workspace file to a peer as a blob, fetch a
//! blob from a peer into the workspace. They implement the agent's
//! [`Tool`](alp_agent::tools::Tool) trait with the link; each call goes
//! through the profile's running node when there is one, else dials the
//! peer afresh with this profile's identity; the peer's own permissions
//! decide (agent.ask, blob.put, blob.get).

use std::sync::Arc;

use alp_agent::tools::{Registry, ShellConfig, Workspace};
use alp_blobstore::store::Store;
use alp_link::dial::{Dialled, with_peer};
use alp_profiles::config::Config;
use alp_profiles::peers::Peer;
use alp_profiles::{Home, Profile, ProfileName};

mod ask_peer;
mod fetch_blob;
mod send_blob;

/// The tools of this profile's own agent: the built-in ones in its
/// workspace, and the ones that reach peers.
pub(crate) fn registry(peers: Peers, workspace: &Arc<Workspace>, shell: &ShellConfig) -> Registry {
    let peers = Arc::new(peers);
    Registry::builtin(workspace, shell)
        .with(ask_peer::AskPeer::new(&peers))
        .with(send_blob::SendBlob::new(&peers, workspace))
        .with(fetch_blob::FetchBlob::new(&peers, workspace))
}

/// How the tools reach peers: as which profile, with which config.
#[derive(Debug, Clone)]
pub(crate) struct Peers {
    home: Home,
    profile: ProfileName,
    config: Config,
}

impl Peers {
    pub(crate) fn new(home: Home, profile: ProfileName, config: Config) -> Self {
        Self { home, profile, config }
    }

    fn open(&self) -> Result<Profile, String> {
        Profile::open(&self.home, &self.profile).map_err(|e| e.to_string())
    }

    /// The profile's blob store.
    fn store(&self, profile: &Profile) -> Result<Store, String> {
        crate::store::open(profile, &self.config).map_err(|e| e.to_string())
    }

    /// The profile, and its trusted peer `name`.
    fn open_with(&self, name: &str) -> Result<(Profile, Peer), String> {
        let profile = self.open()?;
        let peer = profile.peers().get(name).map_err(|e| e.to_string())?;
        Ok((profile, peer))
    }

    /// The profile's running node, if there is one: the tools then act
    /// through it, over the links it keeps (peers behind NATs included).
    fn node(&self, profile: &Profile) -> Option<crate::cmd::wg::Control> {
        let node = crate::cmd::wg::Control::of(profile);
        node.is_running().then_some(node)
    }

    /// Runs `work` on a link to `peer`.
    async fn with<T>(
        &self,
        profile: &Profile,
        peer: &Peer,
        work: impl AsyncFnOnce(&Dialled) -> T,
    ) -> Result<T, String> {
        with_peer(profile, &self.config, peer, work).await.map_err(|e| e.to_string())
    }
}
