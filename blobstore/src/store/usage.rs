//! What the store holds, in all and by owner, kept up to date by every
//! change instead of rescanned by every request.
//!
//! `ROOT/usage` holds the totals; every operation that adds or removes
//! bytes changes it under the exclusive lock `ROOT/usage.lock`, which also
//! covers the quota check: checking and reserving are one step, so
//! concurrent transfers cannot overrun a quota together. A complete blob
//! belongs to the owner of the partial blob it was received into (the peer
//! that pushed it; all zeros: this profile), recorded in `ROOT/owners/HASH`.
//!
//! A crash between a change on disk and its line here makes the totals
//! drift until they are rebuilt from a scan ([`Store::rebuild_usage`]),
//! which a serving node does when it starts and `alp blob gc` does too. A
//! missing or unreadable file is rebuilt the same way.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;

use super::{Store, StoreError, io_at};
use crate::BlobHash;

const MAGIC: &str = "alp blob usage v1";

/// The owner of blobs this profile added or fetched itself.
pub const LOCAL: [u8; 32] = [0; 32];

/// What one owner holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Owned {
    /// Bytes: complete blobs, plus the full size of partial ones.
    pub bytes: u64,
    /// Partial blobs.
    pub partials: u32,
}

/// What the store holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    /// Bytes of complete blobs, plus the full size of partial ones.
    pub total: u64,
    /// By owner.
    pub owners: BTreeMap<[u8; 32], Owned>,
}

/// Limits on what one owner may hold, checked with the store's quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OwnerLimits {
    /// Bytes (complete and partial blobs).
    pub bytes: u64,
    /// Partial blobs at once.
    pub partials: u32,
}

impl OwnerLimits {
    /// No limit.
    pub const NONE: OwnerLimits = OwnerLimits { bytes: u64::MAX, partials: u32::MAX };
}

impl Usage {
    /// What `owner` holds.
    pub fn of(&self, owner: &[u8; 32]) -> Owned {
        self.owners.get(owner).copied().unwrap_or_default()
    }

    fn owned(&mut self, owner: [u8; 32]) -> &mut Owned {
        self.owners.entry(owner).or_default()
    }

    /// Adds a complete blob of `owner`.
    pub(super) fn add_blob(&mut self, owner: [u8; 32], size: u64) {
        self.total = self.total.saturating_add(size);
        let o = self.owned(owner);
        o.bytes = o.bytes.saturating_add(size);
    }

    /// Removes a complete blob of `owner`.
    pub(super) fn remove_blob(&mut self, owner: [u8; 32], size: u64) {
        self.total = self.total.saturating_sub(size);
        let o = self.owned(owner);
        o.bytes = o.bytes.saturating_sub(size);
        self.prune(owner);
    }

    /// Adds a partial blob of `owner`.
    pub(super) fn add_partial(&mut self, owner: [u8; 32], size: u64) {
        self.add_blob(owner, size);
        let o = self.owned(owner);
        o.partials = o.partials.saturating_add(1);
    }

    /// Removes a partial blob of `owner`.
    pub(super) fn remove_partial(&mut self, owner: [u8; 32], size: u64) {
        let o = self.owned(owner);
        o.partials = o.partials.saturating_sub(1);
        self.remove_blob(owner, size);
    }

    fn prune(&mut self, owner: [u8; 32]) {
        if self.owners.get(&owner).is_some_and(|o| *o == Owned::default()) {
            self.owners.remove(&owner);
        }
    }

    /// Refuses a new blob of `size` bytes for `owner` that would take the
    /// store over `quota` or the owner over `limits`.
    pub(super) fn check(&self, size: u64, quota: u64, owner: &[u8; 32], limits: OwnerLimits) -> Result<(), StoreError> {
        if self.total.saturating_add(size) > quota {
            return Err(StoreError::Full { size, used: self.total, quota });
        }
        let o = self.of(owner);
        if o.bytes.saturating_add(size) > limits.bytes {
            return Err(StoreError::OwnerFull { size, used: o.bytes, quota: limits.bytes });
        }
        if o.partials >= limits.partials {
            return Err(StoreError::TooManyPartials { limit: limits.partials });
        }
        Ok(())
    }

    /// The file's text.
    pub fn encode(&self) -> String {
        let mut out = format!("{MAGIC}\ntotal {}\n", self.total);
        for (owner, o) in &self.owners {
            let hex: String = owner.iter().map(|b| format!("{b:02x}")).collect();
            out.push_str(&format!("{hex} {} {}\n", o.bytes, o.partials));
        }
        out
    }

    /// Reads the file's text; `None` if it is not that.
    pub fn decode(text: &str) -> Option<Self> {
        let mut lines = text.lines();
        if lines.next()? != MAGIC {
            return None;
        }
        let total = lines.next()?.strip_prefix("total ")?.parse().ok()?;
        let mut owners = BTreeMap::new();
        for line in lines {
            let mut parts = line.split(' ');
            let (hex, bytes, partials) = (parts.next()?, parts.next()?, parts.next()?);
            if hex.len() != 64 || parts.next().is_some() {
                return None;
            }
            let mut owner = [0u8; 32];
            for (i, b) in owner.iter_mut().enumerate() {
                *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
            }
            owners.insert(owner, Owned { bytes: bytes.parse().ok()?, partials: partials.parse().ok()? });
        }
        Some(Usage { total, owners })
    }
}

