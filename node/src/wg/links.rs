//! Connections to other members, dialled from the serving endpoint and
//! kept: replication, invitations and blob fetches of workgroups reuse
//! them instead of dialling for every request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use alp_link::{Link, LinkEndpoint, RequestError, resolve};
use alp_profiles::peers::{NoiseKey, PeerStore};
use alp_protocol::{NodeId, Verb};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Kept links to trusted peers.
#[derive(Debug)]
pub(crate) struct Links {
    endpoint: LinkEndpoint,
    peers: PeerStore,
    links: Mutex<HashMap<NodeId, Arc<Link>>>,
    /// One dial at a time per peer: callers that find no link wait for
    /// the dial in progress instead of opening connections of their own.
    dialing: Mutex<HashMap<NodeId, Arc<tokio::sync::Mutex<()>>>>,
}

/// A member could not be reached or did not answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LinkError {
    /// Not a trusted peer of this profile.
    #[error("{0} is not a trusted peer of this profile: pair with it first (`alp invite` / `alp pair`)")]
    NotTrusted(String),
    /// No address works.
    #[error("cannot reach {who}: {reason}")]
    Unreachable {
        /// The peer.
        who: String,
        /// Why.
        reason: String,
    },
    /// It answered with an error, or the request failed.
    #[error("{who} did not accept it: {source}")]
    Request {
        /// The peer.
        who: String,
        /// Why.
        source: RequestError,
    },
}

impl Links {
    pub(crate) fn new(endpoint: LinkEndpoint, peers: PeerStore) -> Self {
        Self { endpoint, peers, links: Mutex::default(), dialing: Mutex::default() }
    }

    /// A live link to `node`, dialling it if there is none.
    pub(crate) async fn get(&self, node: NodeId) -> Result<Arc<Link>, LinkError> {
        if let Some(link) = self.live(&node) {
            return Ok(link);
        }
        let turn = self.dialing.lock().unwrap_or_else(PoisonError::into_inner).entry(node).or_default().clone();
        let _turn = turn.lock().await;
        if let Some(link) = self.live(&node) {
            return Ok(link);
        }
        let peer = self.peers.find(&node).ok().flatten().ok_or_else(|| LinkError::NotTrusted(node.short()))?;
        let who = peer.name.to_string();
        if let Some(NoiseKey(key)) = peer.noise_key {
            self.endpoint.known_keys().remember(peer.node_id, key);
        }
        let addrs = resolve(&peer.dial_order(), self.endpoint.settings().handshake_timeout).await;
        if addrs.is_empty() {
            return Err(LinkError::Unreachable {
                who,
                reason: "it has no address (`alp peer set NAME --addr`)".into(),
            });
        }
        let link = self
            .endpoint
            .dial_any(&addrs, node)
            .await
            .map_err(|e| LinkError::Unreachable { who: who.clone(), reason: e.to_string() })?;
        let key = NoiseKey(link.remote().static_key);
        if let Err(e) = self.peers.dialled(&node, alp_profiles::unix_now(), key, link.remote_addr()) {
            tracing::warn!("cannot record where {who} answered: {e}");
        }
        let link = Arc::new(link);
        self.links.lock().unwrap_or_else(PoisonError::into_inner).insert(node, link.clone());
        Ok(link)
    }

    fn live(&self, node: &NodeId) -> Option<Arc<Link>> {
        let cached = self.links.lock().unwrap_or_else(PoisonError::into_inner).get(node).cloned();
        cached.filter(|l| l.connection().close_reason().is_none())
    }

    /// Sends a typed request to `node` over its kept link (dialled again
    /// once if the kept one died).
    pub(crate) async fn request<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        node: NodeId,
        verb: Verb,
        body: &Req,
    ) -> Result<Resp, LinkError> {
        let mut retried = false;
        loop {
            let link = self.get(node).await?;
            match link.request(verb, body).await {
                Err(e) if e.is_fatal() && !retried => {
                    self.forget(node);
                    retried = true;
                }
                Err(source) => return Err(LinkError::Request { who: self.name_of(node), source }),
                Ok(r) => return Ok(r),
            }
        }
    }

    /// Drops the kept link to `node`.
    pub(crate) fn forget(&self, node: NodeId) {
        self.links.lock().unwrap_or_else(PoisonError::into_inner).remove(&node);
    }

    /// Whether a live link to `node` is kept.
    pub(crate) fn is_connected(&self, node: &NodeId) -> bool {
        self.links
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(node)
            .is_some_and(|l| l.connection().close_reason().is_none())
    }

    /// The peer's name here, or its short id.
    pub(crate) fn name_of(&self, node: NodeId) -> String {
        self.peers.find(&node).ok().flatten().map_or_else(|| node.short(), |p| p.name.to_string())
    }

    /// The trusted peers.
    pub(crate) fn peers(&self) -> &PeerStore {
        &self.peers
    }
}

/// Says hello to every trusted peer with an address, so that those that
/// had no address for this node learn it from the handshake.
pub(crate) async fn announce(links: Arc<Links>) {
    let peers = links.peers.load().unwrap_or_default();
    let mut pings = tokio::task::JoinSet::new();
    for peer in peers.into_iter().filter(|p| !p.addrs.is_empty()) {
        let links = links.clone();
        pings.spawn(async move {
            let node = peer.node_id;
            if let Err(e) = links
                .request::<_, alp_protocol::envelope::PingResponse>(
                    node,
                    Verb::LinkPing,
                    &alp_protocol::envelope::PingRequest { nonce: 1 },
                )
                .await
            {
                tracing::debug!("hello to {}: {e}", peer.name);
            }
        });
    }
    while pings.join_next().await.is_some() {}
}
