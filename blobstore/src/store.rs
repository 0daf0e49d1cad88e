//! Complete blobs on disk: content-addressed, written atomically, with
//! their hash tree beside them.
//!
//! ```text
//! ROOT/data/<hash>   the bytes (0600)
//! ROOT/obao/<hash>   parent nodes in pre-order, 64 bytes each (absent
//!                    for blobs of one group)
//! ROOT/partial/      blobs being received (see [`partial`])
//! ROOT/receipts/     signed receipts, one file per transfer
//! ROOT/tmp/          imports in progress, on the same filesystem
//! ```
//!
//! A blob appears under `data/` only once its bytes are complete and its
//! hash is known: data and tree are written to temp files, fsynced, and
//! renamed into place (tree first). The same content is stored once.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::BlobHash;
use crate::tree::{self, GROUP_SIZE, PARENT_SIZE, TreeBuilder};

mod folder;
pub mod meta;
pub mod partial;
mod reference;
mod usage;
pub use folder::Folder;
pub use partial::{Partial, PartialInfo, Ranges, Takeover, TakeoverProbe};
pub use reference::Reference;
pub use usage::{LOCAL, Owned, OwnerLimits, Usage};

/// Read buffer for imports: many groups at a time.
const IO_BUF: usize = 1024 * 1024;

/// A store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// No complete blob with that hash.
    #[error("blob {0} is not in the store (see `alp blob ls`)")]
    NotFound(BlobHash),
    /// The bytes on disk no longer match the hash.
    #[error("blob {hash} is damaged on disk: {what}")]
    Damaged {
        /// The blob.
        hash: BlobHash,
        /// What does not match.
        what: String,
    },
    /// The source changed while it was being read.
    #[error("{path} changed while it was being read ({expected} bytes announced, {got} read); try again")]
    SourceChanged {
        /// The file.
        path: PathBuf,
        /// Size when the import started.
        expected: u64,
        /// Bytes actually read.
        got: u64,
    },
    /// Storing the blob would take the store over its quota.
    #[error(
        "storing {size} more bytes would take this profile's blobs over their quota ({used} of {quota} bytes used); remove some with `alp blob rm` or raise blob.store_quota"
    )]
    Full {
        /// Bytes the new blob needs.
        size: u64,
        /// Bytes stored (complete and partial blobs).
        used: u64,
        /// The quota.
        quota: u64,
    },
    /// Storing the blob would take its owner (a peer) over its quota.
    #[error("{size} more bytes would take this owner over its quota ({used} of {quota} bytes used)")]
    OwnerFull {
        /// Bytes the new blob needs.
        size: u64,
        /// Bytes the owner holds (complete and partial blobs).
        used: u64,
        /// The owner's quota.
        quota: u64,
    },
    /// The owner (a peer) has as many unfinished blobs here as it may.
    #[error("{limit} unfinished blobs of this owner are here already; finish or remove one first")]
    TooManyPartials {
        /// The limit.
        limit: u32,
    },
    /// A partial blob of this hash with another size holds verified data.
    #[error("blob {hash} is being received with a size of {size} bytes; a different size cannot be right")]
    SizeMismatch {
        /// The blob.
        hash: BlobHash,
        /// The size its verified data proves.
        size: u64,
    },
    /// No blob of that size can have that hash (only the empty blob has 0 bytes).
    #[error("blob {hash} cannot be {size} bytes long")]
    WrongSize {
        /// The blob.
        hash: BlobHash,
        /// The size announced.
        size: u64,
    },
    /// The disk is too full: storing the blob would eat into the reserve.
    #[error(
        "only {free} bytes are free on the blob store's disk; {needed} more would leave less than the {reserve}-byte reserve (blob.min_free): free some space"
    )]
    DiskFull {
        /// Bytes the blob still needs.
        needed: u64,
        /// Bytes free now.
        free: u64,
        /// Bytes to keep free.
        reserve: u64,
    },
    /// Not a hash, nor a prefix of one.
    #[error("'{0}' is not a blob hash: give the 64 hex digits `alp blob ls` shows, or at least 4 of the first")]
    BadHash(String),
    /// No blob here starts with this prefix.
    #[error("no blob here starts with '{0}' (see `alp blob ls`; a blob not held here needs its full hash)")]
    NoMatch(String),
    /// More than one blob starts with this prefix.
    #[error("'{prefix}' is ambiguous: it starts {}; give more digits", list_hashes(candidates))]
    Ambiguous {
        /// What was given.
        prefix: String,
        /// Every blob it matches.
        candidates: Vec<BlobHash>,
    },
    /// The file a blob was added by reference from is no longer what was
    /// added.
    #[error(
        "blob {hash} was added by reference to {path}, and {what} since: add it again (`alp blob add`), or remove the blob"
    )]
    Changed {
        /// The blob.
        hash: BlobHash,
        /// The file.
        path: PathBuf,
        /// What changed.
        what: String,
    },
    /// Another transfer is writing this partial blob right now.
    #[error("blob {0} is being received right now; try again when that transfer ends")]
    Busy(BlobHash),
    /// Reading or writing failed.
    #[error("{path}: {source}", path = path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
}

