//! Which addresses a node announces, and turning peer addresses into
//! socket addresses.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::Duration;

use alp_profiles::peers::PeerAddr;

/// The address to serve on when none is configured: every IPv6 and IPv4
/// address at once (one dual-stack socket, or IPv4 alone on a host
/// without IPv6).
pub const DUAL_STACK: IpAddr = IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED);

/// A UDP socket bound to `addr`. The unspecified IPv6 address (`[::]`) is
/// bound dual-stack, whatever the system's default: IPv4 peers arrive on
/// it as `::ffff:a.b.c.d` (see [`canonical`]). Where the host has no IPv6
/// at all, `[::]` falls back to `0.0.0.0` on the same port, so a default
/// configuration works everywhere.
pub(crate) fn bind_udp(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    use std::io::ErrorKind::{AddrInUse, PermissionDenied};
    match udp_socket(addr) {
        Err(e) if addr.ip() == DUAL_STACK && !matches!(e.kind(), AddrInUse | PermissionDenied) => {
            tracing::info!("no IPv6 on this host ({e}): serving IPv4 only");
            udp_socket(SocketAddr::from(([0, 0, 0, 0], addr.port())))
        }
        other => other,
    }
}

fn udp_socket(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.ip() == DUAL_STACK {
        socket.set_only_v6(false)?;
    }
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// `addr` with an IPv4 address mapped into IPv6 (as a dual-stack socket
/// reports IPv4 peers) taken back to plain IPv4, so that one peer has one
/// spelling whichever socket saw it.
pub fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

/// The addresses peers can use to reach a node bound to `bound`: the bound
/// address itself, or, for an unspecified IP, every interface address it
/// serves (both families for dual-stack `[::]`; no IPv6 link-local ones),
/// non-loopback first and the families alternating, at most
/// [`alp_protocol::MAX_ADDRS`].
pub fn advertised_addrs(bound: SocketAddr) -> Vec<SocketAddr> {
    if !bound.ip().is_unspecified() {
        return vec![canonical(bound)];
    }
    let serves = |ip: &IpAddr| bound.is_ipv6() || ip.is_ipv4();
    let mut ips: Vec<IpAddr> = if_addrs::get_if_addrs()
        .unwrap_or_default()
        .into_iter()
        .map(|i| i.ip())
        .filter(serves)
        .filter(|ip| !is_v6_link_local(*ip))
        .collect();
    if ips.is_empty() {
        ips.push(IpAddr::from([127, 0, 0, 1]));
        if bound.is_ipv6() {
            ips.push(IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1]));
        }
    }
    ips.sort_by_key(|ip| (ip.is_loopback(), *ip));
    ips.dedup();
    let (remote, local): (Vec<_>, Vec<_>) =
        ips.into_iter().map(|ip| SocketAddr::new(ip, bound.port())).partition(|a| !a.ip().is_loopback());
    let mut out = interleave(&remote);
    out.extend(interleave(&local));
    out.truncate(alp_protocol::MAX_ADDRS);
    out
}

/// `addrs` with the address families alternating (RFC 8305, section
/// 4), starting with the first address's family and keeping the order
/// within each family: a dial that races them reaches a peer whose one
/// family is broken a stagger later, not after every address of it.
pub fn interleave(addrs: &[SocketAddr]) -> Vec<SocketAddr> {
    let Some(first) = addrs.first() else { return Vec::new() };
    let (mut same, mut other): (std::collections::VecDeque<_>, std::collections::VecDeque<_>) =
        addrs.iter().copied().partition(|a| canonical(*a).is_ipv4() == canonical(*first).is_ipv4());
    let mut out = Vec::with_capacity(addrs.len());
    loop {
        match (same.pop_front(), other.pop_front()) {
            (None, None) => return out,
            (a, b) => out.extend(a.into_iter().chain(b)),
        }
    }
}

/// Whether an address someone else gave (a rendezvous) is worth a dial:
/// not loopback, unspecified, multicast, broadcast or a virtual (relayed)
/// address, and with a port.
pub fn dialable(at: &SocketAddr) -> bool {
    let ip = canonical(*at).ip();
    at.port() != 0
        && !ip.is_loopback()
        && !ip.is_unspecified()
        && !ip.is_multicast()
        && !crate::relay::is_virtual(at)
        && !matches!(ip, IpAddr::V4(v4) if v4.is_broadcast())
}

