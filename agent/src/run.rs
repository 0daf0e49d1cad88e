//! The tool-calling loop: ask the model, run the tools it calls (after
//! approval), hand back the results, until it answers without tools or a
//! limit is reached.

use std::collections::BTreeSet;
use std::time::Duration;

use serde::Serialize;

use std::sync::Arc;

use crate::budget::Budget;
use crate::provider::{Delta, Message, Provider, ProviderError, Reply, Request, Role, Timings, ToolCall, Usage};
use crate::tools::{Tier, Toolset};

/// Limits of one run.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Model calls allowed; a run needing more stops with [`AgentError::TurnLimit`].
    pub max_turns: u32,
    /// Time allowed for one model call.
    pub turn_timeout: Duration,
}

/// Who may run what. Read-only tools always may; others need `yes`, a
/// name in `allowed`, or a yes from `ask` (interactive mode only).
#[derive(Clone, Default)]
pub struct Policy {
    /// Every tool may run.
    pub yes: bool,
    /// Tools that may run without asking.
    pub allowed: BTreeSet<String>,
    /// Asks the user about any other call.
    pub ask: Option<Ask>,
    /// Holds every call the policy allows until someone else decides on
    /// it (a workgroup's approvers); `Err` says why it may not run.
    pub gate: Option<Gate>,
}

/// See [`Policy::gate`]: called for each of a turn's calls, all at once,
/// before any of them runs.
pub type Gate = Arc<
    dyn Fn(&ToolCall, Tier) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send>>
        + Send
        + Sync,
>;

/// Asks the user whether a call may run (interactive mode).
pub type Ask = Arc<dyn Fn(&ToolCall, Tier) -> bool + Send + Sync>;

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy").field("yes", &self.yes).field("allowed", &self.allowed).finish_non_exhaustive()
    }
}

impl Policy {
    fn allows(&self, call: &ToolCall, tier: Tier) -> bool {
        tier == Tier::ReadOnly
            || self.yes
            || self.allowed.iter().any(|p| crate::tools::name_matches(p, &call.name))
            || self.ask.as_ref().is_some_and(|ask| ask(call, tier))
    }
}

/// Everything one run works with, built by [`crate::Setup::job`]: the
/// tools offered, who may run what, the budget, the request's settings
/// and the run's limits.
#[derive(Debug)]
pub struct Job {
    /// Tools offered to the model (`None`: no tools at all).
    pub tools: Option<Toolset>,
    /// Approvals.
    pub policy: Policy,
    /// Spending limits, and what the run spent (read it after the run).
    pub budget: Budget,
    /// Sampling settings; messages and tools are filled in per turn.
    pub base: Request,
    /// Turns and time.
    pub limits: Limits,
}

/// What happens during a run, as it happens.
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    /// A piece of the model's text.
    Text(&'a str),
    /// The in-process model has read `done` of the prompt's `total` tokens.
    Prefill { done: usize, total: usize },
    /// The model finished a turn that calls tools.
    TurnEnd,
    /// A tool is about to run.
    ToolStart(&'a ToolCall),
    /// A tool finished.
    ToolDone { call: &'a ToolCall, ok: bool, output: &'a str },
}

/// One tool call of a run, for reports.
#[derive(Debug, Clone, Serialize)]
pub struct ToolRecord {
    pub name: String,
    pub arguments: serde_json::Value,
    pub ok: bool,
}

/// A finished run.
#[derive(Debug)]
pub struct Outcome {
    /// The model's final text (its last turn).
    pub answer: String,
    /// Summed over every turn.
    pub usage: Usage,
    pub tool_calls: Vec<ToolRecord>,
    pub turns: u32,
    pub truncated: bool,
    pub cost: Option<f64>,
    pub timings: Option<Timings>,
}

/// Why a run stopped early.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Provider(#[from] ProviderError),
    #[error("stopped after {0} model turns without a final answer (raise --max-turns or agent.max_turns)")]
    TurnLimit(u32),
    #[error(
        "the model called {tool} ({tier:?} tool), which needs approval: rerun with --allow-tools {tool} or --yes, \
         or add it to agent.allow_tools"
    )]
    Denied { tool: String, tier: Tier },
    #[error("the model gave no complete answer within {} (model.timeout)", humantime::format_duration(*.0))]
    TurnTimeout(Duration),
    #[error("budget exhausted: {0}")]
    Budget(String),
}

