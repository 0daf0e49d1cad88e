//! Workgroup events: the signed, chained records a workgroup's log is made
//! of. The layout is fixed (the body is canonical CBOR), so the bytes an
//! author signed are the bytes every member stores, hashes and forwards.
//!
//! ```text
//! unsigned = version u8 (1)
//!         || group [32]      zero in the group's first event; the group's id is that event's id
//!         || author [32]     the author's node id
//!         || seq u64         1, 2, 3, … in the author's feed
//!         || prev [32]       id of the author's previous event; zero when seq = 1
//!         || clock u64       Lamport clock: above prev's and every dep's
//!         || time u64        the author's wall clock, Unix milliseconds (informational)
//!         || deps u8 n (≤ 16) || n × id [32], strictly ascending
//!         || kind u8
//!         || body u32 len (≤ 65536) || body (canonical CBOR, see `body`)
//! event    = unsigned || Ed25519 signature [64] over "alp wg event v1" || unsigned
//! id       = BLAKE3(unsigned)
//! ```

use std::fmt;
use std::sync::Arc;

use alp_protocol::NodeId;
use ed25519_dalek::{Signature, Signer, SigningKey};

use crate::body::Body;

/// What an author signs before the event's bytes.
pub const EVENT_CONTEXT: &[u8] = b"alp wg event v1";
/// The layout version.
pub const VERSION: u8 = 1;
/// The most events one event may depend on.
pub const MAX_DEPS: usize = 16;
/// The largest body.
pub const MAX_BODY: usize = 64 * 1024;
/// The largest encoded event.
pub const MAX_EVENT: usize = FIXED_LEN + MAX_DEPS * 32 + MAX_BODY + 64;
/// The most a clock may run ahead of what the event depends on, so that
/// no author can exhaust the clock for everyone.
pub const MAX_CLOCK_STEP: u64 = 1 << 32;
/// The header bytes before the deps, plus kind and body length.
const FIXED_LEN: usize = 1 + 32 + 32 + 8 + 32 + 8 + 8 + 1 + 1 + 4;

/// An event's id: BLAKE3 of its unsigned bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct EventId(pub [u8; 32]);

impl EventId {
    /// The first 12 hex digits, for people.
    pub fn short(&self) -> String {
        self.to_string()[..12].to_owned()
    }

    fn is_zero(&self) -> bool {
        self.0 == [0; 32]
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EventId({})", self.short())
    }
}

impl std::str::FromStr for EventId {
    type Err = EventError;

    /// The full 64 hex digits.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.len() != 64 || !s.is_ascii() {
            return Err(EventError::Malformed("an id is 64 hex digits"));
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16)
                .map_err(|_| EventError::Malformed("an id is 64 hex digits"))?;
        }
        Ok(Self(out))
    }
}

/// A workgroup's id: the id of its first event.
pub type GroupId = EventId;

/// Everything about an event but its body and signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The workgroup; `None` in its first event (whose id is the group's).
    pub group: Option<GroupId>,
    /// Who wrote it.
    pub author: NodeId,
    /// Its place in the author's feed, from 1.
    pub seq: u64,
    /// The author's previous event (`None` when `seq` is 1).
    pub prev: Option<EventId>,
    /// Lamport clock: higher than the clock of `prev` and of every dep.
    pub clock: u64,
    /// The author's wall clock when writing it, Unix milliseconds.
    pub time_ms: u64,
    /// Events this one refers to, strictly ascending.
    pub deps: Vec<EventId>,
}

/// A decoded, signature-checked event. Cheap to clone.
#[derive(Clone)]
pub struct Event(Arc<Inner>);

struct Inner {
    header: Header,
    body: Body,
    id: EventId,
    bytes: Vec<u8>,
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("id", &self.id())
            .field("author", &self.0.header.author.short())
            .field("seq", &self.0.header.seq)
            .field("kind", &self.0.body.name())
            .finish()
    }
}

impl PartialEq for Event {
    fn eq(&self, other: &Self) -> bool {
        self.id() == other.id()
    }
}

impl Eq for Event {}

