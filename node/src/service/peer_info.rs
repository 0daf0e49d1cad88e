//! `peer-info`: who a trusted peer is and what this node may call there,
//! asked over the node's kept link.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Op, OpError, args};
use crate::wg::WgNode;

pub(crate) const OP: Op = Op { name: "peer-info", run: |node, line, _| Box::pin(run(node, line)), timeout: TIMEOUT };

const TIMEOUT: Duration = Duration::from_secs(30);

/// The request.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Args {
    /// Always `peer-info`.
    pub(crate) op: String,
    /// The peer's name here.
    pub(crate) peer: String,
}

async fn run(node: Arc<WgNode>, line: Value) -> Result<Value, OpError> {
    let a: Args = args(line)?;
    let peer = node.links.peers().get(&a.peer).map_err(|e| OpError::Usage(e.to_string()))?;
    let info: alp_protocol::envelope::InfoResponse = node
        .links
        .request(peer.node_id, alp_protocol::Verb::LinkInfo, &alp_protocol::envelope::InfoRequest {})
        .await
        .map_err(|e| OpError::Failed(e.to_string()))?;
    serde_json::to_value(info).map_err(|e| OpError::Failed(e.to_string()))
}
