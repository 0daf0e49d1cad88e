//! The link handshake: Noise XX (or XXpsk3 when pairing) over the first
//! bidirectional stream, bound to the QUIC connection it runs in.
//!
//! Four frames, each in the [`crate::frame`] format:
//!
//! ```text
//! 1  I → R  version u8 | mode u8 | [ticket id, 16 bytes, if mode = 1] | noise msg 1 (-> e)
//! 2  R → I  noise msg 2 (<- e, ee, s, es), payload = responder identity
//! 3  I → R  noise msg 3 (-> s, se [, psk]), payload = initiator identity
//! 4  R → I  noise transport message, payload = [0] (accepted)
//! ```
//!
//! Noise is complete once frame 3 is sent, so a dialler may send requests
//! right away ([`AwaitingConfirmation::proceed`]); the responder handles no
//! request before it has authorised the dialler and sent frame 4. A
//! pairing waits for frame 4 ([`AwaitingConfirmation::handle_confirmation`])
//! to learn that the ticket was accepted.
//!
//! The Noise prologue is `PROLOGUE_CONTEXT || binding || frame 1 header`,
//! where `binding` is exported from this QUIC connection's TLS session. A
//! handshake relayed between two QUIC connections therefore fails: each
//! side mixes a different binding into its handshake hash.
//!
//! Identity payload (fixed layout):
//!
//! ```text
//! ed25519 public key   32
//! signature            64  over IDENTITY_CONTEXT || role u8 ('I' | 'R')
//!                               || noise static public key (32)
//! display name         u8 length (≤ 64) + UTF-8
//! addresses            see crate::addr (≤ 8)
//! ```
//!
//! A node's Noise static key is derived from its identity key
//! (`blake3::derive_key(STATIC_KEY_CONTEXT, ed25519 secret)`), so it is the
//! same in every process of a profile, and both signatures are made once
//! ([`Credentials`]): no signing happens on the connection path. The
//! binding to the connection lives in the prologue, which every handshake
//! message is authenticated under.
//!
//! A (node id, static key) pair whose signature once verified is
//! remembered ([`KnownKeys`]; the node also stores it with the peer). A
//! handshake that presents a remembered pair skips the signature check,
//! and a dialler that knows the responder's static key computes `es`
//! before the connection is even up ([`Initiator::prepare`]). A peer whose
//! key changed is simply verified again.
//!
//! Call order is enforced by the types: each state's `handle_*` consumes it,
//! and only [`Established`] carries the session secret.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier};
use snow::{Builder, HandshakeState, TransportState};
use zeroize::Zeroizing;

use crate::NodeId;
use crate::addr;
use crate::x25519::{KeyPair, Scratch, SharedScratch, Slots};

/// Version byte of frame 1.
pub const VERSION: u8 = 1;
/// Noise protocol for connections between trusted peers.
pub const NOISE_XX: &str = "Noise_XX_25519_ChaChaPoly_SHA256";
/// Noise protocol for pairing with a ticket.
pub const NOISE_XXPSK3: &str = "Noise_XXpsk3_25519_ChaChaPoly_SHA256";
/// First bytes of every prologue.
pub const PROLOGUE_CONTEXT: &[u8] = b"alp link handshake v1";
/// First bytes of every identity signature.
pub const IDENTITY_CONTEXT: &[u8] = b"alp link identity v1";
/// `blake3::derive_key` context of a node's Noise static private key,
/// derived from its ed25519 secret key.
pub const STATIC_KEY_CONTEXT: &str = "alp link noise static key v1";
/// `blake3::derive_key` context of the session secret.
pub const SESSION_CONTEXT: &str = "alp link session secret v1";
/// TLS exporter label of the channel binding (context empty, 32 bytes).
pub const EXPORTER_LABEL: &[u8] = b"EXPORTER-alp-link-binding-v1";
/// The largest handshake frame.
pub const MAX_FRAME: usize = 1024;
/// The longest display name, in bytes.
pub const MAX_DISPLAY_NAME: usize = 64;

const MODE_TRUSTED: u8 = 0;
const MODE_PAIR: u8 = 1;
const ROLE_INITIATOR: u8 = b'I';
const ROLE_RESPONDER: u8 = b'R';
const ACCEPTED: u8 = 0;

/// 32 bytes exported from the QUIC connection's TLS session.
pub type Binding = [u8; 32];

/// Public identifier of a pairing ticket, sent in clear in frame 1.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TicketId(pub [u8; 16]);

