//! The store at every size boundary: import, read back, verify, dedup,
//! export, remove, and damage detection; and the same sizes received
//! through a partial blob (the store's other way in).

use super::*;

const G: u64 = GROUP_SIZE;
/// A transfer record carries 64 KiB of stream (groups and parents).
const R: u64 = 64 * 1024;
const SIZES: &[u64] =
    &[0, 1, G - 1, G, G + 1, 2 * G, 3 * G + 5, R - 1, R, R + 1, 64 * G - 1, 64 * G + 1, 5 * 1024 * 1024 + 3];

fn data(size: u64) -> Vec<u8> {
    (0..size).map(|i| (i.wrapping_mul(131) ^ (i >> 9)) as u8).collect()
}

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(&dir.path().join("blobs")).unwrap();
    (dir, s)
}

#[test]
fn import_read_verify_export_remove_at_every_boundary() {
    let (dir, s) = store();
    for &size in SIZES {
        let d = data(size);
        let src = dir.path().join(format!("in-{size}"));
        std::fs::write(&src, &d).unwrap();
        let info = s.import_file(&src).unwrap();
        assert_eq!(info.hash, BlobHash::from(blake3::hash(&d)), "size {size}: the address is b3sum's");
        assert_eq!(info.size, size);
        s.verify(&info.hash).unwrap();
        let mut back = Vec::new();
        s.open_blob(&info.hash).unwrap().read_to_end(&mut back).unwrap();
        assert_eq!(back, d);
        let out = dir.path().join(format!("out-{size}"));
        assert_eq!(s.export(&info.hash, &out).unwrap(), size);
        assert_eq!(std::fs::read(&out).unwrap(), d);
    }
    assert_eq!(s.list().unwrap().len(), SIZES.len());
    for b in s.list().unwrap() {
        s.remove(&b.hash).unwrap();
        assert!(matches!(s.get(&b.hash), Err(StoreError::NotFound(_))));
    }
    assert!(s.list().unwrap().is_empty());
    assert_eq!(std::fs::read_dir(dir.path().join("blobs/tmp")).unwrap().count(), 0, "no temp files left");
}

#[test]
fn the_same_content_is_stored_once() {
    let (dir, s) = store();
    let src = dir.path().join("a");
    std::fs::write(&src, data(3 * G)).unwrap();
    let a = s.import_file(&src).unwrap();
    let b = s.import_file(&src).unwrap();
    assert_eq!(a, b);
    assert_eq!(s.list().unwrap().len(), 1);
}

#[test]
fn damage_is_detected() {
    let (dir, s) = store();
    let src = dir.path().join("a");
    std::fs::write(&src, data(4 * G + 9)).unwrap();
    let info = s.import_file(&src).unwrap();
    let path = s.data_path(&info.hash);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[2 * G as usize + 3] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    let err = s.verify(&info.hash).unwrap_err();
    assert!(matches!(err, StoreError::Damaged { .. }), "{err}");
    let g = 2 * G;
    assert!(err.to_string().contains(&format!("data group 2 (bytes {g}..{})", g + G)), "{err}");
    bytes.truncate(bytes.len() - 1);
    std::fs::write(&path, &bytes).unwrap();
    assert!(s.verify(&info.hash).is_err());
    // A damaged tree is named as such.
    std::fs::write(&src, data(4 * G + 9)).unwrap();
    std::fs::write(&path, data(4 * G + 9)).unwrap();
    let tree = s.root.join("obao").join(info.hash.to_string());
    let mut t = std::fs::read(&tree).unwrap();
    t[5] ^= 1;
    std::fs::write(&tree, &t).unwrap();
    assert!(s.verify(&info.hash).unwrap_err().to_string().contains("hash tree"));
}

