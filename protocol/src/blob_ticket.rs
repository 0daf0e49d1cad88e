//! Blob tickets: what `alp send` prints and `alp receive` redeems.
//!
//! Text form: bech32m with human-readable part `alpblob`, over
//!
//! ```text
//! version u8 (1) | sender node id (32) | secret (32) | hash (32)
//!   | size u64 | kind u8 (0 file, 1 folder) | name_len u8 | name (UTF-8)
//!   | addresses (crate::addr)
//! ```
//!
//! The secret is sent with `blob.redeem`; the sender keeps only a digest
//! of it. It grants the blob it names (and, for a folder, the files its
//! manifest lists), and nothing else, to a trusted peer that presents it.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

use bech32::primitives::decode::{CheckedHrpstring, CheckedHrpstringError};
use bech32::{Bech32m, Hrp};

use crate::{NodeId, addr};

const HRP: Hrp = Hrp::parse_unchecked("alpblob");
const VERSION: u8 = 1;
/// Longest name a ticket carries, in bytes.
pub const MAX_NAME: usize = 255;

/// A blob ticket.
#[derive(Clone, PartialEq, Eq)]
pub struct BlobTicket {
    /// The node that serves the blob.
    pub node_id: NodeId,
    /// What `blob.redeem` presents.
    pub secret: [u8; 32],
    /// The blob (for a folder, its manifest).
    pub hash: [u8; 32],
    /// Its size.
    pub size: u64,
    /// Whether it is a folder's manifest.
    pub folder: bool,
    /// The file or folder name it was sent under (may be empty).
    pub name: String,
    /// Where the sender listens.
    pub addrs: Vec<SocketAddr>,
}

impl fmt::Debug for BlobTicket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlobTicket")
            .field("node_id", &self.node_id)
            .field("name", &self.name)
            .field("size", &self.size)
            .field("folder", &self.folder)
            .field("addrs", &self.addrs)
            .finish_non_exhaustive()
    }
}

/// Why a string is not a blob ticket.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BlobTicketError {
    /// Not bech32m text.
    #[error("not a blob ticket (expected text starting with `alpblob1`): {0}")]
    Malformed(String),
    /// The checksum does not match.
    #[error("the ticket has a typo or was cut short when copied (checksum mismatch)")]
    Checksum,
    /// Some other bech32m value.
    #[error("not a blob ticket: prefix `{0}` (expected `alpblob`)")]
    WrongPrefix(String),
    /// A newer or unknown layout.
    #[error("unsupported blob ticket version {0}: upgrade alp")]
    Version(u8),
    /// The payload does not parse.
    #[error("corrupt blob ticket: {0}")]
    Corrupt(&'static str),
}

impl BlobTicket {
    /// The payload bytes (before bech32m).
    pub fn to_bytes(&self) -> Vec<u8> {
        let name = truncate(&self.name, MAX_NAME);
        let mut data = vec![VERSION];
        data.extend_from_slice(self.node_id.as_bytes());
        data.extend_from_slice(&self.secret);
        data.extend_from_slice(&self.hash);
        data.extend_from_slice(&self.size.to_be_bytes());
        data.push(u8::from(self.folder));
        data.push(name.len() as u8);
        data.extend_from_slice(name.as_bytes());
        addr::encode(&self.addrs, &mut data);
        data
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a char.
fn truncate(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

impl fmt::Display for BlobTicket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        bech32::encode_lower_to_fmt::<Bech32m, _>(f, HRP, &self.to_bytes()).map_err(|_| fmt::Error)
    }
}

impl FromStr for BlobTicket {
    type Err = BlobTicketError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let checked = CheckedHrpstring::new::<Bech32m>(s.trim()).map_err(|e| match e {
            CheckedHrpstringError::Checksum(_) => BlobTicketError::Checksum,
            // It has the right start: what follows was damaged or cut.
            _ if s.trim().to_ascii_lowercase().starts_with("alpblob1") => BlobTicketError::Checksum,
            other => BlobTicketError::Malformed(other.to_string()),
        })?;
        if checked.hrp() != HRP {
            return Err(BlobTicketError::WrongPrefix(checked.hrp().to_string()));
        }
        checked.validate_segwit_padding().map_err(|e| BlobTicketError::Malformed(e.to_string()))?;
        let data: Vec<u8> = checked.byte_iter().collect();
        let mut input = &data[..];
        let corrupt = BlobTicketError::Corrupt;
        let [version] = addr::take::<1>(&mut input).map_err(corrupt)?;
        if version != VERSION {
            return Err(BlobTicketError::Version(version));
        }
        let node_id = NodeId::from_bytes(addr::take::<32>(&mut input).map_err(corrupt)?)
            .map_err(|_| corrupt("invalid node id"))?;
        let secret = addr::take::<32>(&mut input).map_err(corrupt)?;
        let hash = addr::take::<32>(&mut input).map_err(corrupt)?;
        let size = u64::from_be_bytes(addr::take::<8>(&mut input).map_err(corrupt)?);
        let folder = match addr::take::<1>(&mut input).map_err(corrupt)? {
            [0] => false,
            [1] => true,
            _ => return Err(corrupt("unknown kind")),
        };
        let [len] = addr::take::<1>(&mut input).map_err(corrupt)?;
        let (name, rest) = input.split_at_checked(len as usize).ok_or(corrupt("name cut short"))?;
        let name = std::str::from_utf8(name).map_err(|_| corrupt("name is not UTF-8"))?.to_owned();
        input = rest;
        let addrs = addr::decode(&mut input).map_err(corrupt)?;
        if !input.is_empty() {
            return Err(corrupt("trailing bytes"));
        }
        Ok(Self { node_id, secret, hash, size, folder, name, addrs })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;
    use proptest::prelude::*;

