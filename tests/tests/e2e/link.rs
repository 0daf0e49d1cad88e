//! The ALP link end to end: real `alp serve` processes on 127.0.0.1, the
//! CLI, and in-process clients for what the CLI cannot do (raw frames, a
//! relay, many concurrent peers).

use std::time::Duration;

use alp_protocol::envelope::{ErrorCode, to_cbor};
use alp_protocol::ticket::{Ticket, TicketSecret};

use crate::common::{Home, Served, client, node_id, spawn_served};

/// Two served profiles that have paired (bob redeemed alice's ticket).
fn paired(h: &Home) -> (Served, Served) {
    h.init("alice");
    h.init("bob");
    let alice = h.serve("alice");
    let bob = h.serve("bob");
    let ticket = h.run(&["-p", "alice", "invite"]).ok().trim().to_owned();
    assert_eq!(h.run(&["-p", "bob", "pair", &ticket]).ok().trim(), "alice");
    (alice, bob)
}

#[test]
fn invite_pair_then_ping_and_info_both_ways() {
    let h = Home::new();
    let (_alice, _bob) = paired(&h);
    let r = h.run(&["-p", "bob", "peer", "ping", "alice", "-c", "3", "-i", "10ms"]);
    let out = r.ok();
    assert_eq!(out.matches("reply from alice: seq=").count(), 3, "{out}");
    assert!(out.contains("3 sent, 3 received, 0% loss"), "{out}");
    // Alice learnt bob's address from the pairing handshake.
    let v = h.run(&["-p", "alice", "peer", "ping", "bob", "-c", "2", "-i", "10ms", "--json"]).json();
    // Bob's node signs where it can be reached, valid for a day.
    let info = h.run(&["-p", "alice", "peer", "info", "bob", "--direct", "--json"]).json();
    assert_eq!(info["announces"], serde_json::json!([_bob.addr.to_string()]), "{info}");
    let left = info["announced_until"].as_u64().unwrap() - alp_profiles::unix_now();
    assert!((23 * 3600..=24 * 3600).contains(&left), "{info}");
    let text = h.run(&["-p", "alice", "peer", "info", "bob"]).ok().to_owned();
    assert!(text.contains(&format!("announces:    {} (signed, valid 2", _bob.addr)), "{text}");
    assert_eq!(v["received"], 2);
    assert_eq!(v["version"], "alp/1 0.1.0");
    let info = h.run(&["-p", "alice", "peer", "info", "bob", "--json"]).json();
    assert_eq!(info["node_id"], node_id(&h, "bob").to_string());
    assert_eq!(info["display_name"], "bob");
    // What a new peer may call, and the verbs every trusted peer may call
    // because the node checks each request (blob tickets it issued, its
    // workgroups).
    let open = ["link.ping", "link.info", "blob.redeem", "wg.sync", "wg.push", "wg.blob"];
    assert_eq!(info["verbs"], serde_json::json!(open));
    let info = h.run(&["-p", "bob", "peer", "info", "alice"]).ok().to_owned();
    assert!(info.contains(&format!("you may call: {}", open.join(", "))), "{info}");
    // Both sides now record when they last saw each other.
    let peers = h.run(&["-p", "alice", "peer", "list", "--json"]).json();
    assert!(peers[0]["last_seen"].is_u64(), "{peers}");
}

