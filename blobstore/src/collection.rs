//! Folders as blobs: a *collection* is a manifest blob listing files
//! (relative path, mode, size, hash), each file a blob of its own. The
//! manifest's hash names the whole folder: fetching it and then every
//! blob it lists, each verified, gives back the same tree.
//!
//! Manifest bytes (all integers big-endian), the same for the same tree:
//!
//! ```text
//! "ALPCOLL1" [8] || count u32
//!   || count × ( path_len u16 || path [path_len] || mode u32 || size u64 || hash [32] )
//! ```
//!
//! Entries are sorted by path bytes, with no duplicates. A path is
//! relative, its components joined by `/`, each a valid file name (see
//! [`check_name`]): no empty, `.` or `..` component, no NUL or control
//! character, so no path in a valid manifest can leave the folder it is
//! written into. `mode` holds permission bits only (`0o777`). Only
//! regular files are listed: empty folders and symbolic links are not.

use crate::BlobHash;
use crate::store::meta::check_name;

const MAGIC: &[u8; 8] = b"ALPCOLL1";
/// Most files in one collection.
pub const MAX_ENTRIES: usize = 1_000_000;
/// Longest path in a collection, in bytes.
pub const MAX_PATH: usize = 4096;
/// Largest manifest accepted, in bytes.
pub const MAX_MANIFEST: u64 = 256 * 1024 * 1024;

/// One file of a collection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Relative path, `/`-separated.
    pub path: String,
    /// Permission bits.
    pub mode: u32,
    /// Size in bytes.
    pub size: u64,
    /// The file's blob.
    pub hash: BlobHash,
}

/// Why bytes are not a manifest, or entries cannot make one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CollectionError {
    /// Not a manifest at all.
    #[error("not a folder manifest")]
    NotAManifest,
    /// Cut short or with bytes after the last entry.
    #[error("the folder manifest is truncated or has trailing bytes")]
    Truncated,
    /// Over a limit.
    #[error("the folder manifest is too large: {0}")]
    TooLarge(&'static str),
    /// A path that could leave the folder, or is not a path.
    #[error("the folder manifest holds an unsafe path '{path}': {why}")]
    BadPath {
        /// The path, escaped for display.
        path: String,
        /// What is wrong.
        why: String,
    },
    /// Not sorted, or a path twice.
    #[error("the folder manifest is not in order, or lists '{0}' twice")]
    Order(String),
}

/// Checks that `path` is a relative path that stays inside its folder.
pub fn check_path(path: &str) -> Result<(), CollectionError> {
    let bad = |why: String| CollectionError::BadPath { path: path.escape_debug().to_string(), why };
    if path.len() > MAX_PATH {
        return Err(bad(format!("longer than {MAX_PATH} bytes")));
    }
    if path.starts_with('/') {
        return Err(bad("it is absolute".into()));
    }
    for part in path.split('/') {
        check_name(part).map_err(|e| bad(e.to_string()))?;
    }
    Ok(())
}

/// The manifest of `entries` (sorted here; each path checked).
pub fn encode(mut entries: Vec<Entry>) -> Result<Vec<u8>, CollectionError> {
    if entries.len() > MAX_ENTRIES {
        return Err(CollectionError::TooLarge("too many files"));
    }
    entries.sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
    let mut out = Vec::with_capacity(12 + entries.iter().map(|e| 46 + e.path.len()).sum::<usize>());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(entries.len() as u32).to_be_bytes());
    for (i, e) in entries.iter().enumerate() {
        check_path(&e.path)?;
        if i > 0 && entries[i - 1].path == e.path {
            return Err(CollectionError::Order(e.path.clone()));
        }
        out.extend_from_slice(&(e.path.len() as u16).to_be_bytes());
        out.extend_from_slice(e.path.as_bytes());
        out.extend_from_slice(&(e.mode & 0o777).to_be_bytes());
        out.extend_from_slice(&e.size.to_be_bytes());
        out.extend_from_slice(e.hash.as_bytes());
    }
    Ok(out)
}

/// Whether `bytes` start like a manifest (a blob may still fail [`decode`]).
pub fn looks_like(bytes: &[u8]) -> bool {
    bytes.starts_with(MAGIC)
}

