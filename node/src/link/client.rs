//! An authenticated connection to a peer, and requests over it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use alp_blobstore::BlobHash;
use alp_blobstore::store::{BlobInfo, Partial, Store};
use alp_protocol::Verb;
use alp_protocol::envelope::{
    self, DecodeError, InfoRequest, InfoResponse, PingRequest, PingResponse, RemoteError, Request, Response,
};
use alp_protocol::envelope::{AskEvent, AskRequest, CancelRequest, CancelResponse};
use alp_protocol::envelope::{BlobGetRequest, BlobGetResponse, BlobPutDone, BlobPutRequest, BlobPutResponse, Empty};
use alp_protocol::handshake::{Established, PeerHello};
use alp_protocol::receipt::SignedReceipt;
use zeroize::Zeroizing;

use super::endpoint::Me;
use super::transfer::{self, ExpectedReceipt, Faults, Part, Progress, Transfer, TransferError};
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

/// Most parts one `get_blob` or `put_blob` moves (each is one request).
const MAX_ROUNDS: usize = 64;

/// The part of the blob a fetch wants: the groups covering `range`, or all.
fn wanted_part(size: u64, range: Option<(u64, u64)>) -> Result<Part, TransferError> {
    match range {
        None => Ok(Part::all(size)),
        Some(r) => Part::covering(size, r)
            .ok_or_else(|| TransferError::Wire(format!("range {}..{} is outside the blob of {size} bytes", r.0, r.1))),
    }
}

/// What a fetch left in the store.
#[derive(Debug)]
pub enum Held {
    /// The whole blob, verified and published.
    Complete(BlobInfo),
    /// Only part of it (a ranged fetch): the partial copy, locked until
    /// dropped.
    Partial(Box<Partial>),
}

/// The result of [`Link::get_blob`].
#[derive(Debug)]
pub struct Fetched {
    /// The blob, whole or in part.
    pub blob: Held,
    /// Payload bytes this fetch received (what earlier fetches left is
    /// not fetched again).
    pub received: u64,
    /// The senders' receipts, one per part.
    pub receipts: Vec<SignedReceipt>,
}

/// The result of [`Link::put_blob`].
#[derive(Debug)]
pub struct Pushed {
    /// The blob's size.
    pub size: u64,
    /// Payload bytes sent (less than the size when the peer had part).
    pub sent: u64,
    /// Our receipts the peer now keeps, one per part.
    pub receipts: Vec<SignedReceipt>,
    /// The peer had the whole blob already.
    pub already_there: bool,
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

