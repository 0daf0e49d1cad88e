//! `blob.put`: a blob pushed by the caller. Checked against the size
//! limit, and its bytes reserved against the caller's quota, its count of
//! unfinished pushes and the store's quota in one step, before a byte is
//! stored; answered with the first part still missing here; verified as
//! it arrives; published with the sender's receipts once complete.
//!
//! Whether this node holds a blob is told only to the peer that pushed it
//! and to peers it is shared with (to others, a stored blob is received
//! like an unknown one), and what
//! goes back to the caller never names a path on this machine: details go
//! to the local log.

use std::sync::Arc;

use alp_blobstore::BlobHash;
use alp_blobstore::part::{Next, Part, next_part};
use alp_blobstore::store::meta::{Kind, Origin};
use alp_blobstore::store::{OwnerLimits, Partial, Store, StoreError};
use alp_profiles::shares::ShareStore;
use alp_protocol::NodeId;
use alp_protocol::envelope::{BlobPutDone, BlobPutRequest, BlobPutResponse, ErrorCode};
use alp_protocol::receipt::SignedReceipt;

use crate::endpoint::Me;
use crate::router::{Call, Handler};
use crate::transfer::{self, ExpectedReceipt, Transfer, TransferError};

/// What one peer may push here.
#[derive(Debug, Clone, Copy)]
pub struct PutLimits {
    /// The largest blob.
    pub max_size: u64,
    /// Bytes of blobs the peer pushed that this node keeps (complete and partial).
    pub peer_quota: u64,
    /// The peer's unfinished pushes kept at once.
    pub partials_per_peer: u32,
}

/// A blob a peer pushed here, complete.
#[derive(Debug, Clone)]
pub struct Received {
    /// Who pushed it.
    pub peer: NodeId,
    /// The blob.
    pub hash: BlobHash,
    /// Its size.
    pub size: u64,
    /// The name the sender gave it, if it is a usable file name.
    pub name: Option<String>,
}

/// Told of every blob pushed here once it is complete.
pub type Announce = Arc<dyn Fn(&Received) + Send + Sync>;

/// Answers `blob.put` into `store`.
#[derive(Clone)]
pub struct BlobPut {
    store: Store,
    shares: ShareStore,
    limits: PutLimits,
    me: Arc<Me>,
    announce: Option<Announce>,
    transfers: Option<crate::Transfers>,
}

impl std::fmt::Debug for BlobPut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobPut").field("store", &self.store).field("limits", &self.limits).finish_non_exhaustive()
    }
}

impl BlobPut {
    /// Stores pushed blobs in `store` within `limits`; tells peers that a
    /// blob is here only if `shares` shares it with them; `me` is the
    /// receiver receipts must name.
    pub fn new(store: Store, shares: ShareStore, limits: PutLimits, me: &Arc<Me>) -> Self {
        Self { store, shares, limits, me: me.clone(), announce: None, transfers: None }
    }

    /// Registers every transfer in `transfers` while it runs.
    pub fn tracked(mut self, transfers: &crate::Transfers) -> Self {
        self.transfers = Some(transfers.clone());
        self
    }

    /// Calls `announce` for every blob pushed here once it is complete.
    pub fn announcing(mut self, announce: Announce) -> Self {
        self.announce = Some(announce);
        self
    }

    /// Keeps the receipt of a received part; publishes the blob if complete.
    async fn finish(
        &self,
        partial: Partial,
        t: &Transfer,
        receipt: &SignedReceipt,
        name: Option<String>,
    ) -> Result<bool, TransferError> {
        self.store.save_receipt(&partial.hash(), &t.id.0, &receipt.encode())?;
        if !partial.is_complete() {
            return Ok(false);
        }
        let info = transfer::publish(partial).await?;
        let peer = receipt.receipt.sender;
        let name = name.filter(|n| alp_blobstore::store::meta::check_name(n).is_ok());
        let origin = Origin::Pushed { peer: peer.to_string(), transfer: alp_profiles::hex(&t.id.0) };
        let now = alp_profiles::unix_now();
        if let Err(e) = self.store.note_received(&info.hash, name.as_deref(), origin, now) {
            tracing::warn!(hash = %info.hash, "could not record where the blob came from: {e}");
        }
        // A folder's manifest may be large: decode it off the async threads.
        let (store, hash) = (self.store.clone(), info.hash);
        let _ = tokio::task::spawn_blocking(move || {
            if matches!(store.collection(&hash), Ok(Some(_))) {
                let _ = store.set_kind(&hash, Kind::Collection, now);
            }
        })
        .await;
        if let Some(announce) = &self.announce {
            announce(&Received { peer, hash: info.hash, size: info.size, name });
        }
        Ok(true)
    }

    /// Whether `peer` may learn that `hash` is stored here: it pushed it,
    /// or it is shared with it.
    fn visible_to(&self, hash: &BlobHash, peer: &NodeId) -> bool {
        self.store.get(hash).is_ok()
            && (self.store.owner_of(hash) == *peer.as_bytes()
                || self.shares.is_shared_with(&hash.to_string(), peer).unwrap_or(false))
    }
}

