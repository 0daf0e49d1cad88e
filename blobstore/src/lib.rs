//! Content-addressed storage of blobs for an alp profile.
//!
//! A blob's address is the plain BLAKE3 hash of its bytes, shown as 64 hex
//! characters, exactly what `b3sum` prints.
//!
//! Its one job is keeping blobs on disk and knowing which of their bytes
//! are verified; it does no networking. Key parts:
//! - [`BlobHash`], the address;
//! - [`tree`]: the hash tree at 16 KiB chunk groups, built in constant
//!   memory, and the verifier of pre-order streams of whole blobs or
//!   ranges;
//! - [`store`]: complete blobs (streaming import, atomic publish, export,
//!   verify, quota) and durable partial blobs (verified groups at their
//!   offsets, checkpoints, one writer per blob, garbage collection);
//! - [`part`]: which groups a transfer moves, and the one rule for what to
//!   move next ([`part::next_part`]), used by both directions.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod collection;
pub mod index;
pub mod part;
pub mod store;
pub mod tree;

use std::fmt;
use std::str::FromStr;

/// The address of a blob: the BLAKE3 hash of its content.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlobHash([u8; 32]);

/// Why a string is not a blob address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a blob hash: expected 64 hex characters (as printed by `alp blob add` or `b3sum`)")]
pub struct ParseBlobHashError;

impl BlobHash {
    /// The address of `content`.
    pub fn of(content: &[u8]) -> Self {
        Self(*blake3::hash(content).as_bytes())
    }

    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl From<blake3::Hash> for BlobHash {
    fn from(h: blake3::Hash) -> Self {
        Self(*h.as_bytes())
    }
}

impl fmt::Display for BlobHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(blake3::Hash::from_bytes(self.0).to_hex().as_str())
    }
}

impl fmt::Debug for BlobHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlobHash({})", &self.to_string()[..12])
    }
}

impl FromStr for BlobHash {
    type Err = ParseBlobHashError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 64 {
            return Err(ParseBlobHashError);
        }
        blake3::Hash::from_hex(s).map(Self::from).map_err(|_| ParseBlobHashError)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn empty_blob_matches_b3sum() {
        // `b3sum /dev/null`
        assert_eq!(BlobHash::of(b"").to_string(), "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262");
    }

    #[test]
    fn rejects_bad_text() {
        assert!("".parse::<BlobHash>().is_err());
        assert!("zz".repeat(32).parse::<BlobHash>().is_err());
        assert!("ab".repeat(33).parse::<BlobHash>().is_err());
    }

    proptest! {
        #[test]
        fn round_trips(bytes in any::<[u8; 32]>()) {
            let h = BlobHash(bytes);
            prop_assert_eq!(h.to_string().parse::<BlobHash>(), Ok(h));
        }

        #[test]
        fn parsing_never_panics(s in "\\PC{0,80}") {
            let _ = s.parse::<BlobHash>();
        }
    }
}
