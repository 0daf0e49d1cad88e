//! A workgroup's log on disk: one directory per group, named by its id,
//! holding `events` (every event this node holds, as frames, in the order
//! it took them, which is always an order the log accepts) and `evidence`
//! (pairs of equivocating events). Events are appended and synced before
//! the node acts on them; a write cut short by a crash is cut off at the
//! next start; anything else that fails to check stops the group from
//! loading and names the event (`alp wg verify`).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::event::{Event, GroupId};
use crate::log::{Equivocation, Log};
use crate::verify::{self, Problem, frames, push_frame};

/// A group directory could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// I/O on a file.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: io::Error,
    },
    /// The log does not check out.
    #[error("the workgroup log {} is damaged at {problem}; run `alp wg verify` for details", path.display())]
    Damaged {
        /// The events file.
        path: PathBuf,
        /// The first bad event.
        problem: Problem,
    },
}

fn io_err(path: &Path) -> impl Fn(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io { path: path.to_owned(), source }
}

/// One group's files, open for appending.
#[derive(Debug)]
pub struct GroupFiles {
    dir: PathBuf,
    events: File,
}

/// What opening a group found besides its log.
#[derive(Debug, Default)]
pub struct Opened {
    /// Bytes of a write cut short by a crash, cut off (and kept beside
    /// the log as `events.cut-at-OFFSET`).
    pub cut_bytes: u64,
}

impl GroupFiles {
    /// The directory of `group` under `root`.
    pub fn dir_of(root: &Path, group: GroupId) -> PathBuf {
        root.join(group.to_string())
    }

    /// Creates the files of a new group holding its first event. Fails if
    /// the group is here already.
    pub fn create(root: &Path, genesis: &Event) -> Result<(Self, Log), StoreError> {
        let log = Log::new(genesis.clone()).map_err(|e| StoreError::Io {
            path: root.to_owned(),
            source: io::Error::new(io::ErrorKind::InvalidInput, e.to_string()),
        })?;
        let dir = Self::dir_of(root, log.group());
        fs::create_dir_all(root).map_err(io_err(root))?;
        private_dir(root)?;
        // A temp directory renamed into place: a group is all there or absent.
        let tmp = tempfile::Builder::new().prefix(".new-").tempdir_in(root).map_err(io_err(root))?;
        let path = tmp.path().join("events");
        let mut bytes = Vec::new();
        push_frame(&mut bytes, genesis.bytes());
        let mut f = File::create(&path).map_err(io_err(&path))?;
        f.write_all(&bytes).and_then(|()| f.sync_all()).map_err(io_err(&path))?;
        private_dir(tmp.path())?;
        sync_dir(tmp.path())?;
        fs::rename(tmp.keep(), &dir).map_err(io_err(&dir))?;
        sync_dir(root)?;
        let events = OpenOptions::new().append(true).open(dir.join("events")).map_err(io_err(&dir))?;
        Ok((Self { dir, events }, log))
    }

    /// Opens a group's files and rebuilds its log, checking every event.
    pub fn open(dir: &Path) -> Result<(Self, Log, Opened), StoreError> {
        let path = dir.join("events");
        let bytes = fs::read(&path).map_err(io_err(&path))?;
        let mut opened = Opened::default();
        let good = good_prefix(&bytes);
        if good < bytes.len() as u64 {
            // The last write was cut short (a crash mid-append). Its bytes
            // are set aside, not lost, in case they were something else.
            opened.cut_bytes = bytes.len() as u64 - good;
            let aside = dir.join(format!("events.cut-at-{good}"));
            fs::write(&aside, &bytes[good as usize..]).map_err(io_err(&aside))?;
            let f = OpenOptions::new().write(true).open(&path).map_err(io_err(&path))?;
            f.set_len(good).and_then(|()| f.sync_all()).map_err(io_err(&path))?;
        }
        let report = verify::verify(&bytes[..good as usize]);
        let mut log = match (report.log, report.problem) {
            (Some(log), None) => log,
            (_, Some(problem)) => return Err(StoreError::Damaged { path, problem }),
            (None, None) => {
                let problem = Problem { index: 1, offset: 0, id: None, what: "the log is empty".into() };
                return Err(StoreError::Damaged { path, problem });
            }
        };
        for (a, b) in read_evidence(dir)? {
            log.add_evidence(a, b);
        }
        let events = OpenOptions::new().append(true).open(&path).map_err(io_err(&path))?;
        Ok((Self { dir: dir.to_owned(), events }, log, opened))
    }

    /// Appends events (already taken by the log) and syncs them to disk.
    pub fn append(&mut self, events: &[Event]) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let mut bytes = Vec::with_capacity(events.iter().map(|e| e.bytes().len() + 4).sum());
        for e in events {
            push_frame(&mut bytes, e.bytes());
        }
        let path = self.dir.join("events");
        self.events.write_all(&bytes).and_then(|()| self.events.sync_data()).map_err(io_err(&path))
    }

    /// Appends a piece of equivocation evidence.
    pub fn append_evidence(&mut self, e: &Equivocation) -> Result<(), StoreError> {
        let path = self.dir.join("evidence");
        let mut bytes = Vec::new();
        push_frame(&mut bytes, e.kept.bytes());
        push_frame(&mut bytes, e.other.bytes());
        let mut f = OpenOptions::new().create(true).append(true).open(&path).map_err(io_err(&path))?;
        f.write_all(&bytes).and_then(|()| f.sync_data()).map_err(io_err(&path))
    }

    /// The group's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// The evidence file's pairs (a damaged tail is ignored: evidence is only
/// ever added, and each pair proves itself).
pub fn read_evidence(dir: &Path) -> Result<Vec<(Event, Event)>, StoreError> {
    let path = dir.join("evidence");
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(StoreError::Io { path, source: e }),
    };
    let events: Vec<Event> = frames(&bytes).map_while(Result::ok).filter_map(|(_, f)| Event::decode(f).ok()).collect();
    Ok(events.chunks_exact(2).map(|p| (p[0].clone(), p[1].clone())).collect())
}

/// The group directories under `root`.
pub fn list(root: &Path) -> Result<Vec<PathBuf>, StoreError> {
    let entries = match fs::read_dir(root) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(StoreError::Io { path: root.to_owned(), source: e }),
    };
    let mut out: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.join("events").is_file())
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.parse::<GroupId>().is_ok()))
        .collect();
    out.sort();
    Ok(out)
}

/// Bytes of whole frames at the start of `bytes`.
fn good_prefix(bytes: &[u8]) -> u64 {
    let mut good = 0;
    for frame in frames(bytes) {
        match frame {
            Ok((offset, f)) => good = offset + 4 + f.len() as u64,
            Err(_) => break,
        }
    }
    good
}

fn private_dir(dir: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io_err(dir))
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_err(dir))
}

#[cfg(test)]
mod tests;