impl Store {
    fn usage_path(&self) -> std::path::PathBuf {
        self.root.join("usage")
    }

    /// What the store holds now.
    pub fn usage(&self) -> Result<Usage, StoreError> {
        match std::fs::read_to_string(self.usage_path()).ok().as_deref().and_then(Usage::decode) {
            Some(u) => Ok(u),
            None => self.change_usage(|_| Ok(())),
        }
    }

    /// Rebuilds the totals from a scan of the store (after a crash, they
    /// may have drifted).
    pub fn rebuild_usage(&self) -> Result<Usage, StoreError> {
        let _lock = self.lock_usage()?;
        let usage = self.scan_usage()?;
        self.write_usage(&usage)?;
        Ok(usage)
    }

    fn scan_usage(&self) -> Result<Usage, StoreError> {
        let mut usage = Usage::default();
        for blob in self.copies()? {
            usage.add_blob(self.owner_of(&blob.hash), blob.size);
        }
        for p in self.partials()? {
            usage.add_partial(p.owner, p.size);
        }
        Ok(usage)
    }

    /// Changes the totals with `f` under the lock; `f` may refuse (and
    /// change nothing). Returns the totals after.
    pub(super) fn change_usage(
        &self,
        f: impl FnOnce(&mut Usage) -> Result<(), StoreError>,
    ) -> Result<Usage, StoreError> {
        let _lock = self.lock_usage()?;
        let mut usage = match std::fs::read_to_string(self.usage_path()).ok().as_deref().and_then(Usage::decode) {
            Some(u) => u,
            None => self.scan_usage()?,
        };
        f(&mut usage)?;
        self.write_usage(&usage)?;
        Ok(usage)
    }

    fn lock_usage(&self) -> Result<File, StoreError> {
        let path = self.root.join("usage.lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(io_at(&path))?;
        lock.lock().map_err(io_at(&path))?;
        Ok(lock)
    }

    fn write_usage(&self, usage: &Usage) -> Result<(), StoreError> {
        let path = self.usage_path();
        let mut tmp = self.temp()?;
        tmp.write_all(usage.encode().as_bytes()).map_err(io_at(tmp.path()))?;
        tmp.persist(&path).map_err(|e| StoreError::Io { path, source: e.error })?;
        Ok(())
    }

    fn owner_path(&self, hash: &BlobHash) -> std::path::PathBuf {
        self.root.join("owners").join(hash.to_string())
    }

    /// Who owns the complete blob `hash` (this profile if nobody is recorded).
    pub fn owner_of(&self, hash: &BlobHash) -> [u8; 32] {
        let mut owner = LOCAL;
        if let Ok(bytes) = std::fs::read(self.owner_path(hash))
            && let Ok(o) = <[u8; 32]>::try_from(bytes.as_slice())
        {
            owner = o;
        }
        owner
    }

    /// Records `owner` for the complete blob `hash`.
    pub(super) fn set_owner(&self, hash: &BlobHash, owner: [u8; 32]) -> Result<(), StoreError> {
        let path = self.owner_path(hash);
        if owner == LOCAL {
            let _ = std::fs::remove_file(&path);
            return Ok(());
        }
        let mut tmp = self.temp()?;
        tmp.write_all(&owner).map_err(io_at(tmp.path()))?;
        tmp.persist(&path).map_err(|e| StoreError::Io { path, source: e.error })?;
        Ok(())
    }

    pub(super) fn forget_owner(&self, hash: &BlobHash) {
        let _ = std::fs::remove_file(self.owner_path(hash));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_round_trips_and_garbage_is_refused() {
        let mut u = Usage::default();
        u.add_blob(LOCAL, 10);
        u.add_partial([7; 32], 30);
        u.add_partial([7; 32], 5);
        let text = u.encode();
        assert_eq!(Usage::decode(&text), Some(u.clone()));
        assert_eq!(u.total, 45);
        assert_eq!(u.of(&[7; 32]), Owned { bytes: 35, partials: 2 });
        u.remove_partial([7; 32], 30);
        u.remove_partial([7; 32], 5);
        assert!(!u.owners.contains_key(&[7; 32]), "an owner with nothing is dropped");
        for bad in ["", "alp blob usage v1\n", "alp blob usage v1\ntotal x\n", "alp blob usage v1\ntotal 1\nzz 1 1\n"] {
            assert_eq!(Usage::decode(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn limits_are_checked_in_all_and_per_owner() {
        let mut u = Usage::default();
        u.add_partial([1; 32], 60);
        let limits = OwnerLimits { bytes: 100, partials: 2 };
        assert!(u.check(40, 100, &[1; 32], limits).is_ok());
        assert!(matches!(u.check(41, 100, &[2; 32], limits), Err(StoreError::Full { used: 60, .. })));
        assert!(matches!(u.check(41, 1000, &[1; 32], limits), Err(StoreError::OwnerFull { used: 60, .. })));
        u.add_partial([1; 32], 0);
        assert!(matches!(u.check(0, 1000, &[1; 32], limits), Err(StoreError::TooManyPartials { limit: 2 })));
    }
}