fn list_hashes(hashes: &[BlobHash]) -> String {
    let shown: Vec<String> = hashes.iter().take(8).map(|h| h.to_string()).collect();
    let more = hashes.len().saturating_sub(shown.len());
    let mut text = shown.join(", ");
    if more > 0 {
        text.push_str(&format!(" and {more} more"));
    }
    text
}

fn io_at(path: &Path) -> impl Fn(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io { path: path.to_owned(), source }
}

/// Creates or replaces `dest` with what `fill` writes, atomically (a temp
/// file beside it, fsync, rename): `dest` is either untouched or complete.
/// Returns what `fill` returns.
pub fn write_atomically(dest: &Path, fill: impl FnOnce(&mut File) -> io::Result<u64>) -> Result<u64, StoreError> {
    let dir = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new().prefix(".alp-export-").tempfile_in(dir).map_err(io_at(dir))?;
    let n = fill(tmp.as_file_mut()).map_err(io_at(dest))?;
    tmp.as_file().sync_all().map_err(io_at(dest))?;
    tmp.persist(dest).map_err(|e| StoreError::Io { path: dest.to_owned(), source: e.error })?;
    Ok(n)
}

/// A complete blob's summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobInfo {
    /// Its address.
    pub hash: BlobHash,
    /// Its size in bytes.
    pub size: u64,
}

/// The blobs under one directory.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
    /// Most bytes of blobs, complete and partial (`u64::MAX`: no limit).
    quota: u64,
    /// Bytes of the disk to keep free.
    reserve: u64,
    /// How long a transfer waits to take over a partial another holds.
    takeover_wait: std::time::Duration,
    /// Partials a transfer of this process waits for: one waiter per
    /// blob, so a peer opening many streams for one hash cannot park a
    /// blocking thread per stream.
    waiting: std::sync::Arc<std::sync::Mutex<std::collections::HashSet<BlobHash>>>,
}

impl Store {
    /// Opens (creating if needed) the store at `root`.
    pub fn open(root: &Path) -> Result<Self, StoreError> {
        for dir in ["data", "obao", "tmp", "receipts", "partial", "owners", "meta", "refs"] {
            let path = root.join(dir);
            std::fs::create_dir_all(&path).map_err(io_at(&path))?;
        }
        Ok(Self {
            root: root.to_owned(),
            quota: u64::MAX,
            reserve: 0,
            takeover_wait: partial::TAKEOVER_WAIT,
            waiting: Default::default(),
        })
    }

    /// Limits the bytes of blobs kept here, complete and partial, to
    /// `quota` (0: no limit). New blobs that would go over are refused
    /// before a byte is stored.
    pub fn with_quota(mut self, quota: u64) -> Self {
        self.quota = if quota == 0 { u64::MAX } else { quota };
        self
    }

    /// Keeps `reserve` bytes of the disk free: a blob that would eat into
    /// them is refused before a byte is written.
    pub fn with_reserve(mut self, reserve: u64) -> Self {
        self.reserve = reserve;
        self
    }

    /// Waits at most `wait` for the holder of a partial blob to let go
    /// before falling back to a private one (see [`partial`]).
    pub fn with_takeover_wait(mut self, wait: std::time::Duration) -> Self {
        self.takeover_wait = wait;
        self
    }

