//! `blob-fetch`: fetch a blob (a folder: its files too) from trusted peers
//! into the store over the node's kept links (`alp blob get --from`,
//! `alp receive` while the node runs): one process writes the store, and
//! peers reached only through a rendezvous or a relay are reached.

use std::sync::Arc;
use std::time::Duration;

use alp_blobstore::BlobHash;
use alp_link::{Source, Via};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Op, OpError, args};
use crate::wg::WgNode;

pub(crate) const OP: Op = Op { name: "blob-fetch", run: |node, line, _| Box::pin(run(node, line)), timeout: TIMEOUT };

/// A fetch may be large; the link's own timeouts end a stalled one sooner.
const TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// The request.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Args {
    /// Always `blob-fetch`.
    pub(crate) op: String,
    /// The peers' names here (several: parts from each).
    pub(crate) peers: Vec<String>,
    /// The blob.
    pub(crate) hash: String,
    /// A blob ticket (`alpblob1…`) to redeem instead of asking `blob.get`.
    pub(crate) ticket: Option<String>,
}

/// The answer.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Fetch {
    pub(crate) size: u64,
    pub(crate) received: u64,
    pub(crate) sources: Vec<SourceOut>,
}

/// What one source did.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct SourceOut {
    pub(crate) peer: String,
    pub(crate) received: u64,
    pub(crate) parts: u32,
    pub(crate) dropped: Option<String>,
}

async fn run(node: Arc<WgNode>, line: Value) -> Result<Value, OpError> {
    let a: Args = args(line)?;
    let hash: BlobHash = a.hash.parse().map_err(|e| OpError::Usage(format!("{}: {e}", a.hash)))?;
    let via = match &a.ticket {
        Some(t) => {
            let ticket: alp_protocol::blob_ticket::BlobTicket =
                t.parse().map_err(|e| OpError::Usage(format!("bad ticket: {e}")))?;
            Via::Ticket(ticket.secret)
        }
        None => Via::Verb(alp_protocol::Verb::BlobGet),
    };
    let mut up = Vec::new();
    let mut why = Vec::new();
    for name in &a.peers {
        let peer = node.links.peers().get(name).map_err(|e| OpError::Usage(e.to_string()))?;
        match node.links.get(peer.node_id).await {
            Ok(link) => up.push((link, name.clone())),
            Err(e) => why.push(e.to_string()),
        }
    }
    if up.is_empty() {
        return Err(OpError::Failed(why.join("; ")));
    }
    let sources: Vec<Source<'_>> = up.iter().map(|(l, n)| Source { link: l, name: n }).collect();
    let got =
        crate::cmd::blob::transfer::fetch_with(&sources, &node.store, hash, via, None, &|_, _| {}).await.map_err(
            |e| if e.code == 2 { OpError::Usage(e.error.to_string()) } else { OpError::Failed(e.error.to_string()) },
        )?;
    if !got.complete() {
        return Err(OpError::Failed("the blob did not arrive whole".into()));
    }
    let out = Fetch {
        size: got.size,
        received: got.received,
        sources: got
            .sources
            .into_iter()
            .map(|s| SourceOut { peer: s.name, received: s.received, parts: s.parts, dropped: s.dropped })
            .collect(),
    };
    serde_json::to_value(out).map_err(|e| OpError::Failed(e.to_string()))
}
