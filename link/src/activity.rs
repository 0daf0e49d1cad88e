//! Transfers under way in this process, for whoever shows them (the
//! dashboard, `alp status`): each is registered while it runs, its bytes
//! counted as they move, and gone when it ends (its [`Tracked`] dropped).
//! Bounded by the transfers the link itself allows at once.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use alp_blobstore::BlobHash;
use alp_protocol::NodeId;

/// The registry; clones share it.
#[derive(Debug, Default, Clone)]
pub struct Transfers(Arc<Inner>);

#[derive(Debug, Default)]
struct Inner {
    next: AtomicU64,
    live: Mutex<BTreeMap<u64, Arc<Entry>>>,
}

#[derive(Debug)]
struct Entry {
    peer: NodeId,
    hash: BlobHash,
    sending: bool,
    done: AtomicU64,
    total: AtomicU64,
    started_ms: u64,
}

/// One transfer under way, as shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferView {
    /// The other side.
    pub peer: NodeId,
    /// The blob.
    pub hash: BlobHash,
    /// Whether this node sends it (else it receives it).
    pub sending: bool,
    /// Bytes moved so far, of `total`.
    pub done: u64,
    /// Bytes this transfer moves.
    pub total: u64,
    /// When it began, Unix milliseconds.
    pub started_ms: u64,
}

/// A registered transfer; dropping it ends the registration.
#[derive(Debug)]
pub struct Tracked {
    inner: Arc<Inner>,
    id: u64,
    entry: Arc<Entry>,
}

impl Transfers {
    /// Registers a transfer of `total` bytes of `hash` with `peer`.
    pub fn begin(&self, peer: NodeId, hash: BlobHash, sending: bool, total: u64) -> Tracked {
        let id = self.0.next.fetch_add(1, Ordering::Relaxed);
        let started_ms =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        let entry =
            Arc::new(Entry { peer, hash, sending, done: AtomicU64::new(0), total: AtomicU64::new(total), started_ms });
        self.0.live.lock().unwrap_or_else(PoisonError::into_inner).insert(id, entry.clone());
        Tracked { inner: self.0.clone(), id, entry }
    }

    /// Those under way, oldest first.
    pub fn list(&self) -> Vec<TransferView> {
        let live = self.0.live.lock().unwrap_or_else(PoisonError::into_inner);
        live.values()
            .map(|e| TransferView {
                peer: e.peer,
                hash: e.hash,
                sending: e.sending,
                done: e.done.load(Ordering::Relaxed),
                total: e.total.load(Ordering::Relaxed),
                started_ms: e.started_ms,
            })
            .collect()
    }
}

impl Tracked {
    /// Bytes moved so far, of `total` (a [`crate::Progress`]).
    pub fn progress(&self, done: u64, total: u64) {
        self.entry.done.store(done, Ordering::Relaxed);
        self.entry.total.store(total, Ordering::Relaxed);
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.inner.live.lock().unwrap_or_else(PoisonError::into_inner).remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_transfer_is_listed_while_it_runs_with_its_progress() {
        let transfers = Transfers::default();
        let peer = NodeId::from(ed25519_dalek::SigningKey::from_bytes(&[3; 32]).verifying_key());
        let hash = BlobHash::from(blake3::hash(b"x"));
        let a = transfers.begin(peer, hash, true, 100);
        let b = transfers.begin(peer, hash, false, 50);
        a.progress(40, 100);
        let list = transfers.list();
        assert_eq!(list.len(), 2);
        assert_eq!((list[0].sending, list[0].done, list[0].total), (true, 40, 100));
        drop(a);
        assert_eq!(transfers.list().len(), 1);
        drop(b);
        assert!(transfers.list().is_empty());
    }
}
