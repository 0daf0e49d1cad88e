//! Tools that reach other nodes: ask a peer's agent, send a workspace file
//! to a peer as a blob, fetch a blob from a peer into the workspace. Each
//! call dials the peer afresh with this profile's identity; the peer's own
//! permissions decide (agent.ask, blob.put, blob.get).

use std::path::Path;
use std::time::Duration;

use alp_blobstore::BlobHash;
use alp_blobstore::store::Store;
use alp_profiles::config::Config;
use alp_profiles::{Home, Profile, ProfileName};
use alp_protocol::envelope::{AskEvent, AskRequest};

use crate::dial::{dial, hang_up};
use crate::link::silent;

/// How long `ask_peer` waits for each piece of the peer's answer.
const ASK_WAIT: Duration = Duration::from_secs(300);

/// What the link tools need: which profile acts, and its config.
#[derive(Debug, Clone)]
pub struct LinkTools {
    home: Home,
    profile: ProfileName,
    config: Config,
}

impl LinkTools {
    pub fn new(home: Home, profile: ProfileName, config: Config) -> Self {
        LinkTools { home, profile, config }
    }

    fn open(&self) -> Result<Profile, String> {
        Profile::open(&self.home, &self.profile).map_err(|e| e.to_string())
    }

    /// `ask_peer`: the peer's agent answers `prompt`.
    pub async fn ask_peer(&self, peer: &str, prompt: &str) -> Result<String, String> {
        let profile = self.open()?;
        let entry = profile.peers().get(peer).map_err(|e| e.to_string())?;
        let d = dial(&profile, &self.config, &entry).await.map_err(|e| e.to_string())?;
        let mut ask_id = [0u8; 16];
        getrandom::fill(&mut ask_id).map_err(|e| e.to_string())?;
        let request = AskRequest { prompt: prompt.to_owned(), system: None, ask_id: ask_id.to_vec() };
        let mut answer = String::new();
        let last = d
            .link
            .ask(&request, ASK_WAIT, |ev| match ev {
                AskEvent::Text { text } => answer.push_str(text),
                AskEvent::TurnEnd => answer.clear(),
                _ => {}
            })
            .await;
        hang_up(d).await;
        match last.map_err(|e| format!("peer {peer}: {e}"))? {
            AskEvent::Done { .. } => Ok(answer),
            AskEvent::Failed { message, .. } => Err(format!("peer {peer}: {message}")),
            _ => Err(format!("peer {peer} ended the answer oddly")),
        }
    }

    /// `send_blob`: imports `file` (already resolved inside the workspace)
    /// and pushes it to `peer`; returns its hash.
    pub async fn send_blob(&self, file: &Path, peer: &str) -> Result<String, String> {
        let profile = self.open()?;
        let entry = profile.peers().get(peer).map_err(|e| e.to_string())?;
        let store =
            Store::open(&profile.paths().blobs()).map_err(|e| e.to_string())?.with_quota(self.config.blob.store_quota);
        let info = store.import_file(file).map_err(|e| e.to_string())?;
        let d = dial(&profile, &self.config, &entry).await.map_err(|e| e.to_string())?;
        let sent = d.link.put_blob(&store, info.hash, &silent).await;
        hang_up(d).await;
        sent.map_err(|e| format!("sending to {peer}: {e}"))?;
        Ok(format!("sent {} bytes to {peer} as blob {}", info.size, info.hash))
    }

    /// `fetch_blob`: fetches `hash` from `peer` (verified) and writes it to
    /// `dest` (already resolved inside the workspace).
    pub async fn fetch_blob(&self, hash: &str, peer: &str, dest: &Path) -> Result<String, String> {
        let hash: BlobHash = hash.parse().map_err(|_| format!("{hash:?} is not a blob hash (64 hex characters)"))?;
        let profile = self.open()?;
        let store =
            Store::open(&profile.paths().blobs()).map_err(|e| e.to_string())?.with_quota(self.config.blob.store_quota);
        if store.get(&hash).is_err() {
            let entry = profile.peers().get(peer).map_err(|e| e.to_string())?;
            let d = dial(&profile, &self.config, &entry).await.map_err(|e| e.to_string())?;
            let got = d.link.get_blob(&store, hash, None, &silent).await;
            hang_up(d).await;
            got.map_err(|e| format!("fetching {hash} from {peer}: {e}"))?;
        }
        let size = store.export(&hash, dest).map_err(|e| e.to_string())?;
        Ok(format!("fetched blob {hash} ({size} bytes) from {peer}"))
    }
}
