//! `agent.ask` and `agent.cancel`: agent work on behalf of trusted peers,
//! where the link meets the agent.
//!
//! An ask runs this node's own provider, tools and budget, set up by the
//! agent's [`Setup`] for the caller ([`Caller::Peer`]): its tool grant and
//! daily allowance (its `peers.toml` entry) on top of the profile's caps,
//! and one running ask at a time unless `agent.asks_per_peer` says
//! otherwise. The answer streams back as [`AskEvent`] frames. The ask
//! stops when the caller cancels it, or when its stream can no longer be
//! written (the caller went away).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alp_agent::run::{self, AgentError, Event, Outcome};
use alp_agent::select::{Choice, Selected};
use alp_agent::{Caller, Message, ProviderError, Role, Setup};
use alp_link::wire::FrameWrite;
use alp_link::{Call, Handler};
use alp_protocol::NodeId;
use alp_protocol::envelope::{
    AskEvent, AskFailure, AskRequest, CancelRequest, CancelResponse, Empty, ErrorCode, MAX_ASK_PROMPT, Response, fixed,
    to_cbor,
};
use tokio::sync::{OnceCell, oneshot};

/// What answering asks needs: the agent setup, the provider (chosen and
/// loaded on the first ask), and the running asks.
pub(crate) struct AskService {
    setup: Setup,
    /// Makes the MCP tools of one ask: each ask gets servers of its own,
    /// started on its first call and stopped when it ends.
    mcp: Option<MakeTools>,
    provider: OnceCell<Result<Arc<Selected>, String>>,
    running: Mutex<Running>,
}

/// Makes a fresh set of tools.
type MakeTools = Box<dyn Fn() -> Vec<Arc<dyn alp_agent::tools::Tool>> + Send + Sync>;

/// Per caller: its running asks, each with the sender that cancels it.
type Running = HashMap<NodeId, Vec<([u8; 16], oneshot::Sender<()>)>>;

impl std::fmt::Debug for AskService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AskService").field("setup", &self.setup).finish_non_exhaustive()
    }
}

impl AskService {
    /// Answers with `setup` (its tools are what peers may be granted) and
    /// MCP tools made afresh for every ask; the model loads on the first.
    pub(crate) fn with_mcp(
        setup: Setup,
        mcp: impl Fn() -> Vec<Arc<dyn alp_agent::tools::Tool>> + Send + Sync + 'static,
    ) -> Arc<Self> {
        Arc::new(AskService { setup, mcp: Some(Box::new(mcp)), provider: OnceCell::new(), running: Mutex::default() })
    }

    /// The setup of one ask: with MCP tools of its own, if there are any.
    fn for_one_ask(&self) -> Setup {
        match (&self.mcp, self.setup.tools()) {
            (Some(make), Some(tools)) => self.setup.with_tools(tools.clone().with_all(make())),
            _ => self.setup.clone(),
        }
    }

    /// The agent setup asks (and workgroup tasks) run with.
    pub(crate) fn setup(&self) -> &Setup {
        &self.setup
    }

    /// The provider, chosen and loaded on first use.
    pub(crate) async fn provider(&self) -> Result<Arc<Selected>, String> {
        self.provider
            .get_or_init(|| async {
                let setup = self.setup.clone();
                let chosen = tokio::task::spawn_blocking(move || setup.provider(&Choice::default())).await;
                // The detail (a path, a URL) stays in this node's log.
                let failed = |e: String| {
                    tracing::warn!("cannot answer asks: {e}");
                    "this node cannot answer: its model is not available (its log says why)".to_owned()
                };
                match chosen {
                    Ok(Ok(s)) => Ok(Arc::new(s)),
                    Ok(Err(e)) => Err(failed(e.to_string())),
                    Err(e) => Err(failed(e.to_string())),
                }
            })
            .await
            .clone()
    }

