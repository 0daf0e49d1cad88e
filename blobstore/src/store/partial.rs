//! Partial blobs: verified groups of a blob still being received, kept
//! durably so an interrupted transfer resumes where it stopped.
//!
//! ```text
//! ROOT/partial/<hash>/data    the blob's bytes at their offsets (sparse)
//! ROOT/partial/<hash>/obao    verified parents at their pre-order slots
//! ROOT/partial/<hash>/state   which groups are verified and on disk
//! ROOT/partial/<hash>/lock    held (flock) by the one process writing
//! ROOT/partial/<hash>/yield   present while another transfer waits to
//!                             take the partial over (yield.force: at once)
//! ```
//!
//! Only groups and parents that verified against the blob's hash are
//! written. The state file lists a group only after its bytes were
//! fsynced, and is itself replaced atomically (temp file, fsync, rename),
//! so after a crash every group it lists is verified and on disk; bytes
//! written after the last checkpoint are simply fetched again. A partial
//! becomes a blob (`data/<hash>`) only when every group is listed. When a
//! transfer resumes, the groups listed are verified again from disk
//! (through the stored tree, against the hash) before they are trusted: a
//! partial damaged on disk starts over rather than publish a wrong byte.
//!
//! State file (all integers big-endian):
//!
//! ```text
//! "ALPPART1" [8] || size u64 || owner [32] || count u32
//!   || count × (first group u64, end group u64)   sorted, disjoint
//!   || BLAKE3 of everything before [32]
//! ```
//!
//! One writer per partial. A transfer that finds the partial held asks
//! the holder to let go (it writes `yield`) and waits for the lock. The
//! holder looks every [`TAKEOVER_POLL`]: if its own peer has sent nothing
//! for [`STALE_AFTER`] (a sender killed, a network gone: the common case of
//! a re-run), or the request is forced (`alp blob rm`), it stops where it
//! is (every group it wrote verified), checkpoints and releases the lock,
//! and the newcomer resumes from there. So re-running an interrupted
//! transfer resumes at once, even while the old one would wait on a peer
//! that is gone until its idle timeout; two live transfers of one blob
//! never write it together, and neither stops the other. If the holder
//! does not let go within [`TAKEOVER_WAIT`] (it is live, and still
//! receiving), the newcomer gets a private, non-resumable partial in
//! `tmp/`, so it still works; if the holder completed the blob meanwhile,
//! the newcomer finds it stored.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use super::{BlobInfo, OwnerLimits, Store, StoreError, Usage, io_at};
use crate::BlobHash;
use crate::tree::{self, GROUP_SIZE, PARENT_SIZE};

/// Bytes written between two automatic checkpoints: at most this much
/// verified work is fetched again after a crash.
pub const CHECKPOINT_BYTES: u64 = 8 * 1024 * 1024;
/// How long a transfer waits for the holder of a partial to let go, unless
/// the store says otherwise ([`Store::with_takeover_wait`]).
pub const TAKEOVER_WAIT: Duration = Duration::from_secs(10);
/// How often a holder should look whether another transfer waits
/// ([`TakeoverProbe::requested`]).
pub const TAKEOVER_POLL: Duration = Duration::from_millis(100);
/// A holder whose peer has been silent this long lets a waiting transfer
/// take over (a live sender on a working path is never this quiet).
pub const STALE_AFTER: Duration = Duration::from_secs(1);
/// Most ranges a state file may list (far above what transfers create).
const MAX_RANGES: usize = 1 << 16;
const MAGIC: &[u8; 8] = b"ALPPART1";

/// Sorted, disjoint, non-adjacent half-open ranges of group indices.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ranges(Vec<(u64, u64)>);

impl Ranges {
    /// The ranges, sorted.
    pub fn as_slice(&self) -> &[(u64, u64)] {
        &self.0
    }

