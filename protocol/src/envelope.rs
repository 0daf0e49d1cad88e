//! Request and response envelopes: CBOR maps inside frames.
//!
//! ```text
//! request  = { "verb": text, "id": uint, "body": bytes }
//! response = { "id": uint, "ok": bytes }
//!          | { "id": uint, "err": { "code": uint, "message": text } }
//! ```
//!
//! `body` and `ok` hold the verb's own CBOR value, so an envelope can be
//! checked (size, verb, permission) before its body is looked at. Decoding
//! rejects unknown fields, trailing bytes and oversized fields.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The longest verb name accepted on the wire.
pub const MAX_VERB_LEN: usize = 32;
/// The longest error message accepted on the wire.
pub const MAX_MESSAGE_LEN: usize = 1024;

/// A request: one per stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// The verb's wire name; may be one this node does not know.
    pub verb: String,
    /// Chosen by the caller, echoed in the response.
    pub id: u64,
    /// The verb's CBOR-encoded argument.
    #[serde(with = "serde_bytes")]
    pub body: Vec<u8>,
}

/// A response to one request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Response {
    /// The request's id.
    pub id: u64,
    /// The verb's CBOR-encoded result.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_bytes")]
    pub ok: Option<Vec<u8>>,
    /// Or why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub err: Option<RemoteError>,
}

/// A typed error returned by the peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(deny_unknown_fields)]
#[error("{code}: {message}")]
pub struct RemoteError {
    /// What kind of failure.
    pub code: ErrorCode,
    /// Human-readable detail.
    pub message: String,
}

/// Error codes carried in responses. The numbers are part of the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// The body could not be decoded for this verb.
    BadRequest,
    /// The verb is not known to this node.
    UnknownVerb,
    /// The caller is not allowed this verb.
    Forbidden,
    /// The request is over the verb's size limit.
    TooLarge,
    /// The caller is sending requests too fast.
    RateLimited,
    /// The node has no capacity for this request now.
    Busy,
    /// The thing asked for does not exist (or is not shared).
    NotFound,
    /// The node failed while handling the request.
    Internal,
    /// A code this implementation does not know.
    Other(u16),
}

impl ErrorCode {
    /// The code's number on the wire.
    pub fn to_u16(self) -> u16 {
        match self {
            ErrorCode::BadRequest => 1,
            ErrorCode::UnknownVerb => 2,
            ErrorCode::Forbidden => 3,
            ErrorCode::TooLarge => 4,
            ErrorCode::RateLimited => 5,
            ErrorCode::Busy => 6,
            ErrorCode::NotFound => 7,
            ErrorCode::Internal => 8,
            ErrorCode::Other(n) => n,
        }
    }

    /// The code for a number.
    pub fn from_u16(n: u16) -> Self {
        match n {
            1 => ErrorCode::BadRequest,
            2 => ErrorCode::UnknownVerb,
            3 => ErrorCode::Forbidden,
            4 => ErrorCode::TooLarge,
            5 => ErrorCode::RateLimited,
            6 => ErrorCode::Busy,
            7 => ErrorCode::NotFound,
            8 => ErrorCode::Internal,
            n => ErrorCode::Other(n),
        }
    }

    fn name(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::UnknownVerb => "unknown_verb",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Busy => "busy",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Internal => "internal",
            ErrorCode::Other(_) => "unknown_error",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.to_u16())
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u16(self.to_u16())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        u16::deserialize(d).map(Self::from_u16)
    }
}

mod opt_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(b) => serde_bytes::serialize(b, s),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        serde_bytes::ByteBuf::deserialize(d).map(|b| Some(b.into_vec()))
    }
}

/// An envelope or body could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Not valid CBOR for this type, or trailing bytes.
    #[error("malformed CBOR: {0}")]
    Cbor(String),
    /// A field is over its limit.
    #[error("field `{0}` is too long")]
    FieldTooLong(&'static str),
    /// A fixed-size field has another length.
    #[error("field `{field}` must be {expected} bytes, not {got}")]
    WrongLength {
        /// The field.
        field: &'static str,
        /// Its size.
        expected: usize,
        /// The length received.
        got: usize,
    },
    /// A response with both or neither of `ok` and `err`.
    #[error("a response must carry exactly one of `ok` and `err`")]
    Ambiguous,
}

