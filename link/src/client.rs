//! An authenticated connection to a peer, and requests over it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use alp_protocol::envelope::{
    self, DecodeError, InfoRequest, InfoResponse, PingRequest, PingResponse, RemoteError, Request, Response,
};
use alp_protocol::handshake::{Established, PeerHello};
use alp_protocol::{NodeId, Verb};
use serde::Serialize;
use serde::de::DeserializeOwned;
use zeroize::Zeroizing;

use crate::endpoint::Me;
use crate::settings::LinkSettings;
use crate::transfer::TransferError;
use crate::wire::{FrameRead, FrameWrite, WireError, close_code};

mod ask;
mod blobs;
mod multi;

pub use blobs::{Fetched, Held, Pushed, Via};
pub use multi::{FromMany, Source, SourceReport, get_blob_from_many};

/// An authenticated QUIC connection to a peer.
#[derive(Debug)]
pub struct Link {
    conn: quinn::Connection,
    remote: PeerHello,
    settings: Arc<LinkSettings>,
    next_id: AtomicU64,
    me: Arc<Me>,
    session_secret: Zeroizing<[u8; 32]>,
    binding: [u8; 32],
}

/// Most parts one `get_blob` or `put_blob` moves (each is one request).
const MAX_ROUNDS: usize = 64;

/// A request failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// The peer answered with an error.
    #[error("peer answered: {0}")]
    Remote(#[from] RemoteError),
    /// No answer in time.
    #[error("no answer within {0:.1}s")]
    Timeout(f64),
    /// The peer closed the connection (for example, it does not trust us).
    #[error("{}", closed_message(*.code, .reason))]
    Closed {
        /// The close code.
        code: u64,
        /// The peer's reason.
        reason: String,
    },
    /// The connection or stream failed.
    #[error("{0}")]
    Transport(String),
    /// A blob transfer failed before any of it was kept.
    #[error("transfer failed: {0}")]
    Transfer(#[from] TransferError),
    /// A fetch stopped part way; what verified is kept for the next try.
    #[error(
        "transfer failed: {source}; {kept} of {size} bytes are verified and kept here: run the same command again to resume"
    )]
    Interrupted {
        /// Why it stopped.
        source: TransferError,
        /// Bytes of the blob verified and kept.
        kept: u64,
        /// The blob's size.
        size: u64,
    },
    /// The answer did not decode.
    #[error("malformed answer: {0}")]
    Decode(#[from] DecodeError),
}

fn closed_message(code: u64, reason: &str) -> String {
    match code {
        0 => format!("the peer closed the connection: {reason}"),
        7 => "the peer is shutting down".to_owned(),
        _ => format!("refused by the peer: {reason}"),
    }
}

impl From<quinn::ConnectionError> for RequestError {
    fn from(e: quinn::ConnectionError) -> Self {
        match e {
            quinn::ConnectionError::ApplicationClosed(c) => RequestError::Closed {
                code: c.error_code.into_inner(),
                reason: String::from_utf8_lossy(&c.reason).into_owned(),
            },
            other => RequestError::Transport(other.to_string()),
        }
    }
}

impl From<WireError> for RequestError {
    fn from(e: WireError) -> Self {
        match e {
            WireError::Connection(c) => c.into(),
            // A sender that finds its copy damaged resets the stream; the
            // reset can overtake its answer, so it may arrive here first.
            e @ WireError::Reset(code) if code == crate::wire::reset_code::DAMAGED => {
                RequestError::Transfer(TransferError::from(e))
            }
            other => RequestError::Transport(other.to_string()),
        }
    }
}

impl RequestError {
    /// Whether the whole connection is gone (no later request can work).
    pub fn is_fatal(&self) -> bool {
        matches!(self, RequestError::Closed { .. })
    }
}

impl Link {
    pub(crate) fn new(
        conn: quinn::Connection,
        established: Established,
        settings: Arc<LinkSettings>,
        me: Arc<Me>,
        binding: [u8; 32],
    ) -> Self {
        Self {
            conn,
            remote: established.remote,
            settings,
            next_id: AtomicU64::new(1),
            me,
            session_secret: Zeroizing::new(established.session_secret),
            binding,
        }
    }

