//! `blob.put`: a blob pushed by the caller, checked against the size limit
//! and the caller's quota before a byte is stored, answered with the first
//! part still missing here, verified as it arrives, and published with the
//! sender's receipts once complete.

use std::sync::Arc;

use alp_blobstore::BlobHash;
use alp_blobstore::part::{Next, Part, next_part};
use alp_blobstore::store::{Partial, Store, StoreError};
use alp_protocol::NodeId;
use alp_protocol::envelope::{BlobPutDone, BlobPutRequest, BlobPutResponse, ErrorCode};
use alp_protocol::receipt::SignedReceipt;

use crate::endpoint::Me;
use crate::router::{Call, Handler};
use crate::transfer::{self, ExpectedReceipt, Transfer, TransferError, silent};

/// Answers `blob.put` into `store`.
#[derive(Debug, Clone)]
pub struct BlobPut {
    store: Store,
    /// The largest blob a peer may push.
    max_size: u64,
    /// Bytes of blobs one peer may have stored here (by its receipts).
    peer_quota: u64,
    me: Arc<Me>,
}

impl BlobPut {
    /// Stores pushed blobs of at most `max_size` bytes in `store`, at most
    /// `peer_quota` bytes per peer; `me` is the receiver receipts must name.
    pub fn new(store: Store, max_size: u64, peer_quota: u64, me: &Arc<Me>) -> Self {
        Self { store, max_size, peer_quota, me: me.clone() }
    }

    /// Bytes of stored blobs that `peer` sent (blobs it sent more than
    /// once count once), plus the full size of partial blobs it started
    /// pushing, except `this` one.
    fn used_by(&self, peer: &NodeId, this: &BlobHash) -> Result<u64, StoreError> {
        let mut used = 0;
        for p in self.store.partials()? {
            if &p.owner == peer.as_bytes() && &p.hash != this {
                used += p.size;
            }
        }
        for blob in self.store.list()? {
            let sent_by_peer = self
                .store
                .receipts(&blob.hash)?
                .iter()
                .any(|bytes| SignedReceipt::decode(bytes).is_ok_and(|r| &r.receipt.sender == peer));
            if sent_by_peer {
                used += blob.size;
            }
        }
        Ok(used)
    }

    /// Why `peer` may not push `size` bytes of `hash` here, if it may not.
    fn refusal(&self, peer: &NodeId, hash: &BlobHash, size: u64) -> Option<(ErrorCode, String)> {
        if size > self.max_size {
            let msg = format!("blob of {size} bytes is over this node's limit of {} bytes", self.max_size);
            return Some((ErrorCode::TooLarge, msg));
        }
        if self.peer_quota == u64::MAX {
            return None;
        }
        let used = match self.used_by(peer, hash) {
            Ok(u) => u,
            Err(e) => return Some((ErrorCode::Internal, format!("cannot read the store: {e}"))),
        };
        (used.saturating_add(size) > self.peer_quota).then(|| {
            let quota = self.peer_quota;
            let msg =
                format!("over your quota on this node: {used} of {quota} bytes used, this blob needs {size} more");
            (ErrorCode::TooLarge, msg)
        })
    }

    /// Keeps the receipt of a received part; publishes the blob if complete.
    async fn finish(&self, partial: Partial, t: &Transfer, receipt: &SignedReceipt) -> Result<bool, TransferError> {
        self.store.save_receipt(&partial.hash(), &t.id.0, &receipt.encode())?;
        if !partial.is_complete() {
            return Ok(false);
        }
        transfer::publish(partial).await?;
        Ok(true)
    }
}

impl Handler for BlobPut {
    async fn handle(&self, mut call: Call) {
        let (size, hash, transfer_id) = match super::blob_request(&call, |r: &BlobPutRequest| (&r.hash, &r.transfer_id))
        {
            Ok((request, hash, id)) => (request.size, hash, id),
            Err(refused) => return call.respond(refused).await,
        };
        let peer = call.session.peer;
        if self.store.get(&hash).is_ok() {
            // Stored already: nothing to send, nothing to charge.
            let answer = call.ok(&BlobPutResponse { stored: true, range: (0, 0) });
            return call.respond(answer).await;
        }
        if let Some((code, msg)) = self.refusal(&peer, &hash, size) {
            return call.refuse(code, msg).await;
        }
        let mut partial = match self.store.partial(hash, size, *peer.as_bytes()) {
            Ok(p) => p,
            Err(StoreError::Full { used, quota, .. }) => {
                let msg =
                    format!("this node's blob store is full: {used} of {quota} bytes used, the blob needs {size}");
                return call.refuse(ErrorCode::TooLarge, msg).await;
            }
            Err(e) => return call.refuse(ErrorCode::Internal, format!("cannot store the blob: {e}")).await,
        };
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
        let finished = match transfer::receive(&mut call.recv, partial, &t, expect, idle, &silent).await {
            Ok((partial, receipt)) => self.finish(partial, &t, &receipt).await,
            Err(e) => Err(e),
        };
        let answer = match finished {
            Ok(complete) => {
                let (from, to) = part.bytes;
                tracing::info!(peer = %peer.short(), %hash, size, from, to, complete, "blob received");
                call.ok(&BlobPutDone { complete })
            }
            Err(e) => {
                tracing::warn!(peer = %peer.short(), %hash, "receiving blob failed: {e}");
                let _ = call.recv.stop(quinn::VarInt::from_u32(2));
                call.error(ErrorCode::BadRequest, format!("blob refused: {e}"))
            }
        };
        call.respond(answer).await;
    }
}
