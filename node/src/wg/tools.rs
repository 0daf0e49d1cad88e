//! The tools a task's agent gets besides its card's: ask whoever created
//! the task (the task becomes input-required until they answer with
//! `alp wg reply`), and delegate part of the work to another member (a
//! task under this one; the group refuses delegation loops).

use std::sync::Arc;
use std::time::Duration;

use alp_agent::provider::BoxFuture;
use alp_agent::tools::{Args, Spec, Tier, Tool, arg, text};
use alp_workgroup::body::{Budget, Cancel, InputNeeded, TaskCreate};
use alp_workgroup::state::TaskStatus;
use alp_workgroup::{Body, EventId};
use tokio::sync::broadcast;

use super::worker::{RunCtx, write};

/// The name of the tool that asks the task's creator.
pub(crate) const ASK_CREATOR: &str = "ask_creator";
/// The name of the tool that delegates.
pub(crate) const DELEGATE: &str = "delegate";

/// Asks the task's creator a question and waits for the answer.
#[derive(Debug)]
pub(crate) struct AskCreator(pub(crate) Arc<RunCtx>);

/// Hands part of the work to another member and waits for its result.
#[derive(Debug)]
pub(crate) struct Delegate(pub(crate) Arc<RunCtx>);

impl AskCreator {
    async fn ask(&self, question: &str) -> Result<String, String> {
        let c = &self.0;
        let mut changes = c.node.wg.subscribe();
        let replies = |state: &alp_workgroup::State| state.tasks.get(&c.task).map_or(0, |t| t.replies.len());
        let before = c.node.wg.state(c.group).map(|s| replies(&s)).unwrap_or(0);
        let body = Body::InputNeeded(InputNeeded { task: c.task.0, attempt: c.attempt, question: question.to_owned() });
        write(&c.node, c.group, body, vec![c.task]).await.map_err(|e| e.to_string())?;
        let _waiting = Waiting::new(c);
        loop {
            let state = c.node.wg.state(c.group).ok_or("the workgroup is gone")?;
            let task = state.tasks.get(&c.task).ok_or("the task is gone")?;
            if task.replies.len() > before {
                return Ok(task.replies.last().cloned().unwrap_or_default());
            }
            if task.current().is_none_or(|a| a.n != c.attempt) {
                return Err("the task ended while waiting for an answer".into());
            }
            next_change(&mut changes, c.group).await?;
        }
    }
}

impl Tool for AskCreator {
    fn spec(&self) -> Spec {
        Spec::new(
            ASK_CREATOR,
            Tier::ReadOnly,
            "Ask the person (or member) who created this task a question; waits for their answer and returns it.",
        )
        .arg("question", text("The question"))
    }

    fn call<'a>(&'a self, args: &'a Args) -> BoxFuture<'a, Result<String, String>> {
        Box::pin(async move { self.ask(arg(args, "question")?).await })
    }
}

impl Delegate {
    async fn delegate(&self, goal: &str, role: Option<&str>, member: Option<&str>) -> Result<String, String> {
        let c = &self.0;
        let wg = &c.node.wg;
        let state = wg.state(c.group).ok_or("the workgroup is gone")?;
        let parent = state.tasks.get(&c.task).ok_or("the task is gone")?;
        if !state.may_submit(&wg.me()) {
            return Err(
                "this member may not submit tasks in this group, so it cannot delegate: do the work here".into()
            );
        }
        let to = match member {
            Some(name) => Some(*c.node.member_named(&state, name).map_err(|e| e.to_string())?.as_bytes()),
            None => None,
        };
        // Half of what this task (and what it delegated) may still spend,
        // in each unit it is limited in: the group takes it from this
        // task's budget.
        let spent = parent.subtree_spent;
        let half = |limit: Option<u64>, used: u64| limit.map(|l| (l.saturating_sub(used) / 2).max(1));
        let budget = Budget {
            tokens: half(parent.spec.budget.tokens, spent.tokens),
            usd_micros: half(parent.spec.budget.usd_micros, spent.usd_micros),
        };
        let spec = TaskCreate {
            goal: goal.to_owned(),
            to,
            role: role.map(str::to_owned),
            inputs: parent.spec.inputs.clone(),
            budget,
            deadline_ms: parent.spec.deadline_ms,
            parent: Some(c.task.0),
            after: vec![],
            tier: None,
        };
        let mut changes = wg.subscribe();
        let event = write(&c.node, c.group, Body::TaskCreate(spec), vec![c.task]).await.map_err(|e| e.to_string())?;
        let _waiting = Waiting::new(c);
        let child = event.id();
        // Nobody may ever have room for it (a member that delegates to a
        // role only it holds, say): give up if it is not taken in time.
        // The time waiting for approval does not count: the group's
        // approvers have their own timeout.
        let lease = Duration::from_secs(u64::from(state.policy.lease_secs));
        let mut deadline = tokio::time::Instant::now() + lease * 10;
        loop {
            if let Some(done) = self.outcome(child)? {
                return done;
            }
            let status = wg.state(c.group).and_then(|s| s.tasks.get(&child).map(|t| t.status));
            if status == Some(TaskStatus::AwaitingApproval) {
                deadline = tokio::time::Instant::now() + lease * 10;
            }
            let taken = wg.state(c.group).and_then(|s| s.tasks.get(&child).map(|t| !t.attempts.is_empty()));
            if taken != Some(true) && tokio::time::Instant::now() >= deadline {
                let cancel = Body::Cancel(Cancel { task: Some(child.0), reason: "nobody took it in time".into() });
                let _ = write(&c.node, c.group, cancel, vec![child]).await;
                return Err("nobody in the group took the delegated task in time: do it here, or ask for less".into());
            }
            tokio::select! {
                r = next_change(&mut changes, c.group) => r?,
                () = tokio::time::sleep_until(deadline) => {}
            }
        }
    }

