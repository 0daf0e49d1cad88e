//! Limits and timeouts of the link, from the profile's `[link]` config.

use std::time::Duration;

use alp_profiles::config::LinkConfig;

/// Every limit the link enforces.
#[derive(Debug, Clone)]
pub struct LinkSettings {
    /// Connections served at once.
    pub max_connections: u32,
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
        Self {
            max_connections: c.max_connections.max(1),
            handshake_timeout: c.handshake_timeout.0,
            idle_timeout: c.idle_timeout.0,
            request_timeout: c.request_timeout.0,
            max_frame: usize::try_from(c.max_frame).unwrap_or(usize::MAX),
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
