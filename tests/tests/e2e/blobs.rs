//! `alp blob …` on the local store.

use crate::common::{Home, output};

fn file(h: &Home, name: &str, bytes: &[u8]) -> String {
    let p = h.path().join(name);
    std::fs::write(&p, bytes).unwrap();
    p.to_str().unwrap().to_owned()
}

#[test]
fn add_ls_cat_export_rm_round_trip() {
    let h = Home::new();
    h.init("personal");
    let bytes: Vec<u8> = (0..200_000u32).map(|i| (i * 7) as u8).collect();
    let src = file(&h, "data.bin", &bytes);
    let hash = h.run(&["blob", "add", &src]).ok().trim().to_owned();
    assert_eq!(hash, blake3::hash(&bytes).to_hex().as_str(), "the address is b3sum's");
    let v = h.run(&["blob", "add", &src, "--json"]).json();
    assert_eq!(v["size"], 200_000);
    let v = h.run(&["blob", "ls", "--json"]).json();
    assert_eq!(v.as_array().unwrap().len(), 1, "same content stored once");
    assert!(h.run(&["blob", "ls"]).ok().contains(&hash));

    let mut c = h.cmd(&["blob", "cat", &hash]);
    c.stdout(std::process::Stdio::piped());
    let out = c.output().unwrap();
    assert!(out.status.success());
    assert_eq!(out.stdout, bytes);

    let dest = h.path().join("copy.bin");
    h.run(&["blob", "export", &hash, dest.to_str().unwrap()]).ok();
    assert_eq!(std::fs::read(&dest).unwrap(), bytes);
    assert_eq!(h.run(&["blob", "verify"]).ok().trim(), format!("ok       {hash}"));

    h.run(&["blob", "rm", &hash]).ok();
    h.run(&["blob", "cat", &hash]).fails(2, &["not in the store"]);
    h.run(&["blob", "rm", &hash]).fails(2, &["not in the store"]);
}

#[test]
fn bad_hashes_and_missing_files_are_refused() {
    let h = Home::new();
    h.init("personal");
    h.run(&["blob", "cat", "xyz"]).fails(2, &["xyz", "64 hex"]);
    h.run(&["blob", "add", "/nonexistent/file"]).fails(1, &["/nonexistent/file"]);
    h.run(&["blob", "export", &"ab".repeat(32), "/tmp/x"]).fails(2, &["not in the store"]);
}

#[test]
fn verify_reports_damage_with_exit_1() {
    let h = Home::new();
    h.init("personal");
    let good = file(&h, "good", b"fine");
    let bad = file(&h, "bad", &[9u8; 70_000]);
    h.run(&["blob", "add", &good]).ok();
    let bad_hash = h.run(&["blob", "add", &bad]).ok().trim().to_owned();
    let stored = h.path().join("profiles/personal/blobs/data").join(&bad_hash);
    let mut bytes = std::fs::read(&stored).unwrap();
    bytes[40_000] ^= 1;
    std::fs::write(&stored, bytes).unwrap();
    let r = h.run(&["blob", "verify"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stdout.contains(&format!("DAMAGED  {bad_hash}")) && r.stdout.contains("ok "), "{}", r.stdout);
    assert!(r.stderr.contains("1 of 2 blobs failed verification"), "{}", r.stderr);
    let mut c = h.cmd(&["blob", "verify", "--json"]);
    c.env("NO_COLOR", "1");
    let r = output(c);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().iter().filter(|b| b["ok"] == false).count(), 1);
}

#[test]
fn cat_into_a_closed_pipe_exits_quietly() {
    let h = Home::new();
    h.init("personal");
    let src = file(&h, "big", &vec![1u8; 3_000_000]);
    let hash = h.run(&["blob", "add", &src]).ok().trim().to_owned();
    let mut child = h.cmd(&["blob", "cat", &hash]).stdout(std::process::Stdio::piped()).spawn().unwrap();
    drop(child.stdout.take());
    assert!(child.wait().unwrap().success());
}

