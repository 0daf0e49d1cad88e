//! A profile's ed25519 identity key, stored 0600 and never overwritten.

use std::fmt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use alp_protocol::NodeId;
use ed25519_dalek::SigningKey;
use zeroize::Zeroizing;

use crate::fsutil::create_atomic;
use crate::tomlfile::{hex, unhex};

const HEADER: &str = "# alp identity key v1: ed25519 secret seed, hex. Keep this file secret.";

/// A node's identity: its ed25519 signing key. Debug output never shows
/// the secret.
pub struct Identity {
    key: SigningKey,
}

/// The identity key could not be created or loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// The key file does not exist.
    #[error("no identity key at {0}: create the profile with `alp init`")]
    Missing(PathBuf),
    /// The key file is readable by others.
    #[error(
        "identity key {path} is readable by other users (mode {mode:o}): run `chmod 600 {path}` and retry",
        path = path.display()
    )]
    TooOpen {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The key file exists but does not hold a key.
    #[error(
        "identity key {path} is corrupted ({reason}); restore it from a backup: a new key would be a new node id",
        path = path.display()
    )]
    Corrupt {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Reading or writing failed.
    #[error("cannot access identity key {path}: {source}", path = path.display())]
    Io {
        /// The key file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The operating system's random source failed.
    #[error("cannot generate a key: the system random source failed: {0}")]
    Random(getrandom::Error),
}

impl Identity {
    /// A fresh random identity.
    pub fn generate() -> Result<Self, IdentityError> {
        let mut seed = Zeroizing::new([0u8; 32]);
        getrandom::fill(seed.as_mut()).map_err(IdentityError::Random)?;
        Ok(Self { key: SigningKey::from_bytes(&seed) })
    }

    /// The public node id.
    pub fn node_id(&self) -> NodeId {
        self.key.verifying_key().into()
    }

    /// The signing key, for the handshake and receipts.
    pub fn signing_key(&self) -> &SigningKey {
        &self.key
    }

    /// Writes this identity to `path` (mode 0600) unless a key is already
    /// there. Returns `false` if one was, leaving it untouched.
    pub fn create_at(&self, path: &Path) -> Result<bool, IdentityError> {
        let text = Zeroizing::new(format!("{HEADER}\n{}\n", hex(self.key.as_bytes())));
        create_atomic(path, text.as_bytes(), 0o600)
            .map_err(|source| IdentityError::Io { path: path.to_owned(), source })
    }

    /// Loads the identity at `path`, refusing a file others can read.
    pub fn load(path: &Path) -> Result<Self, IdentityError> {
        let io = |source: std::io::Error| match source.kind() {
            std::io::ErrorKind::NotFound => IdentityError::Missing(path.to_owned()),
            _ => IdentityError::Io { path: path.to_owned(), source },
        };
        let mode = std::fs::metadata(path).map_err(io)?.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(IdentityError::TooOpen { path: path.to_owned(), mode: mode & 0o777 });
        }
        let text = Zeroizing::new(std::fs::read(path).map_err(io)?);
        let seed = parse(&text).map_err(|reason| IdentityError::Corrupt { path: path.to_owned(), reason })?;
        Ok(Self { key: SigningKey::from_bytes(&seed) })
    }
}

fn parse(text: &[u8]) -> Result<Zeroizing<[u8; 32]>, &'static str> {
    let text = std::str::from_utf8(text).map_err(|_| "not text")?;
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#'));
    let line = lines.next().ok_or("no key line")?;
    if lines.next().is_some() {
        return Err("more than one key line");
    }
    unhex::<32>(line).map(Zeroizing::new).ok_or("the key line is not 64 hex characters")
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Identity({}, SecretKey(..))", self.node_id().short())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn create_then_load_round_trips_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("identity.key");
        let id = Identity::generate().unwrap();
        assert!(id.create_at(&p).unwrap());
        assert_eq!(std::fs::metadata(&p).unwrap().mode() & 0o777, 0o600);
        assert_eq!(Identity::load(&p).unwrap().node_id(), id.node_id());
    }

    #[test]
    fn never_overwrites_an_existing_key() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("identity.key");
        let first = Identity::generate().unwrap();
        first.create_at(&p).unwrap();
        assert!(!Identity::generate().unwrap().create_at(&p).unwrap());
        assert_eq!(Identity::load(&p).unwrap().node_id(), first.node_id());
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let id = Identity::generate().unwrap();
        let dbg = format!("{id:?}");
        assert!(!dbg.contains(&hex(id.signing_key().as_bytes())));
        assert!(dbg.contains("SecretKey(..)"));
    }

    #[test]
    fn refuses_open_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("identity.key");
        Identity::generate().unwrap().create_at(&p).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(Identity::load(&p), Err(IdentityError::TooOpen { mode: 0o644, .. })));
    }

    #[test]
    fn corrupt_files_are_reported_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("identity.key");
        for bad in [&b""[..], b"# only a comment\n", b"zz", &[0xff, 0xfe], &[b'a'; 64 * 2 + 1]] {
            crate::fsutil::write_atomic(&p, bad, 0o600).unwrap();
            let err = Identity::load(&p).unwrap_err();
            assert!(matches!(err, IdentityError::Corrupt { .. }), "{err}");
            assert!(err.to_string().contains(&p.display().to_string()));
            assert_eq!(std::fs::read(&p).unwrap(), bad);
        }
    }

    #[test]
    fn missing_key_suggests_init() {
        let err = Identity::load(Path::new("/nonexistent/identity.key")).unwrap_err();
        assert!(err.to_string().contains("alp init"));
    }
}
