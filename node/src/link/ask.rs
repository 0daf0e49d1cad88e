//! `agent.ask` and `agent.cancel`: agent work on behalf of trusted peers.
//!
//! An ask runs this node's own provider, tools and budget. Each caller is
//! held to its own tool allow list and daily budget (its `peers.toml`
//! entry), on top of the profile's caps, and to one running ask at a time
//! unless `agent.asks_per_peer` says otherwise. The answer streams back as
//! [`AskEvent`] frames. The ask stops when the caller cancels it, or when
//! its stream can no longer be written (the caller went away).

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alp_profiles::Home;
use alp_profiles::config::Resolved;
use alp_profiles::peers::Peer;
use alp_protocol::NodeId;
use alp_protocol::envelope::{
    AskEvent, AskFailure, AskRequest, CancelRequest, CancelResponse, Empty, ErrorCode, MAX_ASK_PROMPT, Request,
    Response, fixed, from_cbor, to_cbor,
};
use quinn::SendStream;
use tokio::sync::{OnceCell, oneshot};

use super::server::{LinkInfo, ServerState};
use super::wire;
use crate::agent::ledger::{self, Ledger};
use crate::agent::run::{self, AgentError, Budget, Event, Limits, Policy};
use crate::agent::select::{self, Choice, Selected};
use crate::agent::tools::{TOOLS, ToolBox};
use crate::agent::{Message, ProviderError, Request as ModelRequest, Role};

/// What answering asks needs: config, where the workspace and ledger are,
/// the provider (chosen and loaded on the first ask), and the running asks.
pub struct AskService {
    resolved: Resolved,
    home: Home,
    workspace: PathBuf,
    ledger: Ledger,
    provider: OnceCell<Result<Arc<Selected>, String>>,
    running: Mutex<Running>,
}

/// Per caller: its running asks, each with the sender that cancels it.
type Running = HashMap<NodeId, Vec<([u8; 16], oneshot::Sender<()>)>>;

impl std::fmt::Debug for AskService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AskService").field("workspace", &self.workspace).finish_non_exhaustive()
    }
}

impl AskService {
    /// A service using `resolved` config, the profile's `workspace` and
    /// `ledger_dir`; the model loads on the first ask.
    pub fn new(resolved: Resolved, home: Home, workspace: PathBuf, ledger_dir: PathBuf) -> Self {
        AskService {
            resolved,
            home,
            workspace,
            ledger: Ledger::new(&ledger_dir),
            provider: OnceCell::new(),
            running: Mutex::default(),
        }
    }

