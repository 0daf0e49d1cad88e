//! Writing blobs out as files people use: to stdout, to a new file, or
//! into an existing folder under the blob's name; never replacing a file
//! unless asked (`--force`); with the user's umask, not the store's 0600;
//! atomically (a temp file beside the target, fsync, rename). A folder is
//! written back as its tree, refusing to write through a symbolic link.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use alp_blobstore::BlobHash;
use alp_blobstore::collection::Entry;
use alp_blobstore::store::Store;

use crate::error::{CliResult, usage};

/// Where a blob goes: `-` is stdout.
pub(crate) fn is_stdout(dest: &Path) -> bool {
    dest.as_os_str() == "-"
}

/// The path a blob named `name` takes for the target `dest`: inside
/// `dest` if it is an existing folder, else `dest` itself.
pub(crate) fn target(dest: &Path, name: Option<&str>, hash: &BlobHash) -> PathBuf {
    if dest.is_dir() { dest.join(name.map_or_else(|| hash.to_string(), str::to_owned)) } else { dest.to_owned() }
}

/// The process's umask (from `/proc`, which reads it without changing it).
fn umask() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("Umask:").map(|v| v.trim().to_owned())))
        .and_then(|v| u32::from_str_radix(&v, 8).ok())
        .unwrap_or(0o022)
}

/// Refuses to replace `path` unless `force`.
fn check_free(path: &Path, force: bool) -> CliResult {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => Err(usage(format!("{} is a folder: give a path for the file", path.display()))),
        Ok(_) if !force => Err(usage(format!("{} exists: add --force to replace it", path.display()))),
        _ => Ok(()),
    }
}

/// Writes blob `hash` to the file `path` with permission bits `mode`
/// (less the umask). Returns the bytes written.
pub(crate) fn write_file(store: &Store, hash: &BlobHash, path: &Path, mode: u32, force: bool) -> CliResult<u64> {
    check_free(path, force)?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new().prefix(".alp-").tempfile_in(dir)?;
    let mut src = store.open_blob(hash)?;
    let n = std::io::copy(&mut src, tmp.as_file_mut())?;
    tmp.as_file().sync_all()?;
    tmp.as_file().set_permissions(std::fs::Permissions::from_mode(mode & 0o777 & !umask()))?;
    if force {
        tmp.persist(path).map_err(|e| e.error)?;
    } else {
        // Fails, rather than replace, if the file appeared meanwhile.
        tmp.persist_noclobber(path).map_err(|e| e.error)?;
    }
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(n)
}

/// Copies blob `hash` to stdout.
pub(crate) fn to_stdout(store: &Store, hash: &BlobHash) -> CliResult<u64> {
    let mut src = store.open_blob(hash)?;
    let mut out = std::io::stdout().lock();
    let n = std::io::copy(&mut src, &mut out)?;
    out.flush()?;
    Ok(n)
}

/// Writes the files of a folder as the new folder `root`: built in a
/// temp folder beside it, then renamed into place, so `root` appears
/// whole or not at all. An existing `root` is refused unless `force`, and
/// then the files are merged into it: every target is checked before the
/// first is written (a symbolic link or a file where a folder must go
/// stops it with nothing written), and each file is replaced atomically.
/// A folder from a peer can therefore never add files to one of yours
/// (`~/.config`, a repository's `.git`) unless asked. Returns the files
/// and bytes written.
pub(crate) fn write_folder(store: &Store, files: &[Entry], root: &Path, force: bool) -> CliResult<(usize, u64)> {
    match std::fs::symlink_metadata(root) {
        Ok(m) if !m.is_dir() => return Err(usage(format!("{} exists and is not a folder", root.display()))),
        Ok(_) if !force => {
            return Err(usage(format!(
                "{} exists: add --force to merge the received files into it, or give another path",
                root.display()
            )));
        }
        Ok(_) => return merge_into(store, files, root),
        Err(_) => {}
    }
    let parent = match root.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let tmp = tempfile::Builder::new().prefix(".alp-folder-").tempdir_in(parent)?;
    let written = merge_into(store, files, tmp.path())?;
    let mode = 0o777 & !umask();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(mode))?;
    // Fails, rather than merge, if `root` appeared meanwhile.
    let from = tmp.keep();
    if let Err(e) = rename_noreplace(&from, root) {
        let _ = std::fs::remove_dir_all(&from);
        return Err(usage(format!("cannot create {}: {e}", root.display())));
    }
    if let Ok(d) = std::fs::File::open(parent) {
        let _ = d.sync_all();
    }
    Ok(written)
}

