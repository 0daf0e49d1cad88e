//! Serving the link: accept connections (at most `max_connections`), run
//! the responder handshake under one deadline, refuse untrusted nodes
//! before reading anything else, then answer one request per stream: the
//! common prologue here (time and size limits, the envelope, the verb's
//! body limit, the caller's rate and permission), the rest in the
//! [`Router`]'s handler for the verb.
//!
//! A peer can only ever affect its own streams: a malformed or oversized
//! frame resets that stream, an unknown verb gets an error answer, and the
//! connection and every other peer carry on.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alp_profiles::peers::{NoiseKey, Peer, PeerStore, suggest_name};
use alp_profiles::tickets::TicketStore;
use alp_profiles::unix_now;
use alp_protocol::envelope::{ErrorCode, Request, Response};
use alp_protocol::frame::FrameError;
use alp_protocol::handshake::{self, Credentials, HandshakeError, PeerHello, Responder};
use alp_protocol::ratelimit::TokenBucket;
use alp_protocol::{NodeId, Verb};
use quinn::{RecvStream, SendStream, VarInt};
use tokio::sync::{Notify, Semaphore};
use zeroize::Zeroizing;

use crate::endpoint::{LinkEndpoint, binding};
use crate::router::{Call, Router, Session};
use crate::settings::LinkSettings;
use crate::wire::{self, FrameRead, FrameWrite, WireError, close_code, reset_code};

/// How often a peer's `last_seen` is written back at most.
const LAST_SEEN_EVERY: Duration = Duration::from_secs(60);
/// Rate-limit entries kept at most (oldest are dropped beyond this).
const MAX_TRACKED: usize = 4096;

/// What the server consults before any handler runs: credentials, trust,
/// tickets, limits, and the router.
#[derive(Debug)]
pub struct Server {
    creds: Arc<Credentials>,
    peers: PeerStore,
    tickets: TicketStore,
    router: Router,
    settings: Arc<LinkSettings>,
    connections: Arc<Semaphore>,
    limits: Mutex<Limits>,
    inflight: AtomicUsize,
    drained: Notify,
}

#[derive(Debug, Default)]
struct Limits {
    requests: HashMap<NodeId, TokenBucket>,
    pair_failures: HashMap<IpAddr, TokenBucket>,
    last_seen: HashMap<NodeId, Instant>,
}

/// Why a connection was closed during the handshake.
struct Refusal {
    code: VarInt,
    reason: String,
}

impl Refusal {
    fn new(code: VarInt, reason: impl Into<String>) -> Self {
        Self { code, reason: reason.into() }
    }
}

impl From<HandshakeError> for Refusal {
    fn from(e: HandshakeError) -> Self {
        let code = match e {
            HandshakeError::UnknownTicket => close_code::TICKET_REFUSED,
            _ => close_code::HANDSHAKE_FAILED,
        };
        Refusal::new(code, e.to_string())
    }
}

