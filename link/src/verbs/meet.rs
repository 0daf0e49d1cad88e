//! `link.meet`: this node as a rendezvous for two of its trusted peers
//! behind NATs. One waits (a request with no `want`, answered within
//! [`WAIT`]); the other asks for it by node id. Each is then told the
//! other's address as this node sees it (the one its NAT gave it), and
//! both dial each other at once, which opens both NATs (hole punching).
//!
//! Each may give its signed address record, which is checked (valid, and
//! the caller's own) and passed on to the other: two nodes behind one
//! NAT, which the NAT may not loop back to itself, reach each other at
//! the LAN addresses their records list.
//!
//! Only peers allowed `link.meet` reach this handler (it is not allowed by
//! default). A caller learns the address of another peer of this node only
//! if that peer is waiting here, that is, asked to be found.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use alp_protocol::NodeId;
use alp_protocol::Verb;
use alp_protocol::addr_record::AddrRecord;
use alp_protocol::envelope::{ErrorCode, MeetRequest, MeetResponse, RelayRequest, RelayResponse, Response, to_cbor};
use tokio::sync::oneshot;

use crate::router::{Call, Handler};
use crate::wire::FrameWrite;

/// How long a wait lasts before it is answered with nobody (the waiter
/// asks again; its requests also keep its NAT's mapping alive).
pub const WAIT: Duration = Duration::from_secs(25);

/// Answers `link.meet` and `link.relay` (register it under both).
#[derive(Debug, Default)]
pub struct Meet {
    /// At most one wait per peer (a newer one ends the older).
    waiting: Mutex<HashMap<NodeId, Waiter>>,
    next: AtomicU64,
    /// Relay requests waiting for the other end, by (caller, other end),
    /// with the id of the request that waits.
    joining: Mutex<HashMap<(NodeId, NodeId), Joining>>,
    /// Relayed paths open, per peer (each path counts for both ends).
    open: Mutex<HashMap<NodeId, usize>>,
}

/// A relay request waiting for its other end: its ticket, and where the
/// other end goes.
type Joining = (u64, oneshot::Sender<Half>);

/// One end of a relayed path: its request's id and streams.
struct Half {
    id: u64,
    send: quinn::SendStream,
    recv: quinn::RecvStream,
}

impl std::fmt::Debug for Half {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Half").field("id", &self.id).finish_non_exhaustive()
    }
}

/// Relayed paths one peer may have open through this node.
pub const RELAYS_PER_PEER: usize = 4;
/// Relayed paths this node carries in all.
pub const RELAYS: usize = 64;
/// Bytes per second relayed for one path, each way.
pub const RELAY_RATE: u64 = 8 << 20;
/// A relayed path with nothing to carry for this long is closed.
pub const RELAY_IDLE: Duration = Duration::from_secs(120);
/// How long the first end waits for the other to join.
pub const JOIN: Duration = Duration::from_secs(10);

#[derive(Debug)]
struct Waiter {
    id: u64,
    addr: SocketAddr,
    record: Option<Vec<u8>>,
    answer: oneshot::Sender<MeetResponse>,
}

/// `record` if it is `node`'s own, valid address record, else nothing (a
/// bad one is not passed on, and does not stop the introduction).
fn checked(record: Option<Vec<u8>>, node: &NodeId) -> Option<Vec<u8>> {
    let bytes = record?;
    match AddrRecord::verify(&bytes, node, alp_profiles::unix_now()) {
        Ok(_) => Some(bytes),
        Err(e) => {
            tracing::debug!(peer = %node.short(), "not passing on its address record: {e}");
            None
        }
    }
}

impl Handler for Meet {
    async fn handle(&self, call: Call) {
        if call.request.verb == Verb::LinkRelay.as_str() {
            return self.relay(call).await;
        }
        let request: MeetRequest = match call.body() {
            Ok(r) => r,
            Err(refused) => return call.respond(refused).await,
        };
        // Where its packets come from now: a NAT may have rebound it
        // since the handshake.
        let (me, from) = (call.session.peer, call.session.remote_now());
        let record = checked(request.record, &me);
        let Some(want) = request.want else {
            let (tx, rx) = oneshot::channel();
            let id = self.next.fetch_add(1, Ordering::Relaxed);
            let old = self.lock().insert(me, Waiter { id, addr: from, record, answer: tx });
            if let Some(old) = old {
                let _ = old.answer.send(MeetResponse::default());
            }
            let answer = tokio::time::timeout(WAIT, rx).await;
            {
                let mut waiting = self.lock();
                if waiting.get(&me).is_some_and(|w| w.id == id) {
                    waiting.remove(&me);
                }
            }
            let body = answer.ok().and_then(Result::ok).unwrap_or_default();
            let response = call.ok(&body);
            return call.respond(response).await;
        };
        if want == me {
            return call.refuse(ErrorCode::BadRequest, "a node cannot meet itself").await;
        }
        let Some(waiter) = self.lock().remove(&want) else {
            let msg = format!(
                "{} is not waiting for introductions here (is its node serving, with this node as a rendezvous?)",
                want.short()
            );
            return call.refuse(ErrorCode::NotFound, msg).await;
        };
        tracing::debug!(from = %me.short(), to = %want.short(), "introduced");
        let _ = waiter.answer.send(MeetResponse { peer: Some(me), addr: Some(from.to_string()), relay: false, record });
        let response = call.ok(&MeetResponse {
            peer: Some(want),
            addr: Some(waiter.addr.to_string()),
            relay: false,
            record: waiter.record,
        });
        call.respond(response).await;
    }
}