    /// The delegated task's result once it is over.
    fn outcome(&self, child: EventId) -> Result<Option<Result<String, String>>, String> {
        let c = &self.0;
        let state = c.node.wg.state(c.group).ok_or("the workgroup is gone")?;
        let task = state.tasks.get(&child).ok_or("the delegated task is gone")?;
        let reason = || task.reason.clone().unwrap_or_else(|| task.status.as_str().to_owned());
        Ok(match task.status {
            TaskStatus::Completed => {
                let out = task.output.as_ref().map(|o| {
                    let files: Vec<&str> = o.artefacts.iter().map(|a| a.name.as_str()).collect();
                    if files.is_empty() { o.text.clone() } else { format!("{}\n(files: {})", o.text, files.join(", ")) }
                });
                Some(Ok(out.unwrap_or_default()))
            }
            // A loop found anywhere below (the group says so) ends every
            // task above it too.
            TaskStatus::Rejected | TaskStatus::Failed if task.loop_detected => {
                let why = reason();
                let at = why.find("loop detected").unwrap_or(0);
                *c.loop_detected.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(why[at..].to_owned());
                Some(Err(why))
            }
            TaskStatus::Failed | TaskStatus::Canceled | TaskStatus::Rejected => {
                Some(Err(format!("the delegated task {}: {}", task.status.as_str(), reason())))
            }
            _ => None,
        })
    }
}

impl Tool for Delegate {
    fn spec(&self) -> Spec {
        Spec::new(
            DELEGATE,
            Tier::SideEffect,
            "Hand part of this task to another member of the workgroup (by role or by name); waits for its result.",
        )
        .arg("goal", text("What the other member should do"))
        .opt("role", text("A role to pick the member by"))
        .opt("member", text("A member's name"))
    }

    fn call<'a>(&'a self, args: &'a Args) -> BoxFuture<'a, Result<String, String>> {
        Box::pin(async move {
            let role = args.get("role").and_then(|v| v.as_str());
            let member = args.get("member").and_then(|v| v.as_str());
            self.delegate(arg(args, "goal")?, role, member).await
        })
    }
}

/// Waits for the next change to `group` (or for missed ones).
pub(super) async fn next_change(
    changes: &mut broadcast::Receiver<super::Change>,
    group: alp_workgroup::GroupId,
) -> Result<(), String> {
    loop {
        match changes.recv().await {
            Ok(change) if change.group == group => return Ok(()),
            Ok(_) => {}
            Err(broadcast::error::RecvError::Lagged(_)) => return Ok(()),
            Err(broadcast::error::RecvError::Closed) => return Err("the node is stopping".into()),
        }
    }
}

/// While held, the attempt waits for someone else and does not take up
/// this node's capacity (so a member can run what it delegated to itself).
pub(super) struct Waiting<'a>(&'a RunCtx);

impl<'a> Waiting<'a> {
    pub(super) fn new(c: &'a RunCtx) -> Self {
        c.node.runner.wait(c.group, c.task, c.attempt, true);
        Self(c)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let c = self.0;
        c.node.runner.wait(c.group, c.task, c.attempt, false);
    }
}