#[test]
fn a_quarantined_blob_is_no_longer_listed_served_or_counted() {
    let (dir, s) = store();
    let src = dir.path().join("a");
    std::fs::write(&src, data(3 * G)).unwrap();
    let info = s.import_file(&src).unwrap();
    assert_eq!(s.usage().unwrap().total, 3 * G);
    let moved = s.quarantine(&info.hash).unwrap();
    assert!(moved.exists());
    assert!(matches!(s.get(&info.hash), Err(StoreError::NotFound(_))));
    assert!(s.list().unwrap().is_empty());
    assert_eq!(s.usage().unwrap().total, 0);
    assert_eq!(s.rebuild_usage().unwrap().total, 0);
    // Importing it again restores it.
    s.import_file(&src).unwrap();
    s.verify(&info.hash).unwrap();
}

#[test]
fn a_source_that_changes_size_is_refused() {
    let (_dir, s) = store();
    let d = data(100);
    let err = s.import(&mut &d[..], 101, Path::new("stdin")).unwrap_err();
    assert!(matches!(err, StoreError::SourceChanged { expected: 101, got: 100, .. }), "{err}");
    let err = s.import(&mut &d[..], 50, Path::new("stdin")).unwrap_err();
    assert!(matches!(err, StoreError::SourceChanged { .. }), "{err}");
    assert!(s.list().unwrap().is_empty(), "nothing is published from a failed import");
}

#[test]
fn unknown_blobs_are_not_found() {
    let (dir, s) = store();
    let h = BlobHash::of(b"nope");
    assert!(matches!(s.get(&h), Err(StoreError::NotFound(_))));
    assert!(matches!(s.export(&h, &dir.path().join("x")), Err(StoreError::NotFound(_))));
    assert!(!dir.path().join("x").exists());
    assert!(matches!(s.remove(&h), Err(StoreError::NotFound(_))));
}

mod partials {
    use super::*;
    use crate::tree::{Step, Verifier, groups, stream_order};
    use proptest::prelude::*;
    use std::time::Duration;

    /// Streams groups `[a, b)` of `hash` from `src` through a verifier into
    /// `p`, as a transfer does; stops after `limit` groups.
    fn fill(src: &Store, hash: &BlobHash, p: &mut Partial, (a, b): (u64, u64), limit: u64) {
        let size = p.size();
        let tree = src.open_tree(hash).unwrap();
        let data = src.open_blob(hash).unwrap();
        let mut v = Verifier::new(blake3::Hash::from_bytes(*hash.as_bytes()), size, vec![(a, b)]);
        let mut written = 0;
        for step in stream_order(size, vec![(a, b)]) {
            match step {
                Step::Parent(i) => {
                    let mut pair = [0u8; 64];
                    tree.as_ref().unwrap().read_exact_at(&mut pair, i * PARENT_SIZE).unwrap();
                    let parent = v.parent(&pair).unwrap();
                    p.write_parents(parent.index, &parent.to_bytes()).unwrap();
                }
                Step::Group(g) => {
                    if written == limit {
                        return;
                    }
                    let len = (size - g * G).min(G) as usize;
                    let mut buf = vec![0u8; len];
                    data.read_exact_at(&mut buf, g * G).unwrap();
                    assert_eq!(v.group(&buf).unwrap(), g);
                    p.write_groups(g, &buf).unwrap();
                    written += 1;
                }
            }
        }
        assert!(v.is_done());
    }

    /// A durable partial of `hash` in `dst` holding its first `k` groups,
    /// checkpointed, as an interrupted transfer leaves it.
    fn interrupted(src: &Store, dst: &Store, hash: BlobHash, size: u64, k: u64) {
        let mut p = dst.partial(hash, size, [0; 32]).unwrap();
        fill(src, &hash, &mut p, (0, groups(size)), k);
        p.checkpoint().unwrap();
    }

    fn source(size: u64) -> (tempfile::TempDir, Store, BlobHash, Vec<u8>) {
        let (dir, s) = store();
        let d = data(size);
        let f = dir.path().join("src");
        std::fs::write(&f, &d).unwrap();
        let hash = s.import_file(&f).unwrap().hash;
        (dir, s, hash, d)
    }

