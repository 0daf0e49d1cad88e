//! Connections to other members, dialled from the serving endpoint and
//! kept: replication, invitations and blob fetches of workgroups reuse
//! them instead of dialling for every request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use alp_link::{Link, LinkEndpoint, RequestError, resolve};
use alp_profiles::peers::{NoiseKey, PeerStore};
use alp_protocol::envelope::{MeetRequest, MeetResponse};
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
    /// Peers that introduce this node to others (`node.rendezvous`).
    rendezvous: Vec<NodeId>,
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
    pub(crate) fn new(endpoint: LinkEndpoint, peers: PeerStore, rendezvous: Vec<NodeId>) -> Self {
        Self { endpoint, peers, links: Mutex::default(), dialing: Mutex::default(), rendezvous }
    }

    /// A live link to `node`, dialling it if there is none: at its
    /// addresses, and, half a second later if that has not worked yet,
    /// through each rendezvous (hole punching); the first link up wins.
    pub(crate) async fn get(&self, node: NodeId) -> Result<Arc<Link>, LinkError> {
        self.get_with(node, true).await
    }

    /// The rendezvous peers, other than `node`.
    pub(crate) fn rendezvous(&self) -> &[NodeId] {
        &self.rendezvous
    }

    /// Keeps `link` (dialled here, or made elsewhere: a punched one) as the
    /// link to its peer. In the background, off the runtime's threads (the
    /// peers file is written under its lock): notes where the peer
    /// answered, then asks it for its signed address record (`link.info`)
    /// and learns that too.
    pub(crate) fn adopt(&self, link: Link) -> Arc<Link> {
        let node = link.remote().node_id;
        let link = Arc::new(link);
        self.links.lock().unwrap_or_else(PoisonError::into_inner).insert(node, link.clone());
        let (kept, peers) = (link.clone(), self.peers.clone());
        let limit = self.endpoint.settings().request_timeout;
        tokio::spawn(async move {
            let (key, at) = (NoiseKey(kept.remote().static_key), kept.remote_addr());
            let noted = peers.clone();
            let note = move || noted.dialled(&node, alp_profiles::unix_now(), key, at);
            if let Ok(Err(e)) = tokio::task::spawn_blocking(note).await {
                tracing::warn!("cannot record where {} answered: {e}", node.short());
            }
            let info = match tokio::time::timeout(limit, kept.info()).await {
                Ok(Ok(info)) => info,
                Ok(Err(e)) => return tracing::debug!(peer = %node.short(), "link.info failed: {e}"),
                Err(_) => return tracing::debug!(peer = %node.short(), "link.info timed out"),
            };
            if let Some(Ok(record)) = alp_link::dial::check_record(&node, info.addrs.as_deref()) {
                let learn = move || alp_link::dial::learn_record(&peers, &record, Some(at));
                let _ = tokio::task::spawn_blocking(learn).await;
            }
        });
        link
    }

    /// The endpoint links are dialled from.
    pub(crate) fn endpoint(&self) -> &LinkEndpoint {
        &self.endpoint
    }

    async fn get_with(&self, node: NodeId, punch: bool) -> Result<Arc<Link>, LinkError> {
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
        let addrs = self.known_addrs(&peer).await;
        let direct = async {
            if addrs.is_empty() {
                return Err("it has no address (`alp peer set NAME --addr`)".to_owned());
            }
            self.endpoint.dial_any(&addrs, node).await.map_err(|e| e.to_string())
        };
        // A rendezvous itself is only ever dialled directly.
        let vias: Vec<NodeId> = if punch && !self.rendezvous.contains(&node) {
            self.rendezvous.iter().copied().filter(|r| *r != node).collect()
        } else {
            Vec::new()
        };
        let link = if vias.is_empty() {
            direct.await
        } else {
            let punched = async {
                if !addrs.is_empty() {
                    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                }
                self.punch(node, &vias).await
            };
            // A relayed path only if neither has worked after a while
            // (punching takes a round trip or two when it works).
            let relayed = async {
                tokio::time::sleep(RELAY_AFTER).await;
                self.relayed(node, &vias).await
            };
            first_ok(direct, first_ok(punched, relayed)).await
        }
        .map_err(|reason| LinkError::Unreachable { who: who.clone(), reason })?;
        Ok(self.adopt(link))
    }

    /// The peers whose kept link runs through a relay.
    pub(crate) fn relayed_peers(&self) -> Vec<NodeId> {
        let links = self.links.lock().unwrap_or_else(PoisonError::into_inner);
        links
            .iter()
            .filter(|(_, l)| l.connection().close_reason().is_none() && alp_link::relay::is_virtual(&l.remote_addr()))
            .map(|(n, _)| *n)
            .collect()
    }

    /// Asks each rendezvous in turn to introduce this node to `node`, then
    /// dials it at the address the rendezvous sees while it dials back.
    pub(crate) async fn punch(&self, node: NodeId, vias: &[NodeId]) -> Result<Link, String> {
        let mut why = Vec::new();
        for &via in vias {
            let name = self.name_of(via);
            let meet = async {
                // Only over a link already up (the node keeps one to each
                // rendezvous while it waits there): dialling one here, with
                // this peer's dial in progress, could wait on a dial that
                // waits on this one.
                let link =
                    self.live(&via).ok_or_else(|| "no link to it yet (the node is still dialling it)".to_owned())?;
                let record = self.endpoint.me().addr_record(alp_profiles::unix_now());
                let r: MeetResponse = link
                    .request(Verb::LinkMeet, &MeetRequest { want: Some(node), record })
                    .await
                    .map_err(|e| e.to_string())?;
                let seen = r
                    .addr
                    .and_then(|a| a.parse::<std::net::SocketAddr>().ok())
                    .filter(alp_link::dialable)
                    .ok_or_else(|| "no address worth dialling in its answer".to_owned())?;
                Ok::<_, String>(self.punch_addrs(node, seen, r.record.as_deref()))
            };
            let addrs = match meet.await {
                Ok(a) => a,
                Err(e) => {
                    why.push(format!("through {name}: {e}"));
                    continue;
                }
            };
            tracing::debug!(peer = %self.name_of(node), ?addrs, via = %name, "punching");
            match self.endpoint.punch_any(&addrs, node).await {
                Ok(link) => return Ok(link),
                Err(e) => why.push(format!("through {name}, at {addrs:?}: {e}")),
            }
        }
        Err(why.join("; "))
    }

    /// Opens a relayed path to `node` through the first rendezvous that
    /// relays for both, and dials it over that path (the link's TLS and
    /// Noise run end to end through it).
    async fn relayed(&self, node: NodeId, vias: &[NodeId]) -> Result<Link, String> {
        let Some(socket) = self.endpoint.relay() else {
            return Err("this endpoint cannot carry relayed paths".into());
        };
        let mut why = Vec::new();
        for &via in vias {
            let name = self.name_of(via);
            let Some(link) = self.live(&via) else {
                why.push(format!("relay {name}: no link to it yet"));
                continue;
            };
            let limit = self.endpoint.settings().request_timeout;
            let (send, recv) = match tokio::time::timeout(limit, link.relay(node)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    why.push(format!("relay {name}: {e}"));
                    continue;
                }
                Err(_) => {
                    why.push(format!("relay {name}: no answer within {limit:?}"));
                    continue;
                }
            };
            socket.attach(&node, send, recv, alp_link::verbs::meet::RELAY_IDLE);
            tracing::info!(peer = %self.name_of(node), via = %name, "reaching it through a relay");
            match self.endpoint.punch(socket.virtual_addr(&node), node).await {
                Ok(link) => return Ok(link),
                Err(e) => why.push(format!("relayed by {name}: {e}")),
            }
        }
        Err(why.join("; "))
    }

    /// Where `peer` is known to be, best first: learned addresses still
    /// live, then typed ones, resolved; never a virtual (relayed) one.
    async fn known_addrs(&self, peer: &alp_profiles::peers::Peer) -> Vec<std::net::SocketAddr> {
        let order = peer.dial_order(alp_profiles::unix_now());
        let mut addrs = resolve(&order, self.endpoint.settings().handshake_timeout).await;
        addrs.retain(|a| !alp_link::relay::is_virtual(a));
        addrs
    }

    /// Dials `node` at the addresses it is known at ([`Self::known_addrs`]),
    /// within `limit`: no rendezvous, no relay.
    pub(crate) async fn dial_known(&self, node: NodeId, limit: std::time::Duration) -> Result<Link, String> {
        let peer = self.peers.find(&node).ok().flatten().ok_or("not a trusted peer")?;
        let addrs = self.known_addrs(&peer).await;
        if addrs.is_empty() {
            return Err("no address known".into());
        }
        match tokio::time::timeout(limit, self.endpoint.dial_any(&addrs, node)).await {
            Ok(r) => r.map_err(|e| e.to_string()),
            Err(_) => Err(format!("no answer within {limit:?}")),
        }
    }

    /// Where to punch to `node`: where a rendezvous sees it, then the
    /// addresses of its address record, if the rendezvous passed on a
    /// valid one (learned too, in the background): behind the same NAT as
    /// this node, one of those answers where the NAT would not loop back.
    /// Of those, private addresses only on a network this host is on
    /// ([`alp_link::reachable_hint`]).
    pub(crate) fn punch_addrs(
        &self,
        node: NodeId,
        seen: std::net::SocketAddr,
        record: Option<&[u8]>,
    ) -> Vec<std::net::SocketAddr> {
        let mut addrs = vec![seen];
        if let Some(Ok(r)) = alp_link::dial::check_record(&node, record) {
            let more = r.addrs.iter().copied().map(alp_link::canonical);
            addrs.extend(more.filter(|a| alp_link::reachable_hint(a) && *a != seen));
            let peers = self.peers.clone();
            tokio::task::spawn_blocking(move || alp_link::dial::learn_record(&peers, &r, None));
        }
        addrs
    }

    pub(crate) fn live(&self, node: &NodeId) -> Option<Arc<Link>> {
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

/// How long the direct and punched attempts have before a relayed path is
/// tried beside them.
const RELAY_AFTER: std::time::Duration = std::time::Duration::from_secs(3);

/// The first of two attempts to succeed, or both errors.
async fn first_ok<T>(
    a: impl std::future::Future<Output = Result<T, String>>,
    b: impl std::future::Future<Output = Result<T, String>>,
) -> Result<T, String> {
    tokio::pin!(a, b);
    let (mut a_err, mut b_err) = (None, None);
    loop {
        tokio::select! {
            r = &mut a, if a_err.is_none() => match r {
                Ok(v) => return Ok(v),
                Err(e) => a_err = Some(e),
            },
            r = &mut b, if b_err.is_none() => match r {
                Ok(v) => return Ok(v),
                Err(e) => b_err = Some(e),
            },
        }
        if let (Some(a), Some(b)) = (&a_err, &b_err) {
            return Err(format!("{a}; {b}"));
        }
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