    /// Adds `[a, b)`.
    pub fn insert(&mut self, a: u64, b: u64) {
        if a >= b {
            return;
        }
        // Fast path: appending at the end, as sequential transfers do.
        if let Some(last) = self.0.last_mut()
            && last.1 >= a
            && last.0 <= a
        {
            last.1 = last.1.max(b);
            return;
        }
        self.0.push((a, b));
        self.0.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::with_capacity(self.0.len());
        for &(s, e) in &self.0 {
            match merged.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        self.0 = merged;
    }

    /// Every range of `other` added.
    pub fn extend(&mut self, other: &Ranges) {
        for &(a, b) in &other.0 {
            self.insert(a, b);
        }
    }

    /// Whether `[a, b)` is covered entirely.
    pub fn contains(&self, a: u64, b: u64) -> bool {
        a >= b || self.0.iter().any(|&(s, e)| s <= a && b <= e)
    }

    /// The parts of `[a, b)` not covered.
    pub fn gaps(&self, a: u64, b: u64) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        let mut at = a;
        for &(s, e) in &self.0 {
            if e <= at {
                continue;
            }
            if s >= b {
                break;
            }
            if s > at {
                out.push((at, s.min(b)));
            }
            at = at.max(e);
            if at >= b {
                break;
            }
        }
        if at < b {
            out.push((at, b));
        }
        out
    }

    /// Groups covered.
    pub fn count(&self) -> u64 {
        self.0.iter().map(|&(a, b)| b - a).sum()
    }
}

/// What a partial blob holds, read from its state file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartialInfo {
    /// The blob.
    pub hash: BlobHash,
    /// Its size.
    pub size: u64,
    /// Groups verified and durable.
    pub have: Ranges,
    /// Who started it: a peer's node id for blobs pushed to us, zeros for
    /// blobs we fetch.
    pub owner: [u8; 32],
    /// Last checkpoint.
    pub modified: SystemTime,
}

impl PartialInfo {
    /// Bytes verified and durable.
    pub fn have_bytes(&self) -> u64 {
        group_bytes(&self.have, self.size)
    }
}

/// Bytes of the blob of `size` covered by the group ranges `r`.
fn group_bytes(r: &Ranges, size: u64) -> u64 {
    r.as_slice().iter().map(|&(a, b)| (b * GROUP_SIZE).min(size).saturating_sub(a * GROUP_SIZE)).sum()
}

#[doc(hidden)]
pub fn encode_state(size: u64, owner: &[u8; 32], have: &Ranges) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + 8 + 32 + 4 + have.0.len() * 16 + 32);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&size.to_be_bytes());
    out.extend_from_slice(owner);
    out.extend_from_slice(&u32::try_from(have.0.len()).unwrap_or(u32::MAX).to_be_bytes());
    for &(a, b) in &have.0 {
        out.extend_from_slice(&a.to_be_bytes());
        out.extend_from_slice(&b.to_be_bytes());
    }
    let sum = blake3::hash(&out);
    out.extend_from_slice(sum.as_bytes());
    out
}

/// Parses a state file, checking everything: a damaged or foreign file is
/// `None` (the partial then starts over). Public for the fuzz target.
#[doc(hidden)]
pub fn decode_state(bytes: &[u8]) -> Option<(u64, [u8; 32], Ranges)> {
    let (body, sum) = bytes.split_at_checked(bytes.len().checked_sub(32)?)?;
    if blake3::hash(body).as_bytes() != sum || body.get(..8)? != MAGIC {
        return None;
    }
    let u64_at = |at: usize| body.get(at..at + 8).and_then(|b| b.try_into().ok()).map(u64::from_be_bytes);
    let size = u64_at(8)?;
    let owner: [u8; 32] = body.get(16..48)?.try_into().ok()?;
    let count = u32::from_be_bytes(body.get(48..52)?.try_into().ok()?) as usize;
    if count > MAX_RANGES || body.len() != 52 + count * 16 {
        return None;
    }
    let n = tree::groups(size);
    let mut have = Vec::with_capacity(count);
    let mut prev_end = None;
    for i in 0..count {
        let (a, b) = (u64_at(52 + i * 16)?, u64_at(60 + i * 16)?);
        if a >= b || b > n || prev_end.is_some_and(|p| a <= p) {
            return None;
        }
        prev_end = Some(b);
        have.push((a, b));
    }
    Some((size, owner, Ranges(have)))
}