    #[test]
    fn receiving_in_two_interrupted_halves_gives_the_same_blob_at_every_boundary() {
        for &size in SIZES {
            let (_d1, src, hash, d) = source(size);
            let (_d2, dst) = store();
            let n = groups(size);
            let mut p = dst.partial(hash, size, [7; 32]).unwrap();
            assert!(p.is_durable());
            fill(&src, &hash, &mut p, (0, n), n / 2);
            p.checkpoint().unwrap();
            drop(p); // the transfer stops here
            assert!(matches!(dst.get(&hash), Err(StoreError::NotFound(_))), "size {size}: not visible while partial");
            let info = dst.partial_info(&hash).unwrap().unwrap();
            assert_eq!((info.size, info.owner, info.have.count()), (size, [7; 32], n / 2));

            let mut p = dst.partial(hash, size, [0; 32]).unwrap();
            let missing = p.missing(0, n);
            assert_eq!(missing, if n / 2 == n { vec![] } else { vec![(n / 2, n)] });
            for gap in missing {
                fill(&src, &hash, &mut p, gap, u64::MAX);
            }
            assert!(p.is_complete());
            assert_eq!(p.publish().unwrap(), BlobInfo { hash, size });
            dst.verify(&hash).unwrap();
            let mut back = Vec::new();
            dst.open_blob(&hash).unwrap().read_to_end(&mut back).unwrap();
            assert_eq!(back, d, "size {size}");
            assert!(dst.partial_info(&hash).unwrap().is_none());
            assert_eq!(std::fs::read_dir(dst.root.join("partial")).unwrap().count(), 0, "partial removed");
        }
    }

    #[test]
    fn only_checkpointed_groups_survive() {
        let size = 20 * G + 3;
        let (_d1, src, hash, _) = source(size);
        let (_d2, dst) = store();
        let mut p = dst.partial(hash, size, [0; 32]).unwrap();
        fill(&src, &hash, &mut p, (0, 21), 5);
        p.checkpoint().unwrap();
        fill(&src, &hash, &mut p, (5, 21), 4);
        assert_eq!(p.have().count(), 9);
        drop(p); // as if killed: the last 4 groups were never checkpointed
        assert_eq!(dst.partial_info(&hash).unwrap().unwrap().have.as_slice(), &[(0, 5)]);
    }

    #[test]
    fn checkpoints_happen_by_themselves_every_few_mib() {
        let size = partial::CHECKPOINT_BYTES + 5 * G;
        let (_d1, src, hash, _) = source(size);
        let (_d2, dst) = store();
        let mut p = dst.partial(hash, size, [0; 32]).unwrap();
        let n = groups(size);
        fill(&src, &hash, &mut p, (0, n), n - 2);
        drop(p); // waits for the checkpoint running in the background
        let kept = dst.partial_info(&hash).unwrap().unwrap().have_bytes();
        assert!(kept >= partial::CHECKPOINT_BYTES && kept < size, "kept {kept}");
    }

    #[test]
    fn publishing_an_incomplete_partial_fails_and_keeps_it() {
        let size = 4 * G;
        let (_d1, src, hash, _) = source(size);
        let (_d2, dst) = store();
        let mut p = dst.partial(hash, size, [0; 32]).unwrap();
        fill(&src, &hash, &mut p, (0, 4), 2);
        assert!(matches!(p.publish(), Err(StoreError::Damaged { .. })));
        assert!(dst.get(&hash).is_err());
        assert_eq!(dst.partial_info(&hash).unwrap().unwrap().have.count(), 2);
    }

    #[test]
    fn a_holder_that_does_not_let_go_leaves_the_next_writer_a_private_partial() {
        let size = 3 * G;
        let (_d1, src, hash, _) = source(size);
        let (_d2, dst) = store();
        let dst = dst.with_takeover_wait(Duration::from_millis(50));
        let first = dst.partial(hash, size, [0; 32]).unwrap();
        let mut second = dst.partial(hash, size, [0; 32]).unwrap();
        assert!(first.is_durable() && !second.is_durable());
        fill(&src, &hash, &mut second, (0, 3), u64::MAX);
        second.publish().unwrap();
        dst.verify(&hash).unwrap();
        assert!(matches!(dst.remove_partial(&hash), Err(StoreError::Busy(_))), "the first still writes");
        drop(first);
        assert!(dst.remove_partial(&hash).unwrap());
        assert_eq!(std::fs::read_dir(dst.root.join("tmp")).unwrap().count(), 0, "no temp files left");
    }

