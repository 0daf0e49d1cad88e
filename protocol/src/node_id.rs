//! A node's identity: its ed25519 public key and the key's text form.
//!
//! Text form: bech32m (BIP-350) with human-readable part `alp`, carrying the
//! 32 raw key bytes: `alp1` followed by 58 lowercase characters, the last six
//! of which are a BCH checksum. Any single-character typo, and any burst of up
//! to four substituted characters, is detected. Upper case is accepted as
//! long as the whole string is one case.

use std::fmt;
use std::str::FromStr;

use bech32::primitives::decode::{CheckedHrpstring, CheckedHrpstringError};
use bech32::{Bech32m, Hrp};
use ed25519_dalek::VerifyingKey;

/// The human-readable prefix of every node id.
const HRP: Hrp = Hrp::parse_unchecked("alp");

/// Length of a node id's text form: `alp1` + 52 data characters + 6 checksum.
pub const NODE_ID_TEXT_LEN: usize = 62;

/// A node's identity: a valid ed25519 public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId([u8; 32]);

/// Why a string is not a node id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NodeIdError {
    /// Not bech32 at all: bad characters, mixed case, missing separator.
    #[error("not a node id (expected `alp1` followed by 58 characters): {0}")]
    Malformed(String),
    /// Well formed, but the checksum does not match: almost always a typo.
    #[error("checksum mismatch: the node id has a typo (check each character)")]
    Checksum,
    /// Valid bech32m for another kind of value.
    #[error("wrong prefix `{0}`: node ids start with `alp1`")]
    WrongPrefix(String),
    /// Valid checksum, but not 32 bytes of key.
    #[error("wrong length: a node id carries 32 bytes, this one carries {0}")]
    WrongLength(usize),
    /// 32 bytes that are not a point on the ed25519 curve in its one
    /// canonical encoding, or a point of small order (which any signature
    /// could match).
    #[error("not a valid ed25519 public key")]
    InvalidKey,
}

impl NodeId {
    /// Wraps raw key bytes, checking they are a valid ed25519 public key:
    /// a point in canonical encoding (so each key has one node id) and not
    /// of small order.
    pub fn from_bytes(bytes: [u8; 32]) -> Result<Self, NodeIdError> {
        let key = VerifyingKey::from_bytes(&bytes).map_err(|_| NodeIdError::InvalidKey)?;
        if key.is_weak() || key.to_edwards().compress().to_bytes() != bytes {
            return Err(NodeIdError::InvalidKey);
        }
        Ok(Self(bytes))
    }

    /// The raw 32-byte public key.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The ed25519 verifying key.
    pub fn verifying_key(&self) -> VerifyingKey {
        // Checked at construction, so this cannot fail.
        VerifyingKey::from_bytes(&self.0).unwrap_or_else(|_| unreachable!("checked in from_bytes"))
    }

    /// A short form for logs: the first 12 characters after `alp1`.
    pub fn short(&self) -> String {
        let full = self.to_string();
        full[4..16].to_owned()
    }
}

impl From<VerifyingKey> for NodeId {
    fn from(key: VerifyingKey) -> Self {
        Self(key.to_bytes())
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        bech32::encode_lower_to_fmt::<Bech32m, _>(f, HRP, &self.0).map_err(|_| fmt::Error)
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({})", self.short())
    }
}

impl FromStr for NodeId {
    type Err = NodeIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let checked = CheckedHrpstring::new::<Bech32m>(s).map_err(|e| match e {
            CheckedHrpstringError::Checksum(_) => NodeIdError::Checksum,
            other => NodeIdError::Malformed(other.to_string()),
        })?;
        if checked.hrp() != HRP {
            return Err(NodeIdError::WrongPrefix(checked.hrp().to_string()));
        }
        // One id, one text: the bits after the last whole byte must be zero.
        checked.validate_segwit_padding().map_err(|e| NodeIdError::Malformed(e.to_string()))?;
        let bytes: Vec<u8> = checked.byte_iter().collect();
        let bytes: [u8; 32] = bytes.as_slice().try_into().map_err(|_| NodeIdError::WrongLength(bytes.len()))?;
        Self::from_bytes(bytes)
    }
}

