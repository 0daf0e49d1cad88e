//! The record a running `alp serve` leaves in its profile, so that other
//! local commands (`alp invite`, `alp pair`) can find its address.
//!
//! The record is valid only while `serve.lock` is held: a record left by a
//! killed process is recognised as stale because its lock is free.

use std::fs::{File, OpenOptions, TryLockError};
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::home::ProfilePaths;
use crate::tomlfile::{self, FileError, Versioned};

/// Where a running node listens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeRecord {
    version: u32,
    /// The bound UDP address.
    pub addr: SocketAddr,
    /// Addresses peers can use to reach it.
    pub advertised: Vec<SocketAddr>,
    /// The serving process.
    pub pid: u32,
    /// Unix seconds.
    pub started_at: u64,
}

impl Default for ServeRecord {
    fn default() -> Self {
        Self {
            version: Self::VERSION,
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            advertised: Vec::new(),
            pid: 0,
            started_at: 0,
        }
    }
}

impl Versioned for ServeRecord {
    const VERSION: u32 = 1;
    fn version(&self) -> u32 {
        self.version
    }
}

/// Starting or finding a node failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// Another `alp serve` runs on this profile.
    #[error("profile is already served by process {pid} on {addr}: stop it first, or use it")]
    AlreadyRunning {
        /// Its process.
        pid: u32,
        /// Its address.
        addr: SocketAddr,
    },
    /// The lock or record could not be accessed.
    #[error("serve record {0}")]
    File(#[from] FileError),
}

/// Held by the serving process; removes the record when dropped.
#[derive(Debug)]
pub struct ServeGuard {
    _lock: File,
    record: PathBuf,
}

impl ServeGuard {
    /// Replaces the record (the node's addresses changed); the claim
    /// stays. Atomic, like every save.
    pub fn update(&self, record: &ServeRecord) -> Result<(), FileError> {
        let record = ServeRecord { version: ServeRecord::VERSION, ..record.clone() };
        tomlfile::save(&self.record, "Written by a running `alp serve`; removed when it stops.", &record)
    }
}

impl Drop for ServeGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.record);
    }
}

fn open_lock(paths: &ProfilePaths) -> Result<File, FileError> {
    let path = paths.serve_lock();
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| FileError::Io { path, source })
}

/// Claims the profile for a serving process and records its address.
pub fn claim(paths: &ProfilePaths, record: ServeRecord) -> Result<ServeGuard, ServeError> {
    let lock = open_lock(paths)?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let other: ServeRecord = tomlfile::load(&paths.serve_record())?;
            return Err(ServeError::AlreadyRunning { pid: other.pid, addr: other.addr });
        }
        Err(TryLockError::Error(source)) => {
            return Err(FileError::Io { path: paths.serve_lock(), source }.into());
        }
    }
    let record = ServeRecord { version: ServeRecord::VERSION, ..record };
    tomlfile::save(&paths.serve_record(), "Written by a running `alp serve`; removed when it stops.", &record)?;
    Ok(ServeGuard { _lock: lock, record: paths.serve_record() })
}

/// The record of the node serving this profile, if one is running.
pub fn running(paths: &ProfilePaths) -> Result<Option<ServeRecord>, ServeError> {
    if !paths.serve_record().exists() {
        return Ok(None);
    }
    let lock = open_lock(paths)?;
    match lock.try_lock() {
        Ok(()) => Ok(None), // stale: its process is gone
        Err(TryLockError::WouldBlock) => Ok(Some(tomlfile::load(&paths.serve_record())?)),
        Err(TryLockError::Error(source)) => Err(FileError::Io { path: paths.serve_lock(), source }.into()),
    }
}

impl ServeRecord {
    /// A record for this process.
    pub fn new(addr: SocketAddr, advertised: Vec<SocketAddr>, started_at: u64) -> Self {
        Self { version: Self::VERSION, addr, advertised, pid: std::process::id(), started_at }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::home::Home;

    #[test]
    fn claim_is_exclusive_and_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Home::at(dir.path()).profile(&"p".parse().unwrap());
        std::fs::create_dir_all(paths.root()).unwrap();
        assert_eq!(running(&paths).unwrap(), None);
        let rec = ServeRecord::new("127.0.0.1:9".parse().unwrap(), vec![], 1);
        let guard = claim(&paths, rec.clone()).unwrap();
        assert_eq!(running(&paths).unwrap(), Some(rec.clone()));
        assert!(matches!(claim(&paths, rec.clone()), Err(ServeError::AlreadyRunning { .. })));
        // The node moved: the record follows, the claim stays.
        let moved = ServeRecord { advertised: vec!["192.0.2.7:9".parse().unwrap()], ..rec };
        guard.update(&moved).unwrap();
        assert_eq!(running(&paths).unwrap(), Some(moved));
        drop(guard);
        assert_eq!(running(&paths).unwrap(), None);
        assert!(!paths.serve_record().exists());
    }

    #[test]
    fn a_stale_record_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Home::at(dir.path()).profile(&"p".parse().unwrap());
        std::fs::create_dir_all(paths.root()).unwrap();
        let rec = ServeRecord::new("127.0.0.1:9".parse().unwrap(), vec![], 1);
        tomlfile::save(&paths.serve_record(), "stale", &rec).unwrap();
        assert_eq!(running(&paths).unwrap(), None);
    }
}
