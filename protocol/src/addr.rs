//! The fixed binary layout of a list of socket addresses, shared by
//! pairing tickets and handshake payloads.
//!
//! ```text
//! count u8 (at most MAX_ADDRS)
//! count × { family u8 (4 | 6), ip (4 | 16 bytes), port u16 BE }
//! ```

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The most addresses a list may hold.
pub const MAX_ADDRS: usize = 8;

/// Appends `addrs` (at most [`MAX_ADDRS`]; extra ones are dropped).
pub(crate) fn encode(addrs: &[SocketAddr], out: &mut Vec<u8>) {
    let addrs = &addrs[..addrs.len().min(MAX_ADDRS)];
    out.push(addrs.len() as u8);
    for a in addrs {
        match a.ip() {
            IpAddr::V4(ip) => {
                out.push(4);
                out.extend_from_slice(&ip.octets());
            }
            IpAddr::V6(ip) => {
                out.push(6);
                out.extend_from_slice(&ip.octets());
            }
        }
        out.extend_from_slice(&a.port().to_be_bytes());
    }
}

/// Bytes [`encode`] writes for `addrs`.
pub(crate) fn encoded_len(addrs: &[SocketAddr]) -> usize {
    1 + addrs.iter().take(MAX_ADDRS).map(|a| if a.is_ipv4() { 1 + 4 + 2 } else { 1 + 16 + 2 }).sum::<usize>()
}

/// Reads a list from the front of `input`, advancing it.
pub(crate) fn decode(input: &mut &[u8]) -> Result<Vec<SocketAddr>, &'static str> {
    let count = take::<1>(input)?[0] as usize;
    if count > MAX_ADDRS {
        return Err("too many addresses");
    }
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let ip = match take::<1>(input)?[0] {
            4 => IpAddr::V4(Ipv4Addr::from(take::<4>(input)?)),
            6 => IpAddr::V6(Ipv6Addr::from(take::<16>(input)?)),
            _ => return Err("unknown address family"),
        };
        out.push(SocketAddr::new(ip, u16::from_be_bytes(take::<2>(input)?)));
    }
    Ok(out)
}

/// Takes `N` bytes off the front of `input`.
pub(crate) fn take<const N: usize>(input: &mut &[u8]) -> Result<[u8; N], &'static str> {
    let (head, rest) = input.split_first_chunk::<N>().ok_or("truncated")?;
    *input = rest;
    Ok(*head)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn snapshot() {
        let mut out = Vec::new();
        encode(&["127.0.0.1:7117".parse().unwrap(), "[::1]:1".parse().unwrap()], &mut out);
        assert_eq!(out, [2, 4, 127, 0, 0, 1, 0x1b, 0xcd, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1]);
    }

    proptest! {
        #[test]
        fn round_trips(addrs in proptest::collection::vec(any::<SocketAddr>(), 0..=MAX_ADDRS)) {
            let mut out = Vec::new();
            encode(&addrs, &mut out);
            prop_assert_eq!(out.len(), encoded_len(&addrs));
            let mut input = &out[..];
            let back = decode(&mut input).unwrap();
            // Flow info and scope ids are not carried.
            let strip = |a: &SocketAddr| SocketAddr::new(a.ip(), a.port());
            prop_assert_eq!(back, addrs.iter().map(strip).collect::<Vec<_>>());
            prop_assert!(input.is_empty());
        }

        #[test]
        fn never_panics(input in proptest::collection::vec(any::<u8>(), 0..80)) {
            let _ = decode(&mut &input[..]);
        }
    }
}
