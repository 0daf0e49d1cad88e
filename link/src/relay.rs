//! Relayed paths: a peer that cannot be reached directly nor by hole
//! punching (both behind NATs that give each destination another port) is
//! reached through a trusted node that relays for both (`link.relay`). The
//! QUIC packets of the link between the two go, whole and sealed, over a
//! stream each holds open to the relay, which copies them across and sees
//! only their sizes: the TLS, the Noise handshake and the records stay end
//! to end.
//!
//! To quinn the peer is at a virtual address in 240.0.0.0/4, which no
//! network routes. [`RelaySocket`] wraps the endpoint's UDP socket: packets
//! to a virtual address go into that peer's relay stream, and packets that
//! arrive on one are handed to quinn as if from the virtual address. On a
//! stream each packet is a `u16` big-endian length and the packet.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::io::{self, IoSliceMut};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};

use alp_protocol::NodeId;

use crate::addrs::canonical;
use quinn::udp::{RecvMeta, Transmit};
use quinn::{AsyncUdpSocket, UdpPoller};
use tokio::sync::mpsc;

/// Packets queued towards one relay stream before more are dropped (as a
/// full UDP buffer would).
const OUT_QUEUE: usize = 256;
/// Packets arrived from relays and not yet taken by quinn, before more are
/// dropped.
const IN_QUEUE: usize = 1024;
/// The largest packet carried.
pub const MAX_PACKET: usize = 1 << 14;

/// The port of every virtual address.
const VIRTUAL_PORT: u16 = 1;

/// Whether `addr` is a virtual (relayed) address (also as an IPv4 address
/// mapped into IPv6).
pub fn is_virtual(addr: &SocketAddr) -> bool {
    matches!(addr.ip().to_canonical(), IpAddr::V4(v4) if v4.octets()[0] & 0xf0 == 240)
}

/// The endpoint's socket: the real one, and the relayed paths.
pub struct RelaySocket {
    inner: Arc<dyn AsyncUdpSocket>,
    paths: Mutex<HashMap<SocketAddr, Path>>,
    arrived: Mutex<Arrived>,
    next: std::sync::atomic::AtomicU64,
    /// Each relayed node's virtual address, handed out in turn (never
    /// derived from the node id: a key ground to match another node's
    /// address would take over its path).
    addrs: Mutex<HashMap<NodeId, SocketAddr>>,
    /// Whether quinn sees IPv4 addresses mapped into IPv6 (an IPv6 socket).
    mapped: bool,
}

/// One relayed path: where its packets go, and its two tasks.
struct Path {
    id: u64,
    out: mpsc::Sender<Vec<u8>>,
    tasks: [tokio::task::AbortHandle; 2],
}

#[derive(Default)]
struct Arrived {
    queue: VecDeque<(SocketAddr, Vec<u8>)>,
    /// Packets queued per path, each capped at [`IN_PER_PATH`].
    per_path: HashMap<SocketAddr, usize>,
    waker: Option<Waker>,
    /// Alternates the relays and the real socket when both have packets.
    socket_turn: bool,
}

/// Packets one path may have queued towards quinn.
const IN_PER_PATH: usize = 256;

impl fmt::Debug for RelaySocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RelaySocket").field("inner", &self.inner).finish_non_exhaustive()
    }
}

