//! Which blobs are shared with whom (`shares.toml`). `blob.get` serves a
//! blob only to peers it is shared with.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use alp_protocol::NodeId;
use serde::{Deserialize, Serialize};

use crate::fsutil::{LockError, ProfileLock};
use crate::tomlfile::{self, FileError};

/// Who may fetch a blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShareTarget {
    /// Every trusted peer allowed `blob.get`.
    All,
    /// One peer.
    Peer(NodeId),
}

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
    }
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
}
