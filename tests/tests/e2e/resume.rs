//! Interrupted transfers: either side killed (SIGKILL) mid-transfer, then
//! the same command again moves only what is missing; byte ranges; GC of
//! partial blobs.
//!
//! The transfers run through a UDP proxy that paces them to a few MB/s, so
//! a kill reliably lands in the middle.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::common::{Home, Served};
use crate::throttle::Throttle;

/// Bytes the partial copy checkpoints at (see `alp_blobstore`).
const CHECKPOINT: u64 = alp_blobstore::store::partial::CHECKPOINT_BYTES;
const SIZE: u64 = 3 * CHECKPOINT + 12_345;

fn payload() -> Vec<u8> {
    (0..SIZE).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect()
}

/// alice serves and has the payload, shared with bob; bob trusts alice.
fn setup(h: &Home, alice_env: &[(&str, &str)]) -> (Served, String) {
    h.init("alice");
    h.init("bob");
    let alice = h.serve_on("alice", 0, alice_env);
    let ticket = h.run(&["-p", "alice", "invite"]).ok().trim().to_owned();
    h.run(&["-p", "bob", "pair", &ticket, "--name", "alice"]).ok();
    let src = h.path().join("payload.bin");
    std::fs::write(&src, payload()).unwrap();
    let hash = h.run(&["-p", "alice", "blob", "add", src.to_str().unwrap()]).ok().trim().to_owned();
    h.run(&["-p", "alice", "blob", "share", &hash, "--with", "bob"]).ok();
    h.run(&["-p", "alice", "peer", "allow", "bob", "blob.get"]).ok();
    (alice, hash)
}

/// What `profile` keeps of the partial blob `hash`: (bytes, being received).
fn kept(h: &Home, profile: &str, hash: &str) -> Option<(u64, bool)> {
    let v = h.run(&["-p", profile, "blob", "ls", "--partial", "--json"]).json();
    v.as_array()
        .unwrap()
        .iter()
        .find(|b| b["hash"] == hash && b.get("partial").is_some())
        .map(|b| (b["partial"].as_u64().unwrap(), b["receiving"].as_bool().unwrap()))
}

