//! Link latency on 127.0.0.1, with raw quinn measured in the same run and
//! with the same TLS and transport configuration as the baseline.
//!
//! - connect: N fresh connections each, raw QUIC vs. QUIC + Noise
//!   handshake + authorisation, interleaved so drift hits all equally:
//!   between known peers (each side knows the other's static key, as after
//!   pairing or any earlier handshake: the node stores it with the peer),
//!   and at first contact (the dialler knows nothing: every signature is
//!   checked, nothing is precomputed);
//! - round trip on an open connection: a raw bidirectional stream echo vs.
//!   `link.ping` (one request stream, CBOR envelope, permission check).
//!
//! The servers run on their own thread and runtime (as `alp serve` runs in
//! its own process); the client on a current-thread runtime, as the CLI.
//!
//! `cargo bench -p alp-link --bench link [-- N]` (default N = 1000).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use alp_link::{LinkEndpoint, LinkSettings, Me, Router, Server, serve, tls, verbs};
use alp_profiles::peers::{Peer, PeerStore};
use alp_profiles::tickets::TicketStore;
use alp_protocol::{NodeId, Verb};
use ed25519_dalek::SigningKey;

fn me(seed: u8) -> Me {
    Me { key: SigningKey::from_bytes(&[seed; 32]), display_name: format!("n{seed}"), addrs: vec![] }
}

fn stats(name: &str, mut v: Vec<Duration>) -> (f64, f64) {
    v.sort();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let pick = |q: f64| us(v[((v.len() as f64 - 1.0) * q).round() as usize]);
    let mean = v.iter().map(|d| us(*d)).sum::<f64>() / v.len() as f64;
    let (p50, p99) = (pick(0.5), pick(0.99));
    println!("| {name} | {} | {:.0} | {p50:.0} | {p99:.0} | {mean:.0} |", v.len(), us(v[0]));
    (p50, p99)
}

async fn raw_server(settings: &LinkSettings) -> SocketAddr {
    let ep = quinn::Endpoint::server(tls::server_config(settings).unwrap(), "127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = ep.local_addr().unwrap();
    tokio::spawn(async move {
        while let Some(incoming) = ep.accept().await {
            tokio::spawn(async move {
                let Ok(conn) = incoming.await else { return };
                while let Ok((mut send, mut recv)) = conn.accept_bi().await {
                    tokio::spawn(async move {
                        if let Ok(data) = recv.read_to_end(1024).await {
                            let _ = send.write_all(&data).await;
                            let _ = send.finish();
                        }
                    });
                }
            });
        }
    });
    addr
}

async fn raw_echo(conn: &quinn::Connection) {
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    send.write_all(&[7u8; 16]).await.unwrap();
    send.finish().unwrap();
    recv.read_to_end(1024).await.unwrap();
}

/// Both servers (alp and raw quinn) on their own thread and runtime, as a
/// separate `alp serve` process would be; returns their addresses.
fn start_servers(settings: LinkSettings, client: NodeId) -> (SocketAddr, NodeId, SocketAddr) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        rt.block_on(async move {
            let dir = tempfile::tempdir().unwrap();
            let peers = PeerStore::new(&dir.path().join("peers.toml"), &dir.path().join(".lock"));
            let tickets = TicketStore::new(&dir.path().join("tickets.toml"), &dir.path().join(".lock"));
            peers.add(Peer::new("client".parse().unwrap(), client, vec![], 0)).unwrap();
            let server = LinkEndpoint::bind("127.0.0.1:0".parse().unwrap(), me(1), settings.clone()).unwrap();
            let addr = server.local_addr().unwrap();
            let id = server.me().node_id();
            let router = Router::builder()
                .accept(Verb::LinkPing, verbs::ping::Ping)
                .accept(Verb::LinkInfo, verbs::info::Info::new(&server))
                .build();
            let state = Server::new(&server, peers, tickets, router);
            let raw_addr = raw_server(&settings).await;
            tx.send((addr, id, raw_addr)).unwrap();
            serve(server, state, std::future::pending()).await;
            drop(dir);
        });
    });
    rx.recv().unwrap()
}

fn main() {
    let n: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(1000);
    let settings = LinkSettings { requests_per_second: 1_000_000, request_burst: 1_000_000, ..LinkSettings::default() };
    let client_me = me(2);
    // The server's endpoint has its ephemeral-key pool, as `alp serve`'s
    // does; the client makes its key while QUIC connects, as the CLI does.
    let (server_addr, server_id, raw_addr) = start_servers(settings.clone(), client_me.node_id());
    // The client side runs like the CLI: a current-thread runtime.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(measure(n, settings, client_me, server_addr, server_id, raw_addr));
}

async fn measure(
    n: usize,
    settings: LinkSettings,
    client_me: Me,
    server_addr: SocketAddr,
    server_id: NodeId,
    raw_addr: SocketAddr,
) {
    let client = LinkEndpoint::client(client_me, settings.clone()).unwrap();
    let mut raw_client = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    raw_client.set_default_client_config(tls::client_config(&settings).unwrap());

    // Warm up both paths.
    for _ in 0..50 {
        let c = raw_client.connect(raw_addr, "alp").unwrap().await.unwrap();
        c.close(0u32.into(), b"");
        client.dial(server_addr, server_id).await.unwrap().close();
    }

    let (mut raw, mut auth, mut first) = (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
    for _ in 0..n {
        let t = Instant::now();
        let c = raw_client.connect(raw_addr, "alp").unwrap().await.unwrap();
        raw.push(t.elapsed());
        c.close(0u32.into(), b"");
        let t = Instant::now();
        let link = client.dial(server_addr, server_id).await.unwrap();
        auth.push(t.elapsed());
        link.close();
        client.known_keys().clear();
        let t = Instant::now();
        let link = client.dial(server_addr, server_id).await.unwrap();
        first.push(t.elapsed());
        link.close();
    }

    let raw_conn = raw_client.connect(raw_addr, "alp").unwrap().await.unwrap();
    let link = client.dial(server_addr, server_id).await.unwrap();
    let (mut echo, mut ping) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for i in 0..n {
        let t = Instant::now();
        raw_echo(&raw_conn).await;
        echo.push(t.elapsed());
        let t = Instant::now();
        link.ping(i as u64).await.unwrap();
        ping.push(t.elapsed());
    }

    println!("| measurement | n | min µs | p50 µs | p99 µs | mean µs |");
    println!("|---|---|---|---|---|---|");
    let (raw50, raw99) = stats("raw quinn connect (baseline)", raw);
    let (auth50, auth99) = stats("authenticated connect, known peers (QUIC + Noise XX + authz)", auth);
    let (first50, first99) = stats("authenticated connect, first contact", first);
    stats("raw quinn stream echo (baseline)", echo);
    stats("link.ping round trip", ping);
    println!();
    println!("authenticated / raw connect, known peers: p50 {:.2}x, p99 {:.2}x", auth50 / raw50, auth99 / raw99);
    println!("authenticated / raw connect, first contact: p50 {:.2}x, p99 {:.2}x", first50 / raw50, first99 / raw99);
}