/// Runs the loop for `job`. New messages (assistant turns, tool results)
/// are appended to `messages` as they happen, so the caller keeps the
/// transcript even when the run stops early.
pub async fn run(
    provider: &dyn Provider,
    job: &mut Job,
    messages: &mut Vec<Message>,
    on_event: &mut (dyn FnMut(Event<'_>) + Send),
) -> Result<Outcome, AgentError> {
    let tools = job.tools.as_ref().filter(|_| provider.supports_tools());
    let specs = tools.map(Toolset::specs).unwrap_or_default();
    let (limits, budget) = (job.limits, &mut job.budget);
    let mut records = Vec::new();
    for turn in 1..=limits.max_turns.max(1) {
        budget.check()?;
        let request = Request { messages: messages.clone(), tools: specs.clone(), ..job.base.clone() };
        let reply: Reply = {
            // The turn has `turn_timeout` for its answer. The in-process
            // model's reading of a long prompt does not count against it:
            // each slice read (which the user sees) restarts the clock.
            // (Clamped: a timeout of centuries must not overflow an Instant.)
            let limit = limits.turn_timeout.min(Duration::from_secs(100 * 365 * 86_400));
            let start = tokio::time::Instant::now();
            // Milliseconds from `start` to the last slice read.
            let last = std::sync::atomic::AtomicU64::new(0);
            let mut on_delta = |d: Delta<'_>| match d {
                Delta::Text(t) => on_event(Event::Text(t)),
                Delta::Prefill { done, total } => {
                    last.store(start.elapsed().as_millis() as u64, std::sync::atomic::Ordering::Relaxed);
                    on_event(Event::Prefill { done, total })
                }
            };
            let deadline = || start + Duration::from_millis(last.load(std::sync::atomic::Ordering::Relaxed)) + limit;
            let answer = provider.complete(&request, &mut on_delta);
            tokio::pin!(answer);
            loop {
                tokio::select! {
                    r = &mut answer => break r?,
                    () = tokio::time::sleep_until(deadline()) => {
                        if deadline() <= tokio::time::Instant::now() {
                            return Err(AgentError::TurnTimeout(limits.turn_timeout));
                        }
                    }
                }
            }
        };
        budget.charge(&reply);
        messages.push(Message {
            tool_calls: reply.tool_calls.clone(),
            ..Message::new(Role::Assistant, reply.text.clone())
        });
        if reply.tool_calls.is_empty() {
            return Ok(Outcome {
                answer: reply.text,
                usage: budget.usage(),
                tool_calls: records,
                turns: turn,
                truncated: reply.truncated,
                cost: budget.cost(),
                timings: reply.timings,
            });
        }
        on_event(Event::TurnEnd);

        // Approve every call before running any: one denial stops the run,
        // and every call still gets a result so the transcript stays valid.
        for call in &reply.tool_calls {
            if let Some(t) = job.tools.as_ref().and_then(|ts| ts.tier(&call.name))
                && !job.policy.allows(call, t)
            {
                for c in &reply.tool_calls {
                    messages.push(Message::tool_result(&c.id, "not run: a call in this turn was denied", true));
                }
                return Err(AgentError::Denied { tool: call.name.clone(), tier: t });
            }
        }

        // Calls held by the gate get a result saying why, and the model
        // goes on without them.
        // The turn's calls are asked about together, so that those
        // deciding see them at once and nobody waits on them one by one.
        let mut held: Vec<Option<String>> = vec![None; reply.tool_calls.len()];
        if let (Some(gate), Some(ts)) = (job.policy.gate.as_ref(), job.tools.as_ref()) {
            let mut asked = tokio::task::JoinSet::new();
            for (i, call) in reply.tool_calls.iter().enumerate() {
                if let Some(t) = ts.tier(&call.name) {
                    let verdict = gate(call, t);
                    asked.spawn(async move { (i, verdict.await) });
                }
            }
            while let Some(done) = asked.join_next().await {
                match done {
                    Ok((i, Err(why))) => held[i] = Some(format!("not run: {why}")),
                    Ok((_, Ok(()))) => {}
                    // A gate that failed lets nothing through.
                    Err(_) => held.iter_mut().for_each(|h| *h = Some("not run: its approval failed".into())),
                }
            }
        }
        let results = execute(tools, &reply.tool_calls, &held, on_event).await;
        for (call, (ok, output)) in reply.tool_calls.iter().zip(results) {
            on_event(Event::ToolDone { call, ok, output: &output });
            records.push(ToolRecord { name: call.name.clone(), arguments: call.arguments.clone(), ok });
            messages.push(Message::tool_result(&call.id, output, !ok));
        }
    }
    Err(AgentError::TurnLimit(limits.max_turns.max(1)))
}

/// Runs the calls: read-only ones at the same time, the others one by one,
/// in order. Results come back in call order.
async fn execute(
    tools: Option<&Toolset>,
    calls: &[ToolCall],
    held: &[Option<String>],
    on_event: &mut (dyn FnMut(Event<'_>) + Send),
) -> Vec<(bool, String)> {
    let Some(tools) = tools else {
        return calls.iter().map(|c| (false, format!("no tools are available here (asked for {})", c.name))).collect();
    };
    let mut results: Vec<Option<(bool, String)>> = vec![None; calls.len()];
    for (i, why) in held.iter().enumerate() {
        if let Some(why) = why {
            results[i] = Some((false, why.clone()));
        }
    }
    let read_only = |c: &ToolCall| tools.tier(&c.name) == Some(Tier::ReadOnly);
    let calls_left: Vec<(usize, &ToolCall)> = calls.iter().enumerate().filter(|(i, _)| held[*i].is_none()).collect();
    let mut parallel = tokio::task::JoinSet::new();
    for &(i, call) in calls_left.iter().filter(|(_, c)| read_only(c)) {
        on_event(Event::ToolStart(call));
        let (tools, call) = (tools.clone(), call.clone());
        parallel.spawn(async move { (i, tools.call(&call).await) });
    }
    while let Some(done) = parallel.join_next().await {
        if let Ok((i, r)) = done {
            results[i] = Some(flatten(r));
        }
    }
    for &(i, call) in calls_left.iter().filter(|(_, c)| !read_only(c)) {
        on_event(Event::ToolStart(call));
        results[i] = Some(flatten(tools.call(call).await));
    }
    results.into_iter().map(|r| r.unwrap_or((false, "the tool stopped unexpectedly".into()))).collect()
}

fn flatten(r: Result<String, String>) -> (bool, String) {
    match r {
        Ok(out) => (true, out),
        Err(e) => (false, e),
    }
}
