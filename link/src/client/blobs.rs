//! Moving blobs to and from a peer: `blob.get` and `blob.put`, one part
//! per request, each part chosen by [`next_part`] from what the receiver
//! already holds, so an interrupted transfer resumes where it stopped.

use alp_blobstore::BlobHash;
use alp_blobstore::part::{Next, Part, next_part};
use alp_blobstore::store::meta::Origin;
use alp_blobstore::store::{BlobInfo, Partial, Store};
use alp_protocol::Verb;
use alp_protocol::envelope::{BlobGetRequest, BlobGetResponse, BlobPutDone, BlobPutRequest, BlobPutResponse};
use alp_protocol::receipt::SignedReceipt;

use super::{Link, MAX_ROUNDS, RequestError};
use crate::transfer::{self, ExpectedReceipt, Faults, Progress, SharedPartial, Sink, Transfer, TransferError};

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

/// How a fetch asks for a blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// With this verb: `blob.get` (shared with us) or `wg.blob` (named by
    /// a workgroup we are both in).
    Verb(Verb),
    /// With `blob.redeem` and the secret of a blob ticket.
    Ticket([u8; 32]),
}

impl From<Verb> for Via {
    fn from(verb: Verb) -> Self {
        Via::Verb(verb)
    }
}

impl Via {
    fn verb(self) -> Verb {
        match self {
            Via::Verb(v) => v,
            Via::Ticket(_) => Verb::BlobRedeem,
        }
    }

    fn ticket(self) -> Option<Vec<u8>> {
        match self {
            Via::Verb(_) => None,
            Via::Ticket(secret) => Some(secret.to_vec()),
        }
    }
}

/// The part of the blob a fetch wants: the groups covering `range`, or all.
fn wanted_part(size: u64, range: Option<(u64, u64)>) -> Result<Part, TransferError> {
    match range {
        None => Ok(Part::all(size)),
        Some(r) => Part::covering(size, r)
            .ok_or_else(|| TransferError::Wire(format!("range {}..{} is outside the blob of {size} bytes", r.0, r.1))),
    }
}

/// Records that `hash` was fetched, from the sender of the last of
/// `receipts` (the part that completed it).
pub(crate) fn note_fetched(store: &Store, hash: &BlobHash, receipts: &[SignedReceipt]) {
    let Some(last) = receipts.last() else { return };
    let origin = Origin::Fetched {
        peer: last.receipt.sender.to_string(),
        transfer: alp_profiles::hex(&last.receipt.transfer_id.0),
    };
    if let Err(e) = store.note_received(hash, None, origin, alp_profiles::unix_now()) {
        tracing::warn!(%hash, "could not record where the blob came from: {e}");
    }
}

/// Opens (or takes over) the partial copy of a blob we fetch, off the
/// async threads: taking over may wait for another transfer to let go.
pub(crate) async fn open_partial(store: &Store, hash: BlobHash, size: u64) -> Result<Partial, RequestError> {
    let store = store.clone();
    match tokio::task::spawn_blocking(move || store.partial(hash, size, [0; 32])).await {
        Ok(opened) => Ok(opened.map_err(TransferError::from)?),
        Err(e) => Err(wire(&format!("opening the partial blob failed: {e}"))),
    }
}

pub(crate) fn wire_error(msg: &str) -> RequestError {
    wire(msg)
}

fn wire(msg: &str) -> RequestError {
    TransferError::Wire(msg.to_owned()).into()
}