impl fmt::Debug for TicketId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TicketId(")?;
        self.0[..4].iter().try_for_each(|b| write!(f, "{b:02x}"))?;
        write!(f, "..)")
    }
}

/// Which handshake to run.
#[derive(Clone)]
pub enum Mode {
    /// Between peers that already trust each other: Noise XX.
    Trusted,
    /// Redeeming a pairing ticket: Noise XXpsk3.
    Pair {
        /// Identifies the ticket to the responder.
        ticket_id: TicketId,
        /// Pre-shared key derived from the ticket secret.
        psk: [u8; 32],
    },
}

impl fmt::Debug for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mode::Trusted => f.write_str("Trusted"),
            Mode::Pair { ticket_id, .. } => write!(f, "Pair({ticket_id:?}, psk: ..)"),
        }
    }
}

/// What this side proves and announces.
#[derive(Debug, Clone, Copy)]
pub struct LocalIdentity<'a> {
    /// The node's identity key.
    pub key: &'a SigningKey,
    /// Shown to the peer (cut to [`MAX_DISPLAY_NAME`] bytes).
    pub display_name: &'a str,
    /// Where this node can be reached (at most [`addr::MAX_ADDRS`]).
    pub addrs: &'a [SocketAddr],
}

/// Where a responder's ephemeral X25519 keys come from when they are made
/// ahead of time, so a handshake does not wait for key generation. This
/// crate makes none in the background: a long-running node supplies a
/// pool ([`Credentials::with_key_source`]); without one, each handshake
/// makes its own key.
pub trait KeySource: Send + Sync {
    /// A key pair never handed out before, if one is ready.
    fn take(&self) -> Option<EphemeralKey>;
}

/// An X25519 key pair for exactly one handshake.
pub struct EphemeralKey(KeyPair);

impl EphemeralKey {
    /// A key pair from 32 bytes drawn with `rng` (which returns false when
    /// it fails); `None` if it failed.
    pub fn generate(rng: &mut dyn FnMut(&mut [u8]) -> bool) -> Option<Self> {
        KeyPair::generate(rng).map(Self)
    }

    /// The key pair of a private key (for tests and vectors).
    pub fn from_private(private: [u8; 32]) -> Option<Self> {
        KeyPair::from_private(&private).map(Self)
    }

    /// The public key.
    pub fn public(&self) -> &[u8; 32] {
        self.0.public()
    }

    pub(crate) fn into_pair(self) -> KeyPair {
        self.0
    }
}

impl fmt::Debug for EphemeralKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EphemeralKey(..)")
    }
}

/// A node's handshake credentials: a Noise static key pair, and the
/// identity payloads (with signatures binding that key to the node's
/// ed25519 identity) for both roles. Made once per endpoint.
pub struct Credentials {
    static_key: Arc<KeyPair>,
    payload_initiator: Vec<u8>,
    payload_responder: Vec<u8>,
    node_id: NodeId,
    known: Arc<KnownKeys>,
    source: Option<Arc<dyn KeySource>>,
}

impl Credentials {
    /// Derives the static key pair from `local`'s identity key and signs it.
    pub fn new(local: &LocalIdentity<'_>) -> Result<Self, HandshakeError> {
        let private = Zeroizing::new(blake3::derive_key(STATIC_KEY_CONTEXT, local.key.as_bytes()));
        let static_key =
            KeyPair::from_private(private.as_ref()).ok_or_else(|| HandshakeError::Crypto("X25519 key".into()))?;
        Ok(Self {
            payload_initiator: identity_payload(local, ROLE_INITIATOR, static_key.public()),
            payload_responder: identity_payload(local, ROLE_RESPONDER, static_key.public()),
            static_key: Arc::new(static_key),
            node_id: local.key.verifying_key().into(),
            known: Arc::new(KnownKeys::default()),
            source: None,
        })
    }

    /// Handshakes take their ephemeral keys from `source` while it has
    /// some (a responder's on the spot, a dial's in [`Initiator::prepare`]).
    pub fn with_key_source(mut self, source: Arc<dyn KeySource>) -> Self {
        self.source = Some(source);
        self
    }

