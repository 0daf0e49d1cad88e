//! The prologue every request goes through before its verb's handler:
//! the caller's budget of requests in flight, the frame's size and time
//! limits, its bytes reserved from the caller's and the node's budgets
//! before they are read (and read as they arrive, never allocated up
//! front), the envelope, the verb, its body limit, the caller's rate and
//! its permission. A caller that keeps sending malformed requests loses
//! its connection.

use std::sync::Arc;

use alp_profiles::peers::Peer;
use alp_protocol::envelope::{ErrorCode, Request, Response};
use alp_protocol::frame::FrameError;
use alp_protocol::{NodeId, Verb};
use quinn::{RecvStream, SendStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::Server;
use crate::router::{Call, Session};
use crate::wire::{self, FrameWrite, WireError, close_code, reset_code};

/// What a caller holds while its request runs.
struct Held {
    _request: OwnedSemaphorePermit,
    _peer_bytes: Option<OwnedSemaphorePermit>,
    _node_bytes: Option<OwnedSemaphorePermit>,
}

/// Handles one request stream of `session`'s connection `conn`.
pub(super) async fn handle_stream(
    conn: quinn::Connection,
    mut send: SendStream,
    mut recv: RecvStream,
    session: Arc<Session>,
    state: &Server,
) {
    let peer = session.peer;
    let timeout = state.settings.request_timeout;
    let (request, held) = match tokio::time::timeout(timeout, read_request(&mut recv, peer, state)).await {
        Ok(Ok(x)) => x,
        Ok(Err(code)) => {
            if code != reset_code::BUSY && state.malformed(peer) {
                tracing::info!(peer = %peer.short(), "closing: too many malformed requests");
                conn.close(close_code::MISBEHAVING, b"too many malformed requests");
            }
            return wire::reset(&mut send, &mut recv, code);
        }
        Err(_) => return wire::reset(&mut send, &mut recv, reset_code::TIMEOUT),
    };
    match check(&request, peer, state) {
        Ok((verb, entry)) => {
            let call = Call { peer: entry, session, limits: state.settings.clone(), request, send, recv };
            state.router.dispatch(verb, call).await;
        }
        Err(refused) => {
            if send.write_frame(refused.encode()).await.is_ok() {
                let _ = send.finish();
            }
        }
    }
    drop(held);
}

/// Reads and decodes the request, within the caller's and the node's
/// budgets. `Err` is the code to reset the stream with.
async fn read_request(recv: &mut RecvStream, peer: NodeId, state: &Server) -> Result<(Request, Held), quinn::VarInt> {
    let (requests, peer_bytes) = state.peer_budgets(peer);
    // Waits while the caller has as many requests running as it may: its
    // further streams stay unread, held back by QUIC flow control.
    let request = requests.acquire_owned().await.map_err(|_| reset_code::BUSY)?;
    let len = match wire::read_header(recv, state.settings.max_frame).await {
        Ok(len) => len,
        Err(e @ WireError::Frame(FrameError::TooLarge { .. })) => {
            tracing::debug!(peer = %peer.short(), "resetting stream: {e}");
            return Err(reset_code::TOO_LARGE);
        }
        Err(e) => {
            tracing::debug!(peer = %peer.short(), "resetting stream: {e}");
            return Err(reset_code::MALFORMED);
        }
    };
    let peer_bytes = reserve(&peer_bytes, len).await?;
    let node_bytes = reserve(&state.bytes, len).await?;
    let held = Held { _request: request, _peer_bytes: peer_bytes, _node_bytes: node_bytes };
    let bytes = wire::read_payload(recv, len).await.map_err(|e| {
        tracing::debug!(peer = %peer.short(), "resetting stream: {e}");
        reset_code::MALFORMED
    })?;
    let Ok(request) = Request::decode(&bytes) else {
        tracing::debug!(peer = %peer.short(), "resetting stream: malformed envelope");
        return Err(reset_code::MALFORMED);
    };
    Ok((request, held))
}

/// Reserves `len` bytes from `budget`, waiting for them (bounded by the
/// request's deadline). More than the whole budget is refused at once.
async fn reserve(budget: &Arc<Semaphore>, len: usize) -> Result<Option<OwnedSemaphorePermit>, quinn::VarInt> {
    if len == 0 {
        return Ok(None);
    }
    let n = u32::try_from(len).map_err(|_| reset_code::TOO_LARGE)?;
    budget.clone().acquire_many_owned(n).await.map(Some).map_err(|_| reset_code::BUSY)
}

/// Verb, size, rate and permission checks, in that order. `Ok` carries
/// the caller's entry; `Err` is the answer to send instead.
fn check(request: &Request, peer: NodeId, state: &Server) -> Result<(Verb, Peer), Response> {
    let id = request.id;
    let refuse = |code, msg: String| Err(Response::err(id, code, msg));
    let Ok(verb) = request.verb.parse::<Verb>() else {
        return refuse(ErrorCode::UnknownVerb, format!("unknown verb `{}`", request.verb));
    };
    if request.body.len() > verb.max_request_body() {
        let max = verb.max_request_body();
        return refuse(ErrorCode::TooLarge, format!("{verb} accepts at most {max} bytes of body"));
    }
    if !state.allow_request(peer) {
        let rate = state.settings.requests_per_second;
        return refuse(ErrorCode::RateLimited, format!("slow down: at most {rate} requests per second"));
    }
    let entry = match state.peer(&peer) {
        Ok(Some(entry)) => entry,
        Ok(None) => return refuse(ErrorCode::Forbidden, "this node no longer trusts you".into()),
        Err(e) => return refuse(ErrorCode::Internal, e),
    };
    if !entry.allow.contains(&verb) && !verb.checked_by_handler() {
        let msg = format!("not allowed to call {verb} here (the owner can grant it with `alp peer allow NAME {verb}`)");
        return refuse(ErrorCode::Forbidden, msg);
    }
    Ok((verb, entry))
}
