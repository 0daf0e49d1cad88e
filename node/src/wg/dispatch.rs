//! The scheduler loop: after every change (and every second, for leases
//! and deadlines) it asks [`alp_workgroup::schedule::plan`] what is due
//! for each group and does it: writes assignments, gives up on silent
//! attempts, starts this node's attempts (no more than its capacity) and
//! stops those that no longer count (cancelled, superseded, or this node
//! was removed), killing their agent turn and tools. It also brings back
//! the artefacts of the tasks this node created, retrying until it has
//! them.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use alp_workgroup::body::{Assign, Cancel, Expire, Fail};
use alp_workgroup::schedule::{self, Action, Now};
use alp_workgroup::state::TaskStatus;
use alp_workgroup::{Body, EventId, GroupId, State};
use tokio::sync::watch;

use super::{WgNode, control, now_ms, worker};

/// How long after a failed fetch of an artefact the next try comes.
const FETCH_RETRY: Duration = Duration::from_secs(30);

/// The attempts this node is running, each with the switch that stops it.
#[derive(Debug, Default)]
pub(crate) struct Runner {
    running: Mutex<HashMap<(GroupId, EventId, u32), watch::Sender<bool>>>,
    /// Running attempts that wait for someone else (an answer, a delegated
    /// task, approvals), with how many waits each has open: they do not
    /// take up this node's capacity meanwhile.
    waiting: Mutex<HashMap<(GroupId, EventId, u32), usize>>,
    /// Artefacts being fetched, or when the last try failed.
    fetching: Mutex<HashMap<[u8; 32], Option<Instant>>>,
    /// When this node first saw each approval pending (its timeout is
    /// timed from then, by this node's clock).
    pending: Mutex<HashMap<(GroupId, EventId), Instant>>,
}

impl Runner {
    fn lock(&self) -> MutexGuard<'_, HashMap<(GroupId, EventId, u32), watch::Sender<bool>>> {
        self.running.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn of(&self, group: GroupId) -> HashSet<(EventId, u32)> {
        self.lock().keys().filter(|(g, _, _)| *g == group).map(|(_, t, a)| (*t, *a)).collect()
    }

    /// Forgets a finished attempt.
    pub(crate) fn done(&self, group: GroupId, task: EventId, attempt: u32) {
        self.lock().remove(&(group, task, attempt));
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner).remove(&(group, task, attempt));
    }

    /// An attempt begins (`true`) or ends (`false`) one wait for someone
    /// else; it is busy again once it has none open.
    pub(crate) fn wait(&self, group: GroupId, task: EventId, attempt: u32, waiting: bool) {
        let mut map = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        let key = (group, task, attempt);
        if waiting {
            *map.entry(key).or_default() += 1;
        } else if let Some(n) = map.get_mut(&key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&key);
            }
        }
    }

    /// Attempts running and not waiting.
    fn busy(&self) -> usize {
        let waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner).len();
        self.lock().len().saturating_sub(waiting)
    }
}

/// Runs the scheduler until the process ends.
pub(crate) async fn run(node: Arc<WgNode>) {
    let mut changes = node.wg.subscribe();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            change = changes.recv() => {
                if let Ok(change) = change {
                    node.replicator.poke(change.group);
                    let n = node.clone();
                    let _ = tokio::task::spawn_blocking(move || on_change(&n, change.group, &change.events)).await;
                }
            }
            _ = tick.tick() => {}
        }
        // Writing events syncs them to disk: off the async threads.
        let n = node.clone();
        let _ = tokio::task::spawn_blocking(move || {
            for state in n.wg.states() {
                step(&n, &state);
            }
        })
        .await;
    }
}

/// An invitation from a peer this profile trusts fully
/// (`workgroup.auto_join`) is accepted at once.
fn on_change(node: &Arc<WgNode>, group: GroupId, events: &[alp_workgroup::Event]) {
    let me = node.wg.me();
    let Some(state) = node.wg.state(group) else { return };
    if !control::is_invited(&state, &me) {
        return;
    }
    let inviter = events.iter().find_map(|e| match e.body() {
        Body::Invite(i) if i.member == *me.as_bytes() => Some(e.author()),
        _ => None,
    });
    let Some(inviter) = inviter else { return };
    let name = node.links.name_of(inviter);
    if node.config.workgroup.auto_join.contains(&name) {
        match node.join(group) {
            Ok(_) => tracing::info!(group = %state.name, inviter = %name, "joined (workgroup.auto_join)"),
            Err(e) => tracing::warn!(group = %state.name, "cannot join automatically: {e}"),
        }
    }
}