    /// These credentials announcing what `local` does now (its addresses
    /// changed): the same static key, known keys and key source, with new
    /// identity payloads. `None` if `local` is another node.
    pub fn renewed(&self, local: &LocalIdentity<'_>) -> Option<Self> {
        if NodeId::from(local.key.verifying_key()) != self.node_id {
            return None;
        }
        Some(Self {
            payload_initiator: identity_payload(local, ROLE_INITIATOR, self.static_key.public()),
            payload_responder: identity_payload(local, ROLE_RESPONDER, self.static_key.public()),
            static_key: self.static_key.clone(),
            node_id: self.node_id,
            known: self.known.clone(),
            source: self.source.clone(),
        })
    }

    /// The static keys these credentials know to belong to other nodes.
    pub fn known(&self) -> &Arc<KnownKeys> {
        &self.known
    }

    /// The Noise static public key these credentials sign.
    pub fn static_public(&self) -> &[u8] {
        self.static_key.public()
    }

    /// The node these credentials speak for.
    pub fn node_id(&self) -> NodeId {
        self.node_id
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials").field("node_id", &self.node_id).finish_non_exhaustive()
    }
}

/// Noise static keys known to belong to node ids, each proven by an
/// identity signature: checked in a handshake of these credentials, or
/// stored by the node after one ([`KnownKeys::remember`]). Bounded; when
/// full it starts over, which only costs signature checks.
#[derive(Debug, Default)]
pub struct KnownKeys(std::sync::Mutex<HashMap<[u8; 32], Known>>);

/// A node and its static key, filed under the node's identity key bytes.
type Known = (NodeId, [u8; 32]);

/// The most (node id, static key) pairs remembered.
pub const MAX_KNOWN_KEYS: usize = 4096;

impl KnownKeys {
    /// Records that `static_key` belongs to `node`. Only for pairs whose
    /// signature verified (in a handshake, or stored after one): a
    /// remembered pair is not checked again.
    pub fn remember(&self, node: NodeId, static_key: [u8; 32]) {
        let Ok(mut map) = self.0.lock() else { return };
        if map.len() >= MAX_KNOWN_KEYS && !map.contains_key(node.as_bytes()) {
            map.clear();
        }
        map.insert(*node.as_bytes(), (node, static_key));
    }

    /// Forgets every pair: the next handshake with each node checks its
    /// signature again.
    pub fn clear(&self) {
        if let Ok(mut map) = self.0.lock() {
            map.clear();
        }
    }

    /// The static key remembered for `node`.
    pub fn get(&self, node: &NodeId) -> Option<[u8; 32]> {
        self.0.lock().ok()?.get(node.as_bytes()).map(|(_, key)| *key)
    }

    /// The node whose identity key is `key`, if `static_key` is remembered
    /// as its static key.
    fn node_with(&self, key: &[u8; 32], static_key: &[u8]) -> Option<NodeId> {
        let map = self.0.lock().ok()?;
        map.get(key).filter(|(_, k)| k.as_slice() == static_key).map(|(node, _)| *node)
    }
}

/// What the other side proved and announced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerHello {
    /// Its authenticated identity.
    pub node_id: NodeId,
    /// Its Noise static public key, proven to belong to `node_id`.
    pub static_key: [u8; 32],
    /// Its display name (unauthenticated text; show, do not trust).
    pub display_name: String,
    /// Addresses it says it can be reached at.
    pub addrs: Vec<SocketAddr>,
}

/// The handshake failed; the connection must be closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// A frame was not what this step expects.
    #[error("malformed handshake message: {0}")]
    Malformed(&'static str),
    /// The peer speaks another version.
    #[error("unsupported handshake version {0} (this node speaks {VERSION})")]
    UnsupportedVersion(u8),
    /// Noise failed: wrong key, wrong ticket secret, or a relayed handshake.
    #[error("handshake cryptography failed ({0}): wrong pairing secret, a relay in the path, or a corrupted message")]
    Crypto(String),
    /// The identity signature does not verify.
    #[error("the peer's identity signature is invalid")]
    BadSignature,
    /// The peer is not the node we meant to reach.
    #[error("reached node {got}, expected {expected}: the address belongs to another node")]
    UnexpectedPeer {
        /// The node we dialled for.
        expected: NodeId,
        /// The node that answered.
        got: NodeId,
    },
    /// Pairing with a ticket this node does not hold.
    #[error("unknown, expired or used pairing ticket")]
    UnknownTicket,
}

impl From<snow::Error> for HandshakeError {
    fn from(e: snow::Error) -> Self {
        HandshakeError::Crypto(e.to_string())
    }
}