    async fn provider(&self) -> Result<Arc<Selected>, String> {
        self.provider
            .get_or_init(|| async {
                let (resolved, home) = (self.resolved.clone(), self.home.clone());
                let chosen = tokio::task::spawn_blocking(move || {
                    select::select(&resolved, &home, &Choice::default(), &select::process_env)
                })
                .await;
                match chosen {
                    Ok(Ok(s)) => Ok(Arc::new(s)),
                    Ok(Err(e)) => Err(format!("this node cannot answer: {e}")),
                    Err(e) => Err(format!("this node cannot answer: {e}")),
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
        let max = self.resolved.config.agent.asks_per_peer.max(1) as usize;
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

    /// The caller's budget: its own daily allowance, within the profile's caps.
    fn budget(&self, peer: &Peer, provider_model: &str) -> Result<Budget, String> {
        let today = ledger::day(alp_profiles::unix_now());
        let mine = self.ledger.totals(&today, Some(peer.name.as_str())).map_err(|e| e.to_string())?;
        let all = self.ledger.totals(&today, None).map_err(|e| e.to_string())?;
        let caps = &self.resolved.config.budget;
        let mut tokens_left = peer.ask_daily_tokens.saturating_sub(mine.tokens);
        if caps.daily_tokens > 0 {
            tokens_left = tokens_left.min(caps.daily_tokens.saturating_sub(all.tokens));
        }
        let mut cost_left = (peer.ask_daily_cost > 0.0).then_some(peer.ask_daily_cost - mine.cost);
        if caps.daily_cost > 0.0 {
            let profile_left = caps.daily_cost - all.cost;
            cost_left = Some(cost_left.map_or(profile_left, |c| c.min(profile_left)));
        }
        Ok(Budget {
            price: self.resolved.prices.get(provider_model).copied(),
            daily_tokens_left: Some(tokens_left),
            daily_cost_left: cost_left,
            ..Budget::default()
        })
    }

    /// The tools this caller's asks may use: its allow list, minus what the
    /// profile denies. `None` when that leaves nothing.
    fn tools(&self, peer: &Peer) -> Result<Option<ToolBox>, String> {
        let granted: BTreeSet<&str> = peer.ask_tools.iter().map(String::as_str).collect();
        let mut denied: BTreeSet<String> = self.resolved.config.agent.deny_tools.iter().cloned().collect();
        denied.extend(TOOLS.iter().filter(|t| !granted.contains(t.0)).map(|t| t.0.to_owned()));
        if denied.len() == TOOLS.len() {
            return Ok(None);
        }
        ToolBox::new(&self.workspace, denied, self.resolved.config.agent.shell_timeout.0)
            .map(Some)
            .map_err(|e| format!("workspace: {e}"))
    }
}

async fn refuse(send: &mut SendStream, id: u64, code: ErrorCode, message: String) {
    if wire::write_frame(send, &Response::err(id, code, message).encode()).await.is_ok() {
        let _ = send.finish();
    }
}

async fn event(send: &mut SendStream, ev: &AskEvent) -> bool {
    wire::write_frame(send, &to_cbor(ev)).await.is_ok()
}

/// `agent.cancel`.
pub(crate) fn serve_cancel(request: &Request, link: &LinkInfo, state: &ServerState) -> Response {
    let id = request.id;
    let Some(svc) = state.agent() else {
        return Response::err(id, ErrorCode::UnknownVerb, "this node does not answer asks");
    };
    let ask_id = match from_cbor::<CancelRequest>(&request.body).and_then(|c| fixed::<16>(&c.ask_id, "ask_id")) {
        Ok(a) => a,
        Err(e) => return Response::err(id, ErrorCode::BadRequest, e.to_string()),
    };
    let cancelled = svc.cancel(link.peer, ask_id);
    Response::ok(id, to_cbor(&CancelResponse { cancelled }))
}

/// `agent.ask`.
pub(crate) async fn serve_ask(mut send: SendStream, request: Request, link: &LinkInfo, state: &ServerState) {
    let id = request.id;
    let Some(svc) = state.agent() else {
        return refuse(&mut send, id, ErrorCode::UnknownVerb, "this node does not answer asks".into()).await;
    };
    let ask = match from_cbor::<AskRequest>(&request.body) {
        Ok(a) => a,
        Err(e) => return refuse(&mut send, id, ErrorCode::BadRequest, e.to_string()).await,
    };
    let ask_id = match fixed::<16>(&ask.ask_id, "ask_id") {
        Ok(a) => a,
        Err(e) => return refuse(&mut send, id, ErrorCode::BadRequest, e.to_string()).await,
    };
    if ask.prompt.len() > MAX_ASK_PROMPT || ask.system.as_ref().is_some_and(|s| s.len() > MAX_ASK_PROMPT) {
        let msg = format!("the prompt is over {} KiB", MAX_ASK_PROMPT >> 10);
        return refuse(&mut send, id, ErrorCode::TooLarge, msg).await;
    }
    let peer = match state.peer(&link.peer) {
        Some(p) => p,
        None => return refuse(&mut send, id, ErrorCode::Forbidden, "this node no longer trusts you".into()).await,
    };
    let Some(mut cancelled) = svc.start(link.peer, ask_id) else {
        let max = svc.resolved.config.agent.asks_per_peer.max(1);
        let msg = format!("busy: this node answers {max} ask(s) per caller at a time; wait, or cancel the running one");
        return refuse(&mut send, id, ErrorCode::Busy, msg).await;
    };
    let _registered = Registered { svc, peer: link.peer, ask_id };
    let selected = match svc.provider().await {
        Ok(s) => s,
        Err(msg) => return refuse(&mut send, id, ErrorCode::Internal, msg).await,
    };
    let provider = selected.provider();
    let setup = svc.tools(&peer).and_then(|tools| Ok((tools, svc.budget(&peer, provider.model())?)));
    let (tools, mut budget) = match setup {
        Ok(s) => s,
        Err(msg) => return refuse(&mut send, id, ErrorCode::Internal, msg).await,
    };
    if wire::write_frame(&mut send, &Response::ok(id, to_cbor(&Empty {})).encode()).await.is_err() {
        return;
    }
    tracing::info!(peer = %peer.name, prompt_bytes = ask.prompt.len(), "answering an ask");

    let config = &svc.resolved.config;
    let mut policy = Policy { yes: false, allowed: peer.ask_tools.iter().cloned().collect(), ask: None };
    let mut messages: Vec<Message> = ask.system.iter().map(|s| Message::new(Role::System, s.clone())).collect();
    messages.push(Message::new(Role::User, ask.prompt));
    let m = &config.model;
    let base = ModelRequest {
        messages: Vec::new(),
        tools: Vec::new(),
        max_tokens: m.max_tokens,
        temperature: m.temperature,
        top_p: m.top_p,
        seed: m.seed,
    };
    let limits = Limits { max_turns: config.agent.max_turns, turn_timeout: m.timeout.0 };
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<AskEvent>();
    let mut on_event = |ev: Event<'_>| {
        let out = match ev {
            Event::Text(t) => AskEvent::Text { text: t.to_owned() },
            Event::TurnEnd => AskEvent::TurnEnd,
            Event::ToolDone { call, ok, .. } => AskEvent::Tool { name: call.name.clone(), ok },
            Event::ToolStart(_) => return,
        };
        let _ = tx.send(out);
    };
    // How the run ended: finished (well or not), cancelled, or the caller left.
    enum Ended {
        Ran(Result<run::Outcome, AgentError>),
        Cancelled,
        CallerGone,
    }
    let ended = {
        let run =
            run::run(provider, tools.as_ref(), &mut policy, &mut budget, &mut messages, &base, limits, &mut on_event);
        tokio::pin!(run);
        loop {
            tokio::select! {
                r = &mut run => break Ended::Ran(r),
                Some(ev) = rx.recv() => {
                    if !event(&mut send, &ev).await {
                        tracing::info!(peer = %peer.name, "the caller went away; ask stopped");
                        break Ended::CallerGone;
                    }
                }
                _ = &mut cancelled => break Ended::Cancelled,
            }
        }
    };
    svc.ledger.record(provider.name(), provider.model(), &budget.turns, peer.name.as_str());
    if matches!(ended, Ended::CallerGone) {
        return;
    }
    while let Ok(ev) = rx.try_recv() {
        if !event(&mut send, &ev).await {
            return;
        }
    }
    let last = match ended {
        Ended::CallerGone => return,
        Ended::Cancelled => AskEvent::Failed { code: AskFailure::Cancelled, message: "cancelled by the caller".into() },
        Ended::Ran(Ok(o)) => {
            AskEvent::Done { input_tokens: o.usage.input_tokens, output_tokens: o.usage.output_tokens, cost: o.cost }
        }
        Ended::Ran(Err(e)) => {
            let code = match &e {
                AgentError::Provider(ProviderError::Config(_)) => AskFailure::Config,
                AgentError::Provider(_) | AgentError::TurnTimeout(_) => AskFailure::Runtime,
                AgentError::TurnLimit(_) | AgentError::Budget(_) => AskFailure::Limit,
                AgentError::Denied { .. } => AskFailure::Denied,
            };
            let message = match code {
                // The caller cannot change this node's flags: say what the owner can do.
                AskFailure::Denied => {
                    format!("{e}; on this node the owner grants tools with `alp peer set NAME --ask-tools LIST`")
                }
                _ => e.to_string(),
            };
            AskEvent::Failed { code, message }
        }
    };
    if event(&mut send, &last).await {
        let _ = send.finish();
        // Let the last frame leave before the stream is dropped.
        let _ = tokio::time::timeout(Duration::from_secs(5), send.stopped()).await;
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
