//! Blob throughput between two processes, as between two machines, beside
//! two baselines measured in the same run between the same two processes'
//! kind, configured the same way (alp's TLS and QUIC transport settings):
//!
//! - **raw quinn**: the sender streams the file's bytes, the receiver
//!   discards them;
//! - **ceiling probe**: raw quinn plus the work every verified transfer
//!   must do: the sender reads the blob and its tree in stream order and
//!   seals 64 KiB records (ChaCha20-Poly1305); the receiver opens each
//!   record, verifies every parent and group against the hash (BLAKE3),
//!   writes the groups with `pwrite` and syncs the file at the end. Both
//!   sides pipeline, as alp does (one thread seals or verifies while the
//!   task moves records), but there is no Noise handshake, no envelopes,
//!   no receipts, no partial-copy checkpoints;
//! - **alp blob put** (to an `alp serve`) and **alp blob get** (from one),
//!   through the CLI.
//!
//! Each is run pinned (receiver on core 0, sender on core 1, `taskset`)
//! and sharing both cores, alternating, and the medians reported.
//!
//! `cargo bench -p alp-node --bench throughput [-- MIB RUNS]` (default 512 MiB, 3 runs).

use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use alp_blobstore::BlobHash;
use alp_blobstore::store::Store;
use alp_blobstore::tree::{GROUP_SIZE, PARENT_SIZE, Step, Verifier, stream_order};
use alp_link::{LinkSettings, tls};
use alp_protocol::record::{MAX_PLAINTEXT, MAX_RECORD, Opener, RecordContext, Sealer, TransferId, TransferKey};

mod support;

use support::{alp, run};

fn key_and_context(hash: &BlobHash, size: u64) -> (TransferKey, RecordContext) {
    let key = TransferKey::derive(&[7; 32], &TransferId([1; 16]));
    (key, RecordContext { hash: *hash.as_bytes(), start: 0, end: size, size })
}

/// The receiving side of a probe: prints its address, takes one
/// connection, one stream; `ceiling` verifies and writes into `out`.
fn probe_receive(ceiling: bool, hash: Option<(BlobHash, u64)>, out: &Path) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    rt.block_on(async {
        let settings = LinkSettings::default();
        let ep =
            quinn::Endpoint::server(tls::server_config(&settings).unwrap(), "127.0.0.1:0".parse().unwrap()).unwrap();
        println!("{}", ep.local_addr().unwrap());
        std::io::stdout().flush().unwrap();
        let conn = ep.accept().await.unwrap().await.unwrap();
        let (mut send, mut recv) = conn.accept_bi().await.unwrap();
        if !ceiling {
            let mut buf = vec![0u8; 1 << 16];
            while let Some(n) = recv.read(&mut buf).await.unwrap() {
                std::hint::black_box(&buf[..n]);
            }
        } else {
            let (hash, size) = hash.unwrap();
            let (key, ctx) = key_and_context(&hash, size);
            let mut opener = Opener::new(&key, &ctx);
            let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(16);
            let file = std::fs::File::create(out).unwrap();
            let writer = tokio::task::spawn_blocking(move || {
                let mut v = Verifier::new(
                    blake3::Hash::from_bytes(*hash.as_bytes()),
                    size,
                    vec![(0, alp_blobstore::tree::groups(size))],
                );
                let mut pending: Vec<u8> = Vec::new();
                while let Some(chunk) = rx.blocking_recv() {
                    // No copy unless a group straddles two records.
                    let mut buf = if pending.is_empty() {
                        chunk
                    } else {
                        pending.extend_from_slice(&chunk);
                        std::mem::take(&mut pending)
                    };
                    let mut used = 0;
                    // Consecutive verified groups go out in one write.
                    let mut run: Option<(u64, usize, usize)> = None;
                    while let Some(parent) = v.next_is_parent() {
                        let rest = &buf[used..];
                        if parent {
                            let Some(pair) = rest.first_chunk::<64>() else { break };
                            v.parent(pair).unwrap();
                            used += 64;
                        } else {
                            let Some((index, len)) = v.next_group_len() else { break };
                            let Some(bytes) = rest.get(..len) else { break };
                            v.group(bytes).unwrap();
                            run = match run {
                                Some((first, start, n)) if start + n == used => Some((first, start, n + len)),
                                Some((first, start, n)) => {
                                    file.write_all_at(&buf[start..start + n], first * GROUP_SIZE).unwrap();
                                    Some((index, used, len))
                                }
                                None => Some((index, used, len)),
                            };
                            used += len;
                        }
                    }
                    if let Some((first, start, n)) = run {
                        file.write_all_at(&buf[start..start + n], first * GROUP_SIZE).unwrap();
                    }
                    buf.drain(..used);
                    pending = buf;
                }
                assert!(v.is_done());
                file.sync_all().unwrap();
            });
            let mut len = [0u8; 4];
            while !opener.is_finished() {
                recv.read_exact(&mut len).await.unwrap();
                let n = u32::from_be_bytes(len) as usize;
                assert!(n <= MAX_RECORD);
                let mut record = vec![0u8; n];
                recv.read_exact(&mut record).await.unwrap();
                let (plain, _) = opener.open(&mut record).unwrap();
                record.truncate(plain);
                tx.send(record).await.unwrap();
            }
            drop(tx);
            writer.await.unwrap();
        }
        send.write_all(b"ok").await.unwrap();
        send.finish().unwrap();
        let _ = conn.closed().await;
    });
}

