//! Frames, request and response envelopes, their bodies, tickets,
//! receipts and blob records:
//! decoding arbitrary bytes never panics, and whatever decodes re-encodes
//! to something that decodes to the same value.
#![no_main]

use alp_protocol::envelope::{self, InfoResponse, PingRequest, Request, Response};
use alp_protocol::frame;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut input = data;
    while let Ok((payload, rest)) = frame::split(input, 1 << 16) {
        if let Ok(r) = Request::decode(payload) {
            assert_eq!(Request::decode(&r.encode()).as_ref(), Ok(&r));
            let _ = envelope::from_cbor::<PingRequest>(&r.body);
        }
        if let Ok(r) = Response::decode(payload) {
            assert_eq!(Response::decode(&r.encode()).as_ref(), Ok(&r));
            if let Some(ok) = &r.ok {
                let _ = envelope::from_cbor::<InfoResponse>(ok);
            }
        }
        input = rest;
    }
    if let Ok(r) = alp_protocol::receipt::SignedReceipt::decode(data) {
        let _ = r.verify();
        assert_eq!(alp_protocol::receipt::SignedReceipt::decode(&r.encode()), Ok(r));
    }
    {
        use alp_protocol::record::{Opener, RecordContext, TransferId, TransferKey};
        let key = TransferKey::derive(&[1; 32], &TransferId([2; 16]));
        let mut opener = Opener::new(&key, &RecordContext { hash: [3; 32], start: 0, end: 1, size: 1 });
        let _ = opener.open(&mut data.to_vec());
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(t) = text.parse::<alp_protocol::ticket::Ticket>() {
            assert_eq!(t.to_string().parse::<alp_protocol::ticket::Ticket>().as_ref(), Ok(&t));
        }
        let _ = text.parse::<alp_protocol::NodeId>();
    }
});