impl From<WireError> for Refusal {
    fn from(e: WireError) -> Self {
        Refusal::new(close_code::PROTOCOL, format!("handshake stream: {e}"))
    }
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
        Arc::new(Self {
            creds: endpoint.credentials().clone(),
            peers,
            tickets,
            router,
            connections: Arc::new(Semaphore::new(settings.max_connections as usize)),
            settings,
            limits: Mutex::default(),
            inflight: AtomicUsize::new(0),
            drained: Notify::new(),
        })
    }

    /// The verbs it serves.
    pub fn router(&self) -> &Router {
        &self.router
    }

    fn limits(&self) -> std::sync::MutexGuard<'_, Limits> {
        self.limits.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
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

    fn allow_request(&self, peer: NodeId) -> bool {
        let (rate, burst) = (self.settings.requests_per_second, self.settings.request_burst);
        let now = Instant::now();
        let mut limits = self.limits();
        if limits.requests.len() >= MAX_TRACKED {
            limits.requests.clear();
        }
        limits.requests.entry(peer).or_insert_with(|| TokenBucket::new(f64::from(rate), burst, now)).try_take(now)
    }

    /// Records that `hello`'s node completed a handshake (and the static
    /// key it proved), at most once a minute.
    fn touch(&self, hello: &PeerHello) {
        let peer = hello.node_id;
        let now = Instant::now();
        {
            let mut limits = self.limits();
            if limits.last_seen.get(&peer).is_some_and(|t| now.duration_since(*t) < LAST_SEEN_EVERY) {
                return;
            }
            if limits.last_seen.len() >= MAX_TRACKED {
                limits.last_seen.clear();
            }
            limits.last_seen.insert(peer, now);
        }
        let result = self.peers.mark_seen(&peer, unix_now(), NoiseKey(hello.static_key));
        if let Err(e) = result {
            tracing::warn!("cannot record last_seen: {e}");
        }
    }

    /// Trusts a node that redeemed a ticket (keeping an existing entry).
    fn trust_new(&self, hello: &PeerHello) -> Result<(), Refusal> {
        self.peers
            .update(|peers| {
                if !peers.iter().any(|p| p.node_id == hello.node_id) {
                    let name = suggest_name(&hello.display_name, peers);
                    let addrs = hello.addrs.iter().map(|a| (*a).into()).collect();
                    tracing::info!(peer = %name, node = %hello.node_id, "paired: now trusted");
                    let mut peer = Peer::new(name, hello.node_id, addrs, unix_now());
                    peer.noise_key = Some(NoiseKey(hello.static_key));
                    peers.push(peer);
                }
                Ok(())
            })
            .map_err(|e| Refusal::new(close_code::PROTOCOL, format!("cannot record the new peer: {e}")))
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

/// Serves `endpoint` until `shutdown` completes, then stops accepting,
/// waits up to the grace period for requests in flight and closes.
pub async fn serve(endpoint: LinkEndpoint, state: Arc<Server>, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            incoming = endpoint.quinn().accept() => {
                let Some(incoming) = incoming else { break };
                match state.connections.clone().try_acquire_owned() {
                    Ok(permit) => {
                        let state = state.clone();
                        tokio::spawn(async move {
                            handle_connection(incoming, state).await;
                            drop(permit);
                        });
                    }
                    Err(_) => {
                        tracing::warn!(from = %incoming.remote_address(), "connection limit reached; refusing");
                        incoming.refuse();
                    }
                }
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

async fn handle_connection(incoming: quinn::Incoming, state: Arc<Server>) {
    let from = incoming.remote_address();
    let deadline = tokio::time::Instant::now() + state.settings.handshake_timeout;
    let conn = match incoming.accept() {
        Ok(connecting) => match tokio::time::timeout_at(deadline, connecting).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => return tracing::debug!(%from, "QUIC handshake failed: {e}"),
            Err(_) => return tracing::debug!(%from, "QUIC handshake timed out"),
        },
        Err(e) => return tracing::debug!(%from, "cannot accept: {e}"),
    };
    let link = match tokio::time::timeout_at(deadline, respond(&conn, &state)).await {
        Ok(Ok(link)) => Arc::new(link),
        Ok(Err(refusal)) => {
            tracing::info!(%from, "refused: {}", refusal.reason);
            return conn.close(refusal.code, refusal.reason.as_bytes());
        }
        Err(_) => {
            tracing::info!(%from, "handshake timed out");
            return conn.close(close_code::HANDSHAKE_TIMEOUT, b"handshake timed out");
        }
    };
    tracing::debug!(%from, peer = %link.peer.short(), "link up");
    serve_requests(conn, link, state).await;
}

/// The responder side of the handshake, then authorisation. No other
/// stream is accepted until this returns.
async fn respond(conn: &quinn::Connection, state: &Server) -> Result<Session, Refusal> {
    let ip = conn.remote_address().ip();
    let binding = binding(conn)?;
    let (mut send, mut recv) = conn.accept_bi().await.map_err(|e| Refusal::new(close_code::PROTOCOL, e.to_string()))?;
    let f1 = recv.read_frame(handshake::MAX_FRAME).await?;
    let (mut pairing, mut limited) = (false, false);
    let hello = Responder::handle_hello(&state.creds, binding, &f1, |id| {
        pairing = true;
        limited = state.pair_limited(ip);
        if limited { None } else { state.tickets.psk_for(id, unix_now()).ok().flatten() }
    });
    if limited {
        return Err(Refusal::new(close_code::RATE_LIMITED, "too many failed pairing attempts: wait a minute"));
    }
    let failed = |e: HandshakeError| {
        if pairing {
            state.pair_failed(ip);
        }
        Refusal::from(e)
    };
    let (awaiting, f2) = hello.map_err(failed)?;
    send.write_frame(f2).await?;
    let f3 = recv.read_frame(handshake::MAX_FRAME).await?;
    let pending = awaiting.handle_finish(&f3).map_err(failed)?;
    let remote = pending.remote().clone();
    match pending.ticket() {
        Some(ticket) => {
            let used = state
                .tickets
                .consume(ticket, unix_now())
                .map_err(|e| Refusal::new(close_code::PROTOCOL, e.to_string()))?;
            if !used {
                return Err(Refusal::new(close_code::TICKET_REFUSED, "pairing ticket expired or already used"));
            }
            state.trust_new(&remote)?;
        }
        None => match state.peer(&remote.node_id) {
            Ok(Some(_)) => {}
            Ok(None) => {
                return Err(Refusal::new(
                    close_code::NOT_TRUSTED,
                    format!(
                        "node {} is not a trusted peer here: ask the owner for an invite (`alp invite`)",
                        remote.node_id
                    ),
                ));
            }
            Err(e) => return Err(Refusal::new(close_code::PROTOCOL, e)),
        },
    }
    let (established, f4) = pending.accept()?;
    // A trusted dialler does not wait for frame 4 and may already have
    // stopped reading this stream; only a lost connection matters, and that
    // shows on the next accept.
    if send.write_frame(f4).await.is_ok() {
        let _ = send.finish();
    }
    state.touch(&remote);
    Ok(Session { peer: remote.node_id, secret: Zeroizing::new(established.session_secret), binding })
}

async fn serve_requests(conn: quinn::Connection, link: Arc<Session>, state: Arc<Server>) {
    loop {
        match conn.accept_bi().await {
            Ok((send, recv)) => {
                let guard = InFlight::new(&state);
                let link = link.clone();
                tokio::spawn(async move {
                    handle_stream(send, recv, link, &guard.0).await;
                    drop(guard);
                });
            }
            Err(e) => return tracing::debug!(peer = %link.peer.short(), "link down: {e}"),
        }
    }
}

/// The prologue every request goes through, then its verb's handler.
async fn handle_stream(mut send: SendStream, mut recv: RecvStream, session: Arc<Session>, state: &Server) {
    let peer = session.peer;
    let read = recv.read_frame(state.settings.max_frame);
    let bytes = match tokio::time::timeout(state.settings.request_timeout, read).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(WireError::Frame(e @ FrameError::TooLarge { .. }))) => {
            tracing::debug!(peer = %peer.short(), "resetting stream: {e}");
            return wire::reset(&mut send, &mut recv, reset_code::TOO_LARGE);
        }
        Ok(Err(e)) => {
            tracing::debug!(peer = %peer.short(), "resetting stream: {e}");
            return wire::reset(&mut send, &mut recv, reset_code::MALFORMED);
        }
        Err(_) => return wire::reset(&mut send, &mut recv, reset_code::TIMEOUT),
    };
    let Ok(request) = Request::decode(&bytes) else {
        tracing::debug!(peer = %peer.short(), "resetting stream: malformed envelope");
        return wire::reset(&mut send, &mut recv, reset_code::MALFORMED);
    };
    match check(&request, peer, state) {
        Ok((verb, entry)) => {
            let call = Call { peer: entry, session, limits: state.settings.clone(), request, send, recv };
            state.router.dispatch(verb, call).await;
        }
        Err(refused) => {
            if send.write_frame(refused.encode()).await.is_ok() {
                let _ = send.finish();
            }
        }
    }
}