    #[test]
    fn a_new_writer_takes_over_what_the_holder_verified() {
        let size = 9 * G;
        let (_d1, src, hash, _) = source(size);
        let (_d2, dst) = store();
        let mut first = dst.partial(hash, size, [0; 32]).unwrap();
        let probe = first.takeover_probe();
        fill(&src, &hash, &mut first, (0, 9), 4);
        assert!(probe.requested().is_none());
        let newcomer = {
            let dst = dst.clone();
            std::thread::spawn(move || dst.partial(hash, size, [0; 32]).unwrap())
        };
        // The holder sees the request, stops where it is and lets go,
        // without a checkpoint of its own: dropping keeps what verified.
        while probe.requested().is_none() {
            std::thread::sleep(Duration::from_millis(5));
        }
        first.checkpoint().unwrap();
        drop(first);
        let mut second = newcomer.join().unwrap();
        assert!(second.is_durable(), "the newcomer resumes the partial, not a private copy");
        assert_eq!(second.have_bytes(), 4 * G, "with every group the holder wrote");
        assert!(second.takeover_probe().requested().is_none(), "the request is answered");
        fill(&src, &hash, &mut second, (4, 9), u64::MAX);
        second.publish().unwrap();
        dst.verify(&hash).unwrap();
        assert_eq!(dst.used_bytes().unwrap(), size, "counted once");
    }

    #[test]
    fn a_private_partial_is_charged_while_it_lives() {
        let size = 4 * G;
        let (_d1, _src, hash, _) = source(size);
        let (_d2, dst) = store();
        let dst = dst.with_takeover_wait(Duration::from_millis(30)).with_quota(2 * size + 1);
        let held = dst.partial(hash, size, [0; 32]).unwrap();
        assert_eq!(dst.used_bytes().unwrap(), size);
        let private = dst.partial(hash, size, [0; 32]).unwrap();
        assert!(!private.is_durable());
        assert_eq!(dst.used_bytes().unwrap(), 2 * size, "the private copy counts too");
        // A third would go over the quota: refused, not written past it.
        assert!(matches!(dst.partial(hash, size, [0; 32]), Err(StoreError::Full { .. })));
        drop(private);
        assert_eq!(dst.used_bytes().unwrap(), size, "released with it");
        drop(held);
    }

    #[test]
    fn one_transfer_at_a_time_waits_for_a_held_partial() {
        let size = 4 * G;
        let (_d1, _src, hash, _) = source(size);
        let (_d2, dst) = store();
        let dst = dst.with_takeover_wait(Duration::from_secs(60));
        let held = dst.partial(hash, size, [0; 32]).unwrap();
        let probe = held.takeover_probe();
        let first = {
            let dst = dst.clone();
            std::thread::spawn(move || dst.partial(hash, size, [0; 32]).unwrap())
        };
        while probe.requested().is_none() {
            std::thread::sleep(Duration::from_millis(5));
        }
        // A second newcomer does not park beside the first: a private copy.
        let second = dst.partial(hash, size, [0; 32]).unwrap();
        assert!(!second.is_durable());
        assert!(!first.is_finished(), "the first still waits (the second did not wait its turn)");
        drop(second);
        drop(held);
        assert!(first.join().unwrap().is_durable(), "the first takes the partial over");
    }

    #[test]
    fn a_stale_request_is_cleared_by_the_next_holder() {
        let size = 3 * G;
        let (_d1, _src, hash, _) = source(size);
        let (_d2, dst) = store();
        drop(dst.partial(hash, size, [0; 32]).unwrap());
        // A transfer that died while waiting left its request behind.
        std::fs::write(dst.partial_dir(&hash).join("yield"), b"").unwrap();
        let p = dst.partial(hash, size, [0; 32]).unwrap();
        assert!(p.is_durable() && p.takeover_probe().requested().is_none());
    }

