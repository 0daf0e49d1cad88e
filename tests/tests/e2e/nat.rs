//! Two nodes behind two NATs reach each other through a rendezvous node
//! on a "public" network, inside network namespaces the test makes
//! (skipped, saying so, where it cannot).

use std::time::{Duration, Instant};

use crate::common::{Home, node_id};
use crate::netns::{Nat, nat_or_skip};

/// Alice and bob each serve behind a NAT that keeps source ports (as home
/// routers and Linux do); neither can be dialled from outside. Both trust
/// rv, a node on the public network that allows them `link.meet`, and
/// wait there. Alice's node asks rv for bob: each is told the other's
/// public address and both dial at once, which opens both NATs. A ping
/// and a blob then go over the punched link, through alice's node.
#[test]
fn two_nodes_behind_nats_punch_through_via_a_rendezvous_and_move_a_blob() {
    let Some(mut net) = nat_or_skip("nat::two_nodes_behind_nats_punch_through") else { return };
    let public = net.space("pub");
    net.bridge(&public);
    net.ip(&public, &["addr", "add", "203.0.113.254/24", "dev", "br0"]);
    let r = net.space("r");
    net.cable(&r, "eth0", &public, "nr");
    net.ip(&public, &["link", "set", "nr", "master", "br0"]);
    net.ip(&r, &["addr", "add", "203.0.113.10/24", "dev", "eth0"]);
    let (nat1, h1, nat2, h2) = (net.space("nat1"), net.space("h1"), net.space("nat2"), net.space("h2"));
    let cone = |n: u8| Nat {
        outside: ["203.0.113.1/24", "203.0.113.2/24"][usize::from(n - 1)],
        inside: ["10.1.0.1/24", "10.2.0.1/24"][usize::from(n - 1)],
        host_ip: ["10.1.0.2/24", "10.2.0.2/24"][usize::from(n - 1)],
        symmetric: false,
    };
    net.nat(&public, &nat1, &h1, cone(1));
    net.nat(&public, &nat2, &h2, cone(2));

    let h = Home::new();
    for p in ["rv", "alice", "bob"] {
        h.init(p);
    }
    let id = |p: &str| node_id(&h, p).to_string();
    let rv_addr = "203.0.113.10:7400";
    for (me, other) in [("alice", "bob"), ("bob", "alice")] {
        h.run(&["-p", me, "peer", "add", "rv", &id("rv"), "--addr", rv_addr]).ok();
        h.run(&["-p", me, "peer", "add", other, &id(other)]).ok();
        h.run(&["-p", "rv", "peer", "add", me, &id(me)]).ok();
        h.run(&["-p", "rv", "peer", "allow", me, "link.meet"]).ok();
    }
    h.run(&["-p", "bob", "peer", "allow", "alice", "blob.put"]).ok();
    let _rv = net.serve(&r, h.path(), "rv", rv_addr);
    let with_rv = [("ALP__NODE__RENDEZVOUS", "[\"rv\"]")];
    let _alice = net.serve_env(&h1, h.path(), "alice", "0.0.0.0:0", &with_rv);
    let bob = net.serve_env(&h2, h.path(), "bob", "0.0.0.0:0", &with_rv);

    // Bob's node starts waiting at rv within moments of starting.
    let deadline = Instant::now() + Duration::from_secs(30);
    let pong = loop {
        let r = h.run(&["-p", "alice", "peer", "ping", "bob", "-c", "1", "--json"]);
        if r.code == 0 {
            break r.json();
        }
        assert!(Instant::now() < deadline, "never reached bob: {}", r.stderr);
        std::thread::sleep(Duration::from_millis(300));
    };
    // Bob as rv sees him: his NAT's address, with the port his node uses.
    assert_eq!(pong["addr"], format!("203.0.113.2:{}", bob.addr.port()), "{pong}");
    // A blob over the punched link, pushed by alice's node.
    let bytes: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let src = h.path().join("doc.bin");
    std::fs::write(&src, &bytes).unwrap();
    let hash = h.run(&["-p", "alice", "blob", "put", src.to_str().unwrap(), "--to", "bob"]).ok().trim().to_owned();
    assert_eq!(hash, blake3::hash(&bytes).to_hex().as_str());
    let receipts = h.run(&["-p", "bob", "blob", "receipt", &hash, "--json"]).json();
    assert_eq!(
        (receipts[0]["sender_name"].clone(), receipts[0]["signature_valid"].clone()),
        (serde_json::json!("alice"), serde_json::json!(true))
    );
    // Alice's node noted where bob answered.
    let peers = h.run(&["-p", "alice", "peer", "list", "--json"]).json();
    let bob_entry = peers.as_array().unwrap().iter().find(|p| p["name"] == "bob").unwrap().clone();
    assert!(bob_entry["learned"].as_array().unwrap().iter().any(|l| l["addr"] == pong["addr"]), "{bob_entry}");
}
