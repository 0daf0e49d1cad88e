//! One blob from three peers at once against one peer, each peer behind a
//! pacing UDP relay on loopback (a rate-limited link each, as peers on
//! separate home connections would be): `alp blob get --from s1` against
//! `--from s1,s2,s3`, alternating, same blob, same run. Every sender is a
//! separate `alp serve` process.
//!
//! `cargo bench -p alp-node --bench multi_source [-- MIB RATE_MB_S RUNS]`
//! (default 64 MiB, 15 MB/s per link, 3 runs).

use std::path::Path;
use std::process::Child;
use std::time::Instant;

mod support;
#[path = "../../tests/tests/e2e/throttle.rs"]
mod throttle;

use support::{alp, run};

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(home: &Path, profile: &str) -> (Server, std::net::SocketAddr) {
    let mut c = alp(home);
    c.args(["-p", profile, "serve", "--listen", "127.0.0.1:0"]);
    let (child, addr) = support::start_serving(c);
    (Server(child), addr.parse().unwrap())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let mib: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(64);
    let rate: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(15) * 1_000_000;
    let runs: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(3);
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let src = home.join("payload.bin");
    let mut data = vec![0u8; mib << 20];
    getrandom::fill(&mut data).unwrap();
    std::fs::write(&src, &data).unwrap();
    drop(data);
    run(home, &["-p", "bob", "init"]);
    let mut keep = Vec::new();
    let mut hash = String::new();
    for name in ["s1", "s2", "s3"] {
        run(home, &["-p", name, "init"]);
        let (server, addr) = serve(home, name);
        let ticket = run(home, &["-p", name, "invite"]);
        run(home, &["-p", "bob", "pair", &ticket, "--name", name]);
        hash = run(home, &["-p", name, "blob", "add", src.to_str().unwrap()]);
        run(home, &["-p", name, "blob", "share", &hash, "--with", "bob"]);
        run(home, &["-p", name, "peer", "allow", "bob", "blob.get"]);
        let relay = throttle::Throttle::new(addr, rate);
        run(home, &["-p", "bob", "peer", "set", name, "--addr", &relay.addr.to_string()]);
        keep.push((server, relay));
    }
    println!("{mib} MiB, each link paced to {} MB/s, {runs} runs alternating", rate / 1_000_000);
    let (mut one, mut three) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        for (from, into) in [("s1", &mut one), ("s1,s2,s3", &mut three)] {
            let t = Instant::now();
            run(home, &["-p", "bob", "blob", "get", &hash, "--from", from]);
            let secs = t.elapsed().as_secs_f64();
            run(home, &["-p", "bob", "blob", "rm", &hash]);
            into.push((mib as f64 * 1.048_576) / secs);
            println!("  --from {from:9} {secs:6.2} s  {:6.1} MB/s", into.last().unwrap());
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (a, b) = (median(&mut one), median(&mut three));
    println!("median: one sender {a:.1} MB/s, three senders {b:.1} MB/s: {:.2}x", b / a);
}
