//! Where profiles live, and every path inside one.

use std::path::{Path, PathBuf};

use crate::name::ProfileName;

/// The alp home directory: `HOME/profiles/NAME/` holds each profile.
#[derive(Debug, Clone)]
pub struct Home {
    root: PathBuf,
}

/// The home directory could not be determined or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HomeError {
    /// No `--home`, no `ALP_HOME`, and the platform has no data directory.
    #[error("cannot find a home directory for alp: pass --home DIR or set ALP_HOME")]
    NoPlatformDir,
    /// The profiles directory exists but cannot be listed.
    #[error("cannot list profiles in {path}: {source}")]
    Io {
        /// The directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

impl Home {
    /// Uses `explicit` (from `--home` or `ALP_HOME`) if given and non-empty,
    /// else the platform data directory (`~/.local/share/alp` on Linux).
    pub fn resolve(explicit: Option<&Path>) -> Result<Self, HomeError> {
        match explicit {
            Some(p) if !p.as_os_str().is_empty() => Ok(Self::at(p)),
            _ => directories::ProjectDirs::from("", "", "alp")
                .map(|d| Self::at(d.data_dir()))
                .ok_or(HomeError::NoPlatformDir),
        }
    }

    /// A home rooted at `root`.
    pub fn at(root: &Path) -> Self {
        Self { root: root.to_owned() }
    }

    /// The home directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Local model files (GGUF), shared by every profile of this home.
    pub fn models_dir(&self) -> PathBuf {
        self.root.join("models")
    }

    /// The directory holding one directory per profile.
    pub fn profiles_dir(&self) -> PathBuf {
        self.root.join("profiles")
    }

    /// The profile commands act as when none is named (`alp profile
    /// use`), if one was chosen and its name is still valid.
    pub fn default_profile(&self) -> Option<ProfileName> {
        std::fs::read_to_string(self.root.join("default-profile")).ok()?.trim().parse().ok()
    }

    /// The profile commands act as when none is named: the one chosen with
    /// `alp profile use`, else `personal`.
    pub fn current_profile(&self) -> ProfileName {
        self.default_profile().unwrap_or_else(|| "personal".parse().unwrap_or_else(|_| ProfileName::fallback()))
    }

    /// Makes `name` the profile commands act as when none is named.
    pub fn set_default_profile(&self, name: &ProfileName) -> Result<(), HomeError> {
        let path = self.root.join("default-profile");
        crate::fsutil::write_atomic(&path, format!("{name}\n").as_bytes(), 0o600)
            .map_err(|source| HomeError::Io { path, source })
    }

    /// The paths of the profile `name` (which may not exist yet).
    pub fn profile(&self, name: &ProfileName) -> ProfilePaths {
        ProfilePaths { root: self.profiles_dir().join(name.as_str()) }
    }

    /// Every directory under `profiles/` whose name is a valid profile name,
    /// sorted. Other entries are ignored.
    pub fn list(&self) -> Result<Vec<ProfileName>, HomeError> {
        let dir = self.profiles_dir();
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(HomeError::Io { path: dir, source }),
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| HomeError::Io { path: dir.clone(), source })?;
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            if let (true, Some(Ok(name))) = (is_dir, entry.file_name().to_str().map(str::parse)) {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }
}

/// Every path inside one profile, derived from its root in one place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfilePaths {
    root: PathBuf,
}

impl ProfilePaths {
    /// The profile directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The ed25519 secret key (mode 0600).
    pub fn identity(&self) -> PathBuf {
        self.root.join("identity.key")
    }

    /// The profile's `config.toml`.
    pub fn config(&self) -> PathBuf {
        self.root.join("config.toml")
    }

    /// The trusted peers.
    pub fn peers(&self) -> PathBuf {
        self.root.join("peers.toml")
    }

    /// The lock taken around read-modify-write of profile files.
    pub fn lock(&self) -> PathBuf {
        self.root.join(".lock")
    }

    /// The directory agent tools work in; nothing outside it is reachable.
    pub fn workspace(&self) -> PathBuf {
        self.root.join("workspace")
    }

    /// Model spending, one JSONL file per UTC day.
    pub fn ledger(&self) -> PathBuf {
        self.root.join("ledger")
    }

    /// What each MCP server offered when last started: `NAME.json`.
    pub fn mcp_cache(&self) -> PathBuf {
        self.root.join("mcp")
    }

    /// Chat sessions, one JSONL file each.
    pub fn sessions(&self) -> PathBuf {
        self.root.join("sessions")
    }

    /// The content-addressed blob store.
    pub fn blobs(&self) -> PathBuf {
        self.root.join("blobs")
    }

    /// Which blobs are shared with whom.
    pub fn shares(&self) -> PathBuf {
        self.root.join("shares.toml")
    }

    /// Outstanding pairing tickets (hashed).
    pub fn tickets(&self) -> PathBuf {
        self.root.join("tickets.toml")
    }

    /// Where a running `alp serve` records its address.
    pub fn serve_record(&self) -> PathBuf {
        self.root.join("serve.toml")
    }

    /// Held by a running `alp serve` for its whole life.
    pub fn serve_lock(&self) -> PathBuf {
        self.root.join("serve.lock")
    }

    /// Workgroup logs, one directory per group.
    pub fn workgroups(&self) -> PathBuf {
        self.root.join("workgroups")
    }

    /// The running node's control socket (owner only): CLI commands that
    /// act through the node connect here.
    pub fn control_socket(&self) -> PathBuf {
        self.root.join("node.sock")
    }
}