/// An event that cannot be made or accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EventError {
    /// Not the layout above.
    #[error("malformed event: {0}")]
    Malformed(&'static str),
    /// The body does not decode for its kind, or is not in canonical form.
    #[error("malformed event body: {0}")]
    Body(String),
    /// The signature is not the author's over these bytes.
    #[error("the signature does not verify against the author's node id")]
    BadSignature,
    /// Over a size limit.
    #[error("event too large: {0}")]
    TooLarge(&'static str),
}

impl Event {
    /// Writes and signs an event as `key` (whose node id must be the
    /// header's author).
    pub fn sign(key: &SigningKey, header: Header, body: Body) -> Result<Self, EventError> {
        if NodeId::from(key.verifying_key()) != header.author {
            return Err(EventError::Malformed("the signing key is not the author's"));
        }
        check_header(&header)?;
        // What this node signs passes the checks every receiver makes.
        body.check()?;
        let (kind, body_bytes) = body.encode();
        if body_bytes.len() > MAX_BODY {
            return Err(EventError::TooLarge("body over 64 KiB"));
        }
        let mut bytes = unsigned(&header, kind, &body_bytes);
        let signature = key.sign(&[EVENT_CONTEXT, &bytes].concat());
        let id = EventId(*blake3::hash(&bytes).as_bytes());
        bytes.extend_from_slice(&signature.to_bytes());
        Ok(Self(Arc::new(Inner { header, body, id, bytes })))
    }

    /// Decodes an event and checks its layout, limits, body and signature.
    pub fn decode(bytes: &[u8]) -> Result<Self, EventError> {
        if bytes.len() > MAX_EVENT {
            return Err(EventError::TooLarge("over the largest event"));
        }
        let m = EventError::Malformed;
        let (unsigned_bytes, signature) = bytes.split_last_chunk::<64>().ok_or(m("shorter than a signature"))?;
        let mut input = unsigned_bytes;
        let [version] = take::<1>(&mut input)?;
        if version != VERSION {
            return Err(m("unknown version"));
        }
        let group = EventId(take::<32>(&mut input)?);
        let author = NodeId::from_bytes(take::<32>(&mut input)?).map_err(|_| m("author is not a node id"))?;
        let seq = u64::from_be_bytes(take::<8>(&mut input)?);
        let prev = EventId(take::<32>(&mut input)?);
        let clock = u64::from_be_bytes(take::<8>(&mut input)?);
        let time_ms = u64::from_be_bytes(take::<8>(&mut input)?);
        let [n] = take::<1>(&mut input)?;
        let mut deps = Vec::with_capacity(usize::from(n).min(MAX_DEPS));
        for _ in 0..n {
            deps.push(EventId(take::<32>(&mut input)?));
        }
        let [kind] = take::<1>(&mut input)?;
        let len = u32::from_be_bytes(take::<4>(&mut input)?) as usize;
        if len > MAX_BODY {
            return Err(EventError::TooLarge("body over 64 KiB"));
        }
        if input.len() != len {
            return Err(m("body length does not match"));
        }
        let header = Header {
            group: (!group.is_zero()).then_some(group),
            author,
            seq,
            prev: (!prev.is_zero()).then_some(prev),
            clock,
            time_ms,
            deps,
        };
        check_header(&header)?;
        let body = Body::decode(kind, input)?;
        if header.group.is_none() != matches!(body, Body::Create(_)) {
            return Err(m("only a group's first event has no group, and it creates the group"));
        }
        let signature = Signature::from_bytes(signature);
        author
            .verifying_key()
            .verify_strict(&[EVENT_CONTEXT, unsigned_bytes].concat(), &signature)
            .map_err(|_| EventError::BadSignature)?;
        let id = EventId(*blake3::hash(unsigned_bytes).as_bytes());
        Ok(Self(Arc::new(Inner { header, body, id, bytes: bytes.to_vec() })))
    }

    /// Its id.
    pub fn id(&self) -> EventId {
        self.0.id
    }

    /// Its header.
    pub fn header(&self) -> &Header {
        &self.0.header
    }

    /// Its body.
    pub fn body(&self) -> &Body {
        &self.0.body
    }

    /// Its author.
    pub fn author(&self) -> NodeId {
        self.0.header.author
    }

    /// The workgroup it belongs to (its own id for a group's first event).
    pub fn group(&self) -> GroupId {
        self.0.header.group.unwrap_or(self.0.id)
    }

    /// The encoded, signed bytes, as stored and sent.
    pub fn bytes(&self) -> &[u8] {
        &self.0.bytes
    }

    /// The events it depends on (not its author's previous one).
    pub fn deps(&self) -> &[EventId] {
        &self.0.header.deps
    }

    /// The events it names: the author's previous one and its deps.
    pub fn parents(&self) -> impl Iterator<Item = EventId> + '_ {
        self.0.header.prev.into_iter().chain(self.0.header.deps.iter().copied())
    }
}

/// Layout rules that do not need the rest of the log.
fn check_header(h: &Header) -> Result<(), EventError> {
    let m = EventError::Malformed;
    if h.seq == 0 {
        return Err(m("seq starts at 1"));
    }
    if (h.seq == 1) != h.prev.is_none() {
        return Err(m("an author's first event has no prev; every later one has"));
    }
    if h.deps.len() > MAX_DEPS {
        return Err(EventError::TooLarge("more than 16 deps"));
    }
    if !h.deps.windows(2).all(|w| w[0] < w[1]) || h.deps.iter().any(EventId::is_zero) {
        return Err(m("deps must be strictly ascending and non-zero"));
    }
    if h.group.is_none() && (h.seq != 1 || !h.deps.is_empty() || h.clock != 1) {
        return Err(m("a group's first event is its author's first, with clock 1 and no deps"));
    }
    if h.group.is_some() && h.prev.is_none() && h.deps.is_empty() {
        return Err(m("every event but a group's first refers to an earlier one"));
    }
    if h.clock == 0 || h.clock >= 1 << 63 {
        return Err(m("clock out of range"));
    }
    Ok(())
}

fn unsigned(h: &Header, kind: u8, body: &[u8]) -> Vec<u8> {
    let zero = EventId::default();
    let mut out = Vec::with_capacity(FIXED_LEN + h.deps.len() * 32 + body.len() + 64);
    out.push(VERSION);
    out.extend_from_slice(&h.group.unwrap_or(zero).0);
    out.extend_from_slice(h.author.as_bytes());
    out.extend_from_slice(&h.seq.to_be_bytes());
    out.extend_from_slice(&h.prev.unwrap_or(zero).0);
    out.extend_from_slice(&h.clock.to_be_bytes());
    out.extend_from_slice(&h.time_ms.to_be_bytes());
    out.push(h.deps.len() as u8);
    for d in &h.deps {
        out.extend_from_slice(&d.0);
    }
    out.push(kind);
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(body);
    out
}

fn take<const N: usize>(input: &mut &[u8]) -> Result<[u8; N], EventError> {
    let (head, rest) = input.split_first_chunk::<N>().ok_or(EventError::Malformed("truncated"))?;
    *input = rest;
    Ok(*head)
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod vectors;