    /// The authenticated peer.
    pub fn remote(&self) -> &PeerHello {
        &self.remote
    }

    /// The peer's UDP address (an IPv4 one as IPv4, whatever the socket).
    pub fn remote_addr(&self) -> SocketAddr {
        crate::addrs::canonical(self.conn.remote_address())
    }

    /// The underlying connection (for tests that speak raw frames).
    pub fn connection(&self) -> &quinn::Connection {
        &self.conn
    }

    /// Sends one request with a raw verb name and CBOR body; returns the
    /// CBOR result.
    pub async fn call(&self, verb: &str, body: Vec<u8>) -> Result<Vec<u8>, RequestError> {
        let limit = self.settings.request_timeout;
        tokio::time::timeout(limit, self.call_inner(verb, body))
            .await
            .map_err(|_| RequestError::Timeout(limit.as_secs_f64()))?
    }

    async fn call_inner(&self, verb: &str, body: Vec<u8>) -> Result<Vec<u8>, RequestError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let request = Request { verb: verb.to_owned(), id, body };
        let (mut send, mut recv) = self.conn.open_bi().await?;
        send.write_frame(request.encode()).await?;
        let _ = send.finish();
        let bytes = recv.read_frame(self.settings.max_frame).await?;
        let response = Response::decode(&bytes)?;
        if response.id != id {
            return Err(RequestError::Transport(format!("answer for request {} on the stream of {id}", response.id)));
        }
        Ok(response.into_result()?)
    }

    /// Sends a typed request for `verb` and decodes its typed answer.
    pub async fn request<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        verb: Verb,
        body: &Req,
    ) -> Result<Resp, RequestError> {
        let bytes = self.call(verb.as_str(), envelope::to_cbor(body)).await?;
        Ok(envelope::from_cbor(&bytes)?)
    }

    /// `link.ping`: echoes `nonce`.
    pub async fn ping(&self, nonce: u64) -> Result<PingResponse, RequestError> {
        let r: PingResponse = self.request(Verb::LinkPing, &PingRequest { nonce }).await?;
        if r.nonce != nonce {
            return Err(RequestError::Transport("ping answer carries another nonce".into()));
        }
        Ok(r)
    }

    /// `link.info`.
    pub async fn info(&self) -> Result<InfoResponse, RequestError> {
        self.request(Verb::LinkInfo, &InfoRequest {}).await
    }

    /// `link.relay` through this link's node to `to`: the stream that then
    /// carries the packets of the relayed path (see [`crate::relay`]).
    pub async fn relay(&self, to: NodeId) -> Result<(quinn::SendStream, quinn::RecvStream), RequestError> {
        let (send, mut recv) = self.open(Verb::LinkRelay, &alp_protocol::envelope::RelayRequest { to }).await?;
        let _: alp_protocol::envelope::RelayResponse = self.answer(&mut recv).await?;
        Ok((send, recv))
    }

    /// Opens a stream and sends a request on it (without finishing it).
    async fn open<B: Serialize>(
        &self,
        verb: Verb,
        body: &B,
    ) -> Result<(quinn::SendStream, quinn::RecvStream), RequestError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let request = Request { verb: verb.as_str().to_owned(), id, body: envelope::to_cbor(body) };
        let (mut send, recv) = self.conn.open_bi().await?;
        send.write_frame(request.encode()).await?;
        Ok((send, recv))
    }

    /// Reads one response frame on `recv` and decodes its result.
    async fn answer<T: DeserializeOwned>(&self, recv: &mut quinn::RecvStream) -> Result<T, RequestError> {
        let limit = self.settings.request_timeout;
        let bytes = tokio::time::timeout(limit, recv.read_frame(self.settings.max_frame))
            .await
            .map_err(|_| RequestError::Timeout(limit.as_secs_f64()))??;
        let body = Response::decode(&bytes)?.into_result()?;
        Ok(envelope::from_cbor(&body)?)
    }

    /// Closes the connection politely.
    pub fn close(&self) {
        self.conn.close(close_code::DONE, b"bye");
    }
}
