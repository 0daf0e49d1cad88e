//! What sharing reads from peers and users: folder manifests (from a
//! fetched or pushed blob), blob tickets (pasted text) and the names that
//! travel with blobs. Nothing panics; a manifest that decodes re-encodes to
//! the same bytes and holds only paths that stay inside the folder; a
//! ticket that parses prints back to a ticket that parses the same.
#![no_main]

use alp_blobstore::collection::{check_path, decode, encode};
use alp_blobstore::store::meta::check_name;
use alp_protocol::blob_ticket::BlobTicket;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(entries) = decode(data) {
        for e in &entries {
            assert!(check_path(&e.path).is_ok());
            assert!(!e.path.starts_with('/') && !e.path.split('/').any(|p| p == ".." || p == "." || p.is_empty()));
        }
        assert_eq!(encode(entries).as_deref(), Ok(data));
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = check_name(text);
        let _ = check_path(text);
        if let Ok(t) = text.parse::<BlobTicket>() {
            assert_eq!(t.to_string().parse::<BlobTicket>(), Ok(t));
        }
    }
});
