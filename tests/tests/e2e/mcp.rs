//! MCP both ways. Client side: real servers from the npm registry
//! (installed by scripts/mcp-fixtures.sh) as tools of alp's agent, driven
//! by the scripted fake provider so the tool calls are deterministic; a
//! server that crashes mid-call and one that never answers. Server side:
//! the Python `mcp` package as the client of `alp mcp serve`.

use std::path::{Path, PathBuf};

use crate::common::{Home, Run, output};
use crate::fake_provider::{FakeProvider, openai_stream, openai_tool_call};

const KEY: &str = "sk-mcp-test-key-5";

/// Where the npm servers are, or `None` (the test says it skipped).
fn servers() -> Option<PathBuf> {
    let dir = std::env::var_os("ALP_TEST_MCP_SERVERS").map(PathBuf::from);
    if dir.is_none() {
        eprintln!("ALP_TEST_MCP_SERVERS is not set: skipping (scripts/test.sh installs the MCP servers and sets it)");
    }
    dir
}

fn script(servers: &Path, package: &str) -> String {
    servers.join("@modelcontextprotocol").join(package).join("dist/index.js").display().to_string()
}

fn openai(h: &Home, fake: &FakeProvider, args: &[&str]) -> Run {
    let mut c = h.cmd(args);
    c.env("OPENAI_BASE_URL", fake.url("/v1")).env("OPENAI_API_KEY", KEY);
    output(c)
}

/// A home whose profile has server-everything as `ev` and
/// server-filesystem, confined to the workspace, as `fs` (read-only).
fn home_with_servers(servers: &Path) -> (Home, PathBuf) {
    let h = Home::new();
    h.init("personal");
    let ws = h.path().join("profiles/personal/workspace");
    std::fs::create_dir_all(&ws).unwrap();
    std::fs::write(ws.join("notes.txt"), "the meeting is at noon").unwrap();
    let ev = script(servers, "server-everything");
    let r = h.run(&["mcp", "add", "ev", "--", "node", &ev, "stdio"]);
    assert!(r.ok().contains("ev__get-sum"), "{}", r.stdout);
    let fs = script(servers, "server-filesystem");
    let r = h.run(&["mcp", "add", "fs", "--tier", "read-only", "--", "node", &fs, ws.to_str().unwrap()]);
    assert!(r.ok().contains("fs__read_text_file"), "{}", r.stdout);
    (h, ws)
}

/// No process whose command line names `marker` is left.
fn none_left(marker: &str) -> bool {
    let out = std::process::Command::new("pgrep").args(["-f", marker]).output().unwrap();
    out.stdout.is_empty()
}

/// Whether every process naming `marker` is gone within a few seconds
/// (killing a group and tearing a sandbox down take a moment).
fn all_gone(marker: &str) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !none_left(marker) {
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    true
}

