//! `alp chat --once` overhead against a local fake provider:
//! process start to the provider's first request, and the last token to
//! process exit. Baseline in the same run: spawning `true` to its exit.
//!
//!     cargo bench -p alp-node --bench chat

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const RUNS: usize = 30;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn main() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    // The server reports (request arrived, last byte sent) for each run.
    let (tx, rx) = mpsc::channel::<(Instant, Instant)>();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let mut conn = conn.unwrap();
            let mut r = BufReader::new(conn.try_clone().unwrap());
            let mut len = 0usize;
            let mut line = String::new();
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
            let sse = "data: {\"choices\":[{\"delta\":{\"content\":\"ok\"}}]}\n\n\
                       data: {\"choices\":[],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":1}}\n\ndata: [DONE]\n\n";
            write!(conn, "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{sse}", sse.len()).unwrap();
            conn.flush().unwrap();
            let sent = Instant::now();
            drop(conn);
            tx.send((arrived, sent)).unwrap();
        }
    });

    let home = tempfile::tempdir().unwrap();
    let alp = env!("CARGO_BIN_EXE_alp");
    let (mut to_request, mut to_exit, mut baseline) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..RUNS {
        let start = Instant::now();
        let status = Command::new(alp)
            .args(["--home", home.path().to_str().unwrap(), "chat", "--once", "hi"])
            .env("OPENAI_BASE_URL", format!("http://{addr}/v1"))
            .env("OPENAI_API_KEY", "sk-bench")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status()
            .unwrap();
        let exited = Instant::now();
        assert!(status.success());
        let (arrived, sent) = rx.recv().unwrap();
        to_request.push(arrived - start);
        to_exit.push(exited - sent);

        let start = Instant::now();
        Command::new("true").status().unwrap();
        baseline.push(start.elapsed());
    }
    println!("`alp chat --once` against a fake provider on 127.0.0.1, median of {RUNS} runs:\n");
    println!("| measure | median |");
    println!("|---|---:|");
    println!("| process start → first provider request | {} |", ms(median(to_request)));
    println!("| last token sent → process exit | {} |", ms(median(to_exit)));
    println!("| baseline: spawn `true` → exit | {} |", ms(median(baseline)));
}
