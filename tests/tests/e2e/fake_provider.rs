//! A scripted model provider on 127.0.0.1 speaking the real OpenAI and
//! Anthropic streaming formats over HTTP/1.1. It answers each request with
//! the next scripted response and records every request, so tests can
//! assert what `alp` sent.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// One scripted answer.
#[derive(Clone, Debug)]
pub(crate) enum Script {
    /// 200 with an event stream (raw SSE text).
    Sse(String),
    /// An error status with a JSON body, and maybe a Retry-After.
    Status(u16, String, Option<u32>),
    /// Reads the request, then says nothing for this long and hangs up.
    Hang(std::time::Duration),
    /// 200 with an event stream sent piece by piece, pausing between pieces.
    Slow(Vec<String>, std::time::Duration),
}

/// A request as the server saw it.
#[derive(Clone, Debug)]
pub(crate) struct Recorded {
    pub(crate) path: String,
    /// Header names lowercased.
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: serde_json::Value,
}

impl Recorded {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

pub(crate) struct FakeProvider {
    pub(crate) addr: SocketAddr,
    requests: Arc<Mutex<Vec<Recorded>>>,
}

impl FakeProvider {
    /// Starts serving `script` in order; requests beyond it get 500.
    pub(crate) fn start(script: Vec<Script>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let recorded = Arc::clone(&requests);
        std::thread::spawn(move || {
            let mut script = script.into_iter();
            for conn in listener.incoming() {
                let Ok(conn) = conn else { return };
                let Some(req) = read_request(&conn) else { continue };
                recorded.lock().unwrap().push(req);
                let answer = script.next().unwrap_or(Script::Status(
                    500,
                    r#"{"error":{"message":"script exhausted"}}"#.into(),
                    None,
                ));
                // Slow answers go on in their own thread so the server keeps accepting.
                std::thread::spawn(move || respond(conn, answer));
            }
        });
        FakeProvider { addr, requests }
    }

