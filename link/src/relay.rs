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

/// The virtual address of `node` on relayed paths.
pub fn virtual_addr(node: &NodeId) -> SocketAddr {
    let b = node.as_bytes();
    let ip = Ipv4Addr::new(240 | (b[0] & 0x0f), b[1], b[2], b[3]);
    SocketAddr::new(IpAddr::V4(ip), u16::from_be_bytes([b[4], b[5]]) | 1)
}

/// Whether `addr` is a virtual (relayed) address.
pub fn is_virtual(addr: &SocketAddr) -> bool {
    matches!(addr.ip(), IpAddr::V4(v4) if v4.octets()[0] & 0xf0 == 240)
}

/// The endpoint's socket: the real one, and the relayed paths.
pub struct RelaySocket {
    inner: Arc<dyn AsyncUdpSocket>,
    paths: Mutex<HashMap<SocketAddr, mpsc::Sender<Vec<u8>>>>,
    arrived: Mutex<Arrived>,
}

#[derive(Default)]
struct Arrived {
    queue: VecDeque<(SocketAddr, Vec<u8>)>,
    waker: Option<Waker>,
}

impl fmt::Debug for RelaySocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RelaySocket").field("inner", &self.inner).finish_non_exhaustive()
    }
}

impl RelaySocket {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn AsyncUdpSocket>) -> Arc<Self> {
        Arc::new(Self { inner, paths: Mutex::default(), arrived: Mutex::default() })
    }

    /// Carries packets for `node`'s virtual address over `send` / `recv`
    /// (a relay stream already answered), until either ends. Replaces an
    /// earlier path to the same node.
    pub fn attach(self: &Arc<Self>, node: &NodeId, mut send: quinn::SendStream, mut recv: quinn::RecvStream) {
        let addr = virtual_addr(node);
        let (tx, mut rx) = mpsc::channel::<Vec<u8>>(OUT_QUEUE);
        self.paths.lock().unwrap_or_else(PoisonError::into_inner).insert(addr, tx.clone());
        tokio::spawn(async move {
            while let Some(packet) = rx.recv().await {
                let len = (packet.len() as u16).to_be_bytes();
                if send.write_all(&len).await.is_err() || send.write_all(&packet).await.is_err() {
                    break;
                }
            }
            let _ = send.finish();
        });
        let me = self.clone();
        tokio::spawn(async move {
            let mut len = [0u8; 2];
            while recv.read_exact(&mut len).await.is_ok() {
                let n = usize::from(u16::from_be_bytes(len));
                if n == 0 || n > MAX_PACKET {
                    break;
                }
                let mut packet = vec![0u8; n];
                if recv.read_exact(&mut packet).await.is_err() {
                    break;
                }
                me.arrive(addr, packet);
            }
            // The path is gone; a newer one for the node may have replaced it.
            let mut paths = me.paths.lock().unwrap_or_else(PoisonError::into_inner);
            if paths.get(&addr).is_some_and(|t| t.same_channel(&tx)) {
                paths.remove(&addr);
            }
        });
    }

    /// Whether a relayed path to `node` is open.
    pub fn has_path(&self, node: &NodeId) -> bool {
        self.paths.lock().unwrap_or_else(PoisonError::into_inner).contains_key(&virtual_addr(node))
    }

    fn arrive(&self, from: SocketAddr, packet: Vec<u8>) {
        let mut a = self.arrived.lock().unwrap_or_else(PoisonError::into_inner);
        if a.queue.len() < IN_QUEUE {
            a.queue.push_back((from, packet));
        }
        if let Some(w) = a.waker.take() {
            w.wake();
        }
    }
}

impl AsyncUdpSocket for RelaySocket {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        self.inner.clone().create_io_poller()
    }

    fn try_send(&self, transmit: &Transmit<'_>) -> io::Result<()> {
        let path = self.paths.lock().unwrap_or_else(PoisonError::into_inner).get(&transmit.destination).cloned();
        let Some(path) = path else {
            return self.inner.try_send(transmit);
        };
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
        {
            let mut a = self.arrived.lock().unwrap_or_else(PoisonError::into_inner);
            if let (Some(buf), Some(m)) = (bufs.first_mut(), meta.first_mut()) {
                while let Some((from, packet)) = a.queue.pop_front() {
                    if packet.len() > buf.len() {
                        continue;
                    }
                    buf[..packet.len()].copy_from_slice(&packet);
                    *m = RecvMeta { addr: from, len: packet.len(), stride: packet.len(), ecn: None, dst_ip: None };
                    return Poll::Ready(Ok(1));
                }
            }
            a.waker = Some(cx.waker().clone());
        }
        self.inner.poll_recv(cx, bufs, meta)
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

    #[test]
    fn virtual_addresses_are_in_240_slash_4_and_differ_by_node() {
        let a = NodeId::from(ed25519_dalek::SigningKey::from_bytes(&[1; 32]).verifying_key());
        let b = NodeId::from(ed25519_dalek::SigningKey::from_bytes(&[2; 32]).verifying_key());
        assert!(is_virtual(&virtual_addr(&a)) && is_virtual(&virtual_addr(&b)));
        assert_ne!(virtual_addr(&a), virtual_addr(&b));
        assert_ne!(virtual_addr(&a).port(), 0);
        assert!(!is_virtual(&"203.0.113.1:7117".parse().unwrap()));
    }
}
