//! `link.ping`: echoes the caller's nonce, with this node's version.

use alp_protocol::envelope::{PingRequest, PingResponse};

use crate::router::{Call, Handler};

/// Answers `link.ping`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ping;

impl Handler for Ping {
    async fn handle(&self, call: Call) {
        let answer = match call.body::<PingRequest>() {
            Ok(p) => call.ok(&PingResponse { nonce: p.nonce, version: crate::VERSION.to_owned() }),
            Err(refused) => refused,
        };
        call.respond(answer).await;
    }
}
