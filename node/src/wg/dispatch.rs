//! The scheduler loop: after every change (and every second, for leases
//! and deadlines) it asks [`alp_workgroup::schedule::plan`] what is due
//! for each group and does it: writes assignments, gives up on silent
//! attempts, starts this node's attempts and stops those that no longer
//! count (cancelled, superseded, or this node was removed), killing their
//! agent turn and tools.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use alp_workgroup::body::{Assign, Cancel, Fail};
use alp_workgroup::schedule::{self, Action, Now};
use alp_workgroup::{Body, EventId, GroupId};
use tokio::task::AbortHandle;

use super::{WgNode, control, now_ms, worker};

/// The attempts this node is running, each with the handle that stops it.
#[derive(Debug, Default)]
pub(crate) struct Runner {
    running: Mutex<HashMap<(GroupId, EventId, u32), AbortHandle>>,
}

impl Runner {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(GroupId, EventId, u32), AbortHandle>> {
        self.running.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn of(&self, group: GroupId) -> HashSet<(EventId, u32)> {
        self.lock().keys().filter(|(g, _, _)| *g == group).map(|(_, t, a)| (*t, *a)).collect()
    }

    /// Forgets a finished attempt.
    pub(crate) fn done(&self, group: GroupId, task: EventId, attempt: u32) {
        self.lock().remove(&(group, task, attempt));
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
                    on_change(&node, change.group, &change.events);
                }
            }
            _ = tick.tick() => {}
        }
        for state in node.wg.states() {
            step(&node, state.group);
        }
    }
}

/// What a change means beyond the plan: the couriers take new events to
/// the other members, and an invitation from a peer this profile trusts
/// fully (`workgroup.auto_join`) is accepted.
fn on_change(node: &Arc<WgNode>, group: GroupId, events: &[alp_workgroup::Event]) {
    let me = node.wg.me();
    node.replicator.poke(group);
    let Some(state) = node.wg.state(group) else { return };
    collect_results(node, &state, events);
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

/// The artefacts of tasks this node created come back to it once the
/// task is completed (fetched, verified, with the maker's receipt).
fn collect_results(node: &Arc<WgNode>, state: &alp_workgroup::State, events: &[alp_workgroup::Event]) {
    let me = node.wg.me();
    for e in events {
        let Body::Complete(c) = e.body() else { continue };
        let Some(task) = state.tasks.get(&EventId(c.task)) else { continue };
        let counted = task.output.as_ref().is_some_and(|o| o.event == e.id());
        if task.creator != me || !counted || c.artefacts.is_empty() {
            continue;
        }
        let (node, state, maker, artefacts) = (node.clone(), state.clone(), e.author(), c.artefacts.clone());
        tokio::spawn(async move {
            for a in &artefacts {
                if let Err(err) = worker::fetch(&node, &state, a, &[maker]).await {
                    tracing::warn!(group = %state.name, "cannot fetch artefact {}: {err}", a.name);
                }
            }
        });
    }
}

/// Plans one group and carries the plan out.
fn step(node: &Arc<WgNode>, group: GroupId) {
    let Some(state) = node.wg.state(group) else { return };
    let running = node.runner.of(group);
    let wg = node.wg.clone();
    let silent_for =
        move |task: EventId, attempt: u32| wg.silent_for(group, task, attempt).map(|d| d.as_millis() as u64);
    let now = Now {
        me: node.wg.me(),
        wall_ms: now_ms(),
        silent_for: &silent_for,
        up_ms: node.wg.uptime().as_millis() as u64,
        running: &running,
    };
    for action in schedule::plan(&state, &now) {
        let written = match action {
            Action::Assign { task, attempt, member } => {
                let body = Body::Assign(Assign { task: task.0, attempt, member: *member.as_bytes() });
                node.wg.write(group, body, vec![task]).map(drop)
            }
            Action::EndAttempt { task, attempt, reason } => {
                tracing::info!(group = %state.name, task = %task.short(), attempt, "{reason}");
                node.wg
                    .write(group, Body::Fail(Fail { task: task.0, attempt, reason, retry: true }), vec![task])
                    .map(drop)
            }
            Action::Cancel { task, reason } => {
                node.wg.write(group, Body::Cancel(Cancel { task: Some(task.0), reason }), vec![task]).map(drop)
            }
            Action::Run { task, attempt } => {
                start(node, group, task, attempt);
                Ok(())
            }
            Action::Stop { task, attempt } => {
                if let Some(handle) = node.runner.lock().remove(&(group, task, attempt)) {
                    tracing::info!(group = %state.name, task = %task.short(), attempt, "stopping: it no longer counts");
                    handle.abort();
                }
                Ok(())
            }
        };
        if let Err(e) = written {
            tracing::warn!(group = %state.name, "workgroup scheduler: {e}");
        }
    }
}

fn start(node: &Arc<WgNode>, group: GroupId, task: EventId, attempt: u32) {
    let mut running = node.runner.lock();
    if running.contains_key(&(group, task, attempt)) {
        return;
    }
    let n = node.clone();
    let handle = tokio::spawn(async move {
        worker::run(&n, group, task, attempt).await;
        n.runner.done(group, task, attempt);
    });
    running.insert((group, task, attempt), handle.abort_handle());
}
