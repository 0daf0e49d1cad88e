//! One quinn endpoint per node: the same UDP socket serves and dials.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use alp_protocol::NodeId;
use alp_protocol::handshake::{
    self, Binding, Credentials, Established, HandshakeError, Initiator, KnownKeys, LocalIdentity, Mode, Prepared,
};
use alp_protocol::ticket::Ticket;
use ed25519_dalek::SigningKey;

use crate::client::Link;
use crate::keypool::KeyPool;
use crate::relay::RelaySocket;
use crate::settings::LinkSettings;
use crate::tls::{self, TlsSetupError};
use crate::wire::{FrameRead, FrameWrite, WireError, close_code};

/// This node as it presents itself in handshakes.
#[derive(Clone)]
pub struct Me {
    /// The identity key.
    pub key: SigningKey,
    /// Shown to peers.
    pub display_name: String,
    /// Announced to peers.
    pub addrs: Vec<SocketAddr>,
}

impl Me {
    /// The node id.
    pub fn node_id(&self) -> NodeId {
        self.key.verifying_key().into()
    }

    /// Its signed address record of [`Self::addrs`], issued `now` (Unix
    /// seconds) and valid for [`crate::verbs::info::RECORD_LIFETIME`];
    /// `None` when it announces nothing (it does not serve).
    /// Loopback addresses are listed only when there is nothing else (a
    /// node serving on loopback): elsewhere they would lead a peer to
    /// itself.
    pub fn addr_record(&self, now: u64) -> Option<Vec<u8>> {
        let lifetime = crate::verbs::info::RECORD_LIFETIME;
        let remote: Vec<SocketAddr> =
            self.addrs.iter().copied().filter(|a| !crate::addrs::canonical(*a).ip().is_loopback()).collect();
        let addrs = if remote.is_empty() { &self.addrs } else { &remote };
        (!addrs.is_empty())
            .then(|| alp_protocol::addr_record::AddrRecord::new(&self.key, addrs, now, lifetime).sign(&self.key))
    }

    fn credentials(&self, keys: Option<&Arc<KeyPool>>) -> Result<Credentials, DialError> {
        let local = LocalIdentity { key: &self.key, display_name: &self.display_name, addrs: &self.addrs };
        let creds = Credentials::new(&local).map_err(|source| DialError::Credentials { source })?;
        Ok(match keys {
            Some(pool) => creds.with_key_source(pool.clone()),
            None => creds,
        })
    }
}

impl fmt::Debug for Me {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Me").field("node_id", &self.node_id()).field("display_name", &self.display_name).finish()
    }
}

/// How long a dial to one of a peer's addresses has before the next one
/// starts beside it.
pub(crate) const STAGGER: std::time::Duration = std::time::Duration::from_millis(250);

/// This node as it presents itself now, shared by an endpoint's clones and
/// its server: the addresses it announces can change while it runs
/// ([`LinkEndpoint::set_addrs`]).
#[derive(Debug, Clone)]
pub(crate) struct Presence(Arc<std::sync::RwLock<(Arc<Me>, Arc<Credentials>)>>);

