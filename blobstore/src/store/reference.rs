//! Blobs added by reference: the file stays where it is; the store keeps
//! its path, size, modification time and identity (device, inode), and
//! the hash tree, not a copy.
//!
//! `ROOT/refs/<hash>`: a small JSON record, replaced atomically. Opening
//! the blob checks the file against the record first: a file that was
//! changed, replaced or removed (any write moves its status-change time,
//! which cannot be set back) is reported as changed, is not served, and
//! counts as not held, so a peer's push or a fetch can bring a good copy;
//! and whatever the record says, every group sent to a peer is verified
//! against the hash as it is read. Referenced bytes do not count against
//! the quota.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{BlobInfo, Store, StoreError, io_at};
use crate::BlobHash;
use crate::tree;

/// What the store remembers of a referenced file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reference {
    /// Absolute path.
    pub path: PathBuf,
    /// Size when added.
    pub size: u64,
    /// Modification time when added (nanoseconds since the Unix epoch).
    pub mtime_ns: i128,
    /// Status-change time when added (nanoseconds): moves on any write,
    /// and cannot be set back the way a modification time can.
    #[serde(default)]
    pub ctime_ns: i128,
    /// Device and inode when added.
    pub dev: u64,
    /// Inode.
    pub ino: u64,
}

impl Reference {
    fn of(path: PathBuf, m: &std::fs::Metadata) -> Self {
        let mtime_ns = i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec());
        let ctime_ns = i128::from(m.ctime()) * 1_000_000_000 + i128::from(m.ctime_nsec());
        Self { path, size: m.len(), mtime_ns, ctime_ns, dev: m.dev(), ino: m.ino() }
    }

    /// What differs between the record and the file now, if anything.
    pub fn changed(&self, now: &std::fs::Metadata) -> Option<&'static str> {
        let now = Self::of(self.path.clone(), now);
        if (now.dev, now.ino) != (self.dev, self.ino) {
            Some("it was replaced by another file")
        } else if now.size != self.size {
            Some("its size changed")
        } else if now.mtime_ns != self.mtime_ns || now.ctime_ns != self.ctime_ns {
            Some("it was modified")
        } else {
            None
        }
    }
}

impl Store {
    fn ref_path(&self, hash: &BlobHash) -> PathBuf {
        self.root.join("refs").join(hash.to_string())
    }

    /// The record of `hash` if it is held by reference (and not as a copy).
    pub fn reference(&self, hash: &BlobHash) -> Option<Reference> {
        if self.data_path(hash).exists() {
            return None;
        }
        let bytes = std::fs::read(self.ref_path(hash)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Adds `source` by reference: hashes it in place on every core and
    /// keeps its tree and a record of it, not its bytes. A file that
    /// changes while it is hashed is refused. A blob already held as a
    /// copy stays a copy.
    pub fn import_reference(&self, source: &Path) -> Result<BlobInfo, StoreError> {
        let path = source.canonicalize().map_err(io_at(source))?;
        let file = File::open(&path).map_err(io_at(&path))?;
        let before = file.metadata().map_err(io_at(&path))?;
        if !before.is_file() {
            let e = std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file");
            return Err(StoreError::Io { path, source: e });
        }
        let size = before.len();
        let obao = self.temp()?;
        let hash =
            crate::index::index_file(&file, size, obao.as_file(), crate::index::threads()).map_err(|e| {
                match e.kind() {
                    std::io::ErrorKind::UnexpectedEof => {
                        StoreError::SourceChanged { path: path.clone(), expected: size, got: 0 }
                    }
                    _ => StoreError::Io { path: path.clone(), source: e },
                }
            })?;
        let hash = BlobHash::from(hash);
        let record = Reference::of(path.clone(), &before);
        let after = std::fs::metadata(&path).map_err(io_at(&path))?;
        if record.changed(&after).is_some() {
            return Err(StoreError::SourceChanged { path, expected: size, got: after.len() });
        }
        let info = BlobInfo { hash, size };
        if self.data_path(&hash).exists() {
            return Ok(info);
        }
        if tree::groups(size) > 1 {
            obao.as_file().sync_all().map_err(io_at(obao.path()))?;
            let to = self.obao_path(&hash);
            obao.persist(&to).map_err(|e| StoreError::Io { path: to, source: e.error })?;
        }
        let dir = self.root.join("refs");
        std::fs::create_dir_all(&dir).map_err(io_at(&dir))?;
        let bytes = serde_json::to_vec(&record).map_err(|e| StoreError::Io { path: path.clone(), source: e.into() })?;
        let mut tmp = self.temp()?;
        tmp.write_all(&bytes).map_err(io_at(tmp.path()))?;
        tmp.as_file().sync_all().map_err(io_at(tmp.path()))?;
        let to = self.ref_path(&hash);
        tmp.persist(&to).map_err(|e| StoreError::Io { path: to, source: e.error })?;
        File::open(&dir).and_then(|d| d.sync_all()).map_err(io_at(&dir))?;
        Ok(info)
    }

    /// Whether the file `r` records is still what was added.
    pub(super) fn reference_intact(&self, r: &Reference) -> bool {
        std::fs::metadata(&r.path).is_ok_and(|m| r.changed(&m).is_none())
    }

    /// Opens the referenced file of `hash` if it still is what was added.
    pub(super) fn open_reference(&self, hash: &BlobHash, r: &Reference) -> Result<File, StoreError> {
        let changed = |what: &str| StoreError::Changed { hash: *hash, path: r.path.clone(), what: what.to_owned() };
        let file = File::open(&r.path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => changed("it is gone"),
            _ => StoreError::Io { path: r.path.clone(), source: e },
        })?;
        let now = file.metadata().map_err(io_at(&r.path))?;
        match r.changed(&now) {
            Some(what) => Err(changed(what)),
            None => Ok(file),
        }
    }

    pub(super) fn forget_reference(&self, hash: &BlobHash) -> bool {
        std::fs::remove_file(self.ref_path(hash)).is_ok()
    }
}