/// Two paired, served profiles: alice and bob (bob with a 1 MB limit).
fn paired(h: &Home) -> (crate::common::Served, crate::common::Served) {
    paired_with(h, &[("ALP__BLOB__MAX_SIZE", "1000000")])
}

/// alice and bob, paired and served, bob with `bob_env`.
fn paired_with(h: &Home, bob_env: &[(&str, &str)]) -> (crate::common::Served, crate::common::Served) {
    h.init("alice");
    h.init("bob");
    let alice = h.serve("alice");
    let bob = h.serve_on("bob", 0, bob_env);
    let ticket = h.run(&["-p", "alice", "invite"]).ok().trim().to_owned();
    h.run(&["-p", "bob", "pair", &ticket]).ok();
    (alice, bob)
}

#[test]
fn put_needs_permission_then_stores_with_a_signed_receipt() {
    let h = Home::new();
    let (_alice, _bob) = paired(&h);
    let bytes: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let src = file(&h, "doc.bin", &bytes);
    h.run(&["-p", "alice", "blob", "put", &src, "--to", "bob"])
        .fails(2, &["forbidden", "alp peer allow NAME blob.put"]);
    assert_eq!(h.run(&["-p", "bob", "blob", "ls", "--json"]).json(), serde_json::json!([]));
    h.run(&["-p", "bob", "peer", "allow", "alice", "blob.put"]).ok();
    let hash = h.run(&["-p", "alice", "blob", "put", &src, "--to", "bob"]).ok().trim().to_owned();
    assert_eq!(hash, blake3::hash(&bytes).to_hex().as_str());
    let mut c = h.cmd(&["-p", "bob", "blob", "cat", &hash]);
    c.stdout(std::process::Stdio::piped());
    assert_eq!(c.output().unwrap().stdout, bytes);
    let receipts = h.run(&["-p", "bob", "blob", "receipt", &hash, "--json"]).json();
    assert_eq!(receipts[0]["sender_name"], "alice");
    assert_eq!(receipts[0]["signature_valid"], true);
    assert_eq!(receipts[0]["size"], 300_000);
    assert!(h.run(&["-p", "bob", "blob", "receipt", &hash]).ok().contains("from alice"));
    h.run(&["-p", "bob", "blob", "verify"]).ok();
}

#[test]
fn a_peer_over_its_quota_is_refused_before_storage() {
    let h = Home::new();
    let (_alice, _bob) = paired_with(&h, &[("ALP__BLOB__PEER_QUOTA", "1000")]);
    h.run(&["-p", "bob", "peer", "allow", "alice", "blob.put"]).ok();
    let first = file(&h, "a.bin", &[1u8; 600]);
    let hash = h.run(&["-p", "alice", "blob", "put", &first, "--to", "bob"]).ok().trim().to_owned();
    // Sending the same blob again costs nothing more.
    h.run(&["-p", "alice", "blob", "put", &first, "--to", "bob"]).ok();
    let second = file(&h, "b.bin", &[2u8; 600]);
    h.run(&["-p", "alice", "blob", "put", &second, "--to", "bob"]).fails(1, &["over your quota", "600 of 1000 bytes"]);
    let stored = h.run(&["-p", "bob", "blob", "ls", "--json"]).json();
    assert_eq!(stored.as_array().unwrap().len(), 1);
    assert_eq!(stored[0]["hash"], hash.as_str());
    let tmp = h.path().join("profiles/bob/blobs/tmp");
    assert_eq!(std::fs::read_dir(tmp).map(|d| d.count()).unwrap_or(0), 0, "not a byte stored");
}

