//! Which blobs are shared with whom (`shares.toml`). `blob.get` serves a
//! blob only to peers it is shared with.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use alp_protocol::NodeId;
use serde::{Deserialize, Serialize};

use crate::fsutil::{LockError, ProfileLock};
use crate::tomlfile::{self, FileError, hex, unhex};

/// Who may fetch a blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShareTarget {
    /// Every trusted peer allowed `blob.get`.
    All,
    /// One peer.
    Peer(NodeId),
    /// Whoever holds the blob ticket whose secret has this digest (see
    /// [`ticket_digest`]), among trusted peers, until `expires` (Unix
    /// seconds).
    Ticket {
        /// The digest of the ticket's secret.
        digest: [u8; 32],
        /// When the grant ends.
        expires: u64,
    },
}

/// `blake3::derive_key` context of the digest of a blob ticket's secret.
pub const TICKET_DIGEST_CONTEXT: &str = "alp blob ticket v1";

/// What is stored of a blob ticket's secret: a one-way digest, so the
/// share list does not hold the secret itself.
pub fn ticket_digest(secret: &[u8]) -> [u8; 32] {
    blake3::derive_key(TICKET_DIGEST_CONTEXT, secret)
}

const TICKET: &str = "ticket:";

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SharesFile {
    version: u32,
    /// Blob hash (hex) to the node ids (or "all") it is shared with.
    #[serde(default)]
    shares: BTreeMap<String, Vec<String>>,
}

crate::tomlfile::versioned_file!(SharesFile, 1, shares);