/// Encodes any envelope or body as CBOR.
pub fn to_cbor<T: Serialize>(value: &T) -> Vec<u8> {
    // Serialising these plain structs into a Vec cannot fail.
    serde_cbor::to_vec(value).unwrap_or_default()
}

/// Decodes CBOR, rejecting trailing bytes.
pub fn from_cbor<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, DecodeError> {
    serde_cbor::from_slice(bytes).map_err(|e| DecodeError::Cbor(e.to_string()))
}

impl Request {
    /// Encodes the request as CBOR (without the frame header).
    pub fn encode(&self) -> Vec<u8> {
        to_cbor(self)
    }

    /// Decodes and checks field limits. The body's size against the verb's
    /// limit is the caller's check, since it depends on the verb.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let r: Self = from_cbor(bytes)?;
        if r.verb.len() > MAX_VERB_LEN {
            return Err(DecodeError::FieldTooLong("verb"));
        }
        Ok(r)
    }
}

impl Response {
    /// A successful response.
    pub fn ok(id: u64, body: Vec<u8>) -> Self {
        Self { id, ok: Some(body), err: None }
    }

    /// A failed response; long messages are cut to [`MAX_MESSAGE_LEN`].
    pub fn err(id: u64, code: ErrorCode, message: impl Into<String>) -> Self {
        let mut message = message.into();
        if message.len() > MAX_MESSAGE_LEN {
            let mut cut = MAX_MESSAGE_LEN;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
        }
        Self { id, ok: None, err: Some(RemoteError { code, message }) }
    }

    /// Encodes the response as CBOR.
    pub fn encode(&self) -> Vec<u8> {
        to_cbor(self)
    }

    /// Decodes and checks the response's shape and field limits.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let r: Self = from_cbor(bytes)?;
        if r.ok.is_some() == r.err.is_some() {
            return Err(DecodeError::Ambiguous);
        }
        if r.err.as_ref().is_some_and(|e| e.message.len() > MAX_MESSAGE_LEN) {
            return Err(DecodeError::FieldTooLong("message"));
        }
        Ok(r)
    }

    /// The result as a `Result`.
    pub fn into_result(self) -> Result<Vec<u8>, RemoteError> {
        match (self.ok, self.err) {
            (_, Some(e)) => Err(e),
            (Some(b), None) => Ok(b),
            (None, None) => Err(RemoteError { code: ErrorCode::Internal, message: "empty response".into() }),
        }
    }
}

/// `link.ping` request body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PingRequest {
    /// Echoed back.
    pub nonce: u64,
}

/// `link.ping` response body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PingResponse {
    /// The request's nonce.
    pub nonce: u64,
    /// Protocol and software version, e.g. `alp/1 0.1.0`.
    pub version: String,
}

/// `link.meet` request body: introduce the caller to `want`, or, absent,
/// wait (up to 25 s) to be introduced to someone.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeetRequest {
    /// The node to meet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub want: Option<crate::NodeId>,
    /// The caller's signed address record, passed on to the node it
    /// meets (which may reach it there: two nodes behind one NAT, at their
    /// LAN addresses).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "serde_bytes")]
    pub record: Option<Vec<u8>>,
}

/// `link.meet` response body: the other node and the address the
/// responder sees it at (`"ip:port"`); both absent when a wait ended with
/// no introduction.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeetResponse {
    /// The other node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<crate::NodeId>,
    /// Where the responder sees it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addr: Option<String>,
    /// The other node asks for a relayed path: call `link.relay` for it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub relay: bool,
    /// The other node's signed address record, as it gave it (checked by
    /// the responder: valid, and the other node's).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "serde_bytes")]
    pub record: Option<Vec<u8>>,
}

/// `link.relay` request body: relay between the caller and `to`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelayRequest {
    /// The other end.
    pub to: crate::NodeId,
}

/// `link.relay` response body (empty map); after it, the stream carries
/// the relayed packets both ways.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelayResponse {}

/// `link.info` request body (empty map).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InfoRequest {}

