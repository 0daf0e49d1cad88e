//! Running one attempt of a task on this node: claim it, keep the claim
//! renewed, fetch its inputs into a workspace of its own, run this
//! profile's agent on the goal (its model, the tools its card offers the
//! group, the task's budget within the profile's daily caps), report
//! progress, then the spend and the result (text, and the files it wrote
//! as artefact blobs). Aborting the run (cancel, superseded) drops the
//! agent turn and kills its tools' process groups.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use alp_agent::run::{self, Event as RunEvent};
use alp_agent::tools::{Registry, ShellConfig, Workspace};
use alp_agent::{Caller, Message, Role, TaskGrant};
use alp_blobstore::BlobHash;
use alp_protocol::{NodeId, Verb};
use alp_workgroup::body::{Artefact, AttemptRef, Complete, Fail, Progress, Spend};
use alp_workgroup::state::Task;
use alp_workgroup::{Body, EventId, GroupId, State};

use super::{WgNode, tools};

/// Least time between two progress reports.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

/// What a run for a task knows about it; shared with its tools.
#[derive(Debug)]
pub(crate) struct RunCtx {
    pub(crate) node: Arc<WgNode>,
    pub(crate) group: GroupId,
    pub(crate) task: EventId,
    pub(crate) attempt: u32,
    /// Set when a delegation was refused as a loop: the attempt fails.
    pub(crate) loop_detected: std::sync::Mutex<Option<String>>,
}

/// Runs attempt `attempt` of `task` and writes its outcome.
pub(crate) async fn run(node: &Arc<WgNode>, group: GroupId, task: EventId, attempt: u32) {
    let wg = &node.wg;
    let claim = Body::Claim(AttemptRef { task: task.0, attempt });
    match wg.write(group, claim, vec![task]) {
        Ok(e) if !refused(node, group, e.id()) => {}
        Ok(_) => return,
        Err(e) => {
            tracing::warn!("cannot claim task {}: {e}", task.short());
            return;
        }
    }
    let Some(state) = wg.state(group) else { return };
    let Some(spec) = state.tasks.get(&task).cloned() else { return };
    tracing::info!(group = %state.name, task = %task.short(), attempt, "working on a task");
    let _renewals = AbortOnDrop(tokio::spawn(renew(node.clone(), group, task, attempt, state.policy.lease_secs)));
    let ctx = Arc::new(RunCtx { node: node.clone(), group, task, attempt, loop_detected: Default::default() });
    let outcome = work(&ctx, &state, &spec).await;
    let looped = ctx.loop_detected.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
    let body = match (outcome, looped) {
        (_, Some(reason)) => Body::Fail(Fail { task: task.0, attempt, reason, retry: false }),
        (Ok((text, artefacts)), None) => Body::Complete(Complete { task: task.0, attempt, text, artefacts }),
        (Err(failure), None) => {
            Body::Fail(Fail { task: task.0, attempt, reason: failure.reason, retry: failure.retry })
        }
    };
    if let Err(e) = wg.write(group, body, vec![task]) {
        tracing::warn!("cannot report on task {}: {e}", task.short());
    }
}

/// Renews the claim every third of the lease until dropped.
async fn renew(node: Arc<WgNode>, group: GroupId, task: EventId, attempt: u32, lease_secs: u32) {
    let every = Duration::from_millis(u64::from(lease_secs) * 1000 / 3).max(Duration::from_millis(200));
    loop {
        tokio::time::sleep(every).await;
        let body = Body::Renew(AttemptRef { task: task.0, attempt });
        if let Err(e) = node.wg.write(group, body, vec![task]) {
            tracing::debug!("cannot renew a claim: {e}");
        }
    }
}

/// Why an attempt failed, and whether another could succeed.
struct Failure {
    reason: String,
    retry: bool,
}

impl From<String> for Failure {
    fn from(reason: String) -> Self {
        Self { reason, retry: true }
    }
}