/// The dialling side, after sending frame 1.
#[derive(Debug)]
pub struct Initiator {
    noise: HandshakeState,
    payload: Vec<u8>,
    expected: Option<NodeId>,
    known: Arc<KnownKeys>,
}

/// The part of a dial's handshake that needs no connection: this
/// handshake's ephemeral key pair and, when the expected responder's
/// static key is known, `es` (the ephemeral key with it). Made while QUIC
/// connects, it takes that work off the connect path. If the responder
/// turns out to present another static key, `es` is just not used.
pub struct Prepared {
    scratch: SharedScratch,
    expected: Option<NodeId>,
    es: bool,
}

impl Prepared {
    /// Whether `es` was computed.
    pub fn has_es(&self) -> bool {
        self.es
    }
}

impl fmt::Debug for Prepared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Prepared").field("expected", &self.expected).field("es", &self.es).finish_non_exhaustive()
    }
}

impl Initiator {
    /// Prepares a handshake with `expected` (the node we mean to reach;
    /// for pairing, the inviter), before there is a connection.
    pub fn prepare(creds: &Credentials, expected: Option<NodeId>) -> Prepared {
        let scratch = SharedScratch::default();
        let es = Scratch::reserve(&scratch, creds.source.as_deref())
            && expected.and_then(|e| creds.known.get(&e)).is_some_and(|key| Scratch::precompute(&scratch, &key));
        Prepared { scratch, expected, es }
    }

    /// Starts a handshake; returns the state and frame 1 to send.
    /// `expected` is the node we mean to reach (for pairing, the inviter).
    pub fn start(
        creds: &Credentials,
        binding: Binding,
        mode: &Mode,
        expected: Option<NodeId>,
    ) -> Result<(Self, Vec<u8>), HandshakeError> {
        Self::start_prepared(creds, Self::prepare(creds, expected), binding, mode)
    }

    /// Starts a prepared handshake on the connection whose channel binding
    /// is `binding`; returns the state and frame 1 to send.
    pub fn start_prepared(
        creds: &Credentials,
        prepared: Prepared,
        binding: Binding,
        mode: &Mode,
    ) -> Result<(Self, Vec<u8>), HandshakeError> {
        let Prepared { scratch, expected, .. } = prepared;
        let mut header = vec![VERSION];
        let psk = match mode {
            Mode::Trusted => {
                header.push(MODE_TRUSTED);
                None
            }
            Mode::Pair { ticket_id, psk } => {
                header.push(MODE_PAIR);
                header.extend_from_slice(&ticket_id.0);
                Some(psk)
            }
        };
        let mut noise = build(creds, &binding, &header, psk, true, Some(scratch))?;
        let mut buf = [0u8; MAX_FRAME];
        let n = noise.write_message(&[], &mut buf)?;
        header.extend_from_slice(&buf[..n]);
        let payload = creds.payload_initiator.clone();
        Ok((Self { noise, payload, expected, known: creds.known.clone() }, header))
    }

    /// Handles frame 2; returns the next state and frame 3 to send.
    pub fn handle_response(mut self, frame2: &[u8]) -> Result<(AwaitingConfirmation, Vec<u8>), HandshakeError> {
        let mut buf = vec![0u8; MAX_FRAME];
        let n = self.noise.read_message(frame2, &mut buf)?;
        let remote = verify_identity(&self.noise, &buf[..n], ROLE_RESPONDER, &self.known)?;
        if let Some(expected) = self.expected.filter(|e| *e != remote.node_id) {
            return Err(HandshakeError::UnexpectedPeer { expected, got: remote.node_id });
        }
        let n = self.noise.write_message(&self.payload, &mut buf)?;
        let (transport, secret) = finish(self.noise)?;
        Ok((AwaitingConfirmation { transport, secret, remote }, buf[..n].to_vec()))
    }
}

/// The dialling side, after sending frame 3.
#[derive(Debug)]
pub struct AwaitingConfirmation {
    transport: TransportState,
    secret: [u8; 32],
    remote: PeerHello,
}

impl AwaitingConfirmation {
    /// The responder, already authenticated (it may still refuse us).
    pub fn remote(&self) -> &PeerHello {
        &self.remote
    }

    /// Treats the handshake as done without waiting for frame 4: Noise is
    /// complete, and the responder handles no request before accepting.
    /// A refusal then shows as the connection closing.
    pub fn proceed(self) -> Established {
        Established { remote: self.remote, session_secret: self.secret, ticket: None }
    }