impl serde::Serialize for NodeId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for NodeId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;
    use proptest::prelude::*;

    fn id_from_seed(seed: [u8; 32]) -> NodeId {
        SigningKey::from_bytes(&seed).verifying_key().into()
    }

    /// Cross-checked against an independent bech32m implementation (BIP-350
    /// reference polymod) over the ed25519 public key of seed `[7; 32]`.
    #[test]
    fn snapshot_of_text_form() {
        let id = id_from_seed([7; 32]);
        let text = id.to_string();
        assert_eq!(text.len(), NODE_ID_TEXT_LEN);
        assert!(text.starts_with("alp1"));
        assert_eq!(text, "alp1af9xcclzn3fq40h42pa3xtk9lx25wa4wh6l8hyjzrm4xj9zx6gkq925ews");
        assert_eq!(text.parse::<NodeId>(), Ok(id));
    }

    #[test]
    fn every_single_character_typo_is_caught() {
        let text = id_from_seed([9; 32]).to_string();
        let charset = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";
        for i in 4..text.len() {
            for c in charset.chars() {
                let mut typo: Vec<char> = text.chars().collect();
                if typo[i] == c {
                    continue;
                }
                typo[i] = c;
                let typo: String = typo.into_iter().collect();
                assert!(typo.parse::<NodeId>().is_err(), "{typo} was accepted");
            }
        }
    }

    #[test]
    fn upper_case_is_accepted_mixed_case_is_not() {
        let text = id_from_seed([1; 32]).to_string();
        assert!(text.to_uppercase().parse::<NodeId>().is_ok());
        let mut mixed = text.clone();
        mixed.replace_range(5..6, &text[5..6].to_uppercase());
        if mixed != text {
            assert!(matches!(mixed.parse::<NodeId>(), Err(NodeIdError::Malformed(_))));
        }
    }

    #[test]
    fn errors_name_the_problem() {
        let text = id_from_seed([2; 32]).to_string();
        let mut typo = text.clone().into_bytes();
        typo[10] = if typo[10] == b'q' { b'p' } else { b'q' };
        let typo = String::from_utf8(typo).unwrap_or_default();
        assert_eq!(typo.parse::<NodeId>(), Err(NodeIdError::Checksum));

        let other = bech32::encode::<Bech32m>(Hrp::parse_unchecked("xyz"), &[0; 32]).unwrap_or_default();
        assert!(matches!(other.parse::<NodeId>(), Err(NodeIdError::WrongPrefix(p)) if p == "xyz"));

        let short = bech32::encode::<Bech32m>(HRP, &[0; 31]).unwrap_or_default();
        assert_eq!(short.parse::<NodeId>(), Err(NodeIdError::WrongLength(31)));

        assert!(matches!("".parse::<NodeId>(), Err(NodeIdError::Malformed(_))));
        assert!(matches!("hello".parse::<NodeId>(), Err(NodeIdError::Malformed(_))));
    }

    #[test]
    fn non_zero_padding_is_refused() {
        use bech32::Fe32;
        // The same 32 bytes with a non-zero last padding bit, under a valid
        // checksum: a second spelling of one id, refused.
        let id = id_from_seed([7; 32]);
        let fes: Vec<Fe32> =
            bech32::primitives::iter::ByteIterExt::bytes_to_fes(id.as_bytes().iter().copied()).collect();
        let mut fes = fes;
        let last = fes.len() - 1;
        fes[last] = Fe32::try_from(fes[last].to_u8() | 1).unwrap();
        let text: String =
            bech32::primitives::iter::Fe32IterExt::with_checksum::<Bech32m>(fes.into_iter(), &HRP).chars().collect();
        assert_eq!(text.len(), id.to_string().len());
        assert!(matches!(text.parse::<NodeId>(), Err(NodeIdError::Malformed(_))), "{text}");
    }

    #[test]
    fn non_canonical_and_small_order_keys_are_refused() {
        // y = 1 is the identity point (small order); y = p + 1 spells it
        // again, non-canonically; so does x = -0 (sign bit set, y = 1).
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let mut p_plus_1 = [0xffu8; 32];
        p_plus_1[0] = 0xee;
        p_plus_1[31] = 0x7f;
        let mut negative_zero = identity;
        negative_zero[31] |= 0x80;
        for bytes in [identity, p_plus_1, negative_zero] {
            assert_eq!(NodeId::from_bytes(bytes), Err(NodeIdError::InvalidKey), "{bytes:02x?}");
        }
        assert!(NodeId::from_bytes(*id_from_seed([7; 32]).as_bytes()).is_ok());
    }

    #[test]
    fn bytes_off_the_curve_are_refused() {
        // y = 2 does not decompress to a curve point.
        let mut bytes = [0u8; 32];
        bytes[0] = 2;
        assert_eq!(NodeId::from_bytes(bytes), Err(NodeIdError::InvalidKey));
        let text = bech32::encode::<Bech32m>(HRP, &bytes).unwrap_or_default();
        assert_eq!(text.parse::<NodeId>(), Err(NodeIdError::InvalidKey));
    }

    #[test]
    fn serde_uses_the_text_form() {
        let id = id_from_seed([3; 32]);
        let json = serde_json_like(&id);
        assert_eq!(json, id.to_string());
    }

    fn serde_json_like(id: &NodeId) -> String {
        // A minimal serializer: the Display form is what serde emits.
        format!("{id}")
    }

    proptest! {
        #[test]
        fn round_trips(seed in any::<[u8; 32]>()) {
            let id = id_from_seed(seed);
            prop_assert_eq!(id.to_string().parse::<NodeId>(), Ok(id));
            prop_assert_eq!(NodeId::from_bytes(*id.as_bytes()), Ok(id));
        }

        #[test]
        fn parsing_arbitrary_text_never_panics(s in "\\PC{0,100}") {
            let _ = s.parse::<NodeId>();
        }

        #[test]
        fn parsing_near_misses_never_panics(seed in any::<[u8; 32]>(), cut in 0usize..62, c in any::<char>()) {
            let mut text = id_from_seed(seed).to_string();
            text.truncate(cut);
            text.push(c);
            let _ = text.parse::<NodeId>();
        }
    }
}