/// Parses and checks a manifest: every path safe, sorted, unique. Never
/// panics, whatever the bytes.
pub fn decode(bytes: &[u8]) -> Result<Vec<Entry>, CollectionError> {
    let rest = bytes.strip_prefix(MAGIC.as_slice()).ok_or(CollectionError::NotAManifest)?;
    if bytes.len() as u64 > MAX_MANIFEST {
        return Err(CollectionError::TooLarge("over 256 MiB"));
    }
    let mut r = Reader(rest);
    let count = u32::from_be_bytes(r.take()?) as usize;
    if count > MAX_ENTRIES {
        return Err(CollectionError::TooLarge("too many files"));
    }
    // Each entry takes at least 47 bytes: no allocation beyond the input.
    let mut out: Vec<Entry> = Vec::with_capacity(count.min(rest.len() / 47));
    for _ in 0..count {
        let len = u16::from_be_bytes(r.take()?) as usize;
        let path = r.bytes(len)?;
        let path = std::str::from_utf8(path)
            .map_err(|_| CollectionError::BadPath { path: path.escape_ascii().to_string(), why: "not UTF-8".into() })?
            .to_owned();
        check_path(&path)?;
        let mode = u32::from_be_bytes(r.take()?);
        let size = u64::from_be_bytes(r.take()?);
        let hash = BlobHash::from(blake3::Hash::from_bytes(r.take()?));
        if mode & !0o777 != 0 {
            return Err(CollectionError::BadPath { path, why: "mode has bits other than permissions".into() });
        }
        if out.last().is_some_and(|p| p.path.as_bytes() >= path.as_bytes()) {
            return Err(CollectionError::Order(path));
        }
        out.push(Entry { path, mode, size, hash });
    }
    if !r.0.is_empty() {
        return Err(CollectionError::Truncated);
    }
    Ok(out)
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn bytes(&mut self, n: usize) -> Result<&[u8], CollectionError> {
        let (head, tail) = self.0.split_at_checked(n).ok_or(CollectionError::Truncated)?;
        self.0 = tail;
        Ok(head)
    }

    fn take<const N: usize>(&mut self) -> Result<[u8; N], CollectionError> {
        self.bytes(N)?.try_into().map_err(|_| CollectionError::Truncated)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entry(path: &str, n: u8) -> Entry {
        Entry { path: path.into(), mode: 0o644, size: n.into(), hash: BlobHash::of(&[n]) }
    }

    #[test]
    fn round_trips_sorted_and_the_layout_is_fixed() {
        let bytes = encode(vec![entry("b/c.txt", 2), entry("a.txt", 1)]).unwrap();
        assert_eq!(&bytes[..12], b"ALPCOLL1\0\0\0\x02");
        assert_eq!(&bytes[12..19], b"\0\x05a.txt");
        assert_eq!(decode(&bytes).unwrap(), vec![entry("a.txt", 1), entry("b/c.txt", 2)]);
        assert_eq!(bytes.len(), 12 + 2 * 46 + 5 + 7);
        assert_eq!(encode(vec![]).unwrap(), b"ALPCOLL1\0\0\0\0");
    }

    #[test]
    fn paths_that_leave_the_folder_are_refused_both_ways() {
        for bad in ["../x", "a/../../x", "/etc/passwd", "a//b", "a/./b", "", "a/", "x\0y", "a/\u{1b}[2J"] {
            assert!(check_path(bad).is_err(), "{bad:?}");
            assert!(encode(vec![entry(bad, 1)]).is_err(), "{bad:?}");
            // Forged straight into the bytes.
            let mut forged = b"ALPCOLL1\0\0\0\x01".to_vec();
            forged.extend_from_slice(&(bad.len() as u16).to_be_bytes());
            forged.extend_from_slice(bad.as_bytes());
            forged.extend_from_slice(&[0; 44]);
            assert!(matches!(decode(&forged), Err(CollectionError::BadPath { .. })), "{bad:?}");
        }
    }

    #[test]
    fn duplicates_disorder_and_truncation_are_refused() {
        assert!(matches!(encode(vec![entry("a", 1), entry("a", 2)]), Err(CollectionError::Order(_))));
        let good = encode(vec![entry("a", 1), entry("b", 2)]).unwrap();
        let mut swapped = good[..12].to_vec();
        swapped.extend_from_slice(&good[12 + 47..]);
        swapped.extend_from_slice(&good[12..12 + 47]);
        assert!(matches!(decode(&swapped), Err(CollectionError::Order(_))));
        for cut in 0..good.len() {
            assert!(decode(&good[..cut]).is_err(), "cut at {cut}");
        }
        let mut long = good.clone();
        long.push(0);
        assert_eq!(decode(&long), Err(CollectionError::Truncated));
    }

    /// The spec's vector: a folder of two files, `a.txt` ("alp\n",
    /// 0o644) and `bin/run` ("#!\n", 0o755).
    #[test]
    fn the_manifest_vector_of_the_spec() {
        let files = vec![
            Entry { path: "bin/run".into(), mode: 0o755, size: 3, hash: BlobHash::of(b"#!\n") },
            Entry { path: "a.txt".into(), mode: 0o644, size: 4, hash: BlobHash::of(b"alp\n") },
        ];
        let bytes = encode(files).unwrap();
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let hash = BlobHash::of(&bytes).to_string();
        if std::env::var_os("ALP_PRINT_VECTORS").is_some() {
            println!("folder manifest: {hex}\nfolder manifest hash: {hash}");
            return;
        }
        let spec = include_str!("../../docs/PROTOCOL.md");
        let section = spec.split("\n## Test vectors").nth(1).unwrap();
        let value = |name: &str| -> String {
            let mut lines = section.lines().skip_while(|l| !l.starts_with(&format!("{name} (")));
            lines.next();
            lines.map_while(|l| l.strip_prefix("    ")).map(str::trim).collect()
        };
        assert_eq!(value("folder manifest"), hex, "docs/PROTOCOL.md differs on the folder manifest");
        assert_eq!(value("folder manifest hash"), hash);
    }

    proptest! {
        #[test]
        fn any_bytes_decode_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut with_magic = MAGIC.to_vec();
            with_magic.extend_from_slice(&bytes);
            let _ = decode(&bytes);
            if let Ok(entries) = decode(&with_magic) {
                prop_assert_eq!(encode(entries).unwrap(), with_magic);
            }
        }

        #[test]
        fn valid_entries_round_trip(names in proptest::collection::btree_set("[a-z]{1,8}(/[a-z]{1,8}){0,2}", 0..20)) {
            let entries: Vec<Entry> = names.iter().enumerate().map(|(i, n)| entry(n, i as u8)).collect();
            let bytes = encode(entries.clone()).unwrap();
            prop_assert_eq!(decode(&bytes).unwrap(), entries);
        }
    }
}
