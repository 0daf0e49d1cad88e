//! Pairing tickets: what `alp invite` prints and `alp pair` redeems.
//!
//! Text form: bech32m with human-readable part `alpticket`, over
//!
//! ```text
//! version u8 (1) | inviter node id (32) | secret (32) | addresses (crate::addr)
//! ```
//!
//! The inviter keeps only values derived one way from the secret: the
//! public [`TicketId`] sent in frame 1, and the pre-shared key mixed into
//! the XXpsk3 handshake.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

use bech32::primitives::decode::{CheckedHrpstring, CheckedHrpstringError};
use bech32::{Bech32m, Hrp};

use crate::handshake::TicketId;
use crate::{NodeId, addr};

const HRP: Hrp = Hrp::parse_unchecked("alpticket");
const VERSION: u8 = 1;
/// `blake3::derive_key` context of a ticket's public id.
pub const TICKET_ID_CONTEXT: &str = "alp pairing ticket id v1";
/// `blake3::derive_key` context of a ticket's pre-shared key.
pub const TICKET_PSK_CONTEXT: &str = "alp pairing psk v1";

/// A ticket's 256-bit secret.
#[derive(Clone, PartialEq, Eq)]
pub struct TicketSecret(pub [u8; 32]);

impl TicketSecret {
    /// The public id the pairing node sends in clear.
    pub fn id(&self) -> TicketId {
        let full = blake3::derive_key(TICKET_ID_CONTEXT, &self.0);
        let mut id = [0u8; 16];
        id.copy_from_slice(&full[..16]);
        TicketId(id)
    }

    /// The pre-shared key for the XXpsk3 handshake.
    pub fn psk(&self) -> [u8; 32] {
        blake3::derive_key(TICKET_PSK_CONTEXT, &self.0)
    }
}

impl fmt::Debug for TicketSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TicketSecret(..)")
    }
}

/// A pairing invitation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    /// The inviting node.
    pub node_id: NodeId,
    /// The secret that proves the holder was invited.
    pub secret: TicketSecret,
    /// Where the inviter listens.
    pub addrs: Vec<SocketAddr>,
}

/// Why a string is not a ticket.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TicketError {
    /// Not bech32m text.
    #[error("not a pairing ticket (expected text starting with `alpticket1`): {0}")]
    Malformed(String),
    /// The checksum does not match.
    #[error("the ticket has a typo or was cut short when copied (checksum mismatch)")]
    Checksum,
    /// Some other bech32m value.
    #[error("not a pairing ticket: prefix `{0}` (expected `alpticket`)")]
    WrongPrefix(String),
    /// A newer or unknown layout.
    #[error("unsupported ticket version {0}: upgrade alp")]
    Version(u8),
    /// The payload does not parse.
    #[error("corrupt ticket: {0}")]
    Corrupt(&'static str),
}

impl fmt::Display for Ticket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut data = vec![VERSION];
        data.extend_from_slice(self.node_id.as_bytes());
        data.extend_from_slice(&self.secret.0);
        addr::encode(&self.addrs, &mut data);
        bech32::encode_lower_to_fmt::<Bech32m, _>(f, HRP, &data).map_err(|_| fmt::Error)
    }
}

impl FromStr for Ticket {
    type Err = TicketError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let checked = CheckedHrpstring::new::<Bech32m>(s.trim()).map_err(|e| match e {
            CheckedHrpstringError::Checksum(_) => TicketError::Checksum,
            // It has the right start: what follows was damaged or cut.
            _ if s.trim().to_ascii_lowercase().starts_with("alpticket1") => TicketError::Checksum,
            other => TicketError::Malformed(other.to_string()),
        })?;
        if checked.hrp() != HRP {
            return Err(TicketError::WrongPrefix(checked.hrp().to_string()));
        }
        checked.validate_segwit_padding().map_err(|e| TicketError::Malformed(e.to_string()))?;
        let data: Vec<u8> = checked.byte_iter().collect();
        let mut input = &data[..];
        let corrupt = TicketError::Corrupt;
        let [version] = addr::take::<1>(&mut input).map_err(corrupt)?;
        if version != VERSION {
            return Err(TicketError::Version(version));
        }
        let node_id = NodeId::from_bytes(addr::take::<32>(&mut input).map_err(corrupt)?)
            .map_err(|_| corrupt("invalid node id"))?;
        let secret = TicketSecret(addr::take::<32>(&mut input).map_err(corrupt)?);
        let addrs = addr::decode(&mut input).map_err(corrupt)?;
        if !input.is_empty() {
            return Err(corrupt("trailing bytes"));
        }
        Ok(Self { node_id, secret, addrs })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;
    use proptest::prelude::*;

    fn ticket(addrs: Vec<SocketAddr>) -> Ticket {
        let node_id = SigningKey::from_bytes(&[7; 32]).verifying_key().into();
        Ticket { node_id, secret: TicketSecret([5; 32]), addrs }
    }

    #[test]
    fn snapshot() {
        let t = ticket(vec!["127.0.0.1:7117".parse().unwrap()]);
        let text = t.to_string();
        assert!(text.starts_with("alpticket1"));
        assert_eq!(text.parse::<Ticket>(), Ok(t));
        // 73 bytes = 584 bits = 117 characters, plus prefix and checksum.
        assert_eq!(text.len(), "alpticket1".len() + 117 + 6);
    }

    #[test]
    fn derived_values_are_distinct_and_stable() {
        let s = TicketSecret([5; 32]);
        assert_ne!(s.id().0[..], s.psk()[..16]);
        assert_eq!(s.id(), TicketSecret([5; 32]).id());
        assert!(!format!("{s:?}").contains('5'));
    }

    #[test]
    fn typos_and_cuts_are_caught() {
        let text = ticket(vec![]).to_string();
        let cut = &text[..text.len() - 3];
        assert!(cut.parse::<Ticket>().is_err());
        let mut typo = text.clone().into_bytes();
        typo[30] = if typo[30] == b'q' { b'p' } else { b'q' };
        assert_eq!(String::from_utf8(typo).unwrap().parse::<Ticket>(), Err(TicketError::Checksum));
        let node_id: String = ticket(vec![]).node_id.to_string();
        assert!(matches!(node_id.parse::<Ticket>(), Err(TicketError::WrongPrefix(_))));
    }

    proptest! {
        #[test]
        fn round_trips(addrs in proptest::collection::vec(any::<std::net::SocketAddrV4>(), 0..=8), secret in any::<[u8; 32]>()) {
            let mut t = ticket(addrs.into_iter().map(SocketAddr::V4).collect());
            t.secret = TicketSecret(secret);
            prop_assert_eq!(t.to_string().parse::<Ticket>(), Ok(t));
        }

        #[test]
        fn parsing_never_panics(s in "\\PC{0,300}") {
            let _ = s.parse::<Ticket>();
        }
    }
}
