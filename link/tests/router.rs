//! The router on a real loopback connection: a handler registered for a
//! verb answers it with the request's context; a verb that is allowed but
//! not registered is "not served"; the prologue's checks (unknown verb,
//! permission, body size) come before any handler.

use std::net::SocketAddr;

use alp_link::{Call, Handler, LinkEndpoint, LinkSettings, Me, RequestError, Router, Server, serve, verbs};
use alp_profiles::peers::{Peer, PeerStore};
use alp_profiles::tickets::TicketStore;
use alp_protocol::envelope::{ErrorCode, from_cbor, to_cbor};
use alp_protocol::{NodeId, Verb};
use ed25519_dalek::SigningKey;

fn me(seed: u8) -> Me {
    Me { key: SigningKey::from_bytes(&[seed; 32]), display_name: format!("n{seed}"), addrs: vec![] }
}

/// Answers with what it was handed: the caller's name and node id, and
/// the body.
#[derive(Debug)]
struct Echo;

impl Handler for Echo {
    async fn handle(&self, call: Call) {
        let body: String = match call.body() {
            Ok(b) => b,
            Err(refused) => return call.respond(refused).await,
        };
        let answer = call.ok(&(call.peer.name.to_string(), call.session.peer.to_string(), body));
        call.respond(answer).await;
    }
}

/// A server trusting `client` with `allowed`, serving `router`.
async fn server(dir: &std::path::Path, client: NodeId, allowed: &[Verb], router: Router) -> (SocketAddr, NodeId) {
    let peers = PeerStore::new(&dir.join("peers.toml"), &dir.join(".lock"));
    let mut peer = Peer::new("carol".parse().unwrap(), client, vec![], 0);
    peer.allow.extend(allowed.iter().copied());
    peers.add(peer).unwrap();
    let tickets = TicketStore::new(&dir.join("tickets.toml"), &dir.join(".lock"));
    let endpoint = LinkEndpoint::bind("127.0.0.1:0".parse().unwrap(), me(1), LinkSettings::default()).unwrap();
    let addr = endpoint.local_addr().unwrap();
    let id = endpoint.me().node_id();
    let state = Server::new(&endpoint, peers, tickets, router);
    tokio::spawn(serve(endpoint, state, std::future::pending()));
    (addr, id)
}

fn code(e: RequestError) -> (ErrorCode, String) {
    match e {
        RequestError::Remote(r) => (r.code, r.message),
        other => panic!("expected an error answer, got {other}"),
    }
}

#[tokio::test]
async fn handlers_get_their_verb_and_its_context_and_nothing_else_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let client = me(2);
    let router = Router::builder().accept(Verb::LinkPing, verbs::ping::Ping).accept(Verb::AgentAsk, Echo).build();
    assert_eq!(router.verbs(), [Verb::LinkPing, Verb::AgentAsk]);
    let allowed = [Verb::LinkPing, Verb::AgentAsk, Verb::AgentCancel];
    let (addr, id) = server(dir.path(), client.node_id(), &allowed, router).await;
    let endpoint = LinkEndpoint::client(client.clone(), LinkSettings::default()).unwrap();
    let link = endpoint.dial(addr, id).await.unwrap();

    link.ping(5).await.unwrap();
    let answer = link.call("agent.ask", to_cbor(&"hello")).await.unwrap();
    let (name, node, body): (String, String, String) = from_cbor(&answer).unwrap();
    assert_eq!((name.as_str(), body.as_str()), ("carol", "hello"));
    assert_eq!(node, client.node_id().to_string());

    // Allowed, but no handler: not served.
    let (c, msg) = code(link.call("agent.cancel", to_cbor(&0u8)).await.unwrap_err());
    assert_eq!(c, ErrorCode::UnknownVerb);
    assert!(msg.contains("agent.cancel is not served by this node"), "{msg}");
    // The prologue answers before any handler: not allowed, unknown, too large, malformed.
    assert_eq!(code(link.call("blob.get", to_cbor(&0u8)).await.unwrap_err()).0, ErrorCode::Forbidden);
    assert_eq!(code(link.call("link.pong", vec![]).await.unwrap_err()).0, ErrorCode::UnknownVerb);
    let big = to_cbor(&"x".repeat(Verb::AgentAsk.max_request_body()));
    assert_eq!(code(link.call("agent.ask", big).await.unwrap_err()).0, ErrorCode::TooLarge);
    assert_eq!(code(link.call("agent.ask", vec![0xff]).await.unwrap_err()).0, ErrorCode::BadRequest);
    // And the connection still serves.
    link.ping(6).await.unwrap();
}