/// Whether a peer's address passed on by someone else (a rendezvous) is
/// worth a dial from here: [`dialable`], and, if it is a private one
/// (RFC 1918, link-local, unique local), on a network one of this host's
/// interfaces is on. A private address elsewhere is someone else's LAN,
/// or this one's under another name: no packets go there.
pub fn reachable_hint(at: &SocketAddr) -> bool {
    let ip = canonical(*at).ip();
    // Also the shared space carrier NATs and overlay networks use.
    let shared = matches!(ip, IpAddr::V4(v4) if v4.octets()[0] == 100 && v4.octets()[1] & 0xc0 == 64);
    dialable(at) && (!(is_private(ip) || shared) || on_a_local_network(ip))
}

/// A private address: RFC 1918 or link-local IPv4, unique local or
/// link-local IPv6.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_private() || v4.is_link_local(),
        IpAddr::V6(v6) => v6.segments()[0] & 0xfe00 == 0xfc00 || is_v6_link_local(ip),
    }
}

/// An IPv6 link-local address (fe80::/10): it needs its interface, which
/// an address passed between nodes does not name.
pub fn is_v6_link_local(ip: IpAddr) -> bool {
    matches!(ip, IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80)
}

/// Whether `ip` has the network prefix of one of this host's (not
/// loopback) interfaces.
fn on_a_local_network(ip: IpAddr) -> bool {
    use if_addrs::IfAddr;
    if_addrs::get_if_addrs().unwrap_or_default().iter().filter(|i| !i.is_loopback()).any(|i| match (&i.addr, ip) {
        (IfAddr::V4(a), IpAddr::V4(ip)) => {
            let mask = u32::from(a.netmask);
            u32::from(a.ip) & mask == u32::from(ip) & mask
        }
        (IfAddr::V6(a), IpAddr::V6(ip)) => {
            let mask = u128::from(a.netmask);
            u128::from(a.ip) & mask == u128::from(ip) & mask
        }
        _ => false,
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn interleaving_alternates_families_from_the_first_and_keeps_each_order() {
        let given = [a("192.0.2.1:1"), a("192.0.2.2:1"), a("192.0.2.3:1"), a("[2001:db8::1]:1"), a("[2001:db8::2]:1")];
        let order = interleave(&given);
        let want = [a("192.0.2.1:1"), a("[2001:db8::1]:1"), a("192.0.2.2:1"), a("[2001:db8::2]:1"), a("192.0.2.3:1")];
        assert_eq!(order, want);
        // A mapped IPv4 address counts as IPv4.
        let given = [a("[2001:db8::1]:1"), a("[2001:db8::2]:1"), a("[::ffff:192.0.2.1]:1")];
        assert_eq!(interleave(&given), [given[0], given[2], given[1]]);
        assert!(interleave(&[]).is_empty());
    }

    #[test]
    fn the_dual_stack_socket_answers_both_families_on_one_port() {
        let Ok(server) = bind_udp(SocketAddr::new(DUAL_STACK, 0)) else { return };
        let port = server.local_addr().unwrap().port();
        if !server.local_addr().unwrap().is_ipv6() {
            eprintln!("SKIPPED: no IPv6 on this host");
            return;
        }
        for (from, to) in
            [("127.0.0.1:0", SocketAddr::from(([127, 0, 0, 1], port))), ("[::1]:0", a(&format!("[::1]:{port}")))]
        {
            let client = UdpSocket::bind(from).unwrap();
            client.send_to(b"hi", to).unwrap();
            let mut buf = [0u8; 4];
            server.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let (n, seen) = server.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..n], b"hi");
            assert_eq!(canonical(seen), client.local_addr().unwrap());
        }
    }

    #[test]
    fn a_dual_stack_node_announces_both_families() {
        let both = advertised_addrs(SocketAddr::new(DUAL_STACK, 7117));
        assert!(both.iter().any(SocketAddr::is_ipv4), "{both:?}");
        let v4 = advertised_addrs(a("0.0.0.0:7117"));
        assert!(v4.iter().all(SocketAddr::is_ipv4), "{v4:?}");
        assert_eq!(advertised_addrs(a("[::ffff:192.0.2.1]:5")), [a("192.0.2.1:5")]);
    }
}
