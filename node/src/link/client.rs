//! An authenticated connection to a peer, and requests over it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use alp_blobstore::BlobHash;
use alp_blobstore::store::{BlobInfo, Store};
use alp_protocol::Verb;
use alp_protocol::envelope::{
    self, DecodeError, InfoRequest, InfoResponse, PingRequest, PingResponse, RemoteError, Request, Response,
};
use alp_protocol::envelope::{AskEvent, AskRequest, CancelRequest, CancelResponse};
use alp_protocol::envelope::{BlobGetRequest, BlobGetResponse, BlobPutRequest, Empty};
use alp_protocol::handshake::{Established, PeerHello};
use alp_protocol::receipt::{Receipt, SignedReceipt};
use zeroize::Zeroizing;

use super::endpoint::Me;
use super::transfer::{self, ExpectedReceipt, Faults, Progress, Transfer, TransferError};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::settings::LinkSettings;
use super::wire::{self, WireError, close_code};

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
    /// A blob transfer failed (nothing was stored).
    #[error("transfer failed: {0}")]
    Transfer(#[from] TransferError),
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

    /// The peer's UDP address.
    pub fn remote_addr(&self) -> SocketAddr {
        self.conn.remote_address()
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
        wire::write_frame(&mut send, &request.encode()).await?;
        let _ = send.finish();
        let bytes = wire::read_frame(&mut recv, self.settings.max_frame).await?;
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

    /// Fetches blob `hash` from the peer into `store`, verifying every group
    /// on arrival and the peer's signed receipt at the end.
    /// `progress` is told how many bytes have been verified so far.
    pub async fn get_blob(
        &self,
        store: &Store,
        hash: BlobHash,
        progress: Progress<'_>,
    ) -> Result<(BlobInfo, SignedReceipt), RequestError> {
        let id = transfer::new_id()?;
        let body = BlobGetRequest { hash: hash.as_bytes().to_vec(), transfer_id: id.0.to_vec() };
        let (mut send, mut recv) = self.open(Verb::BlobGet, &body).await?;
        let _ = send.finish();
        let answer: BlobGetResponse = self.answer(&mut recv).await?;
        let t = Transfer::new(&self.session_secret, id, hash, answer.size);
        let expect =
            ExpectedReceipt { sender: self.remote.node_id, receiver: self.me.node_id(), binding: self.binding };
        let idle = self.settings.request_timeout;
        Ok(transfer::receive(&mut recv, store, &hash, answer.size, &t, expect, idle, progress).await?)
    }

    /// Pushes blob `hash` from `store` to the peer; returns the receipt the
    /// peer now keeps.
    /// `progress` is told how many bytes have been sent so far.
    pub async fn put_blob(
        &self,
        store: &Store,
        hash: BlobHash,
        progress: Progress<'_>,
    ) -> Result<SignedReceipt, RequestError> {
        self.put_blob_with(store, hash, Faults::default(), progress).await
    }

    /// [`Self::put_blob`] with injected misbehaviour, for tests of
    /// receivers.
    #[doc(hidden)]
    pub async fn put_blob_with(
        &self,
        store: &Store,
        hash: BlobHash,
        faults: Faults,
        progress: Progress<'_>,
    ) -> Result<SignedReceipt, RequestError> {
        let info = store.get(&hash).map_err(TransferError::from)?;
        let id = transfer::new_id()?;
        let body = BlobPutRequest { hash: hash.as_bytes().to_vec(), size: info.size, transfer_id: id.0.to_vec() };
        let (mut send, mut recv) = self.open(Verb::BlobPut, &body).await?;
        let Empty {} = self.answer(&mut recv).await?;
        let t = Transfer::new(&self.session_secret, id, hash, info.size);
        let receipt = Receipt {
            hash: *hash.as_bytes(),
            size: info.size,
            sender: self.me.node_id(),
            receiver: self.remote.node_id,
            transfer_id: id,
            binding: self.binding,
            time: alp_profiles::unix_now(),
        }
        .sign(&self.me.key);
        let sent = transfer::send(&mut send, store, &hash, info.size, &t, &receipt, faults, progress).await;
        let _ = send.finish();
        // If the receiver refused mid-stream, its answer says why.
        match (sent, self.answer::<Empty>(&mut recv).await) {
            (_, Err(RequestError::Remote(e))) => Err(RequestError::Remote(e)),
            (Err(e), _) => Err(e.into()),
            (Ok(()), Ok(Empty {})) => Ok(receipt),
            (Ok(()), Err(e)) => Err(e),
        }
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
        wire::write_frame(&mut send, &request.encode()).await?;
        Ok((send, recv))
    }

    /// Reads one response frame on `recv` and decodes its result.
    async fn answer<T: DeserializeOwned>(&self, recv: &mut quinn::RecvStream) -> Result<T, RequestError> {
        let limit = self.settings.request_timeout;
        let bytes = tokio::time::timeout(limit, wire::read_frame(recv, self.settings.max_frame))
            .await
            .map_err(|_| RequestError::Timeout(limit.as_secs_f64()))??;
        let body = Response::decode(&bytes)?.into_result()?;
        Ok(envelope::from_cbor(&body)?)
    }

    /// `agent.ask`: runs a prompt on the peer's agent. `on_event` sees each
    /// streamed event; the result is the last one, [`AskEvent::Done`] or
    /// [`AskEvent::Failed`]. `event_timeout` bounds the wait for each event
    /// (a tool on the peer may run for a while).
    pub async fn ask(
        &self,
        request: &AskRequest,
        event_timeout: std::time::Duration,
        mut on_event: impl FnMut(&AskEvent),
    ) -> Result<AskEvent, RequestError> {
        let (mut send, mut recv) = self.open(Verb::AgentAsk, request).await?;
        let _ = send.finish();
        let _: Empty = self.answer(&mut recv).await?;
        loop {
            let bytes = tokio::time::timeout(event_timeout, wire::read_frame(&mut recv, self.settings.max_frame))
                .await
                .map_err(|_| RequestError::Timeout(event_timeout.as_secs_f64()))??;
            match envelope::from_cbor::<AskEvent>(&bytes)? {
                last @ (AskEvent::Done { .. } | AskEvent::Failed { .. }) => return Ok(last),
                ev => on_event(&ev),
            }
        }
    }

    /// `agent.cancel`: stops this caller's ask `ask_id`; false if it was
    /// not running.
    pub async fn cancel_ask(&self, ask_id: [u8; 16]) -> Result<bool, RequestError> {
        let r: CancelResponse = self.request(Verb::AgentCancel, &CancelRequest { ask_id: ask_id.to_vec() }).await?;
        Ok(r.cancelled)
    }

    /// Closes the connection politely.
    pub fn close(&self) {
        self.conn.close(close_code::DONE, b"bye");
    }
}
