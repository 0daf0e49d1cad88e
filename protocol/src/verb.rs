//! The verbs a peer can call on a node, and therefore the unit of permission.

use std::fmt;
use std::str::FromStr;

/// Declares the verbs: one row each, the only place a verb is named.
macro_rules! verbs {
    ($($(#[$doc:meta])* $variant:ident = $name:literal, body $max:expr $(, $members:ident)?;)*) => {
        /// A request kind. Permissions are granted per verb.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum Verb {
            $($(#[$doc])* $variant,)*
        }

        impl Verb {
            /// Every verb, in a stable order.
            pub const ALL: &[Verb] = &[$(Verb::$variant),*];

            /// The verb's name on the wire and in config files.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Verb::$variant => $name,)*
                }
            }

            /// The largest request body this verb accepts, in bytes.
            pub fn max_request_body(self) -> usize {
                match self {
                    $(Verb::$variant => $max,)*
                }
            }

            /// Whether every trusted peer may call it, its handler deciding
            /// what the caller may see (workgroup verbs: a member sees its
            /// groups, nothing else), rather than a per-peer grant.
            pub fn checked_by_handler(self) -> bool {
                match self {
                    $(Verb::$variant => verbs!(@members $($members)?),)*
                }
            }
        }
    };
    (@members members) => { true };
    (@members) => { false };
}

verbs! {
    /// Echo a nonce; learn the peer's protocol version.
    LinkPing = "link.ping", body 256;
    /// The peer's id, display name, version and the verbs the caller may use.
    LinkInfo = "link.info", body 256;
    /// Push a blob to the node.
    BlobPut = "blob.put", body 4 * 1024;
    /// Fetch a blob shared with the caller.
    BlobGet = "blob.get", body 4 * 1024;
    /// Fetch the blob (or a file of the folder) a blob ticket names, with
    /// the ticket's secret (open to trusted peers holding the ticket).
    BlobRedeem = "blob.redeem", body 4 * 1024, members;
    /// Run a prompt on the node's agent.
    AgentAsk = "agent.ask", body 256 * 1024;
    /// Cancel a running ask.
    AgentCancel = "agent.cancel", body 256;
    /// Exchange a workgroup's events: what the caller lacks, and what the
    /// node has (open to members of the group).
    WgSync = "wg.sync", body 256 * 1024, members;
    /// Hand a workgroup's events to a member (or an invitation to a node).
    WgPush = "wg.push", body 960 * 1024, members;
    /// Fetch a blob that a workgroup both nodes are in refers to.
    WgBlob = "wg.blob", body 4 * 1024, members;
    /// A rendezvous: wait to be introduced to another trusted peer of the
    /// node, or ask to be introduced to one that waits (hole punching).
    LinkMeet = "link.meet", body 1024;
    /// Relay the caller's packets to another trusted peer of the node that
    /// asks for the caller in turn (when hole punching fails).
    LinkRelay = "link.relay", body 256;
}

/// A verb name that alp does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown verb `{0}` (known verbs: {known})", known = Verb::known_list())]
pub struct UnknownVerb(pub String);

impl Verb {
    /// What a newly trusted peer may call: liveness and identity only.
    pub const DEFAULT_ALLOWED: [Verb; 2] = [Verb::LinkPing, Verb::LinkInfo];

    fn known_list() -> String {
        Self::ALL.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(", ")
    }
}

impl fmt::Display for Verb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Verb {
    type Err = UnknownVerb;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.iter().copied().find(|v| v.as_str() == s).ok_or_else(|| UnknownVerb(s.to_owned()))
    }
}

impl serde::Serialize for Verb {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Verb {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for &v in Verb::ALL {
            assert_eq!(v.as_str().parse::<Verb>(), Ok(v));
            assert!(v.max_request_body() >= 256, "{v}");
        }
    }

    #[test]
    fn unknown_verb_lists_the_known_ones() {
        let err = "link.pong".parse::<Verb>().unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("link.pong") && msg.contains("link.ping") && msg.contains("agent.ask"));
    }

    #[test]
    fn defaults_are_least_privilege() {
        assert_eq!(Verb::DEFAULT_ALLOWED, [Verb::LinkPing, Verb::LinkInfo]);
    }
}