/// `link.info` response body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InfoResponse {
    /// The responding node.
    pub node_id: crate::NodeId,
    /// Its display name.
    pub display_name: String,
    /// Protocol and software version.
    pub version: String,
    /// The verbs the caller may use on this node.
    pub verbs: Vec<String>,
    /// Where the node says it can be reached, until when: a signed
    /// [`crate::addr_record::AddrRecord`] (absent from a node that does
    /// not serve).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "serde_bytes")]
    pub addrs: Option<Vec<u8>>,
}

/// `blob.get` request body: the blob, optionally a byte range of it, and
/// the id the server will key the records with. The answer is a
/// [`BlobGetResponse`], then records and a receipt on the same stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlobGetRequest {
    /// 32-byte BLAKE3 hash.
    #[serde(with = "serde_bytes")]
    pub hash: Vec<u8>,
    /// 16 random bytes.
    #[serde(with = "serde_bytes")]
    pub transfer_id: Vec<u8>,
    /// Byte range `[start, end)` wanted; absent for the whole blob. The
    /// server widens it to whole 16 KiB groups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<(u64, u64)>,
    /// `blob.redeem` only: the 32-byte secret of the blob ticket that
    /// names the blob (or the folder it belongs to).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_bytes")]
    pub ticket: Option<Vec<u8>>,
}

/// `blob.get` answer before the records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlobGetResponse {
    /// The blob's size.
    pub size: u64,
    /// The byte range the records carry (group-aligned).
    pub range: (u64, u64),
}

/// `blob.put` request body. The answer is a [`BlobPutResponse`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlobPutRequest {
    /// 32-byte BLAKE3 hash.
    #[serde(with = "serde_bytes")]
    pub hash: Vec<u8>,
    /// The blob's size.
    pub size: u64,
    /// 16 random bytes.
    #[serde(with = "serde_bytes")]
    pub transfer_id: Vec<u8>,
    /// The name the sender knows the blob by (a file name: at most 255
    /// bytes, no `/`, NUL or control characters, not `.` or `..`), kept by
    /// the receiver as a label; absent if it has none. A receiver ignores
    /// a name it cannot use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// `blob.put` answer: what the receiver still needs. Unless `stored`,
/// records of `range` and a receipt follow on the same stream, and the
/// server answers once more with a [`BlobPutDone`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlobPutResponse {
    /// The receiver has the whole blob already: nothing is sent.
    pub stored: bool,
    /// The byte range to send (group-aligned): the first part it misses.
    pub range: (u64, u64),
}

/// `blob.put`'s final answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlobPutDone {
    /// Whether the blob is now complete there; if not, another `blob.put`
    /// sends the next missing part.
    pub complete: bool,
}

/// An empty answer body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

