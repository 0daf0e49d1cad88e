//! The responder's first step, the initiator's second step, and a peer's
//! signed address record (from `link.info`) on arbitrary bytes: never a
//! panic, only errors.
#![no_main]

use std::sync::OnceLock;

use alp_protocol::addr_record::AddrRecord;
use alp_protocol::handshake::{Credentials, Initiator, LocalIdentity, Mode, Responder};
use ed25519_dalek::SigningKey;
use libfuzzer_sys::fuzz_target;

fn creds() -> &'static Credentials {
    static CREDS: OnceLock<Credentials> = OnceLock::new();
    CREDS.get_or_init(|| {
        let key = SigningKey::from_bytes(&[1; 32]);
        let local = LocalIdentity { key: &key, display_name: "fuzz", addrs: &[] };
        Credentials::new(&local).unwrap_or_else(|e| panic!("credentials: {e}"))
    })
}

fuzz_target!(|data: &[u8]| {
    let _ = Responder::handle_hello(creds(), [0; 32], data, |_| Some([2; 32]));
    if let Ok((init, _)) = Initiator::start(creds(), [0; 32], &Mode::Trusted, None) {
        let _ = init.handle_response(data);
    }
    let signer = SigningKey::from_bytes(&[1; 32]).verifying_key().into();
    if let Ok(r) = AddrRecord::verify(data, &signer, 1_800_000_000) {
        assert!(r.addrs.len() <= alp_protocol::MAX_ADDRS && r.expires_at > 1_800_000_000);
    }
});