    fn running(&self) -> std::sync::MutexGuard<'_, Running> {
        self.running.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers an ask; `None` when the caller already has as many running
    /// as it may.
    fn start(&self, peer: NodeId, ask_id: [u8; 16]) -> Option<oneshot::Receiver<()>> {
        let max = self.setup.config().agent.asks_per_peer.max(1) as usize;
        let mut running = self.running();
        let list = running.entry(peer).or_default();
        list.retain(|(_, tx)| !tx.is_closed());
        if list.len() >= max {
            return None;
        }
        let (tx, rx) = oneshot::channel();
        list.push((ask_id, tx));
        Some(rx)
    }

    fn finish(&self, peer: NodeId, ask_id: [u8; 16]) {
        let mut running = self.running();
        if let Some(list) = running.get_mut(&peer) {
            list.retain(|(id, _)| *id != ask_id);
            if list.is_empty() {
                running.remove(&peer);
            }
        }
    }

    /// Stops the caller's ask `ask_id`; false if it is not running.
    fn cancel(&self, peer: NodeId, ask_id: [u8; 16]) -> bool {
        let mut running = self.running();
        let Some(list) = running.get_mut(&peer) else { return false };
        let Some(pos) = list.iter().position(|(id, _)| *id == ask_id) else { return false };
        let (_, tx) = list.remove(pos);
        tx.send(()).is_ok()
    }
}

/// Answers `agent.ask`.
#[derive(Debug)]
pub(crate) struct Ask(pub(crate) Arc<AskService>);

/// Answers `agent.cancel`.
#[derive(Debug)]
pub(crate) struct Cancel(pub(crate) Arc<AskService>);

impl Handler for Cancel {
    async fn handle(&self, call: Call) {
        let answer = match call.body::<CancelRequest>() {
            Ok(c) => match fixed::<16>(&c.ask_id, "ask_id") {
                Ok(ask_id) => call.ok(&CancelResponse { cancelled: self.0.cancel(call.session.peer, ask_id) }),
                Err(e) => call.error(ErrorCode::BadRequest, e.to_string()),
            },
            Err(refused) => refused,
        };
        call.respond(answer).await;
    }
}

/// The ask, with its id and sizes checked; or the answer that refuses it.
fn parse(call: &Call) -> Result<(AskRequest, [u8; 16]), Response> {
    let ask = call.body::<AskRequest>()?;
    let ask_id = fixed::<16>(&ask.ask_id, "ask_id").map_err(|e| call.error(ErrorCode::BadRequest, e.to_string()))?;
    if ask.prompt.len() > MAX_ASK_PROMPT || ask.system.as_ref().is_some_and(|s| s.len() > MAX_ASK_PROMPT) {
        return Err(call.error(ErrorCode::TooLarge, format!("the prompt is over {} KiB", MAX_ASK_PROMPT >> 10)));
    }
    Ok((ask, ask_id))
}

impl Handler for Ask {
    async fn handle(&self, mut call: Call) {
        let svc = &self.0;
        let (ask, ask_id) = match parse(&call) {
            Ok(x) => x,
            Err(refused) => return call.respond(refused).await,
        };
        let peer = call.peer.clone();
        let Some(cancelled) = svc.start(call.session.peer, ask_id) else {
            let max = svc.setup.config().agent.asks_per_peer.max(1);
            let msg =
                format!("busy: this node answers {max} ask(s) per caller at a time; wait, or cancel the running one");
            return call.refuse(ErrorCode::Busy, msg).await;
        };
        let _registered = Registered { svc, peer: call.session.peer, ask_id };
        let selected = match svc.provider().await {
            Ok(s) => s,
            Err(msg) => return call.refuse(ErrorCode::Internal, msg).await,
        };
        let provider = selected.provider();
        let caller = Caller::Peer(&peer);
        let setup = svc.for_one_ask();
        let mut job = match setup.job(caller, provider) {
            Ok(job) => job,
            Err(e) => {
                tracing::warn!(peer = %peer.name, "cannot set up an ask: {e}");
                return call.refuse(ErrorCode::Internal, "this node cannot answer now (its log says why)").await;
            }
        };
        let ok = call.ok(&Empty {});
        if !call.reply(ok).await {
            return;
        }
        tracing::info!(peer = %peer.name, prompt_bytes = ask.prompt.len(), "answering an ask");
        let mut messages: Vec<Message> = ask.system.iter().map(|s| Message::new(Role::System, s.clone())).collect();
        messages.push(Message::new(Role::User, ask.prompt));
        let ended = stream_run(&mut call, provider, &mut job, &mut messages, cancelled).await;
        setup.record(caller, provider, &job);
        if let Some(last) = ended {
            finish(call, last).await;
        } else {
            tracing::info!(peer = %peer.name, "the caller went away; ask stopped");
        }
    }
}