#[test]
fn the_profile_store_quota_bounds_pushes_fetches_and_adds() {
    let h = Home::new();
    let (alice, _bob) = paired_with(&h, &[("ALP__BLOB__STORE_QUOTA", "1000")]);
    h.run(&["-p", "bob", "peer", "allow", "alice", "blob.put"]).ok();
    let first = file(&h, "a.bin", &[1u8; 600]);
    h.run(&["-p", "alice", "blob", "put", &first, "--to", "bob"]).ok();
    let second = file(&h, "b.bin", &[2u8; 600]);
    h.run(&["-p", "alice", "blob", "put", &second, "--to", "bob"])
        .fails(1, &["blob store is full", "600 of 1000 bytes used"]);
    assert_eq!(h.run(&["-p", "bob", "blob", "ls", "--partial", "--json"]).json().as_array().unwrap().len(), 1);

    // The same quota binds bob's own commands: adding, and fetching.
    let quota = [("ALP__BLOB__STORE_QUOTA", "1000")];
    let mut c = h.cmd(&["-p", "bob", "blob", "add", &second]);
    c.envs(quota);
    crate::common::output(c).fails(2, &["over their quota", "blob.store_quota"]);
    let hash = h.run(&["-p", "alice", "blob", "add", &second]).ok().trim().to_owned();
    h.run(&["-p", "alice", "blob", "share", &hash, "--with", "bob"]).ok();
    h.run(&["-p", "alice", "peer", "allow", "bob", "blob.get"]).ok();
    let mut c = h.cmd(&["-p", "bob", "blob", "get", &hash, "--from", "alice"]);
    c.envs(quota);
    crate::common::output(c).fails(1, &["over their quota"]);
    drop(alice);
    assert_eq!(h.run(&["-p", "bob", "blob", "ls", "--partial", "--json"]).json().as_array().unwrap().len(), 1);
}

#[test]
fn a_blob_over_the_size_limit_is_refused_before_storage() {
    let h = Home::new();
    let (_alice, _bob) = paired(&h);
    h.run(&["-p", "bob", "peer", "allow", "alice", "blob.put"]).ok();
    let src = file(&h, "big.bin", &vec![5u8; 1_000_001]);
    h.run(&["-p", "alice", "blob", "put", &src, "--to", "bob"]).fails(1, &["too_large", "over this node's limit"]);
    assert_eq!(h.run(&["-p", "bob", "blob", "ls", "--json"]).json(), serde_json::json!([]));
    let tmp = h.path().join("profiles/bob/blobs/tmp");
    assert_eq!(std::fs::read_dir(tmp).map(|d| d.count()).unwrap_or(0), 0, "not a byte stored");
}

#[test]
fn get_serves_only_what_is_shared_and_not_shared_looks_like_not_found() {
    let h = Home::new();
    let (_alice, _bob) = paired(&h);
    let bytes = vec![42u8; 50_000];
    let src = file(&h, "shared.bin", &bytes);
    let hash = h.run(&["-p", "alice", "blob", "add", &src]).ok().trim().to_owned();
    h.run(&["-p", "bob", "blob", "get", &hash, "--from", "alice"]).fails(2, &["forbidden", "blob.get"]);
    h.run(&["-p", "alice", "peer", "allow", "bob", "blob.get"]).ok();
    let unknown = "0".repeat(64);
    let not_shared = h.run(&["-p", "bob", "blob", "get", &hash, "--from", "alice"]);
    let not_found = h.run(&["-p", "bob", "blob", "get", &unknown, "--from", "alice"]);
    not_shared.fails(1, &["not_found"]);
    not_found.fails(1, &["not_found"]);
    h.run(&["-p", "alice", "blob", "share", &hash, "--with", "bob"]).ok();
    let out = h.path().join("fetched.bin");
    let got = h.run(&["-p", "bob", "blob", "get", &hash, "--from", "alice", "-o", out.to_str().unwrap()]);
    assert_eq!(got.ok().trim(), hash);
    assert_eq!(std::fs::read(&out).unwrap(), bytes);
    let receipts = h.run(&["-p", "bob", "blob", "receipt", &hash, "--json"]).json();
    assert_eq!(receipts[0]["sender_name"], "alice");
    h.run(&["-p", "alice", "blob", "unshare", &hash, "--with", "bob"]).ok();
    h.run(&["-p", "bob", "blob", "rm", &hash]).ok();
    h.run(&["-p", "bob", "blob", "get", &hash, "--from", "alice"]).fails(1, &["not_found"]);
    h.run(&["-p", "alice", "blob", "share", &hash, "--with", "nobody"]).fails(2, &["unknown peer 'nobody'"]);
}