impl Presence {
    fn new(me: Me, creds: Credentials) -> Self {
        Self(Arc::new(std::sync::RwLock::new((Arc::new(me), Arc::new(creds)))))
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, (Arc<Me>, Arc<Credentials>)> {
        self.0.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// This node now.
    pub(crate) fn me(&self) -> Arc<Me> {
        self.read().0.clone()
    }

    /// The handshake credentials now.
    pub(crate) fn creds(&self) -> Arc<Credentials> {
        self.read().1.clone()
    }

    fn set(&self, me: Me, creds: Credentials) {
        *self.0.write().unwrap_or_else(std::sync::PoisonError::into_inner) = (Arc::new(me), Arc::new(creds));
    }
}

/// A quinn endpoint with this node's identity.
#[derive(Debug, Clone)]
pub struct LinkEndpoint {
    endpoint: quinn::Endpoint,
    presence: Presence,
    settings: Arc<LinkSettings>,
    /// Ephemeral keys made ahead for the handshakes it answers (serving
    /// endpoints only).
    keys: Option<Arc<KeyPool>>,
    /// Its socket's relayed paths (serving endpoints only).
    relay: Option<Arc<RelaySocket>>,
}

/// Dialling a peer failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DialError {
    /// The peer has no address to try.
    #[error("no address to reach the peer: add one with `alp peer add NAME NODE_ID --addr HOST:PORT`")]
    NoAddress,
    /// The endpoint could not be set up.
    #[error(transparent)]
    Setup(#[from] TlsSetupError),
    /// Binding the local UDP socket failed.
    #[error("cannot open a UDP socket on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The QUIC connection could not be set up.
    #[error("{addr}: cannot connect: {reason}")]
    Connect {
        /// The address tried.
        addr: SocketAddr,
        /// Why.
        reason: String,
    },
    /// The address answered that nothing listens on that port.
    #[error(
        "{addr}: nothing is listening there (the port is closed): is `alp serve` running for that profile, on that port?"
    )]
    NotListening {
        /// The address tried.
        addr: SocketAddr,
    },
    /// Nothing answered in time.
    #[error("{addr}: no answer within {secs:.1}s (is `alp serve` running there?)")]
    Timeout {
        /// The address tried.
        addr: SocketAddr,
        /// The limit.
        secs: f64,
    },
    /// The handshake failed on this side.
    #[error("{addr}: {source}")]
    Handshake {
        /// The address tried.
        addr: SocketAddr,
        /// Why.
        source: HandshakeError,
    },
    /// The peer closed the connection during the handshake.
    #[error("{addr}: refused by the peer: {reason}")]
    Refused {
        /// The address tried.
        addr: SocketAddr,
        /// The close code.
        code: u64,
        /// The peer's reason.
        reason: String,
    },
    /// The handshake credentials could not be made.
    #[error("cannot set up handshake keys: {source}")]
    Credentials {
        /// Why.
        source: HandshakeError,
    },
    /// Every address failed.
    #[error("could not reach the peer at any address:\n  {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n  "))]
    AllFailed(Vec<DialError>),
}

/// The key of this node's QUIC stateless resets, derived from its
/// identity so that it survives a restart: a node restarted on the same
/// address answers packets of its previous life's connections with a reset
/// its peers accept, and they dial again at once instead of waiting out the
/// idle timeout (RFC 9000, section 10.3).
fn reset_key(identity: &SigningKey) -> aws_lc_rs::hmac::Key {
    let mut secret = derived(identity, "alp/1 QUIC stateless reset key");
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &secret);
    zeroize::Zeroize::zeroize(&mut secret);
    key
}

/// A key for `context`, derived from the identity (BLAKE3's KDF).
fn derived(identity: &SigningKey, context: &str) -> [u8; 32] {
    blake3::derive_key(context, identity.as_bytes())
}

impl LinkEndpoint {
    /// Binds `addr` and serves incoming connections as well as dialling.
    /// `[::]` serves IPv6 and IPv4 on one socket (IPv4 alone on a host
    /// without IPv6). Its handshakes take ephemeral keys from a pool
    /// filled ahead of time on a thread of its own.
    pub fn bind(addr: SocketAddr, me: Me, settings: LinkSettings) -> Result<Self, DialError> {
        let server = tls::server_config(&settings)?;
        let socket = crate::addrs::bind_udp(addr).map_err(|source| DialError::Bind { addr, source })?;
        let mut config = quinn::EndpointConfig::new(Arc::new(reset_key(&me.key)));
        // Connection ids carry a check keyed alike, or the restarted node
        // would drop its previous life's packets unanswered.
        let cid_key =
            u64::from_le_bytes(derived(&me.key, "alp/1 QUIC connection id key")[..8].try_into().unwrap_or_default());
        config.cid_generator(move || Box::new(quinn_proto::HashedConnectionIdGenerator::from_key(cid_key)));
        use quinn::Runtime;
        let udp = quinn::TokioRuntime.wrap_udp_socket(socket).map_err(|source| DialError::Bind { addr, source })?;
        let relay = RelaySocket::new(udp);
        let endpoint = quinn::Endpoint::new_with_abstract_socket(
            config,
            Some(server),
            relay.clone(),
            Arc::new(quinn::TokioRuntime),
        )
        .map_err(|source| DialError::Bind { addr, source })?;
        let mut this = Self::with_endpoint(endpoint, me, settings, Some(KeyPool::start()))?;
        this.relay = Some(relay);
        Ok(this)
    }

