//! Serving the link. Each new connection first needs a slot
//! ([`admission`]): strangers share a small, per-address-capped budget
//! with a short deadline to say who they are, and must prove their address
//! with a QUIC Retry when it is busy; a connection that authenticates
//! moves to its peer's own slots. Then the responder handshake
//! ([`respond`]) refuses untrusted nodes before reading anything else, and
//! each request stream goes through one prologue ([`request`]) before the
//! [`Router`]'s handler for its verb runs.
//!
//! A peer can only ever affect its own streams and its own budgets: a
//! malformed or oversized frame resets that stream (and a peer that keeps
//! sending them loses its connection), memory for a request is reserved
//! from the peer's budget and the node's before it is read, and every
//! other peer carries on.

mod admission;
mod request;
mod respond;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use alp_profiles::peers::{NoiseKey, Peer, PeerStore};
use alp_profiles::tickets::TicketStore;
use alp_profiles::unix_now;
use alp_protocol::NodeId;
use alp_protocol::handshake::PeerHello;
use alp_protocol::ratelimit::TokenBucket;
use tokio::sync::{Notify, Semaphore, oneshot};

use crate::endpoint::LinkEndpoint;
use crate::router::{Router, Session};
use crate::settings::LinkSettings;
use crate::wire::close_code;
use admission::{Admission, Admit, Budgets, RefusalLog, Refused};

/// How often a peer's `last_seen` is written back at most.
const LAST_SEEN_EVERY: Duration = Duration::from_secs(60);
/// Rate-limit entries kept at most (oldest are dropped beyond this).
const MAX_TRACKED: usize = 4096;
/// Malformed requests a peer may send per minute before its connection
/// is closed (a burst of this many is tolerated).
const MALFORMED_PER_MINUTE: u32 = 10;

/// What the server consults before any handler runs: credentials, trust,
/// tickets, limits, and the router.
#[derive(Debug)]
pub struct Server {
    /// This node as it presents itself (its credentials may be renewed).
    presence: crate::endpoint::Presence,
    peers: PeerStore,
    tickets: TicketStore,
    router: Router,
    settings: Arc<LinkSettings>,
    gate: Mutex<Gate>,
    limits: Mutex<Limits>,
    /// The node's budget of request bytes in flight.
    bytes: Arc<Semaphore>,
    inflight: AtomicUsize,
    drained: Notify,
}

/// Connection slots, and how to tell an evicted pending connection to go.
#[derive(Debug)]
struct Gate {
    admission: Admission,
    evict: HashMap<u64, oneshot::Sender<()>>,
    refusals: RefusalLog,
}

#[derive(Debug, Default)]
struct Limits {
    peers: HashMap<NodeId, PeerLimits>,
    pair_failures: HashMap<IpAddr, TokenBucket>,
    /// When each peer was last written back, and whether it announced
    /// addresses then.
    last_seen: HashMap<NodeId, (Instant, Option<u64>)>,
}

/// One peer's budgets.
#[derive(Debug)]
struct PeerLimits {
    rate: TokenBucket,
    malformed: TokenBucket,
    /// Requests running at once.
    requests: Arc<Semaphore>,
    /// Request bytes in flight.
    bytes: Arc<Semaphore>,
}

impl Server {
    /// A server on `endpoint` trusting `peers`, redeeming `tickets`, and
    /// answering the verbs of `router`.
    pub fn new(endpoint: &LinkEndpoint, peers: PeerStore, tickets: TicketStore, router: Router) -> Arc<Self> {
        let settings = endpoint.settings().clone();
        // Static keys stored with the peers were proven before: their
        // handshakes need no signature check.
        for peer in peers.load().unwrap_or_default() {
            if let Some(NoiseKey(key)) = peer.noise_key {
                endpoint.known_keys().remember(peer.node_id, key);
            }
        }
        let budgets = Budgets {
            pending: settings.max_pending,
            pending_per_address: settings.pending_per_address,
            peers: settings.max_connections,
            per_peer: settings.connections_per_peer,
        };
        let gate = Gate { admission: Admission::new(budgets), evict: HashMap::new(), refusals: RefusalLog::default() };
        Arc::new(Self {
            presence: endpoint.presence().clone(),
            peers,
            tickets,
            router,
            bytes: Arc::new(Semaphore::new(settings.inflight_bytes)),
            settings,
            gate: Mutex::new(gate),
            limits: Mutex::default(),
            inflight: AtomicUsize::new(0),
            drained: Notify::new(),
        })
    }

    /// The verbs it serves.
    pub fn router(&self) -> &Router {
        &self.router
    }

    fn gate(&self) -> MutexGuard<'_, Gate> {
        self.gate.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn limits(&self) -> MutexGuard<'_, Limits> {
        self.limits.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts a refusal (`None`: a Retry) and logs a summary when one is due.
    fn refused(&self, reason: Option<&'static str>) {
        if let Some(summary) = self.gate().refusals.count(reason, Instant::now()) {
            tracing::warn!("{summary}");
        }
    }

