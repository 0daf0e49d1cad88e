//! Workgroups between real `alp serve` processes on 127.0.0.1, each
//! profile's model a local HTTP server that answers at once (so what is
//! measured is alp, not a model):
//!
//! - `dispatch`: from starting `alp wg task` to the member's model request,
//!   and from the member's last token to the result in the creator's
//!   `alp wg watch`; beside `alp wg status` and `alp peer ping -c 1`.
//! - `sync`: a member that was away catches up on a log of N events;
//!   beside restarting its node alone.
//! - `round`: M members (M `alp serve` processes), every pair paired, one
//!   group, 2M tasks by role; time to all completed, and every member's
//!   log identical at the end.
//!
//! - `edges`: a pipeline of N steps on three members: from one step's
//!   answer to the next step's model request, per edge.
//! - `graph`: a graph of N tasks (layers of ten, each task waiting for two
//!   of the layer before) on ten members; every member's state identical
//!   at the end; the dashboard's first page and its update after an event.
//!
//! `cargo bench -p alp-node --bench wg [-- dispatch|sync|round|edges|graph] [N|M]`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod support;

use support::{alp, run};

fn json(home: &Path, args: &[&str]) -> serde_json::Value {
    serde_json::from_str(&run(home, args)).unwrap()
}

/// A model that answers every request at once, noting when requests came
/// in and answers went out.
struct Model {
    url: String,
    seen: Arc<Mutex<Vec<(Instant, Instant)>>>,
}

impl Model {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/v1", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let log = log.clone();
                std::thread::spawn(move || answer(conn, &log));
            }
        });
        Self { url, seen }
    }
}

fn answer(mut conn: TcpStream, log: &Mutex<Vec<(Instant, Instant)>>) {
    let mut r = BufReader::new(conn.try_clone().unwrap());
    let mut line = String::new();
    let mut len = 0usize;
    loop {
        line.clear();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        if line.trim().is_empty() {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; len];
    let _ = r.read_exact(&mut body);
    let came = Instant::now();
    let chunk = serde_json::json!({"choices": [{"index": 0, "delta": {"content": "done"}}]});
    let sse = format!(
        "data: {chunk}\n\ndata: {{\"choices\":[{{\"index\":0,\"delta\":{{}},\"finish_reason\":\"stop\"}}]}}\n\n\
         data: {{\"choices\":[],\"usage\":{{\"prompt_tokens\":20,\"completion_tokens\":1}}}}\n\ndata: [DONE]\n\n"
    );
    let head = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        sse.len()
    );
    let _ = conn.write_all(head.as_bytes()).and_then(|()| conn.write_all(sse.as_bytes()));
    log.lock().unwrap().push((came, Instant::now()));
}

/// A running `alp serve`.
struct Node {
    child: Child,
}