/// A blob being received: verified groups and parents go to disk at their
/// offsets; [`Partial::checkpoint`] makes them durable; [`Partial::publish`]
/// turns a complete partial into a blob.
#[derive(Debug)]
pub struct Partial {
    hash: BlobHash,
    size: u64,
    owner: [u8; 32],
    data: File,
    obao: File,
    /// Durable partials: their directory and the lock they hold.
    durable: Option<(PathBuf, File)>,
    /// Private partials: their temp files, removed when dropped.
    temp: Option<(tempfile::TempPath, tempfile::TempPath)>,
    /// Groups verified and written.
    written: Ranges,
    /// Groups listed in the state file.
    synced: Ranges,
    /// Bytes written since the last checkpoint started.
    unsynced_bytes: u64,
    /// A checkpoint running on its own thread, and what it records.
    background: Option<(std::thread::JoinHandle<Result<(), StoreError>>, Ranges)>,
    /// A private partial whose bytes are reserved in the totals until it
    /// is published or dropped.
    charged: bool,
    store: Store,
}

impl Drop for Partial {
    fn drop(&mut self) {
        // Never release the lock while a checkpoint still writes.
        if let Some((handle, _)) = self.background.take() {
            let _ = handle.join();
        }
        if self.charged {
            let (owner, size) = (self.owner, self.size);
            let _ = self.store.change_usage(|u| {
                u.remove_partial(owner, size);
                Ok(())
            });
        }
    }
}

impl Store {
    pub(crate) fn partial_dir(&self, hash: &BlobHash) -> PathBuf {
        self.root.join("partial").join(hash.to_string())
    }

