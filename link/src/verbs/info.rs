//! `link.info`: who this node is, what the caller may call here, and
//! where it can be reached (a signed address record).

use alp_protocol::Verb;
use alp_protocol::envelope::InfoResponse;

use crate::endpoint::{LinkEndpoint, Presence};
use crate::router::{Call, Handler};

/// How long the address record `link.info` hands out stays valid (s): a
/// day, so that addresses a node stopped announcing are not tried for
/// long, while a peer that learned them can still reach it tomorrow.
pub const RECORD_LIFETIME: u64 = 24 * 3600;

/// Answers `link.info` for the node of an endpoint.
#[derive(Debug, Clone)]
pub struct Info {
    presence: Presence,
}

impl Info {
    /// Answers for `endpoint`'s node, as it presents itself at the time.
    pub fn new(endpoint: &LinkEndpoint) -> Self {
        Self { presence: endpoint.presence().clone() }
    }
}

impl Handler for Info {
    async fn handle(&self, call: Call) {
        let me = self.presence.me();
        let info = InfoResponse {
            node_id: me.node_id(),
            display_name: me.display_name.clone(),
            version: crate::VERSION.to_owned(),
            verbs: call
                .peer
                .allow
                .iter()
                .copied()
                .chain(Verb::ALL.iter().copied().filter(|v| v.checked_by_handler()))
                .map(|v| v.as_str().to_owned())
                .collect(),
            addrs: me.addr_record(alp_profiles::unix_now()),
        };
        let answer = call.ok(&info);
        call.respond(answer).await;
    }
}
