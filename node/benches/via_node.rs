//! A peer command through the running node against the same command
//! dialling on its own: `alp peer ping -c 1` between two `alp serve`
//! processes on 127.0.0.1.
//!
//! Printed, medians of N runs (default 30):
//! - the round trip on the kept link, as the node measured it;
//! - the command's request on the control socket to its answer (the
//!   link's round trip plus the node's own cost: the issue's "at most a
//!   round trip plus 2 ms");
//! - the whole process, through the node and dialling itself, beside
//!   `alp peer list` (a process that opens the profile and talks to no
//!   one) as the baseline of starting `alp`.
//!
//! `cargo bench -p alp-node --bench via_node [-- N]`.

use std::path::Path;
use std::time::{Duration, Instant};

mod support;

use support::{alp, run, start_serving};

fn json(home: &Path, args: &[&str]) -> serde_json::Value {
    serde_json::from_str(&run(home, args)).unwrap()
}

fn timed(home: &Path, args: &[&str]) -> (Duration, serde_json::Value) {
    let start = Instant::now();
    let out = run(home, args);
    let took = start.elapsed();
    (took, serde_json::from_str(&out).unwrap_or_default())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    let n: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(30);
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    for p in ["alice", "bob"] {
        run(home, &["-p", p, "init"]);
    }
    let serve = |p: &str| {
        start_serving({
            let mut c = alp(home);
            c.args(["-p", p, "serve", "--listen", "127.0.0.1:0"]);
            c
        })
    };
    let (mut alice, _) = serve("alice");
    let (mut bob, _) = serve("bob");
    let ticket = run(home, &["-p", "alice", "invite"]);
    run(home, &["-p", "bob", "pair", &ticket]);
    let ping = ["-p", "bob", "peer", "ping", "alice", "-c", "1", "--json"];
    let first = json(home, &ping);
    assert_eq!(first["via_node"], true, "{first}");

    let (mut rtt, mut socket, mut whole, mut baseline) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..n {
        let (took, v) = timed(home, &ping);
        rtt.push(v["rtt_ms"][0].as_f64().unwrap());
        socket.push(v["command_ms"][0].as_f64().unwrap());
        whole.push(ms(took));
        baseline.push(ms(timed(home, &["-p", "bob", "peer", "list", "--json"]).0));
    }
    let _ = bob.kill();
    let _ = bob.wait();
    let (mut direct, mut direct_rtt, mut direct_connect) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..n {
        let (took, v) = timed(home, &ping);
        assert_eq!(v["via_node"], false);
        direct.push(ms(took));
        direct_rtt.push(v["rtt_ms"][0].as_f64().unwrap());
        direct_connect.push(v["connect_ms"].as_f64().unwrap());
    }
    let _ = alice.kill();
    let _ = alice.wait();

    let (r, s) = (median(rtt), median(socket));
    println!("`alp peer ping -c 1`, medians of {n}, 127.0.0.1, release build\n");
    println!("| measure | ms |");
    println!("|---|---:|");
    println!("| through the node: round trip on its kept link | {r:.3} |");
    println!("| through the node: control request to answer | {s:.3} |");
    println!("| through the node: cost beyond the link's round trip | {:.3} |", s - r);
    println!("| through the node: whole process | {:.2} |", median(whole));
    println!("| dialling itself: link up | {:.2} |", median(direct_connect));
    println!("| dialling itself: round trip | {:.3} |", median(direct_rtt));
    println!("| dialling itself: whole process | {:.2} |", median(direct));
    println!("| baseline: `alp peer list` (start, open the profile, no peer) | {:.2} |", median(baseline));
}
