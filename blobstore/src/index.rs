//! Hashing a file that is already on disk: its BLAKE3 hash and hash tree,
//! computed on several cores.
//!
//! Groups' chaining values do not depend on each other, so threads take
//! batches of groups in turn (reading each with `pread`) and one thread
//! folds the values into the tree in order; the parents (one compression
//! per group) are a small part of the work. Memory: one batch per thread,
//! plus the values of batches finished ahead of the next one needed.

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use blake3::hazmat::ChainingValue;

use crate::tree::{GROUP_SIZE, PARENT_SIZE, TreeBuilder, group_cv, groups};

/// Groups per batch (1 MiB).
const BATCH_GROUPS: u64 = 64;

/// Threads to hash with: the cores this process may use, at most 8.
pub fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()).min(8)
}

/// Hashes the first `size` bytes of `data` on `threads` threads, writing
/// every parent node at its slot in `obao` (nothing for a blob of one
/// group). A file shorter than `size` is an `UnexpectedEof` error.
pub fn index_file(data: &File, size: u64, obao: &File, threads: usize) -> io::Result<blake3::Hash> {
    let n = groups(size);
    if n == 1 {
        let mut buf = vec![0u8; size as usize];
        data.read_exact_at(&mut buf, 0)?;
        return Ok(blake3::hash(&buf));
    }
    let batches = n.div_ceil(BATCH_GROUPS);
    let threads = threads.clamp(1, usize::try_from(batches).unwrap_or(usize::MAX));
    let (next, stop) = (AtomicU64::new(0), AtomicBool::new(false));
    let (tx, rx) = std::sync::mpsc::sync_channel::<io::Result<(u64, Vec<ChainingValue>)>>(threads * 2);
    let mut builder = TreeBuilder::new(size);
    std::thread::scope(|s| {
        for _ in 0..threads {
            let (tx, next, stop) = (tx.clone(), &next, &stop);
            s.spawn(move || {
                let mut buf = vec![0u8; (BATCH_GROUPS * GROUP_SIZE) as usize];
                while !stop.load(Ordering::Relaxed) {
                    let b = next.fetch_add(1, Ordering::Relaxed);
                    if b >= batches {
                        return;
                    }
                    let first = b * BATCH_GROUPS;
                    let start = first * GROUP_SIZE;
                    let len = (size - start).min(BATCH_GROUPS * GROUP_SIZE) as usize;
                    let cvs = data.read_exact_at(&mut buf[..len], start).map(|()| {
                        let groups = buf[..len].chunks(GROUP_SIZE as usize);
                        groups.enumerate().map(|(i, g)| group_cv(first + i as u64, g)).collect()
                    });
                    if tx.send(cvs.map(|cvs| (b, cvs))).is_err() {
                        return;
                    }
                }
            });
        }
        drop(tx);
        let result = (|| {
            let (mut ahead, mut want) = (BTreeMap::new(), 0u64);
            for item in &rx {
                let (b, cvs) = item?;
                ahead.insert(b, cvs);
                while let Some(cvs) = ahead.remove(&want) {
                    for cv in cvs {
                        write_parents(obao, builder.push_cv(cv))?;
                    }
                    want += 1;
                }
            }
            if want != batches {
                return Err(io::Error::other("a hashing thread stopped early"));
            }
            Ok(())
        })();
        if result.is_err() {
            stop.store(true, Ordering::Relaxed);
        }
        // Unblocks threads waiting to send, so the scope can end.
        drop(rx);
        result
    })?;
    let (parents, hash) = builder.finish();
    write_parents(obao, parents)?;
    Ok(hash)
}

fn write_parents(obao: &File, parents: Vec<crate::tree::Parent>) -> io::Result<()> {
    for p in parents {
        obao.write_all_at(&p.to_bytes(), p.index * PARENT_SIZE)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::TreeBuilder;
    use std::io::Write;

    /// The tree and hash a one-thread streaming build gives.
    fn reference(data: &[u8]) -> (Vec<u8>, blake3::Hash) {
        let size = data.len() as u64;
        let mut b = TreeBuilder::new(size);
        let mut obao = vec![0u8; (groups(size) - 1) as usize * PARENT_SIZE as usize];
        let mut put = |ps: Vec<crate::tree::Parent>| {
            for p in ps {
                let at = (p.index * PARENT_SIZE) as usize;
                obao[at..at + 64].copy_from_slice(&p.to_bytes());
            }
        };
        for g in data.chunks(GROUP_SIZE as usize) {
            put(b.push(g));
        }
        if data.is_empty() {
            put(b.push(&[]));
        }
        let (ps, hash) = b.finish();
        put(ps);
        (obao, hash)
    }

    #[test]
    fn every_thread_count_gives_the_streaming_tree_and_blake3() {
        let g = GROUP_SIZE as usize;
        let batch = BATCH_GROUPS as usize * g;
        for size in [0, 1, g, g + 1, 3 * g, batch - 1, batch, batch + 1, 3 * batch + 5 * g + 7] {
            let data: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
            let mut f = tempfile::tempfile().unwrap();
            f.write_all(&data).unwrap();
            let (want_obao, want_hash) = reference(&data);
            assert_eq!(want_hash, blake3::hash(&data), "size {size}");
            for threads in [1, 2, 3, 8] {
                let obao = tempfile::tempfile().unwrap();
                let hash = index_file(&f, size as u64, &obao, threads).unwrap();
                assert_eq!(hash, want_hash, "size {size}, {threads} threads");
                let mut got = vec![0u8; want_obao.len()];
                obao.read_exact_at(&mut got, 0).unwrap();
                assert_eq!(got, want_obao, "size {size}, {threads} threads");
            }
        }
    }

    #[test]
    fn a_file_shorter_than_announced_is_an_error() {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&vec![1u8; 5 * GROUP_SIZE as usize]).unwrap();
        let obao = tempfile::tempfile().unwrap();
        let err = index_file(&f, 200 * GROUP_SIZE, &obao, 2).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }
}
