//! Telling "nothing listens there" from "no answer yet".
//!
//! QUIC's socket is unconnected, so the ICMP port-unreachable a host sends
//! back for a closed UDP port never reaches quinn, and a dial to a machine
//! where `alp serve` is not running would wait out the whole handshake
//! timeout. A connected UDP socket does get that ICMP error (as
//! `ECONNREFUSED` on its next receive), so beside each dial a probe sends
//! a few empty datagrams to the same address from its own socket. An ALP
//! node drops them as packets too short to be QUIC; a closed port answers
//! with the refusal, and the dial fails at once. Where ICMP is filtered
//! the probe learns nothing and the timeout stays the only limit.
//!
//! Connecting the probe's socket also looks up the route from the node's
//! own address, so an address the host cannot send to at all fails at
//! once too.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

/// Delays before each empty datagram. The first waits a quarter second,
/// so that a dial QUIC answers at once never sends one (a naive relay
/// that follows the latest sender is not led astray); the refusal then
/// arrives within a round trip; the later ones cover a lost datagram.
const SENDS: [Duration; 3] = [Duration::from_millis(250), Duration::from_millis(250), Duration::from_secs(1)];

/// What a probe learned.
#[derive(Debug)]
pub(crate) enum Found {
    /// The port is closed.
    Closed,
    /// Nothing can be sent there from this node's socket: no route to its
    /// network (an IPv6 address on a host with IPv6 on but unconnected),
    /// or a socket bound to one address of the other family.
    NoRoute(std::io::Error),
}

/// A UDP socket connected to `addr` from `local`'s address (a `connect`
/// looks the route up, from the same source address, and sends nothing):
/// `Ok(Err(e))` when there is no route; `Err` when no socket could be
/// made at all.
fn connected(addr: SocketAddr, local: SocketAddr) -> std::io::Result<std::io::Result<std::net::UdpSocket>> {
    let addr = crate::addrs::canonical(addr);
    let from = crate::addrs::canonical(local).ip();
    let source: SocketAddr = match (addr, from.is_unspecified()) {
        (_, false) if from.is_ipv4() != addr.is_ipv4() => {
            let family = if addr.is_ipv4() { "IPv4" } else { "IPv6" };
            let msg = format!("this node listens on {from} only, not on an {family} address");
            return Ok(Err(std::io::Error::new(std::io::ErrorKind::AddrNotAvailable, msg)));
        }
        (_, false) => (from, 0).into(),
        (SocketAddr::V4(_), true) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        (SocketAddr::V6(_), true) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = std::net::UdpSocket::bind(source)?;
    Ok(socket.connect(addr).map(|()| socket))
}

/// Why nothing can be sent to `addr` from a socket bound to `local`, if
/// so (see [`Found::NoRoute`]).
pub(crate) fn no_route(addr: SocketAddr, local: SocketAddr) -> Option<std::io::Error> {
    connected(addr, local).ok()?.err()
}

/// Resolves when nothing can be sent to `addr` from `local`'s address, or
/// `addr` is known to refuse UDP (port unreachable); never resolves
/// otherwise. Cancel it by dropping it.
pub(crate) async fn probe(addr: SocketAddr, local: SocketAddr) -> Found {
    let socket = match connected(addr, local) {
        Ok(Ok(socket)) => socket,
        Ok(Err(e)) => return Found::NoRoute(e),
        Err(_) => return std::future::pending().await,
    };
    let Ok(socket) = socket.set_nonblocking(true).and_then(|()| tokio::net::UdpSocket::from_std(socket)) else {
        return std::future::pending().await;
    };
    let mut buf = [0u8; 64];
    for (i, delay) in SENDS.iter().enumerate() {
        tokio::time::sleep(*delay).await;
        if let Err(e) = socket.send(&[]).await
            && e.kind() == std::io::ErrorKind::ConnectionRefused
        {
            return Found::Closed;
        }
        let wait = SENDS.get(i + 1).copied().unwrap_or(Duration::MAX);
        match tokio::time::timeout(wait, socket.recv(&mut buf)).await {
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => return Found::Closed,
            // Something answered, or an error that says nothing: keep quiet.
            Ok(_) => return std::future::pending().await,
            Err(_) => {}
        }
    }
    std::future::pending().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_has_a_route_and_a_socket_of_one_family_reaches_only_that() {
        let any: SocketAddr = "[::]:0".parse().unwrap();
        assert!(no_route("127.0.0.1:9".parse().unwrap(), any).is_none());
        assert!(no_route("[::ffff:127.0.0.1]:9".parse().unwrap(), any).is_none());
        assert!(no_route("127.0.0.1:9".parse().unwrap(), "127.0.0.1:7117".parse().unwrap()).is_none());
        assert!(no_route("[::1]:9".parse().unwrap(), "127.0.0.1:7117".parse().unwrap()).is_some());
        assert!(no_route("127.0.0.1:9".parse().unwrap(), "[::1]:7117".parse().unwrap()).is_some());
    }

    #[tokio::test]
    async fn a_closed_port_is_refused_and_an_open_one_is_not() {
        // A port that was just bound and released is closed.
        let any: SocketAddr = "[::]:0".parse().unwrap();
        let closed = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let found = tokio::time::timeout(Duration::from_secs(5), probe(closed, any)).await.expect("refusal seen");
        assert!(matches!(found, Found::Closed));

        let open = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = open.local_addr().unwrap();
        assert!(tokio::time::timeout(Duration::from_millis(600), probe(addr, any)).await.is_err());
        // The other family than the socket's: at once.
        let found = probe(addr, "[::1]:7117".parse().unwrap()).await;
        assert!(matches!(found, Found::NoRoute(_)), "{found:?}");
    }
}
