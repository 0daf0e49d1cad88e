//! Peers on one local network find each other by mDNS, with no address
//! typed, inside network namespaces the test makes (skipped, saying so,
//! where it cannot).

use std::time::{Duration, Instant};

use crate::common::{Home, node_id, output};
use crate::netns::net_or_skip;

/// Two profiles trust each other by node id only (no address). Their
/// nodes serve on one bridge: each learns the other's LAN address from
/// its announcement, a ping goes through, and `alp peer discover` names
/// the peer; a stranger's node on the same LAN shows only as a tag, and
/// one with `node.discovery = false` not at all.
#[test]
fn two_nodes_on_one_bridge_find_each_other_by_mdns() {
    let Some(mut net) = net_or_skip("lan::two_nodes_on_one_bridge_find_each_other_by_mdns") else { return };
    let lan = net.space("lan");
    net.bridge(&lan);
    let (a, b, c) = (net.space("a"), net.space("b"), net.space("c"));
    for (space, ip) in [(&a, "10.77.0.1/24"), (&b, "10.77.0.2/24"), (&c, "10.77.0.3/24")] {
        let port = format!("p{}", &space[space.len() - 1..]);
        net.cable(space, "eth0", &lan, &port);
        net.ip(&lan, &["link", "set", &port, "master", "br0"]);
        net.ip(space, &["addr", "add", ip, "dev", "eth0"]);
    }
    let h = Home::new();
    for p in ["alice", "bob", "carol", "dave"] {
        h.init(p);
    }
    let (alice_id, bob_id) = (node_id(&h, "alice").to_string(), node_id(&h, "bob").to_string());
    h.run(&["-p", "alice", "peer", "add", "bob", &bob_id]).ok();
    h.run(&["-p", "bob", "peer", "add", "alice", &alice_id]).ok();
    let _alice = net.serve(&a, h.path(), "alice", "0.0.0.0:0");
    let bob = net.serve(&b, h.path(), "bob", "[::]:0");
    let _carol = net.serve(&c, h.path(), "carol", "0.0.0.0:0");
    // Dave's node has discovery off: it is not announced at all.
    let _dave = net.serve_env(&c, h.path(), "dave", "0.0.0.0:0", &[("ALP__NODE__DISCOVERY", "false")]);
    let want = format!("10.77.0.2:{}", bob.addr.port());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let peers = h.run(&["-p", "alice", "peer", "list", "--json"]).json();
        let learned = peers[0]["learned"].as_array().cloned().unwrap_or_default();
        if learned.iter().any(|l| l["addr"] == want && l["how"] == "lan") {
            break;
        }
        assert!(Instant::now() < deadline, "alice never learned {want}: {peers}");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Through alice's node (its control socket is a file, reachable from
    // here), which dials from inside its namespace.
    let v = h.run(&["-p", "alice", "peer", "ping", "bob", "-c", "1", "--json"]).json();
    assert_eq!((v["received"].clone(), v["addr"].clone()), (serde_json::json!(1), serde_json::json!(want)));
    // Discovery from alice's side of the LAN: bob by name, carol (not a
    // peer) by tag only, alice's own node not at all.
    let found = output(net.alp(&a, h.path(), &["-p", "alice", "peer", "discover", "--wait", "3s", "--json"])).json();
    let found = found.as_array().unwrap();
    assert!(found.iter().any(|f| f["peer"] == "bob" && f["node_id"] == bob_id), "{found:?}");
    let strangers: Vec<_> = found.iter().filter(|f| f["peer"].is_null()).collect();
    assert_eq!(strangers.len(), 1, "{found:?}");
    assert!(strangers[0]["addrs"][0].as_str().unwrap().starts_with("10.77.0.3:"), "{found:?}");
    let carol_id = node_id(&h, "carol").to_string();
    assert!(!serde_json::to_string(&found).unwrap().contains(&carol_id));
}

/// Bob's node keeps serving while his host's address changes (a laptop on
/// another network, a new DHCP lease). His node notices, announces the new
/// address and greets alice's node from it; alice, who had only the old
/// address typed, reaches bob at the new one with no command typed. LAN
/// discovery is off, so only the greeting can tell her.
#[test]
fn a_node_whose_address_changes_while_it_runs_is_found_at_the_new_one() {
    let Some(mut net) = net_or_skip("lan::a_node_whose_address_changes_while_it_runs") else { return };
    let lan = net.space("lan");
    net.bridge(&lan);
    let (a, b) = (net.space("a"), net.space("b"));
    for (space, ip) in [(&a, "10.78.0.2/24"), (&b, "10.78.0.3/24")] {
        let port = format!("p{}", &space[space.len() - 1..]);
        net.cable(space, "eth0", &lan, &port);
        net.ip(&lan, &["link", "set", &port, "master", "br0"]);
        net.ip(space, &["addr", "add", ip, "dev", "eth0"]);
    }
    let h = Home::new();
    for p in ["alice", "bob"] {
        h.init(p);
    }
    let off = [("ALP__NODE__DISCOVERY", "false")];
    let alice = net.serve_env(&a, h.path(), "alice", "[::]:0", &off);
    let bob = net.serve_env(&b, h.path(), "bob", "[::]:0", &off);
    let (alice_at, bob_at) = (format!("10.78.0.2:{}", alice.addr.port()), format!("10.78.0.3:{}", bob.addr.port()));
    h.run(&["-p", "alice", "peer", "add", "bob", &node_id(&h, "bob").to_string(), "--addr", &bob_at]).ok();
    h.run(&["-p", "bob", "peer", "add", "alice", &node_id(&h, "alice").to_string(), "--addr", &alice_at]).ok();
    let v = h.run(&["-p", "alice", "peer", "ping", "bob", "-c", "1", "--json"]).json();
    assert_eq!(v["addr"], bob_at.as_str(), "{v}");

    // A new lease: the old address goes, then the new one comes.
    net.ip(&b, &["addr", "del", "10.78.0.3/24", "dev", "eth0"]);
    net.ip(&b, &["addr", "add", "10.78.0.9/24", "dev", "eth0"]);
    let moved = format!("10.78.0.9:{}", bob.addr.port());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let peers = h.run(&["-p", "alice", "peer", "list", "--json"]).json();
        if peers[0]["learned"].as_array().is_some_and(|l| l.iter().any(|l| l["addr"] == moved.as_str())) {
            break;
        }
        assert!(Instant::now() < deadline, "alice never learned {moved}: {peers}");
        std::thread::sleep(Duration::from_millis(200));
    }
    // A fresh dial from alice's host tries the new address first.
    let ping = ["-p", "alice", "peer", "ping", "bob", "-c", "1", "--direct", "--json"];
    let v = output(net.alp(&a, h.path(), &ping)).json();
    assert_eq!((v["received"].clone(), v["addr"].clone()), (serde_json::json!(1), serde_json::json!(moved)));
    // What `alp invite` would put in a ticket follows too.
    let ticket = output(net.alp(&b, h.path(), &["-p", "bob", "invite", "--json"])).json();
    assert_eq!(ticket["addrs"][0], moved.as_str(), "{ticket}");
    assert!(!ticket["addrs"].to_string().contains(&bob_at), "{ticket}");
}
