//! Signed transfer receipts: the sender's ed25519 signature over a fixed
//! byte layout (never CBOR), checked by the receiver and kept with the blob.
//!
//! ```text
//! signed message = "alp blob receipt v2"          (19 bytes)
//!                  || blob hash                   32
//!                  || blob size                   u64 BE
//!                  || range start (bytes)         u64 BE
//!                  || range end (bytes)           u64 BE
//!                  || sender node id              32
//!                  || receiver node id            32
//!                  || transfer id                 16
//!                  || connection binding          32  (the link's TLS exporter value)
//!                  || time, Unix seconds          u64 BE
//! encoding       = the message without the context (176 bytes) || signature (64)
//! ```
//!
//! The range is the part of the blob this transfer carried (group-aligned;
//! the whole blob is `0..size`), so a resumed transfer's receipt says
//! exactly what that sender sent.
//!
//! ```text
//! ```

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier};

use crate::NodeId;
use crate::addr::take;
use crate::record::TransferId;

/// First bytes of every signed receipt.
pub const RECEIPT_CONTEXT: &[u8] = b"alp blob receipt v2";
/// Bytes of an encoded signed receipt.
pub const RECEIPT_LEN: usize = BODY_LEN + 64;
const BODY_LEN: usize = 176;

/// What the sender attests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Receipt {
    /// The blob's hash.
    pub hash: [u8; 32],
    /// The blob's size.
    pub size: u64,
    /// First byte of the part carried.
    pub start: u64,
    /// One past its last byte.
    pub end: u64,
    /// Who sent it (and signs).
    pub sender: NodeId,
    /// Who received it.
    pub receiver: NodeId,
    /// The transfer.
    pub transfer_id: TransferId,
    /// The connection's channel binding.
    pub binding: [u8; 32],
    /// When, in Unix seconds.
    pub time: u64,
}

/// A receipt with its signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignedReceipt {
    /// The attested facts.
    pub receipt: Receipt,
    /// The sender's signature.
    pub signature: [u8; 64],
}

/// A receipt is malformed or its signature does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReceiptError {
    /// Wrong length or an invalid node id.
    #[error("malformed receipt: {0}")]
    Malformed(&'static str),
    /// The signature is not the sender's over these bytes.
    #[error("the receipt's signature does not verify against the sender's node id")]
    BadSignature,
}

impl Receipt {
    fn body(&self) -> [u8; BODY_LEN] {
        let mut out = [0u8; BODY_LEN];
        let parts: [&[u8]; 9] = [
            &self.hash,
            &self.size.to_be_bytes(),
            &self.start.to_be_bytes(),
            &self.end.to_be_bytes(),
            self.sender.as_bytes(),
            self.receiver.as_bytes(),
            &self.transfer_id.0,
            &self.binding,
            &self.time.to_be_bytes(),
        ];
        let mut at = 0;
        for p in parts {
            out[at..at + p.len()].copy_from_slice(p);
            at += p.len();
        }
        out
    }

    /// The exact bytes the sender signs.
    pub fn signed_message(&self) -> Vec<u8> {
        [RECEIPT_CONTEXT, &self.body()].concat()
    }

    /// Signs as the sender; `key` must be the sender's.
    pub fn sign(self, key: &SigningKey) -> SignedReceipt {
        SignedReceipt { receipt: self, signature: key.sign(&self.signed_message()).to_bytes() }
    }
}

impl SignedReceipt {
    /// The fixed-layout encoding ([`RECEIPT_LEN`] bytes).
    pub fn encode(&self) -> [u8; RECEIPT_LEN] {
        let mut out = [0u8; RECEIPT_LEN];
        out[..BODY_LEN].copy_from_slice(&self.receipt.body());
        out[BODY_LEN..].copy_from_slice(&self.signature);
        out
    }