    #[test]
    fn rm_asks_the_writer_to_let_go() {
        let size = 5 * G;
        let (_d1, src, hash, _) = source(size);
        let (_d2, dst) = store();
        let mut p = dst.partial(hash, size, [0; 32]).unwrap();
        fill(&src, &hash, &mut p, (0, 5), 2);
        let probe = p.takeover_probe();
        let holder = std::thread::spawn(move || {
            while probe.requested().is_none() {
                std::thread::sleep(Duration::from_millis(5));
            }
            drop(p);
        });
        assert!(dst.remove_partial(&hash).unwrap());
        holder.join().unwrap();
        assert!(dst.partials().unwrap().is_empty());
        assert_eq!(dst.used_bytes().unwrap(), 0);
    }

    #[test]
    fn a_partial_completed_while_waiting_is_not_opened_again() {
        let size = 3 * G;
        let (_d1, src, hash, _) = source(size);
        let (_d2, dst) = store();
        let mut first = dst.partial(hash, size, [0; 32]).unwrap();
        let probe = first.takeover_probe();
        let newcomer = {
            let dst = dst.clone();
            std::thread::spawn(move || dst.partial(hash, size, [0; 32]).unwrap())
        };
        while probe.requested().is_none() {
            std::thread::sleep(Duration::from_millis(5));
        }
        // The holder finishes instead of letting go.
        fill(&src, &hash, &mut first, (0, 3), u64::MAX);
        first.publish().unwrap();
        let second = newcomer.join().unwrap();
        assert!(!second.is_durable(), "nothing left to resume");
        drop(second);
        assert!(dst.partials().unwrap().is_empty(), "no empty partial beside the blob");
        assert_eq!(dst.used_bytes().unwrap(), size);
        dst.verify(&hash).unwrap();
    }

    #[test]
    fn a_damaged_or_foreign_state_starts_over() {
        let size = 6 * G;
        let (_d1, src, hash, _) = source(size);
        let (_d2, dst) = store();
        interrupted(&src, &dst, hash, size, 3);
        let state = dst.root.join("partial").join(hash.to_string()).join("state");
        let mut bytes = std::fs::read(&state).unwrap();
        bytes[60] ^= 1;
        std::fs::write(&state, &bytes).unwrap();
        assert!(dst.partial_info(&hash).unwrap().is_none(), "checksum catches it");
        let p = dst.partial(hash, size, [0; 32]).unwrap();
        assert_eq!(p.have().count(), 0);
        drop(p);
        // Another size under the same hash: nothing is reused.
        let p = dst.partial(hash, size + 1, [0; 32]).unwrap();
        assert_eq!(p.have().count(), 0);
    }

    #[test]
    fn a_different_size_cannot_take_over_verified_groups() {
        let size = 6 * G;
        let (_d1, src, hash, _) = source(size);
        let (_d2, dst) = store();
        interrupted(&src, &dst, hash, size, 3);
        match dst.partial_within(hash, size + 1, [9; 32], OwnerLimits::NONE) {
            Err(StoreError::SizeMismatch { size: s, .. }) => assert_eq!(s, size),
            other => panic!("{:?}", other.map(|p| p.size())),
        }
        let p = dst.partial(hash, size, [0; 32]).unwrap();
        assert_eq!(p.have().count(), 3, "the first sender's groups are still there");
    }

    #[test]
    fn only_the_empty_blob_has_zero_bytes() {
        let (_d, s) = store();
        let some = BlobHash::of(b"not empty");
        assert!(matches!(s.partial(some, 0, [1; 32]), Err(StoreError::WrongSize { size: 0, .. })));
        assert!(s.partials().unwrap().is_empty(), "nothing was kept");
        let mut p = s.partial(BlobHash::of(&[]), 0, [1; 32]).unwrap();
        p.write_groups(0, &[]).unwrap();
        assert_eq!(p.publish().unwrap().size, 0);
    }

