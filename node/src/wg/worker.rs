//! Running one attempt of a task on this node: claim it, keep the claim
//! renewed, fetch its inputs into a workspace of its own, run this
//! profile's agent on the goal (its model, the tools its card offers the
//! group, the task's budget within the profile's daily caps), report
//! progress, then the spend and the result (text, and the files it wrote
//! as artefact blobs). Told to stop (cancelled, superseded), it drops the
//! agent turn, which kills its tools' process groups, and still reports
//! what the turn spent.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
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
use alp_workgroup::{Body, Event, EventId, GroupId, State};
use tokio::sync::watch;

use super::{WgError, WgNode, tools};

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

/// Writes this node's next event off the async threads (it is synced to
/// disk before it counts).
pub(crate) async fn write(
    node: &Arc<WgNode>,
    group: GroupId,
    body: Body,
    deps: Vec<EventId>,
) -> Result<Event, WgError> {
    let n = node.clone();
    tokio::task::spawn_blocking(move || n.wg.write(group, body, deps))
        .await
        .unwrap_or_else(|e| Err(WgError::Invalid(format!("the writer failed: {e}"))))
}

/// Runs attempt `attempt` of `task` and writes its outcome, unless
/// `stopped` turns true first.
pub(crate) async fn run(
    node: &Arc<WgNode>,
    group: GroupId,
    task: EventId,
    attempt: u32,
    stopped: watch::Receiver<bool>,
) {
    let claim = Body::Claim(AttemptRef { task: task.0, attempt });
    match write(node, group, claim, vec![task]).await {
        Ok(e) if !refused(node, group, e.id()) => {}
        Ok(_) => return,
        Err(e) => {
            tracing::warn!("cannot claim task {}: {e}", task.short());
            return;
        }
    }
    let Some(state) = node.wg.state(group) else { return };
    let Some(spec) = state.tasks.get(&task).cloned() else { return };
    tracing::info!(group = %state.name, task = %task.short(), attempt, "working on a task");
    let _renewals = AbortOnDrop(tokio::spawn(renew(node.clone(), group, task, attempt, state.policy.lease_secs)));
    let ctx = Arc::new(RunCtx { node: node.clone(), group, task, attempt, loop_detected: Default::default() });
    let dir = node.wg.dir_of(group).join("work").join(format!("{task}-{attempt}"));
    let outcome = work(&ctx, &state, &spec, &dir, stopped).await;
    // The artefacts are in the store now; the workspace goes.
    if let Err(e) = std::fs::remove_dir_all(&dir) {
        tracing::debug!("cannot remove {}: {e}", dir.display());
    }
    let looped = ctx.loop_detected.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
    let body = match (outcome, looped) {
        (Err(Failure::Stopped), _) => return,
        (_, Some(reason)) => Body::Fail(Fail { task: task.0, attempt, reason, retry: false }),
        (Ok((text, artefacts)), None) => Body::Complete(Complete { task: task.0, attempt, text, artefacts }),
        (Err(Failure::Failed { reason, retry }), None) => Body::Fail(Fail { task: task.0, attempt, reason, retry }),
    };
    if let Err(e) = write(node, group, body, vec![task]).await {
        tracing::warn!("cannot report on task {}: {e}", task.short());
    }
}

/// Renews the claim every third of the lease until dropped.
async fn renew(node: Arc<WgNode>, group: GroupId, task: EventId, attempt: u32, lease_secs: u32) {
    let every = Duration::from_millis(u64::from(lease_secs) * 1000 / 3).max(Duration::from_millis(200));
    loop {
        tokio::time::sleep(every).await;
        let body = Body::Renew(AttemptRef { task: task.0, attempt });
        if let Err(e) = write(&node, group, body, vec![task]).await {
            tracing::debug!("cannot renew a claim: {e}");
        }
    }
}

/// Why an attempt did not deliver.
enum Failure {
    /// It failed; whether another attempt could succeed.
    Failed { reason: String, retry: bool },
    /// It was told to stop: it no longer counts.
    Stopped,
}

impl From<String> for Failure {
    fn from(reason: String) -> Self {
        Failure::Failed { reason, retry: true }
    }
}