    /// The relayed paths of a serving endpoint's socket.
    pub fn relay(&self) -> Option<&Arc<RelaySocket>> {
        self.relay.as_ref()
    }

    fn with_endpoint(
        mut endpoint: quinn::Endpoint,
        me: Me,
        settings: LinkSettings,
        keys: Option<Arc<KeyPool>>,
    ) -> Result<Self, DialError> {
        endpoint.set_default_client_config(tls::client_config(&settings)?);
        let creds = me.credentials(keys.as_ref())?;
        let presence = Presence::new(me, creds);
        Ok(Self { endpoint, presence, settings: Arc::new(settings), keys, relay: None })
    }

    /// Binds an ephemeral port that only dials (for CLI commands): dual
    /// stack, so that it can race a peer's IPv6 and IPv4 addresses.
    pub fn client(me: Me, settings: LinkSettings) -> Result<Self, DialError> {
        let addr = SocketAddr::new(crate::addrs::DUAL_STACK, 0);
        let bind = |source| DialError::Bind { addr, source };
        let socket = crate::addrs::bind_udp(addr).map_err(bind)?;
        let runtime = Arc::new(quinn::TokioRuntime);
        let endpoint = quinn::Endpoint::new(quinn::EndpointConfig::default(), None, socket, runtime).map_err(bind)?;
        Self::with_endpoint(endpoint, me, settings, None)
    }

    /// Announces `addrs` (where peers can reach this node) in handshakes.
    pub fn with_addrs(self, addrs: Vec<SocketAddr>) -> Result<Self, DialError> {
        self.set_addrs(addrs)?;
        Ok(self)
    }

    /// Announces `addrs` from now on, in handshakes and address records,
    /// on this endpoint and its clones (the host's addresses changed).
    /// Keeps the keys it knows.
    pub fn set_addrs(&self, addrs: Vec<SocketAddr>) -> Result<(), DialError> {
        let me = Me { addrs, ..(*self.presence.me()).clone() };
        let local = LocalIdentity { key: &me.key, display_name: &me.display_name, addrs: &me.addrs };
        let creds = match self.presence.creds().renewed(&local) {
            Some(c) => c,
            None => me.credentials(self.keys.as_ref())?,
        };
        self.presence.set(me, creds);
        Ok(())
    }