/// With the profile's node running, `peer ping` and `peer info` act
/// through it: the node dials once and keeps the link, so later commands
/// reuse it; a peer that restarts is dialled again at once; without a
/// running node the command dials itself.
#[test]
fn peer_commands_go_through_the_running_node_and_reuse_its_link() {
    let h = Home::new();
    let (alice, _bob) = paired(&h);
    let first = h.run(&["-p", "bob", "peer", "ping", "alice", "-c", "1", "--json"]).json();
    assert_eq!(first["via_node"], true, "{first}");
    assert_eq!(first["received"], 1);
    let again = h.run(&["-p", "bob", "peer", "ping", "alice", "-c", "2", "-i", "10ms"]);
    let out = again.ok();
    assert!(out.contains("over the running node's link"), "{out}");
    assert!(out.contains("2 sent, 2 received"), "{out}");
    let info = h.run(&["-p", "bob", "peer", "info", "alice", "--json"]).json();
    assert_eq!(info["display_name"], "alice");
    // An unknown name is a usage error, said by the node.
    h.run(&["-p", "bob", "peer", "ping", "nobody", "-c", "1"]).fails(2, &["nobody"]);
    // Alice restarts on the same port: bob's node finds its kept link dead
    // and dials again within the same command.
    let port = alice.addr.port();
    alice.terminate();
    let _alice = h.serve_on("alice", port, &[]);
    let v = h.run(&["-p", "bob", "peer", "ping", "alice", "-c", "1", "--json"]).json();
    assert_eq!(v["received"], 1, "{v}");
    // Bob's node stopped: the command dials on its own.
    drop(_bob);
    let v = h.run(&["-p", "bob", "peer", "ping", "alice", "-c", "1", "--json"]).json();
    assert_eq!((v["via_node"].clone(), v["received"].clone()), (serde_json::json!(false), serde_json::json!(1)));
}