    /// Fetches blob `hash` (or the bytes of `range` of it) from the peer
    /// into `store`, verifying every group on arrival and the peer's
    /// signed receipt at the end of each part. Groups an earlier,
    /// interrupted fetch verified are not fetched again. `progress` is
    /// told how many bytes of this fetch have been verified so far.
    pub async fn get_blob(
        &self,
        store: &Store,
        hash: BlobHash,
        range: Option<(u64, u64)>,
        progress: Progress<'_>,
    ) -> Result<Fetched, RequestError> {
        if let Ok(info) = store.get(&hash) {
            return Ok(Fetched { blob: Held::Complete(info), received: 0, receipts: Vec::new() });
        }
        let known = store.partial_info(&hash).map_err(TransferError::from)?;
        let mut partial: Option<Partial> = None;
        let (mut received, mut receipts) = (0u64, Vec::new());
        // Each round fetches one missing part; parts only shrink, so this
        // ends, but a peer must not keep us here: bound the rounds.
        for _ in 0..MAX_ROUNDS {
            // What is here: the partial this fetch holds, or what an earlier
            // one left (`None`: nothing, and the size is not known yet).
            let held =
                partial.as_ref().map(|p| (p.size(), p.have())).or(known.as_ref().map(|k| (k.size, k.have.clone())));
            let size = held.as_ref().map(|(size, _)| *size);
            let ask = match held {
                None => range,
                Some((size, have)) => {
                    let wanted = wanted_part(size, range)?;
                    match have.gaps(wanted.groups.0, wanted.groups.1).first() {
                        Some(&gap) => Some(Part::of_groups(size, gap).bytes),
                        // Everything is here but was never published (its
                        // receipt failed, or a crash came first): fetch the
                        // last group again, so the blob is published after a
                        // verified receipt.
                        None if partial.is_none() && wanted == Part::all(size) => {
                            let end = wanted.groups.1;
                            Some(Part::of_groups(size, (end - 1, end)).bytes)
                        }
                        // What was asked for is here.
                        None => {
                            if partial.is_none() {
                                partial = Some(store.partial(hash, size, [0; 32]).map_err(TransferError::from)?);
                            }
                            break;
                        }
                    }
                }
            };
            let id = transfer::new_id()?;
            let body = BlobGetRequest { hash: hash.as_bytes().to_vec(), transfer_id: id.0.to_vec(), range: ask };
            let (mut send, mut recv) = self.open(Verb::BlobGet, &body).await?;
            let _ = send.finish();
            let answer: BlobGetResponse = self.answer(&mut recv).await?;
            if let Some(expected) = size
                && expected != answer.size
            {
                let msg = format!(
                    "the peer says the blob has {} bytes; what is already verified here says {expected}",
                    answer.size
                );
                return Err(TransferError::Wire(msg).into());
            }
            let part = match ask.map_or(Some(Part::all(answer.size)), |r| Part::covering(answer.size, r)) {
                Some(p) if p.bytes == answer.range => p,
                _ => return Err(TransferError::Wire("the peer answered with another range than asked".into()).into()),
            };
            let p = match partial.take() {
                Some(p) => p,
                None => store.partial(hash, answer.size, [0; 32]).map_err(TransferError::from)?,
            };
            let t = Transfer::new(&self.session_secret, id, hash, answer.size, &part);
            let expect =
                ExpectedReceipt { sender: self.remote.node_id, receiver: self.me.node_id(), binding: self.binding };
            let idle = self.settings.request_timeout;
            let (base, size) = (p.have_bytes(), p.size());
            let tick = |done: u64, _total: u64| progress((base + done).min(size), size);
            let (p, receipt) = match transfer::receive(&mut recv, p, part, &t, expect, idle, &tick).await {
                Ok(x) => x,
                Err(source) => {
                    let kept = store.partial_info(&hash).ok().flatten().map_or(0, |k| k.have_bytes());
                    return Err(RequestError::Interrupted { source, kept, size });
                }
            };
            partial = Some(p);
            received += part.len();
            store.save_receipt(&hash, &id.0, &receipt.encode()).map_err(TransferError::from)?;
            receipts.push(receipt);
            if range.is_some() && ask.is_none() {
                // A first ranged request with no size known: fetched.
                break;
            }
        }
        let Some(p) = partial else {
            return Err(TransferError::Wire("nothing was fetched".into()).into());
        };
        let blob =
            if p.is_complete() { Held::Complete(transfer::publish(p).await?) } else { Held::Partial(Box::new(p)) };
        Ok(Fetched { blob, received, receipts })
    }

    /// Pushes blob `hash` from `store` to the peer. The peer answers with
    /// what it still misses (nothing if it has the blob; the rest if an
    /// earlier push was interrupted), and only that is sent.
    /// `progress` is told how many bytes have been sent so far.
    pub async fn put_blob(
        &self,
        store: &Store,
        hash: BlobHash,
        progress: Progress<'_>,
    ) -> Result<Pushed, RequestError> {
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
    ) -> Result<Pushed, RequestError> {
        let info = store.get(&hash).map_err(TransferError::from)?;
        let mut pushed = Pushed { size: info.size, sent: 0, receipts: Vec::new(), already_there: false };
        for _ in 0..MAX_ROUNDS {
            let id = transfer::new_id()?;
            let body = BlobPutRequest { hash: hash.as_bytes().to_vec(), size: info.size, transfer_id: id.0.to_vec() };
            let (mut send, mut recv) = self.open(Verb::BlobPut, &body).await?;
            let answer: BlobPutResponse = self.answer(&mut recv).await?;
            if answer.stored {
                let _ = send.finish();
                pushed.already_there = pushed.receipts.is_empty();
                return Ok(pushed);
            }
            let part = match Part::covering(info.size, answer.range) {
                Some(p) if p.bytes == answer.range => p,
                _ => return Err(TransferError::Wire("the peer asked for a range outside the blob".into()).into()),
            };
            let t = Transfer::new(&self.session_secret, id, hash, info.size, &part);
            let receipt =
                transfer::sign_receipt(&self.me, self.remote.node_id, (&hash, info.size), part, &t, self.binding);
            let before = pushed.sent;
            let tick = |done: u64, _total: u64| progress(before + done, info.size);
            let sent = transfer::send(&mut send, store, &hash, info.size, part, &t, &receipt, faults, &tick).await;
            let _ = send.finish();
            // If the receiver refused mid-stream, its answer says why.
            let done = match (sent, self.answer::<BlobPutDone>(&mut recv).await) {
                (_, Err(RequestError::Remote(e))) => return Err(RequestError::Remote(e)),
                (Err(e), _) => return Err(e.into()),
                (Ok(()), Err(e)) => return Err(e),
                (Ok(()), Ok(done)) => done,
            };
            pushed.sent += part.len();
            pushed.receipts.push(receipt);
            if done.complete {
                return Ok(pushed);
            }
        }
        Err(TransferError::Wire(format!("the peer still misses parts after {MAX_ROUNDS} rounds")).into())
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