    fn admit_peer(&self, peer: NodeId) -> Result<(), Refused> {
        let admitted = self.gate().admission.admit_peer(peer);
        if let Err(r) = admitted {
            self.refused(Some(r.reason()));
        }
        admitted
    }

    fn end_peer(&self, peer: NodeId) {
        self.gate().admission.end_peer(peer);
    }

    fn end_pending(&self, id: u64) {
        let mut gate = self.gate();
        gate.admission.end_pending(id);
        gate.evict.remove(&id);
    }

    fn pair_limited(&self, ip: IpAddr) -> bool {
        self.limits().pair_failures.get(&ip).is_some_and(|b| b.wait_time() > Duration::ZERO)
    }

    fn pair_failed(&self, ip: IpAddr) {
        let per_minute = self.settings.pair_failures_per_minute;
        let now = Instant::now();
        let mut limits = self.limits();
        if limits.pair_failures.len() >= MAX_TRACKED {
            limits.pair_failures.clear();
        }
        let bucket = limits
            .pair_failures
            .entry(ip)
            .or_insert_with(|| TokenBucket::new(f64::from(per_minute) / 60.0, per_minute, now));
        bucket.try_take(now);
    }

    /// `peer`'s budgets, made on first use.
    fn peer_limits<T>(&self, peer: NodeId, f: impl FnOnce(&mut PeerLimits, Instant) -> T) -> T {
        let s = &self.settings;
        let now = Instant::now();
        let mut limits = self.limits();
        if limits.peers.len() >= MAX_TRACKED && !limits.peers.contains_key(&peer) {
            limits.peers.clear();
        }
        let entry = limits.peers.entry(peer).or_insert_with(|| PeerLimits {
            rate: TokenBucket::new(f64::from(s.requests_per_second), s.request_burst, now),
            malformed: TokenBucket::new(f64::from(MALFORMED_PER_MINUTE) / 60.0, MALFORMED_PER_MINUTE, now),
            requests: Arc::new(Semaphore::new(s.requests_per_peer as usize)),
            bytes: Arc::new(Semaphore::new(s.peer_inflight_bytes)),
        });
        f(entry, now)
    }

    fn allow_request(&self, peer: NodeId) -> bool {
        self.peer_limits(peer, |l, now| l.rate.try_take(now))
    }

    /// Counts a malformed request against `peer`'s rate; true when it has
    /// sent too many and its connection should close.
    fn malformed(&self, peer: NodeId) -> bool {
        self.peer_limits(peer, |l, now| {
            l.rate.try_take(now);
            !l.malformed.try_take(now)
        })
    }

    /// The peer's budgets of requests and of bytes in flight.
    fn peer_budgets(&self, peer: NodeId) -> (Arc<Semaphore>, Arc<Semaphore>) {
        self.peer_limits(peer, |l, _| (l.requests.clone(), l.bytes.clone()))
    }

    /// Records that `hello`'s node completed a handshake (and the static
    /// key it proved), at most once a minute.
    fn touch(&self, hello: &PeerHello, from: std::net::SocketAddr) {
        let peer = hello.node_id;
        let now = Instant::now();
        {
            let mut limits = self.limits();
            // Written at most once a minute, unless the peer's serving node
            // now announces other addresses or comes from another one (it
            // started, or moved).
            let announces = !hello.addrs.is_empty();
            // What it announces, not the port it came from: a peer behind
            // a NAT that remaps ports would otherwise rewrite the file on
            // every connection.
            let place = announces.then(|| {
                use std::hash::{Hash, Hasher};
                let mut h = std::collections::hash_map::DefaultHasher::new();
                (&hello.addrs, from.ip()).hash(&mut h);
                h.finish()
            });
            let recent = |(t, had): &(Instant, Option<u64>)| {
                now.duration_since(*t) < LAST_SEEN_EVERY && (place.is_none() || *had == place)
            };
            if limits.last_seen.get(&peer).is_some_and(recent) {
                return;
            }
            if limits.last_seen.len() >= MAX_TRACKED {
                limits.last_seen.clear();
            }
            limits.last_seen.insert(peer, (now, place));
        }
        // A relayed peer's address is virtual: nothing to learn from it.
        let from = (!crate::relay::is_virtual(&from)).then_some(from);
        let result = self.peers.seen(&peer, unix_now(), NoiseKey(hello.static_key), &hello.addrs, from);
        if let Err(e) = result {
            tracing::warn!("cannot record last_seen: {e}");
        }
    }

    /// The trusted peer entry of `node_id`, if it is (still) trusted.
    fn peer(&self, node_id: &NodeId) -> Result<Option<Peer>, String> {
        self.peers.find(node_id).map_err(|e| e.to_string())
    }