impl Link {
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
        self.get_blob_via(Verb::BlobGet, store, hash, range, progress).await
    }

    /// [`Self::get_blob`] asked another way (see [`Via`]).
    pub async fn get_blob_via(
        &self,
        via: impl Into<Via>,
        store: &Store,
        hash: BlobHash,
        range: Option<(u64, u64)>,
        progress: Progress<'_>,
    ) -> Result<Fetched, RequestError> {
        let via = via.into();
        if let Ok(info) = store.get(&hash) {
            return Ok(Fetched { blob: Held::Complete(info), received: 0, receipts: Vec::new() });
        }
        // What an earlier fetch left: taken over at once, even from a
        // transfer still running (see `Store::partial`), so what moves is
        // decided from what is really here.
        let mut partial = match store.partial_info(&hash).map_err(TransferError::from)? {
            Some(known) => Some(open_partial(store, hash, known.size).await?),
            None => None,
        };
        // Completed by the transfer this one waited for.
        if let Ok(info) = store.get(&hash) {
            return Ok(Fetched { blob: Held::Complete(info), received: 0, receipts: Vec::new() });
        }
        let (mut received, mut receipts) = (0u64, Vec::new());
        // Each round fetches one missing part; parts only shrink, so this
        // ends, but a peer must not keep us here: bound the rounds.
        for _ in 0..MAX_ROUNDS {
            // `None`: nothing here, and the size is not known yet.
            let held = partial.as_ref().map(|p| (p.size(), p.have()));
            let size = held.as_ref().map(|(size, _)| *size);
            let ask = match held {
                None => range,
                Some((size, have)) => match next_part(size, &have, wanted_part(size, range)?, receipts.is_empty()) {
                    Next::Move(part) => Some(part.bytes),
                    Next::Done => break,
                },
            };
            let (p, receipt, moved) = self.get_part(via, store, hash, size, ask, partial.take(), progress).await?;
            partial = Some(p);
            received += moved;
            receipts.push(receipt);
            if range.is_some() && ask.is_none() {
                // A first ranged request with no size known: fetched.
                break;
            }
        }
        let Some(p) = partial else {
            return Err(wire("nothing was fetched"));
        };
        let blob = if p.is_complete() {
            let info = transfer::publish(p).await?;
            note_fetched(store, &hash, &receipts);
            Held::Complete(info)
        } else {
            Held::Partial(Box::new(p))
        };
        Ok(Fetched { blob, received, receipts })
    }

    /// Sends one `blob.get` (or like) request for the bytes of `ask` (all
    /// if `None`) of a blob of `size` bytes (unknown if `None`), and checks
    /// the answer: returns the stream, the transfer and the part coming.
    async fn ask_part(
        &self,
        via: Via,
        hash: BlobHash,
        size: Option<u64>,
        ask: Option<(u64, u64)>,
    ) -> Result<(quinn::RecvStream, Transfer), RequestError> {
        let id = transfer::new_id()?;
        let body = BlobGetRequest {
            hash: hash.as_bytes().to_vec(),
            transfer_id: id.0.to_vec(),
            range: ask,
            ticket: via.ticket(),
        };
        let (mut send, mut recv) = self.open(via.verb(), &body).await?;
        let _ = send.finish();
        let answer: BlobGetResponse = self.answer(&mut recv).await?;
        if let Some(expected) = size
            && expected != answer.size
        {
            let msg = format!(
                "the peer says the blob has {} bytes; what is already verified here says {expected}",
                answer.size
            );
            return Err(wire(&msg));
        }
        let part = match ask.map_or(Some(Part::all(answer.size)), |r| Part::covering(answer.size, r)) {
            Some(p) if p.bytes == answer.range => p,
            _ => return Err(wire("the peer answered with another range than asked")),
        };
        Ok((recv, Transfer::new(&self.session_secret, id, (hash, answer.size), part)))
    }

    /// Receives the part `t` announced on `recv` into `sink`, then keeps
    /// its receipt.
    async fn receive_part<S: Sink>(
        &self,
        store: &Store,
        mut recv: quinn::RecvStream,
        t: &Transfer,
        sink: S,
        progress: Progress<'_>,
    ) -> Result<(S, SignedReceipt), RequestError> {
        let expect =
            ExpectedReceipt { sender: self.remote.node_id, receiver: self.me.node_id(), binding: self.binding };
        let idle = self.settings.request_timeout;
        let (hash, exclusive) = (t.hash, sink.exclusive());
        let (sink, receipt) = match transfer::receive(&mut recv, sink, t, expect, idle, progress).await {
            Ok(x) => x,
            Err(source @ TransferError::Superseded) => return Err(source.into()),
            Err(source) => {
                if exclusive {
                    transfer::remove_when_full(store, hash, &source).await;
                }
                let kept = store.partial_info(&hash).ok().flatten().map_or(0, |k| k.have_bytes());
                return Err(RequestError::Interrupted { source, kept, size: t.size });
            }
        };
        store.save_receipt(&hash, &t.id.0, &receipt.encode()).map_err(TransferError::from)?;
        Ok((sink, receipt))
    }

    /// One `blob.get` request: asks for the bytes of `ask` (all if `None`)
    /// of a blob of `size` bytes (unknown if `None`) into `partial` (opened
    /// once the size is known); returns it, the receipt and the bytes moved.
    #[allow(clippy::too_many_arguments)]
    async fn get_part(
        &self,
        via: Via,
        store: &Store,
        hash: BlobHash,
        size: Option<u64>,
        ask: Option<(u64, u64)>,
        partial: Option<Partial>,
        progress: Progress<'_>,
    ) -> Result<(Partial, SignedReceipt, u64), RequestError> {
        let (recv, t) = self.ask_part(via, hash, size, ask).await?;
        let p = match partial {
            Some(p) => p,
            None => open_partial(store, hash, t.size).await?,
        };
        let (base, size) = (p.have_bytes(), p.size());
        let tick = |done: u64, _total: u64| progress((base + done).min(size), size);
        let (p, receipt) = self.receive_part(store, recv, &t, p, &tick).await?;
        Ok((p, receipt, t.part.len()))
    }

    /// Fetches the groups covering `bytes` of blob `hash` (of `size` bytes)
    /// into `shared`, which other transfers fill at the same time; returns
    /// the receipt and the bytes moved. `progress` is told the bytes of
    /// this part verified so far.
    pub(crate) async fn get_range_into(
        &self,
        via: Via,
        store: &Store,
        (hash, size): (BlobHash, u64),
        bytes: (u64, u64),
        shared: SharedPartial,
        progress: Progress<'_>,
    ) -> Result<(SignedReceipt, u64), RequestError> {
        let (recv, t) = self.ask_part(via, hash, Some(size), Some(bytes)).await?;
        let (_, receipt) = self.receive_part(store, recv, &t, shared, progress).await?;
        Ok((receipt, t.part.len()))
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
        let mut name = store.meta(&hash).and_then(|m| m.name);
        let mut pushed = Pushed { size: info.size, sent: 0, receipts: Vec::new(), already_there: false };
        for _ in 0..MAX_ROUNDS {
            let id = transfer::new_id()?;
            let body = BlobPutRequest {
                hash: hash.as_bytes().to_vec(),
                size: info.size,
                transfer_id: id.0.to_vec(),
                name: name.clone(),
            };
            let (mut send, mut recv) = self.open(Verb::BlobPut, &body).await?;
            let answer: BlobPutResponse = match self.answer(&mut recv).await {
                // A node from before names travelled refuses the field:
                // the blob goes without it.
                Err(RequestError::Remote(e))
                    if e.code == alp_protocol::envelope::ErrorCode::BadRequest
                        && e.message.contains("unknown field")
                        && name.take().is_some() =>
                {
                    continue;
                }
                other => other?,
            };
            if answer.stored {
                let _ = send.finish();
                pushed.already_there = pushed.receipts.is_empty();
                return Ok(pushed);
            }
            let part = match Part::covering(info.size, answer.range) {
                Some(p) if p.bytes == answer.range => p,
                _ => return Err(wire("the peer asked for a range outside the blob")),
            };
            let t = Transfer::new(&self.session_secret, id, (hash, info.size), part);
            let receipt = t.receipt(&self.me.key, self.remote.node_id, self.binding);
            let before = pushed.sent;
            let tick = |done: u64, _total: u64| progress(before + done, info.size);
            let sent = transfer::send(&mut send, store, &t, &receipt, faults, &tick).await;
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
        Err(wire(&format!("the peer still misses parts after {MAX_ROUNDS} rounds")))
    }
}
