//! CPU cost of each handshake step, both sides in memory (no sockets).
//! `cargo run --release -p alp-protocol --example handshake_cost`

use std::time::Instant;

use alp_protocol::handshake::{Credentials, Initiator, LocalIdentity, Mode, Responder};
use ed25519_dalek::SigningKey;

fn main() {
    let (a, b) = (SigningKey::from_bytes(&[1; 32]), SigningKey::from_bytes(&[2; 32]));
    let t = Instant::now();
    let ca =
        Credentials::new(&LocalIdentity { key: &a, display_name: "a", addrs: &[] }).unwrap_or_else(|e| panic!("{e}"));
    let cb =
        Credentials::new(&LocalIdentity { key: &b, display_name: "b", addrs: &[] }).unwrap_or_else(|e| panic!("{e}"));
    println!("credentials (once per endpoint, both sides): {:.0} us", t.elapsed().as_secs_f64() * 5e5);
    let n = 2000u32;
    let mut steps = [0f64; 5];
    for _ in 0..n {
        let mut lap = {
            let mut t = Instant::now();
            move |i: usize, steps: &mut [f64; 5]| {
                steps[i] += t.elapsed().as_secs_f64();
                t = Instant::now();
            }
        };
        let (i, f1) = Initiator::start(&ca, [1; 32], &Mode::Trusted, None).unwrap_or_else(|e| panic!("{e}"));
        lap(0, &mut steps);
        let (r, f2) = Responder::handle_hello(&cb, [1; 32], &f1, |_| None).unwrap_or_else(|e| panic!("{e}"));
        lap(1, &mut steps);
        let (i, f3) = i.handle_response(&f2).unwrap_or_else(|e| panic!("{e}"));
        lap(2, &mut steps);
        let (_, f4) = r.handle_finish(&f3).and_then(|p| p.accept()).unwrap_or_else(|e| panic!("{e}"));
        lap(3, &mut steps);
        i.handle_confirmation(&f4).unwrap_or_else(|e| panic!("{e}"));
        lap(4, &mut steps);
    }
    let names =
        ["initiator start", "responder hello", "initiator response", "responder finish+accept", "initiator confirm"];
    for (name, total) in names.iter().zip(steps) {
        println!("{name:>24}: {:>6.0} us", total / f64::from(n) * 1e6);
    }
    println!("{:>24}: {:>6.0} us", "total", steps.iter().sum::<f64>() / f64::from(n) * 1e6);
}