/// The share list could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ShareError {
    /// The file cannot be read or written.
    #[error("share list {0}")]
    File(#[from] FileError),
    /// The profile lock could not be taken.
    #[error(transparent)]
    Lock(#[from] LockError),
}

/// The share list of one profile.
#[derive(Debug, Clone)]
pub struct ShareStore {
    path: PathBuf,
    lock: PathBuf,
}

const ALL: &str = "all";

fn key(target: &ShareTarget) -> String {
    match target {
        ShareTarget::All => ALL.to_owned(),
        ShareTarget::Peer(id) => id.to_string(),
        ShareTarget::Ticket { digest, expires } => format!("{TICKET}{}@{expires}", hex(digest)),
    }
}

fn target_of(key: &str) -> Option<ShareTarget> {
    if key == ALL {
        return Some(ShareTarget::All);
    }
    if let Some(rest) = key.strip_prefix(TICKET) {
        let (digest, expires) = rest.split_once('@')?;
        return Some(ShareTarget::Ticket { digest: unhex(digest)?, expires: expires.parse().ok()? });
    }
    key.parse().ok().map(ShareTarget::Peer)
}

impl ShareStore {
    /// The list in `path`, serialised by the lock file `lock`.
    pub fn new(path: &Path, lock: &Path) -> Self {
        Self { path: path.to_owned(), lock: lock.to_owned() }
    }

    fn update(&self, f: impl FnOnce(&mut SharesFile)) -> Result<(), ShareError> {
        let _lock = ProfileLock::acquire(&self.lock)?;
        let mut file: SharesFile = tomlfile::load(&self.path)?;
        f(&mut file);
        file.shares.retain(|_, v| !v.is_empty());
        tomlfile::save(&self.path, "Blobs shared with peers. Edit with `alp blob share|unshare`.", &file)?;
        Ok(())
    }

    /// Shares blob `hash` (hex) with `target`.
    pub fn share(&self, hash: &str, target: &ShareTarget) -> Result<(), ShareError> {
        self.update(|f| {
            let list = f.shares.entry(hash.to_owned()).or_default();
            let k = key(target);
            if !list.contains(&k) {
                list.push(k);
            }
        })
    }

    /// Stops sharing blob `hash` with `target` (`All` removes every share).
    pub fn unshare(&self, hash: &str, target: &ShareTarget) -> Result<(), ShareError> {
        self.update(|f| match target {
            ShareTarget::All => {
                f.shares.remove(hash);
            }
            t => {
                if let Some(list) = f.shares.get_mut(hash) {
                    list.retain(|k| *k != key(t));
                }
            }
        })
    }

    /// Every shared blob (hex) and with whom, sorted by hash.
    pub fn list(&self) -> Result<Vec<(String, Vec<ShareTarget>)>, ShareError> {
        let file: SharesFile = tomlfile::load(&self.path)?;
        Ok(file.shares.into_iter().map(|(h, keys)| (h, keys.iter().filter_map(|k| target_of(k)).collect())).collect())
    }

    /// The blobs (hex) shared with whoever holds the ticket whose secret
    /// has `digest`, at `now` (Unix seconds; expired grants count for
    /// nothing).
    pub fn ticket_blobs(&self, digest: &[u8; 32], now: u64) -> Result<Vec<String>, ShareError> {
        let file: SharesFile = tomlfile::load(&self.path)?;
        let live = |k: &String| matches!(target_of(k), Some(ShareTarget::Ticket { digest: d, expires }) if d == *digest && now < expires);
        Ok(file.shares.into_iter().filter(|(_, list)| list.iter().any(live)).map(|(h, _)| h).collect())
    }

    /// Removes ticket grants that expired before `now`; returns how many.
    pub fn drop_expired_tickets(&self, now: u64) -> Result<usize, ShareError> {
        let mut gone = 0;
        self.update(|f| {
            for list in f.shares.values_mut() {
                let before = list.len();
                list.retain(|k| !matches!(target_of(k), Some(ShareTarget::Ticket { expires, .. }) if expires <= now));
                gone += before - list.len();
            }
        })?;
        Ok(gone)
    }

    /// Whether `peer` may fetch blob `hash`.
    pub fn is_shared_with(&self, hash: &str, peer: &NodeId) -> Result<bool, ShareError> {
        let file: SharesFile = tomlfile::load(&self.path)?;
        let me = peer.to_string();
        Ok(file.shares.get(hash).is_some_and(|list| list.iter().any(|k| k == ALL || *k == me)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;

    fn id(n: u8) -> NodeId {
        SigningKey::from_bytes(&[n; 32]).verifying_key().into()
    }

    #[test]
    fn share_with_one_or_all_and_unshare() {
        let dir = tempfile::tempdir().unwrap();
        let s = ShareStore::new(&dir.path().join("shares.toml"), &dir.path().join(".lock"));
        let h = "ab".repeat(32);
        assert!(!s.is_shared_with(&h, &id(1)).unwrap());
        s.share(&h, &ShareTarget::Peer(id(1))).unwrap();
        assert!(s.is_shared_with(&h, &id(1)).unwrap());
        assert!(!s.is_shared_with(&h, &id(2)).unwrap());
        s.share(&h, &ShareTarget::All).unwrap();
        assert!(s.is_shared_with(&h, &id(2)).unwrap());
        s.unshare(&h, &ShareTarget::All).unwrap();
        assert!(!s.is_shared_with(&h, &id(1)).unwrap());
    }

    #[test]
    fn a_ticket_share_names_its_blob_only_and_lists_back() {
        let dir = tempfile::tempdir().unwrap();
        let s = ShareStore::new(&dir.path().join("shares.toml"), &dir.path().join(".lock"));
        let (a, b) = ("ab".repeat(32), "cd".repeat(32));
        let d = ticket_digest(&[7; 32]);
        let t = ShareTarget::Ticket { digest: d, expires: 1000 };
        s.share(&a, &t).unwrap();
        s.share(&b, &ShareTarget::Peer(id(1))).unwrap();
        assert_eq!(s.ticket_blobs(&d, 999).unwrap(), vec![a.clone()]);
        assert!(s.ticket_blobs(&d, 1000).unwrap().is_empty(), "expired");
        assert!(s.ticket_blobs(&ticket_digest(&[8; 32]), 0).unwrap().is_empty());
        assert!(!s.is_shared_with(&a, &id(1)).unwrap(), "a ticket is not a share with every peer");
        let listed = s.list().unwrap();
        assert_eq!(listed, vec![(a.clone(), vec![t]), (b.clone(), vec![ShareTarget::Peer(id(1))])]);
        assert_eq!(s.drop_expired_tickets(1000).unwrap(), 1);
        assert_eq!(s.list().unwrap(), vec![(b, vec![ShareTarget::Peer(id(1))])]);
    }
}