    /// What the partial blob `hash` holds, if there is one (read without
    /// taking its lock: a writer may be adding to it).
    pub fn partial_info(&self, hash: &BlobHash) -> Result<Option<PartialInfo>, StoreError> {
        let path = self.partial_dir(hash).join("state");
        let (bytes, meta) = match std::fs::read(&path).and_then(|b| Ok((b, std::fs::metadata(&path)?))) {
            Ok(x) => x,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StoreError::Io { path, source: e }),
        };
        let Some((size, owner, have)) = decode_state(&bytes) else { return Ok(None) };
        let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        Ok(Some(PartialInfo { hash: *hash, size, have, owner, modified }))
    }

    /// Whether a transfer is writing the partial blob `hash` right now.
    pub fn partial_active(&self, hash: &BlobHash) -> bool {
        let Ok(lock) = File::open(self.partial_dir(hash).join("lock")) else { return false };
        // A shared lock for an instant: it fails only while a writer holds
        // the exclusive one.
        matches!(lock.try_lock_shared(), Err(std::fs::TryLockError::WouldBlock))
    }

    /// Every partial blob with a readable state, sorted by hash.
    pub fn partials(&self) -> Result<Vec<PartialInfo>, StoreError> {
        let mut out = Vec::new();
        for (hash, _) in self.named_entries("partial")? {
            if let Some(info) = self.partial_info(&hash)? {
                out.push(info);
            }
        }
        out.sort_by_key(|p| p.hash);
        Ok(out)
    }

    /// Opens the partial blob `hash` of `size` bytes for writing, resuming
    /// what an earlier transfer verified. `owner` is recorded for a new
    /// partial (see [`PartialInfo::owner`]). If another process or task is
    /// writing it right now, the result is a private partial that starts
    /// empty and is not kept after a failure.
    pub fn partial(&self, hash: BlobHash, size: u64, owner: [u8; 32]) -> Result<Partial, StoreError> {
        self.partial_within(hash, size, owner, OwnerLimits::NONE)
    }

    /// [`Store::partial`], with `owner` held to `limits` as well as the
    /// store to its quota. Checking and reserving the bytes is one step
    /// (under the usage lock), so concurrent transfers cannot overrun a
    /// quota together; resuming a partial is not a new blob. A size that no
    /// blob of this hash can have is refused (0 bytes, unless it is the
    /// empty blob's hash), and so is a different size for a partial that
    /// holds verified groups. (Groups verify only under a size whose tree has
    /// them at their place; the last group pins the size exactly, earlier
    /// ones may verify under a few neighbouring sizes, so a sender can bind
    /// a partial it starts to a wrong size: `alp blob rm` clears it.)
    pub fn partial_within(
        &self,
        hash: BlobHash,
        size: u64,
        owner: [u8; 32],
        limits: OwnerLimits,
    ) -> Result<Partial, StoreError> {
        if size == 0 && hash != BlobHash::of(&[]) {
            return Err(StoreError::WrongSize { hash, size });
        }
        let kept = self.partial_info(&hash)?.filter(|i| i.size == size).map_or(0, |i| i.have_bytes());
        self.check_disk(size - kept.min(size))?;
        // The lock first: under it, the state file says who counted what.
        let Some((dir, lock)) = self.lock_partial(&hash, Some((self.takeover_wait, Takeover::IfStale)))? else {
            return self.open_private_charged(hash, size, owner, limits);
        };
        if self.data_path(&hash).exists() {
            // Completed while we waited (or a crash left the partial beside
            // the blob): nothing to resume, and no partial to keep; this
            // transfer is received like any other.
            let left = self.partial_info(&hash)?;
            remove_partial_dir(&dir);
            drop(lock);
            self.uncount(left.as_ref())?;
            return self.open_private_charged(hash, size, owner, limits);
        }
        let mut reserved = false;
        self.change_usage(|u| match self.partial_info(&hash)? {
            Some(info) if info.size == size => Ok(()),
            Some(info) if info.have.count() > 0 => Err(StoreError::SizeMismatch { hash, size: info.size }),
            earlier => {
                if let Some(info) = &earlier {
                    u.remove_partial(info.owner, info.size);
                }
                reserved = true;
                self.reserve_partial(u, owner, size, limits)
            }
        })?;
        let opened = self.open_durable(hash, size, owner, dir, lock);
        if reserved && opened.is_err() {
            self.change_usage(|u| {
                u.remove_partial(owner, size);
                Ok(())
            })?;
        }
        opened
    }

    /// Checks `owner`'s limits and the quota, and counts a partial of
    /// `size` bytes for `owner` in `u`.
    fn reserve_partial(
        &self,
        u: &mut Usage,
        owner: [u8; 32],
        size: u64,
        limits: OwnerLimits,
    ) -> Result<(), StoreError> {
        u.check(size, self.quota, &owner, limits)?;
        u.add_partial(owner, size);
        Ok(())
    }

    /// A private partial (another transfer holds the durable one), its
    /// bytes reserved against `owner`'s limits and the store's quota for
    /// as long as it lives: concurrent pushes of one blob cannot go past
    /// a quota by each writing a private copy.
    fn open_private_charged(
        &self,
        hash: BlobHash,
        size: u64,
        owner: [u8; 32],
        limits: OwnerLimits,
    ) -> Result<Partial, StoreError> {
        self.change_usage(|u| self.reserve_partial(u, owner, size, limits))?;
        match self.open_private(hash, size, owner) {
            Ok(mut p) => {
                p.charged = true;
                Ok(p)
            }
            Err(e) => {
                self.change_usage(|u| {
                    u.remove_partial(owner, size);
                    Ok(())
                })?;
                Err(e)
            }
        }
    }

    /// Takes the partial's lock, or `None` if someone holds it. With
    /// `wait`, asks the holder to let go (see the module's notes; `force`:
    /// even if it is still receiving) and waits up to that long for it.
    fn lock_partial(
        &self,
        hash: &BlobHash,
        wait: Option<(Duration, Takeover)>,
    ) -> Result<Option<(PathBuf, File)>, StoreError> {
        let dir = self.partial_dir(hash);
        // One waiter per blob in this process; any other gives up at once
        // (and receives into a private copy, or is refused).
        let waiting =
            wait.is_some() && self.waiting.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(*hash);
        let _done = Waiting { store: self, hash: *hash, active: waiting };
        let wait = wait.filter(|_| waiting);
        let deadline = wait.map(|(w, _)| std::time::Instant::now() + w);
        // One file per kind of request, so that neither clobbers the other.
        let request = match wait {
            Some((_, Takeover::Force)) => dir.join("yield.force"),
            _ => dir.join("yield"),
        };
        let mut asked = false;
        // A publisher may remove the directory between our open and our
        // lock: retry until the lock we hold is the one in the directory.
        let mut races = 0;
        let held = loop {
            std::fs::create_dir_all(&dir).map_err(io_at(&dir))?;
            let path = dir.join("lock");
            let lock = match OpenOptions::new().create(true).truncate(false).write(true).mode(0o600).open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound && races < 8 => {
                    races += 1;
                    continue;
                }
                Err(e) => return Err(StoreError::Io { path, source: e }),
            };
            match lock.try_lock() {
                Ok(()) => {}
                Err(std::fs::TryLockError::WouldBlock) => {
                    match deadline {
                        Some(d) if std::time::Instant::now() < d => {}
                        _ => break None,
                    }
                    // (Again each time: a holder that took over from us
                    // removed our request.)
                    asked |=
                        OpenOptions::new().create(true).truncate(false).write(true).mode(0o600).open(&request).is_ok();
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(StoreError::Io { path, source: e }),
            }
            let held = lock.metadata().map_err(io_at(&path))?;
            match std::fs::metadata(&path) {
                Ok(m) if m.ino() == held.ino() && m.dev() == held.dev() => break Some((dir.clone(), lock)),
                _ if races < 8 => races += 1,
                _ => break None,
            }
        };
        // A request is answered once someone holds the lock: ours, or a
        // stale one left by a transfer that died waiting.
        if held.is_some() {
            let _ = std::fs::remove_file(dir.join("yield"));
            let _ = std::fs::remove_file(dir.join("yield.force"));
        } else if asked {
            let _ = std::fs::remove_file(&request);
        }
        Ok(held)
    }

    fn open_durable(
        &self,
        hash: BlobHash,
        size: u64,
        owner: [u8; 32],
        dir: PathBuf,
        lock: File,
    ) -> Result<Partial, StoreError> {
        let (mut synced, mut owner_kept) = (Ranges::default(), owner);
        if let Some(info) = self.partial_info(&hash)?
            && info.size == size
        {
            synced = info.have;
            owner_kept = info.owner;
        }
        let open = |name: &str| {
            let path = dir.join(name);
            OpenOptions::new()
                .create(true)
                .truncate(false)
                .read(true)
                .write(true)
                .mode(0o600)
                .open(&path)
                .map_err(io_at(&path))
        };
        let (data, obao) = (open("data")?, open("obao")?);
        if synced.count() > 0 && !kept_groups_verify(&hash, size, &synced, &data, &obao) {
            // The disk no longer holds what was verified: start over.
            synced = Ranges::default();
        }
        if synced.count() == 0 {
            // Nothing usable: whatever is there is from another size or a
            // damaged state file.
            data.set_len(0).map_err(io_at(&dir))?;
            obao.set_len(0).map_err(io_at(&dir))?;
        }
        data.set_len(size).map_err(io_at(&dir))?;
        let partial = Partial {
            hash,
            size,
            owner: owner_kept,
            data,
            obao,
            durable: Some((dir, lock)),
            temp: None,
            written: synced.clone(),
            synced,
            unsynced_bytes: 0,
            background: None,
            charged: false,
            store: self.clone(),
        };
        if partial.synced.count() == 0 {
            // Record the owner at once, so quotas see the partial.
            write_state(&self.clone(), &partial.dir_or_tmp(), &encode_state(size, &partial.owner, &partial.synced))?;
        }
        Ok(partial)
    }

    fn open_private(&self, hash: BlobHash, size: u64, owner: [u8; 32]) -> Result<Partial, StoreError> {
        let (data, obao) = (self.temp()?, self.temp()?);
        data.as_file().set_len(size).map_err(io_at(data.path()))?;
        let (data, data_path) = data.into_parts();
        let (obao, obao_path) = obao.into_parts();
        Ok(Partial {
            hash,
            size,
            owner,
            data,
            obao,
            durable: None,
            temp: Some((data_path, obao_path)),
            written: Ranges::default(),
            synced: Ranges::default(),
            unsynced_bytes: 0,
            background: None,
            charged: false,
            store: self.clone(),
        })
    }

    /// Removes the partial blob `hash`; false if there was none. A
    /// transfer writing it is asked to stop first; refused if it does not
    /// in time ([`TAKEOVER_WAIT`]).
    pub fn remove_partial(&self, hash: &BlobHash) -> Result<bool, StoreError> {
        let dir = self.partial_dir(hash);
        if !dir.exists() {
            return Ok(false);
        }
        let Some((dir, lock)) = self.lock_partial(hash, Some((self.takeover_wait, Takeover::Force)))? else {
            return Err(StoreError::Busy(*hash));
        };
        let info = self.partial_info(hash)?;
        remove_partial_dir(&dir);
        drop(lock);
        self.uncount(info.as_ref())?;
        Ok(true)
    }

    /// Takes a removed partial out of the totals (one without a readable
    /// state was never counted).
    fn uncount(&self, info: Option<&PartialInfo>) -> Result<(), StoreError> {
        let Some(info) = info else { return Ok(()) };
        self.change_usage(|u| {
            u.remove_partial(info.owner, info.size);
            Ok(())
        })?;
        Ok(())
    }

    /// Removes partial blobs not written to for `max_age`, and leftover
    /// temp files as old. Partials being written are left alone. Returns
    /// the partials removed and the bytes they held.
    pub fn gc(&self, max_age: Duration) -> Result<Vec<PartialInfo>, StoreError> {
        let now = SystemTime::now();
        let old = |t: SystemTime| now.duration_since(t).is_ok_and(|age| age >= max_age);
        let mut removed = Vec::new();
        for (hash, entry) in self.named_entries("partial")? {
            let info = self.partial_info(&hash)?;
            let modified = match &info {
                Some(i) => i.modified,
                // No readable state: judge by the directory's age.
                None => entry.metadata().and_then(|m| m.modified()).unwrap_or(now),
            };
            if !old(modified) {
                continue;
            }
            let Some((pdir, lock)) = self.lock_partial(&hash, None)? else { continue };
            remove_partial_dir(&pdir);
            drop(lock);
            self.uncount(info.as_ref())?;
            removed.push(info.unwrap_or(PartialInfo {
                hash,
                size: 0,
                have: Ranges::default(),
                owner: [0; 32],
                modified,
            }));
        }
        let tmp = self.root.join("tmp");
        for entry in std::fs::read_dir(&tmp).map_err(io_at(&tmp))?.flatten() {
            if entry.metadata().and_then(|m| m.modified()).is_ok_and(old) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        Ok(removed)
    }
}