    fn ticket(name: &str, addrs: Vec<SocketAddr>) -> BlobTicket {
        let node_id = SigningKey::from_bytes(&[7; 32]).verifying_key().into();
        BlobTicket { node_id, secret: [5; 32], hash: [9; 32], size: 1234, folder: false, name: name.into(), addrs }
    }

    #[test]
    fn snapshot_and_layout() {
        let t = ticket("notes.md", vec!["127.0.0.1:7117".parse().unwrap()]);
        let bytes = t.to_bytes();
        assert_eq!(bytes[0], 1);
        assert_eq!(&bytes[97..105], &1234u64.to_be_bytes());
        assert_eq!(&bytes[105..107], &[0, 8]);
        assert_eq!(&bytes[107..115], b"notes.md");
        let text = t.to_string();
        assert!(text.starts_with("alpblob1"));
        assert_eq!(text.parse::<BlobTicket>(), Ok(t));
        assert!(!format!("{:?}", ticket("x", vec![])).contains("secret"));
    }

    #[test]
    fn long_names_are_cut_on_a_character_and_the_text_stays_valid() {
        let long = "é".repeat(200);
        let t = ticket(&long, vec!["[2001:db8::1]:7117".parse().unwrap(); 8]);
        let back: BlobTicket = t.to_string().parse().unwrap();
        assert_eq!(back.name, "é".repeat(127));
    }

    #[test]
    fn typos_cuts_and_other_tickets_are_caught() {
        let text = ticket("a", vec![]).to_string();
        assert!(text[..text.len() - 3].parse::<BlobTicket>().is_err());
        let mut typo = text.clone().into_bytes();
        typo[30] = if typo[30] == b'q' { b'p' } else { b'q' };
        assert_eq!(String::from_utf8(typo).unwrap().parse::<BlobTicket>(), Err(BlobTicketError::Checksum));
        let pairing = crate::ticket::Ticket {
            node_id: ticket("a", vec![]).node_id,
            secret: crate::ticket::TicketSecret([1; 32]),
            addrs: vec![],
        };
        assert!(matches!(pairing.to_string().parse::<BlobTicket>(), Err(BlobTicketError::WrongPrefix(_))));
    }

    proptest! {
        #[test]
        fn round_trips(name in "\\PC{0,40}", size in any::<u64>(), folder in any::<bool>(), secret in any::<[u8; 32]>(),
                       addrs in proptest::collection::vec(any::<std::net::SocketAddrV4>(), 0..=4)) {
            let mut t = ticket(&name, addrs.into_iter().map(SocketAddr::V4).collect());
            t.name = truncate(&name, MAX_NAME).to_owned();
            (t.size, t.folder, t.secret) = (size, folder, secret);
            prop_assert_eq!(t.to_string().parse::<BlobTicket>(), Ok(t));
        }

        #[test]
        fn parsing_never_panics(s in "\\PC{0,300}") {
            let _ = s.parse::<BlobTicket>();
        }
    }
}
