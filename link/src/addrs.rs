//! Which addresses a node announces, and turning peer addresses into
//! socket addresses.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use alp_profiles::peers::PeerAddr;

/// The addresses peers can use to reach a node bound to `bound`: the bound
/// address itself, or, for an unspecified IP, every interface address of
/// that family (non-loopback first), at most [`alp_protocol::MAX_ADDRS`].
pub fn advertised_addrs(bound: SocketAddr) -> Vec<SocketAddr> {
    if !bound.ip().is_unspecified() {
        return vec![bound];
    }
    let mut ips: Vec<IpAddr> = if_addrs::get_if_addrs()
        .unwrap_or_default()
        .into_iter()
        .map(|i| i.ip())
        .filter(|ip| ip.is_ipv4() == bound.is_ipv4())
        .filter(|ip| !matches!(ip, IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80))
        .collect();
    if ips.is_empty() {
        ips.push(if bound.is_ipv4() {
            IpAddr::from([127, 0, 0, 1])
        } else {
            IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1])
        });
    }
    ips.sort_by_key(|ip| (ip.is_loopback(), *ip));
    ips.dedup();
    ips.into_iter().take(alp_protocol::MAX_ADDRS).map(|ip| SocketAddr::new(ip, bound.port())).collect()
}

/// Whether an address someone else gave (a rendezvous) is worth a dial:
/// not loopback, unspecified, multicast, broadcast or a virtual (relayed)
/// address, and with a port.
pub fn dialable(at: &SocketAddr) -> bool {
    let ip = at.ip().to_canonical();
    at.port() != 0
        && !ip.is_loopback()
        && !ip.is_unspecified()
        && !ip.is_multicast()
        && !crate::relay::is_virtual(at)
        && !matches!(ip, IpAddr::V4(v4) if v4.is_broadcast())
}

/// Resolves peer addresses (IPs or DNS names) in order, skipping names that
/// do not resolve within `timeout`.
pub async fn resolve(addrs: &[PeerAddr], timeout: Duration) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    for a in addrs {
        let text = a.to_string();
        if let Ok(sa) = text.parse::<SocketAddr>() {
            out.push(sa);
            continue;
        }
        match tokio::time::timeout(timeout, tokio::net::lookup_host(text.as_str())).await {
            Ok(Ok(found)) => out.extend(found),
            Ok(Err(e)) => tracing::warn!(addr = %text, "cannot resolve: {e}"),
            Err(_) => tracing::warn!(addr = %text, "resolving timed out"),
        }
    }
    out.dedup();
    out
}
