//! CPU cost of each handshake step, both sides in memory (no sockets):
//! first contact (every signature checked, nothing precomputed), then
//! between known peers (the static keys remembered: no signature check,
//! and the dialler's `es` worked out while QUIC connects).
//! `cargo run --release -p alp-protocol --example handshake_cost`

use std::time::Instant;

use alp_protocol::handshake::{Credentials, Initiator, LocalIdentity, Mode, Responder};
use ed25519_dalek::SigningKey;

const STEPS: [&str; 6] = [
    "initiator prepare (while QUIC connects)",
    "initiator start",
    "responder hello",
    "initiator response",
    "responder finish+accept (off the dialler's path)",
    "initiator confirm",
];

fn credentials(seed: u8) -> Credentials {
    let key = SigningKey::from_bytes(&[seed; 32]);
    Credentials::new(&LocalIdentity { key: &key, display_name: "n", addrs: &[] }).unwrap_or_else(|e| panic!("{e}"))
}

/// Mean µs per step over `n` handshakes; fresh credentials each time when
/// `first_contact`, so nothing is remembered.
fn run(n: u32, first_contact: bool) -> [f64; 6] {
    let (mut ca, mut cb) = (credentials(1), credentials(2));
    let mut steps = [0f64; 6];
    for _ in 0..n {
        if first_contact {
            (ca, cb) = (credentials(1), credentials(2));
        }
        let mut t = Instant::now();
        let mut lap = |i: usize, steps: &mut [f64; 6]| {
            steps[i] += t.elapsed().as_secs_f64();
            t = Instant::now();
        };
        let prepared = Initiator::prepare(&ca, Some(cb.node_id()));
        lap(0, &mut steps);
        let (i, f1) =
            Initiator::start_prepared(&ca, prepared, [1; 32], &Mode::Trusted).unwrap_or_else(|e| panic!("{e}"));
        lap(1, &mut steps);
        let (r, f2) = Responder::handle_hello(&cb, [1; 32], &f1, |_| None).unwrap_or_else(|e| panic!("{e}"));
        lap(2, &mut steps);
        let (i, f3) = i.handle_response(&f2).unwrap_or_else(|e| panic!("{e}"));
        lap(3, &mut steps);
        let (_, f4) = r.handle_finish(&f3).and_then(|p| p.accept()).unwrap_or_else(|e| panic!("{e}"));
        lap(4, &mut steps);
        i.handle_confirmation(&f4).unwrap_or_else(|e| panic!("{e}"));
        lap(5, &mut steps);
    }
    steps.map(|s| s / f64::from(n) * 1e6)
}

fn main() {
    let t = Instant::now();
    let _ = (credentials(1), credentials(2));
    println!("credentials (once per endpoint, both sides): {:.0} us", t.elapsed().as_secs_f64() * 5e5);
    let n = 2000;
    let (first, known) = (run(n, true), run(n, false));
    println!("| step | first contact µs | known peers µs |");
    println!("|---|---|---|");
    for (i, name) in STEPS.iter().enumerate() {
        println!("| {name} | {:.0} | {:.0} |", first[i], known[i]);
    }
    let path = |s: &[f64; 6]| s[1] + s[2] + s[3];
    println!("| on the connect path (start, hello, response) | {:.0} | {:.0} |", path(&first), path(&known));
    println!("| total | {:.0} | {:.0} |", first.iter().sum::<f64>(), known.iter().sum::<f64>());
}
