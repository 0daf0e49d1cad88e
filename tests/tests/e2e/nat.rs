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
/// The world of these tests: rv on a public network, alice and bob each
/// behind a NAT (`symmetric`: bob's gives each destination another port),
/// all three serving; rv allows both `link.meet` and `link.relay`, and
/// bob allows alice `blob.put`.
struct World {
    h: Home,
    bob_port: u16,
    // Dropped last: the nodes first, then the namespaces.
    _nodes: Vec<crate::common::Served>,
    _net: crate::netns::Net,
}

/// The "public" network (a bridge) with rv's namespace on it at
/// 203.0.113.10: their names.
fn public_with_rv(net: &mut crate::netns::Net) -> (String, String) {
    let public = net.space("pub");
    net.bridge(&public);
    let r = net.space("r");
    net.cable(&r, "eth0", &public, "nr");
    net.ip(&public, &["link", "set", "nr", "master", "br0"]);
    net.ip(&r, &["addr", "add", "203.0.113.10/24", "dev", "eth0"]);
    (public, r)
}

fn world(test: &str, symmetric: bool) -> Option<World> {
    let mut net = nat_or_skip(test)?;
    let (public, r) = public_with_rv(&mut net);
    let (nat1, h1, nat2, h2) = (net.space("nat1"), net.space("h1"), net.space("nat2"), net.space("h2"));
    let (hosts1, hosts2) = ([(h1.as_str(), "10.1.0.2/24")], [(h2.as_str(), "10.2.0.2/24")]);
    net.nat(&public, &nat1, Nat { outside: "203.0.113.1/24", inside: "10.1.0.1/24", hosts: &hosts1, symmetric: false });
    net.nat(&public, &nat2, Nat { outside: "203.0.113.2/24", inside: "10.2.0.1/24", hosts: &hosts2, symmetric });

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
        h.run(&["-p", "rv", "peer", "allow", me, "link.meet", "link.relay"]).ok();
    }
    h.run(&["-p", "bob", "peer", "allow", "alice", "blob.put"]).ok();
    // Dual-stack serving everywhere, as by default: IPv4 peers show as
    // ::ffff:a.b.c.d on these sockets and must come out plain.
    let rv = net.serve(&r, h.path(), "rv", "[::]:7400");
    let with_rv = [("ALP__NODE__RENDEZVOUS", "[\"rv\"]")];
    let alice = net.serve_env(&h1, h.path(), "alice", "[::]:0", &with_rv);
    let bob = net.serve_env(&h2, h.path(), "bob", "[::]:0", &with_rv);
    let bob_port = bob.addr.port();
    Some(World { h, bob_port, _nodes: vec![alice, bob, rv], _net: net })
}

/// `alp peer ping bob` from alice until it answers (bob's node starts
/// waiting at rv within moments of starting).
fn ping_until_up(h: &Home) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let r = h.run(&["-p", "alice", "peer", "ping", "bob", "-c", "1", "--json"]);
        if r.code == 0 {
            return r.json();
        }
        assert!(Instant::now() < deadline, "never reached bob: {}", r.stderr);
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// A blob from alice to bob through alice's node, checked by its receipt.
fn send_a_blob(h: &Home) {
    let bytes: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let src = h.path().join("doc.bin");
    std::fs::write(&src, &bytes).unwrap();
    let hash = h.run(&["-p", "alice", "blob", "put", src.to_str().unwrap(), "--to", "bob"]).ok().trim().to_owned();
    assert_eq!(hash, blake3::hash(&bytes).to_hex().as_str());
    let receipts = h.run(&["-p", "bob", "blob", "receipt", &hash, "--json"]).json();
    let r = &receipts[0];
    assert_eq!(
        (r["sender_name"].clone(), r["signature_valid"].clone()),
        (serde_json::json!("alice"), serde_json::json!(true))
    );
    let mut c = h.cmd(&["-p", "bob", "blob", "cat", &hash]);
    c.stdout(std::process::Stdio::piped());
    assert_eq!(c.output().unwrap().stdout, bytes);
    // And the other way: bob's ticket, redeemed by alice's node.
    let back: Vec<u8> = (0..150_000u32).map(|i| (i % 241) as u8).collect();
    let src = h.path().join("back.bin");
    std::fs::write(&src, &back).unwrap();
    let ticket = h.run(&["-p", "bob", "send", src.to_str().unwrap()]).ok().trim().to_owned();
    assert!(ticket.starts_with("alpblob1"), "{ticket}");
    let dest = h.path().join("got.bin");
    h.run(&["-p", "alice", "receive", &ticket, "-o", dest.to_str().unwrap()]).ok();
    assert_eq!(std::fs::read(&dest).unwrap(), back);
}

