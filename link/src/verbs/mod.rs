//! The handlers of the verbs the link itself serves: liveness, identity,
//! and blobs. Each is one type implementing [`crate::Handler`], in a file
//! of its own; a node registers the ones it serves on its
//! [`crate::Router`].

pub mod blob_get;
pub mod blob_put;
pub mod info;
pub mod meet;
pub mod ping;

use alp_blobstore::BlobHash;
use alp_protocol::envelope::{DecodeError, ErrorCode, Response, fixed};
use alp_protocol::record::TransferId;
use serde::de::DeserializeOwned;

use crate::router::Call;

/// A blob request's body, and its blob hash and transfer id (`ids` points
/// at them) checked for length; or the answer that refuses it.
fn blob_request<T: DeserializeOwned>(
    call: &Call,
    ids: impl Fn(&T) -> (&[u8], &[u8]),
) -> Result<(T, BlobHash, TransferId), Response> {
    let body: T = call.body()?;
    let checked = |(hash, transfer): (&[u8], &[u8])| -> Result<_, DecodeError> {
        let hash = BlobHash::from(blake3::Hash::from_bytes(fixed::<32>(hash, "hash")?));
        Ok((hash, TransferId(fixed::<16>(transfer, "transfer_id")?)))
    };
    let (hash, transfer) = checked(ids(&body)).map_err(|e| call.error(ErrorCode::BadRequest, e.to_string()))?;
    Ok((body, hash, transfer))
}
