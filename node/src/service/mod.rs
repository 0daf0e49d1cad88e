//! Operations the CLI runs through the profile's running node (`alp
//! serve`), on the control socket: the node keeps its links to peers, so a
//! command reuses a live connection instead of dialling one of its own.
//!
//! A request is one JSON line whose `op` names an entry of [`OPS`]; the
//! rest of the line is that operation's arguments. Adding one is a file
//! here (its arguments, what the node does, its answer) and a line in
//! [`OPS`]. Lines whose `op` is not here are workgroup requests
//! (`wg::api::Request`).

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde_json::Value;

use crate::wg::WgNode;

pub(crate) mod ask;
pub(crate) mod blob_fetch;
pub(crate) mod blob_push;
pub(crate) mod peer_info;
pub(crate) mod peer_ping;

/// Every operation, by name.
pub(crate) const OPS: &[Op] = &[peer_ping::OP, peer_info::OP, blob_push::OP, blob_fetch::OP, ask::OP];

/// One operation: its name on the wire and what the node does.
pub(crate) struct Op {
    /// The request's `op`.
    pub(crate) name: &'static str,
    /// Runs it with the request line (arguments beside `op`); what it
    /// sends on the channel reaches the client as progress lines before
    /// the answer. Dropped (cancelled) when the client goes away.
    pub(crate) run: Run,
    /// The longest it may take before the client gives up.
    pub(crate) timeout: Duration,
}

/// An operation's handler.
pub(crate) type Run = fn(Arc<WgNode>, Value, Progress) -> BoxFuture<'static, Result<Value, OpError>>;

/// Where an operation's progress goes (one JSON line each, `{"progress":
/// …}`, before its answer).
pub(crate) type Progress = tokio::sync::mpsc::UnboundedSender<Value>;

/// The operation named `name`.
pub(crate) fn find(name: &str) -> Option<&'static Op> {
    OPS.iter().find(|op| op.name == name)
}

/// Why an operation failed; the message says what to do.
#[derive(Debug, thiserror::Error)]
pub(crate) enum OpError {
    /// The request is wrong as asked (exit 2).
    #[error("{0}")]
    Usage(String),
    /// It could not be done (exit 1).
    #[error("{0}")]
    Failed(String),
}

impl OpError {
    /// The exit code the CLI uses.
    pub(crate) fn exit(&self) -> u8 {
        match self {
            OpError::Usage(_) => 2,
            OpError::Failed(_) => 1,
        }
    }
}

/// The arguments of a request line, typed.
pub(crate) fn args<T: serde::de::DeserializeOwned>(line: Value) -> Result<T, OpError> {
    serde_json::from_value(line).map_err(|e| OpError::Usage(format!("bad request: {e}")))
}