    /// Handles frame 4: the responder accepted us.
    pub fn handle_confirmation(mut self, frame4: &[u8]) -> Result<Established, HandshakeError> {
        let mut buf = [0u8; 64];
        let n = self.transport.read_message(frame4, &mut buf)?;
        if buf[..n] != [ACCEPTED] {
            return Err(HandshakeError::Malformed("confirmation"));
        }
        Ok(Established { remote: self.remote, session_secret: self.secret, ticket: None })
    }
}

/// The accepting side, before frame 1.
#[derive(Debug, Clone, Copy)]
pub struct Responder;

impl Responder {
    /// Handles frame 1. For a pairing attempt, `psk_for` maps the ticket id
    /// to its pre-shared key (`None`: unknown, expired or used). Returns the
    /// next state and frame 2 to send.
    pub fn handle_hello(
        creds: &Credentials,
        binding: Binding,
        frame1: &[u8],
        psk_for: impl FnOnce(TicketId) -> Option<[u8; 32]>,
    ) -> Result<(AwaitingFinish, Vec<u8>), HandshakeError> {
        let mut input = frame1;
        let [version, mode] = addr::take::<2>(&mut input).map_err(HandshakeError::Malformed)?;
        if version != VERSION {
            return Err(HandshakeError::UnsupportedVersion(version));
        }
        let (ticket, psk) = match mode {
            MODE_TRUSTED => (None, None),
            MODE_PAIR => {
                let id = TicketId(addr::take::<16>(&mut input).map_err(HandshakeError::Malformed)?);
                (Some(id), Some(psk_for(id).ok_or(HandshakeError::UnknownTicket)?))
            }
            _ => return Err(HandshakeError::Malformed("unknown mode")),
        };
        let header = &frame1[..frame1.len() - input.len()];
        let mut noise = build(creds, &binding, header, psk.as_ref(), false, None)?;
        let mut buf = vec![0u8; MAX_FRAME];
        let n = noise.read_message(input, &mut buf)?;
        if n != 0 {
            return Err(HandshakeError::Malformed("payload in message 1"));
        }
        let n = noise.write_message(&creds.payload_responder, &mut buf)?;
        Ok((AwaitingFinish { noise, ticket, known: creds.known.clone() }, buf[..n].to_vec()))
    }
}

/// The accepting side, after sending frame 2.
#[derive(Debug)]
pub struct AwaitingFinish {
    noise: HandshakeState,
    ticket: Option<TicketId>,
    known: Arc<KnownKeys>,
}

impl AwaitingFinish {
    /// The ticket being redeemed, if this is a pairing.
    pub fn ticket(&self) -> Option<TicketId> {
        self.ticket
    }

    /// Handles frame 3: the initiator is now authenticated. The caller
    /// decides whether to accept it.
    pub fn handle_finish(mut self, frame3: &[u8]) -> Result<Pending, HandshakeError> {
        let mut buf = vec![0u8; MAX_FRAME];
        let n = self.noise.read_message(frame3, &mut buf)?;
        let remote = verify_identity(&self.noise, &buf[..n], ROLE_INITIATOR, &self.known)?;
        let (transport, secret) = finish(self.noise)?;
        Ok(Pending { transport, secret, remote, ticket: self.ticket })
    }
}

/// The accepting side with an authenticated initiator, awaiting the
/// decision. To refuse, drop it and close the connection.
#[derive(Debug)]
pub struct Pending {
    transport: TransportState,
    secret: [u8; 32],
    remote: PeerHello,
    ticket: Option<TicketId>,
}

impl Pending {
    /// The authenticated initiator.
    pub fn remote(&self) -> &PeerHello {
        &self.remote
    }

    /// The ticket being redeemed, if this is a pairing.
    pub fn ticket(&self) -> Option<TicketId> {
        self.ticket
    }

    /// Accepts the initiator; returns the session and frame 4 to send.
    pub fn accept(mut self) -> Result<(Established, Vec<u8>), HandshakeError> {
        let mut buf = [0u8; 64];
        let n = self.transport.write_message(&[ACCEPTED], &mut buf)?;
        let done = Established { remote: self.remote, session_secret: self.secret, ticket: self.ticket };
        Ok((done, buf[..n].to_vec()))
    }
}

/// A completed handshake.
pub struct Established {
    /// The authenticated peer.
    pub remote: PeerHello,
    /// Secret shared by both sides, derived from the Noise split keys:
    /// `blake3::derive_key(SESSION_CONTEXT, k1 || k2)`.
    pub session_secret: [u8; 32],
    /// The ticket redeemed, if this was a pairing (responder side only).
    pub ticket: Option<TicketId>,
}