    /// Refuses `needed` more bytes if they would leave less than the
    /// reserve free.
    fn check_disk(&self, needed: u64) -> Result<(), StoreError> {
        if self.reserve == 0 || needed == 0 {
            return Ok(());
        }
        let stat = nix::sys::statvfs::statvfs(&self.root)
            .map_err(|e| StoreError::Io { path: self.root.clone(), source: io::Error::from_raw_os_error(e as i32) })?;
        // The field types differ between platforms; they are u64 here.
        #[allow(clippy::useless_conversion)]
        let free = u64::from(stat.blocks_available()).saturating_mul(u64::from(stat.fragment_size()));
        if free < needed.saturating_add(self.reserve) {
            return Err(StoreError::DiskFull { needed, free, reserve: self.reserve });
        }
        Ok(())
    }

    /// Bytes of blobs stored: complete ones, plus the full size of partial
    /// ones (what they will take when complete).
    pub fn used_bytes(&self) -> Result<u64, StoreError> {
        Ok(self.usage()?.total)
    }

    /// Where the bytes of `hash` live (whether or not it exists).
    pub fn data_path(&self, hash: &BlobHash) -> PathBuf {
        self.root.join("data").join(hash.to_string())
    }

    fn obao_path(&self, hash: &BlobHash) -> PathBuf {
        self.root.join("obao").join(hash.to_string())
    }

    fn temp(&self) -> Result<tempfile::NamedTempFile, StoreError> {
        let dir = self.root.join("tmp");
        tempfile::Builder::new()
            .permissions(std::fs::Permissions::from_mode(0o600))
            .tempfile_in(&dir)
            .map_err(io_at(&dir))
    }

    /// Imports `source` (a file): copies it into the store in the kernel
    /// (`copy_file_range`, a reflink where the filesystem shares blocks),
    /// then hashes the copy and builds its tree on every core. Returns the
    /// blob.
    pub fn import_file(&self, source: &Path) -> Result<BlobInfo, StoreError> {
        let file = File::open(source).map_err(io_at(source))?;
        let size = file.metadata().map_err(io_at(source))?.len();
        self.reserve_local(size)?;
        let imported = (|| {
            let mut data = self.temp()?;
            // One byte more than announced, to notice a file that grew.
            let copied = io::copy(&mut (&file).take(size + 1), data.as_file_mut()).map_err(io_at(source))?;
            if copied != size {
                return Err(StoreError::SourceChanged { path: source.to_owned(), expected: size, got: copied });
            }
            self.index_and_publish(data, size, source)
        })();
        self.settle_local(size, imported)
    }

    /// Imports everything `reader` gives (standard input: its size is not
    /// known before the end). It is written to a temp file first, then
    /// checked against the quota and hashed there.
    pub fn import_unsized(&self, reader: &mut impl Read, label: &Path) -> Result<BlobInfo, StoreError> {
        let mut data = self.temp()?;
        let size = io::copy(reader, data.as_file_mut()).map_err(io_at(label))?;
        self.check_disk(0)?;
        self.reserve_local(size)?;
        let imported = self.index_and_publish(data, size, label);
        self.settle_local(size, imported)
    }

    /// Reserves `size` bytes for a blob added here, against the disk
    /// reserve and the quota.
    fn reserve_local(&self, size: u64) -> Result<(), StoreError> {
        self.check_disk(size)?;
        let quota = self.quota;
        self.change_usage(|u| {
            u.check(size, quota, &LOCAL, OwnerLimits::NONE)?;
            u.add_blob(LOCAL, size);
            Ok(())
        })?;
        Ok(())
    }

    /// Gives the reservation back unless the import stored a new blob.
    fn settle_local(&self, size: u64, imported: Result<(BlobInfo, bool), StoreError>) -> Result<BlobInfo, StoreError> {
        if !matches!(imported, Ok((_, true))) {
            self.change_usage(|u| {
                u.remove_blob(LOCAL, size);
                Ok(())
            })?;
        }
        imported.map(|(info, _)| info)
    }

    /// Hashes the temp file `data` of `size` bytes in place, builds its
    /// tree, and publishes both; true if the blob is new here.
    fn index_and_publish(
        &self,
        data: tempfile::NamedTempFile,
        size: u64,
        label: &Path,
    ) -> Result<(BlobInfo, bool), StoreError> {
        let obao = self.temp()?;
        let hash = crate::index::index_file(data.as_file(), size, obao.as_file(), crate::index::threads())
            .map_err(io_at(label))?;
        let hash = BlobHash::from(hash);
        let new = self.publish(data, obao, &hash, size)?;
        Ok((BlobInfo { hash, size }, new))
    }

