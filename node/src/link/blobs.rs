//! Serving `blob.get` and `blob.put` (the streaming verbs).

use alp_blobstore::BlobHash;
use alp_blobstore::store::{Partial, Store, StoreError};
use alp_blobstore::tree::groups;
use alp_profiles::shares::ShareStore;
use alp_protocol::envelope::{
    BlobGetRequest, BlobGetResponse, BlobPutDone, BlobPutRequest, BlobPutResponse, DecodeError, ErrorCode, Request,
    Response, fixed, from_cbor, to_cbor,
};
use alp_protocol::receipt::SignedReceipt;
use alp_protocol::record::TransferId;
use quinn::{RecvStream, SendStream};

use super::server::{LinkInfo, ServerState};
use super::transfer::{self, ExpectedReceipt, Part, Transfer, TransferError, silent};
use super::wire;

/// Where blobs live and who may have them.
#[derive(Debug, Clone)]
pub struct BlobPolicy {
    /// The profile's store.
    pub store: Store,
    /// What is shared with whom.
    pub shares: ShareStore,
    /// The largest blob a peer may push.
    pub max_size: u64,
    /// Bytes of blobs one peer may have stored here (by its receipts).
    pub peer_quota: u64,
}

impl BlobPolicy {
    /// Bytes of stored blobs that `peer` sent (blobs it sent more than
    /// once count once), plus the full size of partial blobs it started
    /// pushing, except `this` one.
    fn used_by(&self, peer: &alp_protocol::NodeId, this: &BlobHash) -> Result<u64, StoreError> {
        let mut used = 0;
        for p in self.store.partials()? {
            if &p.owner == peer.as_bytes() && &p.hash != this {
                used += p.size;
            }
        }
        for blob in self.store.list()? {
            let sent_by_peer = self.store.receipts(&blob.hash)?.iter().any(|bytes| {
                alp_protocol::receipt::SignedReceipt::decode(bytes).is_ok_and(|r| &r.receipt.sender == peer)
            });
            if sent_by_peer {
                used += blob.size;
            }
        }
        Ok(used)
    }
}

fn ids(hash: &[u8], transfer: &[u8]) -> Result<(BlobHash, TransferId), DecodeError> {
    let hash = BlobHash::from(blake3::Hash::from_bytes(fixed::<32>(hash, "hash")?));
    Ok((hash, TransferId(fixed::<16>(transfer, "transfer_id")?)))
}

async fn reply(send: &mut SendStream, response: Response) -> bool {
    wire::write_frame(send, &response.encode()).await.is_ok()
}

/// Answers with an error and ends the stream.
async fn refuse(send: &mut SendStream, id: u64, code: ErrorCode, message: String) {
    if reply(send, Response::err(id, code, message)).await {
        let _ = send.finish();
    }
}

/// `blob.get`: the blob (or the groups covering the asked range), only if
/// it is shared with the caller. "Not shared" and "not found" are the same
/// answer.
pub(crate) async fn serve_get(mut send: SendStream, request: Request, link: &LinkInfo, state: &ServerState) {
    let id = request.id;
    let Some(policy) = &state.blobs else {
        return refuse(&mut send, id, ErrorCode::UnknownVerb, "this node serves no blobs".into()).await;
    };
    let parsed = from_cbor::<BlobGetRequest>(&request.body).and_then(|r| Ok((ids(&r.hash, &r.transfer_id)?, r.range)));
    let ((hash, transfer_id), range) = match parsed {
        Ok(x) => x,
        Err(e) => return refuse(&mut send, id, ErrorCode::BadRequest, e.to_string()).await,
    };
    let shared = policy.shares.is_shared_with(&hash.to_string(), &link.peer).unwrap_or(false);
    let info = match policy.store.get(&hash) {
        Ok(info) if shared => info,
        _ => return refuse(&mut send, id, ErrorCode::NotFound, format!("no blob {hash} here")).await,
    };
    let part = match range {
        None => Part::all(info.size),
        Some(r) => match Part::covering(info.size, r) {
            Some(p) => p,
            None => {
                let msg = format!("range {}..{} is outside the blob of {} bytes", r.0, r.1, info.size);
                return refuse(&mut send, id, ErrorCode::BadRequest, msg).await;
            }
        },
    };
    let answer = BlobGetResponse { size: info.size, range: part.bytes };
    if !reply(&mut send, Response::ok(id, to_cbor(&answer))).await {
        return;
    }
    let t = Transfer::new(&link.session_secret, transfer_id, hash, info.size, &part);
    let receipt = transfer::sign_receipt(&state.me, link.peer, (&hash, info.size), part, &t, link.binding);
    let sent =
        transfer::send(&mut send, &policy.store, &hash, info.size, part, &t, &receipt, Default::default(), &silent);
    match sent.await {
        Ok(()) => {
            let _ = send.finish();
            let (from, to) = part.bytes;
            tracing::info!(peer = %link.peer.short(), %hash, size = info.size, from, to, "blob sent");
        }
        Err(e) => tracing::warn!(peer = %link.peer.short(), %hash, "sending blob failed: {e}"),
    }
}