    #[test]
    fn concurrent_partials_cannot_overrun_the_quotas_together() {
        let (_d, s) = store();
        let s = s.with_quota(3 << 20);
        let limits = OwnerLimits { bytes: 1 << 20, partials: 100 };
        let ok = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for i in 0..60u32 {
                let (s, ok) = (&s, &ok);
                scope.spawn(move || {
                    let owner = [(i % 4) as u8 + 1; 32];
                    let hash = BlobHash::of(&i.to_be_bytes());
                    if let Ok(p) = s.partial_within(hash, 100 << 10, owner, limits) {
                        ok.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        drop(p);
                    }
                });
            }
        });
        let usage = s.usage().unwrap();
        // Each owner gets at most 10 of 100 KiB into its 1 MiB; the store's
        // 3 MiB holds 30 of them at most.
        assert!(usage.total <= 3 << 20, "{usage:?}");
        for owner in 1..=4u8 {
            assert!(usage.of(&[owner; 32]).bytes <= 1 << 20, "{usage:?}");
        }
        assert_eq!(usage.total, ok.load(std::sync::atomic::Ordering::Relaxed) as u64 * (100 << 10));
        assert_eq!(s.rebuild_usage().unwrap(), usage, "the totals match a scan");
    }

    #[test]
    fn partials_per_owner_are_capped() {
        let (_d, s) = store();
        let limits = OwnerLimits { bytes: u64::MAX, partials: 3 };
        for i in 0..3u8 {
            drop(s.partial_within(BlobHash::of(&[i]), 1, [5; 32], limits).unwrap());
        }
        let fourth = s.partial_within(BlobHash::of(&[9]), 1, [5; 32], limits);
        assert!(matches!(fourth, Err(StoreError::TooManyPartials { limit: 3 })));
        // Resuming one of the three is not a new one; another owner is not held to it.
        drop(s.partial_within(BlobHash::of(&[0]), 1, [5; 32], limits).unwrap());
        drop(s.partial_within(BlobHash::of(&[9]), 1, [6; 32], limits).unwrap());
    }

    #[test]
    fn the_totals_follow_every_change_and_match_a_scan() {
        let size = 5 * G + 3;
        let (_d1, src, hash, _) = source(size);
        let (d2, dst) = store();
        let check = |what: &str| {
            let kept = dst.usage().unwrap();
            assert_eq!(dst.rebuild_usage().unwrap(), kept, "after {what}");
        };
        let f = d2.path().join("local");
        std::fs::write(&f, data(2 * G)).unwrap();
        let local = dst.import_file(&f).unwrap();
        check("an import");
        dst.import_file(&f).unwrap();
        check("the same import again");
        interrupted(&src, &dst, hash, size, 2);
        check("an interrupted partial");
        assert_eq!(dst.usage().unwrap().of(&[0; 32]).partials, 1);
        let mut p = dst.partial(hash, size, [7; 32]).unwrap();
        fill(&src, &hash, &mut p, (2, groups(size)), u64::MAX);
        p.publish().unwrap();
        check("publishing it");
        let other = BlobHash::of(b"x");
        drop(dst.partial_within(other, 1, [8; 32], OwnerLimits::NONE).unwrap());
        check("a second partial");
        assert_eq!(dst.gc(Duration::ZERO).unwrap().len(), 1);
        check("gc");
        dst.remove(&local.hash).unwrap();
        check("removing a blob");
        dst.remove(&hash).unwrap();
        check("removing the last");
        assert_eq!(dst.usage().unwrap(), Usage::default());
    }

    #[test]
    fn a_partial_damaged_on_disk_is_not_trusted_on_resume() {
        let size = 9 * G + 100;
        let (_d1, src, hash, d) = source(size);
        let (_d2, dst) = store();
        interrupted(&src, &dst, hash, size, 6);
        let dir = dst.root.join("partial").join(hash.to_string());
        // One bit of a kept group flips on disk.
        let mut bytes = std::fs::read(dir.join("data")).unwrap();
        bytes[3 * G as usize + 17] ^= 4;
        std::fs::write(dir.join("data"), &bytes).unwrap();
        let mut p = dst.partial(hash, size, [0; 32]).unwrap();
        assert_eq!(p.have().count(), 0, "the damaged partial starts over");
        fill(&src, &hash, &mut p, (0, 10), u64::MAX);
        p.publish().unwrap();
        dst.verify(&hash).unwrap();
        let mut back = Vec::new();
        dst.open_blob(&hash).unwrap().read_to_end(&mut back).unwrap();
        assert_eq!(back, d);

        // Same with a damaged parent in the stored tree.
        let (_d3, dst) = store();
        interrupted(&src, &dst, hash, size, 6);
        let obao = dst.root.join("partial").join(hash.to_string()).join("obao");
        let mut bytes = std::fs::read(&obao).unwrap();
        bytes[1] ^= 1;
        std::fs::write(&obao, &bytes).unwrap();
        assert_eq!(dst.partial(hash, size, [0; 32]).unwrap().have().count(), 0);
        // An undamaged partial is kept.
        let (_d4, dst) = store();
        interrupted(&src, &dst, hash, size, 6);
        assert_eq!(dst.partial(hash, size, [0; 32]).unwrap().have().count(), 6);
    }

    #[test]
    fn gc_removes_idle_partials_but_not_busy_ones_or_blobs() {
        let (_d1, src, a, _) = source(5 * G);
        let (_d2, dst) = store();
        let mut p = dst.partial(a, 5 * G, [0; 32]).unwrap();
        fill(&src, &a, &mut p, (0, 5), 2);
        p.checkpoint().unwrap();
        assert!(dst.gc(Duration::ZERO).unwrap().is_empty(), "being written");
        drop(p);
        assert!(dst.gc(Duration::from_secs(3600)).unwrap().is_empty(), "not idle long enough");
        let f = _d2.path().join("whole");
        std::fs::write(&f, b"kept").unwrap();
        let whole = dst.import_file(&f).unwrap().hash;
        let removed = dst.gc(Duration::ZERO).unwrap();
        assert_eq!(removed.len(), 1);
        assert_eq!((removed[0].hash, removed[0].have_bytes()), (a, 2 * G));
        assert!(dst.partials().unwrap().is_empty());
        dst.verify(&whole).unwrap();
    }

    #[test]
    fn rm_removes_a_partial_too() {
        let (_d1, src, hash, _) = source(5 * G);
        let (_d2, dst) = store();
        let mut p = dst.partial(hash, 5 * G, [0; 32]).unwrap();
        fill(&src, &hash, &mut p, (0, 5), 1);
        p.checkpoint().unwrap();
        drop(p);
        dst.remove(&hash).unwrap();
        assert!(dst.partials().unwrap().is_empty());
        assert!(matches!(dst.remove(&hash), Err(StoreError::NotFound(_))));
    }

    /// A bit per group, the obvious model of [`Ranges`].
    fn model(ops: &[(u64, u64)]) -> Vec<bool> {
        let mut bits = vec![false; 64];
        for &(a, b) in ops {
            for i in a..b {
                bits[i as usize] = true;
            }
        }
        bits
    }

    proptest! {
        #[test]
        fn ranges_match_a_bitset(ops in proptest::collection::vec((0u64..64, 0u64..64), 0..12), q in (0u64..64, 0u64..64)) {
            let ops: Vec<_> = ops.into_iter().map(|(a, b)| (a.min(b), a.max(b))).collect();
            let mut r = Ranges::default();
            for &(a, b) in &ops {
                r.insert(a, b);
            }
            let bits = model(&ops);
            prop_assert_eq!(r.count(), bits.iter().filter(|b| **b).count() as u64);
            for w in r.as_slice().windows(2) {
                prop_assert!(w[0].1 < w[1].0, "sorted, disjoint, not adjacent");
            }
            let (a, b) = (q.0.min(q.1), q.0.max(q.1));
            let gaps = r.gaps(a, b);
            let from_gaps = model(&gaps);
            for i in 0..64u64 {
                let in_q = (a..b).contains(&i);
                prop_assert_eq!(from_gaps[i as usize], in_q && !bits[i as usize]);
            }
            prop_assert_eq!(r.contains(a, b), gaps.is_empty());
        }

        #[test]
        fn state_files_round_trip(size in any::<u64>(), owner in any::<[u8; 32]>(), cuts in proptest::collection::vec(any::<u64>(), 0..10)) {
            let n = tree::groups(size);
            let mut cuts: Vec<u64> = cuts.into_iter().map(|c| c % n.max(1)).collect();
            cuts.sort_unstable();
            cuts.dedup();
            let mut have = Ranges::default();
            for pair in cuts.chunks(2) {
                if let [a, b] = pair { have.insert(*a, *b); }
            }
            let bytes = partial::encode_state(size, &owner, &have);
            prop_assert_eq!(partial::decode_state(&bytes), Some((size, owner, have)));
        }

        #[test]
        fn any_state_bytes_decode_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = partial::decode_state(&bytes);
        }
    }
}