    /// Imports `size` bytes from `reader` (`label` names it in errors).
    /// The bytes are reserved against the quota before the first is read.
    pub fn import(&self, reader: &mut impl Read, size: u64, label: &Path) -> Result<BlobInfo, StoreError> {
        self.reserve_local(size)?;
        let imported = self.import_reserved(reader, size, label);
        self.settle_local(size, imported)
    }

    /// Imports bytes already reserved; true if the blob is new here.
    fn import_reserved(&self, reader: &mut impl Read, size: u64, label: &Path) -> Result<(BlobInfo, bool), StoreError> {
        let data = self.temp()?;
        let obao = self.temp()?;
        let mut builder = TreeBuilder::new(size);
        let mut writer = io::BufWriter::with_capacity(IO_BUF, data.as_file());
        let mut buf = vec![0u8; IO_BUF];
        let (mut filled, mut total) = (0usize, 0u64);
        let write_parents = |parents: Vec<tree::Parent>| -> Result<(), StoreError> {
            for p in parents {
                obao.as_file().write_all_at(&p.to_bytes(), p.index * PARENT_SIZE).map_err(io_at(obao.path()))?;
            }
            Ok(())
        };
        loop {
            let n = reader.read(&mut buf[filled..]).map_err(io_at(label))?;
            filled += n;
            total += n as u64;
            let eof = n == 0;
            // Hash whole groups; keep a partial one for the next read.
            let whole = if eof { filled } else { filled - filled % GROUP_SIZE as usize };
            for group in buf[..whole].chunks(GROUP_SIZE as usize) {
                write_parents(builder.push(group))?;
            }
            writer.write_all(&buf[..whole]).map_err(io_at(data.path()))?;
            buf.copy_within(whole..filled, 0);
            filled -= whole;
            if eof {
                break;
            }
            if total > size {
                return Err(StoreError::SourceChanged { path: label.to_owned(), expected: size, got: total });
            }
        }
        if total != size {
            return Err(StoreError::SourceChanged { path: label.to_owned(), expected: size, got: total });
        }
        if size == 0 {
            write_parents(builder.push(&[]))?;
        }
        writer.flush().map_err(io_at(data.path()))?;
        drop(writer);
        let (parents, hash) = builder.finish();
        write_parents(parents)?;
        let hash = BlobHash::from(hash);
        let new = self.publish(data, obao, &hash, size)?;
        Ok((BlobInfo { hash, size }, new))
    }

    /// Moves verified temp files into place: tree first, then data (whose
    /// presence is what makes the blob exist). Existing content is kept;
    /// false if there was some.
    fn publish(
        &self,
        data: tempfile::NamedTempFile,
        obao: tempfile::NamedTempFile,
        hash: &BlobHash,
        size: u64,
    ) -> Result<bool, StoreError> {
        let target = self.data_path(hash);
        if target.exists() {
            return Ok(false);
        }
        data.as_file().sync_all().map_err(io_at(data.path()))?;
        if tree::groups(size) > 1 {
            obao.as_file().sync_all().map_err(io_at(obao.path()))?;
            let path = self.obao_path(hash);
            obao.persist(&path).map_err(|e| StoreError::Io { path, source: e.error })?;
        }
        data.persist(&target).map_err(|e| StoreError::Io { path: target.clone(), source: e.error })?;
        let dir = self.root.join("data");
        File::open(&dir).and_then(|d| d.sync_all()).map_err(io_at(&dir))?;
        Ok(true)
    }

    /// The stored hash tree of `hash` (`None` for a one-group blob).
    pub fn open_tree(&self, hash: &BlobHash) -> Result<Option<File>, StoreError> {
        let info = self.get(hash)?;
        if tree::groups(info.size) == 1 {
            return Ok(None);
        }
        let path = self.obao_path(hash);
        File::open(&path).map(Some).map_err(io_at(&path))
    }