/// Plans one group and carries the plan out.
fn step(node: &Arc<WgNode>, state: &Arc<State>) {
    let group = state.group;
    let running = node.runner.of(group);
    let wg = node.wg.clone();
    let silent_for =
        move |task: EventId, attempt: u32| wg.silent_for(group, task, attempt).map(|d| d.as_millis() as u64);
    let first_seen = {
        let mut pending = node.runner.pending.lock().unwrap_or_else(PoisonError::into_inner);
        let open: HashSet<EventId> =
            state.pending_approvals().filter(|a| a.since_ms.is_some()).map(|a| a.subject).collect();
        pending.retain(|(g, id), _| if *g == group { open.contains(id) } else { node.wg.state(*g).is_some() });
        for id in &open {
            pending.entry((group, *id)).or_insert_with(Instant::now);
        }
        pending.iter().filter(|((g, _), _)| *g == group).map(|((_, id), at)| (*id, *at)).collect::<HashMap<_, _>>()
    };
    let pending_for = move |id: EventId| first_seen.get(&id).map(|at| at.elapsed().as_millis() as u64);
    let now = Now {
        pending_for: &pending_for,
        me: node.wg.me(),
        wall_ms: now_ms(),
        silent_for: &silent_for,
        up_ms: node.wg.uptime().as_millis() as u64,
        running: &running,
        room: usize::from(node.config.workgroup.capacity.max(1)).saturating_sub(node.runner.busy()),
    };
    for action in schedule::plan(state, &now) {
        let written = match action {
            Action::Assign { task, attempt, member } => {
                let body = Body::Assign(Assign { task: task.0, attempt, member: *member.as_bytes() });
                node.wg.write(group, body, vec![task]).map(drop)
            }
            Action::EndAttempt { task, attempt, reason } => {
                tracing::info!(group = %state.name, task = %task.short(), attempt, "{reason}");
                let body = Body::Fail(Fail { task: task.0, attempt, reason, retry: true });
                node.wg.write(group, body, vec![task]).map(drop)
            }
            Action::Expire { subject } => {
                tracing::info!(group = %state.name, subject = %subject.short(), "nobody decided on the approval in time");
                node.wg.write(group, Body::Expire(Expire { subject: subject.0 }), vec![subject]).map(drop)
            }
            Action::Cancel { task, reason } => {
                node.wg.write(group, Body::Cancel(Cancel { task: Some(task.0), reason }), vec![task]).map(drop)
            }
            Action::Run { task, attempt } => {
                start(node, group, task, attempt);
                Ok(())
            }
            Action::Stop { task, attempt } => {
                if let Some(stop) = node.runner.lock().remove(&(group, task, attempt)) {
                    tracing::info!(group = %state.name, task = %task.short(), attempt, "stopping: it no longer counts");
                    let _ = stop.send(true);
                }
                Ok(())
            }
        };
        if let Err(e) = written {
            tracing::warn!(group = %state.name, "workgroup scheduler: {e}");
        }
    }
    collect_results(node, state);
}

fn start(node: &Arc<WgNode>, group: GroupId, task: EventId, attempt: u32) {
    let mut running = node.runner.lock();
    if running.contains_key(&(group, task, attempt)) {
        return;
    }
    let (stop, stopped) = watch::channel(false);
    let n = node.clone();
    // On the runtime (the dispatcher's blocking threads enter it).
    tokio::spawn(async move {
        worker::run(&n, group, task, attempt, stopped).await;
        n.runner.done(group, task, attempt);
    });
    running.insert((group, task, attempt), stop);
}

/// Brings back the artefacts of the tasks this node created that were
/// completed: fetched (verified, with the maker's receipt) from the maker,
/// retried every [`FETCH_RETRY`] until this node has them.
fn collect_results(node: &Arc<WgNode>, state: &Arc<State>) {
    let me = node.wg.me();
    for task in state.tasks.values().filter(|t| t.creator == me && t.status == TaskStatus::Completed) {
        let Some(output) = &task.output else { continue };
        for a in &output.artefacts {
            let hash = alp_blobstore::BlobHash::from(blake3::Hash::from_bytes(a.hash));
            if node.store.get(&hash).is_ok() {
                continue;
            }
            {
                let mut fetching = node.runner.fetching.lock().unwrap_or_else(PoisonError::into_inner);
                match fetching.get(&a.hash) {
                    Some(None) => continue,
                    Some(Some(failed)) if failed.elapsed() < FETCH_RETRY => continue,
                    _ => {}
                }
                fetching.insert(a.hash, None);
            }
            let (n, state, maker, artefact) = (node.clone(), state.clone(), output.by, a.clone());
            tokio::spawn(async move {
                let result = worker::fetch(&n, &state, &artefact, &[maker]).await;
                let mut fetching = n.runner.fetching.lock().unwrap_or_else(PoisonError::into_inner);
                match result {
                    Ok(()) => {
                        fetching.remove(&artefact.hash);
                    }
                    Err(e) => {
                        tracing::warn!(group = %state.name, "cannot fetch artefact {} (will retry): {e}", artefact.name);
                        fetching.insert(artefact.hash, Some(Instant::now()));
                    }
                }
            });
        }
    }
}
