//! The store at every size boundary: import, read back, verify, dedup,
//! export, remove, and damage detection.

use super::*;

const G: u64 = GROUP_SIZE;
const SIZES: &[u64] = &[0, 1, G - 1, G, G + 1, 2 * G, 3 * G + 5, 64 * G - 1, 64 * G + 1, 5 * 1024 * 1024 + 3];

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
    bytes.truncate(bytes.len() - 1);
    std::fs::write(&path, &bytes).unwrap();
    assert!(s.verify(&info.hash).is_err());
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