    /// The bound address (`[::]` for a dual-stack one).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.endpoint.local_addr()
    }

    /// The underlying quinn endpoint.
    pub fn quinn(&self) -> &quinn::Endpoint {
        &self.endpoint
    }

    /// This node, as it presents itself now.
    pub fn me(&self) -> Arc<Me> {
        self.presence.me()
    }

    /// This node as it presents itself, now and later.
    pub(crate) fn presence(&self) -> &Presence {
        &self.presence
    }

    /// The Noise static keys this endpoint knows to belong to other nodes
    /// (seed it with those stored with the peers).
    pub fn known_keys(&self) -> Arc<KnownKeys> {
        self.presence.creds().known().clone()
    }

    /// The limits in force.
    pub fn settings(&self) -> &Arc<LinkSettings> {
        &self.settings
    }

    /// Connects to `addr` and authenticates it as `expected`.
    pub async fn dial(&self, addr: SocketAddr, expected: NodeId) -> Result<Link, DialError> {
        self.connect(addr, Mode::Trusted, expected).await
    }

    /// [`Self::dial`] to a peer that is dialling this endpoint at the same
    /// time through its NAT (hole punching): the first packets may be
    /// dropped, or refused by a NAT that has no mapping yet, so a refusal
    /// is not taken as "nothing listens there"; QUIC's retransmissions go
    /// on until the handshake timeout.
    pub async fn punch(&self, addr: SocketAddr, expected: NodeId) -> Result<Link, DialError> {
        self.connect_with(addr, Mode::Trusted, expected, false).await
    }

    /// [`Self::punch`] at each of `addrs`, happy-eyeballs style: where a
    /// rendezvous sees the peer, and where its own address record says
    /// it is (behind the same NAT, its LAN address answers).
    pub async fn punch_any(&self, addrs: &[SocketAddr], expected: NodeId) -> Result<Link, DialError> {
        self.first_of(addrs, |a| self.punch(a, expected)).await
    }

    /// Tries `addrs` in order; the first that authenticates wins.
    pub async fn dial_any(&self, addrs: &[SocketAddr], expected: NodeId) -> Result<Link, DialError> {
        self.first_of(addrs, |a| self.dial(a, expected)).await
    }

    /// Redeems a pairing ticket at the inviter's addresses.
    pub async fn pair(&self, ticket: &Ticket) -> Result<Link, DialError> {
        let mode = Mode::Pair { ticket_id: ticket.secret.id(), psk: ticket.secret.psk() };
        self.first_of(&ticket.addrs, |a| self.connect(a, mode.clone(), ticket.node_id)).await
    }

    /// Happy eyeballs (RFC 8305): the addresses are tried in order, the
    /// address families alternating ([`crate::addrs::interleave`]), each
    /// [`STAGGER`] after the one before, or at once when one fails; the
    /// first to authenticate wins and the others are dropped.
    async fn first_of<F, Fut>(&self, addrs: &[SocketAddr], f: F) -> Result<Link, DialError>
    where
        F: Fn(SocketAddr) -> Fut,
        Fut: Future<Output = Result<Link, DialError>>,
    {
        use futures_util::StreamExt;
        let attempt = |addr: SocketAddr| {
            let dial = f(addr);
            async move { (addr, dial.await) }
        };
        let order = crate::addrs::interleave(addrs);
        let mut waiting = order.into_iter();
        let mut running = futures_util::stream::FuturesUnordered::new();
        let mut errors = Vec::new();
        loop {
            if running.is_empty() {
                match waiting.next() {
                    Some(addr) => running.push(attempt(addr)),
                    None => break,
                }
            }
            let more = waiting.len() > 0;
            tokio::select! {
                Some((addr, result)) = running.next() => match result {
                    Ok(link) => return Ok(link),
                    Err(e) => {
                        tracing::debug!(%addr, "dial failed: {e}");
                        errors.push(e);
                        if let Some(next) = waiting.next() {
                            running.push(attempt(next));
                        }
                    }
                },
                () = tokio::time::sleep(STAGGER), if more => {
                    if let Some(next) = waiting.next() {
                        running.push(attempt(next));
                    }
                }
            }
        }
        match errors.len() {
            0 => Err(DialError::NoAddress),
            1 => Err(errors.remove(0)),
            _ => Err(DialError::AllFailed(errors)),
        }
    }

    async fn connect(&self, addr: SocketAddr, mode: Mode, expected: NodeId) -> Result<Link, DialError> {
        self.connect_with(addr, mode, expected, true).await
    }

    async fn connect_with(
        &self,
        addr: SocketAddr,
        mode: Mode,
        expected: NodeId,
        probe: bool,
    ) -> Result<Link, DialError> {
        let limit = self.settings.handshake_timeout;
        let timeout = || DialError::Timeout { addr, secs: limit.as_secs_f64() };
        // An address this host has no route to (an IPv6 one on a host with
        // IPv6 switched on but not connected) fails at once: quinn would
        // send into the void until the timeout, holding up the next
        // address. A dial's probe finds that out beside the connect; a
        // punch (no probe) looks first.
        let local = self.endpoint.local_addr().unwrap_or(SocketAddr::new(crate::addrs::DUAL_STACK, 0));
        let no_route = |e| DialError::Connect { addr, reason: format!("no route to it from here: {e}") };
        if !probe
            && !crate::relay::is_virtual(&addr)
            && let Some(e) = crate::probe::no_route(addr, local)
        {
            return Err(no_route(e));
        }
        let connecting =
            self.endpoint.connect(addr, "alp").map_err(|e| DialError::Connect { addr, reason: e.to_string() })?;
        let attempt = async {
            // While QUIC connects: let the endpoint send its first packet,
            // then make the handshake's ephemeral key (and `es`, if the
            // peer's static key is known) instead of waiting idle.
            tokio::task::yield_now().await;
            let creds = self.presence.creds();
            let prepared = Initiator::prepare(&creds, Some(expected));
            // Until QUIC answers, a closed port may say so (see `probe`);
            // once it has, the port is open and only the timeout applies.
            let conn = tokio::select! {
                biased;
                c = connecting => c.map_err(|e| conn_error(addr, e))?,
                found = crate::probe::probe(addr, local), if probe => return Err(match found {
                    crate::probe::Found::Closed => DialError::NotListening { addr },
                    crate::probe::Found::NoRoute(e) => no_route(e),
                }),
            };
            let binding = binding(&conn).map_err(|source| DialError::Handshake { addr, source })?;
            let established = initiate(&conn, binding, &creds, prepared, &mode).await.inspect_err(|e| {
                if let DialError::Handshake { source: HandshakeError::UnexpectedPeer { .. }, .. } = e {
                    conn.close(close_code::UNEXPECTED_PEER, b"not the node I dialled");
                } else if matches!(e, DialError::Handshake { .. }) {
                    conn.close(close_code::HANDSHAKE_FAILED, b"handshake failed");
                }
            })?;
            Ok::<_, DialError>((conn, established, binding))
        };
        let (conn, established, binding) = tokio::time::timeout(limit, attempt).await.map_err(|_| timeout())??;
        Ok(Link::new(conn, established, self.settings.clone(), self.presence.me(), binding))
    }
}

