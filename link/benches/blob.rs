//! Blob throughput on 127.0.0.1, with baselines measured in the same run:
//!
//! - `blob add` (streaming import: hash tree + copy) against plain BLAKE3
//!   hashing of the same file (single thread, 1 MiB reads);
//! - `blob.put` and `blob.get` (records, verification before write, temp
//!   files, publish) against raw quinn on one stream with the same TLS and
//!   transport configuration.
//!
//! The receiving side runs on its own thread and runtime.
//! `cargo bench -p alp-link --bench blob [-- MIB]` (default 1024 MiB).

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::Instant;

use alp_blobstore::store::Store;
use alp_link::verbs::blob_put::PutLimits;
use alp_link::{LinkEndpoint, LinkSettings, Me, Router, Server, serve, tls, verbs};
use alp_profiles::peers::{Peer, PeerStore};
use alp_profiles::shares::{ShareStore, ShareTarget};
use alp_profiles::tickets::TicketStore;
use alp_protocol::{NodeId, Verb};
use ed25519_dalek::SigningKey;

fn me(seed: u8) -> Me {
    Me { key: SigningKey::from_bytes(&[seed; 32]), display_name: format!("n{seed}"), addrs: vec![] }
}

fn rate(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / secs / (1024.0 * 1024.0)
}

/// CPU seconds (user + system, all threads) this process has used.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest.split_whitespace().map(|x| x.parse().unwrap_or(0.0)).collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 here.
    (f.get(11).copied().unwrap_or(0.0) + f.get(12).copied().unwrap_or(0.0)) / 100.0
}

/// Wall and CPU time of one phase.
struct Phase {
    wall: Instant,
    cpu: f64,
}

fn start() -> Phase {
    Phase { wall: Instant::now(), cpu: cpu_seconds() }
}

fn row(name: &str, bytes: u64, phase: Phase) -> f64 {
    let secs = phase.wall.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - phase.cpu;
    let r = rate(bytes, secs);
    println!("| {name} | {secs:.2} | {r:.0} | {cpu:.2} |");
    r
}

/// alp server with a blob store, and a raw quinn sink, on their own thread.
fn start_servers(dir: std::path::PathBuf, client: NodeId, settings: LinkSettings) -> (SocketAddr, NodeId, SocketAddr) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        rt.block_on(async move {
            let peers = PeerStore::new(&dir.join("peers.toml"), &dir.join(".lock"));
            let mut peer = Peer::new("client".parse().unwrap(), client, vec![], 0);
            peer.allow.extend([Verb::BlobPut, Verb::BlobGet]);
            peers.add(peer).unwrap();
            let store = Store::open(&dir.join("blobs")).unwrap();
            let shares = ShareStore::new(&dir.join("shares.toml"), &dir.join(".lock"));
            let server = LinkEndpoint::bind("127.0.0.1:0".parse().unwrap(), me(1), settings.clone()).unwrap();
            let addr = server.local_addr().unwrap();
            let id = server.me().node_id();
            let limits = PutLimits { max_size: u64::MAX, peer_quota: u64::MAX, partials_per_peer: u32::MAX };
            let router = Router::builder()
                .accept(
                    Verb::BlobGet,
                    verbs::blob_get::BlobGet::new(
                        store.clone(),
                        verbs::blob_get::Shares::new(shares.clone(), store.clone()),
                        &server.me(),
                    ),
                )
                .accept(Verb::BlobPut, verbs::blob_put::BlobPut::new(store, shares, limits, &server.me()))
                .build();
            let tickets = TicketStore::new(&dir.join("t.toml"), &dir.join(".lock"));
            let state = Server::new(&server, peers, tickets, router);
            let raw = quinn::Endpoint::server(tls::server_config(&settings).unwrap(), "127.0.0.1:0".parse().unwrap())
                .unwrap();
            let raw_addr = raw.local_addr().unwrap();
            tokio::spawn(async move {
                while let Some(incoming) = raw.accept().await {
                    let conn = incoming.await.unwrap();
                    let (mut send, mut recv) = conn.accept_bi().await.unwrap();
                    let mut buf = vec![0u8; 1 << 16];
                    while let Some(n) = recv.read(&mut buf).await.unwrap() {
                        std::hint::black_box(&buf[..n]);
                    }
                    send.write_all(b"ok").await.unwrap();
                    send.finish().unwrap();
                    let _ = conn.closed().await;
                }
            });
            tx.send((addr, id, raw_addr)).unwrap();
            serve(server, state, std::future::pending()).await;
        });
    });
    rx.recv().unwrap()
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

