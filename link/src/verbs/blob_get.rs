//! `blob.get`: a blob (or the groups covering a range of it) from this
//! node's store, only if the caller may see it: shared with it (`blob.get`)
//! or named by a workgroup both are in (`wg.blob`, the same handler with
//! another [`Visibility`]). "Not visible" and "not found" are the same
//! answer.

use std::sync::Arc;

use alp_blobstore::BlobHash;
use alp_blobstore::part::Part;
use alp_blobstore::store::Store;
use alp_blobstore::store::meta::Kind;
use alp_profiles::shares::{ShareStore, ticket_digest};
use alp_protocol::NodeId;
use alp_protocol::envelope::{BlobGetRequest, BlobGetResponse, ErrorCode};

use crate::endpoint::Me;
use crate::router::{Call, Handler};
use crate::transfer::{self, Faults, Transfer, silent};

/// Which stored blobs a peer may fetch.
pub trait Visibility: Send + Sync + std::fmt::Debug + 'static {
    /// Whether `peer` may fetch `hash`, asking with `ticket` (the secret of
    /// a blob ticket, for `blob.redeem`).
    fn visible(&self, hash: &BlobHash, peer: &NodeId, ticket: Option<&[u8]>) -> bool;
}

/// The profile's shares (`alp blob share`): a blob shared with the peer,
/// or a file of a folder shared with it.
#[derive(Debug, Clone)]
pub struct Shares {
    /// Who may fetch what.
    pub shares: ShareStore,
    /// Where folders' manifests are read.
    pub store: Store,
}

impl Visibility for Shares {
    fn visible(&self, hash: &BlobHash, peer: &NodeId, _: Option<&[u8]>) -> bool {
        let shared = |h: &str| self.shares.is_shared_with(h, peer).unwrap_or(false);
        shared(&hash.to_string()) || {
            let folders = self.shares.list().unwrap_or_default().into_iter().map(|(h, _)| h);
            folders.filter(|h| shared(h)).any(|h| in_folder(&self.store, &h, hash))
        }
    }
}

/// Blob tickets (`alp send`): the blob a ticket names, or a file of the
/// folder it names, to a trusted peer that presents its secret.
#[derive(Debug, Clone)]
pub struct Tickets {
    /// Which tickets name what.
    pub shares: ShareStore,
    /// Where folders' manifests are read.
    pub store: Store,
}

impl Visibility for Tickets {
    fn visible(&self, hash: &BlobHash, _: &NodeId, ticket: Option<&[u8]>) -> bool {
        let Some(secret) = ticket.filter(|t| t.len() == 32) else { return false };
        let named = self.shares.ticket_blobs(&ticket_digest(secret)).unwrap_or_default();
        let me = hash.to_string();
        named.iter().any(|h| *h == me || in_folder(&self.store, h, hash))
    }
}

/// Whether the blob `folder` (hex) is a folder's manifest here listing `hash`.
fn in_folder(store: &Store, folder: &str, hash: &BlobHash) -> bool {
    let Ok(folder) = folder.parse::<BlobHash>() else { return false };
    let is_folder = store.meta(&folder).is_some_and(|m| m.kind == Kind::Collection);
    is_folder && store.collection(&folder).ok().flatten().is_some_and(|files| files.iter().any(|f| f.hash == *hash))
}

/// A part of a blob sent to a peer, its receipt given.
#[derive(Debug, Clone)]
pub struct Sent {
    /// Who fetched it.
    pub peer: NodeId,
    /// The blob.
    pub hash: BlobHash,
    /// Its size.
    pub size: u64,
    /// The bytes this transfer carried.
    pub range: (u64, u64),
}

/// Told of every part sent.
pub type OnSent = Arc<dyn Fn(&Sent) + Send + Sync>;

/// Answers `blob.get` (or `wg.blob`, `blob.redeem`) from `store`, for
/// what `visibility` allows.
#[derive(Clone)]
pub struct BlobGet {
    store: Store,
    visibility: Arc<dyn Visibility>,
    me: Arc<Me>,
    on_sent: Option<OnSent>,
}

impl std::fmt::Debug for BlobGet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobGet")
            .field("store", &self.store)
            .field("visibility", &self.visibility)
            .finish_non_exhaustive()
    }
}

impl BlobGet {
    /// Serves blobs of `store` that `visibility` allows, with receipts
    /// signed as `me`.
    pub fn new(store: Store, visibility: impl Visibility, me: &Arc<Me>) -> Self {
        Self { store, visibility: Arc::new(visibility), me: me.clone(), on_sent: None }
    }

    /// Calls `on_sent` after every part sent.
    pub fn on_sent(mut self, on_sent: OnSent) -> Self {
        self.on_sent = Some(on_sent);
        self
    }
}

impl Handler for BlobGet {
    async fn handle(&self, mut call: Call) {
        let (range, ticket, hash, transfer_id) =
            match super::blob_request(&call, |r: &BlobGetRequest| (&r.hash, &r.transfer_id)) {
                Ok((request, hash, id)) => (request.range, request.ticket, hash, id),
                Err(refused) => return call.respond(refused).await,
            };
        let visible = self.visibility.visible(&hash, &call.session.peer, ticket.as_deref());
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
                if let Some(f) = &self.on_sent {
                    f(&Sent { peer: session.peer, hash, size: info.size, range: (from, to) });
                }
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
