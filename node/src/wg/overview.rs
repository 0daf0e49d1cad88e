//! What the node is doing, beyond its groups: its trusted peers and
//! whether it holds a live connection to each, and the blob transfers
//! under way (served, pushed here, or fetched for tasks). For the
//! dashboard's first page and `alp status`.

use serde_json::{Value, json};

use super::WgNode;

impl WgNode {
    /// Peers and transfers, as shown.
    pub(crate) fn overview(&self) -> Value {
        // The peers file, read once for both lists.
        let known = self.links.peers().load().unwrap_or_default();
        let name_of = |node: &alp_protocol::NodeId| {
            known.iter().find(|p| p.node_id == *node).map_or_else(|| node.short(), |p| p.name.to_string())
        };
        let peers: Vec<Value> = known
            .iter()
            .map(|p| {
                json!({
                    "name": p.name.to_string(),
                    "node_id": p.node_id.to_string(),
                    "online": self.links.is_connected(&p.node_id),
                })
            })
            .collect();
        let transfers: Vec<Value> = self
            .transfers
            .list()
            .iter()
            .map(|t| {
                json!({
                    "peer": name_of(&t.peer),
                    "hash": t.hash.to_string(),
                    "direction": if t.sending { "sending" } else { "receiving" },
                    "done": t.done,
                    "total": t.total,
                    "started_ms": t.started_ms,
                })
            })
            .collect();
        json!({ "peers": peers, "transfers": transfers })
    }
}
