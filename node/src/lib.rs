//! The alp node: the QUIC endpoint, the authenticated link and the request
//! server, wired to the sans-I/O state machines of `alp-protocol`.
//!
//! This crate owns all network I/O. The `alp` binary (in `main.rs`) is a
//! thin CLI over it; tests and benchmarks drive the same API in-process.
//!
//! Key types: [`link::LinkEndpoint`] (one quinn endpoint that serves and
//! dials), [`link::Link`] (an authenticated connection to a peer),
//! [`link::server::ServerState`] and [`link::server::serve`].
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod agent;
pub mod dial;
pub mod link;

/// Protocol and software version, as reported by `link.ping` and `link.info`.
pub const VERSION: &str = concat!("alp/1 ", env!("CARGO_PKG_VERSION"));
