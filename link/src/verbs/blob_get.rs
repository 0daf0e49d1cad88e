//! `blob.get`: a blob (or the groups covering a range of it) from this
//! node's store, only if the caller may see it: shared with it (`blob.get`)
//! or named by a workgroup both are in (`wg.blob`, the same handler with
//! another [`Visibility`]). "Not visible" and "not found" are the same
//! answer.

use std::sync::Arc;

use alp_blobstore::BlobHash;
use alp_blobstore::part::Part;
use alp_blobstore::store::Store;
use alp_blobstore::store::meta::{Kind, Origin};
use alp_profiles::shares::{ShareStore, ShareTarget, ticket_digest};
use alp_protocol::NodeId;
use alp_protocol::envelope::{BlobGetRequest, BlobGetResponse, ErrorCode};

use crate::endpoint::Me;
use crate::router::{Call, Handler};
use crate::transfer::{self, Faults, Transfer};

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
    shares: ShareStore,
    folders: Folders,
}

impl Shares {
    /// What `shares` shares, folders' files read from `store`.
    pub fn new(shares: ShareStore, store: Store) -> Self {
        Self { shares, folders: Folders::new(store) }
    }
}

impl Visibility for Shares {
    fn visible(&self, hash: &BlobHash, peer: &NodeId, _: Option<&[u8]>) -> bool {
        // One read of the share list per request.
        let Ok(all) = self.shares.list() else { return false };
        let me = hash.to_string();
        let theirs = all.iter().filter(|(_, targets)| {
            targets.iter().any(|t| matches!(t, ShareTarget::All) || matches!(t, ShareTarget::Peer(p) if p == peer))
        });
        let mut folders = Vec::new();
        for (h, _) in theirs {
            if *h == me {
                return true;
            }
            folders.push(h);
        }
        folders.into_iter().any(|f| self.folders.lists(f, hash))
    }
}

/// Blob tickets (`alp send`): the blob a ticket names, or a file of the
/// folder it names, to a trusted peer that presents its secret.
#[derive(Debug, Clone)]
pub struct Tickets {
    shares: ShareStore,
    folders: Folders,
}

impl Tickets {
    /// The tickets `shares` records, folders' files read from `store`.
    pub fn new(shares: ShareStore, store: Store) -> Self {
        Self { shares, folders: Folders::new(store) }
    }
}

impl Visibility for Tickets {
    fn visible(&self, hash: &BlobHash, _: &NodeId, ticket: Option<&[u8]>) -> bool {
        let Some(secret) = ticket.filter(|t| t.len() == 32) else { return false };
        let named = self.shares.ticket_blobs(&ticket_digest(secret), alp_profiles::unix_now()).unwrap_or_default();
        let me = hash.to_string();
        named.iter().any(|h| *h == me || self.folders.lists(h, hash))
    }
}

/// Which files a folder shared from here grants, read from its manifest
/// once and kept (a manifest never changes: it is named by its hash).
///
/// A folder grants a file only if both came from the same place: added
/// here, or received from the same peer. A manifest anyone can write
/// (a peer pushes one listing the hashes of blobs it should not see) then
/// grants nothing of this node's own, even if it is shared back.
#[derive(Debug, Clone)]
struct Folders {
    store: Store,
    known: Arc<std::sync::Mutex<std::collections::HashMap<BlobHash, Arc<std::collections::HashSet<BlobHash>>>>>,
}

/// Folders whose file lists are kept in memory at once.
const FOLDERS_KEPT: usize = 64;

impl Folders {
    fn new(store: Store) -> Self {
        Self { store, known: Arc::default() }
    }

