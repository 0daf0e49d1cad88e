//! Versioned TOML files that alp owns: loaded strictly (a damaged file is
//! an error naming it, never an empty default) and saved atomically.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::fsutil::write_atomic;

/// A profile file could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FileError {
    /// The file exists but does not parse.
    #[error("{path} is corrupted: {reason}; fix or remove the file (alp will not overwrite it)", path = path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Others than its owner may write the file: whoever could has been
    /// able to change whom this node trusts.
    #[error(
        "{path} is writable by others (mode {mode:o}): anyone able to write it can change whom this node trusts; check its contents, then run `chmod 600 {path}`",
        path = path.display()
    )]
    Unsafe {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// Reading or writing failed.
    #[error("cannot access {path}: {source}", path = path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// A file format with a version number.
pub(crate) trait Versioned: Serialize + DeserializeOwned + Default {
    const VERSION: u32;
    fn version(&self) -> u32;
}

/// `Default` (this version, empty fields) and [`Versioned`] for a file
/// struct with a `version` field and collection fields.
macro_rules! versioned_file {
    ($ty:ident, $version:expr, $($field:ident),+) => {
        impl Default for $ty {
            fn default() -> Self {
                Self { version: $version, $($field: Default::default()),+ }
            }
        }

        impl $crate::tomlfile::Versioned for $ty {
            const VERSION: u32 = $version;
            fn version(&self) -> u32 {
                self.version
            }
        }
    };
}
pub(crate) use versioned_file;

/// Refuses a file that others than its owner may write.
pub(crate) fn check_private(path: &Path) -> Result<(), FileError> {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::metadata(path) {
        Ok(m) if m.permissions().mode() & 0o022 != 0 => {
            Err(FileError::Unsafe { path: path.to_owned(), mode: m.permissions().mode() & 0o777 })
        }
        _ => Ok(()),
    }
}

/// Loads `path`; a missing file is the empty default. A file others may
/// write is refused.
pub(crate) fn load<T: Versioned>(path: &Path) -> Result<T, FileError> {
    check_private(path)?;
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(T::default()),
        Err(source) => {
            return Err(FileError::Io { path: path.to_owned(), source });
        }
    };
    let corrupt = |reason: String| FileError::Corrupt { path: path.to_owned(), reason };
    let value: T = toml::from_str(&text).map_err(|e| corrupt(e.message().to_owned()))?;
    if value.version() != T::VERSION {
        return Err(corrupt(format!("unsupported format version {} (expected {})", value.version(), T::VERSION)));
    }
    Ok(value)
}

/// Saves `value` atomically (mode 0600) under a comment line.
pub(crate) fn save<T: Versioned>(path: &Path, comment: &str, value: &T) -> Result<(), FileError> {
    let text = toml::to_string(value)
        .map_err(|e| FileError::Corrupt { path: path.to_owned(), reason: format!("cannot encode: {e}") })?;
    write_atomic(path, format!("# {comment}\n{text}").as_bytes(), 0o600)
        .map_err(|source| FileError::Io { path: path.to_owned(), source })
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses exactly `N` bytes of hex.
pub fn unhex<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.len() != 2 * N || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_rejects_junk() {
        assert_eq!(unhex::<2>(&hex(&[0xab, 0x01])), Some([0xab, 0x01]));
        assert_eq!(unhex::<2>("abc"), None);
        assert_eq!(unhex::<2>("zz00"), None);
        assert_eq!(unhex::<2>("+a00"), None);
        assert_eq!(unhex::<1>("é"), None);
    }
}
