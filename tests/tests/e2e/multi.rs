//! One blob from several peers at once (`blob get --from a,b,c`, `--from
//! any`): disjoint ranges in parallel, each with its own receipt; a peer
//! that stalls, dies or holds a damaged copy is dropped and its ranges go
//! to the others; the blob verifies as one.

use std::time::Duration;

use crate::common::{Home, Served};
use crate::throttle::Throttle;

const SIZE: usize = 12 * 1024 * 1024 + 4321;

fn payload() -> Vec<u8> {
    (0..SIZE).map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8).collect()
}

/// Three serving peers holding the payload, shared with bob, each behind
/// a proxy pacing it to `rate`; returns them (with their proxies) and the hash.
fn senders(h: &Home, rate: u64, limits: [u64; 3]) -> (Vec<(Served, Throttle)>, String) {
    h.init("bob");
    let src = h.path().join("payload.bin");
    std::fs::write(&src, payload()).unwrap();
    let mut out = Vec::new();
    let mut hash = String::new();
    for (name, limit) in ["s1", "s2", "s3"].into_iter().zip(limits) {
        h.init(name);
        let served = h.serve(name);
        let ticket = h.run(&["-p", name, "invite"]).ok().trim().to_owned();
        h.run(&["-p", "bob", "pair", &ticket, "--name", name]).ok();
        hash = h.run(&["-p", name, "blob", "add", src.to_str().unwrap()]).ok().trim().to_owned();
        h.run(&["-p", name, "blob", "share", &hash, "--with", "bob"]).ok();
        h.run(&["-p", name, "peer", "allow", "bob", "blob.get"]).ok();
        let proxy = Throttle::stalling(served.addr, rate, limit);
        h.run(&["-p", "bob", "peer", "set", name, "--addr", &proxy.addr.to_string()]).ok();
        out.push((served, proxy));
    }
    (out, hash)
}

fn assert_whole(h: &Home, hash: &str) {
    h.run(&["-p", "bob", "blob", "verify", hash]).ok();
    let mut c = h.cmd(&["-p", "bob", "blob", "cat", hash]);
    c.stdout(std::process::Stdio::piped());
    assert!(c.output().unwrap().stdout == payload());
}

#[test]
fn three_peers_each_send_a_share_under_their_own_receipts() {
    let h = Home::new();
    let (_senders, hash) = senders(&h, 8_000_000, [u64::MAX; 3]);
    let v = h.run(&["-p", "bob", "blob", "get", &hash, "--from", "s1,s2,s3", "--json"]).json();
    assert_eq!(v["complete"], true);
    assert_eq!(v["received"], SIZE as u64, "each byte counted once");
    let sources = v["sources"].as_array().unwrap();
    assert_eq!(sources.len(), 3);
    for s in sources {
        assert!(s["received"].as_u64().unwrap() > 0, "{s}");
    }
    // The last range may come from two peers at once, the slower stopped.
    let sent: u64 = sources.iter().map(|s| s["received"].as_u64().unwrap()).sum();
    assert!(sent + 1024 * 1024 >= SIZE as u64, "{sent}");
    assert_whole(&h, &hash);
    let receipts = h.run(&["-p", "bob", "blob", "receipt", &hash, "--json"]).json();
    let senders: std::collections::BTreeSet<&str> =
        receipts.as_array().unwrap().iter().map(|r| r["sender_name"].as_str().unwrap()).collect();
    assert_eq!(senders.len(), 3, "each part signed by the peer that sent it");
    assert!(receipts.as_array().unwrap().iter().all(|r| r["signature_valid"] == true));
}

#[test]
fn a_peer_that_stalls_or_holds_a_damaged_copy_is_dropped_and_the_others_finish() {
    let h = Home::new();
    // s2 goes silent after 1 MB; s3's copy is damaged on disk, all over.
    let (_senders, hash) = senders(&h, 8_000_000, [u64::MAX, 1_000_000, u64::MAX]);
    let damaged = h.path().join("profiles/s3/blobs/data").join(&hash);
    let mut bytes = std::fs::read(&damaged).unwrap();
    // Every range it could be asked for holds a bad byte.
    for at in (1000..SIZE).step_by(512 * 1024) {
        bytes[at] ^= 1;
    }
    std::fs::write(&damaged, bytes).unwrap();
    let mut c = h.cmd(&["-p", "bob", "blob", "get", &hash, "--from", "any", "--json"]);
    c.env("ALP__LINK__REQUEST_TIMEOUT", "2s").env("ALP__LINK__IDLE_TIMEOUT", "3s");
    let r = crate::common::output(c);
    let v = r.json();
    assert_eq!(v["complete"], true, "{}", r.stderr);
    let by_name = |n: &str| v["sources"].as_array().unwrap().iter().find(|s| s["peer"] == n).unwrap().clone();
    assert!(by_name("s1")["received"].as_u64().unwrap() > 0);
    assert!(by_name("s2")["dropped"].is_string(), "the stalled peer: {}", by_name("s2"));
    assert!(by_name("s3")["dropped"].as_str().unwrap().contains("damaged"), "{}", by_name("s3"));
    assert!(r.stderr.contains("'s2' dropped"), "{}", r.stderr);
    assert_whole(&h, &hash);
}

#[test]
fn a_peer_killed_mid_fetch_leaves_its_ranges_to_the_others() {
    let h = Home::new();
    let (mut senders, hash) = senders(&h, 3_000_000, [u64::MAX; 3]);
    let mut c = h.cmd(&["-p", "bob", "blob", "get", &hash, "--from", "s1,s2,s3", "--json"]);
    c.env("ALP__LINK__REQUEST_TIMEOUT", "2s").env("ALP__LINK__IDLE_TIMEOUT", "3s");
    c.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let child = c.spawn().unwrap();
    std::thread::sleep(Duration::from_millis(800));
    drop(senders.remove(0)); // SIGKILL s1 and its proxy
    let out = child.wait_with_output().unwrap();
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(v["complete"], true);
    assert_whole(&h, &hash);
}
