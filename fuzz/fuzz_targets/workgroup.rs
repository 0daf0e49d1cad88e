//! Workgroup events, logs and replication bodies from arbitrary bytes:
//! decoding never panics and what decodes re-encodes to itself; a stored
//! log of any bytes is re-checked without panicking; events that decode
//! are taken into (or refused by) a real log, which then folds.
#![no_main]

use std::sync::OnceLock;

use alp_protocol::envelope::from_cbor;
use alp_workgroup::body::{Create, MemberRoles, Policy, WithCard};
use alp_workgroup::sync::{PushRequest, SyncRequest, SyncResponse};
use alp_workgroup::{Body, Event, Header, Log, State};
use ed25519_dalek::SigningKey;
use libfuzzer_sys::fuzz_target;

/// A group of three, for fuzzed events to land in.
fn group() -> &'static Log {
    static LOG: OnceLock<Log> = OnceLock::new();
    LOG.get_or_init(|| {
        let keys: Vec<SigningKey> = (1..=3u8).map(|i| SigningKey::from_bytes(&[i; 32])).collect();
        let create = Create { name: "fuzz".into(), briefing: String::new(), budget: Default::default(), policy: Policy::default(), roles: vec![] };
        let header = Header { group: None, author: keys[0].verifying_key().into(), seq: 1, prev: None, clock: 1, time_ms: 0, deps: vec![] };
        let mut log = Log::new(Event::sign(&keys[0], header, Body::Create(create)).unwrap()).unwrap();
        for k in &keys[1..] {
            let h = log.next_header(keys[0].verifying_key().into(), vec![], 0);
            let invite = Event::sign(&keys[0], h, Body::Invite(MemberRoles { member: k.verifying_key().to_bytes(), roles: vec![], admin: false })).unwrap();
            log.ingest(invite.clone()).unwrap();
            let h = log.next_header(k.verifying_key().into(), vec![invite.id()], 0);
            log.ingest(Event::sign(k, h, Body::Join(WithCard { card: Default::default() })).unwrap()).unwrap();
        }
        log
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(e) = Event::decode(data) {
        let again = Event::decode(e.bytes()).unwrap();
        assert_eq!(again.id(), e.id());
        let (kind, body) = e.body().encode();
        assert_eq!(Body::decode(kind, &body).unwrap(), *e.body());
        let mut log = group().clone();
        if log.ingest(e).is_ok() {
            let _ = State::fold(&log);
        }
    }
    let _ = alp_workgroup::verify::verify(data);
    let _ = from_cbor::<SyncRequest>(data);
    let _ = from_cbor::<SyncResponse>(data);
    let _ = from_cbor::<PushRequest>(data);
});
