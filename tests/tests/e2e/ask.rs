//! `alp ask PEER`: agent work on a peer, over the authenticated link. The
//! answering node's provider is the scripted fake, so the tests see what
//! the peer's model was asked.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::{Home, Served};
use crate::fake_provider::{FakeProvider, openai_slow, openai_stream, openai_tool_call};

/// alice answers asks with the fake provider; bob asks. Paired both ways.
fn setup(fake: &FakeProvider) -> (Home, Served, Served) {
    let h = Home::new();
    h.init("alice");
    h.init("bob");
    let url = fake.url("/v1");
    let alice = h.serve_on("alice", 0, &[("OPENAI_BASE_URL", &url), ("OPENAI_API_KEY", "sk-alice-key-000")]);
    let bob = h.serve("bob");
    let ticket = h.run(&["-p", "alice", "invite"]).ok().trim().to_owned();
    h.run(&["-p", "bob", "pair", &ticket, "--name", "alice"]).ok();
    // alice calls bob's entry for her "bob".
    let name = h.run(&["-p", "alice", "--json", "peer", "list"]).json()[0]["name"].as_str().unwrap().to_owned();
    assert_eq!(name, "bob", "pairing named the peer {name}");
    (h, alice, bob)
}

#[test]
fn ask_is_refused_until_allowed_then_streams_the_answer() {
    let fake = FakeProvider::start(vec![openai_stream(&["Hello ", "from alice."], 7, 3)]);
    let (h, _alice, _bob) = setup(&fake);
    h.run(&["-p", "bob", "ask", "alice", "hi"]).fails(2, &["not allowed to call agent.ask", "alp peer allow"]);
    assert!(fake.requests().is_empty());

    h.run(&["-p", "alice", "peer", "allow", "bob", "agent.ask"]).ok();
    let run = h.run(&["-p", "bob", "--json", "ask", "alice", "Say hello", "--system", "Be warm."]);
    let v = run.json();
    assert_eq!(v["answer"], "Hello from alice.");
    assert_eq!(v["usage"], serde_json::json!({"input_tokens": 7, "output_tokens": 3}));
    // alice's model got the prompt, with no tools offered (none granted to bob).
    let r = &fake.requests()[0];
    assert_eq!(
        r.body["messages"],
        serde_json::json!([{"role": "system", "content": "Be warm."}, {"role": "user", "content": "Say hello"}])
    );
    assert!(r.body.get("tools").is_none(), "{}", r.body);
    // The spend is on alice's ledger, under bob's name.
    let ledger = h.path().join("profiles/alice/ledger");
    let day = std::fs::read_dir(ledger).unwrap().next().unwrap().unwrap().path();
    assert!(std::fs::read_to_string(day).unwrap().contains("\"caller\":\"bob\""));
}