/// `blob.put`: checked against the size limit and the caller's quota
/// before a byte is stored, answered with the first part still missing
/// here, verified as it arrives, published with the sender's receipts once
/// complete.
pub(crate) async fn serve_put(
    mut send: SendStream,
    mut recv: RecvStream,
    request: Request,
    link: &LinkInfo,
    state: &ServerState,
) {
    let id = request.id;
    let Some(policy) = &state.blobs else {
        return refuse(&mut send, id, ErrorCode::UnknownVerb, "this node stores no blobs".into()).await;
    };
    let parsed = from_cbor::<BlobPutRequest>(&request.body).and_then(|r| Ok((ids(&r.hash, &r.transfer_id)?, r.size)));
    let ((hash, transfer_id), size) = match parsed {
        Ok(x) => x,
        Err(e) => return refuse(&mut send, id, ErrorCode::BadRequest, e.to_string()).await,
    };
    if policy.store.get(&hash).is_ok() {
        // Stored already: nothing to send, nothing to charge.
        if reply(&mut send, Response::ok(id, to_cbor(&BlobPutResponse { stored: true, range: (0, 0) }))).await {
            let _ = send.finish();
        }
        return;
    }
    if size > policy.max_size {
        let msg = format!("blob of {size} bytes is over this node's limit of {} bytes", policy.max_size);
        return refuse(&mut send, id, ErrorCode::TooLarge, msg).await;
    }
    // The quota, checked before a byte is stored.
    if policy.peer_quota < u64::MAX {
        let used = match policy.used_by(&link.peer, &hash) {
            Ok(u) => u,
            Err(e) => return refuse(&mut send, id, ErrorCode::Internal, format!("cannot read the store: {e}")).await,
        };
        if used.saturating_add(size) > policy.peer_quota {
            let msg = format!(
                "over your quota on this node: {used} of {} bytes used, this blob needs {size} more",
                policy.peer_quota
            );
            return refuse(&mut send, id, ErrorCode::TooLarge, msg).await;
        }
    }
    let mut partial = match policy.store.partial(hash, size, *link.peer.as_bytes()) {
        Ok(p) => p,
        Err(StoreError::Full { used, quota, .. }) => {
            let msg = format!("this node's blob store is full: {used} of {quota} bytes used, the blob needs {size}");
            return refuse(&mut send, id, ErrorCode::TooLarge, msg).await;
        }
        Err(e) => return refuse(&mut send, id, ErrorCode::Internal, format!("cannot store the blob: {e}")).await,
    };
    // The first part still missing. A partial that is complete but was
    // never published (its last receipt failed, or a crash came between)
    // gets its last group again: a blob is published only right after a
    // transfer whose receipt verified, so every stored blob has a sender.
    let n = groups(size);
    let gap = partial.missing(0, n).first().copied().unwrap_or((n - 1, n));
    let part = Part::of_groups(size, gap);
    if !reply(&mut send, Response::ok(id, to_cbor(&BlobPutResponse { stored: false, range: part.bytes }))).await {
        let _ = partial.checkpoint();
        return;
    }
    let t = Transfer::new(&link.session_secret, transfer_id, hash, size, &part);
    let expect = ExpectedReceipt { sender: link.peer, receiver: state.me.node_id(), binding: link.binding };
    let idle = state.settings.request_timeout;
    let received = transfer::receive(&mut recv, partial, part, &t, expect, idle, &silent).await;
    let finished = match received {
        Ok((partial, receipt)) => finish_put(policy, partial, &t, &receipt).await,
        Err(e) => Err(e),
    };
    let answer = match finished {
        Ok(complete) => {
            let (from, to) = part.bytes;
            tracing::info!(peer = %link.peer.short(), %hash, size, from, to, complete, "blob received");
            Response::ok(id, to_cbor(&BlobPutDone { complete }))
        }
        Err(e) => {
            tracing::warn!(peer = %link.peer.short(), %hash, "receiving blob failed: {e}");
            let _ = recv.stop(quinn::VarInt::from_u32(2));
            Response::err(id, ErrorCode::BadRequest, format!("blob refused: {e}"))
        }
    };
    if reply(&mut send, answer).await {
        let _ = send.finish();
    }
}

/// Keeps the receipt of a received part; publishes the blob if complete.
async fn finish_put(
    policy: &BlobPolicy,
    partial: Partial,
    t: &Transfer,
    receipt: &SignedReceipt,
) -> Result<bool, TransferError> {
    policy.store.save_receipt(&partial.hash(), &t.id.0, &receipt.encode())?;
    if !partial.is_complete() {
        return Ok(false);
    }
    transfer::publish(partial).await?;
    Ok(true)
}