#[test]
fn the_quota_counts_complete_and_partial_blobs() {
    let (dir, s) = store();
    let s = s.with_quota(100);
    let a = dir.path().join("a");
    std::fs::write(&a, [1u8; 60]).unwrap();
    s.import_file(&a).unwrap();
    let b = dir.path().join("b");
    std::fs::write(&b, [2u8; 60]).unwrap();
    assert!(matches!(s.import_file(&b), Err(StoreError::Full { size: 60, used: 60, quota: 100 })));
    let hash = BlobHash::of(&[3u8; 30]);
    let p = s.partial(hash, 30, [0; 32]).unwrap();
    drop(p);
    assert_eq!(s.used_bytes().unwrap(), 90, "a partial counts at its full size");
    // Resuming it is not a new blob.
    drop(s.partial(hash, 30, [0; 32]).unwrap());
    assert!(matches!(s.partial(BlobHash::of(b"x"), 11, [0; 32]), Err(StoreError::Full { .. })));
    assert!(s.clone().with_quota(0).import_file(&b).is_ok(), "0 means no limit");
}

mod references {
    use super::*;

    #[test]
    fn a_referenced_file_is_served_in_place_until_it_changes() {
        let (dir, s) = store();
        let src = dir.path().join("big.bin");
        let bytes = data(5 * G + 17);
        std::fs::write(&src, &bytes).unwrap();
        let info = s.import_reference(&src).unwrap();
        assert_eq!(info.hash, BlobHash::of(&bytes));
        assert!(!s.data_path(&info.hash).exists(), "no copy");
        assert_eq!(s.used_bytes().unwrap(), 0, "referenced bytes are not the store's");
        assert_eq!(s.list().unwrap(), vec![info]);
        s.verify(&info.hash).unwrap();
        let mut read = Vec::new();
        s.open_blob(&info.hash).unwrap().read_to_end(&mut read).unwrap();
        assert_eq!(read, bytes);
        assert_eq!(s.reference(&info.hash).unwrap().path, src.canonicalize().unwrap());

        // Changed in place: refused, and named.
        let mut changed = bytes.clone();
        changed[3] ^= 1;
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&src, &changed).unwrap();
        let err = s.open_blob(&info.hash).unwrap_err();
        assert!(matches!(err, StoreError::Changed { .. }), "{err}");
        assert!(err.to_string().contains("big.bin"), "{err}");
        assert!(s.verify(&info.hash).is_err());
        // Gone: the same.
        std::fs::remove_file(&src).unwrap();
        assert!(matches!(s.open_blob(&info.hash), Err(StoreError::Changed { .. })));
        // Removing the blob never touches the user's files.
        std::fs::write(&src, &bytes).unwrap();
        s.remove(&info.hash).unwrap();
        assert_eq!(std::fs::read(&src).unwrap(), bytes);
        assert!(s.list().unwrap().is_empty());
    }

    #[test]
    fn a_reference_edited_with_its_time_and_size_restored_is_still_caught() {
        let (dir, s) = store();
        let src = dir.path().join("f");
        let bytes = data(3 * G);
        std::fs::write(&src, &bytes).unwrap();
        let info = s.import_reference(&src).unwrap();
        let before = std::fs::metadata(&src).unwrap().modified().unwrap();
        let f = std::fs::OpenOptions::new().write(true).open(&src).unwrap();
        f.write_all_at(b"X", 100).unwrap();
        f.set_modified(before).unwrap();
        drop(f);
        // The status-change time moved: reported as changed, not held.
        assert!(matches!(s.verify(&info.hash), Err(StoreError::Changed { .. })));
        assert!(s.get(&info.hash).is_err(), "a changed reference is not held: a peer may bring a good copy");
    }
}