    /// Decodes exactly [`RECEIPT_LEN`] bytes (the signature is not checked
    /// here; call [`Self::verify`]).
    pub fn decode(bytes: &[u8]) -> Result<Self, ReceiptError> {
        if bytes.len() != RECEIPT_LEN {
            return Err(ReceiptError::Malformed("wrong length"));
        }
        let mut input = bytes;
        let m = ReceiptError::Malformed;
        let hash = take::<32>(&mut input).map_err(m)?;
        let size = u64::from_be_bytes(take::<8>(&mut input).map_err(m)?);
        let start = u64::from_be_bytes(take::<8>(&mut input).map_err(m)?);
        let end = u64::from_be_bytes(take::<8>(&mut input).map_err(m)?);
        if start > end || end > size {
            return Err(m("range outside the blob"));
        }
        let sender = NodeId::from_bytes(take::<32>(&mut input).map_err(m)?).map_err(|_| m("sender id"))?;
        let receiver = NodeId::from_bytes(take::<32>(&mut input).map_err(m)?).map_err(|_| m("receiver id"))?;
        let transfer_id = TransferId(take::<16>(&mut input).map_err(m)?);
        let binding = take::<32>(&mut input).map_err(m)?;
        let time = u64::from_be_bytes(take::<8>(&mut input).map_err(m)?);
        let signature = take::<64>(&mut input).map_err(m)?;
        let receipt = Receipt { hash, size, start, end, sender, receiver, transfer_id, binding, time };
        Ok(Self { receipt, signature })
    }

    /// Checks the signature against the sender's node id.
    pub fn verify(&self) -> Result<(), ReceiptError> {
        let sig = Signature::from_bytes(&self.signature);
        self.receipt
            .sender
            .verifying_key()
            .verify(&self.receipt.signed_message(), &sig)
            .map_err(|_| ReceiptError::BadSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(b: u8) -> SigningKey {
        SigningKey::from_bytes(&[b; 32])
    }

    fn receipt() -> Receipt {
        Receipt {
            hash: [0xaa; 32],
            size: 1 << 30,
            start: 1 << 20,
            end: 1 << 30,
            sender: key(1).verifying_key().into(),
            receiver: key(2).verifying_key().into(),
            transfer_id: TransferId([3; 16]),
            binding: [4; 32],
            time: 1_795_000_000,
        }
    }

    #[test]
    fn layout_snapshot() {
        let body: String = receipt().body().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(&body[..64], "aa".repeat(32));
        assert_eq!(&body[64..80], "0000000040000000", "size, big-endian");
        assert_eq!(&body[80..112], "00000000001000000000000040000000", "then the range");
        assert_eq!(&body[240..272], "03".repeat(16), "transfer id after hash, size, range and both ids");
        assert_eq!(&body[272..336], "04".repeat(32), "then the binding");
        assert_eq!(&body[336..], format!("{:016x}", 1_795_000_000u64), "time last");
        assert_eq!(receipt().signed_message().len(), RECEIPT_CONTEXT.len() + 176);
    }

    #[test]
    fn sign_encode_decode_verify() {
        let signed = receipt().sign(&key(1));
        let bytes = signed.encode();
        assert_eq!(bytes.len(), RECEIPT_LEN);
        let back = SignedReceipt::decode(&bytes).unwrap();
        assert_eq!(back, signed);
        back.verify().unwrap();
    }

    #[test]
    fn a_receipt_signed_by_anyone_but_the_sender_fails() {
        let forged = receipt().sign(&key(2));
        assert_eq!(forged.verify(), Err(ReceiptError::BadSignature));
    }

    #[test]
    fn any_changed_byte_breaks_the_signature() {
        let bytes = receipt().sign(&key(1)).encode();
        for i in 0..RECEIPT_LEN {
            let mut bad = bytes;
            bad[i] ^= 0x01;
            let ok = SignedReceipt::decode(&bad).map(|r| r.verify().is_ok()).unwrap_or(false);
            assert!(!ok, "byte {i} changed and the receipt still verified");
        }
        assert!(SignedReceipt::decode(&bytes[..RECEIPT_LEN - 1]).is_err());
    }

    proptest! {
        #[test]
        fn round_trips(hash in any::<[u8; 32]>(), size in any::<u64>(), cut in any::<(u64, u64)>(), id in any::<[u8; 16]>(), binding in any::<[u8; 32]>(), time in any::<u64>()) {
            let (a, b) = (cut.0 % size.saturating_add(1), cut.1 % size.saturating_add(1));
            let (start, end) = (a.min(b), a.max(b));
            let r = Receipt { hash, size, start, end, transfer_id: TransferId(id), binding, time, ..receipt() };
            let signed = r.sign(&key(1));
            let back = SignedReceipt::decode(&signed.encode()).unwrap();
            prop_assert_eq!(back, signed);
            prop_assert!(back.verify().is_ok());
        }

        #[test]
        fn decoding_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = SignedReceipt::decode(&bytes);
        }
    }
}