/// Whether the groups a state file lists still verify from disk.
fn kept_groups_verify(hash: &BlobHash, size: u64, kept: &Ranges, data: &File, obao: &File) -> bool {
    kept.as_slice().iter().all(|&range| super::verify_from_disk(hash, size, range, data, Some(obao)).is_ok())
}

/// Replaces `dir/state` with `bytes` atomically and durably.
fn write_state(store: &Store, dir: &std::path::Path, bytes: &[u8]) -> Result<(), StoreError> {
    let mut tmp = store.temp()?;
    tmp.write_all(bytes).map_err(io_at(tmp.path()))?;
    tmp.as_file().sync_all().map_err(io_at(tmp.path()))?;
    let path = dir.join("state");
    tmp.persist(&path).map_err(|e| StoreError::Io { path: path.clone(), source: e.error })?;
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_at(dir))
}

fn remove_partial_dir(dir: &std::path::Path) {
    for name in ["state", "data", "obao", "yield", "yield.force", "lock"] {
        let _ = std::fs::remove_file(dir.join(name));
    }
    let _ = std::fs::remove_dir(dir);
}

/// Ends a transfer's wait for a partial (see [`Store::lock_partial`]).
struct Waiting<'a> {
    store: &'a Store,
    hash: BlobHash,
    active: bool,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if self.active {
            self.store.waiting.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&self.hash);
        }
    }
}