/// The agent's run: the answer and the files it wrote, or why it failed.
async fn work(ctx: &Arc<RunCtx>, state: &State, task: &Task) -> Result<(String, Vec<Artefact>), Failure> {
    let node = &ctx.node;
    let dir = node.wg.dir_of(ctx.group).join("work").join(format!("{}-{}", ctx.task.short(), ctx.attempt));
    let workspace = prepare(node, state, task, &dir).await?;
    let inputs: Vec<String> = task.spec.inputs.iter().map(|a| a.name.clone()).collect();
    let selected = node.asks.provider().await?;
    let provider = selected.provider();
    let registry = Registry::builtin(&workspace, &ShellConfig::for_peers(&node.config.agent))
        .with(tools::AskCreator(ctx.clone()))
        .with(tools::Delegate(ctx.clone()));
    let mut granted: Vec<String> =
        node.config.workgroup.tools.iter().filter(|t| registry.tier(t).is_some()).cloned().collect();
    granted.extend([tools::ASK_CREATOR.to_owned(), tools::DELEGATE.to_owned()]);
    // What earlier attempts spent comes out of the task's budget.
    let spent = task.spent();
    let grant = TaskGrant {
        ledger_name: format!("wg:{}", state.name),
        tools: granted,
        max_tokens: task.spec.budget.tokens.map(|b| b.saturating_sub(spent.tokens)),
        max_cost: task.spec.budget.usd_micros.map(|b| b.saturating_sub(spent.usd_micros) as f64 / 1e6),
    };
    let setup = node.asks.setup().with_tools(registry);
    let caller = Caller::Task(&grant);
    let mut job = setup.job(caller, provider).map_err(|e| e.to_string())?;
    let mut messages = vec![
        Message::new(Role::System, system_prompt(node, state, &inputs)),
        Message::new(Role::User, task.spec.goal.clone()),
    ];
    let started = Instant::now();
    let mut last_report = Instant::now() - PROGRESS_EVERY;
    let mut on_event = |ev: RunEvent<'_>| {
        let text = match ev {
            RunEvent::ToolDone { call, ok, .. } => format!("ran {} ({})", call.name, if ok { "ok" } else { "failed" }),
            RunEvent::TurnEnd => "finished a turn".to_owned(),
            _ => return,
        };
        if last_report.elapsed() >= PROGRESS_EVERY {
            last_report = Instant::now();
            let body = Body::Progress(Progress { task: ctx.task.0, attempt: ctx.attempt, text });
            let _ = ctx.node.wg.write(ctx.group, body, vec![ctx.task]);
        }
    };
    let result = run::run(provider, &mut job, &mut messages, &mut on_event).await;
    setup.record(caller, provider, &job);
    let usage = job.budget.usage();
    let spend = Spend {
        task: ctx.task.0,
        attempt: ctx.attempt,
        model: format!("{}:{}", provider.name(), provider.model()),
        input_tokens: usage.input_tokens,
        output_tokens: usage.output_tokens,
        usd_micros: job.budget.cost().map_or(0, |c| (c.max(0.0) * 1e6).round() as u64),
        model_ms: started.elapsed().as_millis() as u64,
    };
    if let Err(e) = node.wg.write(ctx.group, Body::Spend(spend), vec![ctx.task]) {
        tracing::warn!("cannot report spend: {e}");
    }
    let outcome =
        result.map_err(|e| Failure { retry: !matches!(e, run::AgentError::Budget(_)), reason: e.to_string() })?;
    let artefacts = collect(node, &dir, task).await?;
    Ok((outcome.answer, artefacts))
}