/// Verb, size, rate and permission checks, in that order. `Ok` carries
/// the caller's entry; `Err` is the answer to send instead.
fn check(request: &Request, peer: NodeId, state: &Server) -> Result<(Verb, Peer), Response> {
    let id = request.id;
    let refuse = |code, msg: String| Err(Response::err(id, code, msg));
    let Ok(verb) = request.verb.parse::<Verb>() else {
        return refuse(ErrorCode::UnknownVerb, format!("unknown verb `{}`", request.verb));
    };
    if request.body.len() > verb.max_request_body() {
        let max = verb.max_request_body();
        return refuse(ErrorCode::TooLarge, format!("{verb} accepts at most {max} bytes of body"));
    }
    if !state.allow_request(peer) {
        let rate = state.settings.requests_per_second;
        return refuse(ErrorCode::RateLimited, format!("slow down: at most {rate} requests per second"));
    }
    let entry = match state.peer(&peer) {
        Ok(Some(entry)) => entry,
        Ok(None) => return refuse(ErrorCode::Forbidden, "this node no longer trusts you".into()),
        Err(e) => return refuse(ErrorCode::Internal, e),
    };
    if !entry.allow.contains(&verb) {
        let msg = format!("not allowed to call {verb} here (the owner can grant it with `alp peer allow NAME {verb}`)");
        return refuse(ErrorCode::Forbidden, msg);
    }
    Ok((verb, entry))
}
