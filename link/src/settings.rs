//! Limits and timeouts of the link, from the profile's `[link]` config.

use std::time::Duration;

use alp_profiles::config::LinkConfig;

/// The most permits a semaphore holds.
const MAX_PERMITS: usize = tokio::sync::Semaphore::MAX_PERMITS;

/// Every limit the link enforces.
#[derive(Debug, Clone)]
pub struct LinkSettings {
    /// Authenticated connections served at once.
    pub max_connections: u32,
    /// Authenticated connections of one peer at once.
    pub connections_per_peer: u32,
    /// Connections not authenticated yet, at once.
    pub max_pending: u32,
    /// Connections not authenticated yet from one address (IPv6: one /64).
    pub pending_per_address: u32,
    /// From a new connection to the first handshake frame.
    pub hello_timeout: Duration,
    /// Requests of one peer running at once.
    pub requests_per_peer: u32,
    /// Request bytes in flight, node-wide.
    pub inflight_bytes: usize,
    /// Request bytes in flight from one peer.
    pub peer_inflight_bytes: usize,
    /// From a new connection to a finished handshake.
    pub handshake_timeout: Duration,
    /// A silent connection is closed after this long.
    pub idle_timeout: Duration,
    /// For one request or response to arrive.
    pub request_timeout: Duration,
    /// Largest request or response frame.
    pub max_frame: usize,
    /// Concurrent request streams per connection.
    pub max_streams: u32,
    /// Sustained requests per second from one peer.
    pub requests_per_second: u32,
    /// Burst of requests from one peer.
    pub request_burst: u32,
    /// Failed pairing attempts per minute from one address.
    pub pair_failures_per_minute: u32,
    /// How long a stopping server waits for open requests.
    pub shutdown_grace: Duration,
}

impl From<&LinkConfig> for LinkSettings {
    fn from(c: &LinkConfig) -> Self {
        let max_frame = usize::try_from(c.max_frame).unwrap_or(usize::MAX);
        let peer_bytes = usize::try_from(c.peer_inflight_bytes).unwrap_or(usize::MAX).max(max_frame);
        Self {
            max_connections: c.max_connections.max(1),
            connections_per_peer: c.connections_per_peer.max(1),
            max_pending: c.max_pending.max(1),
            pending_per_address: c.pending_per_address.max(1),
            hello_timeout: c.hello_timeout.0,
            requests_per_peer: c.requests_per_peer.max(1),
            // A single frame always fits, so a request cannot wait forever.
            inflight_bytes: usize::try_from(c.inflight_bytes).unwrap_or(usize::MAX).max(peer_bytes).min(MAX_PERMITS),
            peer_inflight_bytes: peer_bytes.min(MAX_PERMITS),
            handshake_timeout: c.handshake_timeout.0,
            idle_timeout: c.idle_timeout.0,
            request_timeout: c.request_timeout.0,
            max_frame,
            max_streams: c.max_streams.max(1),
            requests_per_second: c.requests_per_second,
            request_burst: c.request_burst.max(1),
            pair_failures_per_minute: c.pair_failures_per_minute,
            shutdown_grace: c.shutdown_grace.0,
        }
    }
}

impl Default for LinkSettings {
    /// The built-in defaults of `[link]`.
    fn default() -> Self {
        let defaults = alp_profiles::config::load(&Default::default());
        match defaults {
            Ok(r) => Self::from(&r.config.link),
            Err(_) => unreachable!("built-in defaults always load"),
        }
    }
}
