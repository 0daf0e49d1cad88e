//! What MCP servers cost `alp chat --once`, against a local fake provider:
//!
//! - a configured server that the run does not use: process start to the
//!   provider's first request, with and without the server configured;
//! - the first call of a stdio server's tool: from the provider's tool
//!   call sent to the result arriving in its next request, beside the same
//!   for a built-in tool (`read_file`) and the server's own start time
//!   (spawned by hand, to its answer to `initialize`), in the same run.
//!
//!     cargo bench -p alp-node --bench mcp
//!
//! The server is a minimal MCP server in Python (python3 starts in about
//! as long as small servers do); sandboxed and not.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const RUNS: usize = 15;

const SERVER: &str = r#"
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    method = m.get("method")
    if method == "initialize":
        r = {"protocolVersion": "2025-06-18", "capabilities": {"tools": {}}, "serverInfo": {"name": "b", "version": "1"}}
    elif method == "tools/list":
        r = {"tools": [{"name": "ping", "description": "answers pong", "inputSchema": {"type": "object"}}]}
    elif method == "tools/call":
        r = {"content": [{"type": "text", "text": "pong"}]}
    else:
        continue
    print(json.dumps({"jsonrpc": "2.0", "id": m["id"], "result": r}), flush=True)
"#;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

/// A fake OpenAI-compatible provider: a request whose last message is the
/// user's "call TOOL" gets that tool call; anything else gets "ok". It
/// reports (request arrived, reply sent) for each request.
fn provider() -> (String, mpsc::Receiver<(Instant, Instant)>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let mut conn = conn.unwrap();
            let mut r = BufReader::new(conn.try_clone().unwrap());
            let (mut len, mut line) = (0usize, String::new());
            loop {
                line.clear();
                r.read_line(&mut line).unwrap();
                if line.trim_end().is_empty() {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap();
                }
            }
            let mut body = vec![0; len];
            r.read_exact(&mut body).unwrap();
            let arrived = Instant::now();
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            let last = v["messages"].as_array().unwrap().last().unwrap().clone();
            let sse = match last["content"].as_str().and_then(|c| c.strip_prefix("call ")) {
                Some(tool) if last["role"] == "user" => {
                    let call = serde_json::json!({"choices": [{"delta": {"tool_calls": [{"index": 0, "id": "c1", "type": "function", "function": {"name": tool, "arguments": "{\"path\":\"a.txt\"}"}}]}}]});
                    format!(
                        "data: {call}\n\ndata: {{\"choices\":[{{\"delta\":{{}},\"finish_reason\":\"tool_calls\"}}]}}\n\ndata: [DONE]\n\n"
                    )
                }
                _ => "data: {\"choices\":[{\"delta\":{\"content\":\"ok\"}}]}\n\ndata: [DONE]\n\n".to_owned(),
            };
            write!(conn, "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{sse}", sse.len()).unwrap();
            conn.flush().unwrap();
            let sent = Instant::now();
            drop(conn);
            let _ = tx.send((arrived, sent));
        }
    });
    (url, rx)
}

fn alp(home: &std::path::Path, url: &str, args: &[&str]) -> Instant {
    let start = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_alp"))
        .arg("--home")
        .arg(home)
        .args(args)
        .env("OPENAI_BASE_URL", url)
        .env("OPENAI_API_KEY", "sk-bench")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    start
}

/// The server's own start: spawned, to its answer to `initialize`.
fn server_start(script: &std::path::Path) -> Duration {
    let start = Instant::now();
    let mut child = Command::new(python()).arg(script).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, r#"{{"jsonrpc":"2.0","id":1,"method":"initialize","params":{{}}}}"#).unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let took = start.elapsed();
    let _ = child.kill();
    let _ = child.wait();
    took
}

/// The system's python3 (not a version manager's shim, whose own start
/// would dominate), the same for every measure.
fn python() -> &'static str {
    if std::path::Path::new("/usr/bin/python3").exists() { "/usr/bin/python3" } else { "python3" }
}

fn main() {
    let (url, rx) = provider();
    let dir = tempfile::tempdir().unwrap();
    let (bare, home) = (dir.path().join("bare"), dir.path().join("mcp"));
    let script = dir.path().join("server.py");
    std::fs::write(&script, SERVER).unwrap();
    for h in [&bare, &home] {
        alp(h, &url, &["init"]);
        std::fs::create_dir_all(h.join("profiles/personal/workspace")).unwrap();
        std::fs::write(h.join("profiles/personal/workspace/a.txt"), "x").unwrap();
    }
    let s = script.to_str().unwrap();
    alp(&home, &url, &["mcp", "add", "bench", "--tier", "read-only", "--no-sandbox", "--", python(), s]);
    alp(&home, &url, &["mcp", "add", "boxed", "--tier", "read-only", "--", python(), s]);

    let first_request = |h: &std::path::Path| {
        let start = alp(h, &url, &["chat", "hi"]);
        rx.recv().unwrap().0 - start
    };
    let (mut without, mut with) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        without.push(first_request(&bare));
        with.push(first_request(&home));
    }

    // From the tool call sent to the next request (which carries the result).
    let tool_call = |tool: &str| {
        alp(&home, &url, &["chat", &format!("call {tool}")]);
        let (_, call_sent) = rx.recv().unwrap();
        let (result_in, _) = rx.recv().unwrap();
        result_in - call_sent
    };
    let (mut builtin, mut plain, mut boxed, mut own) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..RUNS {
        builtin.push(tool_call("read_file"));
        plain.push(tool_call("bench__ping"));
        boxed.push(tool_call("boxed__ping"));
        own.push(server_start(&script));
    }
    let (builtin, plain, boxed, own) = (median(builtin), median(plain), median(boxed), median(own));
    println!("median of {RUNS} runs each\n");
    println!("| measure | median |");
    println!("|---|---:|");
    println!("| start → first provider request, no MCP server configured | {} |", ms(median(without)));
    println!("| start → first provider request, a server configured, unused | {} |", ms(median(with)));
    println!("| tool call → result, built-in `read_file` (baseline) | {} |", ms(builtin));
    println!("| tool call → result, MCP server's first call, no sandbox | {} |", ms(plain));
    println!("| tool call → result, MCP server's first call, in bubblewrap | {} |", ms(boxed));
    println!("| the server's own start (spawn → `initialize` answered) | {} |", ms(own));
    let over = plain.saturating_sub(builtin).saturating_sub(own);
    println!("\nfirst-use overhead beyond the server's own start: {} (no sandbox)", ms(over));
    println!("sandbox start (bwrap): {}", ms(boxed.saturating_sub(plain)));
}