impl Node {
    fn start(home: &Path, profile: &str, port: u16, model: &str) -> Self {
        let mut child = alp(home)
            .args(["-p", profile, "serve", "--listen", &format!("127.0.0.1:{port}")])
            .env("OPENAI_BASE_URL", model)
            .env("OPENAI_API_KEY", "sk-bench")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        Self { child }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn wait(what: &str, secs: u64, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Profiles `names`, each serving with `model`, every pair paired; member
/// 0 creates group `bench` and the others join it with role `worker`.
fn team(home: &Path, names: &[String], model: &Model) -> (Vec<Node>, Vec<u16>) {
    let ports: Vec<u16> = names.iter().map(|_| free_port()).collect();
    let mut nodes = Vec::new();
    for (name, port) in names.iter().zip(&ports) {
        run(home, &["-p", name, "init"]);
        nodes.push(Node::start(home, name, *port, &model.url));
    }
    for i in 0..names.len() {
        for j in i + 1..names.len() {
            let ticket = run(home, &["-p", &names[i], "invite"]);
            run(home, &["-p", &names[j], "pair", &ticket, "--name", &names[i]]);
        }
    }
    run(home, &["-p", &names[0], "wg", "create", "bench", "--role", "worker"]);
    for name in &names[1..] {
        run(home, &["-p", &names[0], "wg", "invite", "bench", name, "--role", "worker"]);
    }
    for name in &names[1..] {
        wait("an invitation", 60, || {
            json(home, &["-p", name, "--json", "wg", "list"]).as_array().is_some_and(|l| !l.is_empty())
        });
        run(home, &["-p", name, "wg", "join", "bench"]);
    }
    wait("everyone to join", 120, || {
        let s = json(home, &["-p", &names[0], "--json", "wg", "status", "bench"]);
        s["members"].as_array().unwrap().iter().filter(|m| m["status"] == "active").count() == names.len()
    });
    (nodes, ports)
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn dispatch(home: &Path) {
    let model = Model::start();
    let names = vec!["alice".to_owned(), "bob".to_owned()];
    let (_nodes, _) = team(home, &names, &model);
    let mut watch = alp(home)
        .args(["-p", "alice", "--json", "wg", "watch", "bench"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let completed: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let seen = completed.clone();
    let out = watch.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if line.contains("\"kind\":\"complete\"") {
                seen.lock().unwrap().push(Instant::now());
            }
        }
    });
    let (mut to_model, mut back, mut status, mut ping) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..20 {
        let before = model.seen.lock().unwrap().len();
        let t0 = Instant::now();
        run(home, &["-p", "alice", "wg", "task", "bench", &format!("job {i}"), "--to", "bob"]);
        wait("bob's model request", 30, || model.seen.lock().unwrap().len() > before);
        let (came, answered) = model.seen.lock().unwrap()[before];
        to_model.push((came - t0).as_secs_f64() * 1e3);
        wait("the result at alice", 30, || completed.lock().unwrap().len() > i);
        back.push((completed.lock().unwrap()[i] - answered).as_secs_f64() * 1e3);
        let t = Instant::now();
        run(home, &["-p", "alice", "wg", "status", "bench"]);
        status.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        run(home, &["-p", "alice", "peer", "ping", "bob", "-c", "1"]);
        ping.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let _ = watch.kill();
    let _ = watch.wait();
    println!("dispatch, 20 tasks, ms        p50      max");
    for (what, v) in [
        ("wg task -> member's model", &mut to_model),
        ("last token -> creator sees it", &mut back),
        ("baseline: alp wg status", &mut status),
        ("baseline: alp peer ping -c 1", &mut ping),
    ] {
        let p50 = percentile(v, 0.5);
        let max = percentile(v, 1.0);
        println!("{what:<32} {p50:>7.1} {max:>8.1}");
    }
}

fn sync(home: &Path, n: usize) {
    let model = Model::start();
    let names = vec!["alice".to_owned(), "bob".to_owned()];
    let (mut nodes, ports) = team(home, &names, &model);
    // bob goes away; alice's log grows by n notes (written straight into
    // her files while her node is down, signed with her key).
    drop(nodes.pop());
    drop(nodes.pop());
    let profile = alp_profiles::Profile::open(&alp_profiles::Home::at(home), &"alice".parse().unwrap()).unwrap();
    let key = profile.identity().signing_key().clone();
    let dirs = alp_workgroup::store::list(&profile.paths().workgroups()).unwrap();
    let (mut files, mut log, _) = alp_workgroup::store::GroupFiles::open(&dirs[0]).unwrap();
    let t = Instant::now();
    let mut batch = Vec::new();
    for i in 0..n {
        let header = log.next_header(key.verifying_key().into(), vec![], 1);
        let body =
            alp_workgroup::Body::Note(alp_workgroup::body::Note { text: format!("note {i}: {}", "x".repeat(100)) });
        let e = alp_workgroup::Event::sign(&key, header, body).unwrap();
        log.ingest(e.clone()).unwrap();
        batch.push(e);
    }
    files.append(&batch).unwrap();
    let total = log.len();
    println!("wrote {n} events in {:.2?}; the log holds {total}", t.elapsed());
    nodes.push(Node::start(home, "alice", ports[0], &model.url));
    // Baseline: bob's node starting, alone (its log does not change).
    let t = Instant::now();
    nodes.push(Node::start(home, "bob", ports[1], &model.url));
    let started = t.elapsed();
    let events = || json(home, &["-p", "bob", "--json", "wg", "status", "bench"])["events"].as_u64().unwrap_or(0);
    wait("bob to catch up", 120, || events() as usize == total);
    let caught_up = t.elapsed();
    println!(
        "sync of {n} events: bob caught up {:.0} ms after his node started (start itself: {:.0} ms)",
        (caught_up - started).as_secs_f64() * 1e3,
        started.as_secs_f64() * 1e3
    );
}

fn round(home: &Path, m: usize) {
    let model = Model::start();
    let names: Vec<String> = (0..m).map(|i| format!("m{i:02}")).collect();
    let t = Instant::now();
    let (_nodes, _) = team(home, &names, &model);
    println!("{m} members up, paired ({} pairs) and in one group in {:.1?}", m * (m - 1) / 2, t.elapsed());
    let t = Instant::now();
    let ids: Vec<String> = (0..2 * m)
        .map(|i| run(home, &["-p", &names[i % m], "wg", "task", "bench", &format!("job {i}"), "--role", "worker"]))
        .collect();
    wait("every task to complete", 600, || {
        let s = json(home, &["-p", &names[0], "--json", "wg", "status", "bench"]);
        s["tasks"].as_array().unwrap().iter().filter(|t| t["status"] == "completed").count() == ids.len()
    });
    let done = t.elapsed();
    let log_of = |name: &String| -> Vec<String> {
        run(home, &["-p", name, "--json", "wg", "log", "bench"])
            .lines()
            .map(|l| l[..120.min(l.len())].to_owned())
            .collect()
    };
    let t2 = Instant::now();
    let first = log_of(&names[0]);
    wait("every member's log to be identical", 600, || names.iter().all(|n| log_of(n).len() == first.len()));
    let same = names.iter().all(|n| {
        let ids = |l: Vec<String>| {
            l.into_iter().map(|x| x.split("\"id\":\"").nth(1).map(|r| r[..64].to_owned())).collect::<Vec<_>>()
        };
        ids(log_of(n)) == ids(log_of(&names[0]))
    });
    println!(
        "{} tasks on {m} members completed in {:.1?}; every log identical: {same} ({} events, checked {:.1?} later)",
        ids.len(),
        done,
        first.len(),
        t2.elapsed()
    );
}

fn edges(home: &Path, n: usize) {
    let model = Model::start();
    let names: Vec<String> = ["alice", "bob", "carol"].iter().map(|s| (*s).to_owned()).collect();
    let (_nodes, _) = team(home, &names, &model);
    let steps = vec!["worker"; n].join(",");
    let before = model.seen.lock().unwrap().len();
    run(home, &["-p", "alice", "wg", "run", "bench", "a pipeline", "--pipeline", &steps, "--wait"]);
    let seen = model.seen.lock().unwrap()[before..].to_vec();
    assert_eq!(seen.len(), n, "one model request per step");
    let mut per_edge: Vec<f64> = seen.windows(2).map(|w| (w[1].0 - w[0].1).as_secs_f64() * 1e3).collect();
    let mut status = Vec::new();
    for _ in 0..10 {
        let t = Instant::now();
        run(home, &["-p", "alice", "wg", "status", "bench"]);
        status.push(t.elapsed().as_secs_f64() * 1e3);
    }
    println!("{} edges, ms                       p50      max", per_edge.len());
    let (p50, max) = (percentile(&mut per_edge, 0.5), percentile(&mut per_edge, 1.0));
    println!("{:<36} {p50:>7.1} {max:>8.1}", "step's answer -> next step's request");
    let (p50, max) = (percentile(&mut status, 0.5), percentile(&mut status, 1.0));
    println!("{:<36} {p50:>7.1} {max:>8.1}", "baseline: alp wg status");
}

/// A graph file of `n` tasks in layers of ten; each task after the first
/// layer waits for two of the layer before.
fn layered(n: usize) -> String {
    let mut out = String::from("goal = \"a large graph\"\n");
    for i in 0..n {
        out.push_str(&format!("[[task]]\nid = \"t{i}\"\nrole = \"worker\"\n"));
        if i >= 10 {
            let layer = i / 10 - 1;
            let (a, b) = (layer * 10 + i % 10, layer * 10 + (i + 1) % 10);
            out.push_str(&format!("after = [\"t{a}\", \"t{b}\"]\n"));
        }
    }
    out
}

/// An HTTP GET on the dashboard: the time to the whole answer, and its body.
fn get(addr: &str, path: &str) -> (f64, String) {
    let t = Instant::now();
    let mut s = TcpStream::connect(addr).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nhost: {addr}\r\n\r\n").unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    (t.elapsed().as_secs_f64() * 1e3, reply)
}

fn graph(home: &Path, n: usize) {
    let model = Model::start();
    let names: Vec<String> = (0..10).map(|i| format!("m{i:02}")).collect();
    let t = Instant::now();
    let (_nodes, _) = team(home, &names, &model);
    println!("10 members up, paired and in one group in {:.1?}", t.elapsed());
    let file = home.join("graph.toml");
    std::fs::write(&file, layered(n)).unwrap();
    let t = Instant::now();
    run(home, &["-p", &names[0], "wg", "run", "bench", "--graph", file.to_str().unwrap(), "--wait"]);
    let done = t.elapsed();
    let state_of = |name: &String| -> Vec<(String, String)> {
        let s = json(home, &["-p", name, "--json", "wg", "status", "bench"]);
        s["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| (t["id"].as_str().unwrap().to_owned(), t["status"].as_str().unwrap().to_owned()))
            .collect()
    };
    let first = state_of(&names[0]);
    let completed = first.iter().filter(|(_, s)| s == "completed").count();
    let t2 = Instant::now();
    wait("every member's state to be identical", 120, || names.iter().all(|m| state_of(m) == first));
    println!(
        "{n} tasks (layers of 10, 2 edges each) on 10 members: {completed} completed in {done:.1?}; every member's \
         state identical ({:.1?} after the last result)",
        t2.elapsed()
    );

    // The dashboard on that group.
    let mut ui = alp(home).args(["-p", &names[0], "ui"]).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let mut url = String::new();
    BufReader::new(ui.stdout.take().unwrap()).read_line(&mut url).unwrap();
    let url = url.trim().trim_start_matches("http://").to_owned();
    let (addr, token) = url.split_once('/').unwrap();
    let group = json(home, &["-p", &names[0], "--json", "wg", "status", "bench"])["id"].as_str().unwrap().to_owned();
    let page = format!("/{}g/{group}", token);
    let mut firsts: Vec<f64> = (0..5).map(|_| get(addr, &page).0).collect();
    let (ms, body) = get(addr, &page);
    firsts.push(ms);
    assert!(body.contains("<svg") && body.matches("class=\"task status-completed\"").count() == n);
    // Updates: a note is an event; the stream says so, and the page's
    // live part is fetched again.
    let mut sse = TcpStream::connect(addr).unwrap();
    write!(sse, "GET {page}/events HTTP/1.1\r\nhost: {addr}\r\n\r\n").unwrap();
    let mut sse = BufReader::new(sse);
    let mut line = String::new();
    while !line.starts_with("retry:") {
        line.clear();
        sse.read_line(&mut line).unwrap();
    }
    let mut updates = Vec::new();
    for i in 0..10 {
        let t = Instant::now();
        run(home, &["-p", &names[0], "wg", "note", "bench", &format!("note {i}")]);
        let written = t.elapsed();
        loop {
            line.clear();
            sse.read_line(&mut line).unwrap();
            if line.starts_with("data: note") {
                break;
            }
        }
        let (fetch, _) = get(addr, &format!("{page}/live"));
        // From the event written (the CLI returned) to the new live part in hand.
        updates.push((t.elapsed() - written).as_secs_f64() * 1e3 + fetch);
    }
    let _ = ui.kill();
    let _ = ui.wait();
    let (p50, max) = (percentile(&mut firsts, 0.5), percentile(&mut firsts, 1.0));
    println!("dashboard page of {n} tasks (render + log verify):  p50 {p50:.1} ms, max {max:.1} ms");
    let (p50, max) = (percentile(&mut updates, 0.5), percentile(&mut updates, 1.0));
    println!("dashboard update after an event (stream + live part): p50 {p50:.1} ms, max {max:.1} ms");
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let what = args.first().map(String::as_str).unwrap_or("dispatch");
    let n: Option<usize> = args.get(1).and_then(|a| a.parse().ok());
    let base: PathBuf = std::env::var_os("ALP_BENCH_DIR").unwrap_or_else(|| "/var/tmp".into()).into();
    let dir = tempfile::tempdir_in(base).unwrap();
    match what {
        "dispatch" => dispatch(dir.path()),
        "sync" => sync(dir.path(), n.unwrap_or(10_000)),
        "round" => round(dir.path(), n.unwrap_or(20)),
        "edges" => edges(dir.path(), n.unwrap_or(20)),
        "graph" => graph(dir.path(), n.unwrap_or(200)),
        other => panic!("unknown benchmark {other}: dispatch, sync, round, edges or graph"),
    }
}
