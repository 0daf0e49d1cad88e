//! Opening, creating and removing a profile.

use std::path::PathBuf;

use crate::config::{self, ConfigError, Layers, Override, Resolved};
use crate::fsutil::{LockError, ProfileLock, create_atomic, create_private_dir};
use crate::home::{Home, ProfilePaths};
use crate::identity::{Identity, IdentityError};
use crate::name::ProfileName;
use crate::peers::PeerStore;
use crate::tickets::TicketStore;

/// An existing profile with its identity loaded.
#[derive(Debug)]
pub struct Profile {
    name: ProfileName,
    paths: ProfilePaths,
    identity: Identity,
}

/// What `alp init` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InitReport {
    /// A new identity key was generated.
    pub created_identity: bool,
    /// A new `config.toml` was written.
    pub created_config: bool,
    /// The directory was writable by others, with these permission bits,
    /// and is now 0700.
    pub repaired_mode: Option<u32>,
}

impl InitReport {
    /// Whether anything was created.
    pub fn created_anything(&self) -> bool {
        self.created_identity || self.created_config
    }
}

/// A profile could not be opened, created or removed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProfileError {
    /// The profile directory does not exist.
    #[error(
        "profile '{name}' does not exist in {home}{}: create it with `alp init -p {name}` (or choose another with --profile)",
        suggestion.as_ref().map_or_else(String::new, |s| format!(" (did you mean '{s}'?)")),
        home = home.display()
    )]
    Missing {
        /// The profile.
        name: ProfileName,
        /// The home searched.
        home: PathBuf,
        /// The existing profile closest to `name`, if one is close.
        suggestion: Option<String>,
    },
    /// The identity key could not be read or written.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// The profile directory or config file could not be created or removed.
    #[error("cannot write {path}: {source}", path = path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The profile is locked by another process.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// Others than its owner may write the profile directory.
    #[error(
        "{path} is writable by others (mode {mode:o}): anyone able to write it can replace the files that say whom this node trusts; run `chmod 700 {path}` (or `alp init`, which repairs it)",
        path = path.display()
    )]
    Unsafe {
        /// The directory.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
}

/// The permission bits of `dir` if others than its owner may write it.
fn lax_mode(dir: &std::path::Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir).ok()?.permissions().mode() & 0o777;
    (mode & 0o022 != 0).then_some(mode)
}

/// "No such profile", with the closest existing one if one is close.
fn missing(home: &Home, name: &ProfileName) -> ProfileError {
    let known = home.list().unwrap_or_default();
    let suggestion = crate::suggest::closest(name.as_str(), known.iter().map(ProfileName::as_str));
    ProfileError::Missing { name: name.clone(), home: home.root().to_owned(), suggestion }
}

impl Profile {
    /// Opens the profile `name` in `home`.
    pub fn open(home: &Home, name: &ProfileName) -> Result<Self, ProfileError> {
        let paths = home.profile(name);
        if !paths.root().is_dir() {
            return Err(missing(home, name));
        }
        if let Some(mode) = lax_mode(paths.root()) {
            return Err(ProfileError::Unsafe { path: paths.root().to_owned(), mode });
        }
        let identity = Identity::load(&paths.identity())?;
        Ok(Self { name: name.clone(), paths, identity })
    }

    /// Creates whatever the profile lacks (directory, identity, config) and
    /// never touches what exists. Safe to run concurrently.
    pub fn init(home: &Home, name: &ProfileName) -> Result<(Self, InitReport), ProfileError> {
        let paths = home.profile(name);
        let io = |path: PathBuf| move |source| ProfileError::Io { path, source };
        create_private_dir(paths.root()).map_err(io(paths.root().to_owned()))?;
        let repaired_mode = lax_mode(paths.root());
        if repaired_mode.is_some() {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(paths.root(), std::fs::Permissions::from_mode(0o700))
                .map_err(io(paths.root().to_owned()))?;
        }
        let created_identity = match Identity::load(&paths.identity()) {
            Ok(_) => false,
            Err(IdentityError::Missing(_)) => Identity::generate()?.create_at(&paths.identity())?,
            Err(e) => return Err(e.into()),
        };
        let port = if paths.config().exists() { None } else { own_port(home, name) };
        let template = config::template(name.as_str(), port);
        let created_config = create_atomic(&paths.config(), template.as_bytes(), 0o600).map_err(io(paths.config()))?;
        let profile = Self::open(home, name)?;
        Ok((profile, InitReport { created_identity, created_config, repaired_mode }))
    }

