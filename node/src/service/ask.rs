//! `ask`: a prompt for a trusted peer's agent, over the node's kept link
//! (`alp ask PEER` while the node runs). Each event of the answer is a
//! progress line; the answer is its last event (`done` or `failed`). If the
//! command goes away (Ctrl-C), the node cancels the ask on the peer.

use std::sync::Arc;
use std::time::Duration;

use alp_protocol::envelope::{AskEvent, AskRequest};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Op, OpError, Progress, args};
use crate::wg::WgNode;

pub(crate) const OP: Op =
    Op { name: "ask", run: |node, line, progress| Box::pin(run(node, line, progress)), timeout: TIMEOUT };

/// An ask may run long; the gap between its events has its own limit.
const TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// The request.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Args {
    /// Always `ask`.
    pub(crate) op: String,
    /// The peer's name here.
    pub(crate) peer: String,
    /// What goes to the peer.
    pub(crate) request: AskRequest,
    /// Longest wait for the next event.
    pub(crate) wait_secs: f64,
}

/// Cancels the ask on the peer unless it ended.
struct CancelOnDrop {
    link: Option<Arc<alp_link::Link>>,
    id: [u8; 16],
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(link) = self.link.take() {
            let id = self.id;
            tokio::spawn(async move {
                let _ = tokio::time::timeout(Duration::from_secs(2), link.cancel_ask(id)).await;
            });
        }
    }
}

async fn run(node: Arc<WgNode>, line: Value, progress: Progress) -> Result<Value, OpError> {
    let a: Args = args(line)?;
    let peer = node.links.peers().get(&a.peer).map_err(|e| OpError::Usage(e.to_string()))?;
    let id: [u8; 16] =
        a.request.ask_id.as_slice().try_into().map_err(|_| OpError::Usage("ask_id must be 16 bytes".into()))?;
    let wait = Duration::try_from_secs_f64(a.wait_secs).map_err(|e| OpError::Usage(format!("wait: {e}")))?;
    let link = node.links.get(peer.node_id).await.map_err(|e| OpError::Failed(e.to_string()))?;
    let mut guard = CancelOnDrop { link: Some(link.clone()), id };
    let last = link
        .ask(&a.request, wait, |ev| {
            if let Ok(v) = serde_json::to_value(ev) {
                let _ = progress.send(v);
            }
        })
        .await;
    guard.link = None;
    match last {
        Ok(ev @ (AskEvent::Done { .. } | AskEvent::Failed { .. })) => {
            serde_json::to_value(ev).map_err(|e| OpError::Failed(e.to_string()))
        }
        Ok(_) => Err(OpError::Failed(format!("peer {} ended the answer oddly", a.peer))),
        Err(e) => {
            let message = format!("peer {}: {e}", a.peer);
            Err(if crate::error::remote_code(&e) == 2 { OpError::Usage(message) } else { OpError::Failed(message) })
        }
    }
}