/// How a waiting transfer asks the holder of a partial to let go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Takeover {
    /// Only once the holder's peer has gone quiet ([`STALE_AFTER`]).
    IfStale,
    /// At once (the user removes the partial).
    Force,
}

/// Tells the transfer writing a partial whether another one waits to take
/// it over: it should then stop, checkpoint and drop the partial (at once
/// if forced; if not, once its own peer has been silent [`STALE_AFTER`]).
/// Cheap to clone and to ask (one small read); ask every
/// [`TAKEOVER_POLL`] or so.
#[derive(Debug, Clone)]
pub struct TakeoverProbe(Option<PathBuf>);

impl TakeoverProbe {
    /// Whether, and how, another transfer waits for this partial (never,
    /// for a private one).
    pub fn requested(&self) -> Option<Takeover> {
        let dir = self.0.as_ref()?;
        if dir.join("yield.force").exists() {
            Some(Takeover::Force)
        } else if dir.join("yield").exists() {
            Some(Takeover::IfStale)
        } else {
            None
        }
    }

    /// Whether a holder whose peer was last heard from `silent` ago
    /// should let go now.
    pub fn should_yield(&self, silent: Duration) -> bool {
        match self.requested() {
            Some(Takeover::Force) => true,
            Some(Takeover::IfStale) => silent >= STALE_AFTER,
            None => false,
        }
    }
}

impl Partial {
    /// The blob.
    pub fn hash(&self) -> BlobHash {
        self.hash
    }