fn system_prompt(node: &WgNode, state: &State, inputs: &[String]) -> String {
    let me = node.wg.me();
    let roles = state.members.get(&me).map(|m| m.roles.join(", ")).unwrap_or_default();
    let mut out = format!(
        "You are a member of the workgroup \"{}\"{}, working on one task for it.\n",
        state.name,
        if roles.is_empty() { String::new() } else { format!(" (your roles: {roles})") }
    );
    if !state.briefing.is_empty() {
        out.push_str(&format!("The group's briefing: {}\n", state.briefing));
    }
    if inputs.is_empty() {
        out.push_str("The task has no input files.\n");
    } else {
        out.push_str(&format!("Its input files are in your workspace: {}.\n", inputs.join(", ")));
    }
    out.push_str(
        "Files you write in your workspace are returned with your answer. If you cannot go on without an answer \
         from whoever asked, call ask_creator; to hand part of the work to another member, call delegate. \
         Answer with the result itself.",
    );
    out
}

/// A fresh workspace for the attempt, holding its inputs (fetched from
/// the members that have them if this node lacks them).
async fn prepare(node: &Arc<WgNode>, state: &State, task: &Task, dir: &Path) -> Result<Arc<Workspace>, String> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|e| format!("cannot clear {}: {e}", dir.display()))?;
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    for input in &task.spec.inputs {
        let hash = BlobHash::from(blake3::Hash::from_bytes(input.hash));
        fetch(node, state, input, &[task.creator])
            .await
            .map_err(|e| format!("cannot fetch input {}: {e}", input.name))?;
        node.store.export(&hash, &dir.join(&input.name)).map_err(|e| format!("input {}: {e}", input.name))?;
    }
    Workspace::open(dir).map_err(|e| e.to_string())
}

/// Makes sure this node's store holds `artefact`: asks the members in
/// `first`, then those whose task outputs name it, then every other
/// active member, until one has it (`wg.blob`, verified on arrival).
pub(crate) async fn fetch(node: &WgNode, state: &State, artefact: &Artefact, first: &[NodeId]) -> Result<(), String> {
    let hash = BlobHash::from(blake3::Hash::from_bytes(artefact.hash));
    if node.store.get(&hash).is_ok() {
        return Ok(());
    }
    let me = node.wg.me();
    let makers = state
        .tasks
        .values()
        .filter_map(|t| t.output.as_ref())
        .filter(|o| o.artefacts.iter().any(|a| a.hash == artefact.hash))
        .map(|o| o.by);
    let members = state.members.values().filter(|m| m.is_active()).map(|m| m.node);
    let mut tried = Vec::new();
    let mut last = "no member has it".to_owned();
    for holder in first.iter().copied().chain(makers).chain(members) {
        if holder == me || tried.contains(&holder) {
            continue;
        }
        tried.push(holder);
        let got = match node.links.get(holder).await {
            Ok(link) => link
                .get_blob_via(Verb::WgBlob, &node.store, hash, None, &alp_link::silent)
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match got {
            Ok(_) => return Ok(()),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// The files the run left in its workspace (top level; inputs it did not
/// change are left out), stored as blobs.
async fn collect(node: &Arc<WgNode>, dir: &Path, task: &Task) -> Result<Vec<Artefact>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("cannot read the workspace: {e}"))?;
    let mut files: Vec<(String, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| Some((e.file_name().into_string().ok()?, e.path())))
        .collect();
    files.sort();
    let store = node.store.clone();
    let inputs: Vec<([u8; 32], String)> = task.spec.inputs.iter().map(|a| (a.hash, a.name.clone())).collect();
    tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        for (name, path) in files.into_iter().take(alp_workgroup::body::MAX_ARTEFACTS) {
            let info = store.import_file(&path).map_err(|e| format!("cannot store {name}: {e}"))?;
            let hash = *info.hash.as_bytes();
            if inputs.iter().any(|(h, n)| *h == hash && *n == name) {
                continue;
            }
            out.push(Artefact { name, hash, size: info.size });
        }
        Ok(out)
    })
    .await
    .map_err(|e| e.to_string())?
}

fn refused(node: &WgNode, group: GroupId, event: EventId) -> bool {
    node.wg.state(group).is_some_and(|s| s.refused.iter().any(|r| r.id == event))
}

/// Aborts a spawned task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
