//! `peer-info`: who a trusted peer is, what this node may call there, and
//! where it says it can be reached (its signed address record, checked
//! and learned), asked over the node's kept link.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use alp_protocol::NodeId;
use alp_protocol::addr_record::AddrRecord;
use alp_protocol::envelope::InfoResponse;

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

/// What `alp peer info` shows.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct PeerInfo {
    pub(crate) node_id: NodeId,
    pub(crate) display_name: String,
    pub(crate) version: String,
    /// The verbs this node may call there.
    pub(crate) verbs: Vec<String>,
    /// The addresses its signed address record announces, checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) announces: Option<Vec<SocketAddr>>,
    /// When that record expires (Unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) announced_until: Option<u64>,
    /// Why its record was refused, if it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) record_error: Option<String>,
}

impl PeerInfo {
    /// `info`, the answer of the peer `node` (authenticated by the link it
    /// came over), with its address record checked; and that record, if
    /// it is valid.
    pub(crate) fn checked(info: InfoResponse, node: &NodeId) -> (Self, Option<AddrRecord>) {
        let record = alp_link::dial::check_record(node, info.addrs.as_deref());
        let (announces, announced_until, record_error) = match &record {
            Some(Ok(r)) => (Some(r.addrs.clone()), Some(r.expires_at), None),
            Some(Err(e)) => (None, None, Some(e.to_string())),
            None => (None, None, None),
        };
        let InfoResponse { node_id, display_name, version, verbs, .. } = info;
        let view = Self { node_id, display_name, version, verbs, announces, announced_until, record_error };
        (view, record.and_then(Result::ok))
    }
}

async fn run(node: Arc<WgNode>, line: Value) -> Result<Value, OpError> {
    let a: Args = args(line)?;
    let peer = node.links.peers().get(&a.peer).map_err(|e| OpError::Usage(e.to_string()))?;
    let info: InfoResponse = node
        .links
        .request(peer.node_id, alp_protocol::Verb::LinkInfo, &alp_protocol::envelope::InfoRequest {})
        .await
        .map_err(|e| OpError::Failed(e.to_string()))?;
    // The kept link learned the record when it came up.
    let (view, _) = PeerInfo::checked(info, &peer.node_id);
    serde_json::to_value(view).map_err(|e| OpError::Failed(e.to_string()))
}
