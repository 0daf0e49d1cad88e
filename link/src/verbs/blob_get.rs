//! `blob.get`: a blob (or the groups covering a range of it) from this
//! node's store, only if the caller may see it: shared with it (`blob.get`)
//! or named by a workgroup both are in (`wg.blob`, the same handler with
//! another [`Visibility`]). "Not visible" and "not found" are the same
//! answer.

use std::sync::Arc;

use alp_blobstore::BlobHash;
use alp_blobstore::part::Part;
use alp_blobstore::store::Store;
use alp_profiles::shares::ShareStore;
use alp_protocol::NodeId;
use alp_protocol::envelope::{BlobGetRequest, BlobGetResponse, ErrorCode};

use crate::endpoint::Me;
use crate::router::{Call, Handler};
use crate::transfer::{self, Faults, Transfer, silent};

/// Which stored blobs a peer may fetch.
pub trait Visibility: Send + Sync + std::fmt::Debug + 'static {
    /// Whether `peer` may fetch `hash`.
    fn visible(&self, hash: &BlobHash, peer: &NodeId) -> bool;
}

/// The profile's shares (`alp blob share`).
impl Visibility for ShareStore {
    fn visible(&self, hash: &BlobHash, peer: &NodeId) -> bool {
        self.is_shared_with(&hash.to_string(), peer).unwrap_or(false)
    }
}

/// Answers `blob.get` (or `wg.blob`) from `store`, for what `visibility`
/// allows.
#[derive(Debug, Clone)]
pub struct BlobGet {
    store: Store,
    visibility: Arc<dyn Visibility>,
    me: Arc<Me>,
}

impl BlobGet {
    /// Serves blobs of `store` that `visibility` allows, with receipts
    /// signed as `me`.
    pub fn new(store: Store, visibility: impl Visibility, me: &Arc<Me>) -> Self {
        Self { store, visibility: Arc::new(visibility), me: me.clone() }
    }
}

impl Handler for BlobGet {
    async fn handle(&self, mut call: Call) {
        let (range, hash, transfer_id) =
            match super::blob_request(&call, |r: &BlobGetRequest| (&r.hash, &r.transfer_id)) {
                Ok((request, hash, id)) => (request.range, hash, id),
                Err(refused) => return call.respond(refused).await,
            };
        let visible = self.visibility.visible(&hash, &call.session.peer);
        let info = match self.store.get(&hash) {
            Ok(info) if visible => info,
            _ => return call.refuse(ErrorCode::NotFound, format!("no blob {hash} here")).await,
        };
        let part = match range.map_or(Some(Part::all(info.size)), |r| Part::covering(info.size, r)) {
            Some(p) => p,
            None => {
                let (a, b) = range.unwrap_or_default();
                let msg = format!("range {a}..{b} is outside the blob of {} bytes", info.size);
                return call.refuse(ErrorCode::BadRequest, msg).await;
            }
        };
        let answer = call.ok(&BlobGetResponse { size: info.size, range: part.bytes });
        if !call.reply(answer).await {
            return;
        }
        let session = call.session.clone();
        let t = Transfer::new(&session.secret, transfer_id, (hash, info.size), part);
        let receipt = t.receipt(&self.me.key, session.peer, session.binding);
        match transfer::send(&mut call.send, &self.store, &t, &receipt, Faults::default(), &silent).await {
            Ok(()) => {
                let _ = call.send.finish();
                let (from, to) = part.bytes;
                tracing::info!(peer = %session.peer.short(), %hash, size = info.size, from, to, "blob sent");
            }
            Err(e) => {
                tracing::warn!(peer = %session.peer.short(), %hash, "sending blob failed: {e}");
                if e.is_damage() {
                    let _ = call.send.reset(crate::wire::reset_code::DAMAGED);
                }
            }
        }
    }
}
