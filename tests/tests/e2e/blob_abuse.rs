//! Blob attacks of the hardening review, against a real `alp serve`:
//! concurrent pushes racing a quota, empty partials by the thousand, a
//! peer taking over another's interrupted push, probing for blobs that
//! are not shared, and error messages that leaked local paths.

use alp_blobstore::BlobHash;
use alp_blobstore::store::Store;
use alp_link::{LinkEndpoint, RequestError};
use alp_protocol::envelope::{BlobPutRequest, BlobPutResponse, ErrorCode, from_cbor, to_cbor};

use crate::common::{Home, Served, client, node_id};

/// `alice` served with `env`, trusting an in-process sender allowed blob.put.
fn receiver(h: &Home, env: &[(&str, &str)], seed: u8) -> (Served, LinkEndpoint) {
    h.init("alice");
    let alice = h.serve_on("alice", 0, env);
    let (key, ep) = client(seed);
    let name = format!("sender{seed}");
    h.trust("alice", &name, &key);
    h.run(&["-p", "alice", "peer", "allow", &name, "blob.put"]).ok();
    (alice, ep)
}

/// A local store holding `n` distinct blobs of `size` bytes.
fn blobs(dir: &std::path::Path, n: u32, size: usize) -> (Store, Vec<BlobHash>) {
    let store = Store::open(dir).unwrap();
    let hashes = (0..n)
        .map(|i| {
            let mut bytes = vec![0u8; size];
            bytes[..4].copy_from_slice(&i.to_be_bytes());
            store.import(&mut bytes.as_slice(), size as u64, std::path::Path::new("x")).unwrap().hash
        })
        .collect();
    (store, hashes)
}

/// Sends a raw `blob.put` request and reads its first answer.
async fn announce(link: &alp_link::Link, hash: BlobHash, size: u64) -> Result<BlobPutResponse, RequestError> {
    let body = BlobPutRequest { hash: hash.as_bytes().to_vec(), size, transfer_id: rand_id().to_vec(), name: None };
    let bytes = link.call("blob.put", to_cbor(&body)).await?;
    Ok(from_cbor(&bytes).unwrap())
}

fn rand_id() -> [u8; 16] {
    let mut id = [0u8; 16];
    getrandom::fill(&mut id).unwrap();
    id
}

