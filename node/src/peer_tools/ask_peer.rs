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
        let mut on = |ev: &AskEvent| match ev {
            AskEvent::Text { text } => answer.push_str(text),
            AskEvent::TurnEnd => answer.clear(),
            _ => {}
        };
        let last = if let Some(node) = self.0.node(&profile) {
            use crate::service::ask;
            let args = ask::Args {
                op: ask::OP.name.into(),
                peer: peer.to_owned(),
                request: request.clone(),
                wait_secs: ASK_WAIT.as_secs_f64(),
            };
            let progress = |v: serde_json::Value| {
                if let Ok(ev) = serde_json::from_value::<AskEvent>(v) {
                    on(&ev);
                }
            };
            node.run_with::<AskEvent>(&ask::OP, &args, progress)
                .await
                .map_err(|e| format!("peer {peer}: {}", e.error))?
        } else {
            let asked = self.0.with(&profile, &entry, async |d| d.link.ask(&request, ASK_WAIT, &mut on).await).await?;
            asked.map_err(|e| format!("peer {peer}: {e}"))?
        };
        match last {
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
