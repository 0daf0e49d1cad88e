//! Signed address records: where a node says it can be reached, and until
//! when, signed with its identity key so that whoever holds the record
//! (the peer it was given to, or anyone that peer passes it on to) can
//! check it came from that node and has not expired.
//!
//! A fixed byte layout (never CBOR), like receipts:
//!
//! ```text
//! body           = node id                      32
//!                  || issued at, Unix seconds   u64 BE
//!                  || expires at, Unix seconds  u64 BE
//!                  || addresses                 (the address-list layout: count u8, then entries)
//! signed message = "alp/1 address record"       (20 bytes)
//!                  || body
//! encoding       = body || signature            64
//! ```
//!
//! A record is accepted only from the node it names, before it expires,
//! not issued more than [`MAX_CLOCK_SKEW`] in the future, and living at
//! most [`MAX_LIFETIME`]; the newest valid record a node has replaces
//! what it learned from older ones.

use std::net::SocketAddr;

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier};

use crate::NodeId;
use crate::addr::{self, take};

/// The context the signature covers first.
pub const ADDR_RECORD_CONTEXT: &[u8] = b"alp/1 address record";
/// The longest a record may live (expires at minus issued at), in seconds.
pub const MAX_LIFETIME: u64 = 7 * 24 * 3600;
/// How far in the future a record's issue time may be (the signer's clock
/// may run ahead), in seconds.
pub const MAX_CLOCK_SKEW: u64 = 300;
/// The most bytes an encoded record takes.
pub const MAX_ADDR_RECORD_LEN: usize = 32 + 8 + 8 + 1 + addr::MAX_ADDRS * (1 + 16 + 2) + 64;

/// What a node says about where it can be reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddrRecord {
    /// The node (and signer).
    pub node_id: NodeId,
    /// When it was signed, in Unix seconds.
    pub issued_at: u64,
    /// When it stops being valid, in Unix seconds.
    pub expires_at: u64,
    /// Where to reach it, best first (at most [`addr::MAX_ADDRS`]).
    pub addrs: Vec<SocketAddr>,
}

/// A record was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddrRecordError {
    /// Bytes that are not a record.
    #[error("malformed address record: {0}")]
    Malformed(&'static str),
    /// A record about another node.
    #[error("the address record is about another node")]
    WrongNode,
    /// The signature is not the node's over these bytes.
    #[error("the address record's signature does not verify")]
    BadSignature,
    /// Past its expiry.
    #[error("the address record expired")]
    Expired,
    /// Issued too far in the future, or living longer than allowed.
    #[error("the address record's times are out of bounds (issued in the future or living longer than 7 days)")]
    BadTimes,
}

impl AddrRecord {
    /// A record of `addrs` (at most [`addr::MAX_ADDRS`] kept) for the node
    /// of `key`, issued `now` and living `lifetime` seconds (at most
    /// [`MAX_LIFETIME`]).
    pub fn new(key: &SigningKey, addrs: &[SocketAddr], now: u64, lifetime: u64) -> Self {
        Self {
            node_id: key.verifying_key().into(),
            issued_at: now,
            expires_at: now.saturating_add(lifetime.min(MAX_LIFETIME)),
            // As the layout carries them: no IPv6 flow label or scope.
            addrs: addrs.iter().take(addr::MAX_ADDRS).map(|a| SocketAddr::new(a.ip(), a.port())).collect(),
        }
    }

    /// The body: everything the signature covers after the context.
    pub fn body(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(48 + addr::encoded_len(&self.addrs));
        out.extend_from_slice(self.node_id.as_bytes());
        out.extend_from_slice(&self.issued_at.to_be_bytes());
        out.extend_from_slice(&self.expires_at.to_be_bytes());
        addr::encode(&self.addrs, &mut out);
        out
    }

    /// The bytes the signature covers.
    pub fn signed_message(&self) -> Vec<u8> {
        [ADDR_RECORD_CONTEXT, &self.body()].concat()
    }

    /// The record signed with `key` (which must be the node's, or the
    /// record will not verify), encoded.
    pub fn sign(&self, key: &SigningKey) -> Vec<u8> {
        let signature = key.sign(&self.signed_message());
        [self.body().as_slice(), &signature.to_bytes()].concat()
    }

    /// Decodes `bytes` and checks them: signed by `signer`, about `signer`,
    /// and valid at `now`.
    pub fn verify(bytes: &[u8], signer: &NodeId, now: u64) -> Result<Self, AddrRecordError> {
        let record = Self::decode(bytes)?;
        if record.node_id != *signer {
            return Err(AddrRecordError::WrongNode);
        }
        let body_len = bytes.len() - 64;
        let signature = Signature::from_bytes(&bytes[body_len..].try_into().map_err(|_| malformed("signature"))?);
        let message = [ADDR_RECORD_CONTEXT, &bytes[..body_len]].concat();
        signer.verifying_key().verify(&message, &signature).map_err(|_| AddrRecordError::BadSignature)?;
        if record.expires_at <= now {
            return Err(AddrRecordError::Expired);
        }
        let lifetime = record.expires_at.checked_sub(record.issued_at);
        if record.issued_at > now.saturating_add(MAX_CLOCK_SKEW) || lifetime.is_none_or(|l| l > MAX_LIFETIME) {
            return Err(AddrRecordError::BadTimes);
        }
        Ok(record)
    }