/// The agent's run: the answer and the files it wrote, or why not.
async fn work(
    ctx: &Arc<RunCtx>,
    state: &State,
    task: &Task,
    dir: &Path,
    mut stopped: watch::Receiver<bool>,
) -> Result<(String, Vec<Artefact>), Failure> {
    let node = &ctx.node;
    let all_inputs = inputs_of(state, task);
    let workspace = prepare(node, state, task, &all_inputs, dir).await?;
    let inputs: Vec<String> = all_inputs.iter().map(|a| a.name.clone()).collect();
    let selected = node.asks.provider().await?;
    let provider = selected.provider();
    let registry = Registry::builtin(&workspace, &ShellConfig::for_peers(&node.config.agent))
        .with(tools::AskCreator(ctx.clone()))
        .with(tools::Delegate(ctx.clone()));
    let mut granted: Vec<String> =
        node.config.workgroup.tools.iter().filter(|t| registry.tier(t).is_some()).cloned().collect();
    granted.extend([tools::ASK_CREATOR.to_owned(), tools::DELEGATE.to_owned()]);
    // What earlier attempts (and delegated tasks) spent comes out of the budget.
    let spent = task.subtree_spent;
    let grant = TaskGrant {
        ledger_name: format!("wg:{}", state.name),
        tools: granted,
        max_tokens: task.spec.budget.tokens.map(|b| b.saturating_sub(spent.tokens)),
        max_cost: task.spec.budget.usd_micros.map(|b| b.saturating_sub(spent.usd_micros) as f64 / 1e6),
    };
    let setup = node.asks.setup().with_tools(registry);
    let caller = Caller::Task(&grant);
    let mut job = setup.job(caller, provider).map_err(|e| e.to_string())?;
    job.policy.gate = Some(super::approval::gate(ctx.clone()));
    let mut messages = vec![
        Message::new(Role::System, system_prompt(node, state, &inputs)),
        Message::new(Role::User, goal_with_results(state, task)),
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
            let (n, group, deps) = (ctx.node.clone(), ctx.group, vec![ctx.task]);
            tokio::spawn(async move { write(&n, group, body, deps).await });
        }
    };
    // Stopping drops the turn (and with it the tools' process groups).
    let result = {
        let run = run::run(provider, &mut job, &mut messages, &mut on_event);
        tokio::select! {
            r = run => Some(r),
            _ = stopped.wait_for(|s| *s) => None,
        }
    };
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
    if let Err(e) = write(node, ctx.group, Body::Spend(spend), vec![ctx.task]).await {
        tracing::warn!("cannot report spend: {e}");
    }
    let Some(result) = result else { return Err(Failure::Stopped) };
    let outcome = result
        .map_err(|e| Failure::Failed { retry: !matches!(e, run::AgentError::Budget(_)), reason: e.to_string() })?;
    let artefacts = collect(node, dir, &all_inputs).await?;
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

/// The task's input files: its own, then the files of the tasks it waits
/// for (a name already taken gets the producing task's short id in front).
fn inputs_of(state: &State, task: &Task) -> Vec<Artefact> {
    let mut all = task.spec.inputs.clone();
    for dep in &task.spec.after {
        let Some(out) = state.tasks.get(&EventId(dep.task)).and_then(|t| t.output.as_ref()) else { continue };
        for a in &out.artefacts {
            let mut a = a.clone();
            if all.iter().any(|b| b.name == a.name) {
                a.name = format!("{}-{}", EventId(dep.task).short(), a.name);
            }
            if all.len() < alp_workgroup::body::MAX_ARTEFACTS * 2 {
                all.push(a);
            }
        }
    }
    all
}

/// The goal, followed by the results of the tasks it waits for.
fn goal_with_results(state: &State, task: &Task) -> String {
    let mut text = task.spec.goal.clone();
    let results: Vec<String> = task
        .spec
        .after
        .iter()
        .filter_map(|d| {
            let t = state.tasks.get(&EventId(d.task))?;
            let out = t.output.as_ref()?;
            // Capped: many large results must not crowd out the goal.
            let text: String = out.text.trim().chars().take(8 << 10).collect();
            Some(format!("[result of task {} ({})]\n{text}\n[end of that result]", t.id.short(), t.spec.goal))
        })
        .collect();
    if !results.is_empty() {
        text.push_str("\n\nResults of the tasks this one builds on:\n\n");
        text.push_str(&results.join("\n\n"));
    }
    text
}