/// What the caller is told about a store failure: a code and a reason
/// that names nothing on this machine.
pub(crate) fn peer_reason(e: &StoreError) -> (ErrorCode, String) {
    let reason = match e {
        StoreError::Full { size, used, quota } => {
            format!("this node's blob store is full: {used} of {quota} bytes used, the blob needs {size}")
        }
        StoreError::OwnerFull { size, used, quota } => {
            format!("over your quota on this node: {used} of {quota} bytes used, this blob needs {size} more")
        }
        StoreError::TooManyPartials { limit } => {
            format!("you have {limit} unfinished pushes on this node: finish one, or wait until they expire")
        }
        StoreError::DiskFull { .. } => "this node is short of disk space".to_owned(),
        StoreError::SizeMismatch { .. } | StoreError::WrongSize { .. } => e.to_string(),
        StoreError::Busy(_) => {
            return (ErrorCode::Busy, "this blob is being received right now: try again later".into());
        }
        _ => return (ErrorCode::Internal, "this node could not store the blob (its log says why)".into()),
    };
    let code = match e {
        StoreError::SizeMismatch { .. } | StoreError::WrongSize { .. } => ErrorCode::BadRequest,
        _ => ErrorCode::TooLarge,
    };
    (code, reason)
}

/// What the caller is told about a failed transfer.
fn transfer_reason(e: &TransferError) -> String {
    match e {
        TransferError::Store(s) => peer_reason(s).1,
        other => other.to_string(),
    }
}

impl Handler for BlobPut {
    async fn handle(&self, mut call: Call) {
        let (size, name, hash, transfer_id) =
            match super::blob_request(&call, |r: &BlobPutRequest| (&r.hash, &r.transfer_id)) {
                Ok((request, hash, id)) => (request.size, request.name, hash, id),
                Err(refused) => return call.respond(refused).await,
            };
        let peer = call.session.peer;
        if self.visible_to(&hash, &peer) {
            // Stored already: nothing to send, nothing to charge.
            let answer = call.ok(&BlobPutResponse { stored: true, range: (0, 0) });
            return call.respond(answer).await;
        }
        if size > self.limits.max_size {
            let msg = format!("blob of {size} bytes is over this node's limit of {} bytes", self.limits.max_size);
            return call.refuse(ErrorCode::TooLarge, msg).await;
        }
        let limits = OwnerLimits { bytes: self.limits.peer_quota, partials: self.limits.partials_per_peer };
        let store = self.store.clone();
        let opened = tokio::task::spawn_blocking(move || store.partial_within(hash, size, *peer.as_bytes(), limits));
        let mut partial = match opened.await {
            Ok(Ok(p)) => p,
            Ok(Err(e)) => {
                tracing::info!(peer = %peer.short(), %hash, "push refused: {e}");
                let (code, msg) = peer_reason(&e);
                return call.refuse(code, msg).await;
            }
            Err(e) => {
                return call.refuse(ErrorCode::Internal, format!("this node could not store the blob: {e}")).await;
            }
        };
        if self.visible_to(&hash, &peer) {
            // Completed by the transfer this one waited for.
            drop(partial);
            let answer = call.ok(&BlobPutResponse { stored: true, range: (0, 0) });
            return call.respond(answer).await;
        }
        // Each push is a fresh transfer of the whole blob: the first part
        // still missing here (see `next_part`).
        let part = match next_part(size, &partial.have(), Part::all(size), true) {
            Next::Move(part) => part,
            Next::Done => Part::all(size),
        };
        let answer = call.ok(&BlobPutResponse { stored: false, range: part.bytes });
        if !call.reply(answer).await {
            let _ = partial.checkpoint();
            return;
        }
        let session = call.session.clone();
        let t = Transfer::new(&session.secret, transfer_id, (hash, size), part);
        let expect = ExpectedReceipt { sender: peer, receiver: self.me.node_id(), binding: session.binding };
        let idle = call.limits.request_timeout;
        let tracked = self.transfers.as_ref().map(|r| r.begin(peer, hash, false, part.bytes.1 - part.bytes.0));
        let progress = |done: u64, total: u64| {
            if let Some(t) = &tracked {
                t.progress(done, total);
            }
        };
        let finished = match transfer::receive(&mut call.recv, partial, &t, expect, idle, &progress).await {
            Ok((partial, receipt)) => self.finish(partial, &t, &receipt, name).await,
            Err(e) => Err(e),
        };
        let answer = match finished {
            Ok(complete) => {
                let (from, to) = part.bytes;
                tracing::info!(peer = %peer.short(), %hash, size, from, to, complete, "blob received");
                call.ok(&BlobPutDone { complete })
            }
            Err(e @ TransferError::Superseded) => {
                tracing::info!(peer = %peer.short(), %hash, "receiving blob stopped: {e}");
                let _ = call.recv.stop(quinn::VarInt::from_u32(2));
                call.error(ErrorCode::Busy, format!("blob refused: {e}"))
            }
            Err(e) => {
                tracing::warn!(peer = %peer.short(), %hash, "receiving blob failed: {e}");
                transfer::remove_when_full(&self.store, hash, &e).await;
                let _ = call.recv.stop(quinn::VarInt::from_u32(2));
                call.error(ErrorCode::BadRequest, format!("blob refused: {}", transfer_reason(&e)))
            }
        };
        call.respond(answer).await;
    }
}