    /// What to ask, while writing this partial, whether another transfer
    /// waits to take it over.
    pub fn takeover_probe(&self) -> TakeoverProbe {
        TakeoverProbe(self.durable.as_ref().map(|(dir, _)| dir.clone()))
    }

    /// Its size.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Whether it survives a failure (false for a private partial).
    pub fn is_durable(&self) -> bool {
        self.durable.is_some()
    }

    /// Groups verified and written (durable or not yet).
    pub fn have(&self) -> Ranges {
        self.written.clone()
    }

    fn dir_or_tmp(&self) -> PathBuf {
        match &self.durable {
            Some((dir, _)) => dir.clone(),
            None => self.store.root.join("tmp"),
        }
    }

    /// Bytes verified and written.
    pub fn have_bytes(&self) -> u64 {
        group_bytes(&self.have(), self.size)
    }

    /// Groups of `[a, b)` still missing.
    pub fn missing(&self, a: u64, b: u64) -> Vec<(u64, u64)> {
        self.have().gaps(a, b)
    }

    /// Whether every group is here.
    pub fn is_complete(&self) -> bool {
        self.have().contains(0, tree::groups(self.size))
    }

    fn data_label(&self) -> PathBuf {
        match (&self.durable, &self.temp) {
            (Some((dir, _)), _) => dir.join("data"),
            (None, Some((data, _))) => data.to_path_buf(),
            (None, None) => PathBuf::from("partial"),
        }
    }

    /// Writes consecutive groups from `first` in one write (all but the
    /// blob's last group are whole); each must have verified.
    /// Checkpoints every [`CHECKPOINT_BYTES`].
    pub fn write_groups(&mut self, first: u64, bytes: &[u8]) -> Result<(), StoreError> {
        self.data
            .write_all_at(bytes, first * GROUP_SIZE)
            .map_err(|e| StoreError::Io { path: self.data_label(), source: e })?;
        let count = (bytes.len() as u64).div_ceil(GROUP_SIZE).max(1);
        self.written.insert(first, first + count);
        self.unsynced_bytes += bytes.len() as u64;
        if self.unsynced_bytes >= CHECKPOINT_BYTES {
            self.checkpoint_in_background()?;
        }
        Ok(())
    }

    /// Writes verified parent nodes at consecutive slots from `first`
    /// (64 bytes each) in one write.
    pub fn write_parents(&mut self, first: u64, pairs: &[u8]) -> Result<(), StoreError> {
        self.obao
            .write_all_at(pairs, first * PARENT_SIZE)
            .map_err(|e| StoreError::Io { path: self.data_label(), source: e })
    }

    /// Reads `buf.len()` bytes at `offset`, which must lie in groups
    /// already written.
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<(), StoreError> {
        let (a, b) = (offset / GROUP_SIZE, (offset + buf.len() as u64).div_ceil(GROUP_SIZE));
        if !self.have().contains(a, b) {
            return Err(StoreError::Damaged { hash: self.hash, what: format!("bytes from {offset} are not here yet") });
        }
        self.data.read_exact_at(buf, offset).map_err(|e| StoreError::Io { path: self.data_label(), source: e })
    }

    /// Makes every group written so far durable: fsyncs the bytes and the
    /// tree, then records them in the state file. Waits for it.
    pub fn checkpoint(&mut self) -> Result<(), StoreError> {
        self.unsynced_bytes = 0;
        let earlier = self.join_background();
        if self.durable.is_none() || self.written == self.synced {
            return earlier;
        }
        let snapshot = self.written.clone();
        let job = self.checkpoint_job(&snapshot)?;
        job()?;
        self.synced = snapshot;
        earlier
    }

    /// Starts a checkpoint on its own thread and returns at once (skipped
    /// while the previous one still runs), for a writer that must not wait
    /// for the disk; [`Partial::checkpoint`] or dropping the partial waits
    /// for it. Reports the previous one's failure.
    pub fn checkpoint_soon(&mut self) -> Result<(), StoreError> {
        self.checkpoint_in_background()
    }