/// Alice and bob each serve behind a NAT that keeps source ports (as home
/// routers and Linux do); neither can be dialled from outside. Both wait
/// at rv. Alice's node asks rv for bob: each is told the other's public
/// address and both dial at once, which opens both NATs. A ping and a blob
/// then go over the punched link, through alice's node.
#[test]
fn two_nodes_behind_nats_punch_through_via_a_rendezvous_and_move_a_blob() {
    let Some(w) = world("nat::two_nodes_behind_nats_punch_through", false) else { return };
    let mut pong = ping_until_up(&w.h);
    // Had bob not been waiting at rv yet when alice first asked, the first
    // link may run through rv: alice's node punches again every few
    // seconds and prefers the direct path as soon as it works.
    let deadline = Instant::now() + Duration::from_secs(30);
    while pong["relayed"] == true {
        assert!(Instant::now() < deadline, "still relayed: {pong}");
        std::thread::sleep(Duration::from_millis(500));
        pong = ping_until_up(&w.h);
    }
    // Bob as rv sees him: his NAT's address, with the port his node uses.
    assert_eq!(pong["addr"], format!("203.0.113.2:{}", w.bob_port), "{pong}");
    send_a_blob(&w.h);
    // Alice's node noted where bob answered.
    let peers = w.h.run(&["-p", "alice", "peer", "list", "--json"]).json();
    let bob = peers.as_array().unwrap().iter().find(|p| p["name"] == "bob").unwrap().clone();
    assert!(bob["learned"].as_array().unwrap().iter().any(|l| l["addr"] == pong["addr"]), "{bob}");
}

/// Bob's NAT is symmetric: each destination gets another port, so the
/// address rv sees is not the one alice's packets would have to reach, and
/// punching fails. Alice's node then asks rv to relay: bob joins, and the
/// link runs through rv end to end encrypted; the ping and the blob (its
/// receipt signed by alice and checked by bob) still go through.
#[test]
fn behind_a_symmetric_nat_the_link_falls_back_to_a_relay_and_moves_a_blob() {
    let Some(w) = world("nat::behind_a_symmetric_nat_the_link_falls_back_to_a_relay", true) else { return };
    let pong = ping_until_up(&w.h);
    assert_eq!(pong["relayed"], true, "{pong}");
    send_a_blob(&w.h);
}

/// Alice and bob behind one NAT that does not loop packets to its own
/// public address back inside (no hairpinning), with LAN discovery off
/// and no address of each other: rv introduces them (it does not relay
/// for them), passing on each one's signed address record. Punching to
/// the public address goes nowhere, but the record's LAN address
/// answers: the link is direct, on the LAN.
#[test]
fn two_nodes_behind_one_nat_meet_at_the_lan_addresses_their_records_give() {
    let Some(mut net) = nat_or_skip("nat::two_nodes_behind_one_nat") else { return };
    let (public, r) = public_with_rv(&mut net);
    let (nat, h1, h2) = (net.space("nat1"), net.space("h1"), net.space("h2"));
    let hosts = [(h1.as_str(), "10.3.0.2/24"), (h2.as_str(), "10.3.0.3/24")];
    net.nat(&public, &nat, Nat { outside: "203.0.113.1/24", inside: "10.3.0.1/24", hosts: &hosts, symmetric: false });

    let h = Home::new();
    for p in ["rv", "alice", "bob"] {
        h.init(p);
    }
    let id = |p: &str| node_id(&h, p).to_string();
    for (me, other) in [("alice", "bob"), ("bob", "alice")] {
        h.run(&["-p", me, "peer", "add", "rv", &id("rv"), "--addr", "203.0.113.10:7400"]).ok();
        h.run(&["-p", me, "peer", "add", other, &id(other)]).ok();
        h.run(&["-p", "rv", "peer", "add", me, &id(me)]).ok();
        h.run(&["-p", "rv", "peer", "allow", me, "link.meet"]).ok();
    }
    let _rv = net.serve(&r, h.path(), "rv", "[::]:7400");
    let env = [("ALP__NODE__RENDEZVOUS", "[\"rv\"]"), ("ALP__NODE__DISCOVERY", "false")];
    let _alice = net.serve_env(&h1, h.path(), "alice", "[::]:0", &env);
    let bob = net.serve_env(&h2, h.path(), "bob", "[::]:0", &env);
    let pong = ping_until_up(&h);
    assert_eq!(pong["relayed"], false, "{pong}");
    assert_eq!(pong["addr"], format!("10.3.0.3:{}", bob.addr.port()), "{pong}");
    // Alice's node keeps the LAN address that worked, first.
    let peers = h.run(&["-p", "alice", "peer", "list", "--json"]).json();
    let bob = peers.as_array().unwrap().iter().find(|p| p["name"] == "bob").unwrap().clone();
    assert_eq!(bob["learned"][0]["addr"], pong["addr"], "{bob}");
}