/// Runs the ask, streaming its events to the caller; the last event to
/// send, or `None` if the caller went away.
async fn stream_run(
    call: &mut Call,
    provider: &dyn alp_agent::Provider,
    job: &mut run::Job,
    messages: &mut Vec<Message>,
    mut cancelled: oneshot::Receiver<()>,
) -> Option<AskEvent> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<AskEvent>();
    let mut on_event = |ev: Event<'_>| {
        let out = match ev {
            Event::Text(t) => AskEvent::Text { text: t.to_owned() },
            Event::TurnEnd => AskEvent::TurnEnd,
            Event::ToolDone { call, ok, .. } => AskEvent::Tool { name: call.name.clone(), ok },
            Event::ToolStart(_) | Event::Prefill { .. } => return,
        };
        let _ = tx.send(out);
    };
    // `None`: cancelled by the caller.
    let ended = {
        let run = run::run(provider, job, messages, &mut on_event);
        tokio::pin!(run);
        loop {
            tokio::select! {
                r = &mut run => break Some(r),
                Some(ev) = rx.recv() => {
                    if call.send.write_frame(to_cbor(&ev)).await.is_err() {
                        return None;
                    }
                }
                _ = &mut cancelled => break None,
            }
        }
    };
    while let Ok(ev) = rx.try_recv() {
        if call.send.write_frame(to_cbor(&ev)).await.is_err() {
            return None;
        }
    }
    Some(match ended {
        None => AskEvent::Failed { code: AskFailure::Cancelled, message: "cancelled by the caller".into() },
        Some(result) => last_event(result),
    })
}

/// The event that ends an ask that ran.
fn last_event(result: Result<Outcome, AgentError>) -> AskEvent {
    let e = match result {
        Ok(o) => {
            return AskEvent::Done {
                input_tokens: o.usage.input_tokens,
                output_tokens: o.usage.output_tokens,
                cost: o.cost,
            };
        }
        Err(e) => e,
    };
    let code = match &e {
        AgentError::Provider(ProviderError::Config(_)) => AskFailure::Config,
        AgentError::Provider(_) | AgentError::TurnTimeout(_) => AskFailure::Runtime,
        AgentError::TurnLimit(_) | AgentError::Budget(_) => AskFailure::Limit,
        AgentError::Denied { .. } => AskFailure::Denied,
    };
    let message = match &e {
        // The caller cannot change this node's flags: say what the owner can do.
        AgentError::Denied { tool, tier } => format!(
            "the model called {tool} ({tier:?} tool), which this node has not granted you; its owner can grant it \
             with `alp peer set NAME --ask-tools {tool}`"
        ),
        _ => e.to_string(),
    };
    AskEvent::Failed { code, message }
}

/// Sends the last event and lets it leave before the stream is dropped.
async fn finish(mut call: Call, last: AskEvent) {
    if call.send.write_frame(to_cbor(&last)).await.is_ok() {
        let _ = call.send.finish();
        let _ = tokio::time::timeout(Duration::from_secs(5), call.send.stopped()).await;
    }
}

/// Removes a running ask when its handler ends, however it ends.
struct Registered<'a> {
    svc: &'a AskService,
    peer: NodeId,
    ask_id: [u8; 16],
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.svc.finish(self.peer, self.ask_id);
    }
}