    /// The record in `bytes`, not checked beyond its layout.
    fn decode(bytes: &[u8]) -> Result<Self, AddrRecordError> {
        if bytes.len() > MAX_ADDR_RECORD_LEN {
            return Err(malformed("too long"));
        }
        let body_len = bytes.len().checked_sub(64).ok_or(malformed("truncated"))?;
        let mut input = &bytes[..body_len];
        let node_id =
            NodeId::from_bytes(take::<32>(&mut input).map_err(malformed)?).map_err(|_| malformed("node id"))?;
        let issued_at = u64::from_be_bytes(take::<8>(&mut input).map_err(malformed)?);
        let expires_at = u64::from_be_bytes(take::<8>(&mut input).map_err(malformed)?);
        let addrs = addr::decode(&mut input).map_err(malformed)?;
        if !input.is_empty() {
            return Err(malformed("trailing bytes"));
        }
        Ok(Self { node_id, issued_at, expires_at, addrs })
    }
}

fn malformed(what: &'static str) -> AddrRecordError {
    AddrRecordError::Malformed(what)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NOW: u64 = 1_800_000_000;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn signed(lifetime: u64) -> (AddrRecord, Vec<u8>) {
        let addrs = ["192.0.2.1:7117".parse().unwrap(), "[2001:db8::1]:7117".parse().unwrap()];
        let record = AddrRecord::new(&key(1), &addrs, NOW, lifetime);
        let bytes = record.sign(&key(1));
        (record, bytes)
    }

    #[test]
    fn a_signed_record_verifies_until_it_expires() {
        let (record, bytes) = signed(3600);
        let id = record.node_id;
        assert_eq!(AddrRecord::verify(&bytes, &id, NOW), Ok(record.clone()));
        assert_eq!(AddrRecord::verify(&bytes, &id, NOW + 3599), Ok(record));
        assert_eq!(AddrRecord::verify(&bytes, &id, NOW + 3600), Err(AddrRecordError::Expired));
        // A signer's clock a little ahead is tolerated, far ahead is not.
        assert!(AddrRecord::verify(&bytes, &id, NOW - MAX_CLOCK_SKEW).is_ok());
        assert_eq!(AddrRecord::verify(&bytes, &id, NOW - MAX_CLOCK_SKEW - 1), Err(AddrRecordError::BadTimes));
    }

    #[test]
    fn another_nodes_record_or_signature_is_refused() {
        let (record, bytes) = signed(3600);
        let other: NodeId = key(2).verifying_key().into();
        assert_eq!(AddrRecord::verify(&bytes, &other, NOW), Err(AddrRecordError::WrongNode));
        // Bob signs a record that says it is Alice's.
        let forged = record.sign(&key(2));
        assert_eq!(AddrRecord::verify(&forged, &record.node_id, NOW), Err(AddrRecordError::BadSignature));
    }

    #[test]
    fn lifetimes_are_capped_when_made_and_checked_when_read() {
        let (record, _) = signed(u64::MAX);
        assert_eq!(record.expires_at - record.issued_at, MAX_LIFETIME);
        let long = AddrRecord { expires_at: NOW + MAX_LIFETIME + 1, ..record.clone() };
        assert_eq!(AddrRecord::verify(&long.sign(&key(1)), &record.node_id, NOW), Err(AddrRecordError::BadTimes));
        let backwards = AddrRecord { expires_at: NOW + 10, issued_at: NOW + 20, ..record.clone() };
        assert_eq!(AddrRecord::verify(&backwards.sign(&key(1)), &record.node_id, NOW), Err(AddrRecordError::BadTimes));
    }

    #[test]
    fn tampered_truncated_and_oversized_records_are_refused() {
        let (record, bytes) = signed(3600);
        let id = record.node_id;
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x01;
            assert!(AddrRecord::verify(&b, &id, NOW).is_err(), "flipped byte {i}");
        }
        for n in 0..bytes.len() {
            assert!(AddrRecord::verify(&bytes[..n], &id, NOW).is_err(), "cut to {n}");
        }
        let long = [bytes.as_slice(), &[0]].concat();
        assert!(AddrRecord::verify(&long, &id, NOW).is_err());
        assert!(AddrRecord::verify(&vec![0; MAX_ADDR_RECORD_LEN + 1], &id, NOW).is_err());
        let full = AddrRecord::new(&key(1), &[record.addrs[1]; 20], NOW, 60).sign(&key(1));
        assert_eq!(full.len(), MAX_ADDR_RECORD_LEN);
        assert!(AddrRecord::verify(&full, &id, NOW).is_ok());
    }

    proptest! {
        #[test]
        fn round_trips(addrs in proptest::collection::vec(any::<SocketAddr>(), 0..=addr::MAX_ADDRS), life in 1..MAX_LIFETIME) {
            let record = AddrRecord::new(&key(3), &addrs, NOW, life);
            let bytes = record.sign(&key(3));
            prop_assert!(bytes.len() <= MAX_ADDR_RECORD_LEN);
            prop_assert_eq!(AddrRecord::verify(&bytes, &record.node_id, NOW), Ok(record));
        }

        #[test]
        fn decoding_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let id: NodeId = key(3).verifying_key().into();
            let _ = AddrRecord::verify(&bytes, &id, NOW);
        }
    }
}
