//! `ask_peer`: a trusted peer's agent answers a prompt.

use std::sync::Arc;
use std::time::Duration;

use alp_agent::provider::BoxFuture;
use alp_agent::tools::{Args, Spec, Tier, Tool, arg, text};
use alp_protocol::envelope::{AskEvent, AskRequest};

use super::Peers;

/// How long it waits for each piece of the peer's answer.
const ASK_WAIT: Duration = Duration::from_secs(300);

/// Asks a peer's agent.
#[derive(Debug)]
pub(crate) struct AskPeer(Arc<Peers>);

impl AskPeer {
    pub(crate) fn new(peers: &Arc<Peers>) -> Self {
        Self(peers.clone())
    }

    async fn ask(&self, peer: &str, prompt: &str) -> Result<String, String> {
        let (profile, entry) = self.0.open_with(peer)?;
        let mut ask_id = [0u8; 16];
        getrandom::fill(&mut ask_id).map_err(|e| e.to_string())?;
        let request = AskRequest { prompt: prompt.to_owned(), system: None, ask_id: ask_id.to_vec() };
        let mut answer = String::new();
        let last = self
            .0
            .with(&profile, &entry, async |d| {
                d.link
                    .ask(&request, ASK_WAIT, |ev| match ev {
                        AskEvent::Text { text } => answer.push_str(text),
                        AskEvent::TurnEnd => answer.clear(),
                        _ => {}
                    })
                    .await
            })
            .await?;
        match last.map_err(|e| format!("peer {peer}: {e}"))? {
            AskEvent::Done { .. } => Ok(answer),
            AskEvent::Failed { message, .. } => Err(format!("peer {peer}: {message}")),
            _ => Err(format!("peer {peer} ended the answer oddly")),
        }
    }
}

impl Tool for AskPeer {
    fn spec(&self) -> Spec {
        Spec::new("ask_peer", Tier::SideEffect, "Ask a trusted peer's agent; returns its answer.")
            .arg("peer", text("The peer's name"))
            .arg("prompt", text(""))
    }

    fn call<'a>(&'a self, args: &'a Args) -> BoxFuture<'a, Result<String, String>> {
        Box::pin(async move { self.ask(arg(args, "peer")?, arg(args, "prompt")?).await })
    }
}
