//! The ALP link: QUIC (quinn) carrying a Noise handshake that proves each
//! side's identity, bound to that QUIC connection; then one request per
//! bidirectional stream, answered by the handler registered for its verb.
//!
//! This crate is a node's network stack and nothing else: the endpoint
//! that serves and dials on one socket ([`LinkEndpoint`]), the handshake's
//! frames moved over streams (the states themselves are in
//! `alp-protocol`), the client side of a connection ([`Link`]), the server
//! and its [`Router`] of verb [`Handler`]s, the handlers of the link's own
//! verbs ([`verbs`]), and blob transfers over streams. It knows nothing of
//! agents: the `alp` binary registers the handlers that join the link to
//! agent work, the same way.
//!
//! ```ignore
//! let endpoint = LinkEndpoint::bind(addr, me, settings)?;
//! let router = Router::builder().accept(Verb::LinkPing, verbs::ping::Ping).build();
//! let server = Server::new(&endpoint, peers, tickets, router);
//! serve(endpoint, server, shutdown).await;
//! ```
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod activity;
mod addrs;
mod client;
pub mod dial;
mod endpoint;
mod keypool;
mod probe;
pub mod relay;
mod router;
mod server;
mod settings;
pub mod tls;
mod transfer;
pub mod verbs;
pub mod wire;

pub use activity::{Tracked, TransferView, Transfers};
pub use addrs::{
    DUAL_STACK, advertised_addrs, canonical, dialable, interleave, is_private, is_v6_link_local, reachable_hint,
    resolve,
};
pub use client::{Fetched, FromMany, Held, Link, Pushed, RequestError, Source, SourceReport, Via, get_blob_from_many};
pub use endpoint::{DialError, LinkEndpoint, Me};
pub use keypool::KeyPool;
pub use router::{Call, Handler, Router, RouterBuilder, Session};
pub use server::{Server, serve};
pub use settings::LinkSettings;
#[doc(hidden)]
pub use transfer::Faults;
pub use transfer::{Progress, TransferError, silent};
pub use wire::close_code;

/// Protocol and software version, as reported by `link.ping` and `link.info`.
pub const VERSION: &str = concat!("alp/1 ", env!("CARGO_PKG_VERSION"));