/// Waits (at most 60 s) until `profile` keeps at least one checkpoint of
/// `hash`.
fn wait_for_checkpoint(h: &Home, profile: &str, hash: &str, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if kept(h, profile, hash).is_some_and(|(k, _)| k >= CHECKPOINT) {
            return;
        }
        assert!(child.try_wait().unwrap().is_none(), "the transfer ended before it could be interrupted");
        assert!(Instant::now() < deadline, "no checkpoint within 60 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits (at most 30 s) until no transfer writes `profile`'s partial of
/// `hash` any more; returns the bytes it keeps.
fn wait_until_idle(h: &Home, profile: &str, hash: &str) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match kept(h, profile, hash) {
            Some((k, false)) => return k,
            Some((_, true)) => {}
            None => panic!("the partial copy is gone"),
        }
        assert!(Instant::now() < deadline, "the receiver never noticed the sender was gone");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn kill(child: &mut Child) {
    child.kill().unwrap();
    child.wait().unwrap();
}

fn spawn(h: &Home, args: &[&str], env: &[(&str, &str)]) -> Child {
    let mut c = h.cmd(args);
    c.envs(env.iter().copied()).stdout(Stdio::null()).stderr(Stdio::null());
    c.spawn().unwrap()
}

fn assert_stored(h: &Home, profile: &str, hash: &str) {
    h.run(&["-p", profile, "blob", "verify", hash]).ok();
    let mut c = h.cmd(&["-p", profile, "blob", "cat", hash]);
    c.stdout(Stdio::piped());
    assert!(c.output().unwrap().stdout == payload(), "{profile} holds the exact bytes");
}

#[test]
fn a_fetch_killed_mid_transfer_resumes_and_moves_only_the_rest() {
    let h = Home::new();
    let (alice, hash) = setup(&h, &[]);
    let slow = Throttle::new(alice.addr, 4_000_000);
    h.run(&["-p", "bob", "peer", "set", "alice", "--addr", &slow.addr.to_string()]).ok();
    let mut get = spawn(&h, &["-p", "bob", "blob", "get", &hash, "--from", "alice"], &[]);
    wait_for_checkpoint(&h, "bob", &hash, &mut get);
    kill(&mut get);
    let (k, receiving) = kept(&h, "bob", &hash).expect("the verified part survives the kill");
    assert!(!receiving && (CHECKPOINT..SIZE).contains(&k), "kept {k}");
    assert!(h.run(&["-p", "bob", "blob", "ls", "--json"]).json().as_array().unwrap().is_empty(), "not published");

    drop(slow);
    h.run(&["-p", "bob", "peer", "set", "alice", "--addr", &alice.addr.to_string()]).ok();
    let v = h.run(&["-p", "bob", "blob", "get", &hash, "--from", "alice", "--json"]).json();
    assert_eq!(v["received"], SIZE - k, "only the missing part moved");
    assert_eq!(v["complete"], true);
    assert_stored(&h, "bob", &hash);
    assert!(kept(&h, "bob", &hash).is_none(), "the partial became the blob");
    let receipts = h.run(&["-p", "bob", "blob", "receipt", &hash, "--json"]).json();
    assert_eq!(receipts.as_array().unwrap().len(), 1, "the killed transfer never got its receipt");
    assert_eq!(receipts[0]["range"], serde_json::json!([k, SIZE]));
    assert_eq!(receipts[0]["signature_valid"], true);
}

#[test]
fn a_serving_sender_killed_mid_fetch_then_restarted_resumes() {
    let h = Home::new();
    let (alice, hash) = setup(&h, &[]);
    let port = alice.addr.port();
    let slow = Throttle::new(alice.addr, 4_000_000);
    h.run(&["-p", "bob", "peer", "set", "alice", "--addr", &slow.addr.to_string()]).ok();
    let fast_fail = [("ALP__LINK__IDLE_TIMEOUT", "2s"), ("ALP__LINK__REQUEST_TIMEOUT", "2s")];
    let mut c = h.cmd(&["-p", "bob", "blob", "get", &hash, "--from", "alice"]);
    c.envs(fast_fail).stdout(Stdio::null()).stderr(Stdio::piped());
    let mut get = c.spawn().unwrap();
    wait_for_checkpoint(&h, "bob", &hash, &mut get);
    drop(alice); // SIGKILL
    let out = get.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("kept here: run the same command again to resume"), "{stderr}");
    let (k, _) = kept(&h, "bob", &hash).expect("kept");
    assert!((CHECKPOINT..SIZE).contains(&k), "kept {k}");

    drop(slow);
    let alice = h.serve_on("alice", port, &[]);
    h.run(&["-p", "bob", "peer", "set", "alice", "--addr", &alice.addr.to_string()]).ok();
    let v = h.run(&["-p", "bob", "blob", "get", &hash, "--from", "alice", "--json"]).json();
    assert_eq!(v["received"], SIZE - k);
    assert_stored(&h, "bob", &hash);
}

/// bob serves and lets alice push; alice has the payload.
fn setup_push(h: &Home, bob_env: &[(&str, &str)]) -> (Served, String, String) {
    h.init("alice");
    h.init("bob");
    let bob = h.serve_on("bob", 0, bob_env);
    let ticket = h.run(&["-p", "bob", "invite"]).ok().trim().to_owned();
    h.run(&["-p", "alice", "pair", &ticket, "--name", "bob"]).ok();
    h.run(&["-p", "bob", "peer", "allow", "alice", "blob.put"]).ok();
    let src = h.path().join("payload.bin");
    std::fs::write(&src, payload()).unwrap();
    let hash = h.run(&["-p", "alice", "blob", "add", src.to_str().unwrap()]).ok().trim().to_owned();
    (bob, hash, src.to_str().unwrap().to_owned())
}

#[test]
fn a_receiving_node_killed_twice_mid_push_then_restarted_resumes_each_time() {
    let h = Home::new();
    let (bob, hash, _) = setup_push(&h, &[]);
    let port = bob.addr.port();
    let slow = Throttle::new(bob.addr, 4_000_000);
    h.run(&["-p", "alice", "peer", "set", "bob", "--addr", &slow.addr.to_string()]).ok();
    let fast_fail = [("ALP__LINK__IDLE_TIMEOUT", "2s"), ("ALP__LINK__REQUEST_TIMEOUT", "2s")];
    let mut put = spawn(&h, &["-p", "alice", "blob", "put", &hash, "--to", "bob"], &fast_fail);
    wait_for_checkpoint(&h, "bob", &hash, &mut put);
    drop(bob); // SIGKILL: only what was fsynced and recorded survives
    assert_eq!(put.wait().unwrap().code(), Some(1), "the push fails");
    let (k, receiving) = kept(&h, "bob", &hash).expect("kept across the crash");
    assert!(!receiving && (CHECKPOINT..SIZE).contains(&k), "kept {k}");

    // Restarted and pushed to again at once, still slowly: killed again
    // further on. Only a push that resumed can keep a checkpoint more.
    let bob = h.serve_on("bob", port, &[]);
    let mut put = spawn(&h, &["-p", "alice", "blob", "put", &hash, "--to", "bob"], &fast_fail);
    let k2 = wait_for_kept(&h, "bob", &hash, k + CHECKPOINT, &mut put);
    drop(bob);
    assert_eq!(put.wait().unwrap().code(), Some(1), "the push fails");
    let (k, _) = kept(&h, "bob", &hash).expect("kept across the second crash");
    assert!((k2..SIZE).contains(&k), "kept {k}");

    drop(slow);
    let bob = h.serve_on("bob", port, &[]);
    h.run(&["-p", "alice", "peer", "set", "bob", "--addr", &bob.addr.to_string()]).ok();
    let v = h.run(&["-p", "alice", "blob", "put", &hash, "--to", "bob", "--json"]).json();
    assert_eq!(v["sent"], SIZE - k, "only the missing part moved");
    assert_stored(&h, "bob", &hash);
    let receipts = h.run(&["-p", "bob", "blob", "receipt", &hash, "--json"]).json();
    assert_eq!(receipts[0]["range"], serde_json::json!([k, SIZE]));
    assert_eq!(receipts[0]["sender_name"], "alice");
    // Pushing it again sends nothing.
    let v = h.run(&["-p", "alice", "blob", "put", &hash, "--to", "bob", "--json"]).json();
    assert_eq!((v["sent"].as_u64(), v["already_there"].as_bool()), (Some(0), Some(true)));
}

#[test]
fn a_pushing_sender_killed_mid_transfer_resumes() {
    let h = Home::new();
    let (bob, hash, _) = setup_push(&h, &[("ALP__LINK__REQUEST_TIMEOUT", "2s"), ("ALP__LINK__IDLE_TIMEOUT", "3s")]);
    let slow = Throttle::new(bob.addr, 4_000_000);
    h.run(&["-p", "alice", "peer", "set", "bob", "--addr", &slow.addr.to_string()]).ok();
    let mut put = spawn(&h, &["-p", "alice", "blob", "put", &hash, "--to", "bob"], &[]);
    wait_for_checkpoint(&h, "bob", &hash, &mut put);
    kill(&mut put);
    // bob notices the silence, keeps what verified, and lets go.
    let k = wait_until_idle(&h, "bob", &hash);
    assert!((CHECKPOINT..SIZE).contains(&k), "kept {k}");

    drop(slow);
    h.run(&["-p", "alice", "peer", "set", "bob", "--addr", &bob.addr.to_string()]).ok();
    let r = h.run(&["-p", "alice", "blob", "put", &hash, "--to", "bob", "--json"]);
    assert!(r.stderr.contains("resumed"), "{}", r.stderr);
    assert_eq!(r.json()["sent"], SIZE - k);
    assert_stored(&h, "bob", &hash);
}

/// Waits (at most 60 s) until `profile` keeps at least `bytes` of `hash`.
fn wait_for_kept(h: &Home, profile: &str, hash: &str, bytes: u64, child: &mut Child) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some((k, _)) = kept(h, profile, hash).filter(|&(k, _)| k >= bytes) {
            return k;
        }
        assert!(child.try_wait().unwrap().is_none(), "the transfer ended before it could be interrupted");
        assert!(Instant::now() < deadline, "{bytes} bytes not kept within 60 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The complaint this answers: a push killed part way, run again at once,
/// used to start over from byte 0, because the receiver's old transfer
/// still held the partial copy until its idle timeout (30 s by default, as
/// here). Now each re-run takes the partial over and moves only the rest,
/// however often it is interrupted; the peer's quota, just above the
/// blob's size, shows the bytes are counted once.
#[test]
fn a_push_run_again_right_after_a_kill_takes_over_and_moves_only_the_rest() {
    let h = Home::new();
    let quota = (SIZE + 1000).to_string();
    let (bob, hash, _) = setup_push(&h, &[("ALP__BLOB__PEER_QUOTA", &quota)]);
    let slow = Throttle::new(bob.addr, 4_000_000);
    h.run(&["-p", "alice", "peer", "set", "bob", "--addr", &slow.addr.to_string()]).ok();
    let put = ["-p", "alice", "blob", "put", &hash, "--to", "bob"];
    let mut first = spawn(&h, &put, &[]);
    let k1 = wait_for_kept(&h, "bob", &hash, CHECKPOINT, &mut first);
    kill(&mut first);
    // At once: bob's transfer of the first run is still waiting on it.
    let mut second = spawn(&h, &put, &[]);
    // Only a run that resumed can keep more than a checkpoint beyond k1.
    let k2 = wait_for_kept(&h, "bob", &hash, k1 + CHECKPOINT, &mut second);
    kill(&mut second);
    assert!(k2 < SIZE, "kept {k2}");

    drop(slow);
    h.run(&["-p", "alice", "peer", "set", "bob", "--addr", &bob.addr.to_string()]).ok();
    let r = h.run(&["-p", "alice", "blob", "put", &hash, "--to", "bob", "--json"]);
    assert!(r.stderr.contains("resumed"), "{}", r.stderr);
    let sent = r.json()["sent"].as_u64().unwrap();
    let receipts = h.run(&["-p", "bob", "blob", "receipt", &hash, "--json"]).json();
    assert_eq!(receipts.as_array().unwrap().len(), 1, "the killed runs never got a receipt");
    let from = receipts[0]["range"][0].as_u64().unwrap();
    assert!(from >= k2, "resumed from {from}, below the {k2} bytes kept");
    assert_eq!(sent, SIZE - from, "exactly the missing bytes moved");
    assert_stored(&h, "bob", &hash);
    assert!(kept(&h, "bob", &hash).is_none(), "no partial left beside the blob");
}

/// A fetch killed part way, run again at once; then, while that one still
/// runs, its path dies (the proxy goes) and a new fetch starts at once: the
/// new one takes over as soon as the old one has heard nothing for a second,
/// the old one says so, and the blob arrives whole.
#[test]
fn fetches_run_again_at_once_or_beside_a_dead_one_take_over_and_move_only_the_rest() {
    let h = Home::new();
    let (alice, hash) = setup(&h, &[]);
    let slow = Throttle::new(alice.addr, 4_000_000);
    h.run(&["-p", "bob", "peer", "set", "alice", "--addr", &slow.addr.to_string()]).ok();
    let get = ["-p", "bob", "blob", "get", &hash, "--from", "alice"];
    let mut first = spawn(&h, &get, &[]);
    let k1 = wait_for_kept(&h, "bob", &hash, CHECKPOINT, &mut first);
    kill(&mut first);
    let mut older = h.cmd(&get);
    older.stdout(Stdio::null()).stderr(Stdio::piped());
    let mut older = older.spawn().unwrap();
    wait_for_kept(&h, "bob", &hash, k1 + CHECKPOINT, &mut older);
    // The first one's path dies; a second fetch starts while it still runs.
    drop(slow);
    h.run(&["-p", "bob", "peer", "set", "alice", "--addr", &alice.addr.to_string()]).ok();
    let v = h.run(&["-p", "bob", "blob", "get", &hash, "--from", "alice", "--json"]).json();
    assert_eq!(v["complete"], true);
    let out = older.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("another transfer of this blob took over here"), "{stderr}");
    let receipts = h.run(&["-p", "bob", "blob", "receipt", &hash, "--json"]).json();
    let from = receipts[0]["range"][0].as_u64().unwrap();
    assert!(from >= k1 + CHECKPOINT, "resumed from {from}");
    assert_eq!(v["received"].as_u64().unwrap(), SIZE - from, "exactly the missing bytes moved");
    assert_stored(&h, "bob", &hash);
}

#[test]
fn a_range_fetches_only_its_groups_and_a_later_full_fetch_only_the_rest() {
    let h = Home::new();
    let (_alice, hash) = setup(&h, &[]);
    let out = h.path().join("part.bin");
    let (a, b) = (1_000_000u64, 1_500_000u64);
    let v = h
        .run(&[
            "-p",
            "bob",
            "blob",
            "get",
            &hash,
            "--from",
            "alice",
            "--range",
            &format!("{a}..{b}"),
            "-o",
            out.to_str().unwrap(),
            "--json",
        ])
        .json();
    assert_eq!(v["complete"], false);
    let g = alp_blobstore::tree::GROUP_SIZE;
    let groups_bytes = (b.div_ceil(g) - a / g) * g;
    assert_eq!(v["received"], groups_bytes, "whole 16 KiB groups around the range, nothing more");
    assert_eq!(std::fs::read(&out).unwrap(), payload()[a as usize..b as usize], "exactly the bytes asked for");
    let receipts = h.run(&["-p", "bob", "blob", "receipt", &hash, "--json"]);
    assert_ne!(receipts.code, 0, "not a stored blob yet");

    // The same range again: already here, nothing moves.
    let v = h
        .run(&["-p", "bob", "blob", "get", &hash, "--from", "alice", "--range", &format!("{a}..{b}"), "--json"])
        .json();
    assert_eq!(v["received"], 0);

    // The whole blob: only the two gaps around the range move.
    let v = h.run(&["-p", "bob", "blob", "get", &hash, "--from", "alice", "--json"]).json();
    assert_eq!(v["received"], SIZE - groups_bytes);
    assert_stored(&h, "bob", &hash);
    let receipts = h.run(&["-p", "bob", "blob", "receipt", &hash, "--json"]).json();
    assert_eq!(receipts.as_array().unwrap().len(), 3, "one per part: the range and the two gaps");

    // Ranges past the end are refused with a clear message.
    h.run(&["-p", "bob", "blob", "rm", &hash]).ok();
    let past = format!("{}..", SIZE + 1);
    h.run(&["-p", "bob", "blob", "get", &hash, "--from", "alice", "--range", &past])
        .fails(1, &["outside the blob", &SIZE.to_string()]);
    h.run(&["-p", "bob", "blob", "get", &hash, "--from", "alice", "--range", "5..5"]).fails(2, &["empty range"]);
}

#[test]
fn gc_removes_idle_partials_and_rm_removes_one() {
    let h = Home::new();
    let (_alice, hash) = setup(&h, &[]);
    h.run(&["-p", "bob", "blob", "get", &hash, "--from", "alice", "--range", "0..100000"]).ok();
    assert!(h.run(&["-p", "bob", "blob", "ls", "--partial"]).ok().contains("partial: 114688 bytes kept"));
    // Within the TTL (default 7 days): kept.
    assert!(h.run(&["-p", "bob", "blob", "gc", "--json"]).json().as_array().unwrap().is_empty());
    let gone = h.run(&["-p", "bob", "blob", "gc", "--older-than", "0s", "--json"]).json();
    assert_eq!(gone[0]["hash"], hash.as_str());
    assert_eq!(gone[0]["kept_bytes"], 114_688);
    assert!(kept(&h, "bob", &hash).is_none());

    h.run(&["-p", "bob", "blob", "get", &hash, "--from", "alice", "--range", "0..100000"]).ok();
    h.run(&["-p", "bob", "blob", "rm", &hash]).ok();
    assert!(kept(&h, "bob", &hash).is_none());
}
