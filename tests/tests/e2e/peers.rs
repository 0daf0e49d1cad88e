//! `alp peer …`: the trusted-peer list, permissions and every error path.

use crate::common::Home;

fn two_ids(h: &Home) -> (String, String) {
    (h.init("bob"), h.init("carol"))
}

#[test]
fn add_list_show_remove() {
    let h = Home::new();
    h.init("personal");
    let (bob, carol) = two_ids(&h);
    let r = h.run(&["peer", "add", "bob", &bob, "--addr", "127.0.0.1:7117", "--addr", "bob.example:7117"]);
    assert_eq!(r.ok(), "", "peer add prints its confirmation on stderr only");
    assert!(r.stderr.contains("added peer 'bob'") && r.stderr.contains("link.ping, link.info"), "{}", r.stderr);
    h.run(&["peer", "add", "carol", &carol]).ok();

    let text = h.run(&["peer", "list"]).ok().to_owned();
    assert!(text.contains(&bob) && text.contains("127.0.0.1:7117,bob.example:7117"), "{text}");
    assert!(text.contains("never"), "{text}");
    let v = h.run(&["peer", "list", "--json"]).json();
    assert_eq!(v.as_array().unwrap().len(), 2);
    assert_eq!(v[0]["name"], "bob");
    assert_eq!(v[0]["node_id"], bob.as_str());
    assert_eq!(v[0]["allow"], serde_json::json!(["link.ping", "link.info"]));

    let v = h.run(&["peer", "show", "carol", "--json"]).json();
    assert_eq!(v["node_id"], carol.as_str());
    assert_eq!(v["addrs"], serde_json::json!([]));
    assert!(h.run(&["peer", "show", "bob"]).ok().contains("allowed:   link.ping, link.info"));

    h.run(&["peer", "remove", "bob"]).ok();
    h.run(&["peer", "show", "bob"]).fails(2, &["unknown peer 'bob'", "alp peer list"]);
    assert_eq!(h.run(&["peer", "list", "--json"]).json().as_array().unwrap().len(), 1);
}

#[test]
fn allow_and_deny_verbs() {
    let h = Home::new();
    h.init("personal");
    let bob = h.init("bob");
    h.run(&["peer", "add", "bob", &bob]).ok();
    let v = h.run(&["peer", "allow", "bob", "blob.get", "agent.ask", "--json"]).json();
    assert_eq!(v["allow"], serde_json::json!(["link.ping", "link.info", "blob.get", "agent.ask"]));
    h.run(&["peer", "deny", "bob", "link.ping", "agent.ask"]).ok();
    let v = h.run(&["peer", "show", "bob", "--json"]).json();
    assert_eq!(v["allow"], serde_json::json!(["link.info", "blob.get"]));
    h.run(&["peer", "allow", "bob", "link.pong"]).fails(2, &["link.pong", "known verbs", "link.ping"]);
    h.run(&["peer", "allow", "ghost", "blob.get"]).fails(2, &["unknown peer 'ghost'"]);
    h.run(&["peer", "deny", "bob"]).fails(2, &["VERB"]);
}

#[test]
fn invalid_node_ids_exit_2_naming_the_value() {
    let h = Home::new();
    h.init("personal");
    let bob = h.init("bob");
    let mut typo = bob.clone().into_bytes();
    typo[20] = if typo[20] == b'q' { b'p' } else { b'q' };
    let typo = String::from_utf8(typo).unwrap();
    h.run(&["peer", "add", "x", &typo]).fails(2, &[&typo, "checksum", "typo"]);
    let short = &bob[..bob.len() - 1];
    h.run(&["peer", "add", "x", short]).fails(2, &[short]);
    h.run(&["peer", "add", "x", "hello"]).fails(2, &["hello", "alp1"]);
    let other_prefix = bob.replacen("alp1", "alq1", 1);
    h.run(&["peer", "add", "x", &other_prefix]).fails(2, &[&other_prefix]);
    h.run(&["peer", "add", "x", &bob, "--addr", "nope"]).fails(2, &["nope", "HOST:PORT"]);
    h.run(&["peer", "add", "../x", &bob]).fails(2, &["invalid name"]);
    assert_eq!(h.run(&["peer", "list", "--json"]).json(), serde_json::json!([]));
}

#[test]
fn duplicates_exit_2_naming_the_existing_entry() {
    let h = Home::new();
    let me = h.init("personal");
    let (bob, carol) = two_ids(&h);
    h.run(&["peer", "add", "bob", &bob]).ok();
    h.run(&["peer", "add", "bob", &carol]).fails(2, &["peer named 'bob' already exists", &bob]);
    h.run(&["peer", "add", "robert", &bob]).fails(2, &[&bob, "already trusted as peer 'bob'"]);
    h.run(&["peer", "add", "me", &me]).fails(2, &["own node id"]);
}

#[test]
fn unknown_peer_exits_2() {
    let h = Home::new();
    h.init("personal");
    h.run(&["peer", "remove", "ghost"]).fails(2, &["unknown peer 'ghost'"]);
    h.run(&["peer", "show", "ghost"]).fails(2, &["unknown peer 'ghost'"]);
}

#[test]
fn corrupted_peer_file_is_reported_and_kept() {
    let h = Home::new();
    h.init("personal");
    let bob = h.init("bob");
    let path = h.path().join("profiles/personal/peers.toml");
    std::fs::write(&path, "version = 1\n[[peer]\n").unwrap();
    h.run(&["peer", "list"]).fails(2, &["peers.toml", "corrupted"]);
    h.run(&["peer", "add", "bob", &bob]).fails(2, &["corrupted", "will not overwrite"]);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "version = 1\n[[peer]\n");
}

