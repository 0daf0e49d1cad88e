//! The ALP wire format: identities, verbs, frames and envelopes, the
//! handshake, blob records and receipts, as pure codecs and state machines.
//!
//! This crate does no I/O: no sockets, files, threads, global state or
//! clock. Every input is handed in by the caller (time included, and keys
//! made ahead of time through a [`handshake::KeySource`]) and every output
//! is returned, so each type can be driven in memory by tests.
//! `alp-link` wires it to QUIC streams; CI checks that it stays pure
//! (`scripts/check-arch.sh`).
//!
//! Key types:
//! - [`NodeId`]: a node's ed25519 public key, with a checksummed text form
//!   (`alp1…`, bech32m) that catches typos.
//! - [`Verb`]: the requests a peer may be allowed to make (one table row
//!   each, with its body limit).
//! - [`handshake`]: the Noise XX / XXpsk3 link handshake as explicit states.
//! - [`frame`] and [`envelope`]: length-prefixed CBOR requests and responses.
//! - [`record`] and [`receipt`]: a blob transfer's AEAD records and the
//!   sender's signed receipt.
//! - [`ticket::Ticket`]: pairing invitations.
//! - [`ratelimit::TokenBucket`]: rate limits with time passed in.
//!
//! ```
//! use alp_protocol::NodeId;
//! let id: NodeId = "alp1af9xcclzn3fq40h42pa3xtk9lx25wa4wh6l8hyjzrm4xj9zx6gkq925ews"
//!     .parse()
//!     .unwrap_or_else(|e| panic!("{e}"));
//! assert_eq!(id.to_string().len(), alp_protocol::NODE_ID_TEXT_LEN);
//! // One wrong character is caught by the checksum.
//! assert!("alp1af9xcclzn3fq40h42pa3xtk9lx25wa4wh6l8hyjzrm4xj9zx6gkq925ewz".parse::<NodeId>().is_err());
//! ```
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod addr;
pub mod addr_record;
pub mod blob_ticket;
pub mod envelope;
pub mod frame;
pub mod handshake;
mod node_id;
pub mod ratelimit;
pub mod receipt;
pub mod record;
pub mod ticket;
#[cfg(test)]
mod vectors;
mod verb;
mod x25519;

pub use addr::MAX_ADDRS;

pub use node_id::{NODE_ID_TEXT_LEN, NodeId, NodeIdError};
pub use verb::{UnknownVerb, Verb};

/// The link protocol name, also the QUIC ALPN.
pub const ALPN: &[u8] = b"alp/1";
