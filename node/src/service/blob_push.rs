//! `blob-push`: send blobs of the store to a trusted peer over the node's
//! kept link (`alp send --to`, `alp blob put` while the node runs). The
//! command has already put them in the store; the node reads them there.

use std::sync::Arc;
use std::time::Duration;

use alp_blobstore::BlobHash;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Op, OpError, args};
use crate::wg::WgNode;

pub(crate) const OP: Op = Op { name: "blob-push", run: |node, line, _| Box::pin(run(node, line)), timeout: TIMEOUT };

/// A push may be large; the link's own timeouts end a stalled one sooner.
const TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// The request.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Args {
    /// Always `blob-push`.
    pub(crate) op: String,
    /// The peer's name here.
    pub(crate) peer: String,
    /// The blobs, in the order to send them (a folder's files, then its
    /// manifest).
    pub(crate) hashes: Vec<String>,
}

/// The answer.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Pushed {
    pub(crate) size: u64,
    pub(crate) sent: u64,
    pub(crate) already_there: bool,
}

async fn run(node: Arc<WgNode>, line: Value) -> Result<Value, OpError> {
    let a: Args = args(line)?;
    let peer = node.links.peers().get(&a.peer).map_err(|e| OpError::Usage(e.to_string()))?;
    let mut hashes = Vec::with_capacity(a.hashes.len());
    for h in &a.hashes {
        hashes.push(h.parse::<BlobHash>().map_err(|e| OpError::Usage(format!("{h}: {e}")))?);
    }
    let link = node.links.get(peer.node_id).await.map_err(|e| OpError::Failed(e.to_string()))?;
    let mut out = Pushed { already_there: true, ..Default::default() };
    for h in hashes {
        let size = node.store.get(&h).map_err(|e| OpError::Usage(format!("{h}: {e}")))?.size;
        let tracked = node.transfers.begin(peer.node_id, h, true, size);
        let pushed =
            link.put_blob(&node.store, h, &|done, total| tracked.progress(done, total)).await.map_err(|e| {
                let message = format!("sending {h} to '{}' failed: {e}", a.peer);
                // A refusal is the caller's to fix (exit 2), as when the
                // command dials itself; a transfer cut short can resume.
                match crate::error::remote_code(&e) {
                    2 => OpError::Usage(message),
                    _ => OpError::Failed(format!(
                        "{message}\n(the peer keeps what it verified: run the same command again to resume)"
                    )),
                }
            })?;
        out.size += pushed.size;
        out.sent += pushed.sent;
        out.already_there &= pushed.already_there;
    }
    serde_json::to_value(out).map_err(|e| OpError::Failed(e.to_string()))
}
