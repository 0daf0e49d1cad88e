//! Serving `blob.get` and `blob.put` (the streaming verbs).

use alp_blobstore::BlobHash;
use alp_blobstore::store::Store;
use alp_profiles::shares::ShareStore;
use alp_protocol::envelope::{
    BlobGetRequest, BlobGetResponse, BlobPutRequest, DecodeError, Empty, ErrorCode, Request, Response, fixed,
    from_cbor, to_cbor,
};
use alp_protocol::receipt::Receipt;
use alp_protocol::record::TransferId;
use quinn::{RecvStream, SendStream};

use super::server::{LinkInfo, ServerState};
use super::transfer::{self, ExpectedReceipt, Transfer, silent};
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
    /// once count once).
    fn used_by(&self, peer: &alp_protocol::NodeId) -> Result<u64, alp_blobstore::store::StoreError> {
        let mut used = 0;
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

/// `blob.get`: the blob, only if it is shared with the caller. "Not
/// shared" and "not found" are the same answer.
pub(crate) async fn serve_get(mut send: SendStream, request: Request, link: &LinkInfo, state: &ServerState) {
    let id = request.id;
    let Some(policy) = &state.blobs else {
        return refuse(&mut send, id, ErrorCode::UnknownVerb, "this node serves no blobs".into()).await;
    };
    let parsed = from_cbor::<BlobGetRequest>(&request.body).and_then(|r| ids(&r.hash, &r.transfer_id));
    let (hash, transfer_id) = match parsed {
        Ok(x) => x,
        Err(e) => return refuse(&mut send, id, ErrorCode::BadRequest, e.to_string()).await,
    };
    let shared = policy.shares.is_shared_with(&hash.to_string(), &link.peer).unwrap_or(false);
    let info = match policy.store.get(&hash) {
        Ok(info) if shared => info,
        _ => return refuse(&mut send, id, ErrorCode::NotFound, format!("no blob {hash} here")).await,
    };
    if !reply(&mut send, Response::ok(id, to_cbor(&BlobGetResponse { size: info.size }))).await {
        return;
    }
    let t = Transfer::new(&link.session_secret, transfer_id, hash, info.size);
    let receipt = Receipt {
        hash: *hash.as_bytes(),
        size: info.size,
        sender: state.me.node_id(),
        receiver: link.peer,
        transfer_id,
        binding: link.binding,
        time: alp_profiles::unix_now(),
    }
    .sign(&state.me.key);
    match transfer::send(&mut send, &policy.store, &hash, info.size, &t, &receipt, Default::default(), &silent).await {
        Ok(()) => {
            let _ = send.finish();
            tracing::info!(peer = %link.peer.short(), %hash, size = info.size, "blob sent");
        }
        Err(e) => tracing::warn!(peer = %link.peer.short(), %hash, "sending blob failed: {e}"),
    }
}

/// `blob.put`: checked against the size limit before a byte is stored,
/// verified as it arrives, published with the sender's receipt.
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
    if size > policy.max_size {
        let msg = format!("blob of {size} bytes is over this node's limit of {} bytes", policy.max_size);
        return refuse(&mut send, id, ErrorCode::TooLarge, msg).await;
    }
    // The quota, checked before a byte is stored. A blob already here
    // costs nothing more.
    if policy.peer_quota < u64::MAX && policy.store.get(&hash).is_err() {
        let used = match policy.used_by(&link.peer) {
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
    if !reply(&mut send, Response::ok(id, to_cbor(&Empty {}))).await {
        return;
    }
    let t = Transfer::new(&link.session_secret, transfer_id, hash, size);
    let expect = ExpectedReceipt { sender: link.peer, receiver: state.me.node_id(), binding: link.binding };
    let idle = state.settings.request_timeout;
    let answer = match transfer::receive(&mut recv, &policy.store, &hash, size, &t, expect, idle, &silent).await {
        Ok(_) => {
            tracing::info!(peer = %link.peer.short(), %hash, size, "blob received");
            Response::ok(id, to_cbor(&Empty {}))
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
