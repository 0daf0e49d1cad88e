//! `peer-ping`: one ping to a trusted peer over the node's kept link
//! (dialled first if there is none). `alp peer ping` sends one per round.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use alp_protocol::Verb;
use alp_protocol::envelope::{PingRequest, PingResponse};

use super::{Op, OpError, args};
use crate::wg::WgNode;

pub(crate) const OP: Op = Op { name: "peer-ping", run: |node, line, _| Box::pin(run(node, line)), timeout: TIMEOUT };

/// A ping's answer must come within this (the dial has its own timeouts).
const TIMEOUT: Duration = Duration::from_secs(30);

/// The request.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Args {
    /// Always `peer-ping`.
    pub(crate) op: String,
    /// The peer's name here.
    pub(crate) peer: String,
    /// Echoed back by the peer.
    pub(crate) seq: u64,
}

/// The answer.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Pong {
    /// The peer's address on the link used.
    pub(crate) addr: String,
    /// Its software version.
    pub(crate) version: String,
    /// The round trip on the link, measured by the node.
    pub(crate) rtt_ms: f64,
    /// The time to dial, when there was no live link (else absent).
    pub(crate) connect_ms: Option<f64>,
    /// The link runs through a relay (`addr` is then its virtual address).
    #[serde(default)]
    pub(crate) relayed: bool,
}

async fn run(node: Arc<WgNode>, line: Value) -> Result<Value, OpError> {
    let a: Args = args(line)?;
    let peer = node.links.peers().get(&a.peer).map_err(|e| OpError::Usage(e.to_string()))?;
    let id = peer.node_id;
    let fresh = !node.links.is_connected(&id);
    let start = Instant::now();
    node.links.get(id).await.map_err(|e| OpError::Failed(e.to_string()))?;
    let connect_ms = fresh.then(|| ms(start.elapsed()));
    // Over the kept link, dialled again once if it died since (the links'
    // own retry).
    let start = Instant::now();
    let ping = PingRequest { nonce: a.seq };
    let pong: PingResponse = match tokio::time::timeout(TIMEOUT, node.links.request(id, Verb::LinkPing, &ping)).await {
        Ok(Ok(p)) => p,
        Ok(Err(e)) => return Err(OpError::Failed(e.to_string())),
        Err(_) => return Err(OpError::Failed(format!("{} did not answer within {TIMEOUT:?}", a.peer))),
    };
    let rtt_ms = ms(start.elapsed());
    if pong.nonce != a.seq {
        return Err(OpError::Failed(format!("{}'s answer carries another nonce", a.peer)));
    }
    let at = node.links.live(&id).map(|l| l.remote_addr()).ok_or_else(|| OpError::Failed("the link closed".into()))?;
    let relayed = alp_link::relay::is_virtual(&at);
    let out = Pong { addr: at.to_string(), version: pong.version, rtt_ms, connect_ms, relayed };
    serde_json::to_value(out).map_err(|e| OpError::Failed(e.to_string()))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