/// This connection's channel binding: 32 bytes from its TLS exporter.
pub(crate) fn binding(conn: &quinn::Connection) -> Result<Binding, HandshakeError> {
    let mut out = [0u8; 32];
    conn.export_keying_material(&mut out, handshake::EXPORTER_LABEL, b"")
        .map_err(|_| HandshakeError::Malformed("TLS exporter unavailable"))?;
    Ok(out)
}

/// The dialling side of the handshake, on the connection's first stream.
/// Trusted dials proceed once frame 3 is sent (the responder authorises
/// before it reads any request); a pairing waits for frame 4 to know the
/// ticket was accepted.
async fn initiate(
    conn: &quinn::Connection,
    binding: Binding,
    creds: &Credentials,
    prepared: Prepared,
    mode: &Mode,
) -> Result<Established, DialError> {
    let addr = crate::addrs::canonical(conn.remote_address());
    let hs = |source| DialError::Handshake { addr, source };
    let wire = |e: WireError| wire_error(addr, e);
    let (init, f1) = Initiator::start_prepared(creds, prepared, binding, mode).map_err(hs)?;
    let (mut send, mut recv) = conn.open_bi().await.map_err(|e| conn_error(addr, e))?;
    send.write_frame(f1).await.map_err(wire)?;
    let f2 = recv.read_frame(handshake::MAX_FRAME).await.map_err(wire)?;
    let (init, f3) = init.handle_response(&f2).map_err(hs)?;
    send.write_frame(f3).await.map_err(wire)?;
    let _ = send.finish();
    if let Mode::Trusted = mode {
        return Ok(init.proceed());
    }
    let f4 = recv.read_frame(handshake::MAX_FRAME).await.map_err(wire)?;
    init.handle_confirmation(&f4).map_err(hs)
}

fn conn_error(addr: SocketAddr, e: quinn::ConnectionError) -> DialError {
    match e {
        quinn::ConnectionError::ApplicationClosed(close) => DialError::Refused {
            addr,
            code: close.error_code.into_inner(),
            reason: String::from_utf8_lossy(&close.reason).into_owned(),
        },
        quinn::ConnectionError::TimedOut => DialError::Timeout { addr, secs: 0.0 },
        other => DialError::Connect { addr, reason: other.to_string() },
    }
}

fn wire_error(addr: SocketAddr, e: WireError) -> DialError {
    match e {
        WireError::Connection(c) => conn_error(addr, c),
        other => DialError::Connect { addr, reason: format!("handshake stream: {other}") },
    }
}
