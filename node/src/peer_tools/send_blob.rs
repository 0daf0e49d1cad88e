//! `send_blob`: a workspace file, pushed to a trusted peer as a blob.

use std::sync::Arc;

use alp_agent::provider::BoxFuture;
use alp_agent::tools::{Args, Spec, Tier, Tool, Workspace, arg, path_schema, text};
use alp_link::dial::Dialled;
use alp_link::silent;

use super::Peers;

/// Sends a workspace file to a peer.
#[derive(Debug)]
pub(crate) struct SendBlob {
    peers: Arc<Peers>,
    workspace: Arc<Workspace>,
}

impl SendBlob {
    pub(crate) fn new(peers: &Arc<Peers>, workspace: &Arc<Workspace>) -> Self {
        Self { peers: peers.clone(), workspace: workspace.clone() }
    }

    async fn send(&self, rel: &str, peer: &str) -> Result<String, String> {
        let file = self.workspace.resolve(rel)?;
        let (profile, entry) = self.peers.open_with(peer)?;
        let store = self.peers.store(&profile)?;
        let info = store.import_file(&file).map_err(|e| e.to_string())?;
        if let Some(node) = self.peers.node(&profile) {
            use crate::service::blob_push;
            let args = blob_push::Args {
                op: blob_push::OP.name.into(),
                peer: peer.to_owned(),
                hashes: vec![info.hash.to_string()],
            };
            let pushed = node.run_with::<blob_push::Pushed>(&blob_push::OP, &args, |_| {}).await;
            pushed.map_err(|e| format!("sending to {peer}: {}", e.error))?;
        } else {
            let put = async |d: &Dialled| d.link.put_blob(&store, info.hash, &silent).await;
            let sent = self.peers.with(&profile, &entry, put).await?;
            sent.map_err(|e| format!("sending to {peer}: {e}"))?;
        }
        Ok(format!("sent {} bytes to {peer} as blob {}", info.size, info.hash))
    }
}

impl Tool for SendBlob {
    fn spec(&self) -> Spec {
        Spec::new("send_blob", Tier::SideEffect, "Send a workspace file to a trusted peer as a verified blob.")
            .arg("peer", text("The peer's name"))
            .arg("path", path_schema())
    }

    fn call<'a>(&'a self, args: &'a Args) -> BoxFuture<'a, Result<String, String>> {
        Box::pin(async move { self.send(arg(args, "path")?, arg(args, "peer")?).await })
    }
}