/// Checks a byte field's length.
pub fn fixed<const N: usize>(bytes: &[u8], field: &'static str) -> Result<[u8; N], DecodeError> {
    bytes.try_into().map_err(|_| DecodeError::WrongLength { field, expected: N, got: bytes.len() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn request_snapshot() {
        let r = Request { verb: "link.ping".into(), id: 1, body: vec![0xa0] };
        // {"verb": "link.ping", "id": 1, "body": h'a0'}
        assert_eq!(hex(&r.encode()), "a36476657262696c696e6b2e70696e676269640164626f647941a0");
        assert_eq!(Request::decode(&r.encode()), Ok(r));
    }

    #[test]
    fn response_snapshot() {
        let ok = Response::ok(7, vec![1, 2]);
        assert_eq!(hex(&ok.encode()), "a262696407626f6b420102");
        let err = Response::err(7, ErrorCode::Forbidden, "no");
        assert_eq!(hex(&err.encode()), "a26269640763657272a264636f646503676d657373616765626e6f");
        assert_eq!(Response::decode(&err.encode()), Ok(err));
    }

    #[test]
    fn rejects_trailing_bytes_unknown_fields_and_ambiguity() {
        let mut bytes = Request { verb: "x".into(), id: 1, body: vec![] }.encode();
        bytes.push(0);
        assert!(matches!(Request::decode(&bytes), Err(DecodeError::Cbor(_))));
        #[derive(Serialize)]
        struct Extra {
            verb: String,
            id: u64,
            #[serde(with = "serde_bytes")]
            body: Vec<u8>,
            evil: u8,
        }
        let extra = to_cbor(&Extra { verb: "x".into(), id: 1, body: vec![], evil: 1 });
        assert!(Request::decode(&extra).is_err());
        let both = Response {
            id: 1,
            ok: Some(vec![]),
            err: Some(RemoteError { code: ErrorCode::Busy, message: String::new() }),
        };
        assert_eq!(Response::decode(&to_cbor(&both)), Err(DecodeError::Ambiguous));
        let long_verb = Request { verb: "v".repeat(MAX_VERB_LEN + 1), id: 1, body: vec![] };
        assert_eq!(Request::decode(&long_verb.encode()), Err(DecodeError::FieldTooLong("verb")));
    }

    #[test]
    fn long_error_messages_are_cut_on_a_char_boundary() {
        let r = Response::err(1, ErrorCode::Internal, "é".repeat(MAX_MESSAGE_LEN));
        let m = r.err.as_ref().unwrap().message.len();
        assert!((MAX_MESSAGE_LEN - 1..=MAX_MESSAGE_LEN).contains(&m));
        assert!(Response::decode(&r.encode()).is_ok());
    }

    #[test]
    fn unknown_error_codes_survive() {
        let r = Response::err(1, ErrorCode::Other(999), "x");
        let back = Response::decode(&r.encode()).unwrap();
        assert_eq!(back.err.unwrap().code, ErrorCode::Other(999));
        for n in 1..=8 {
            assert_eq!(ErrorCode::from_u16(n).to_u16(), n);
        }
    }

    fn unhex(h: &str) -> Vec<u8> {
        (0..h.len()).step_by(2).map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap()).collect()
    }

    /// How strict decoding is, as docs/PROTOCOL.md states it: any
    /// well-formed encoding of the right value is read; wrong types,
    /// missing, repeated or unknown fields are not.
    #[test]
    fn cbor_strictness_is_as_specified() {
        let want = Request { verb: "link.ping".into(), id: 1, body: vec![0xa0] };
        let accepted = [
            ("preferred", "a36476657262696c696e6b2e70696e676269640164626f647941a0"),
            ("indefinite map", "bf6476657262696c696e6b2e70696e676269640164626f647941a0ff"),
            ("8-byte integer", "a36476657262696c696e6b2e70696e676269641b000000000000000164626f647941a0"),
            ("other key order", "a3626964016476657262696c696e6b2e70696e6764626f647941a0"),
            ("indefinite bytes", "a36476657262696c696e6b2e70696e676269640164626f64795f41a0ff"),
            ("tag (ignored)", "a36476657262696c696e6b2e70696e67626964c10164626f647941a0"),
            ("bytes for text", "a36476657262496c696e6b2e70696e676269640164626f647941a0"),
        ];
        for (what, h) in accepted {
            assert_eq!(Request::decode(&unhex(h)).as_ref(), Ok(&want), "{what}");
        }
        let refused = [
            ("repeated key", "a46476657262696c696e6b2e70696e67626964016269640264626f647941a0"),
            ("body as array", "a36476657262696c696e6b2e70696e676269640164626f647981a0"),
            ("negative id", "a36476657262696c696e6b2e70696e676269642064626f647941a0"),
            ("float id", "a36476657262696c696e6b2e70696e67626964f93c0064626f647941a0"),
            ("missing id", "a26476657262696c696e6b2e70696e6764626f647941a0"),
            ("trailing byte", "a36476657262696c696e6b2e70696e676269640164626f647941a000"),
        ];
        for (what, h) in refused {
            assert!(Request::decode(&unhex(h)).is_err(), "{what} was accepted");
        }
    }

    proptest! {
        #[test]
        fn request_round_trips(verb in "[a-z.]{0,32}", id in any::<u64>(), body in proptest::collection::vec(any::<u8>(), 0..200)) {
            let r = Request { verb, id, body };
            prop_assert_eq!(Request::decode(&r.encode()), Ok(r));
        }

        #[test]
        fn response_round_trips(id in any::<u64>(), body in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..200)), code in any::<u16>(), msg in "\\PC{0,50}") {
            let r = match body {
                Some(b) => Response::ok(id, b),
                None => Response::err(id, ErrorCode::from_u16(code), msg),
            };
            prop_assert_eq!(Response::decode(&r.encode()), Ok(r));
        }

        #[test]
        fn decoding_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = Request::decode(&bytes);
            let _ = Response::decode(&bytes);
            let _ = from_cbor::<InfoResponse>(&bytes);
        }

        #[test]
        fn decoding_bit_flips_never_panics(id in any::<u64>(), bit in 0usize..200) {
            let mut bytes = Request { verb: "link.ping".into(), id, body: to_cbor(&PingRequest { nonce: id }) }.encode();
            let i = bit % (bytes.len() * 8);
            bytes[i / 8] ^= 1 << (i % 8);
            let _ = Request::decode(&bytes);
            bytes.truncate(bit % bytes.len());
            let _ = Request::decode(&bytes);
        }
    }
}

