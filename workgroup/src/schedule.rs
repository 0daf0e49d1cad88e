//! What a node should do next for a workgroup, decided from its state and
//! the time (both passed in): as a task's creator, assign attempts, give
//! up on silent ones and enforce deadlines; as a member, start the
//! attempts given to it, drop attempts it lost in a restart, and stop
//! runs that no longer count. The node carries the actions out by writing
//! events and starting or stopping agent runs.

use std::collections::HashSet;

use alp_protocol::NodeId;

use crate::event::EventId;
use crate::state::{State, Task, TaskStatus};

/// Something to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Write an assignment of the task's next attempt to `member`.
    Assign {
        /// The task.
        task: EventId,
        /// Its next attempt.
        attempt: u32,
        /// Who gets it.
        member: NodeId,
    },
    /// Write the end of an attempt (as its creator: the member went
    /// silent; as its member: the run was lost).
    EndAttempt {
        /// The task.
        task: EventId,
        /// The attempt.
        attempt: u32,
        /// Why.
        reason: String,
    },
    /// Write that nobody decided on an approval this node asked for in
    /// time (the group's `on_timeout` applies).
    Expire {
        /// The task, or the approval request.
        subject: EventId,
    },
    /// Write the task's cancellation.
    Cancel {
        /// The task.
        task: EventId,
        /// Why.
        reason: String,
    },
    /// Start running this node's attempt.
    Run {
        /// The task.
        task: EventId,
        /// The attempt.
        attempt: u32,
    },
    /// Stop a run that no longer counts.
    Stop {
        /// The task.
        task: EventId,
        /// The attempt.
        attempt: u32,
    },
}

/// What the node knows besides the state.
pub struct Now<'a> {
    /// This node.
    pub me: NodeId,
    /// Wall clock, Unix milliseconds (for deadlines).
    pub wall_ms: u64,
    /// How long ago (milliseconds, this node's clock) it last heard of
    /// each attempt: its assignment, claim, renewal or report. `None`:
    /// not since this node started.
    pub silent_for: &'a dyn Fn(EventId, u32) -> Option<u64>,
    /// How long this node has been running, milliseconds.
    pub up_ms: u64,
    /// The attempts this node is running.
    pub running: &'a HashSet<(EventId, u32)>,
    /// How many more attempts this node may start now (its capacity less
    /// the attempts it is busy with, in every group).
    pub room: usize,
    /// How long ago (milliseconds, this node's clock) it first saw each
    /// approval pending. `None`: not yet.
    pub pending_for: &'a dyn Fn(EventId) -> Option<u64>,
}

impl std::fmt::Debug for Now<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Now").field("me", &self.me).field("wall_ms", &self.wall_ms).finish_non_exhaustive()
    }
}

/// The actions due now.
pub fn plan(state: &State, now: &Now<'_>) -> Vec<Action> {
    let mut out = Vec::new();
    let me_active = state.active(&now.me).is_some();
    for &(task, attempt) in now.running {
        let counts = state.tasks.get(&task).and_then(Task::current).is_some_and(|a| a.n == attempt);
        if !counts || !me_active {
            out.push(Action::Stop { task, attempt });
        }
    }
    if !me_active {
        return out;
    }
    let lease_ms = u64::from(state.policy.lease_secs) * 1000;
    // An approval nobody decided on: its requester ends the wait, or, where
    // the group lets it proceed, an admin does. The wait is timed by this
    // node's own clock from when it saw it (so that no other member's
    // clock shortens it), and by the wall clock the group checks.
    let timeout_ms = u64::from(state.governance.timeout_secs) * 1000;
    let proceeds = state.governance.on_timeout == crate::body::OnTimeout::Proceed;
    // One admin, the same for every member (the lowest id), lets it proceed.
    let first_admin = state.members.values().filter(|m| m.is_active() && m.admin).map(|m| m.node).min();
    let mine = |a: &crate::state::Approval| if proceeds { first_admin == Some(now.me) } else { a.requester == now.me };
    for a in state.pending_approvals().filter(|a| mine(a)) {
        let waited = (now.pending_for)(a.subject).is_some_and(|ms| ms >= timeout_ms);
        if waited && a.since_ms.is_some_and(|since| now.wall_ms >= since.saturating_add(timeout_ms)) {
            out.push(Action::Expire { subject: a.subject });
        }
    }
    // The group's limit on tasks under way, less what this plan assigns.
    let max_running = usize::from(state.governance.max_running);
    let mut running = state.running();
    // Attempts this plan assigns count towards members' load at once.
    let mut assigned: Vec<NodeId> = Vec::new();
    let mut room = now.room;
    for id in &state.task_order {
        let Some(task) = state.tasks.get(id) else { continue };
        if task.status.is_terminal() {
            continue;
        }
        if let Some(current) = task.current()
            && current.member == now.me
        {
            let mine = (task.id, current.n);
            if !now.running.contains(&mine) {
                if current.claimed {
                    // Claimed, yet not running here: this node restarted.
                    let reason = "interrupted: the member restarted mid-task".to_owned();
                    out.push(Action::EndAttempt { task: task.id, attempt: current.n, reason });
                } else if room > 0 {
                    // Beyond this node's room an attempt waits; its creator
                    // gives it to another member after the lease.
                    room -= 1;
                    out.push(Action::Run { task: task.id, attempt: current.n });
                }
            }
        }
        if task.creator != now.me {
            continue;
        }
        if task.spec.deadline_ms.is_some_and(|d| now.wall_ms > d) {
            out.push(Action::Cancel { task: task.id, reason: "its deadline passed".into() });
            continue;
        }
        match task.current() {
            Some(current) if current.member != now.me => {
                // Heard nothing since this node started: give the member a
                // whole lease from the start.
                let silent = (now.silent_for)(task.id, current.n).unwrap_or(now.up_ms);
                if silent > lease_ms {
                    let who = current.member.short();
                    let reason = format!("lease expired: no news from {who} for {}s", silent / 1000);
                    out.push(Action::EndAttempt { task: task.id, attempt: current.n, reason });
                }
            }
            Some(_) => {}
            None if task.status == TaskStatus::Submitted => {
                if max_running > 0 && running >= max_running {
                    continue;
                }
                if let Some(member) = pick(state, task, &assigned) {
                    running += 1;
                    assigned.push(member);
                    let attempt = task.attempts.len() as u32 + 1;
                    out.push(Action::Assign { task: task.id, attempt, member });
                }
            }
            None => {}
        }
    }
    out
}

/// Who should run the task's next attempt: the member it names, or the
/// least loaded active member (with the role, if it names one) that has
/// room, preferring members that have not tried it yet.
pub fn pick(state: &State, task: &Task, assigned: &[NodeId]) -> Option<NodeId> {
    if let Some(to) = task.spec.to {
        return NodeId::from_bytes(to).ok().filter(|n| state.active(n).is_some());
    }
    let tried: HashSet<NodeId> = task.attempts.iter().map(|a| a.member).collect();
    state
        .members
        .values()
        .filter(|m| m.is_active())
        .filter(|m| task.spec.role.as_ref().is_none_or(|r| m.roles.contains(r)))
        .map(|m| {
            let load = state.load(&m.node) + assigned.iter().filter(|n| **n == m.node).count();
            (m, load)
        })
        .filter(|(m, load)| *load < m.capacity())
        .min_by_key(|(m, load)| (tried.contains(&m.node), *load * 1000 / m.capacity(), m.node))
        .map(|(m, _)| m.node)
}

#[cfg(test)]
mod tests;