/// A fresh workspace for the attempt, holding its inputs (fetched from
/// the members that have them if this node lacks them).
async fn prepare(
    node: &Arc<WgNode>,
    state: &State,
    task: &Task,
    inputs: &[Artefact],
    dir: &Path,
) -> Result<Arc<Workspace>, String> {
    for input in inputs {
        fetch(node, state, input, &[task.creator])
            .await
            .map_err(|e| format!("cannot fetch input {}: {e}", input.name))?;
    }
    let (store, dir, inputs) = (node.store.clone(), dir.to_owned(), inputs.to_vec());
    tokio::task::spawn_blocking(move || {
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|e| format!("cannot clear {}: {e}", dir.display()))?;
        }
        std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        for input in &inputs {
            let hash = BlobHash::from(blake3::Hash::from_bytes(input.hash));
            store.export(&hash, &dir.join(&input.name)).map_err(|e| format!("input {}: {e}", input.name))?;
        }
        Workspace::open(&dir).map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())?
}

/// Makes sure this node's store holds `artefact`, of the size the group's
/// log says: asks the members in `first`, then those whose task outputs
/// name it, then every other active member, until one has it (`wg.blob`,
/// verified on arrival).
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
        // A kept link found dead (its peer restarted) is dialled again, once.
        let mut got = Err(String::new());
        for _ in 0..2 {
            got = match node.links.get(holder).await {
                Ok(link) => {
                    let tracked = node.transfers.begin(holder, hash, false, artefact.size);
                    let progress = |done: u64, total: u64| tracked.progress(done, total);
                    let r = link.get_blob_via(Verb::WgBlob, &node.store, hash, None, &progress).await;
                    if r.is_err() && link.connection().close_reason().is_some() {
                        node.links.forget(holder);
                        got = r.map_err(|e| e.to_string());
                        continue;
                    }
                    r.map_err(|e| e.to_string())
                }
                Err(e) => Err(e.to_string()),
            };
            break;
        }
        let size = |f: &alp_link::Fetched| match &f.blob {
            alp_link::Held::Complete(info) => info.size,
            alp_link::Held::Partial(p) => p.size(),
        };
        match got {
            Ok(fetched) if size(&fetched) == artefact.size => return Ok(()),
            Ok(fetched) => {
                // Verified, but not what the log announced: not this artefact.
                let _ = node.store.remove(&hash);
                last = format!("{} bytes, where the log says {}", size(&fetched), artefact.size);
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// The files the run left in its workspace (top level, regular files
/// only, opened without following links; inputs it did not change are
/// left out), stored as blobs.
async fn collect(node: &Arc<WgNode>, dir: &Path, inputs: &[Artefact]) -> Result<Vec<Artefact>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("cannot read the workspace: {e}"))?;
    let mut files: Vec<(String, PathBuf)> =
        entries.filter_map(Result::ok).filter_map(|e| Some((e.file_name().into_string().ok()?, e.path()))).collect();
    files.sort();
    let store = node.store.clone();
    let inputs: Vec<([u8; 32], String)> = inputs.iter().map(|a| (a.hash, a.name.clone())).collect();
    tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        for (name, path) in files {
            if out.len() == alp_workgroup::body::MAX_ARTEFACTS {
                break;
            }
            // No link is followed and no pipe waited on: what a tool left
            // behind is read only if it is a plain file.
            let opened =
                std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(&path);
            let Ok(mut file) = opened else { continue };
            let Ok(meta) = file.metadata() else { continue };
            if !meta.is_file() {
                continue;
            }
            let info = store
                .import(&mut (&mut file).take(meta.len()), meta.len(), &path)
                .map_err(|e| format!("cannot store {name}: {e}"))?;
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