/// Kills a child process when dropped (a failed assertion included).
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn npm_servers_become_tools_named_after_them() {
    let Some(servers) = servers() else { return };
    let (h, ws) = home_with_servers(&servers);
    let list = h.run(&["--json", "mcp", "list"]).json();
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert!(list.as_array().unwrap().iter().all(|s| s["starts"] == true), "{list}");

    // A side-effect server's tool needs approval: one-shot runs exit 4.
    let fake = FakeProvider::start(vec![openai_tool_call("c1", "ev__get-sum", r#"{"a":2,"b":3}"#)]);
    openai(&h, &fake, &["chat", "add 2 and 3"]).fails(4, &["ev__get-sum", "--allow-tools"]);
    let offered: Vec<String> = fake.requests()[0].body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap().to_owned())
        .collect();
    assert!(offered.contains(&"ev__echo".to_owned()) && offered.contains(&"fs__read_text_file".to_owned()));

    // Allowed by server: it runs, with arguments, and the result goes back.
    let fake = FakeProvider::start(vec![
        openai_tool_call("c1", "ev__get-sum", r#"{"a":2,"b":3}"#),
        openai_tool_call("c2", "ev__get-sum", r#"{"a":"two"}"#),
        openai_tool_call("c3", "ev__trigger-long-running-operation", r#"{"duration":1,"steps":2}"#),
        openai_stream(&["Five."], 1, 1),
    ]);
    let run = openai(&h, &fake, &["-v", "--json", "chat", "add 2 and 3", "--allow-tools", "ev__*"]);
    let v = run.json();
    assert_eq!(v["answer"], "Five.");
    // The long call reported its progress (shown with -v).
    assert!(run.stderr.contains("MCP progress 2/2"), "{}", run.stderr);
    let oks: Vec<bool> = v["tool_calls"].as_array().unwrap().iter().map(|c| c["ok"].as_bool().unwrap()).collect();
    assert_eq!(oks, [true, false, true], "a tool's own error fails that call only: {v}");
    let requests = fake.requests();
    let result = |i: usize| requests[i].body["messages"].as_array().unwrap().last().unwrap()["content"].clone();
    assert!(result(1).as_str().unwrap().contains('5'), "{}", result(1));
    assert!(result(3).as_str().unwrap().contains("Long running operation completed"), "{}", result(3));

    // A read-only server runs without asking, confined to the workspace.
    let notes = ws.join("notes.txt");
    let outside = h.path().join("profiles/personal/identity.key");
    let fake = FakeProvider::start(vec![
        openai_tool_call("c1", "fs__read_text_file", &format!(r#"{{"path":"{}"}}"#, notes.display())),
        openai_tool_call("c2", "fs__read_text_file", &format!(r#"{{"path":"{}"}}"#, outside.display())),
        openai_stream(&["At noon."], 1, 1),
    ]);
    let v = openai(&h, &fake, &["--json", "chat", "when is the meeting?"]).json();
    assert_eq!(v["answer"], "At noon.");
    let requests = fake.requests();
    let result = |i: usize| requests[i].body["messages"].as_array().unwrap().last().unwrap()["content"].clone();
    assert!(result(1).as_str().unwrap().contains("the meeting is at noon"), "{}", result(1));
    assert!(!result(2).as_str().unwrap().contains("secret seed"), "the identity key stays out of reach");
    assert_eq!(v["tool_calls"][1]["ok"], false, "{v}");
    // The servers are gone with the run, their whole process groups.
    assert!(all_gone(ws.to_str().unwrap()), "a server outlived the run");

    // Ctrl-C in the middle of a long call stops the server with the run.
    let fake = FakeProvider::start(vec![openai_tool_call(
        "c1",
        "ev__trigger-long-running-operation",
        r#"{"duration":60,"steps":2}"#,
    )]);
    let mut c = h.cmd(&["chat", "wait", "--allow-tools", "ev__*"]);
    c.env("OPENAI_BASE_URL", fake.url("/v1")).env("OPENAI_API_KEY", KEY);
    c.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
    let mut child = c.spawn().unwrap();
    // The sandbox's command line names this home's workspace: unique to this test.
    let ev = ws.to_str().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while none_left(ev) {
        assert!(std::time::Instant::now() < deadline, "the server never started");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(crate::common::interrupt(&mut child).code(), Some(130));
    assert!(all_gone(ev), "the server outlived Ctrl-C");

    // A peer's asks get an MCP tool only when granted it by name.
    h.init("other");
    let other = crate::common::node_id(&h, "other").to_string();
    h.run(&["peer", "add", "other", &other]).ok();
    h.run(&["peer", "set", "other", "--ask-tools", "fs__read_text_file"]).ok();
    h.run(&["peer", "set", "other", "--ask-tools", "fs__nope"]).fails(2, &["no tool named \"fs__nope\""]);

    // deny_tools applies to MCP tools as to built-in ones.
    let fake = FakeProvider::start(vec![openai_stream(&["ok"], 1, 1)]);
    openai(&h, &fake, &["--set", "agent.deny_tools=[\"ev__*\"]", "chat", "hi"]).ok();
    let offered = fake.requests()[0].body["tools"].to_string();
    assert!(!offered.contains("ev__") && offered.contains("fs__"), "{offered}");
}

/// A configured server costs nothing until a tool of it is called: it is
/// not started (its cache of tools is not rewritten).
#[test]
fn an_unused_server_is_never_started_and_a_resource_can_be_attached() {
    let Some(servers) = servers() else { return };
    let (h, _ws) = home_with_servers(&servers);
    let cache = h.path().join("profiles/personal/mcp/ev.json");
    let before = std::fs::metadata(&cache).unwrap().modified().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    let fake = FakeProvider::start(vec![openai_stream(&["hi"], 1, 1)]);
    openai(&h, &fake, &["chat", "hello"]).ok();
    assert_eq!(std::fs::metadata(&cache).unwrap().modified().unwrap(), before, "an unused server was started");

    let fake = FakeProvider::start(vec![openai_stream(&["Read it."], 1, 1)]);
    let uri = "demo://resource/static/document/architecture.md";
    openai(&h, &fake, &["chat", "summarise", "--resource", &format!("ev:{uri}")]).ok();
    let prompt = fake.requests()[0].body["messages"].to_string();
    assert!(prompt.contains(&format!("[resource {uri} from ev]")), "{prompt}");
    openai(&h, &fake, &["chat", "x", "--resource", "evv:demo://x"]).fails(2, &["no MCP server evv", "did you mean ev"]);
}

/// A small MCP server in Python that lists one tool and then, on a call,
/// crashes or never answers.
const FLAKY: &str = r#"
import json, sys, time, os
mode = sys.argv[1]
for line in sys.stdin:
    m = json.loads(line)
    if m.get("method") == "initialize":
        r = {"protocolVersion": "2025-06-18", "capabilities": {"tools": {}}, "serverInfo": {"name": "flaky", "version": "1"}}
    elif m.get("method") == "tools/list":
        r = {"tools": [{"name": "work", "description": "does work", "inputSchema": {"type": "object"}}]}
    elif m.get("method") == "tools/call":
        if mode == "garbage":
            print("this is not JSON-RPC {", flush=True)
            time.sleep(3600)
        if mode == "crash":
            sys.stderr.write("flaky: giving up\n"); sys.stderr.flush(); os._exit(3)
        time.sleep(3600)
    else:
        continue
    print(json.dumps({"jsonrpc": "2.0", "id": m["id"], "result": r}), flush=True)
"#;

#[test]
fn a_server_that_crashes_or_hangs_fails_only_its_calls() {
    let h = Home::new();
    h.init("personal");
    let script = h.path().join("flaky.py");
    std::fs::write(&script, FLAKY).unwrap();
    let script = script.to_str().unwrap();
    for (name, mode) in [("crashy", "crash"), ("hangs", "hang"), ("garbled", "garbage")] {
        let r = h.run(&[
            "mcp",
            "add",
            name,
            "--tier",
            "read-only",
            "--timeout",
            "5s",
            "--no-sandbox",
            "--",
            "python3",
            script,
            mode,
        ]);
        assert!(r.ok().contains(&format!("{name}__work")), "{}", r.stdout);
    }
    let fake = FakeProvider::start(vec![
        openai_tool_call("c1", "crashy__work", "{}"),
        openai_tool_call("c2", "crashy__work", "{}"),
        openai_tool_call("c3", "hangs__work", "{}"),
        openai_tool_call("c4", "hangs__work", "{}"),
        openai_tool_call("c5", "garbled__work", "{}"),
        openai_stream(&["Carried on."], 1, 1),
    ]);
    let v = openai(&h, &fake, &["--json", "chat", "work"]).json();
    assert_eq!(v["answer"], "Carried on.", "{v}");
    let requests = fake.requests();
    let result = |i: usize| requests[i].body["messages"].as_array().unwrap().last().unwrap()["content"].to_string();
    assert!(result(1).contains("MCP server crashy") && result(1).contains("giving up"), "{}", result(1));
    assert!(result(2).contains("unavailable for the rest of this run"), "{}", result(2));
    assert!(result(3).contains("MCP server hangs did not answer work within 5s"), "{}", result(3));
    assert!(result(4).contains("unavailable for the rest of this run"), "not asked again: {}", result(4));
    assert!(result(5).contains("MCP server garbled"), "{}", result(5));
    assert!(all_gone(script), "a hung server outlived the run");

    // A server that does not start is reported by `mcp add`, with the fix.
    h.run(&["mcp", "add", "nothing", "--", "/nonexistent/server"])
        .fails(1, &["MCP server nothing", "/nonexistent/server", "it is added but did not start"]);
    let list = h.run(&["--json", "mcp", "list"]).json();
    let nothing = list.as_array().unwrap().iter().find(|s| s["name"] == "nothing").unwrap().clone();
    assert_eq!(nothing["starts"], false, "{list}");
    h.run(&["mcp", "remove", "nothin"]).fails(2, &["did you mean nothing"]);
    h.run(&["mcp", "remove", "nothing"]).ok();
    h.run(&["mcp", "add", "a__b", "--", "x"]).fails(2, &["cannot name an MCP server"]);
}

/// `alp mcp serve` to a real MCP client (the Python `mcp` package): it
/// lists alp's tools, sends a file to a peer and asks the peer's agent;
/// both verified on the other side. Permissions are the CLI's.
#[test]
fn a_real_mcp_client_sends_a_blob_and_asks_a_peer_through_alp() {
    let Some(python) = std::env::var_os("ALP_TEST_MCP_PYTHON") else {
        eprintln!("ALP_TEST_MCP_PYTHON is not set: skipping (scripts/test.sh installs the Python mcp client)");
        return;
    };
    let fake = FakeProvider::start(vec![openai_stream(&["Hello from bob."], 3, 4)]);
    let h = Home::new();
    h.init("alice");
    h.init("bob");
    let url = fake.url("/v1");
    let _bob = h.serve_on("bob", 0, &[("OPENAI_BASE_URL", &url), ("OPENAI_API_KEY", KEY)]);
    let _alice = h.serve("alice");
    let ticket = h.run(&["-p", "bob", "invite"]).ok().trim().to_owned();
    h.run(&["-p", "alice", "pair", &ticket, "--name", "bob"]).ok();
    h.run(&["-p", "bob", "peer", "allow", "alice", "blob.put", "agent.ask"]).ok();
    let file = h.path().join("report.txt");
    std::fs::write(&file, "quarterly numbers").unwrap();

    let client = concat!(env!("CARGO_MANIFEST_DIR"), "/mcp-client/client.py");
    let alp = crate::common::alp_bin().display().to_string();
    let home = h.path().display().to_string();
    let out = std::process::Command::new(python)
        .args([client, &alp, &home, "alice", "bob", file.to_str().unwrap()])
        .env_remove("ALP_HOME")
        .output()
        .unwrap();
    assert!(out.status.success(), "client failed: {}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();

    let tools: Vec<&str> = v["tools"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
    for t in ["ask_peer", "blob_add", "blob_get", "blob_put", "peer_ping", "peers_list", "wg_status", "wg_task"] {
        assert!(tools.contains(&t), "{t} missing from {tools:?}");
    }
    assert_eq!(v["annotations"]["blob_put"]["readOnly"], false, "side effects are marked");
    assert_eq!(v["annotations"]["peers_list"]["readOnly"], true);
    assert_eq!(v["peers"][0]["name"], "bob");

    // The blob arrived at bob, whole, with alice's receipt.
    assert_eq!(v["put"]["error"], false, "{v}");
    let hash = v["put"]["result"]["hash"].as_str().unwrap().to_owned();
    let got = h.run(&["-p", "bob", "blob", "cat", &hash]).ok().to_owned();
    assert_eq!(got, "quarterly numbers");
    // bob's model answered, and got the prompt.
    assert_eq!(v["ask"]["result"]["answer"], "Hello from bob.", "{v}");
    assert!(fake.requests()[0].body["messages"].to_string().contains("Say hello"));
    // A value cannot become a flag; an unknown peer is the CLI's error.
    assert_eq!(v["sneaky"]["error"], true);
    assert!(v["sneaky"]["text"].as_str().unwrap().contains("not starting with '-'"), "{v}");
    assert_eq!(v["unknown"]["error"], true);
    assert!(v["unknown"]["text"].as_str().unwrap().contains("nobody"), "{v}");
}

/// A streamable HTTP server (server-everything in its HTTP mode) added by
/// URL: its tools work like a stdio server's.
#[test]
fn a_streamable_http_server_added_by_url() {
    use std::io::BufRead;
    let Some(servers) = servers() else { return };
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut server = Reaped(
        std::process::Command::new("node")
            .args([&script(&servers, "server-everything"), "streamableHttp"])
            .env("PORT", port.to_string())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut lines = std::io::BufReader::new(server.0.stderr.take().unwrap()).lines();
    let up = lines.by_ref().take(20).map_while(Result::ok).any(|l| l.contains("listening"));
    std::thread::spawn(move || lines.for_each(drop));
    assert!(up, "the HTTP server did not start");

    let h = Home::new();
    h.init("personal");
    let url = format!("http://127.0.0.1:{port}/mcp");
    let r = h.run(&["mcp", "add", "web", "--tier", "read-only", "--url", &url]);
    assert!(r.ok().contains("web__echo"), "{}", r.stdout);
    let fake = FakeProvider::start(vec![
        openai_tool_call("c1", "web__echo", r#"{"message":"over http"}"#),
        openai_stream(&["Echoed."], 1, 1),
    ]);
    let v = openai(&h, &fake, &["--json", "chat", "echo it"]).json();
    assert_eq!(v["answer"], "Echoed.");
    let last = fake.requests()[1].body["messages"].as_array().unwrap().last().unwrap()["content"].to_string();
    assert!(last.contains("over http"), "{last}");
    // Plain http elsewhere than this machine is refused.
    h.run(&["mcp", "add", "far", "--url", "http://192.0.2.1/mcp"]).fails(2, &["https"]);
    assert!(!std::fs::read_to_string(h.path().join("profiles/personal/config.toml")).unwrap().contains("far"));
    drop(server);
}
