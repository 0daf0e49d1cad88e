//! Verbs behind a router: each verb a node serves has a [`Handler`],
//! registered once when the node starts.
//!
//! ```ignore
//! let router = Router::builder()
//!     .accept(Verb::LinkPing, verbs::ping::Ping)
//!     .accept(Verb::LinkInfo, verbs::info::Info::new(&endpoint))
//!     .build();
//! ```
//!
//! The server runs the common prologue for every request (read and decode
//! the envelope within the time and size limits, the verb's body limit,
//! the caller's rate limit and permission) and then hands the handler a
//! [`Call`]: who asked, the secrets of this connection, the limits, the
//! request, and the stream to answer on. A handler never sees the
//! server's state; what else it needs, it was given when it was made.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use alp_profiles::peers::Peer;
use alp_protocol::envelope::{ErrorCode, Request, Response, from_cbor, to_cbor};
use alp_protocol::{NodeId, Verb};
use quinn::{RecvStream, SendStream};
use serde::Serialize;
use serde::de::DeserializeOwned;
use zeroize::Zeroizing;

use crate::settings::LinkSettings;
use crate::wire::FrameWrite;

/// Answers one verb (or a family of verbs, registered under each).
pub trait Handler: Send + Sync + 'static {
    /// Handles one request. The handler owns the stream: it answers (or
    /// streams, for the transfer verbs) and ends it. A failure is the
    /// handler's to report, to the caller as an error response and to
    /// the log; it never affects another request.
    fn handle(&self, call: Call) -> impl Future<Output = ()> + Send;
}

/// A boxed future, so that handlers of different types fit one table.
type BoxFuture<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// [`Handler`] in a form that can be stored in the table.
trait DynHandler: Send + Sync {
    fn handle_boxed(&self, call: Call) -> BoxFuture<'_>;
}

impl<H: Handler> DynHandler for H {
    fn handle_boxed(&self, call: Call) -> BoxFuture<'_> {
        Box::pin(self.handle(call))
    }
}

/// The handlers of the verbs a node serves.
#[derive(Default)]
pub struct Router {
    handlers: HashMap<Verb, Arc<dyn DynHandler>>,
}

impl fmt::Debug for Router {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Router").field("verbs", &self.verbs()).finish()
    }
}

impl Router {
    /// An empty router, to register handlers on.
    pub fn builder() -> RouterBuilder {
        RouterBuilder(Router::default())
    }

    /// The verbs served, in their stable order.
    pub fn verbs(&self) -> Vec<Verb> {
        let mut verbs: Vec<Verb> = self.handlers.keys().copied().collect();
        verbs.sort();
        verbs
    }

    /// Runs the handler of `verb`; answers "not served" if there is none.
    pub(crate) async fn dispatch(&self, verb: Verb, call: Call) {
        match self.handlers.get(&verb) {
            Some(handler) => handler.handle_boxed(call).await,
            None => {
                let msg = format!("{verb} is not served by this node ({})", crate::VERSION);
                call.refuse(ErrorCode::UnknownVerb, msg).await;
            }
        }
    }
}

/// Registers handlers, then builds the [`Router`].
#[must_use]
pub struct RouterBuilder(Router);

impl fmt::Debug for RouterBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl RouterBuilder {
    /// Serves `verb` with `handler` (replacing an earlier registration of
    /// the same verb).
    pub fn accept(self, verb: Verb, handler: impl Handler) -> Self {
        self.accept_shared(verb, Arc::new(handler))
    }

    /// Serves `verb` with a handler shared with other verbs (a family of
    /// verbs with common state).
    pub fn accept_shared<H: Handler>(mut self, verb: Verb, handler: Arc<H>) -> Self {
        self.0.handlers.insert(verb, handler);
        self
    }

    /// The router.
    pub fn build(self) -> Router {
        self.0
    }
}

/// What an authenticated connection shares with every request on it.
pub struct Session {
    /// The caller's node id, proven by the handshake.
    pub peer: NodeId,
    /// Secret of this connection's handshake; transfer keys derive from it.
    pub secret: Zeroizing<[u8; 32]>,
    /// This connection's channel binding; receipts name it.
    pub binding: [u8; 32],
    /// Where the caller's packets came from when the handshake finished
    /// (behind a NAT, the address the NAT gave it).
    pub remote: std::net::SocketAddr,
    /// The connection, for where its packets come from now.
    pub(crate) conn: quinn::Connection,
}

impl Session {
    /// Where the caller's packets come from now: after a NAT rebinding
    /// (QUIC follows the new address once it is validated), not where
    /// they came from at the handshake.
    pub fn remote_now(&self) -> std::net::SocketAddr {
        crate::addrs::canonical(self.conn.remote_address())
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session").field("peer", &self.peer).finish_non_exhaustive()
    }
}

/// One request, as its handler receives it.
#[derive(Debug)]
pub struct Call {
    /// The caller's entry among this node's trusted peers, as checked for
    /// this request (its name, permissions and allowances).
    pub peer: Peer,
    /// The connection it came on.
    pub session: Arc<Session>,
    /// The limits in force.
    pub limits: Arc<LinkSettings>,
    /// The request: verb, id and CBOR body.
    pub request: Request,
    /// Where the answer goes.
    pub send: SendStream,
    /// The rest of the request stream (the transfer verbs read data here).
    pub recv: RecvStream,
}

impl Call {
    /// The request's id, echoed in responses.
    pub fn id(&self) -> u64 {
        self.request.id
    }

    /// The request body decoded; if it does not decode, the answer that
    /// says so.
    pub fn body<T: DeserializeOwned>(&self) -> Result<T, Response> {
        from_cbor(&self.request.body).map_err(|e| self.error(ErrorCode::BadRequest, e.to_string()))
    }

    /// A success response carrying `value`.
    pub fn ok<T: Serialize>(&self, value: &T) -> Response {
        Response::ok(self.request.id, to_cbor(value))
    }

    /// An error response.
    pub fn error(&self, code: ErrorCode, message: impl Into<String>) -> Response {
        Response::err(self.request.id, code, message)
    }

    /// Sends one response frame without ending the stream (for verbs that
    /// stream more afterwards). False if the stream is gone.
    pub async fn reply(&mut self, response: Response) -> bool {
        self.send.write_frame(response.encode()).await.is_ok()
    }

    /// Sends `response` and ends the stream.
    pub async fn respond(mut self, response: Response) {
        if self.reply(response).await {
            let _ = self.send.finish();
        }
    }

    /// Answers with an error and ends the stream.
    pub async fn refuse(self, code: ErrorCode, message: impl Into<String>) {
        let response = self.error(code, message);
        self.respond(response).await;
    }
}