/// The longest prompt `agent.ask` carries, in bytes (the body limit leaves
/// room for the rest of the envelope).
pub const MAX_ASK_PROMPT: usize = 200 * 1024;

/// `agent.ask` request body. The answer is a [`Response`] (ok with an
/// empty map, or an error), then [`AskEvent`] frames ending with
/// [`AskEvent::Done`] or [`AskEvent::Failed`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AskRequest {
    /// The user's message.
    pub prompt: String,
    /// A system prompt, if the caller wants one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    /// 16 bytes chosen by the caller, naming this ask for `agent.cancel`.
    #[serde(with = "serde_bytes")]
    pub ask_id: Vec<u8>,
}

/// `agent.cancel` request body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CancelRequest {
    /// The `ask_id` of a running ask of the same caller.
    #[serde(with = "serde_bytes")]
    pub ask_id: Vec<u8>,
}

/// `agent.cancel` response body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CancelResponse {
    /// Whether a running ask was found and stopped.
    pub cancelled: bool,
}

/// Why an ask stopped without an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AskFailure {
    /// The model or a provider failed.
    Runtime,
    /// The answering node is not set up to answer (no model, bad config).
    Config,
    /// A limit stopped it: turns, or the caller's or node's budget.
    Limit,
    /// The model called a tool this caller may not use.
    Denied,
    /// `agent.cancel` stopped it.
    Cancelled,
}

/// One frame of an ask's answer stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case", deny_unknown_fields)]
pub enum AskEvent {
    /// A piece of the model's text.
    Text {
        /// The text.
        text: String,
    },
    /// The model ended a turn that calls tools; text after this belongs to
    /// the next turn (the answer is the last turn's text).
    TurnEnd,
    /// A tool ran on the answering node.
    Tool {
        /// Its name.
        name: String,
        /// Whether it succeeded.
        ok: bool,
    },
    /// The answer is complete.
    Done {
        /// Tokens in, summed over turns.
        input_tokens: u64,
        /// Tokens out, summed over turns.
        output_tokens: u64,
        /// US dollars, when the model's price is known.
        cost: Option<f64>,
    },
    /// The ask stopped without an answer.
    Failed {
        /// Why, as a kind.
        code: AskFailure,
        /// Why, for people.
        message: String,
    },
}

#[cfg(test)]
mod ask_tests {
    use super::*;

    #[test]
    fn ask_envelopes_round_trip() {
        let r = AskRequest { prompt: "hi".into(), system: None, ask_id: vec![7; 16] };
        assert_eq!(from_cbor::<AskRequest>(&to_cbor(&r)).unwrap(), r);
        for e in [
            AskEvent::Text { text: "a".into() },
            AskEvent::TurnEnd,
            AskEvent::Tool { name: "read_file".into(), ok: true },
            AskEvent::Done { input_tokens: 1, output_tokens: 2, cost: Some(0.5) },
            AskEvent::Failed { code: AskFailure::Limit, message: "budget".into() },
        ] {
            assert_eq!(from_cbor::<AskEvent>(&to_cbor(&e)).unwrap(), e);
        }
        assert!(from_cbor::<AskEvent>(&to_cbor(&CancelResponse { cancelled: true })).is_err());
    }
}