    /// Keeps a receipt for `hash` (opaque bytes; one file per transfer).
    pub fn save_receipt(&self, hash: &BlobHash, transfer: &[u8; 16], bytes: &[u8]) -> Result<(), StoreError> {
        let dir = self.root.join("receipts").join(hash.to_string());
        std::fs::create_dir_all(&dir).map_err(io_at(&dir))?;
        let name: String = transfer.iter().map(|b| format!("{b:02x}")).collect();
        let mut tmp = self.temp()?;
        tmp.write_all(bytes).map_err(io_at(tmp.path()))?;
        tmp.as_file().sync_all().map_err(io_at(tmp.path()))?;
        let path = dir.join(name);
        tmp.persist(&path).map_err(|e| StoreError::Io { path, source: e.error })?;
        Ok(())
    }

    /// Every receipt kept for `hash`.
    pub fn receipts(&self, hash: &BlobHash) -> Result<Vec<Vec<u8>>, StoreError> {
        let dir = self.root.join("receipts").join(hash.to_string());
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(StoreError::Io { path: dir, source: e }),
        };
        let mut out = Vec::new();
        for entry in entries {
            let path = entry.map_err(io_at(&dir))?.path();
            out.push(std::fs::read(&path).map_err(io_at(&path))?);
        }
        Ok(out)
    }

    /// The blob `hash`, if complete.
    pub fn get(&self, hash: &BlobHash) -> Result<BlobInfo, StoreError> {
        match std::fs::metadata(self.data_path(hash)) {
            Ok(m) => Ok(BlobInfo { hash: *hash, size: m.len() }),
            // A reference counts only while its file is what was added.
            Err(e) if e.kind() == io::ErrorKind::NotFound => match self.reference(hash) {
                Some(r) if self.reference_intact(&r) => Ok(BlobInfo { hash: *hash, size: r.size }),
                _ => Err(StoreError::NotFound(*hash)),
            },
            Err(e) => Err(StoreError::Io { path: self.data_path(hash), source: e }),
        }
    }

    /// Opens the bytes of `hash` for reading: its copy, or the file it was
    /// added by reference from if that is unchanged.
    pub fn open_blob(&self, hash: &BlobHash) -> Result<File, StoreError> {
        match File::open(self.data_path(hash)) {
            Ok(f) => Ok(f),
            Err(e) if e.kind() == io::ErrorKind::NotFound => match self.reference(hash) {
                Some(r) => self.open_reference(hash, &r),
                None => Err(StoreError::NotFound(*hash)),
            },
            Err(e) => Err(StoreError::Io { path: self.data_path(hash), source: e }),
        }
    }

    /// Copies `hash` to `dest` atomically (temp file beside it, fsync,
    /// rename): `dest` is either untouched or complete.
    pub fn export(&self, hash: &BlobHash, dest: &Path) -> Result<u64, StoreError> {
        let mut src = self.open_blob(hash)?;
        write_atomically(dest, |out| io::copy(&mut src, out))
    }

    /// Checks `hash` from disk: every group of its bytes against its stored
    /// tree, and the tree against the hash. The error names the first
    /// item that does not match: a data group (and its bytes) or a node of
    /// the tree.
    pub fn verify(&self, hash: &BlobHash) -> Result<(), StoreError> {
        let info = match self.reference(hash) {
            // A changed reference is named as such.
            Some(r) => BlobInfo { hash: *hash, size: r.size },
            None => self.get(hash)?,
        };
        let data = self.open_blob(hash)?;
        let obao = self.open_tree(hash)?;
        let all = (0, tree::groups(info.size));
        verify_from_disk(hash, info.size, all, &data, obao.as_ref())
            .map_err(|what| StoreError::Damaged { hash: *hash, what })
    }

    /// Takes a blob found damaged out of the store: its bytes move to
    /// `ROOT/damaged/` (for a look), its tree goes, and it is no longer
    /// listed or served. Fetching it again restores it.
    pub fn quarantine(&self, hash: &BlobHash) -> Result<PathBuf, StoreError> {
        if let Some(r) = self.reference(hash) {
            // Not ours to move: the blob stays listed, and reported as
            // changed until it is added again or removed.
            return Ok(r.path);
        }
        let info = self.get(hash)?;
        let owner = self.owner_of(hash);
        let dir = self.root.join("damaged");
        std::fs::create_dir_all(&dir).map_err(io_at(&dir))?;
        let to = dir.join(hash.to_string());
        std::fs::rename(self.data_path(hash), &to).map_err(io_at(&to))?;
        let _ = std::fs::remove_file(self.obao_path(hash));
        self.forget_owner(hash);
        self.change_usage(|u| {
            u.remove_blob(owner, info.size);
            Ok(())
        })?;
        Ok(to)
    }

    /// The entries of `ROOT/sub` named by a blob hash (others are ignored).
    fn named_entries(&self, sub: &str) -> Result<Vec<(BlobHash, std::fs::DirEntry)>, StoreError> {
        let dir = self.root.join(sub);
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(io_at(&dir))? {
            let entry = entry.map_err(io_at(&dir))?;
            if let Some(Ok(hash)) = entry.file_name().to_str().map(str::parse::<BlobHash>) {
                out.push((hash, entry));
            }
        }
        Ok(out)
    }

    /// Every complete blob, copies and references, sorted by hash.
    pub fn list(&self) -> Result<Vec<BlobInfo>, StoreError> {
        let mut out = self.copies()?;
        for (hash, _) in self.named_entries("refs")? {
            if let Some(r) = self.reference(&hash) {
                out.push(BlobInfo { hash, size: r.size });
            }
        }
        out.sort_by_key(|b| b.hash);
        Ok(out)
    }

    /// The blobs whose bytes are in the store (not references).
    pub(crate) fn copies(&self) -> Result<Vec<BlobInfo>, StoreError> {
        let mut out = Vec::new();
        for (hash, entry) in self.named_entries("data")? {
            let size = entry.metadata().map_err(io_at(&entry.path()))?.len();
            out.push(BlobInfo { hash, size });
        }
        Ok(out)
    }

    /// Deletes `hash` (data first, so it stops existing at once), and any
    /// partial copy of it.
    pub fn remove(&self, hash: &BlobHash) -> Result<(), StoreError> {
        let data = self.data_path(hash);
        let owner = self.owner_of(hash);
        let size = self.get(hash).map(|b| b.size).ok();
        let referenced = self.reference(hash).is_some();
        let complete = match std::fs::remove_file(&data) {
            Ok(()) => true,
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(e) => return Err(StoreError::Io { path: data, source: e }),
        };
        if referenced && self.forget_reference(hash) {
            let _ = std::fs::remove_file(self.obao_path(hash));
            self.forget_meta(hash);
            return Ok(());
        }
        self.forget_reference(hash);
        let _ = std::fs::remove_file(self.obao_path(hash));
        if let (true, Some(size)) = (complete, size) {
            self.forget_owner(hash);
            self.forget_meta(hash);
            self.change_usage(|u| {
                u.remove_blob(owner, size);
                Ok(())
            })?;
        }
        let partial = match self.remove_partial(hash) {
            Ok(p) => p,
            Err(StoreError::Busy(_)) if complete => false,
            Err(e) => return Err(e),
        };
        if complete || partial { Ok(()) } else { Err(StoreError::NotFound(*hash)) }
    }
}