    async fn drained(&self) {
        loop {
            let notified = self.drained.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.inflight.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// Counts a request in flight until dropped.
struct InFlight(Arc<Server>);

impl InFlight {
    fn new(state: &Arc<Server>) -> Self {
        state.inflight.fetch_add(1, Ordering::AcqRel);
        Self(state.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.inflight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.drained.notify_waiters();
        }
    }
}

/// Frees a pending slot however the connection's setup ends.
struct PendingSlot<'a>(&'a Server, u64);

impl Drop for PendingSlot<'_> {
    fn drop(&mut self) {
        self.0.end_pending(self.1);
    }
}

/// Frees a peer's connection slot when its connection ends.
struct PeerSlot<'a>(&'a Server, NodeId);

impl Drop for PeerSlot<'_> {
    fn drop(&mut self) {
        self.0.end_peer(self.1);
    }
}

/// Serves `endpoint` until `shutdown` completes, then stops accepting,
/// waits up to the grace period for requests in flight and closes.
pub async fn serve(endpoint: LinkEndpoint, state: Arc<Server>, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            incoming = endpoint.quinn().accept() => {
                let Some(incoming) = incoming else { break };
                admit(incoming, &state);
            }
        }
    }
    tracing::info!("shutting down");
    endpoint.quinn().set_server_config(None);
    if tokio::time::timeout(state.settings.shutdown_grace, state.drained()).await.is_err() {
        tracing::warn!("requests still running after the grace period; closing anyway");
    }
    endpoint.quinn().close(close_code::SHUTTING_DOWN, b"shutting down");
    let _ = tokio::time::timeout(Duration::from_secs(1), endpoint.quinn().wait_idle()).await;
}

/// Gives a new connection attempt a pending slot (making the oldest give
/// way if the budget is full), a Retry, or a refusal.
fn admit(incoming: quinn::Incoming, state: &Arc<Server>) {
    let from = crate::addrs::canonical(incoming.remote_address());
    let validated = incoming.remote_address_validated();
    let decision = state.gate().admission.admit(from.ip(), validated, Instant::now());
    match decision {
        Admit::Retry if incoming.may_retry() => {
            let _ = incoming.retry();
            state.refused(None);
        }
        Admit::Retry => {
            incoming.refuse();
            state.refused(Some(Refused::Busy.reason()));
        }
        Admit::Refuse(r) => {
            incoming.refuse();
            state.refused(Some(r.reason()));
        }
        Admit::Accept { id, evict } => {
            let (tx, evicted) = oneshot::channel();
            {
                let mut gate = state.gate();
                if let Some(old) = evict.and_then(|old| gate.evict.remove(&old)) {
                    let _ = old.send(());
                }
                gate.evict.insert(id, tx);
            }
            if evict.is_some() {
                state.refused(Some("busy: an unfinished handshake gave way to a new one"));
            }
            tokio::spawn(handle_connection(incoming, state.clone(), id, evicted));
        }
    }
}

async fn handle_connection(incoming: quinn::Incoming, state: Arc<Server>, id: u64, evicted: oneshot::Receiver<()>) {
    let from = crate::addrs::canonical(incoming.remote_address());
    let pending = PendingSlot(&state, id);
    let setup = async {
        let hello = state.settings.hello_timeout.min(state.settings.handshake_timeout);
        let conn = match tokio::time::timeout(hello, incoming.accept().map_err(|e| e.to_string())?).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => return Err(format!("QUIC handshake failed: {e}")),
            Err(_) => return Err("QUIC handshake timed out".to_owned()),
        };
        let deadline = state.settings.handshake_timeout;
        let session = tokio::time::timeout(deadline, respond::respond(&conn, &state, hello)).await;
        Ok((conn, session))
    };
    let (conn, session) = tokio::select! {
        r = setup => match r {
            Ok(x) => x,
            Err(e) => return tracing::debug!(%from, "{e}"),
        },
        Ok(()) = evicted => return tracing::debug!(%from, "gave way to a newer connection"),
    };
    drop(pending);
    let session = match session {
        Ok(Ok(session)) => Arc::new(session),
        Ok(Err(refusal)) => {
            tracing::info!(%from, "refused: {}", refusal.reason);
            return conn.close(refusal.code, refusal.reason.as_bytes());
        }
        Err(_) => {
            tracing::info!(%from, "handshake timed out");
            return conn.close(close_code::HANDSHAKE_TIMEOUT, b"handshake timed out");
        }
    };
    let _slot = PeerSlot(&state, session.peer);
    tracing::debug!(%from, peer = %session.peer.short(), "link up");
    serve_requests(conn, session, &state).await;
}

async fn serve_requests(conn: quinn::Connection, session: Arc<Session>, state: &Arc<Server>) {
    loop {
        match conn.accept_bi().await {
            Ok((send, recv)) => {
                let guard = InFlight::new(state);
                let (session, conn) = (session.clone(), conn.clone());
                tokio::spawn(async move {
                    request::handle_stream(conn, send, recv, session, &guard.0).await;
                    drop(guard);
                });
            }
            Err(e) => return tracing::debug!(peer = %session.peer.short(), "link down: {e}"),
        }
    }
}