impl fmt::Debug for Established {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Established").field("remote", &self.remote).finish_non_exhaustive()
    }
}

fn build(
    creds: &Credentials,
    binding: &Binding,
    header: &[u8],
    psk: Option<&[u8; 32]>,
    initiator: bool,
    scratch: Option<SharedScratch>,
) -> Result<HandshakeState, HandshakeError> {
    let name = if psk.is_some() { NOISE_XXPSK3 } else { NOISE_XX };
    let params = name.parse().map_err(HandshakeError::from)?;
    let prologue = [PROLOGUE_CONTEXT, binding, header].concat();
    let slots = Slots { known: Some(creds.static_key.clone()), scratch, source: creds.source.clone() };
    let builder = Builder::with_resolver(params, crate::x25519::resolver(slots));
    let mut builder = builder.local_private_key(creds.static_key.private())?.prologue(&prologue)?;
    if let Some(psk) = psk {
        builder = builder.psk(3, psk)?;
    }
    Ok(if initiator { builder.build_initiator()? } else { builder.build_responder()? })
}

fn finish(mut noise: HandshakeState) -> Result<(TransportState, [u8; 32]), HandshakeError> {
    let (k1, k2) = noise.dangerously_get_raw_split();
    let secret = blake3::derive_key(SESSION_CONTEXT, &[k1, k2].concat());
    Ok((noise.into_transport_mode()?, secret))
}

pub(crate) fn signed_message(role: u8, static_pub: &[u8]) -> Vec<u8> {
    [IDENTITY_CONTEXT, &[role], static_pub].concat()
}

pub(crate) fn identity_payload(local: &LocalIdentity<'_>, role: u8, static_pub: &[u8]) -> Vec<u8> {
    let sig = local.key.sign(&signed_message(role, static_pub));
    let mut cut = local.display_name.len().min(MAX_DISPLAY_NAME);
    while !local.display_name.is_char_boundary(cut) {
        cut -= 1;
    }
    let name = &local.display_name[..cut];
    let mut out = Vec::with_capacity(32 + 64 + 1 + name.len() + addr::encoded_len(local.addrs));
    out.extend_from_slice(local.key.verifying_key().as_bytes());
    out.extend_from_slice(&sig.to_bytes());
    out.push(name.len() as u8);
    out.extend_from_slice(name.as_bytes());
    addr::encode(local.addrs, &mut out);
    out
}

/// Checks the identity payload against the static key Noise proved. A
/// pair in `known` was checked before (the signature is deterministic, so
/// it would verify again) and is not checked twice.
fn verify_identity(
    noise: &HandshakeState,
    payload: &[u8],
    role: u8,
    known: &KnownKeys,
) -> Result<PeerHello, HandshakeError> {
    let static_pub = noise.get_remote_static().ok_or(HandshakeError::Malformed("no static key"))?;
    let static_key: [u8; 32] = static_pub.try_into().map_err(|_| HandshakeError::Malformed("static key"))?;
    let mut input = payload;
    let malformed = HandshakeError::Malformed;
    let key = addr::take::<32>(&mut input).map_err(malformed)?;
    let sig = Signature::from_bytes(&addr::take::<64>(&mut input).map_err(malformed)?);
    let node_id = match known.node_with(&key, &static_key) {
        Some(node) => node,
        None => {
            let node = NodeId::from_bytes(key).map_err(|_| HandshakeError::BadSignature)?;
            let vk = node.verifying_key();
            vk.verify(&signed_message(role, &static_key), &sig).map_err(|_| HandshakeError::BadSignature)?;
            known.remember(node, static_key);
            node
        }
    };
    let [len] = addr::take::<1>(&mut input).map_err(malformed)?;
    let len = usize::from(len);
    if len > MAX_DISPLAY_NAME || input.len() < len {
        return Err(HandshakeError::Malformed("display name"));
    }
    let (name, mut rest) = input.split_at(len);
    let display_name = std::str::from_utf8(name).map_err(|_| malformed("display name"))?.to_owned();
    let addrs = addr::decode(&mut rest).map_err(malformed)?;
    if !rest.is_empty() {
        return Err(HandshakeError::Malformed("trailing bytes in identity"));
    }
    Ok(PeerHello { node_id, static_key, display_name, addrs })
}

#[cfg(test)]
mod tests;