/// Streams groups `range` of blob `hash` (of `size` bytes) from `data` and
/// its tree `obao` (none for a one-group blob) through a verifier. `Err`
/// says which item does not match.
pub(crate) fn verify_from_disk(
    hash: &BlobHash,
    size: u64,
    range: (u64, u64),
    data: &File,
    obao: Option<&File>,
) -> Result<(), String> {
    let mut v = tree::Verifier::new(blake3::Hash::from_bytes(*hash.as_bytes()), size, vec![range]);
    let mut buf = vec![0u8; GROUP_SIZE as usize];
    for step in tree::stream_order(size, vec![range]) {
        match step {
            tree::Step::Parent(i) => {
                let mut pair = [0u8; 64];
                let obao = obao.ok_or("the hash tree is missing")?;
                obao.read_exact_at(&mut pair, i * PARENT_SIZE).map_err(|e| format!("hash tree unreadable: {e}"))?;
                v.parent(&pair).map_err(|e| format!("hash tree: {e}"))?;
            }
            tree::Step::Group(g) => {
                let start = (g * GROUP_SIZE).min(size);
                let len = usize::try_from((size - start).min(GROUP_SIZE)).unwrap_or(0);
                data.read_exact_at(&mut buf[..len], start).map_err(|e| format!("data unreadable: {e}"))?;
                v.group(&buf[..len]).map_err(|_| {
                    format!("data group {g} (bytes {start}..{}) does not match its hash", start + len as u64)
                })?;
            }
        }
    }
    if v.is_done() { Ok(()) } else { Err("the stream ended early".to_owned()) }
}

#[cfg(test)]
mod tests;
