//! The responder's first step and the initiator's second step on
//! arbitrary bytes: never a panic, only errors.
#![no_main]

use alp_protocol::handshake::{Initiator, LocalIdentity, Mode, Responder};
use ed25519_dalek::SigningKey;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let key = SigningKey::from_bytes(&[1; 32]);
    let local = LocalIdentity { key: &key, display_name: "fuzz", addrs: &[] };
    let _ = Responder::handle_hello(&local, [0; 32], data, |_| Some([2; 32]));
    if let Ok((init, _)) = Initiator::start(&local, [0; 32], &Mode::Trusted, None) {
        let _ = init.handle_response(data);
    }
});