/// A malicious sender (in-process, trusted by a real `alp serve` receiver
/// and allowed blob.put) injects one fault at a time. Every transfer must
/// fail with a reason, and nothing may be published or left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_refuses_every_tampered_stream_and_publishes_nothing() {
    use alp_link::{Faults, RequestError};
    let h = Home::new();
    h.init("bob");
    let bob = h.serve("bob");
    let (key, ep) = crate::common::client(9);
    h.trust("bob", "mallory", &key);
    h.run(&["-p", "bob", "peer", "allow", "mallory", "blob.put"]).ok();
    let dir = tempfile::tempdir().unwrap();
    let store = alp_blobstore::store::Store::open(dir.path()).unwrap();
    let bytes: Vec<u8> = (0..300_000u32).map(|i| (i * 13) as u8).collect();
    let src = dir.path().join("payload");
    std::fs::write(&src, &bytes).unwrap();
    let hash = store.import_file(&src).unwrap().hash;
    let link = ep.dial(bob.addr, crate::common::node_id(&h, "bob")).await.unwrap();
    let cases: [(Faults, &str); 6] = [
        (Faults { flip_bit_in_record: Some(2), ..Faults::default() }, "record 2 (payload bytes from 131072)"),
        (Faults { swap_record: Some(1), ..Faults::default() }, "record 1 (payload bytes from 65536)"),
        (Faults { duplicate_record: Some(1), ..Faults::default() }, "record 2 (payload bytes from 131072)"),
        (Faults { drop_final: true, ..Faults::default() }, "blob refused"),
        (Faults { corrupt_receipt: true, ..Faults::default() }, "receipt refused"),
        (Faults { skip_receipt: true, ..Faults::default() }, "receipt refused"),
    ];
    for (faults, expect) in cases {
        let err = link.put_blob_with(&store, hash, faults, &alp_link::silent).await.unwrap_err();
        match &err {
            RequestError::Remote(r) => assert!(r.message.contains(expect), "{faults:?}: {}", r.message),
            other => panic!("{faults:?}: expected the receiver's refusal, got {other}"),
        }
        assert_eq!(h.run(&["-p", "bob", "blob", "ls", "--json"]).json(), serde_json::json!([]), "{faults:?}");
        let tmp = h.path().join("profiles/bob/blobs/tmp");
        assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0, "{faults:?}: temp files left behind");
    }
    // The same link, without faults, succeeds: the failures were contained.
    // What verified before each refusal was kept, so only the rest moves.
    let pushed = link.put_blob(&store, hash, &alp_link::silent).await.unwrap();
    assert!(pushed.sent < 300_000 && !pushed.already_there, "{pushed:?}");
    assert_eq!(h.run(&["-p", "bob", "blob", "ls", "--json"]).json()[0]["hash"], hash.to_string());
}

/// A trusted in-process sender with blob.put on a real `alp serve`.
async fn sender(h: &Home, seed: u8, target: &str) -> alp_link::LinkEndpoint {
    let (key, ep) = crate::common::client(seed);
    h.trust(target, &format!("sender{seed}"), &key);
    h.run(&["-p", target, "peer", "allow", &format!("sender{seed}"), "blob.put"]).ok();
    ep
}