    pub(crate) fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

fn read_request(conn: &TcpStream) -> Option<Recorded> {
    conn.set_read_timeout(Some(std::time::Duration::from_secs(10))).ok()?;
    let mut r = BufReader::new(conn);
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let path = line.split_whitespace().nth(1)?.to_owned();
    let mut headers = Vec::new();
    loop {
        line.clear();
        r.read_line(&mut line).ok()?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let (n, v) = l.split_once(':')?;
        headers.push((n.trim().to_ascii_lowercase(), v.trim().to_owned()));
    }
    let len: usize = headers.iter().find(|(n, _)| n == "content-length").and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    Some(Recorded { path, headers, body: serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null) })
}

fn respond(mut conn: TcpStream, answer: Script) {
    let (status, ctype, body, retry) = match answer {
        Script::Sse(body) => (200, "text/event-stream", body, None),
        Script::Status(code, body, retry) => (code, "application/json", body, retry),
        Script::Hang(d) => {
            std::thread::sleep(d);
            return;
        }
        Script::Slow(pieces, pause) => {
            let head = "HTTP/1.1 200 X\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n";
            if conn.write_all(head.as_bytes()).is_err() {
                return;
            }
            for p in pieces {
                if conn.write_all(p.as_bytes()).and_then(|()| conn.flush()).is_err() {
                    return; // the client went away
                }
                std::thread::sleep(pause);
            }
            return;
        }
    };
    let mut head = format!(
        "HTTP/1.1 {status} X\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\nconnection: close\r\n",
        body.len()
    );
    if let Some(s) = retry {
        head.push_str(&format!("retry-after: {s}\r\n"));
    }
    head.push_str("\r\n");
    let _ = conn.write_all(head.as_bytes());
    let _ = conn.write_all(body.as_bytes());
}

/// An OpenAI chat-completions stream: role chunk, text pieces, finish, usage, [DONE].
pub(crate) fn openai_stream(pieces: &[&str], prompt_tokens: u64, completion_tokens: u64) -> Script {
    let mut s =
        String::from("data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\"}}]}\n\n");
    for p in pieces {
        let chunk = serde_json::json!({"id": "c1", "choices": [{"index": 0, "delta": {"content": p}}]});
        s.push_str(&format!("data: {chunk}\n\n"));
    }
    s.push_str("data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n");
    s.push_str(&format!(
        "data: {{\"id\":\"c1\",\"choices\":[],\"usage\":{{\"prompt_tokens\":{prompt_tokens},\"completion_tokens\":{completion_tokens}}}}}\n\n"
    ));
    s.push_str("data: [DONE]\n\n");
    Script::Sse(s)
}

/// An OpenAI stream of `n` text pieces sent `pause` apart (for cancelling).
pub(crate) fn openai_slow(n: usize, pause: std::time::Duration) -> Script {
    let mut pieces: Vec<String> = (0..n)
        .map(|i| {
            format!(
                "data: {}\n\n",
                serde_json::json!({"choices": [{"index": 0, "delta": {"content": format!("w{i} ")}}]})
            )
        })
        .collect();
    pieces.push("data: [DONE]\n\n".into());
    Script::Slow(pieces, pause)
}

/// An Anthropic Messages stream with its named events.
pub(crate) fn anthropic_stream(pieces: &[&str], input_tokens: u64, output_tokens: u64) -> Script {
    let ev = |name: &str, data: serde_json::Value| format!("event: {name}\ndata: {data}\n\n");
    let mut s = ev(
        "message_start",
        serde_json::json!({"type": "message_start", "message": {"id": "m1", "role": "assistant", "usage": {"input_tokens": input_tokens, "output_tokens": 1}}}),
    );
    s.push_str(&ev(
        "content_block_start",
        serde_json::json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
    ));
    s.push_str("event: ping\ndata: {\"type\": \"ping\"}\n\n");
    for p in pieces {
        s.push_str(&ev(
            "content_block_delta",
            serde_json::json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}}),
        ));
    }
    s.push_str(&ev("content_block_stop", serde_json::json!({"type": "content_block_stop", "index": 0})));
    s.push_str(&ev("message_delta", serde_json::json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": output_tokens}})));
    s.push_str(&ev("message_stop", serde_json::json!({"type": "message_stop"})));
    Script::Sse(s)
}

pub(crate) fn error(code: u16, message: &str) -> Script {
    Script::Status(code, serde_json::json!({"error": {"message": message, "type": "x"}}).to_string(), None)
}

/// An OpenAI stream whose reply calls one tool, its arguments split over
/// several deltas as real servers send them.
pub(crate) fn openai_tool_call(id: &str, name: &str, arguments: &str) -> Script {
    openai_tool_call_usage(id, name, arguments, 10, 5)
}

/// [`openai_tool_call`] reporting the usage given.
pub(crate) fn openai_tool_call_usage(id: &str, name: &str, arguments: &str, prompt: u64, completion: u64) -> Script {
    let mut s = String::new();
    let first = serde_json::json!({"choices": [{"index": 0, "delta": {"role": "assistant", "tool_calls": [
        {"index": 0, "id": id, "type": "function", "function": {"name": name, "arguments": ""}}]}}]});
    s.push_str(&format!("data: {first}\n\n"));
    let mid = arguments.len() / 2;
    for part in [&arguments[..mid], &arguments[mid..]] {
        let chunk = serde_json::json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": part}}]}}]});
        s.push_str(&format!("data: {chunk}\n\n"));
    }
    s.push_str("data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n");
    s.push_str(&format!(
        "data: {{\"choices\":[],\"usage\":{{\"prompt_tokens\":{prompt},\"completion_tokens\":{completion}}}}}\n\ndata: [DONE]\n\n"
    ));
    Script::Sse(s)
}

/// An Anthropic stream whose reply calls one tool.
pub(crate) fn anthropic_tool_call(id: &str, name: &str, arguments: &str) -> Script {
    let ev = |name: &str, data: serde_json::Value| format!("event: {name}\ndata: {data}\n\n");
    let mut s = ev(
        "message_start",
        serde_json::json!({"type": "message_start", "message": {"usage": {"input_tokens": 10, "output_tokens": 1}}}),
    );
    s.push_str(&ev("content_block_start", serde_json::json!({"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": id, "name": name, "input": {}}})));
    let mid = arguments.len() / 2;
    for part in [&arguments[..mid], &arguments[mid..]] {
        s.push_str(&ev("content_block_delta", serde_json::json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": part}})));
    }
    s.push_str(&ev("content_block_stop", serde_json::json!({"type": "content_block_stop", "index": 0})));
    s.push_str(&ev("message_delta", serde_json::json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 5}})));
    s.push_str(&ev("message_stop", serde_json::json!({"type": "message_stop"})));
    Script::Sse(s)
}
