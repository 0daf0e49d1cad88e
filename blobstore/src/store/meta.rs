//! What the store knows about a blob besides its bytes: the name it was
//! added or received under, when, and where it came from.
//!
//! `ROOT/meta/<hash>`: a small JSON object, replaced atomically. Local
//! bookkeeping, never sent or signed (a receiver learns a name from the
//! request that pushed the blob, or from a ticket or a folder's manifest).

use std::io::Write;

use serde::{Deserialize, Serialize};

use super::{Store, StoreError, io_at};
use crate::BlobHash;

/// Longest name kept, in bytes (as most filesystems allow).
pub const MAX_NAME: usize = 255;

/// Where a blob came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Origin {
    /// Added on this machine (`alp blob add`).
    Added,
    /// Pushed here by a peer.
    Pushed {
        /// The peer's node id.
        peer: String,
        /// The transfer whose receipt completed it (hex).
        transfer: String,
    },
    /// Fetched from a peer.
    Fetched {
        /// The peer's node id.
        peer: String,
        /// The transfer whose receipt completed it (hex).
        transfer: String,
    },
}

/// What a blob is to people.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A file's bytes.
    #[default]
    File,
    /// A folder's manifest (see `alp_blobstore::collection`).
    Collection,
}

/// A blob's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobMeta {
    /// The name it was added or received under, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// File or folder.
    #[serde(default)]
    pub kind: Kind,
    /// When it was added or received (Unix seconds).
    pub added: u64,
    /// Where it came from.
    pub origin: Origin,
}

/// Why a name cannot be a blob's name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{shown}' cannot name a file: {why}")]
pub struct BadName {
    shown: String,
    why: &'static str,
}

/// Checks that `name` can name one file in a directory: not empty, `.` or
/// `..`, no `/`, NUL or control characters, at most [`MAX_NAME`] bytes.
pub fn check_name(name: &str) -> Result<(), BadName> {
    let bad = |why| Err(BadName { shown: name.escape_debug().to_string(), why });
    if name.is_empty() || name == "." || name == ".." {
        return bad("a name is needed, not '.' or '..'");
    }
    if name.len() > MAX_NAME {
        return bad("longer than 255 bytes");
    }
    if name.contains('/') {
        return bad("it holds a '/'");
    }
    if name.chars().any(char::is_control) {
        return bad("it holds a control character");
    }
    Ok(())
}

impl Store {
    fn meta_path(&self, hash: &BlobHash) -> std::path::PathBuf {
        self.root.join("meta").join(hash.to_string())
    }

    /// The record of `hash`, if there is a readable one.
    pub fn meta(&self, hash: &BlobHash) -> Option<BlobMeta> {
        let bytes = std::fs::read(self.meta_path(hash)).ok()?;
        let meta: BlobMeta = serde_json::from_slice(&bytes).ok()?;
        // A hand-edited file must not smuggle a path into a name.
        match &meta.name {
            Some(n) if check_name(n).is_err() => Some(BlobMeta { name: None, ..meta }),
            _ => Some(meta),
        }
    }

