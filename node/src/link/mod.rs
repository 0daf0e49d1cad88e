//! The ALP link: QUIC (quinn) carrying a Noise handshake that proves each
//! side's identity, bound to that QUIC connection; then one request per
//! bidirectional stream.

mod addrs;
pub mod ask;
pub mod blobs;
mod client;
mod endpoint;
mod keypool;
pub mod server;
mod settings;
pub mod tls;
mod transfer;
mod wire;

pub use addrs::{advertised_addrs, resolve};
pub use client::{Fetched, Held, Link, Pushed, RequestError};
pub use endpoint::{DialError, LinkEndpoint, Me};
pub use keypool::KeyPool;
pub use settings::LinkSettings;
#[doc(hidden)]
pub use transfer::Faults;
pub use transfer::{Progress, TransferError, silent};
pub use wire::close_code;