impl RelaySocket {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn AsyncUdpSocket>) -> Arc<Self> {
        let mapped = inner.local_addr().is_ok_and(|a| a.is_ipv6());
        Arc::new(Self {
            inner,
            paths: Mutex::default(),
            addrs: Mutex::default(),
            arrived: Mutex::default(),
            next: std::sync::atomic::AtomicU64::new(0),
            mapped,
        })
    }

    /// Carries packets for `node`'s virtual address over `send` / `recv`
    /// (a relay stream already answered), until either ends or the path
    /// stays idle for `idle`. A live path to the node is kept rather than
    /// replaced (false): whoever opened it is using it.
    pub fn attach(
        self: &Arc<Self>,
        node: &NodeId,
        mut send: quinn::SendStream,
        mut recv: quinn::RecvStream,
        idle: std::time::Duration,
    ) -> bool {
        let addr = self.virtual_addr(node);
        let mut paths = self.paths.lock().unwrap_or_else(PoisonError::into_inner);
        if paths.get(&addr).is_some_and(|p| !p.out.is_closed()) {
            return false;
        }
        let id = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (tx, mut rx) = mpsc::channel::<Vec<u8>>(OUT_QUEUE);
        let writer = tokio::spawn(async move {
            while let Some(packet) = rx.recv().await {
                let len = (packet.len() as u16).to_be_bytes();
                let wrote = async { send.write_all(&len).await.is_ok() && send.write_all(&packet).await.is_ok() };
                if !tokio::time::timeout(idle, wrote).await.unwrap_or(false) {
                    break;
                }
            }
            let _ = send.reset(0u32.into());
        });
        let me = self.clone();
        let reader = tokio::spawn(async move {
            let mut len = [0u8; 2];
            loop {
                match tokio::time::timeout(idle, recv.read_exact(&mut len)).await {
                    Ok(Ok(())) => {}
                    _ => break,
                }
                let n = usize::from(u16::from_be_bytes(len));
                if n == 0 || n > MAX_PACKET {
                    break;
                }
                let mut packet = vec![0u8; n];
                match tokio::time::timeout(idle, recv.read_exact(&mut packet)).await {
                    Ok(Ok(())) => me.arrive(addr, packet),
                    _ => break,
                }
            }
            let _ = recv.stop(0u32.into());
            me.detach_id(addr, id);
        });
        if let Some(old) =
            paths.insert(addr, Path { id, out: tx, tasks: [writer.abort_handle(), reader.abort_handle()] })
        {
            old.tasks.iter().for_each(tokio::task::AbortHandle::abort);
        }
        true
    }

    /// Ends the relayed path to `node`, if there is one.
    pub fn detach(&self, node: &NodeId) {
        let addr = self.virtual_addr(node);
        let old = self.paths.lock().unwrap_or_else(PoisonError::into_inner).remove(&addr);
        if let Some(old) = old {
            old.tasks.iter().for_each(tokio::task::AbortHandle::abort);
        }
    }

    fn detach_id(&self, addr: SocketAddr, id: u64) {
        let mut paths = self.paths.lock().unwrap_or_else(PoisonError::into_inner);
        if paths.get(&addr).is_some_and(|p| p.id == id)
            && let Some(old) = paths.remove(&addr)
        {
            old.tasks[0].abort();
        }
    }

    /// Whether a relayed path to `node` is open.
    pub fn has_path(&self, node: &NodeId) -> bool {
        let addr = self.virtual_addr(node);
        self.paths.lock().unwrap_or_else(PoisonError::into_inner).get(&addr).is_some_and(|p| !p.out.is_closed())
    }

    /// The virtual address `node`'s relayed path has on this socket (in
    /// 240.0.0.0/4): the same for as long as the socket lives, and no
    /// other node's. One is handed out per node ever relayed; only
    /// trusted peers are.
    pub fn virtual_addr(&self, node: &NodeId) -> SocketAddr {
        let mut addrs = self.addrs.lock().unwrap_or_else(PoisonError::into_inner);
        let n = u32::try_from(addrs.len()).unwrap_or(u32::MAX).saturating_add(1);
        *addrs.entry(*node).or_insert_with(|| {
            // 2^28 - 1 addresses; past them (never, for a trust list), the
            // last is shared and such paths replace each other.
            let ip = Ipv4Addr::from(0xf000_0000 | n.min(0x0fff_ffff));
            SocketAddr::new(IpAddr::V4(ip), VIRTUAL_PORT)
        })
    }

    fn arrive(&self, from: SocketAddr, packet: Vec<u8>) {
        let mut a = self.arrived.lock().unwrap_or_else(PoisonError::into_inner);
        let queued = a.per_path.get(&from).copied().unwrap_or(0);
        if a.queue.len() < IN_QUEUE && queued < IN_PER_PATH {
            a.queue.push_back((from, packet));
            *a.per_path.entry(from).or_default() += 1;
        }
        if let Some(w) = a.waker.take() {
            w.wake();
        }
    }

    /// The next relayed packet, if one waits, into `bufs[0]` / `meta[0]`.
    fn take_relayed(&self, a: &mut Arrived, bufs: &mut [IoSliceMut<'_>], meta: &mut [RecvMeta]) -> bool {
        let (Some(buf), Some(m)) = (bufs.first_mut(), meta.first_mut()) else { return false };
        while let Some((from, packet)) = a.queue.pop_front() {
            if let Some(n) = a.per_path.get_mut(&from) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    a.per_path.remove(&from);
                }
            }
            if packet.len() > buf.len() {
                continue;
            }
            buf[..packet.len()].copy_from_slice(&packet);
            let addr = if self.mapped {
                match from.ip() {
                    IpAddr::V4(v4) => SocketAddr::new(IpAddr::V6(v4.to_ipv6_mapped()), from.port()),
                    IpAddr::V6(_) => from,
                }
            } else {
                from
            };
            *m = RecvMeta { addr, len: packet.len(), stride: packet.len(), ecn: None, dst_ip: None };
            return true;
        }
        false
    }
}