    /// Records `meta` for `hash` (replacing what was there).
    pub fn set_meta(&self, hash: &BlobHash, meta: &BlobMeta) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(meta)
            .map_err(|e| StoreError::Io { path: self.meta_path(hash), source: std::io::Error::other(e) })?;
        let dir = self.root.join("meta");
        std::fs::create_dir_all(&dir).map_err(io_at(&dir))?;
        let mut tmp = self.temp()?;
        tmp.write_all(&bytes).map_err(io_at(tmp.path()))?;
        tmp.as_file().sync_all().map_err(io_at(tmp.path()))?;
        let path = self.meta_path(hash);
        tmp.persist(&path).map_err(|e| StoreError::Io { path, source: e.error })?;
        Ok(())
    }

    /// Records that `hash` arrived from a peer: its name (if the sender
    /// gave one, or it had one here already) and origin. A blob added here
    /// keeps its record.
    pub fn note_received(
        &self,
        hash: &BlobHash,
        name: Option<&str>,
        origin: Origin,
        now: u64,
    ) -> Result<(), StoreError> {
        let old = self.meta(hash);
        if matches!(old, Some(BlobMeta { origin: Origin::Added, .. })) {
            return Ok(());
        }
        let name =
            name.filter(|n| check_name(n).is_ok()).map(str::to_owned).or(old.as_ref().and_then(|m| m.name.clone()));
        let kind = old.map(|m| m.kind).unwrap_or_default();
        self.set_meta(hash, &BlobMeta { name, kind, added: now, origin })
    }

    /// Records that `hash` was added here, as `name` (or under the name it
    /// had already), at `now`.
    pub fn note_added(&self, hash: &BlobHash, name: Option<&str>, kind: Kind, now: u64) -> Result<(), StoreError> {
        let old = self.meta(hash);
        let name = name.map(str::to_owned).or(old.and_then(|m| m.name));
        self.set_meta(hash, &BlobMeta { name, kind, added: now, origin: Origin::Added })
    }

    /// Marks `hash` as a file or a folder's manifest, keeping the rest of
    /// its record (a blob with none gets one, received from nobody known).
    pub fn set_kind(&self, hash: &BlobHash, kind: Kind, now: u64) -> Result<(), StoreError> {
        let meta = match self.meta(hash) {
            Some(m) if m.kind == kind => return Ok(()),
            Some(m) => BlobMeta { kind, ..m },
            None => BlobMeta { name: None, kind, added: now, origin: Origin::Added },
        };
        self.set_meta(hash, &meta)
    }

    pub(super) fn forget_meta(&self, hash: &BlobHash) {
        let _ = std::fs::remove_file(self.meta_path(hash));
    }

    /// The blob a hash or a unique prefix of one (at least 4 hex digits)
    /// names, among blobs and partial blobs here. A full hash is returned
    /// as it is, held here or not.
    pub fn resolve(&self, text: &str) -> Result<BlobHash, StoreError> {
        let prefix = text.trim().to_ascii_lowercase();
        if let Ok(hash) = prefix.parse::<BlobHash>() {
            return Ok(hash);
        }
        if prefix.len() < 4 || prefix.len() > 64 || !prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(StoreError::BadHash(text.to_owned()));
        }
        let mut found: Vec<BlobHash> = Vec::new();
        for sub in ["data", "refs", "partial"] {
            if !self.root.join(sub).exists() {
                continue;
            }
            for (hash, _) in self.named_entries(sub)? {
                if hash.to_string().starts_with(&prefix) && !found.contains(&hash) {
                    found.push(hash);
                }
            }
        }
        found.sort();
        match found.as_slice() {
            [one] => Ok(*one),
            [] => Err(StoreError::NoMatch(text.to_owned())),
            many => Err(StoreError::Ambiguous { prefix: text.to_owned(), candidates: many.to_vec() }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_could_leave_a_directory_are_refused() {
        for bad in ["", ".", "..", "a/b", "/etc", "x\0y", "bell\u{7}", &"n".repeat(256)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        for good in ["report.pdf", "..hidden", "a b", "日本語.txt", &"n".repeat(255)] {
            check_name(good).unwrap();
        }
    }

    #[test]
    fn prefixes_resolve_when_unique_and_list_the_candidates_when_not() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        // Blobs until two share their first four hex digits (birthday: a
        // few hundred).
        let mut seen = std::collections::HashMap::new();
        let (a, b) = (0u32..)
            .find_map(|i| {
                let bytes = i.to_be_bytes();
                let h = s.import(&mut &bytes[..], 4, std::path::Path::new("t")).unwrap().hash;
                seen.insert(h.to_string()[..4].to_owned(), h).map(|earlier| (earlier, h))
            })
            .unwrap();
        let shared = &a.to_string()[..4];
        match s.resolve(shared) {
            Err(StoreError::Ambiguous { candidates, .. }) => assert_eq!(candidates, {
                let mut c = vec![a, b];
                c.sort();
                c
            }),
            other => panic!("{other:?}"),
        }
        let msg = s.resolve(shared).unwrap_err().to_string();
        assert!(msg.contains(&a.to_string()) && msg.contains(&b.to_string()) && msg.contains("more digits"), "{msg}");
        // One digit more tells them apart, unless they share it too.
        let longer = a.to_string()[..12].to_owned();
        assert_eq!(s.resolve(&longer.to_uppercase()).unwrap(), a);
        assert!(matches!(s.resolve("abc"), Err(StoreError::BadHash(_))), "under 4 digits");
        assert!(matches!(s.resolve("not hex!"), Err(StoreError::BadHash(_))));
        let full = BlobHash::of(b"held nowhere");
        assert_eq!(s.resolve(&full.to_string()).unwrap(), full, "a full hash needs no lookup");
    }

    #[test]
    fn records_round_trip_and_received_blobs_keep_a_local_record() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let h = BlobHash::of(b"x");
        assert!(s.meta(&h).is_none());
        let peer = Origin::Pushed { peer: "alp1xyz".into(), transfer: "00".into() };
        s.note_received(&h, Some("a.txt"), peer.clone(), 5).unwrap();
        assert_eq!(
            s.meta(&h).unwrap(),
            BlobMeta { name: Some("a.txt".into()), kind: Kind::File, added: 5, origin: peer }
        );
        // A bad name from a peer is dropped, the earlier one kept.
        let other = Origin::Fetched { peer: "alp1abc".into(), transfer: "01".into() };
        s.note_received(&h, Some("../x"), other, 6).unwrap();
        assert_eq!(s.meta(&h).unwrap().name.as_deref(), Some("a.txt"));
        let local = BlobMeta { name: Some("mine".into()), kind: Kind::File, added: 1, origin: Origin::Added };
        s.set_meta(&h, &local).unwrap();
        s.note_received(&h, Some("theirs"), Origin::Added, 7).unwrap();
        assert_eq!(s.meta(&h).unwrap(), local, "what was added here stays as added");
    }
}