/// `renameat2(RENAME_NOREPLACE)`: moves `from` to `to` unless `to` exists.
fn rename_noreplace(from: &Path, to: &Path) -> std::io::Result<()> {
    use nix::fcntl::{AT_FDCWD, RenameFlags, renameat2};
    renameat2(AT_FDCWD, from, AT_FDCWD, to, RenameFlags::RENAME_NOREPLACE).map_err(std::io::Error::from)
}

/// Writes `files` under the existing folder `root`, replacing files
/// (checked first: no symbolic link or file where a folder goes).
fn merge_into(store: &Store, files: &[Entry], root: &Path) -> CliResult<(usize, u64)> {
    for f in files {
        let mut at = root.to_owned();
        let parts: Vec<&str> = f.path.split('/').collect();
        for dir in &parts[..parts.len() - 1] {
            at.push(dir);
            match std::fs::symlink_metadata(&at) {
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(usage(format!("{} is a symbolic link: not writing through it", at.display())));
                }
                Ok(m) if !m.is_dir() => {
                    return Err(usage(format!("{} exists and is not a folder", at.display())));
                }
                _ => {}
            }
        }
        if let Ok(m) = std::fs::symlink_metadata(root.join(&f.path))
            && m.is_dir()
        {
            return Err(usage(format!("{} is a folder", root.join(&f.path).display())));
        }
    }
    let (mut count, mut bytes) = (0, 0);
    for f in files {
        let path = root.join(&f.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        bytes += write_file(store, &f.hash, &path, f.mode, true)?;
        count += 1;
    }
    Ok((count, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store_with(dir: &Path, files: &[(&str, &[u8], u32)]) -> (Store, Vec<Entry>) {
        let store = Store::open(&dir.join("store")).unwrap();
        let entries = files
            .iter()
            .map(|(path, bytes, mode)| {
                let info = store.import(&mut &bytes[..], bytes.len() as u64, Path::new("t")).unwrap();
                Entry { path: (*path).into(), mode: *mode, size: info.size, hash: info.hash }
            })
            .collect();
        (store, entries)
    }

    #[test]
    fn a_folder_is_written_back_with_modes_and_never_over_a_file_unless_forced() {
        let dir = tempfile::tempdir().unwrap();
        let (store, files) = store_with(dir.path(), &[("a.txt", b"a", 0o644), ("bin/run", b"#!", 0o755)]);
        let out = dir.path().join("out");
        assert_eq!(write_folder(&store, &files, &out, false).unwrap(), (2, 3));
        assert_eq!(std::fs::read(out.join("bin/run")).unwrap(), b"#!");
        let mode = std::fs::metadata(out.join("bin/run")).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o755 & !umask());
        // An existing folder is not added to unless asked.
        let err = write_folder(&store, &files, &out, false).unwrap_err();
        assert!(err.error.to_string().contains("add --force"), "{}", err.error);
        std::fs::write(out.join("a.txt"), b"changed").unwrap();
        std::fs::write(out.join("mine.txt"), b"kept").unwrap();
        write_folder(&store, &files, &out, true).unwrap();
        assert_eq!(std::fs::read(out.join("a.txt")).unwrap(), b"a");
        assert_eq!(std::fs::read(out.join("mine.txt")).unwrap(), b"kept");
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().map(|e| e.file_name()).collect();
        assert!(!left.iter().any(|n| n.to_string_lossy().starts_with(".alp-")), "no temp folder left: {left:?}");
    }

    #[test]
    fn a_symbolic_link_in_the_way_is_not_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let (store, files) = store_with(dir.path(), &[("sub/x", b"x", 0o644)]);
        let out = dir.path().join("out");
        let elsewhere = dir.path().join("elsewhere");
        // Even when merging into an existing folder on purpose.
        std::fs::create_dir_all(&out).unwrap();
        std::fs::create_dir_all(&elsewhere).unwrap();
        std::os::unix::fs::symlink(&elsewhere, out.join("sub")).unwrap();
        let err = write_folder(&store, &files, &out, true).unwrap_err();
        assert!(err.error.to_string().contains("symbolic link"), "{}", err.error);
        assert!(!elsewhere.join("x").exists());
    }
}

#[cfg(test)]
mod a_peers_folder {
    use super::*;

    #[test]
    fn never_lands_in_an_existing_folder_without_force() {
        // A peer's folder named like one of yours (".git", ".config").
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("store")).unwrap();
        let info = store.import(&mut &b"#!/bin/sh\n"[..], 10, Path::new("t")).unwrap();
        let files = vec![Entry { path: "hooks/post-checkout".into(), mode: 0o755, size: 10, hash: info.hash }];
        let git = dir.path().join(".git");
        std::fs::create_dir(&git).unwrap();
        let err = write_folder(&store, &files, &git, false).unwrap_err();
        assert!(err.error.to_string().contains("exists"), "{}", err.error);
        assert!(!git.join("hooks").exists(), "nothing written");
    }
}
