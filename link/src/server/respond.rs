//! The responder side of the handshake, then authorisation: who the
//! dialler is, whether it is trusted (or redeems a ticket), and whether it
//! may have another connection. No other stream is accepted until this
//! returns.

use std::net::IpAddr;
use std::time::Duration;

use alp_profiles::peers::{NoiseKey, Peer, placed, suggest_name};
use alp_profiles::unix_now;
use alp_protocol::handshake::{self, HandshakeError, PeerHello, Responder};
use quinn::VarInt;
use zeroize::Zeroizing;

use super::Server;
use crate::endpoint::binding;
use crate::router::Session;
use crate::wire::{FrameRead, FrameWrite, WireError, close_code};

/// Why a connection was closed during the handshake.
pub(super) struct Refusal {
    pub(super) code: VarInt,
    pub(super) reason: String,
}

impl Refusal {
    pub(super) fn new(code: VarInt, reason: impl Into<String>) -> Self {
        Self { code, reason: reason.into() }
    }
}

impl From<HandshakeError> for Refusal {
    fn from(e: HandshakeError) -> Self {
        let code = match e {
            HandshakeError::UnknownTicket => close_code::TICKET_REFUSED,
            _ => close_code::HANDSHAKE_FAILED,
        };
        Refusal::new(code, e.to_string())
    }
}

impl From<WireError> for Refusal {
    fn from(e: WireError) -> Self {
        Refusal::new(close_code::PROTOCOL, format!("handshake stream: {e}"))
    }
}

/// Runs the responder handshake on `conn`; frame 1 must arrive within
/// `hello` (a stranger gets little time to say who it is). On success the
/// dialler holds one of its peer's connection slots until the connection
/// ends.
pub(super) async fn respond(conn: &quinn::Connection, state: &Server, hello: Duration) -> Result<Session, Refusal> {
    let from = crate::addrs::canonical(conn.remote_address());
    let ip = from.ip();
    let binding = binding(conn)?;
    let first = async {
        let (send, mut recv) = conn.accept_bi().await.map_err(|e| Refusal::new(close_code::PROTOCOL, e.to_string()))?;
        let f1 = recv.read_frame(handshake::MAX_FRAME).await?;
        Ok::<_, Refusal>((send, recv, f1))
    };
    let timed_out = || Refusal::new(close_code::HANDSHAKE_TIMEOUT, "handshake timed out");
    let (mut send, mut recv, f1) = tokio::time::timeout(hello, first).await.map_err(|_| timed_out())??;
    let (mut pairing, mut limited) = (false, false);
    let creds = state.presence.creds();
    let answer = Responder::handle_hello(&creds, binding, &f1, |id| {
        pairing = true;
        limited = state.pair_limited(ip);
        if limited { None } else { state.tickets.psk_for(id, unix_now()).ok().flatten() }
    });
    if limited {
        return Err(Refusal::new(close_code::RATE_LIMITED, "too many failed pairing attempts: wait a minute"));
    }
    let failed = |e: HandshakeError| {
        if pairing {
            state.pair_failed(ip);
        }
        Refusal::from(e)
    };
    let (awaiting, f2) = answer.map_err(failed)?;
    send.write_frame(f2).await?;
    let f3 = recv.read_frame(handshake::MAX_FRAME).await?;
    let pending = awaiting.handle_finish(&f3).map_err(failed)?;
    let remote = pending.remote().clone();
    authorise(state, &pending, &remote, ip)?;
    state.admit_peer(remote.node_id).map_err(|r| Refusal::new(close_code::BUSY, r.reason()))?;
    let (established, f4) = match pending.accept() {
        Ok(x) => x,
        Err(e) => {
            state.end_peer(remote.node_id);
            return Err(e.into());
        }
    };
    // A trusted dialler does not wait for frame 4 and may already have
    // stopped reading this stream; only a lost connection matters, and that
    // shows on the next accept.
    if send.write_frame(f4).await.is_ok() {
        let _ = send.finish();
    }
    state.touch(&remote, from);
    Ok(Session {
        peer: remote.node_id,
        secret: Zeroizing::new(established.session_secret),
        binding,
        remote: from,
        conn: conn.clone(),
    })
}

/// Whether the authenticated dialler may connect: a trusted peer, or one
/// redeeming a ticket (consumed here, and the peer recorded).
fn authorise(state: &Server, pending: &handshake::Pending, remote: &PeerHello, from: IpAddr) -> Result<(), Refusal> {
    if let Some(ticket) = pending.ticket() {
        let used =
            state.tickets.consume(ticket, unix_now()).map_err(|e| Refusal::new(close_code::PROTOCOL, e.to_string()))?;
        if !used {
            return Err(Refusal::new(close_code::TICKET_REFUSED, "pairing ticket expired or already used"));
        }
        return trust_new(state, remote, from);
    }
    match state.peer(&remote.node_id) {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(Refusal::new(
            close_code::NOT_TRUSTED,
            format!("node {} is not a trusted peer here: ask the owner for an invite (`alp invite`)", remote.node_id),
        )),
        Err(e) => Err(Refusal::new(close_code::PROTOCOL, e)),
    }
}

/// Trusts a node that redeemed a ticket (keeping an existing entry).
/// Its addresses are those it announced, an unspecified IP among them
/// replaced by the one the pairing came from (marked as observed).
fn trust_new(state: &Server, hello: &PeerHello, from: IpAddr) -> Result<(), Refusal> {
    state
        .peers
        .update(|peers| {
            let (addrs, observed) = placed(&hello.addrs, Some(from));
            match peers.iter_mut().find(|p| p.node_id == hello.node_id) {
                Some(p) if p.addrs.is_empty() => (p.addrs, p.observed) = (addrs, observed),
                Some(_) => {}
                None => {
                    let name = suggest_name(&hello.display_name, peers);
                    tracing::info!(peer = %name, node = %hello.node_id, ?addrs, "paired: now trusted");
                    let mut peer = Peer::new(name, hello.node_id, addrs, unix_now());
                    peer.observed = observed;
                    peer.noise_key = Some(NoiseKey(hello.static_key));
                    peers.push(peer);
                }
            }
            Ok(())
        })
        .map_err(|e| Refusal::new(close_code::PROTOCOL, format!("cannot record the new peer: {e}")))
}
