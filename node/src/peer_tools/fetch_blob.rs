//! `fetch_blob`: a blob fetched by hash from a trusted peer (verified as
//! it arrives) into a workspace file.

use std::sync::Arc;

use alp_agent::provider::BoxFuture;
use alp_agent::tools::{Args, Spec, Tier, Tool, Workspace, arg, path_schema, text};
use alp_blobstore::BlobHash;
use alp_link::dial::Dialled;
use alp_link::silent;

use super::Peers;

/// Fetches a blob from a peer into the workspace.
#[derive(Debug)]
pub(crate) struct FetchBlob {
    peers: Arc<Peers>,
    workspace: Arc<Workspace>,
}

impl FetchBlob {
    pub(crate) fn new(peers: &Arc<Peers>, workspace: &Arc<Workspace>) -> Self {
        Self { peers: peers.clone(), workspace: workspace.clone() }
    }

    async fn fetch(&self, hash: &str, peer: &str, rel: &str) -> Result<String, String> {
        let dest = self.workspace.resolve_new(rel)?;
        let hash: BlobHash = hash.parse().map_err(|_| format!("{hash:?} is not a blob hash (64 hex characters)"))?;
        let profile = self.peers.open()?;
        let store = self.peers.store(&profile)?;
        if store.get(&hash).is_err()
            && let Some(node) = self.peers.node(&profile)
        {
            use crate::service::blob_fetch;
            let args = blob_fetch::Args {
                op: blob_fetch::OP.name.into(),
                peers: vec![peer.to_owned()],
                hash: hash.to_string(),
                ticket: None,
            };
            let got = node.run_with::<blob_fetch::Fetch>(&blob_fetch::OP, &args, |_| {}).await;
            got.map_err(|e| format!("fetching {hash} from {peer}: {}", e.error))?;
        }
        if store.get(&hash).is_err() {
            let entry = profile.peers().get(peer).map_err(|e| e.to_string())?;
            let get = async |d: &Dialled| d.link.get_blob(&store, hash, None, &silent).await;
            let got = self.peers.with(&profile, &entry, get).await?;
            got.map_err(|e| format!("fetching {hash} from {peer}: {e}"))?;
        }
        let size = store.export(&hash, &dest).map_err(|e| e.to_string())?;
        Ok(format!("fetched blob {hash} ({size} bytes) from {peer}"))
    }
}

impl Tool for FetchBlob {
    fn spec(&self) -> Spec {
        Spec::new("fetch_blob", Tier::SideEffect, "Fetch a blob by hash from a trusted peer into a workspace file.")
            .arg("peer", text("The peer's name"))
            .arg("hash", text("BLAKE3 hash, 64 hex characters"))
            .arg("path", path_schema())
    }

    fn call<'a>(&'a self, args: &'a Args) -> BoxFuture<'a, Result<String, String>> {
        Box::pin(async move {
            let rel = arg(args, "path")?;
            self.fetch(arg(args, "hash")?, arg(args, "peer")?, rel).await
        })
    }
}