/// A peer whose node comes back on another port is found there with no
/// address typed: its node says hello on start, and the handshake's
/// announced address (and where it came from) are learned, newest first.
#[test]
fn a_peer_that_moved_is_found_again_at_its_new_address() {
    let h = Home::new();
    let (_alice, bob) = paired(&h);
    h.run(&["-p", "alice", "peer", "ping", "bob", "-c", "1"]).ok();
    let old = bob.addr;
    bob.terminate();
    let bob = h.serve("bob");
    assert_ne!(bob.addr.port(), old.port());
    // Bob's node greets alice on start; alice's node notes where from.
    let learned = || {
        let peers = h.run(&["-p", "alice", "peer", "list", "--json"]).json();
        peers[0]["learned"].as_array().cloned().unwrap_or_default()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !learned().iter().any(|l| l["addr"] == bob.addr.to_string()) {
        assert!(std::time::Instant::now() < deadline, "never learned {}: {:?}", bob.addr, learned());
        std::thread::sleep(Duration::from_millis(50));
    }
    let v = h.run(&["-p", "alice", "peer", "ping", "bob", "-c", "1", "--json"]).json();
    assert_eq!(
        (v["received"].clone(), v["addr"].clone()),
        (serde_json::json!(1), serde_json::json!(bob.addr.to_string()))
    );
    // The configured address is still the old one; the learned one is
    // tried first, and the one that worked comes first now.
    let first = &learned()[0];
    assert_eq!(first["addr"], bob.addr.to_string(), "{first}");
    // And a command dialling by itself finds it too.
    let v = h.run(&["-p", "alice", "peer", "ping", "bob", "-c", "1", "--direct", "--json"]).json();
    assert_eq!(v["received"], 1);
}

/// Of a peer's addresses, one that swallows packets does not hold up the
/// next: each starts 250 ms after the one before (happy eyeballs), so the
/// link is up long before the silent one's handshake timeout.
#[test]
fn a_silent_address_does_not_hold_up_the_next() {
    let h = Home::new();
    let (alice, _bob) = paired(&h);
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let silent = silent.local_addr().unwrap().to_string();
    let good = alice.addr.to_string();
    // Typed addresses replace the learned ones too.
    h.run(&["-p", "bob", "peer", "set", "alice", "--addr", &silent, "--addr", &good]).ok();
    let peers = h.run(&["-p", "bob", "peer", "list", "--json"]).json();
    assert_eq!(peers[0]["addrs"], serde_json::json!([silent, good]), "{peers}");
    assert!(peers[0]["learned"].is_null(), "{peers}");
    let v = h
        .run(&[
            "-p",
            "bob",
            "peer",
            "ping",
            "alice",
            "-c",
            "1",
            "--direct",
            "--json",
            "--set",
            "link.handshake_timeout=120s",
        ])
        .json();
    assert_eq!((v["received"].clone(), v["addr"].clone()), (serde_json::json!(1), serde_json::json!(good)));
    // A generous bound: without the stagger this waits out the 120 s.
    assert!(v["connect_ms"].as_f64().unwrap() < 60_000.0, "{v}");
}

/// A node serving `[::]` (the default listen address) answers IPv6 and
/// IPv4 on one port and announces both; a dial alternates the families
/// (happy eyeballs), so with one family silent the other wins a stagger
/// later, whichever it is.
#[test]
fn a_dual_stack_node_is_reached_over_either_family() {
    let h = Home::new();
    h.init("alice");
    h.init("bob");
    let alice = spawn_served(h.cmd(&["-p", "alice", "serve", "--listen", "[::]:0"]));
    if !alice.addr.is_ipv6() {
        eprintln!("SKIPPED a_dual_stack_node_is_reached_over_either_family: no IPv6 on this host");
        return;
    }
    let _bob = h.serve("bob");
    let ticket = h.run(&["-p", "alice", "invite", "--json"]).json();
    let announced: Vec<std::net::SocketAddr> =
        ticket["addrs"].as_array().unwrap().iter().map(|a| a.as_str().unwrap().parse().unwrap()).collect();
    assert!(announced.iter().any(|a| a.is_ipv4()) && announced.iter().any(|a| a.is_ipv6()), "{ticket}");
    assert_eq!(h.run(&["-p", "bob", "pair", ticket["ticket"].as_str().unwrap()]).ok().trim(), "alice");
    // The ticket's and the handshake's addresses, each once.
    let peers = h.run(&["-p", "bob", "peer", "list", "--json"]).json();
    let addrs = peers[0]["addrs"].as_array().unwrap();
    assert_eq!(addrs.len(), announced.len(), "{peers}");
    let port = alice.addr.port();
    let (v4, v6) = (format!("127.0.0.1:{port}"), format!("[::1]:{port}"));
    let silent = |at: &str| std::net::UdpSocket::bind(at).unwrap();
    let (s4, s6) = ([silent("127.0.0.1:0"), silent("127.0.0.1:0")], [silent("[::1]:0"), silent("[::1]:0")]);
    let at = |s: &std::net::UdpSocket| s.local_addr().unwrap().to_string();
    for (typed, good) in [([at(&s6[0]), at(&s6[1]), v4.clone()], &v4), ([at(&s4[0]), at(&s4[1]), v6.clone()], &v6)] {
        let mut set = vec!["-p", "bob", "peer", "set", "alice"];
        typed.iter().for_each(|a| set.extend(["--addr", a.as_str()]));
        h.run(&set).ok();
        let timeout = "link.handshake_timeout=120s";
        let v =
            h.run(&["-p", "bob", "peer", "ping", "alice", "-c", "1", "--direct", "--json", "--set", timeout]).json();
        assert_eq!((v["received"].clone(), v["addr"].clone()), (serde_json::json!(1), serde_json::json!(good)));
        assert!(v["connect_ms"].as_f64().unwrap() < 60_000.0, "{v}");
        // Where it answered is learned as a plain address (not the
        // ::ffff:127.0.0.1 the dual-stack socket saw).
        let peers = h.run(&["-p", "bob", "peer", "list", "--json"]).json();
        assert_eq!(peers[0]["learned"][0]["addr"], good.as_str(), "{peers}");
    }
    // Through bob's node: its new kept link asks for alice's signed
    // address record, and the node learns what it announces (after the
    // address that worked) until the record expires.
    h.run(&["-p", "bob", "peer", "set", "alice", "--addr", &v4]).ok();
    let v = h.run(&["-p", "bob", "peer", "ping", "alice", "-c", "1", "--json"]).json();
    assert_eq!((v["via_node"].clone(), v["received"].clone()), (serde_json::json!(true), serde_json::json!(1)));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let record = loop {
        let peers = h.run(&["-p", "bob", "peer", "list", "--json"]).json();
        let learned = peers[0]["learned"].as_array().cloned().unwrap_or_default();
        let from_record: Vec<_> = learned.iter().filter(|l| l["until"].is_u64()).cloned().collect();
        if !from_record.is_empty() {
            assert_eq!(learned[0]["addr"], v4.as_str(), "what worked stays first: {peers}");
            break from_record;
        }
        assert!(std::time::Instant::now() < deadline, "no address learned from alice's record: {peers}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let announced: Vec<String> = announced.iter().map(ToString::to_string).collect();
    assert!(record.iter().all(|l| announced.contains(&l["addr"].as_str().unwrap().to_owned())), "{record:?}");
    assert!(record.iter().all(|l| l["how"] == "announced"), "{record:?}");
}

/// `serve --install-unit` writes a systemd user unit that serves this
/// profile of this home with this binary, and serves nothing itself.
#[test]
fn serve_install_unit_writes_a_user_unit() {
    let h = Home::new();
    h.init("alice");
    let config = tempfile::tempdir().unwrap();
    let mut c = h.cmd(&["-p", "alice", "serve", "--install-unit", "--listen", "0.0.0.0:7300", "--json"]);
    c.env("XDG_CONFIG_HOME", config.path());
    let v = crate::common::output(c).json();
    assert_eq!(v["unit"], "alp-alice.service");
    let text = std::fs::read_to_string(config.path().join("systemd/user/alp-alice.service")).unwrap();
    let exe = std::fs::canonicalize(crate::common::alp_bin()).unwrap().display().to_string();
    let homes = [h.path().to_path_buf(), std::fs::canonicalize(h.path()).unwrap()];
    assert!(
        homes.iter().any(|home| text.contains(&format!(
            "ExecStart=\"{exe}\" --home \"{}\" --profile \"alice\" serve --listen 0.0.0.0:7300\n",
            home.display()
        ))),
        "{text}"
    );
    assert!(v["enable"].as_str().unwrap().contains("systemctl --user enable --now alp-alice.service"));
}

#[test]
fn a_ticket_works_once() {
    let h = Home::new();
    let (_alice, _bob) = paired(&h);
    h.init("carol");
    let ticket = h.run(&["-p", "alice", "invite"]).ok().trim().to_owned();
    h.run(&["-p", "carol", "pair", &ticket]).ok();
    h.init("dave");
    h.run(&["-p", "dave", "pair", &ticket])
        .fails(1, &["refused by the peer", "unknown, expired or used pairing ticket"]);
    // A multi-use ticket serves several nodes.
    let ticket = h.run(&["-p", "alice", "invite", "--uses", "2"]).ok().trim().to_owned();
    h.run(&["-p", "dave", "pair", &ticket]).ok();
    h.init("erin");
    h.run(&["-p", "erin", "pair", &ticket]).ok();
    assert_eq!(h.run(&["-p", "alice", "peer", "list", "--json"]).json().as_array().unwrap().len(), 4);
}

#[test]
fn an_expired_ticket_is_refused() {
    let h = Home::new();
    h.init("alice");
    h.init("bob");
    let _alice = h.serve("alice");
    let ticket = h.run(&["-p", "alice", "invite", "--ttl", "1s"]).ok().trim().to_owned();
    std::thread::sleep(Duration::from_millis(2100));
    h.run(&["-p", "bob", "pair", &ticket]).fails(1, &["unknown, expired or used pairing ticket"]);
    assert_eq!(h.run(&["-p", "bob", "peer", "list", "--json"]).json(), serde_json::json!([]));
}

#[test]
fn a_wrong_secret_is_refused_and_failures_are_rate_limited() {
    let h = Home::new();
    h.init("alice");
    h.init("bob");
    let _alice = h.serve_on("alice", 0, &[("ALP__LINK__PAIR_FAILURES_PER_MINUTE", "2")]);
    let good = h.run(&["-p", "alice", "invite"]).ok().trim().to_owned();
    let mut forged: Ticket = good.parse().unwrap();
    forged.secret = TicketSecret([7; 32]);
    let forged = forged.to_string();
    for _ in 0..2 {
        h.run(&["-p", "bob", "pair", &forged]).fails(1, &["unknown, expired or used pairing ticket"]);
    }
    h.run(&["-p", "bob", "pair", &forged]).fails(1, &["too many failed pairing attempts"]);
    // While limited, even the right ticket is refused from this address.
    h.run(&["-p", "bob", "pair", &good]).fails(1, &["too many failed pairing attempts"]);
    h.run(&["-p", "bob", "pair", "alpticket1garbage"]).fails(2, &["alpticket1garbage"]);
}

#[test]
fn an_untrusted_node_is_refused() {
    let h = Home::new();
    h.init("alice");
    h.init("carol");
    let alice = h.serve("alice");
    let id = node_id(&h, "alice").to_string();
    h.run(&["-p", "carol", "peer", "add", "alice", &id, "--addr", &alice.addr.to_string()]).ok();
    h.run(&["-p", "carol", "peer", "ping", "alice", "-c", "1"])
        .fails(1, &["refused by the peer", "not a trusted peer"]);
}

#[test]
fn a_peer_entry_with_the_wrong_node_id_refuses_to_talk() {
    let h = Home::new();
    let (alice, _bob) = paired(&h);
    h.init("carol");
    let carol = node_id(&h, "carol").to_string();
    h.run(&["-p", "bob", "peer", "add", "impostor", &carol, "--addr", &alice.addr.to_string()]).ok();
    h.run(&["-p", "bob", "peer", "ping", "impostor", "-c", "1"]).fails(1, &["expected", &carol]);
}

#[test]
fn invite_needs_a_running_node_and_one_node_per_profile() {
    let h = Home::new();
    h.init("alice");
    h.run(&["-p", "alice", "invite"]).fails(2, &["no `alp serve` is running", "--addr"]);
    let alice = h.serve("alice");
    let r = h.run(&["-p", "alice", "serve", "--listen", "127.0.0.1:0"]);
    r.fails(1, &["already served by process"]);
    let v = h.run(&["-p", "alice", "invite", "--json", "--ttl", "1h", "--uses", "3"]).json();
    assert_eq!(v["uses"], 3);
    assert_eq!(v["addrs"][0], alice.addr.to_string());
    let t: Ticket = v["ticket"].as_str().unwrap().parse().unwrap();
    assert_eq!(t.node_id, node_id(&h, "alice"));
    // The ticket store never holds the secret.
    let stored = std::fs::read_to_string(h.path().join("profiles/alice/tickets.toml")).unwrap();
    let secret_hex: String = t.secret.0.iter().map(|b| format!("{b:02x}")).collect();
    assert!(!stored.contains(&secret_hex));
}

#[test]
fn stop_restart_and_peers_reconnect() {
    let h = Home::new();
    let (alice, _bob) = paired(&h);
    let port = alice.addr.port();
    h.run(&["-p", "bob", "peer", "ping", "alice", "-c", "1"]).ok();
    let status = alice.terminate();
    assert!(status.success(), "alp serve exited with {status:?} on SIGTERM");
    assert!(!h.path().join("profiles/alice/serve.toml").exists());
    // The closed port says so at once: the 10 s handshake limit is not waited out.
    h.run(&["-p", "bob", "peer", "ping", "alice", "-c", "1"]).fails(1, &["nothing is listening there", "alp serve"]);
    // A port that swallows packets in silence runs into the timeout.
    let silent = std::net::UdpSocket::bind(("127.0.0.1", port)).unwrap();
    h.run(&["-p", "bob", "peer", "ping", "alice", "-c", "1", "--direct", "--set", "link.handshake_timeout=500ms"])
        .fails(1, &["no answer within 0.5s"]);
    drop(silent);
    let _alice = h.serve_on("alice", port, &[]);
    h.run(&["-p", "bob", "peer", "ping", "alice", "-c", "1"]).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_splicing_the_handshake_fails() {
    let h = Home::new();
    h.init("alice");
    let alice = h.serve("alice");
    let (bob_key, bob) = client(2);
    h.trust("alice", "bob", &bob_key);
    let alice_id = node_id(&h, "alice");
    // The relay terminates QUIC on both sides and copies the first stream.
    let settings = alp_link::LinkSettings::default();
    let mut relay =
        quinn::Endpoint::server(alp_link::tls::server_config(&settings).unwrap(), "127.0.0.1:0".parse().unwrap())
            .unwrap();
    relay.set_default_client_config(alp_link::tls::client_config(&settings).unwrap());
    let relay_addr = relay.local_addr().unwrap();
    let upstream = alice.addr;
    let splice = tokio::spawn(async move {
        let down = relay.accept().await.unwrap().await.unwrap();
        let up = relay.connect(upstream, "alp").unwrap().await.unwrap();
        let (mut down_send, mut down_recv) = down.accept_bi().await.unwrap();
        let (mut up_send, mut up_recv) = up.open_bi().await.unwrap();
        let a = async move {
            let mut buf = [0u8; 4096];
            while let Ok(Some(n)) = down_recv.read(&mut buf).await {
                if up_send.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        };
        let b = async move {
            let mut buf = [0u8; 4096];
            while let Ok(Some(n)) = up_recv.read(&mut buf).await {
                if down_send.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        };
        tokio::join!(a, b);
    });
    let err = bob.dial(relay_addr, alice_id).await.unwrap_err();
    assert!(
        matches!(
            err,
            alp_link::DialError::Handshake { source: alp_protocol::handshake::HandshakeError::Crypto(_), .. }
        ),
        "a spliced handshake must fail to authenticate, got: {err}"
    );
    splice.abort();
    // The same client reaches alice directly.
    let link = bob.dial(alice.addr, alice_id).await.unwrap();
    link.ping(1).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_client_is_dropped_after_the_handshake_timeout() {
    let h = Home::new();
    h.init("alice");
    let alice = h.serve_on("alice", 0, &[("ALP__LINK__HANDSHAKE_TIMEOUT", "1s")]);
    let settings = alp_link::LinkSettings::default();
    let mut raw = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    raw.set_default_client_config(alp_link::tls::client_config(&settings).unwrap());
    let conn = raw.connect(alice.addr, "alp").unwrap().await.unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(10), conn.closed()).await.expect("closed within 10 s");
    match closed {
        quinn::ConnectionError::ApplicationClosed(c) => {
            assert_eq!(c.error_code, alp_link::close_code::HANDSHAKE_TIMEOUT);
        }
        other => panic!("expected a handshake-timeout close, got {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frames_only_reset_their_own_stream() {
    let h = Home::new();
    let (alice, _bob) = paired(&h);
    let (key, ep) = client(3);
    h.trust("alice", "mallory", &key);
    let link = ep.dial(alice.addr, node_id(&h, "alice")).await.unwrap();
    let conn = link.connection();

    let reset_code = |r: Result<Vec<u8>, quinn::ReadToEndError>| match r {
        Err(quinn::ReadToEndError::Read(quinn::ReadError::Reset(code))) => code.into_inner(),
        other => panic!("expected a reset, got {other:?}"),
    };
    // Not CBOR.
    let (mut s, mut r) = conn.open_bi().await.unwrap();
    s.write_all(&[0, 0, 0, 3, 0xff, 0xfe, 0xfd]).await.unwrap();
    s.finish().unwrap();
    assert_eq!(reset_code(r.read_to_end(1024).await), 2);
    // A length far over the limit: refused before the payload is read.
    let (mut s, mut r) = conn.open_bi().await.unwrap();
    s.write_all(&[0x7f, 0xff, 0xff, 0xff, 1, 2, 3]).await.unwrap();
    assert_eq!(reset_code(r.read_to_end(1024).await), 1);
    // A truncated frame.
    let (mut s, mut r) = conn.open_bi().await.unwrap();
    s.write_all(&[0, 0, 0, 9, 1]).await.unwrap();
    s.finish().unwrap();
    assert_eq!(reset_code(r.read_to_end(1024).await), 2);
    // An unknown verb gets a typed error; so does one not allowed.
    let e = link.call("link.pong", vec![]).await.unwrap_err();
    assert!(matches!(e, alp_link::RequestError::Remote(ref r) if r.code == ErrorCode::UnknownVerb), "{e}");
    let e = link.call("blob.get", to_cbor(&0u8)).await.unwrap_err();
    assert!(matches!(e, alp_link::RequestError::Remote(ref r) if r.code == ErrorCode::Forbidden), "{e}");
    let e = link.call("link.ping", vec![0u8; 10_000]).await.unwrap_err();
    assert!(matches!(e, alp_link::RequestError::Remote(ref r) if r.code == ErrorCode::TooLarge), "{e}");
    let e = link.call("link.ping", vec![0xff]).await.unwrap_err();
    assert!(matches!(e, alp_link::RequestError::Remote(ref r) if r.code == ErrorCode::BadRequest), "{e}");
    // The connection itself is still good, and so is everyone else's.
    link.ping(9).await.unwrap();
    let home = h.path().to_owned();
    let bob_ping = tokio::task::spawn_blocking(move || {
        let mut c = crate::common::bare_cmd();
        c.arg("--home").arg(home).args(["-p", "bob", "peer", "ping", "alice", "-c", "2", "-i", "10ms"]);
        crate::common::output(c)
    });
    bob_ping.await.unwrap().ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_peers_ping_concurrently() {
    let h = Home::new();
    h.init("alice");
    let alice = h.serve("alice");
    let alice_id = node_id(&h, "alice");
    let clients: Vec<_> = (0..50u8).map(|i| client(100 + i)).collect();
    for (i, (key, _)) in clients.iter().enumerate() {
        h.trust("alice", &format!("c{i}"), key);
    }
    let tasks: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, (_, ep))| {
            tokio::spawn(async move {
                let link = ep.dial(alice.addr, alice_id).await?;
                let nonce = i as u64;
                for _ in 0..3 {
                    link.ping(nonce)
                        .await
                        .map_err(|e| alp_link::DialError::Connect { addr: alice.addr, reason: e.to_string() })?;
                }
                Ok::<_, alp_link::DialError>(())
            })
        })
        .collect();
    for (i, t) in tasks.into_iter().enumerate() {
        let r = tokio::time::timeout(Duration::from_secs(60), t).await.expect("bounded").unwrap();
        assert!(r.is_ok(), "peer {i}: {}", r.unwrap_err());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_over_the_rate_limit_are_refused() {
    let h = Home::new();
    h.init("alice");
    let alice = h.serve_on("alice", 0, &[("ALP__LINK__REQUESTS_PER_SECOND", "1"), ("ALP__LINK__REQUEST_BURST", "3")]);
    let (key, ep) = client(4);
    h.trust("alice", "eager", &key);
    let link = ep.dial(alice.addr, node_id(&h, "alice")).await.unwrap();
    for _ in 0..3 {
        link.ping(1).await.unwrap();
    }
    let e = link.ping(1).await.unwrap_err();
    assert!(matches!(e, alp_link::RequestError::Remote(ref r) if r.code == ErrorCode::RateLimited), "{e}");
}

#[test]
fn peers_remember_each_others_static_key_and_a_wrong_one_is_checked_again() {
    let h = Home::new();
    let (alice, _bob) = paired(&h);
    let key_of = |who: &str| {
        let peers = h.run(&["-p", who, "peer", "list", "--json"]).json();
        peers[0]["noise_key"].as_str().unwrap_or_default().to_owned()
    };
    // Pairing recorded the key each side proved, on both sides.
    let (alices, bobs) = (key_of("bob"), key_of("alice"));
    assert_eq!(alices.len(), 64, "{alices}");
    assert_eq!(bobs.len(), 64, "{bobs}");
    assert_ne!(alices, bobs);
    // A wrong stored key (here bob's own) is not trusted: alice's signature
    // is checked again, the dial succeeds, and the right key is stored.
    let path = h.path().join("profiles/bob/peers.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace(&alices, &bobs)).unwrap();
    assert_eq!(key_of("bob"), bobs);
    // (Dialled by the command: bob's running node remembers the key it
    // saw, so it would not read the edited file.)
    h.run(&["-p", "bob", "peer", "ping", "alice", "-c", "1", "--direct"]).ok();
    assert_eq!(key_of("bob"), alices);
    // A node's key survives a restart: it derives from the identity.
    let port = alice.addr.port();
    assert!(alice.terminate().success());
    let _alice = h.serve_on("alice", port, &[]);
    h.run(&["-p", "bob", "peer", "ping", "alice", "-c", "1"]).ok();
    assert_eq!(key_of("bob"), alices);
}

#[test]
fn ticket_lifetimes_are_bounded() {
    let h = Home::new();
    h.init("alice");
    h.run(&["-p", "alice", "invite", "--addr", "127.0.0.1:1", "--ttl", "0s"]).fails(2, &["between 1s and 30d"]);
    h.run(&["-p", "alice", "invite", "--addr", "127.0.0.1:1", "--ttl", "1000000days"])
        .fails(2, &["between 1s and 30d"]);
    h.run(&["-p", "alice", "invite", "--addr", "127.0.0.1:1", "--ttl", "30d"]).ok();
}

/// A profile that pairs without being served announces the port it will
/// listen on; the inviter records it at the IP the pairing came from,
/// marked as observed, and can dial it once it serves. Re-pairing says
/// what the peer may call, grants kept.
#[test]
fn pairing_records_where_an_unserved_invitee_will_listen() {
    let h = Home::new();
    h.init("alice");
    h.init("bob");
    let alice = h.serve("alice");
    let port = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    h.run(&["-p", "bob", "config", "set", "node.listen", &format!("0.0.0.0:{port}")]).ok();
    let ticket = h.run(&["-p", "alice", "invite"]).ok().trim().to_owned();
    h.run(&["-p", "bob", "pair", &ticket]).ok();
    let peers = h.run(&["-p", "alice", "peer", "list", "--json"]).json();
    let bob = &peers[0];
    let here = format!("127.0.0.1:{port}");
    assert_eq!(bob["addrs"], serde_json::json!([here]));
    assert_eq!(bob["observed"], serde_json::json!([here]));
    assert!(h.run(&["-p", "alice", "peer", "list"]).ok().contains(&format!("{here} (observed)")));
    // Bob starts his node where he said: alice reaches him with nothing typed.
    let _bob = h.serve_on("bob", port, &[]);
    h.run(&["-p", "alice", "peer", "ping", "bob", "-c", "1"]).ok();

    // Bob granted alice more; pairing again keeps it and says so.
    h.run(&["-p", "bob", "peer", "allow", "alice", "blob.get"]).ok();
    let ticket = h.run(&["-p", "alice", "invite"]).ok().trim().to_owned();
    let r = h.run(&["-p", "bob", "pair", &ticket]);
    r.ok();
    assert!(r.stderr.contains("blob.get"), "{}", r.stderr);
    drop(alice);
}