/// The sending side of a probe: streams the file (raw) or the stored blob
/// in sealed records (ceiling) to `addr`.
fn probe_send(ceiling: bool, addr: SocketAddr, file: &Path, store: &Path, hash: Option<(BlobHash, u64)>) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let settings = LinkSettings::default();
        let mut ep = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
        ep.set_default_client_config(tls::client_config(&settings).unwrap());
        let conn = ep.connect(addr, "alp").unwrap().await.unwrap();
        let (mut send, mut recv) = conn.open_bi().await.unwrap();
        if !ceiling {
            let f = std::fs::File::open(file).unwrap();
            let mut at = 0;
            loop {
                let mut buf = vec![0u8; 1 << 20];
                let n = f.read_at(&mut buf, at).unwrap();
                if n == 0 {
                    break;
                }
                buf.truncate(n);
                send.write_chunk(bytes::Bytes::from(buf)).await.unwrap();
                at += n as u64;
            }
        } else {
            let (hash, size) = hash.unwrap();
            let store = Store::open(store).unwrap();
            let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(16);
            let reader = tokio::task::spawn_blocking(move || {
                let (key, ctx) = key_and_context(&hash, size);
                let mut sealer = Sealer::new(&key, &ctx);
                let data = store.open_blob(&hash).unwrap();
                let tree = store.open_tree(&hash).unwrap();
                let mut plain = Vec::with_capacity(MAX_PLAINTEXT + GROUP_SIZE as usize);
                for step in stream_order(size, vec![(0, alp_blobstore::tree::groups(size))]) {
                    match step {
                        Step::Parent(i) => {
                            let mut pair = [0u8; 64];
                            tree.as_ref().unwrap().read_exact_at(&mut pair, i * PARENT_SIZE).unwrap();
                            plain.extend_from_slice(&pair);
                        }
                        Step::Group(g) => {
                            let len = (size - g * GROUP_SIZE).min(GROUP_SIZE) as usize;
                            let at = plain.len();
                            plain.resize(at + len, 0);
                            data.read_exact_at(&mut plain[at..], g * GROUP_SIZE).unwrap();
                        }
                    }
                    while plain.len() >= MAX_PLAINTEXT {
                        let r = sealer.seal(&plain[..MAX_PLAINTEXT], false).unwrap();
                        plain.drain(..MAX_PLAINTEXT);
                        if tx.blocking_send(r).is_err() {
                            return;
                        }
                    }
                }
                let _ = tx.blocking_send(sealer.seal(&plain, true).unwrap());
            });
            while let Some(r) = rx.recv().await {
                // Length, then the record handed over as it is (no copy).
                let len = bytes::Bytes::copy_from_slice(&(r.len() as u32).to_be_bytes());
                send.write_all_chunks(&mut [len, bytes::Bytes::from(r)]).await.unwrap();
            }
            reader.await.unwrap();
        }
        send.finish().unwrap();
        let mut ok = [0u8; 2];
        recv.read_exact(&mut ok).await.unwrap();
        conn.close(0u32.into(), b"done");
        ep.wait_idle().await;
    });
}

/// `taskset -c CORE` in front of a command, or nothing when sharing.
fn pinned(core: Option<u8>, program: &Path) -> Command {
    match core {
        Some(c) => {
            let mut cmd = Command::new("taskset");
            cmd.arg("-c").arg(c.to_string()).arg(program);
            cmd
        }
        None => Command::new(program),
    }
}