    /// Whether the folder `folder` (hex) is a manifest here that grants `hash`.
    fn lists(&self, folder: &str, hash: &BlobHash) -> bool {
        let Ok(folder) = folder.parse::<BlobHash>() else { return false };
        let Some(meta) = self.store.meta(&folder).filter(|m| m.kind == Kind::Collection) else { return false };
        let cached = self.known.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(&folder).cloned();
        let files = match cached {
            Some(files) => files,
            None => {
                let Ok(Some(entries)) = self.store.collection(&folder) else { return false };
                let files: Arc<std::collections::HashSet<BlobHash>> =
                    Arc::new(entries.into_iter().map(|e| e.hash).collect());
                let mut known = self.known.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                if known.len() >= FOLDERS_KEPT {
                    known.clear();
                }
                known.insert(folder, files.clone());
                files
            }
        };
        files.contains(hash) && self.store.meta(hash).is_some_and(|m| same_source(&m.origin, &meta.origin))
    }
}

/// Whether two blobs came from the same place.
fn same_source(a: &Origin, b: &Origin) -> bool {
    let peer = |o: &Origin| match o {
        Origin::Added => None,
        Origin::Pushed { peer, .. } | Origin::Fetched { peer, .. } => Some(peer.clone()),
    };
    peer(a) == peer(b)
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
    transfers: Option<crate::Transfers>,
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
        Self { store, visibility: Arc::new(visibility), me: me.clone(), on_sent: None, transfers: None }
    }

    /// Registers every transfer in `transfers` while it runs.
    pub fn tracked(mut self, transfers: &crate::Transfers) -> Self {
        self.transfers = Some(transfers.clone());
        self
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
        // Not held: no need to ask who may see it. Then the check, which
        // reads files, off the async threads.
        let visible = match self.store.get(&hash) {
            Ok(info) => {
                let (v, peer) = (self.visibility.clone(), call.session.peer);
                let check = tokio::task::spawn_blocking(move || v.visible(&hash, &peer, ticket.as_deref()));
                check.await.unwrap_or(false).then_some(info)
            }
            Err(_) => None,
        };
        let Some(info) = visible else {
            return call.refuse(ErrorCode::NotFound, format!("no blob {hash} here")).await;
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
        let tracked = self.transfers.as_ref().map(|r| r.begin(session.peer, hash, true, part.bytes.1 - part.bytes.0));
        let progress = |done: u64, total: u64| {
            if let Some(t) = &tracked {
                t.progress(done, total);
            }
        };
        match transfer::send(&mut call.send, &self.store, &t, &receipt, Faults::default(), &progress).await {
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

#[cfg(test)]
mod tests {
    use super::*;
    use alp_blobstore::collection::{Entry, encode};

    fn add(store: &Store, bytes: &[u8], origin: Origin, kind: Kind) -> BlobHash {
        let hash = store.import(&mut &bytes[..], bytes.len() as u64, std::path::Path::new("t")).unwrap().hash;
        let meta = alp_blobstore::store::meta::BlobMeta { name: None, kind, added: 1, origin };
        store.set_meta(&hash, &meta).unwrap();
        hash
    }

    fn manifest(files: &[BlobHash]) -> Vec<u8> {
        let entries = files
            .iter()
            .enumerate()
            .map(|(i, h)| Entry { path: format!("f{i}"), mode: 0o644, size: 1, hash: *h })
            .collect();
        encode(entries).unwrap()
    }

    #[test]
    fn a_folder_grants_only_files_that_came_from_where_it_came_from() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mine = add(&store, b"private", Origin::Added, Kind::File);
        let theirs = Origin::Pushed { peer: "alp1x".into(), transfer: "00".into() };
        let from_x = add(&store, b"x's file", theirs.clone(), Kind::File);
        // A peer pushes a "folder" naming one of this node's own blobs.
        let forged = add(&store, &manifest(&[mine, from_x]), theirs, Kind::Collection);
        let folders = Folders::new(store.clone());
        assert!(!folders.lists(&forged.to_string(), &mine), "a peer's manifest grants nothing of ours");
        assert!(folders.lists(&forged.to_string(), &from_x));
        // A folder added here grants its own files.
        let own = add(&store, &manifest(&[mine]), Origin::Added, Kind::Collection);
        assert!(folders.lists(&own.to_string(), &mine));
        // A blob that is not a folder grants nothing.
        assert!(!folders.lists(&mine.to_string(), &mine));
    }
}