impl AsyncUdpSocket for RelaySocket {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        self.inner.clone().create_io_poller()
    }

    fn try_send(&self, transmit: &Transmit<'_>) -> io::Result<()> {
        let dest = canonical(transmit.destination);
        if !is_virtual(&dest) {
            return self.inner.try_send(transmit);
        }
        // A virtual destination never goes to the network, path or not.
        let path = self.paths.lock().unwrap_or_else(PoisonError::into_inner).get(&dest).map(|p| p.out.clone());
        let Some(path) = path else { return Ok(()) };
        let size = transmit.segment_size.unwrap_or(transmit.contents.len()).max(1);
        for packet in transmit.contents.chunks(size).filter(|p| p.len() <= MAX_PACKET) {
            // A full queue or a closed path loses the packet, as UDP would.
            let _ = path.try_send(packet.to_vec());
        }
        Ok(())
    }

    fn poll_recv(
        &self,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        let socket_first = {
            let mut a = self.arrived.lock().unwrap_or_else(PoisonError::into_inner);
            a.socket_turn = !a.socket_turn;
            if !a.socket_turn && self.take_relayed(&mut a, bufs, meta) {
                return Poll::Ready(Ok(1));
            }
            a.waker = Some(cx.waker().clone());
            a.socket_turn
        };
        loop {
            match self.inner.poll_recv(cx, bufs, meta) {
                Poll::Ready(Ok(n)) => {
                    // Nothing from the network may pose as a relayed peer.
                    let keep = meta.iter().take(n).all(|m| !is_virtual(&canonical(m.addr)));
                    if keep {
                        return Poll::Ready(Ok(n));
                    }
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => break,
            }
        }
        if socket_first {
            let mut a = self.arrived.lock().unwrap_or_else(PoisonError::into_inner);
            if self.take_relayed(&mut a, bufs, meta) {
                return Poll::Ready(Ok(1));
            }
            a.waker = Some(cx.waker().clone());
        }
        Poll::Pending
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    fn max_transmit_segments(&self) -> usize {
        self.inner.max_transmit_segments()
    }

    fn max_receive_segments(&self) -> usize {
        self.inner.max_receive_segments()
    }

    fn may_fragment(&self) -> bool {
        self.inner.may_fragment()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn virtual_addresses_are_in_240_slash_4_stable_and_one_per_node() {
        use quinn::Runtime;
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let socket = RelaySocket::new(quinn::TokioRuntime.wrap_udp_socket(udp).unwrap());
        let nodes: Vec<NodeId> =
            (1..=50u8).map(|i| ed25519_dalek::SigningKey::from_bytes(&[i; 32]).verifying_key().into()).collect();
        let addrs: Vec<SocketAddr> = nodes.iter().map(|n| socket.virtual_addr(n)).collect();
        assert!(addrs.iter().all(|a| is_virtual(a) && a.port() != 0));
        assert_eq!(addrs.iter().collect::<std::collections::HashSet<_>>().len(), nodes.len());
        assert_eq!(socket.virtual_addr(&nodes[7]), addrs[7]);
        assert!(!is_virtual(&"203.0.113.1:7117".parse().unwrap()));
        assert!(is_virtual(&"[::ffff:240.0.0.1]:1".parse().unwrap()));
    }
}