/// Runs one probe pair: (seconds, from the sender's start to its exit).
fn probe(
    ceiling: bool,
    cores: [Option<u8>; 2],
    file: &Path,
    store: &Path,
    hash: &BlobHash,
    size: u64,
    out: &Path,
) -> f64 {
    let me = std::env::current_exe().unwrap();
    let mode = if ceiling { "ceiling" } else { "raw" };
    let mut recv = pinned(cores[0], &me)
        .args(["--probe-receive", mode, &hash.to_string(), &size.to_string()])
        .arg(out)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(recv.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let t = Instant::now();
    let status = pinned(cores[1], &me)
        .args(["--probe-send", mode, line.trim(), &hash.to_string(), &size.to_string()])
        .arg(file)
        .arg(store)
        .status()
        .unwrap();
    let secs = t.elapsed().as_secs_f64();
    assert!(status.success());
    assert!(recv.wait().unwrap().success());
    secs
}

/// `alp` pinned to a core, or not.
fn alp_on(core: Option<u8>, home: &Path) -> Command {
    let mut c = pinned(core, Path::new(env!("CARGO_BIN_EXE_alp")));
    let plain = alp(home);
    for (k, v) in plain.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    c.arg("--home").arg(home).stdin(Stdio::null());
    c
}

fn serve(core: Option<u8>, home: &Path, profile: &str) -> (std::process::Child, String) {
    let mut c = alp_on(core, home);
    c.args(["-p", profile, "serve", "--listen", "127.0.0.1:0"]);
    support::start_serving(c)
}

fn timed(core: Option<u8>, home: &Path, args: &[&str]) -> f64 {
    let t = Instant::now();
    let out = alp_on(core, home).args(args).stdout(Stdio::null()).stderr(Stdio::piped()).output().unwrap();
    assert!(out.status.success(), "alp {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    t.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(role) = args.first().filter(|a| a.starts_with("--probe-")) {
        let ceiling = args[1] == "ceiling";
        let hash: BlobHash = args[if role == "--probe-receive" { 2 } else { 3 }].parse().unwrap();
        let size: u64 = args[if role == "--probe-receive" { 3 } else { 4 }].parse().unwrap();
        if role == "--probe-receive" {
            probe_receive(ceiling, Some((hash, size)), Path::new(&args[4]));
        } else {
            probe_send(ceiling, args[2].parse().unwrap(), Path::new(&args[5]), Path::new(&args[6]), Some((hash, size)));
        }
        return;
    }
    let nums: Vec<u64> = args.iter().filter_map(|a| a.parse().ok()).collect();
    let mib = nums.first().copied().unwrap_or(512);
    let runs = nums.get(1).copied().unwrap_or(3) as usize;
    let size = mib << 20;
    let dir = tempfile::tempdir_in(std::env::var_os("ALP_BENCH_DIR").unwrap_or_else(|| "/var/tmp".into())).unwrap();
    let home = dir.path().join("home");
    let file = dir.path().join("payload");
    {
        let mut data = vec![0u8; size as usize];
        getrandom::fill(&mut data).unwrap();
        std::fs::write(&file, &data).unwrap();
    }
    for p in ["alice", "bob"] {
        run(&home, &["-p", p, "init"]);
    }
    let hash_text = run(&home, &["-p", "alice", "blob", "add", file.to_str().unwrap()]);
    let hash: BlobHash = hash_text.parse().unwrap();
    let alice_store: PathBuf = home.join("profiles/alice/blobs");
    let out = dir.path().join("probe-out");
    println!("{mib} MiB, {runs} runs of each, alternating; MiB/s (median)");
    println!(
        "| mode | raw quinn | ceiling probe | blob put | blob get | put / raw | get / raw | put / ceiling | get / ceiling |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for (label, cores) in [("pinned, a core each", [Some(0u8), Some(1u8)]), ("sharing both cores", [None, None])] {
        // bob serves (the receiver of puts and the sender of gets).
        let (mut bob, addr) = serve(cores[0], &home, "bob");
        if label.starts_with("pinned") {
            let ticket = run(&home, &["-p", "bob", "invite"]);
            run(&home, &["-p", "alice", "pair", &ticket, "--name", "bob"]);
            run(&home, &["-p", "bob", "peer", "allow", "alice", "blob.put", "blob.get"]);
        }
        run(&home, &["-p", "alice", "peer", "set", "bob", "--addr", &addr]);
        let (mut raw, mut ceiling, mut put, mut get) = (vec![], vec![], vec![], vec![]);
        for _ in 0..runs {
            raw.push(probe(false, cores, &file, &alice_store, &hash, size, &out));
            ceiling.push(probe(true, cores, &file, &alice_store, &hash, size, &out));
            let _ = std::fs::remove_file(&out);
            put.push(timed(cores[1], &home, &["-p", "alice", "blob", "put", &hash_text, "--to", "bob"]));
            run(&home, &["-p", "bob", "blob", "share", &hash_text, "--with", "alice"]);
            run(&home, &["-p", "alice", "blob", "rm", &hash_text]);
            get.push(timed(cores[1], &home, &["-p", "alice", "blob", "get", &hash_text, "--from", "bob"]));
            run(&home, &["-p", "bob", "blob", "rm", &hash_text]);
        }
        let _ = bob.kill();
        let _ = bob.wait();
        let r = |s: f64| mib as f64 / s;
        let (raw, ceiling, put, get) = (r(median(raw)), r(median(ceiling)), r(median(put)), r(median(get)));
        println!(
            "| {label} | {raw:.0} | {ceiling:.0} | {put:.0} | {get:.0} | {:.2} | {:.2} | {:.2} | {:.2} |",
            put / raw,
            get / raw,
            put / ceiling,
            get / ceiling
        );
    }
}