/// What the record layer alone costs: sealing and opening every byte once
/// (one core, no I/O).
fn aead_cost(size: u64) {
    use alp_protocol::record::{MAX_PLAINTEXT, Opener, RecordContext, Sealer, TransferId, TransferKey};
    let key = TransferKey::derive(&[1; 32], &TransferId([2; 16]));
    let ctx = RecordContext { hash: [3; 32], start: 0, end: size, size };
    let (mut sealer, mut opener) = (Sealer::new(&key, &ctx), Opener::new(&key, &ctx));
    let plain = vec![7u8; MAX_PLAINTEXT];
    let records = size / MAX_PLAINTEXT as u64;
    let t = start();
    for _ in 0..records {
        let mut r = sealer.seal(&plain, false).unwrap();
        opener.open(&mut r).unwrap();
    }
    row("record AEAD alone: seal + open of every byte (cost, not a baseline)", size, t);
}

fn main() {
    let mib: u64 = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(1024);
    let size = mib * 1024 * 1024;
    let dir = tempfile::tempdir_in(std::env::var_os("ALP_BENCH_DIR").unwrap_or_else(|| "/var/tmp".into())).unwrap();
    let file = dir.path().join("payload");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
        let mut block = vec![0u8; 1 << 20];
        for i in 0..mib {
            for (j, b) in block.iter_mut().enumerate() {
                *b = (i as usize * 31 + j * 7) as u8;
            }
            f.write_all(&block).unwrap();
        }
    }
    println!("| measurement ({mib} MiB) | seconds | MiB/s | CPU seconds |");
    println!("|---|---|---|---|");

    // Plain BLAKE3 over the file (warm page cache for both).
    let t = start();
    let mut h = blake3::Hasher::new();
    let mut f = std::fs::File::open(&file).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    let plain = h.finalize();
    let b3 = row("plain BLAKE3 of the file (baseline)", size, t);
    let t = start();
    {
        let mut src = std::fs::File::open(&file).unwrap();
        let mut out = std::fs::File::create(dir.path().join("copy")).unwrap();
        std::io::copy(&mut src, &mut out).unwrap();
        out.sync_all().unwrap();
    }
    row("copy of the file + fsync (floor of any stored copy)", size, t);
    std::fs::remove_file(dir.path().join("copy")).unwrap();
    let local = Store::open(&dir.path().join("local")).unwrap();
    let t = start();
    let info = local.import_file(&file).unwrap();
    let add = row("blob add (hash tree + copy into the store, fsync)", size, t);
    assert_eq!(info.hash.to_string(), plain.to_hex().as_str());

    let settings = LinkSettings::default();
    let client_me = me(2);
    let server_dir = dir.path().join("server");
    std::fs::create_dir_all(&server_dir).unwrap();
    let (addr, id, raw_addr) = start_servers(server_dir.clone(), client_me.node_id(), settings.clone());
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (raw, put, get) = rt.block_on(async {
        // Raw quinn: one stream, same config, same bytes.
        let mut ep = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
        ep.set_default_client_config(tls::client_config(&settings).unwrap());
        let conn = ep.connect(raw_addr, "alp").unwrap().await.unwrap();
        let t = start();
        let (mut send, mut recv) = conn.open_bi().await.unwrap();
        let mut f = std::fs::File::open(&file).unwrap();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = f.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            send.write_all(&buf[..n]).await.unwrap();
        }
        send.finish().unwrap();
        recv.read_to_end(16).await.unwrap();
        let raw = row("raw quinn, one stream (baseline)", size, t);
        conn.close(0u32.into(), b"");

        let client = LinkEndpoint::client(client_me, settings.clone()).unwrap();
        let link = client.dial(addr, id).await.unwrap();
        let t = start();
        link.put_blob(&local, info.hash, &alp_link::silent).await.unwrap();
        let put = row("blob put (records, verify, store, receipt)", size, t);

        ShareStore::new(&server_dir.join("shares.toml"), &server_dir.join(".lock"))
            .share(&info.hash.to_string(), &ShareTarget::All)
            .unwrap();
        let fetched = Store::open(&dir.path().join("fetched")).unwrap();
        let t = start();
        link.get_blob(&fetched, info.hash, None, &alp_link::silent).await.unwrap();
        let get = row("blob get (records, verify, store, receipt)", size, t);
        (raw, put, get)
    });
    aead_cost(size);
    println!();
    println!("blob add / plain BLAKE3: {:.2}x", add / b3);
    println!("blob put / raw quinn: {:.2}x; blob get / raw quinn: {:.2}x", put / raw, get / raw);
    println!("peak RSS of this process (client and server together): {:.0} MiB", peak_rss_mib());
}
