//! The handlers of the verbs the link itself serves: liveness, identity,
//! and blobs. Each is one type implementing [`crate::Handler`]; a node
//! registers the ones it serves on its [`crate::Router`].

mod blob_get;
mod blob_put;
mod info;
mod ping;

pub use blob_get::BlobGet;
pub use blob_put::BlobPut;
pub use info::Info;
pub use ping::Ping;

use alp_blobstore::BlobHash;
use alp_protocol::envelope::{DecodeError, fixed};
use alp_protocol::record::TransferId;

/// The blob hash and transfer id of a blob request, checked for length.
fn blob_ids(hash: &[u8], transfer: &[u8]) -> Result<(BlobHash, TransferId), DecodeError> {
    let hash = BlobHash::from(blake3::Hash::from_bytes(fixed::<32>(hash, "hash")?));
    Ok((hash, TransferId(fixed::<16>(transfer, "transfer_id")?)))
}