fn store_with(dir: &std::path::Path, blobs: &[Vec<u8>]) -> (alp_blobstore::store::Store, Vec<alp_blobstore::BlobHash>) {
    let store = alp_blobstore::store::Store::open(dir).unwrap();
    let hashes = blobs
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let p = dir.join(format!("src{i}"));
            std::fs::write(&p, b).unwrap();
            store.import_file(&p).unwrap().hash
        })
        .collect();
    (store, hashes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_transfers_of_the_same_and_different_blobs() {
    let h = Home::new();
    h.init("bob");
    let bob = h.serve("bob");
    let bob_id = crate::common::node_id(&h, "bob");
    let dir = tempfile::tempdir().unwrap();
    let blobs: Vec<Vec<u8>> = (0..4u8).map(|i| vec![i; 200_000 + usize::from(i) * 70_001]).collect();
    let (store, hashes) = store_with(dir.path(), &blobs);
    let mut tasks = Vec::new();
    for s in 0..4u8 {
        let ep = sender(&h, 40 + s, "bob").await;
        let link = std::sync::Arc::new(ep.dial(bob.addr, bob_id).await.unwrap());
        // Each sender pushes every blob, all at once on its link: the same
        // blob arrives four times concurrently, different blobs in parallel.
        for hash in hashes.clone() {
            let (link, store) = (link.clone(), store.clone());
            tasks.push(tokio::spawn(async move {
                link.put_blob(&store, hash, &alp_link::silent).await.map(|p| (hash, p.receipts.len()))
            }));
        }
    }
    let mut sent_receipts = std::collections::HashMap::new();
    for t in tasks {
        let (hash, n) =
            tokio::time::timeout(std::time::Duration::from_secs(120), t).await.expect("bounded").unwrap().unwrap();
        *sent_receipts.entry(hash).or_insert(0) += n;
    }
    let listed = h.run(&["-p", "bob", "blob", "ls", "--json"]).json();
    assert_eq!(listed.as_array().unwrap().len(), 4, "each blob stored once");
    h.run(&["-p", "bob", "blob", "verify"]).ok();
    for hash in &hashes {
        let receipts = h.run(&["-p", "bob", "blob", "receipt", &hash.to_string(), "--json"]).json();
        let kept = receipts.as_array().unwrap().len();
        // A push that finds the blob stored sends nothing and signs nothing.
        assert!(kept >= 1, "at least the transfer that stored it");
        assert_eq!(kept, sent_receipts[hash], "one receipt kept per part sent");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_size_boundary_survives_put_and_get() {
    const G: usize = 16 * 1024;
    const R: usize = 64 * 1024;
    let sizes = [0, 1, G - 1, G, G + 1, R - 1, R, R + 1, R + G - 64, 3 * R + 7, 3 * 1024 * 1024 + 5];
    let h = Home::new();
    h.init("bob");
    let bob = h.serve("bob");
    let bob_id = crate::common::node_id(&h, "bob");
    let dir = tempfile::tempdir().unwrap();
    let blobs: Vec<Vec<u8>> =
        sizes.iter().map(|&n| (0..n).map(|i| (i.wrapping_mul(7919) >> 5) as u8).collect()).collect();
    let (store, hashes) = store_with(dir.path(), &blobs);
    let (key, ep) = crate::common::client(77);
    h.trust("bob", "sender77", &key);
    h.run(&["-p", "bob", "peer", "allow", "sender77", "blob.put", "blob.get"]).ok();
    let link = ep.dial(bob.addr, bob_id).await.unwrap();
    let back = alp_blobstore::store::Store::open(&dir.path().join("back")).unwrap();
    for (hash, bytes) in hashes.iter().zip(&blobs) {
        let pushed = link.put_blob(&store, *hash, &alp_link::silent).await.unwrap();
        assert_eq!(pushed.sent, bytes.len() as u64);
        h.run(&["-p", "bob", "blob", "share", &hash.to_string(), "--with", "sender77"]).ok();
        let got = link.get_blob(&back, *hash, None, &alp_link::silent).await.unwrap();
        assert_eq!(got.received, bytes.len() as u64);
        let mut copy = Vec::new();
        std::io::Read::read_to_end(&mut back.open_blob(hash).unwrap(), &mut copy).unwrap();
        assert!(copy == *bytes, "{} bytes came back changed", bytes.len());
    }
    h.run(&["-p", "bob", "blob", "verify"]).ok();
}

type Counts = std::sync::Arc<[std::sync::atomic::AtomicU64; 2]>;

/// Forwards `data` to `to` on `sock`, or drops it (counted in `counts[0]`)
/// or delays it so it arrives out of order (`counts[1]`), by `fate`.
async fn forward(
    sock: &std::sync::Arc<tokio::net::UdpSocket>,
    data: &[u8],
    to: std::net::SocketAddr,
    fate: u8,
    counts: &Counts,
) {
    let count = |i: usize| counts[i].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    match fate {
        0..=7 => {
            count(0);
        }
        8..=20 => {
            count(1);
            let (sock, data) = (sock.clone(), data.to_vec());
            tokio::spawn(async move {
                tokio::time::sleep(std::time::Duration::from_millis(3)).await;
                let _ = sock.send_to(&data, to).await;
            });
        }
        _ => {
            let _ = sock.send_to(data, to).await;
        }
    }
}

/// A UDP proxy that drops about 3% of datagrams in each direction and
/// delays about 5% so they arrive out of order. Runs until aborted.
/// Returns its address, its task, and counters of (dropped, delayed).
async fn lossy_proxy(upstream: std::net::SocketAddr) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>, Counts) {
    use std::sync::Arc;
    use tokio::net::UdpSocket;
    let front = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let back = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let addr = front.local_addr().unwrap();
    // A tiny deterministic generator: the test must not depend on luck.
    let fate = |n: u64| (n.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 56) as u8;
    let counts: Counts = Arc::default();
    let c = counts.clone();
    let task = tokio::spawn(async move {
        let (mut buf_a, mut buf_b) = (vec![0u8; 65_536], vec![0u8; 65_536]);
        let (mut n_a, mut n_b, mut client) = (0u64, 0u64, None);
        loop {
            tokio::select! {
                r = front.recv_from(&mut buf_a) => {
                    let Ok((len, from)) = r else { return };
                    // Like a relay bound to its first client (socat without
                    // fork): only that client's datagrams go through.
                    if client.is_some_and(|c| c != from) {
                        continue;
                    }
                    client = Some(from);
                    n_a += 1;
                    forward(&back, &buf_a[..len], upstream, fate(n_a), &c).await;
                }
                r = back.recv_from(&mut buf_b) => {
                    let Ok((len, _)) = r else { return };
                    let Some(to) = client else { continue };
                    n_b += 1;
                    forward(&front, &buf_b[..len], to, fate(n_b ^ 0x5555), &c).await;
                }
            }
        }
    });
    (addr, task, counts)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_over_a_lossy_reordering_path_completes_and_verifies() {
    let h = Home::new();
    h.init("bob");
    let bob = h.serve("bob");
    let bob_id = crate::common::node_id(&h, "bob");
    let (proxy, task, counts) = lossy_proxy(bob.addr).await;
    let dir = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    let (store, hashes) = store_with(dir.path(), &[data]);
    let ep = sender(&h, 60, "bob").await;
    let link = ep.dial(proxy, bob_id).await.unwrap();
    let put =
        tokio::time::timeout(std::time::Duration::from_secs(120), link.put_blob(&store, hashes[0], &alp_link::silent))
            .await;
    task.abort();
    put.expect("bounded").unwrap();
    let [dropped, delayed] = &*counts;
    let (dropped, delayed) =
        (dropped.load(std::sync::atomic::Ordering::Relaxed), delayed.load(std::sync::atomic::Ordering::Relaxed));
    assert!(dropped >= 10 && delayed >= 10, "the path was not lossy enough: {dropped} dropped, {delayed} delayed");
    h.run(&["-p", "bob", "blob", "verify", &hashes[0].to_string()]).ok();
}