    /// Starts a checkpoint on its own thread, so writing goes on while the
    /// disk catches up; skipped while the previous one still runs. Reports
    /// the previous one's failure.
    fn checkpoint_in_background(&mut self) -> Result<(), StoreError> {
        if self.durable.is_none() {
            self.unsynced_bytes = 0;
            return Ok(());
        }
        if self.background.as_ref().is_some_and(|(h, _)| !h.is_finished()) {
            return Ok(());
        }
        self.join_background()?;
        self.unsynced_bytes = 0;
        let snapshot = self.written.clone();
        let job = self.checkpoint_job(&snapshot)?;
        let handle = std::thread::Builder::new()
            .name("alp-checkpoint".into())
            .spawn(job)
            .map_err(|e| StoreError::Io { path: self.data_label(), source: e })?;
        self.background = Some((handle, snapshot));
        Ok(())
    }

    /// Waits for the background checkpoint, if any; what it recorded is
    /// then durable.
    fn join_background(&mut self) -> Result<(), StoreError> {
        let Some((handle, snapshot)) = self.background.take() else { return Ok(()) };
        match handle.join() {
            Ok(Ok(())) => {
                self.synced = snapshot;
                Ok(())
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(StoreError::Io { path: self.data_label(), source: io::Error::other("checkpoint panicked") }),
        }
    }

    /// The work of one checkpoint recording `snapshot`: fsync the bytes
    /// and the tree (through their own handles), then replace the state.
    fn checkpoint_job(
        &self,
        snapshot: &Ranges,
    ) -> Result<impl FnOnce() -> Result<(), StoreError> + Send + 'static, StoreError> {
        let label = self.data_label();
        let data = self.data.try_clone().map_err(io_at(&label))?;
        let obao = self.obao.try_clone().map_err(io_at(&label))?;
        let (store, dir) = (self.store.clone(), self.dir_or_tmp());
        let state = encode_state(self.size, &self.owner, snapshot);
        Ok(move || {
            data.sync_data().map_err(io_at(&label))?;
            obao.sync_data().map_err(io_at(&label))?;
            write_state(&store, &dir, &state)
        })
    }

    /// Moves this partial's bytes in the totals: out of partial blobs (a
    /// durable one was counted when it was opened), and into complete
    /// blobs if publishing made a new one.
    fn recount(&mut self, new_blob: bool) -> Result<(), StoreError> {
        let (owner, size, counted) = (self.owner, self.size, self.durable.is_some() || self.charged);
        // Moved to the blob (or dropped) here, not again when dropped.
        self.charged = false;
        self.store.change_usage(|u| {
            if counted {
                u.remove_partial(owner, size);
            }
            if new_blob {
                u.add_blob(owner, size);
            }
            Ok(())
        })?;
        Ok(())
    }

    /// Turns the complete partial into a blob. Fails (keeping what is
    /// there, checkpointed) if any group is missing.
    pub fn publish(mut self) -> Result<BlobInfo, StoreError> {
        // No checkpoint may write into the directory once it is removed.
        self.join_background()?;
        if !self.is_complete() {
            self.checkpoint()?;
            let what = format!("only {} of {} bytes are here", self.have_bytes(), self.size);
            return Err(StoreError::Damaged { hash: self.hash, what });
        }
        let info = BlobInfo { hash: self.hash, size: self.size };
        let target = self.store.data_path(&self.hash);
        if target.exists() {
            if let Some((dir, _)) = &self.durable {
                remove_partial_dir(dir);
            }
            self.recount(false)?;
            return Ok(info);
        }
        let label = self.data_label();
        self.data.sync_all().map_err(io_at(&label))?;
        self.obao.sync_all().map_err(io_at(&label))?;
        let (data_from, obao_from) = match (&self.durable, &self.temp) {
            (Some((dir, _)), _) => (dir.join("data"), dir.join("obao")),
            (None, Some((d, o))) => (d.to_path_buf(), o.to_path_buf()),
            (None, None) => return Err(StoreError::Busy(self.hash)),
        };
        if tree::groups(self.size) > 1 {
            let to = self.store.obao_path(&self.hash);
            std::fs::rename(&obao_from, &to).map_err(io_at(&to))?;
        }
        self.store.set_owner(&self.hash, self.owner)?;
        std::fs::rename(&data_from, &target).map_err(io_at(&target))?;
        self.recount(true)?;
        let data_dir = self.store.root.join("data");
        File::open(&data_dir).and_then(|d| d.sync_all()).map_err(io_at(&data_dir))?;
        if let Some((dir, _)) = &self.durable {
            remove_partial_dir(dir);
        }
        // The temp paths were renamed away; dropping them is harmless.
        self.temp = None;
        Ok(info)
    }
}
