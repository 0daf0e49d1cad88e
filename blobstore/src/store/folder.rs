//! Adding a folder: every regular file becomes a blob, and a manifest
//! blob lists them (see [`crate::collection`]).

use std::path::{Path, PathBuf};

use super::meta::Kind;
use super::{BlobInfo, Store, StoreError, io_at};
use crate::collection::{self, Entry};

/// A folder added to the store.
#[derive(Debug)]
pub struct Folder {
    /// The manifest's blob: its hash names the folder.
    pub manifest: BlobInfo,
    /// The files, sorted by path.
    pub entries: Vec<Entry>,
    /// What was left out: symbolic links, sockets, devices.
    pub skipped: Vec<PathBuf>,
}

impl Store {
    /// Adds every regular file under `root` (following no symbolic link),
    /// then its manifest; records the folder's name and each file's.
    /// `now` is the time recorded; files `by_reference` stay where they
    /// are (see [`Store::import_reference`]).
    pub fn import_folder(&self, root: &Path, now: u64, by_reference: bool) -> Result<Folder, StoreError> {
        let (mut entries, mut skipped) = (Vec::new(), Vec::new());
        let mut dirs = vec![(root.to_owned(), String::new())];
        while let Some((dir, prefix)) = dirs.pop() {
            let mut names: Vec<_> =
                std::fs::read_dir(&dir).map_err(io_at(&dir))?.collect::<Result<_, _>>().map_err(io_at(&dir))?;
            names.sort_by_key(|e| e.file_name());
            for e in names {
                let path = e.path();
                let Some(name) = e.file_name().to_str().map(str::to_owned) else {
                    skipped.push(path);
                    continue;
                };
                let rel = if prefix.is_empty() { name.clone() } else { format!("{prefix}/{name}") };
                let kind = e.file_type().map_err(io_at(&path))?;
                if kind.is_dir() {
                    dirs.push((path, rel));
                } else if kind.is_file() && collection::check_path(&rel).is_ok() {
                    use std::os::unix::fs::PermissionsExt;
                    let mode = e.metadata().map_err(io_at(&path))?.permissions().mode() & 0o777;
                    let info = if by_reference { self.import_reference(&path)? } else { self.import_file(&path)? };
                    self.note_added(&info.hash, Some(&name), Kind::File, now)?;
                    entries.push(Entry { path: rel, mode, size: info.size, hash: info.hash });
                } else {
                    skipped.push(path);
                }
            }
        }
        let bytes = collection::encode(entries).map_err(|e| StoreError::Io {
            path: root.to_owned(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
        })?;
        let entries = collection::decode(&bytes).map_err(|e| StoreError::Io {
            path: root.to_owned(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
        })?;
        let manifest = self.import(&mut bytes.as_slice(), bytes.len() as u64, root)?;
        let name = root.canonicalize().ok().and_then(|p| p.file_name().and_then(|n| n.to_str()).map(str::to_owned));
        self.note_added(&manifest.hash, name.as_deref(), Kind::Collection, now)?;
        Ok(Folder { manifest, entries, skipped })
    }

    /// The files of collection `hash`, if it is a manifest stored here.
    pub fn collection(&self, hash: &crate::BlobHash) -> Result<Option<Vec<Entry>>, StoreError> {
        let info = self.get(hash)?;
        if info.size > collection::MAX_MANIFEST || info.size < 12 {
            return Ok(None);
        }
        use std::io::Read;
        let mut file = self.open_blob(hash)?;
        let mut head = [0u8; 8];
        file.read_exact(&mut head).map_err(io_at(&self.data_path(hash)))?;
        if !collection::looks_like(&head) {
            return Ok(None);
        }
        let mut bytes = head.to_vec();
        file.read_to_end(&mut bytes).map_err(io_at(&self.data_path(hash)))?;
        Ok(collection::decode(&bytes).ok())
    }
}
