//! Everything an alp profile owns on disk: its directory layout, its ed25519
//! identity, its layered configuration and its list of trusted peers.
//!
//! A *home* holds many profiles (`HOME/profiles/NAME/`); each profile is one
//! node with its own identity. All paths come from [`ProfilePaths`]. Every
//! write is atomic (temp file in the same directory, fsync, rename) and every
//! read-modify-write happens under the profile's lock, so concurrent `alp`
//! processes never corrupt a file. A file that fails to parse is reported with
//! its path and never silently reset.
//!
//! This crate does no networking and knows nothing of the CLI; errors are
//! typed per operation and carry what the user should do next.
//!
//! Key types: [`Home`], [`ProfileName`], [`Profile`], [`Identity`],
//! [`config::Resolved`], [`peers::PeerStore`].
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod config;
mod fsutil;
mod home;
mod identity;
pub mod mcp;
mod name;
pub mod peers;
mod profile;
pub mod serve;
pub mod shares;
pub mod suggest;
pub mod tickets;
mod tomlfile;

pub use fsutil::{LockError, ProfileLock, write_atomic};
pub use home::{Home, HomeError, ProfilePaths};
pub use identity::{Identity, IdentityError};
pub use name::{Name, NameError, ProfileName};
pub use profile::{InitReport, Profile, ProfileError};
pub use tomlfile::FileError;
pub use tomlfile::{hex, unhex};

/// Seconds since the Unix epoch, as stored in profile files.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Formats a stored Unix time for people (RFC 3339, UTC, seconds).
pub fn format_time(unix_secs: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix_secs);
    humantime::format_rfc3339_seconds(t).to_string()
}