#[test]
fn concurrent_writers_never_lose_an_update() {
    let h = Home::new();
    h.init("personal");
    let ids: Vec<String> = (0..12).map(|i| h.init(&format!("n{i}"))).collect();
    let children: Vec<_> =
        ids.iter().enumerate().map(|(i, id)| h.cmd(&["peer", "add", &format!("p{i}"), id]).spawn().unwrap()).collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let list = h.run(&["peer", "list", "--json"]).json();
    assert_eq!(list.as_array().unwrap().len(), ids.len());
    // Mixed concurrent allow/deny on one peer still leaves a parseable file.
    let children: Vec<_> = (0..8)
        .map(|i| {
            let verb = if i % 2 == 0 { "allow" } else { "deny" };
            h.cmd(&["peer", verb, "p0", "blob.get"]).spawn().unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    assert_eq!(h.run(&["peer", "list", "--json"]).json().as_array().unwrap().len(), ids.len());
}

/// Advice that is right: a typo gets the name meant, a peer with no
/// address gets `peer set`, a damaged ticket is called damaged, and a
/// refusal does not promise a resume.
#[test]
fn advice_names_the_right_fix() {
    let h = Home::new();
    h.init("alice");
    let bob = h.init("bob");
    h.run(&["-p", "alice", "peer", "add", "research", &bob]).ok();
    h.run(&["-p", "alice", "peer", "ping", "reserch"]).fails(2, &["unknown peer 'reserch'", "did you mean 'research'"]);
    h.run(&["-p", "alice", "peer", "ping", "research"])
        .fails(2, &["no usable address", "alp peer set research --addr"]);
    h.run(&["-p", "alice", "pair", "alpticket1garbage"]).fails(2, &["typo or was cut short"]);
    // bob serves but does not allow alice to push: refused, nothing to resume.
    let served = h.serve("bob");
    let alice = h.run(&["-p", "alice", "id"]).ok().trim().to_owned();
    h.run(&["-p", "bob", "peer", "add", "alice", &alice]).ok();
    h.run(&["-p", "alice", "peer", "set", "research", "--addr", &served.addr.to_string()]).ok();
    let f = h.path().join("f");
    std::fs::write(&f, b"x").unwrap();
    let r = h.run(&["-p", "alice", "blob", "put", f.to_str().unwrap(), "--to", "research"]);
    // A missing permission is a setting to change: exit 2, as for `ask`.
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(!r.stderr.contains("resume"), "{}", r.stderr);
}

/// `alp serve`: one line on start; a clear refusal when the profile
/// already serves (naming the process) or the port is taken; host names.
#[test]
fn serve_says_what_is_in_the_way() {
    let h = Home::new();
    h.init("alice");
    h.init("bob");
    let mut first = h.cmd(&["-p", "alice", "serve", "--listen", "localhost:0"]);
    first.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let mut first = first.spawn().unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(first.stdout.take().unwrap()), &mut line).unwrap();
    let addr: std::net::SocketAddr = line.trim().parse().unwrap();
    assert!(addr.ip().is_loopback());
    h.run(&["-p", "alice", "serve", "--listen", "127.0.0.1:0"]).fails(1, &["already served by process"]);
    h.run(&["-p", "bob", "serve", "--listen", &addr.to_string()]).fails(2, &["is taken", "--listen"]);
    first.kill().unwrap();
    let out = first.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().filter(|l| l.contains("serving")).count(), 1, "one line on start: {stderr}");
}

/// A peer renamed keeps its permissions; a taken name is refused.
#[test]
fn a_renamed_peer_keeps_its_permissions() {
    let h = Home::new();
    h.init("alice");
    let bob = h.init("bob");
    let carol = h.init("carol");
    h.run(&["-p", "alice", "peer", "add", "bob", &bob]).ok();
    h.run(&["-p", "alice", "peer", "add", "carol", &carol]).ok();
    h.run(&["-p", "alice", "peer", "allow", "bob", "blob.get"]).ok();
    h.run(&["-p", "alice", "peer", "rename", "bob", "research"]).ok();
    let v = h.run(&["-p", "alice", "peer", "show", "research", "--json"]).json();
    assert_eq!(v["node_id"], bob.as_str());
    assert!(v["allow"].as_array().unwrap().iter().any(|x| x == "blob.get"), "{v}");
    h.run(&["-p", "alice", "peer", "rename", "research", "carol"]).fails(2, &["already exists"]);
    h.run(&["-p", "alice", "peer", "show", "bob"]).fails(2, &["unknown peer 'bob'"]);
}

/// On a terminal, dialling a peer says whom and where before it waits.
#[test]
fn dialling_says_whom_and_where_on_a_terminal() {
    let h = Home::new();
    h.init("alice");
    let bob = h.init("bob");
    h.run(&["-p", "alice", "peer", "add", "bob", &bob, "--addr", "127.0.0.1:9"]).ok();
    let line =
        format!("{} --home {} -p alice peer ping bob -c 1", crate::common::alp_bin().display(), h.path().display());
    let out = std::process::Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .env("ALP__LINK__HANDSHAKE_TIMEOUT", "1s")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("connecting to bob at 127.0.0.1:9..."), "{text}");
    // Not on a pipe: stderr there is for errors only.
    let r = h
        .cmd(&["-p", "alice", "peer", "ping", "bob", "-c", "1"])
        .env("ALP__LINK__HANDSHAKE_TIMEOUT", "1s")
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&r.stderr).contains("connecting to"));
}