impl Meet {
    /// `link.relay`: the first end asks the other (waiting here) to join,
    /// the second joins; then both streams are answered and spliced.
    async fn relay(&self, call: Call) {
        let request: RelayRequest = match call.body() {
            Ok(r) => r,
            Err(refused) => return call.respond(refused).await,
        };
        let (me, to) = (call.session.peer, request.to);
        if to == me {
            return call.refuse(ErrorCode::BadRequest, "a node cannot relay to itself").await;
        }
        let joining = self.joining.lock().unwrap_or_else(PoisonError::into_inner).remove(&(to, me));
        if let Some((_, first)) = joining {
            // The other end asked first: hand it this end.
            let Call { request, send, recv, .. } = call;
            let _ = first.send(Half { id: request.id, send, recv });
            return;
        }
        let Some(_slots) = Slots::take(&self.open, [me, to]) else {
            return call.refuse(ErrorCode::Busy, "this node relays no more paths now").await;
        };
        let Some(waiter) = self.lock().remove(&to) else {
            let msg = format!("{} is not waiting for introductions here, so it cannot be asked to join", to.short());
            return call.refuse(ErrorCode::NotFound, msg).await;
        };
        let (tx, rx) = oneshot::channel();
        let ticket = self.next.fetch_add(1, Ordering::Relaxed);
        let earlier = self.joining.lock().unwrap_or_else(PoisonError::into_inner).insert((me, to), (ticket, tx));
        // A newer request for the same pair replaces an older one, which ends.
        drop(earlier);
        let _ = waiter.answer.send(MeetResponse { peer: Some(me), addr: None, relay: true, record: None });
        let other = tokio::time::timeout(JOIN, rx).await;
        {
            let mut joining = self.joining.lock().unwrap_or_else(PoisonError::into_inner);
            if joining.get(&(me, to)).is_some_and(|(t, _)| *t == ticket) {
                joining.remove(&(me, to));
            }
        }
        let Ok(Ok(other)) = other else {
            return call.refuse(ErrorCode::NotFound, format!("{} did not join the relayed path", to.short())).await;
        };
        tracing::debug!(from = %me.short(), to = %to.short(), "relaying");
        let Call { request, send, recv, .. } = call;
        let here = Half { id: request.id, send, recv };
        splice(here, other).await;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<NodeId, Waiter>> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Slots of [`RELAYS_PER_PEER`] and [`RELAYS`], given back when dropped.
struct Slots<'a> {
    open: &'a Mutex<HashMap<NodeId, usize>>,
    peers: [NodeId; 2],
}

impl<'a> Slots<'a> {
    fn take(open: &'a Mutex<HashMap<NodeId, usize>>, peers: [NodeId; 2]) -> Option<Self> {
        let mut o = open.lock().unwrap_or_else(PoisonError::into_inner);
        let total: usize = o.values().sum::<usize>() / 2;
        if total >= RELAYS || peers.iter().any(|p| o.get(p).copied().unwrap_or(0) >= RELAYS_PER_PEER) {
            return None;
        }
        for p in peers {
            *o.entry(p).or_default() += 1;
        }
        Some(Self { open, peers })
    }
}

impl Drop for Slots<'_> {
    fn drop(&mut self) {
        let mut o = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        for p in self.peers {
            if let Some(n) = o.get_mut(&p) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    o.remove(&p);
                }
            }
        }
    }
}

/// Answers both ends, then copies each one's bytes to the other until
/// either ends or fails, or neither direction has moved a byte for
/// [`RELAY_IDLE`].
async fn splice(mut a: Half, mut b: Half) {
    let ok = |id| Response::ok(id, to_cbor(&RelayResponse {})).encode();
    if a.send.write_frame(ok(a.id)).await.is_err() || b.send.write_frame(ok(b.id)).await.is_err() {
        return;
    }
    let last = std::sync::Mutex::new(tokio::time::Instant::now());
    let one = copy(&mut a.recv, &mut b.send, &last);
    let two = copy(&mut b.recv, &mut a.send, &last);
    tokio::select! {
        () = one => {}
        () = two => {}
    }
    for s in [&mut a.send, &mut b.send] {
        let _ = s.reset(0u32.into());
    }
    for r in [&mut a.recv, &mut b.recv] {
        let _ = r.stop(0u32.into());
    }
}

/// Copies `from` to `to` at most [`RELAY_RATE`] bytes a second (a second's
/// worth of burst at most), noting the time of each move in `last`.
async fn copy(from: &mut quinn::RecvStream, to: &mut quinn::SendStream, last: &std::sync::Mutex<tokio::time::Instant>) {
    let mut buf = vec![0u8; 16 * 1024];
    let mut due = tokio::time::Instant::now();
    loop {
        let n = match tokio::time::timeout(Duration::from_secs(10), from.read(&mut buf)).await {
            Ok(Ok(Some(n))) => n,
            Ok(_) => return,
            Err(_) => {
                // Idle this way; the path lives while the other way moves.
                let quiet = last.lock().unwrap_or_else(PoisonError::into_inner).elapsed();
                if quiet >= RELAY_IDLE {
                    return;
                }
                continue;
            }
        };
        match tokio::time::timeout(RELAY_IDLE, to.write_all(&buf[..n])).await {
            Ok(Ok(())) => {}
            _ => return,
        }
        let now = tokio::time::Instant::now();
        *last.lock().unwrap_or_else(PoisonError::into_inner) = now;
        let floor = now.checked_sub(Duration::from_secs(1)).unwrap_or(now);
        due = due.max(floor) + Duration::from_secs_f64(n as f64 / RELAY_RATE as f64);
        tokio::time::sleep_until(due).await;
    }
}