    /// Deletes the profile directory and everything in it, identity included.
    pub fn remove(home: &Home, name: &ProfileName) -> Result<(), ProfileError> {
        let paths = home.profile(name);
        if !paths.root().is_dir() {
            return Err(missing(home, name));
        }
        let lock = ProfileLock::acquire(&paths.lock())?;
        let result = std::fs::remove_dir_all(paths.root());
        drop(lock);
        result.map_err(|source| ProfileError::Io { path: paths.root().to_owned(), source })
    }

    /// The profile's name.
    pub fn name(&self) -> &ProfileName {
        &self.name
    }

    /// Every path in the profile.
    pub fn paths(&self) -> &ProfilePaths {
        &self.paths
    }

    /// The profile's identity.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The trusted peers.
    pub fn peers(&self) -> PeerStore {
        PeerStore::new(&self.paths.peers(), &self.paths.lock())
    }

    /// The blob share list.
    pub fn shares(&self) -> crate::shares::ShareStore {
        crate::shares::ShareStore::new(&self.paths.shares(), &self.paths.lock())
    }

    /// The outstanding pairing tickets.
    pub fn tickets(&self) -> TicketStore {
        TicketStore::new(&self.paths.tickets(), &self.paths.lock())
    }

    /// The effective configuration: this profile's file under `env` and
    /// `cli` overrides.
    pub fn config(&self, env: Vec<(String, String)>, cli: Vec<Override>) -> Result<Resolved, ConfigError> {
        let file = self.paths.config();
        config::load(&Layers { file: Some(&file), env, cli })
    }
}

/// The listen port for a new profile `name` when other profiles of the
/// home exist: the lowest from the default up that none of them is
/// configured with and that is free right now (`None`: the first profile
/// keeps the default). Two nodes of one home then serve side by side
/// without a flag.
fn own_port(home: &Home, name: &ProfileName) -> Option<u16> {
    let others: Vec<ProfileName> = home.list().ok()?.into_iter().filter(|p| p != name).collect();
    if others.is_empty() {
        return None;
    }
    let taken: Vec<u16> = others
        .iter()
        .filter_map(|p| {
            let file = home.profile(p).config();
            let layers = config::Layers { file: Some(&file), env: Vec::new(), cli: Vec::new() };
            config::load(&layers).ok().map(|r| r.config.node.listen.port())
        })
        .collect();
    // Free for a dual-stack `[::]` socket: on IPv6 (where the host has it)
    // and on IPv4.
    let free = |port: u16| {
        let v6 = match std::net::UdpSocket::bind(("::", port)) {
            Ok(_) => true,
            Err(e) => e.kind() != std::io::ErrorKind::AddrInUse,
        };
        v6 && std::net::UdpSocket::bind(("0.0.0.0", port)).is_ok()
    };
    (config::DEFAULT_PORT..config::DEFAULT_PORT.saturating_add(100)).find(|p| !taken.contains(p) && free(*p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_is_idempotent_and_keeps_the_identity() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::at(dir.path());
        let name: ProfileName = "personal".parse().unwrap();
        let (p1, r1) = Profile::init(&home, &name).unwrap();
        assert!(r1.created_identity && r1.created_config);
        let (p2, r2) = Profile::init(&home, &name).unwrap();
        assert!(!r2.created_anything());
        assert_eq!(p1.identity().node_id(), p2.identity().node_id());
        assert_eq!(home.list().unwrap(), vec![name]);
    }

    #[test]
    fn open_missing_profile_suggests_init() {
        let dir = tempfile::tempdir().unwrap();
        let err = Profile::open(&Home::at(dir.path()), &"ghost".parse().unwrap()).unwrap_err();
        assert!(err.to_string().contains("alp init -p ghost"), "{err}");
    }

    #[test]
    fn concurrent_inits_agree_on_one_identity() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::at(dir.path());
        let ids: Vec<_> = (0..8)
            .map(|_| {
                let home = home.clone();
                std::thread::spawn(move || {
                    let (p, _) = Profile::init(&home, &"personal".parse().unwrap()).unwrap();
                    p.identity().node_id()
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap())
            .collect();
        assert!(ids.windows(2).all(|w| w[0] == w[1]));
    }

    #[test]
    fn remove_deletes_everything() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::at(dir.path());
        let name: ProfileName = "x".parse().unwrap();
        Profile::init(&home, &name).unwrap();
        Profile::remove(&home, &name).unwrap();
        assert!(!home.profile(&name).root().exists());
        assert!(matches!(Profile::remove(&home, &name), Err(ProfileError::Missing { .. })));
    }
}
