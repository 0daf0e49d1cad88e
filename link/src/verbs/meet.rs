//! `link.meet`: this node as a rendezvous for two of its trusted peers
//! behind NATs. One waits (a request with no `want`, answered within
//! [`WAIT`]); the other asks for it by node id. Each is then told the
//! other's address as this node sees it (the one its NAT gave it), and
//! both dial each other at once, which opens both NATs (hole punching).
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
use alp_protocol::envelope::{ErrorCode, MeetRequest, MeetResponse};
use tokio::sync::oneshot;

use crate::router::{Call, Handler};

/// How long a wait lasts before it is answered with nobody (the waiter
/// asks again; its requests also keep its NAT's mapping alive).
pub const WAIT: Duration = Duration::from_secs(25);

/// Answers `link.meet`.
#[derive(Debug, Default)]
pub struct Meet {
    /// At most one wait per peer (a newer one ends the older).
    waiting: Mutex<HashMap<NodeId, Waiter>>,
    next: AtomicU64,
}

#[derive(Debug)]
struct Waiter {
    id: u64,
    addr: SocketAddr,
    answer: oneshot::Sender<MeetResponse>,
}

impl Handler for Meet {
    async fn handle(&self, call: Call) {
        let request: MeetRequest = match call.body() {
            Ok(r) => r,
            Err(refused) => return call.respond(refused).await,
        };
        let (me, from) = (call.session.peer, call.session.remote);
        let Some(want) = request.want else {
            let (tx, rx) = oneshot::channel();
            let id = self.next.fetch_add(1, Ordering::Relaxed);
            let old = self.lock().insert(me, Waiter { id, addr: from, answer: tx });
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
        let _ = waiter.answer.send(MeetResponse { peer: Some(me), addr: Some(from.to_string()) });
        let response = call.ok(&MeetResponse { peer: Some(want), addr: Some(waiter.addr.to_string()) });
        call.respond(response).await;
    }
}

impl Meet {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<NodeId, Waiter>> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