#[test]
fn the_tool_allow_list_is_enforced_per_caller() {
    let fake = FakeProvider::start(vec![
        openai_tool_call("c1", "read_file", r#"{"path":"plan.txt"}"#),
        openai_stream(&["The plan is ready."], 1, 1),
        openai_tool_call("c2", "shell", r#"{"argv":["id"]}"#),
    ]);
    let (h, _alice, _bob) = setup(&fake);
    std::fs::create_dir_all(h.path().join("profiles/alice/workspace")).unwrap();
    std::fs::write(h.path().join("profiles/alice/workspace/plan.txt"), "ship it").unwrap();
    h.run(&["-p", "alice", "peer", "allow", "bob", "agent.ask"]).ok();
    h.run(&["-p", "alice", "peer", "set", "bob", "--ask-tools", "read_file"]).ok();

    let v = h.run(&["-p", "bob", "--json", "ask", "alice", "What is the plan?"]).json();
    assert_eq!(v["answer"], "The plan is ready.");
    assert_eq!(v["tool_calls"][0]["name"], "read_file");
    let tools: Vec<String> = fake.requests()[0].body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(tools, ["read_file"]);
    assert_eq!(fake.requests()[1].body["messages"][2]["content"], "ship it");

    // A tool bob was not granted stops the ask with the denied-tool code.
    h.run(&["-p", "bob", "ask", "alice", "run id"]).fails(4, &["shell", "alp peer set"]);
}

#[test]
fn the_per_caller_daily_budget_is_enforced() {
    let fake = FakeProvider::start(vec![openai_stream(&["one"], 60, 40), openai_stream(&["two"], 1, 1)]);
    let (h, _alice, _bob) = setup(&fake);
    h.run(&["-p", "alice", "peer", "allow", "bob", "agent.ask"]).ok();
    h.run(&["-p", "alice", "peer", "set", "bob", "--ask-daily-tokens", "100"]).ok();
    h.run(&["-p", "bob", "ask", "alice", "first"]).ok();
    h.run(&["-p", "bob", "ask", "alice", "second"]).fails(3, &["token cap"]);
    assert_eq!(fake.requests().len(), 1, "the second ask never reached the model");
}

#[test]
fn interrupting_an_ask_cancels_it_on_the_peer() {
    let fake =
        FakeProvider::start(vec![openai_slow(200, Duration::from_millis(50)), openai_stream(&["free again"], 1, 1)]);
    let (h, _alice, _bob) = setup(&fake);
    h.run(&["-p", "alice", "peer", "allow", "bob", "agent.ask"]).ok();
    let mut c = h.cmd(&["-p", "bob", "ask", "alice", "talk for a long time", "--stream-json"]);
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert!(first.contains("\"text\""), "{first}");
    // A second ask while the first runs: one at a time per caller.
    h.run(&["-p", "bob", "ask", "alice", "me too"]).fails(1, &["busy"]);
    let status = crate::common::interrupt(&mut child);
    assert_eq!(status.code(), Some(130));
    // The peer stopped the first ask: a new one is accepted at once.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let run = h.run(&["-p", "bob", "ask", "alice", "again"]);
        if run.code == 0 {
            assert_eq!(run.stdout, "free again\n");
            break;
        }
        assert!(run.stderr.contains("busy") && Instant::now() < deadline, "{run:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `alp chat --once` as `profile`, with the fake as its provider.
fn chat_as(h: &Home, fake: &FakeProvider, profile: &str, args: &[&str]) -> crate::common::Run {
    let mut c = h.cmd(&[&["-p", profile, "--json", "chat", "--once"][..], args].concat());
    c.env("OPENAI_BASE_URL", fake.url("/v1")).env("OPENAI_API_KEY", "sk-chat-key-000");
    crate::common::output(c)
}

#[test]
fn the_model_can_ask_a_peer() {
    let fake = FakeProvider::start(vec![
        openai_tool_call("c1", "ask_peer", r#"{"peer":"alice","prompt":"What is your name?"}"#),
        openai_stream(&["I am alice."], 3, 3),
        openai_stream(&["She says she is alice."], 5, 5),
    ]);
    let (h, _alice, _bob) = setup(&fake);
    h.run(&["-p", "alice", "peer", "allow", "bob", "agent.ask"]).ok();
    let v = chat_as(&h, &fake, "bob", &["Ask alice her name", "--allow-tools", "ask_peer"]).json();
    assert_eq!(v["answer"], "She says she is alice.");
    let reqs = fake.requests();
    assert_eq!(reqs[1].body["messages"][0]["content"], "What is your name?", "alice's model got the question");
    assert_eq!(reqs[2].body["messages"][2]["content"], "I am alice.", "bob's model got alice's answer");
}

#[test]
fn the_model_can_send_and_fetch_blobs() {
    let fake = FakeProvider::start(vec![
        openai_tool_call("c1", "send_blob", r#"{"peer":"bob","path":"report.txt"}"#),
        openai_stream(&["Sent."], 1, 1),
    ]);
    let (h, _alice, _bob) = setup(&fake);
    let ws = h.path().join("profiles/alice/workspace");
    std::fs::create_dir_all(&ws).unwrap();
    std::fs::write(ws.join("report.txt"), "quarterly numbers").unwrap();
    h.run(&["-p", "bob", "peer", "allow", "alice", "blob.put", "blob.get"]).ok();
    let v = chat_as(&h, &fake, "alice", &["Send the report to bob", "--yes"]).json();
    assert_eq!(v["tool_calls"][0]["ok"], true, "{v}");
    let hash = blake3::hash(b"quarterly numbers").to_hex().to_string();
    assert!(h.run(&["-p", "bob", "blob", "ls"]).ok().contains(&hash));

    // bob shares a blob; alice's model fetches it into her workspace.
    let bob_file = h.path().join("bob-notes.txt");
    std::fs::write(&bob_file, "notes from bob").unwrap();
    let bob_hash = h.run(&["-p", "bob", "blob", "add", bob_file.to_str().unwrap()]).ok().trim().to_owned();
    h.run(&["-p", "bob", "blob", "share", &bob_hash, "--with", "alice"]).ok();
    let call = format!(r#"{{"peer":"bob","hash":"{bob_hash}","path":"in/notes.txt"}}"#);
    let fake =
        FakeProvider::start(vec![openai_tool_call("c2", "fetch_blob", &call), openai_stream(&["Got it."], 1, 1)]);
    let v = chat_as(&h, &fake, "alice", &["Fetch bob's notes", "--allow-tools", "fetch_blob"]).json();
    assert_eq!(v["answer"], "Got it.");
    assert_eq!(std::fs::read_to_string(ws.join("in/notes.txt")).unwrap(), "notes from bob");
}

/// What the peer's model got back from its tool calls, in order.
fn tool_results(fake: &FakeProvider) -> Vec<String> {
    let last = fake.requests().last().unwrap().body["messages"].clone();
    last.as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "tool")
        .map(|m| m["content"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// The attack of the hardening review: a peer granted `shell` tried to read
/// the provider key from its parent's environment and the node's identity
/// key from beside the workspace. In the sandbox, neither is there, nothing
/// outside the workspace can be written, and there is no network.
#[test]
fn a_peer_granted_shell_cannot_reach_the_nodes_secrets() {
    let escapes = [
        r#"{"argv":["cat","../identity.key"]}"#,
        r#"{"argv":["sh","-c","cat /proc/*/environ; echo; ls /proc; cat $HOME/../identity.key"]}"#,
        r#"{"argv":["sh","-c","echo x > ../planted; echo x > /usr/planted; echo x > /tmp/planted; echo x > ok.txt; cat /proc/net/dev"]}"#,
    ];
    let mut script: Vec<_> =
        escapes.iter().enumerate().map(|(i, a)| openai_tool_call(&format!("c{i}"), "shell", a)).collect();
    script.push(openai_stream(&["done"], 1, 1));
    let fake = FakeProvider::start(script);
    let (h, _alice, _bob) = setup(&fake);
    h.run(&["-p", "alice", "peer", "allow", "bob", "agent.ask"]).ok();
    // Granting a tool that runs programs needs a confirmation that says what it means.
    h.run(&["-p", "alice", "peer", "set", "bob", "--ask-tools", "shell"])
        .fails(2, &["lets 'bob' run programs on this machine", "--yes"]);
    h.run(&["-p", "alice", "peer", "set", "bob", "--ask-tools", "shell", "--yes"]).ok();
    h.run(&["-p", "bob", "ask", "alice", "look around"]).ok();

    let results = tool_results(&fake);
    assert_eq!(results.len(), 3, "{results:?}");
    let all = results.join("\n");
    assert!(!all.contains("not available here"), "no sandbox ran (install bubblewrap): {all}");
    let identity = std::fs::read_to_string(h.path().join("profiles/alice/identity.key")).unwrap();
    let seed = identity.lines().find(|l| !l.starts_with('#') && !l.trim().is_empty()).unwrap().trim();
    assert!(!all.contains(seed), "the identity key leaked: {all}");
    assert!(!all.contains("sk-alice-key-000"), "the provider key leaked: {all}");
    assert!(results[0].contains("No such file"), "{}", results[0]);
    // Only the sandbox's own processes are visible.
    let pids = results[1].lines().filter(|l| l.trim().parse::<u32>().is_ok()).count();
    assert!(pids <= 4, "{}", results[1]);
    // Nothing outside the workspace was written; the workspace was.
    assert!(!h.path().join("profiles/alice/planted").exists());
    assert!(!std::path::Path::new("/usr/planted").exists());
    assert!(h.path().join("profiles/alice/workspace/ok.txt").exists());
    // No network but loopback.
    let stdout = results[2].split("stderr:").next().unwrap();
    let interfaces: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.trim_start().split_once(':'))
        .filter(|(_, rest)| rest.trim_start().starts_with(|c: char| c.is_ascii_digit()))
        .map(|(name, _)| name)
        .collect();
    assert_eq!(interfaces, ["lo"], "{}", results[2]);
}

#[test]
fn a_peers_tool_activity_and_refusals_read_right_on_the_callers_side() {
    let fake = FakeProvider::start(vec![
        openai_tool_call("c1", "read_file", r#"{"path":"plan.txt"}"#),
        openai_stream(&["ok"], 1, 1),
        openai_tool_call("c2", "shell", r#"{"argv":["id"]}"#),
    ]);
    let (h, _alice, _bob) = setup(&fake);
    std::fs::create_dir_all(h.path().join("profiles/alice/workspace")).unwrap();
    std::fs::write(h.path().join("profiles/alice/workspace/plan.txt"), "x").unwrap();
    h.run(&["-p", "alice", "peer", "allow", "bob", "agent.ask"]).ok();
    h.run(&["-p", "alice", "peer", "set", "bob", "--ask-tools", "read_file"]).ok();
    let r = h.run(&["-p", "bob", "ask", "alice", "plan?"]);
    r.ok();
    assert!(r.stderr.contains("tool: read_file") && !r.stderr.contains("null"), "{}", r.stderr);
    let r = h.run(&["-p", "bob", "ask", "alice", "run id"]);
    r.fails(4, &["has not granted you", "alp peer set NAME --ask-tools shell"]);
    assert!(!r.stderr.contains("--allow-tools"), "{}", r.stderr);
}