fn remote(e: RequestError) -> (ErrorCode, String) {
    match e {
        RequestError::Remote(r) => (r.code, r.message),
        other => panic!("expected the node's refusal, got {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_pushes_cannot_overrun_the_quotas() {
    let h = Home::new();
    let env = [("ALP__BLOB__PEER_QUOTA", "1000000"), ("ALP__BLOB__PARTIALS_PER_PEER", "100")];
    let (alice, ep) = receiver(&h, &env, 51);
    let dir = tempfile::tempdir().unwrap();
    let (store, hashes) = blobs(dir.path(), 60, 100_000);
    let link = std::sync::Arc::new(ep.dial(alice.addr, node_id(&h, "alice")).await.unwrap());
    let mut pushes = tokio::task::JoinSet::new();
    for hash in hashes {
        let (link, store) = (link.clone(), store.clone());
        pushes.spawn(async move { link.put_blob(&store, hash, &alp_link::silent).await.is_ok() });
    }
    let mut ok = 0;
    while let Some(r) = pushes.join_next().await {
        ok += usize::from(r.unwrap());
    }
    let stored = h.run(&["-p", "alice", "blob", "ls", "--partial", "--json"]).json();
    let bytes: u64 = stored.as_array().unwrap().iter().map(|b| b["size"].as_u64().unwrap()).sum();
    assert!(bytes <= 1_000_000, "{bytes} bytes kept against a 1000000-byte quota");
    assert!((1..=10).contains(&ok), "{ok} pushes succeeded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_or_endless_partials_are_refused() {
    let h = Home::new();
    let (alice, ep) = receiver(&h, &[], 52);
    let link = ep.dial(alice.addr, node_id(&h, "alice")).await.unwrap();
    // Size 0 with any hash but the empty blob's cannot be right.
    for i in 0..50u32 {
        let (code, msg) = remote(announce(&link, BlobHash::of(&i.to_be_bytes()), 0).await.unwrap_err());
        assert_eq!(code, ErrorCode::BadRequest, "{msg}");
    }
    // Pushes started and abandoned: at most blob.partials_per_peer (16) are kept.
    let mut refused = 0;
    for i in 0..60u32 {
        match announce(&link, BlobHash::of(&(1000 + i).to_be_bytes()), 10).await {
            Ok(r) => assert!(!r.stored),
            Err(e) => {
                let (code, msg) = remote(e);
                assert!(code == ErrorCode::TooLarge && msg.contains("unfinished pushes"), "{msg}");
                refused += 1;
            }
        }
    }
    assert_eq!(refused, 44);
    let kept = h.run(&["-p", "alice", "blob", "ls", "--partial", "--json"]).json();
    assert_eq!(kept.as_array().unwrap().len(), 16);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_peer_cannot_take_over_an_interrupted_push() {
    let h = Home::new();
    let (alice, ep) = receiver(&h, &[], 53);
    let (key, other) = client(54);
    h.trust("alice", "other", &key);
    h.run(&["-p", "alice", "peer", "allow", "other", "blob.put"]).ok();
    let dir = tempfile::tempdir().unwrap();
    let (store, hashes) = blobs(dir.path(), 1, 600_000);
    let alice_id = node_id(&h, "alice");
    let link = ep.dial(alice.addr, alice_id).await.unwrap();
    // The first push stops short of its end.
    let faults = alp_link::Faults { drop_final: true, ..Default::default() };
    link.put_blob_with(&store, hashes[0], faults, &alp_link::silent).await.unwrap_err();
    // Another peer announces the same hash with another size: refused.
    let spoiler = other.dial(alice.addr, alice_id).await.unwrap();
    let (code, msg) = remote(announce(&spoiler, hashes[0], 1_000_000).await.unwrap_err());
    assert_eq!(code, ErrorCode::BadRequest);
    assert!(msg.contains("600000 bytes"), "{msg}");
    // The first sender resumes and sends only what is missing.
    let pushed = link.put_blob(&store, hashes[0], &alp_link::silent).await.unwrap();
    assert!(pushed.sent < 100_000, "{pushed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_blob_is_revealed_only_to_whom_it_is_shared_with() {
    let h = Home::new();
    let (alice, ep) = receiver(&h, &[], 55);
    let secret = h.path().join("secret.bin");
    std::fs::write(&secret, vec![7u8; 50_000]).unwrap();
    let hash = h.run(&["-p", "alice", "blob", "add", secret.to_str().unwrap()]).ok().trim().to_owned();
    let hash: BlobHash = hash.parse().unwrap();
    let link = ep.dial(alice.addr, node_id(&h, "alice")).await.unwrap();
    // Held but not shared: the same answer as for a blob alice lacks.
    let held = announce(&link, hash, 50_000).await.unwrap();
    let unknown = announce(&link, BlobHash::of(b"never seen"), 50_000).await.unwrap();
    assert!(!held.stored && !unknown.stored);
    assert_eq!(held.range, unknown.range);
    h.run(&["-p", "alice", "blob", "share", &hash.to_string(), "--with", "sender55"]).ok();
    assert!(announce(&link, hash, 50_000).await.unwrap().stored);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_sent_to_peers_name_no_local_path() {
    let h = Home::new();
    // A disk reserve no disk has: every push is refused for lack of space.
    let (alice, ep) = receiver(&h, &[("ALP__BLOB__MIN_FREE", "1000000000000000000")], 56);
    let link = ep.dial(alice.addr, node_id(&h, "alice")).await.unwrap();
    let (code, msg) = remote(announce(&link, BlobHash::of(b"x"), 1000).await.unwrap_err());
    assert_eq!(code, ErrorCode::TooLarge);
    assert_eq!(msg, "this node is short of disk space");
    let home = h.path().to_str().unwrap().to_owned();
    assert!(!msg.contains(&home) && !msg.contains('/'), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_stops_serving_its_own_damaged_copy() {
    let h = Home::new();
    let (alice, ep) = receiver(&h, &[], 57);
    h.run(&["-p", "alice", "peer", "allow", "sender57", "blob.get"]).ok();
    let src = h.path().join("big.bin");
    std::fs::write(&src, (0..300_000u32).map(|i| (i % 251) as u8).collect::<Vec<_>>()).unwrap();
    let hash = h.run(&["-p", "alice", "blob", "add", src.to_str().unwrap()]).ok().trim().to_owned();
    h.run(&["-p", "alice", "blob", "share", &hash, "--with", "sender57"]).ok();
    // The bytes on alice's disk rot.
    let stored = h.path().join("profiles/alice/blobs/data").join(&hash);
    let mut bytes = std::fs::read(&stored).unwrap();
    bytes[100_000] ^= 1;
    std::fs::write(&stored, &bytes).unwrap();
    let verify = h.run(&["-p", "alice", "blob", "verify", &hash]);
    assert_eq!(verify.code, 1);
    assert!(verify.stderr.contains("data group 6 (bytes 98304..114688)"), "{}", verify.stderr);

    let dir = tempfile::tempdir().unwrap();
    let mine = Store::open(dir.path()).unwrap();
    let link = ep.dial(alice.addr, node_id(&h, "alice")).await.unwrap();
    let e = link.get_blob(&mine, hash.parse().unwrap(), None, &alp_link::silent).await.unwrap_err();
    assert!(e.to_string().contains("damaged"), "{e}");
    assert!(mine.list().unwrap().is_empty());
    // Alice took it out of her store, and says why in her own log only.
    assert_eq!(h.run(&["-p", "alice", "blob", "ls", "--json"]).json(), serde_json::json!([]));
    assert!(h.path().join("profiles/alice/blobs/damaged").join(&hash).exists());
}
