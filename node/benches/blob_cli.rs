//! Blob transfers between separate processes, the way users run them:
//! `alp serve` on one profile, `alp blob put` / `alp blob get` from another,
//! on 127.0.0.1. Reports wall time, throughput and the peak RSS of each
//! process (VmHWM from /proc: read at the end for the server, sampled every
//! 10 ms for the CLI, which exits when done).
//!
//! `cargo bench -p alp-node --bench blob_cli [-- MIB...]` (default 1024 4096).

use std::io::Write;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

mod support;

use support::{alp, run};

/// Peak RSS of a live process, in MiB.
fn hwm_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = status.lines().find(|l| l.starts_with("VmHWM"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

struct Server {
    child: Child,
}

impl Server {
    fn start(home: &Path, profile: &str, listen: &str) -> (Self, String) {
        let mut c = alp(home);
        c.args(["-p", profile, "serve", "--listen", listen]);
        let (child, addr) = support::start_serving(c);
        (Self { child }, addr)
    }

    fn peak_mib(&self) -> f64 {
        hwm_mib(self.child.id()).unwrap_or(0.0)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `alp args` to completion: (seconds, peak RSS in MiB).
fn timed(home: &Path, args: &[&str]) -> (f64, f64) {
    let t = Instant::now();
    let mut child = alp(home).args(args).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let mut peak = 0.0f64;
    loop {
        if let Some(m) = hwm_mib(child.id()) {
            peak = peak.max(m);
        }
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            let _ = std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err);
            assert!(status.success(), "alp {args:?}: {err}");
            return (t.elapsed().as_secs_f64(), peak);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn measure(mib: u64) {
    let base = std::env::var_os("ALP_BENCH_DIR").unwrap_or_else(|| "/var/tmp".into());
    let dir = tempfile::tempdir_in(base).unwrap();
    let home = dir.path();
    let file = home.join("payload");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
        let mut block = vec![0u8; 1 << 20];
        for i in 0..mib {
            for (j, b) in block.iter_mut().enumerate() {
                *b = (i as usize * 131 + j * 7) as u8;
            }
            f.write_all(&block).unwrap();
        }
    }
    let bytes = mib << 20;
    let rate = |secs: f64| bytes as f64 / secs / f64::from(1 << 20);
    run(home, &["-p", "alice", "init"]);
    run(home, &["-p", "bob", "init"]);
    let (bob, addr) = Server::start(home, "bob", "127.0.0.1:0");
    let ticket = run(home, &["-p", "bob", "invite"]);
    run(home, &["-p", "alice", "pair", &ticket, "--name", "bob"]);
    run(home, &["-p", "bob", "peer", "allow", "alice", "blob.put", "blob.get"]);
    let hash = run(home, &["-p", "alice", "blob", "add", file.to_str().unwrap()]);

    // put: alice's CLI sends, bob's node receives.
    let (secs, cli) = timed(home, &["-p", "alice", "blob", "put", &hash, "--to", "bob"]);
    println!(
        "| {mib} MiB | blob put | {secs:.2} | {:.0} | {cli:.0} (alp blob put) | {:.0} (alp serve) |",
        rate(secs),
        bob.peak_mib()
    );
    drop(bob);

    // get: alice's CLI fetches from a fresh bob node that shares it.
    run(home, &["-p", "alice", "blob", "rm", &hash]);
    let (bob, _) = Server::start(home, "bob", &addr);
    run(home, &["-p", "bob", "blob", "share", &hash, "--with", "alice"]);
    run(home, &["-p", "bob", "peer", "allow", "alice", "blob.get"]);
    let (secs, cli) = timed(home, &["-p", "alice", "blob", "get", &hash, "--from", "bob"]);
    println!(
        "| {mib} MiB | blob get | {secs:.2} | {:.0} | {cli:.0} (alp blob get) | {:.0} (alp serve) |",
        rate(secs),
        bob.peak_mib()
    );
    drop(bob);
    run(home, &["-p", "alice", "blob", "verify", &hash]);
}

fn main() {
    let sizes: Vec<u64> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let sizes = if sizes.is_empty() { vec![1024, 4096] } else { sizes };
    println!("| size | transfer | seconds | MiB/s | peak RSS of the CLI (MiB) | peak RSS of the serving node (MiB) |");
    println!("|---|---|---|---|---|---|");
    for mib in sizes {
        measure(mib);
    }
}
