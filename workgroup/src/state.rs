//! A workgroup's state: a deterministic fold over its log.
//!
//! Events are applied in fold order (clock, then id), which every member
//! computes alike from the same events, whatever order they arrived in.
//! Each event counts only if its author was allowed to write it at that
//! point: only admins change membership, roles and the budget; only a
//! task's creator (or an admin) assigns, answers or cancels it; only the
//! assignee of an attempt claims, reports and completes it; a member that
//! left or was removed writes nothing more. An event that does not count
//! stays in the log, marked refused with the reason.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use alp_protocol::NodeId;

use crate::body::{Artefact, Body, Budget, Card, Governance, Key, OnTimeout, Policy, Risk, Spend, TaskCreate};
use crate::event::{Event, EventId, GroupId};
use crate::log::Log;

/// Progress lines kept per task.
const PROGRESS_KEPT: usize = 20;
/// Approval requests one attempt may have pending (a model turn's calls
/// are asked about together).
const MAX_PENDING: usize = 8;
/// Approval requests one attempt may make in all.
const MAX_REQUESTS: usize = 64;

/// Tokens and dollars.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Usage {
    /// Model tokens, input and output.
    pub tokens: u64,
    /// US dollars, millionths.
    pub usd_micros: u64,
}

impl Usage {
    fn add(&mut self, other: Usage) {
        self.tokens = self.tokens.saturating_add(other.tokens);
        self.usd_micros = self.usd_micros.saturating_add(other.usd_micros);
    }

    fn sub(&mut self, other: Usage) {
        self.tokens = self.tokens.saturating_sub(other.tokens);
        self.usd_micros = self.usd_micros.saturating_sub(other.usd_micros);
    }

    fn of(spend: &Spend) -> Self {
        Self { tokens: spend.tokens(), usd_micros: spend.usd_micros }
    }
}

/// Where a member stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MemberStatus {
    /// Invited, not yet joined.
    Invited,
    /// A member.
    Active,
    /// It left.
    Left,
    /// An admin removed it.
    Removed,
}

/// A member (or invitee) of the group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Its node id.
    pub node: NodeId,
    /// Where it stands.
    pub status: MemberStatus,
    /// Its roles.
    pub roles: Vec<String>,
    /// Whether it is an admin.
    pub admin: bool,
    /// Its capability card, once it published one.
    pub card: Option<Card>,
    /// What its work has cost the group.
    pub spent: Usage,
    /// The invitation that counted (its join must name it).
    pub invite: Option<EventId>,
    /// The clock of the event that ended its membership, if it ended.
    pub ended_clock: Option<u64>,
}

impl Member {
    /// Whether it may act in the group.
    pub fn is_active(&self) -> bool {
        self.status == MemberStatus::Active
    }

    /// Tasks it works on at once (its card's capacity, at least 1).
    pub fn capacity(&self) -> usize {
        self.card.as_ref().map_or(1, |c| usize::from(c.capacity.max(1)))
    }
}

/// A task's state, in the A2A vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TaskStatus {
    /// Waiting for the tasks it depends on to complete.
    Waiting,
    /// Waiting for the approvals its risk tier needs.
    AwaitingApproval,
    /// Waiting for a member (or assigned, not yet claimed).
    Submitted,
    /// A member is on it.
    Working,
    /// The member needs an answer from the task's creator.
    InputRequired,
    /// Done, with a result.
    Completed,
    /// Given up, with the reason.
    Failed,
    /// Canceled.
    Canceled,
    /// The group refused it (budget, delegation loop, no such member).
    Rejected,
}

impl TaskStatus {
    /// Whether nothing more happens to it.
    pub fn is_terminal(self) -> bool {
        matches!(self, TaskStatus::Completed | TaskStatus::Failed | TaskStatus::Canceled | TaskStatus::Rejected)
    }

    /// The status's name.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Waiting => "waiting",
            TaskStatus::AwaitingApproval => "awaiting-approval",
            TaskStatus::Submitted => "submitted",
            TaskStatus::Working => "working",
            TaskStatus::InputRequired => "input-required",
            TaskStatus::Completed => "completed",
            TaskStatus::Failed => "failed",
            TaskStatus::Canceled => "canceled",
            TaskStatus::Rejected => "rejected",
        }
    }
}

/// One try at a task, by one member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// Its number, from 1.
    pub n: u32,
    /// Who runs it.
    pub member: NodeId,
    /// The event that assigned it (its idempotency key).
    pub assigned_by: EventId,
    /// Whether the member claimed it.
    pub claimed: bool,
    /// Why it ended without counting, if it did.
    pub ended: Option<String>,
    /// Its latest spend report.
    pub spend: Option<Spend>,
}

/// A task's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// The answer.
    pub text: String,
    /// Files made.
    pub artefacts: Vec<Artefact>,
    /// Who made it.
    pub by: NodeId,
    /// In which attempt.
    pub attempt: u32,
    /// The event that delivered it.
    pub event: EventId,
}

/// A task and everything that happened to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    /// Its id (the id of the event that created it).
    pub id: EventId,
    /// Who asked.
    pub creator: NodeId,
    /// What was asked.
    pub spec: TaskCreate,
    /// How many delegations deep (0 for a task a person created).
    pub depth: u8,
    /// Its risk tier: the one it declares (below the group's default only
    /// if an admin declares it), at least its parent's.
    pub tier: Risk,
    /// For a delegated task, the attempt of its parent that delegated it.
    pub parent_attempt: Option<u32>,
    /// Where it stands.
    pub status: TaskStatus,
    /// Its attempts, in order.
    pub attempts: Vec<Attempt>,
    /// The open question, while input is required.
    pub question: Option<String>,
    /// Answers given, in order.
    pub replies: Vec<String>,
    /// The latest progress lines.
    pub progress: Vec<String>,
    /// Its result, once completed.
    pub output: Option<Output>,
    /// Why it failed, was canceled or rejected.
    pub reason: Option<String>,
    /// Results of superseded attempts: recorded, not counted.
    pub late: Vec<EventId>,
    /// Tasks delegated from it.
    pub children: Vec<EventId>,
    /// What it and every task delegated from it spent.
    pub subtree_spent: Usage,
    /// Whether it was refused, or failed, because of a delegation loop.
    pub loop_detected: bool,
    /// When it was created and last changed (authors' clocks, Unix ms).
    pub created_ms: u64,
    /// See `created_ms`.
    pub updated_ms: u64,
}

impl Task {
    /// The attempt in progress, if any.
    pub fn current(&self) -> Option<&Attempt> {
        self.attempts.last().filter(|a| a.ended.is_none() && !self.status.is_terminal())
    }

    /// The member of the attempt in progress.
    pub fn assignee(&self) -> Option<NodeId> {
        self.current().map(|a| a.member)
    }

    /// What all its attempts cost.
    pub fn spent(&self) -> Usage {
        let mut total = Usage::default();
        for s in self.attempts.iter().filter_map(|a| a.spend.as_ref()) {
            total.add(Usage::of(s));
        }
        total
    }

    /// What it still holds of its budget: its budget less what it and the
    /// tasks delegated from it spent, while it is open; nothing once it is
    /// done.
    fn reserved(&self) -> Usage {
        if self.status.is_terminal() {
            return Usage::default();
        }
        Usage {
            tokens: self.spec.budget.tokens.unwrap_or(0).saturating_sub(self.subtree_spent.tokens),
            usd_micros: self.spec.budget.usd_micros.unwrap_or(0).saturating_sub(self.subtree_spent.usd_micros),
        }
    }
}

/// Where an approval stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Waiting for decisions.
    Pending,
    /// Approved by as many approvers as its tier needs.
    Approved,
    /// Denied by an approver.
    Denied,
    /// Nobody decided in time; the group's `on_timeout` applied.
    Expired(OnTimeout),
}

impl Verdict {
    /// Whether the action may go ahead.
    pub fn allows(self) -> bool {
        matches!(self, Verdict::Approved | Verdict::Expired(OnTimeout::Proceed))
    }
}

/// One approver's decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vote {
    /// The approver.
    pub by: NodeId,
    /// Its `approve` or `deny` event.
    pub event: EventId,
    /// Its reason.
    pub reason: String,
}

/// An action that needs approval: a task whose tier needs it, or a tool
/// call a member asked about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approval {
    /// The task's id, or the approval request's.
    pub subject: EventId,
    /// The task (the subject itself, for a task).
    pub task: EventId,
    /// The attempt that asked, for a tool call.
    pub attempt: Option<u32>,
    /// Who asked: the task's creator, or the attempt's member. Its own
    /// approval does not count.
    pub requester: NodeId,
    /// The action's tier.
    pub tier: Risk,
    /// What it would do.
    pub action: String,
    /// Approvals it needs.
    pub needed: u8,
    /// When it began to wait (its author's clock, Unix ms); for a task,
    /// once the tasks it waits for are done.
    pub since_ms: Option<u64>,
    /// Approvals given.
    pub approvals: Vec<Vote>,
    /// The denial, if any.
    pub denial: Option<Vote>,
    /// Where it stands.
    pub verdict: Verdict,
    /// The `expire` event, if it timed out.
    pub expired_by: Option<EventId>,
}

/// An event that did not count, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedEvent {
    /// The event.
    pub id: EventId,
    /// Why it did not count.
    pub reason: String,
}

/// A workgroup as its log says it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    /// Its id.
    pub group: GroupId,
    /// Its name.
    pub name: String,
    /// What it is for.
    pub briefing: String,
    /// Who created it.
    pub creator: NodeId,
    /// Its total budget.
    pub budget: Budget,
    /// How it runs tasks.
    pub policy: Policy,
    /// Who submits, how much runs at once, what needs approval.
    pub governance: Governance,
    /// Actions that needed approval, by subject (task or request id).
    pub approvals: BTreeMap<EventId, Approval>,
    /// The subjects of each task's approvals, in order.
    approvals_by_task: BTreeMap<EventId, Vec<EventId>>,
    /// Members, invitees and former members.
    pub members: BTreeMap<NodeId, Member>,
    /// Tasks by id.
    pub tasks: BTreeMap<EventId, Task>,
    /// Task ids in the order they were created.
    pub task_order: Vec<EventId>,
    /// What the group has spent.
    pub spent: Usage,
    /// What it has spent per model.
    pub spent_by_model: BTreeMap<String, Usage>,
    /// Events that did not count.
    pub refused: Vec<RefusedEvent>,
    /// Authors whose feeds are set aside from a sequence number on, for
    /// equivocation.
    pub forks: BTreeMap<NodeId, u64>,
    /// Events folded (counted or refused).
    pub events: usize,
    /// The highest clock seen.
    pub clock: u64,
    /// The last event folded, in fold order.
    last: (u64, EventId),
    /// Tasks not yet over.
    open: BTreeSet<EventId>,
    /// Events set aside for equivocation (and those building on them).
    excluded: HashSet<EventId>,
}

impl State {
    /// Folds `log` into the group's state.
    pub fn fold(log: &Log) -> Self {
        let genesis = log.genesis();
        let Body::Create(create) = genesis.body() else {
            unreachable!("a log starts with the group's creation");
        };
        let creator = genesis.author();
        let mut state = State {
            group: log.group(),
            name: create.name.clone(),
            briefing: create.briefing.clone(),
            creator,
            budget: create.budget,
            policy: create.policy,
            governance: Governance::default(),
            approvals: BTreeMap::new(),
            approvals_by_task: BTreeMap::new(),
            members: BTreeMap::from([(
                creator,
                Member {
                    node: creator,
                    status: MemberStatus::Active,
                    roles: create.roles.clone(),
                    admin: true,
                    card: None,
                    spent: Usage::default(),
                    invite: None,
                    ended_clock: None,
                },
            )]),
            tasks: BTreeMap::new(),
            task_order: Vec::new(),
            spent: Usage::default(),
            spent_by_model: BTreeMap::new(),
            refused: Vec::new(),
            forks: log.forks().into_iter().collect(),
            events: 1,
            clock: genesis.header().clock,
            last: (genesis.header().clock, genesis.id()),
            open: BTreeSet::new(),
            excluded: HashSet::new(),
        };
        for event in log.ordered().into_iter().skip(1) {
            state.step(event);
        }
        state
    }

    /// Folds `log` again after it took `new` events: only those, if they
    /// all come after everything folded so far (this node's own events
    /// always do) and no new evidence arrived; else the whole log.
    pub fn advance(&mut self, log: &Log, new: &[Event]) {
        let forks: BTreeMap<NodeId, u64> = log.forks().into_iter().collect();
        let mut sorted: Vec<&Event> = new.iter().collect();
        sorted.sort_unstable_by_key(|e| (e.header().clock, e.id()));
        let after = sorted.first().is_none_or(|e| (e.header().clock, e.id()) > self.last);
        if forks != self.forks || !after {
            *self = State::fold(log);
            return;
        }
        for event in sorted {
            self.step(event);
        }
    }

    /// Why `event` would not count if it were folded next (`None`: it
    /// would). For an author about to write, so that it writes nothing the
    /// group would refuse.
    pub fn refusal(&self, event: &Event) -> Option<String> {
        let mut trial = self.clone();
        trial.step(event);
        trial.refused.last().filter(|r| r.id == event.id()).map(|r| r.reason.clone())
    }

    /// Applies the next event in fold order.
    fn step(&mut self, event: &Event) {
        self.events += 1;
        self.clock = self.clock.max(event.header().clock);
        self.last = (event.header().clock, event.id());
        // An equivocator's feed is set aside from the fork on. Another
        // author's event that builds on it does not count either, but that
        // author's own chain goes on; a refusal for authority affects only
        // the event itself.
        let forked = self.forks.get(&event.author()).is_some_and(|s| event.header().seq >= *s);
        let reason = if forked {
            self.excluded.insert(event.id());
            Some("its author equivocated at or before this point".to_owned())
        } else if event.deps().iter().any(|p| self.excluded.contains(p)) {
            Some("it depends on an event set aside".to_owned())
        } else {
            self.apply(event).err()
        };
        if let Some(reason) = reason {
            self.refused.push(RefusedEvent { id: event.id(), reason });
        }
        self.settle(event.header().time_ms);
    }

    /// After an event: tasks that ended end their delegated tasks too, move
    /// the tasks waiting for them on, and leave the open set.
    fn settle(&mut self, time: u64) {
        let ended: Vec<EventId> =
            self.open.iter().filter(|id| self.tasks.get(*id).is_none_or(|t| t.status.is_terminal())).copied().collect();
        if ended.is_empty() {
            return;
        }
        let mut stack: Vec<EventId> = ended.iter().flat_map(|id| self.tasks[id].children.clone()).collect();
        while let Some(id) = stack.pop() {
            if let Some(child) = self.tasks.get_mut(&id).filter(|t| !t.status.is_terminal()) {
                cancel(child, "the task it was delegated from ended", time);
                stack.extend(child.children.iter().copied());
            }
        }
        let ended: Vec<EventId> =
            self.open.iter().filter(|id| self.tasks.get(*id).is_none_or(|t| t.status.is_terminal())).copied().collect();
        self.release_dependents(&ended, time);
        let tasks = &self.tasks;
        self.open.retain(|id| tasks.get(id).is_some_and(|t| !t.status.is_terminal()));
    }

    /// A member by node id, if it may act.
    pub fn active(&self, node: &NodeId) -> Option<&Member> {
        self.members.get(node).filter(|m| m.is_active())
    }

    /// Whether `node` is an active admin.
    pub fn is_admin(&self, node: &NodeId) -> bool {
        self.active(node).is_some_and(|m| m.admin)
    }

    /// What the group may still reserve: its budget less what it spent and
    /// what open tasks hold. `None` in a unit without a limit.
    pub fn available(&self) -> (Option<u64>, Option<u64>) {
        // Delegated tasks draw on their parent's budget, not the group's.
        let mut held = self.spent;
        for task in self.open.iter().filter_map(|id| self.tasks.get(id)).filter(|t| t.spec.parent.is_none()) {
            held.add(task.reserved());
        }
        (
            self.budget.tokens.map(|b| b.saturating_sub(held.tokens)),
            self.budget.usd_micros.map(|b| b.saturating_sub(held.usd_micros)),
        )
    }

    /// Whether `node` may approve: an active member named an approver, or
    /// an active admin when the group names none.
    pub fn is_approver(&self, node: &NodeId) -> bool {
        if self.governance.approvers.is_empty() {
            return self.is_admin(node);
        }
        self.active(node).is_some() && self.governance.approvers.iter().any(|a| a.0 == *node.as_bytes())
    }

    /// Whether `node` may submit tasks.
    pub fn may_submit(&self, node: &NodeId) -> bool {
        self.is_admin(node)
            || (self.active(node).is_some()
                && self.governance.submitters.as_ref().is_none_or(|s| s.iter().any(|k| k.0 == *node.as_bytes())))
    }

    /// Open tasks with an attempt under way (assigned, working or waiting
    /// for an answer), less those waiting on tasks they delegated (which
    /// would otherwise never get a turn): what `max_running` limits.
    pub fn running(&self) -> usize {
        self.open_tasks()
            .filter_map(|t| t.current().map(|a| (t, a.n)))
            .filter(|(t, n)| {
                !t.children
                    .iter()
                    .filter_map(|c| self.tasks.get(c))
                    .any(|c| !c.status.is_terminal() && c.parent_attempt == Some(*n))
            })
            .count()
    }

    /// A tool's tier in this group: the group's, if it sets one, else
    /// `own` (the member's).
    pub fn tool_tier(&self, tool: &str, own: Risk) -> Risk {
        self.governance.tools.iter().find(|t| t.tool == tool).map_or(own, |t| t.tier)
    }

    /// Approvals an action of `tier` in `task` needs: none when the task's
    /// own tier covers it (the task was approved, or needed no approval, at
    /// that tier or above).
    pub fn needs_for(&self, task: &Task, tier: Risk) -> u8 {
        if tier <= task.tier {
            return 0;
        }
        self.governance.needs.of(tier)
    }

    /// A task's approvals: its own, then its tool calls', in order.
    pub fn approvals_of(&self, task: &EventId) -> impl Iterator<Item = &Approval> {
        self.approvals_by_task.get(task).into_iter().flatten().filter_map(|id| self.approvals.get(id))
    }

    /// Approvals still pending for open tasks (a tool call's only while
    /// its attempt is the one in progress).
    pub fn pending_approvals(&self) -> impl Iterator<Item = &Approval> {
        self.approvals.values().filter(|a| a.verdict == Verdict::Pending).filter(|a| {
            self.tasks.get(&a.task).is_some_and(|t| {
                !t.status.is_terminal() && a.attempt.is_none_or(|n| t.current().is_some_and(|c| c.n == n))
            })
        })
    }

    /// Open tasks assigned to `node`.
    pub fn load(&self, node: &NodeId) -> usize {
        self.open.iter().filter_map(|id| self.tasks.get(id)).filter(|t| t.assignee() == Some(*node)).count()
    }

    /// Tasks not yet over, oldest first by id.
    pub fn open_tasks(&self) -> impl Iterator<Item = &Task> {
        self.open.iter().filter_map(|id| self.tasks.get(id))
    }

    /// Applies one event; `Err` says why it does not count.
    fn apply(&mut self, event: &Event) -> Result<(), String> {
        let author = event.author();
        let time = event.header().time_ms;
        let is_member = self.active(&author).is_some();
        let is_admin = self.is_admin(&author);
        match event.body() {
            Body::Create(_) => Err("a group is created only once".into()),
            Body::Invite(b) => {
                require(is_admin, "only an admin invites")?;
                let node = node(&b.member)?;
                if self.active(&node).is_some() {
                    return Err(format!("{} is a member already", node.short()));
                }
                let member = Member {
                    node,
                    status: MemberStatus::Invited,
                    roles: b.roles.clone(),
                    admin: b.admin,
                    card: None,
                    spent: self.members.get(&node).map(|m| m.spent).unwrap_or_default(),
                    invite: Some(event.id()),
                    ended_clock: None,
                };
                self.members.insert(node, member);
                Ok(())
            }
            Body::Join(b) => {
                let m = self.members.get_mut(&author).ok_or("not invited")?;
                require(m.status == MemberStatus::Invited, "not invited (or already a member)")?;
                require(m.invite.is_some_and(|i| event.deps().contains(&i)), "a join names the invitation it accepts")?;
                m.status = MemberStatus::Active;
                m.card = Some(b.card.clone());
                Ok(())
            }
            Body::Leave(_) => {
                require(is_member, "not a member")?;
                self.end_membership(author, MemberStatus::Left, event);
                Ok(())
            }
            Body::Remove(b) => {
                require(is_admin, "only an admin removes members")?;
                let node = node(&b.member)?;
                let status = self.members.get(&node).map(|m| m.status);
                require(
                    matches!(status, Some(MemberStatus::Active | MemberStatus::Invited)),
                    "not a member or invitee",
                )?;
                self.end_membership(node, MemberStatus::Removed, event);
                Ok(())
            }
            Body::Card(b) => {
                require(is_member, "not a member")?;
                if let Some(m) = self.members.get_mut(&author) {
                    m.card = Some(b.card.clone());
                }
                Ok(())
            }
            Body::Roles(b) => {
                require(is_admin, "only an admin changes roles")?;
                let node = node(&b.member)?;
                let m = self.members.get_mut(&node).filter(|m| m.is_active()).ok_or("not a member")?;
                m.roles = b.roles.clone();
                m.admin = b.admin;
                Ok(())
            }
            Body::Budget(b) => {
                require(is_admin, "only an admin changes the budget")?;
                self.budget = b.budget;
                Ok(())
            }
            Body::Note(_) => require(is_member, "not a member"),
            Body::TaskCreate(spec) => {
                require(is_member, "not a member")?;
                // Delegating is submitting too.
                require(
                    self.may_submit(&author),
                    "this member may not submit tasks (an admin grants it with `alp wg policy --submitters`)",
                )?;
                self.create_task(event, spec.clone());
                Ok(())
            }
            Body::Policy(g) => {
                require(is_admin, "only an admin sets the group's policy")?;
                let n = g.needs;
                require(
                    n.low <= n.medium && n.medium <= n.high && n.high <= n.critical,
                    "approvals needed never decrease with risk (low ≤ medium ≤ high ≤ critical)",
                )?;
                self.governance = g.clone();
                Ok(())
            }
            Body::ApprovalRequest(b) => {
                self.attempt_of(&b.task, b.attempt, author)?;
                let needed = self.governance.needs.of(b.tier);
                require(needed > 0, "that tier needs no approval in this group")?;
                let (mut asked, mut pending) = (0, 0);
                for a in self.approvals_of(&EventId(b.task)).filter(|a| a.attempt == Some(b.attempt)) {
                    asked += 1;
                    pending += usize::from(a.verdict == Verdict::Pending);
                }
                require(pending < MAX_PENDING, "an attempt has at most 8 approvals pending")?;
                require(asked < MAX_REQUESTS, "an attempt asks for at most 64 approvals")?;
                let approval = Approval {
                    subject: event.id(),
                    task: EventId(b.task),
                    attempt: Some(b.attempt),
                    requester: author,
                    tier: b.tier,
                    action: b.action.clone(),
                    needed,
                    since_ms: Some(time),
                    approvals: Vec::new(),
                    denial: None,
                    verdict: Verdict::Pending,
                    expired_by: None,
                };
                self.approvals_by_task.entry(EventId(b.task)).or_default().push(event.id());
                self.approvals.insert(event.id(), approval);
                Ok(())
            }
            Body::Approve(d) | Body::Deny(d) => {
                let approve = matches!(event.body(), Body::Approve(_));
                let subject = EventId(d.subject);
                let a = self.approvals.get(&subject).ok_or("nothing there waits for approval")?;
                self.open_task(&a.task.0)?;
                require(a.verdict == Verdict::Pending, "it was decided already")?;
                require(self.is_approver(&author), "not an approver of this group")?;
                require(author != a.requester, "its own requester cannot approve or deny it")?;
                require(!a.approvals.iter().any(|v| v.by == author), "this approver approved it already")?;
                let vote = Vote { by: author, event: event.id(), reason: d.reason.clone() };
                let is_task = a.attempt.is_none();
                let task_id = a.task;
                let a = self.approvals.get_mut(&subject).ok_or("nothing there waits for approval")?;
                if approve {
                    a.approvals.push(vote);
                    if a.approvals.len() >= usize::from(a.needed) {
                        a.verdict = Verdict::Approved;
                    }
                } else {
                    a.denial = Some(vote);
                    a.verdict = Verdict::Denied;
                }
                let verdict = a.verdict;
                if is_task {
                    self.decide_task(task_id, verdict, &d.reason, author, time);
                }
                Ok(())
            }
            Body::Expire(b) => {
                let subject = EventId(b.subject);
                let a = self.approvals.get(&subject).ok_or("nothing there waits for approval")?;
                self.open_task(&a.task.0)?;
                require(a.verdict == Verdict::Pending, "it was decided already")?;
                let on_timeout = self.governance.on_timeout;
                // Letting it proceed is a decision for those who decide;
                // the others only end the wait.
                if on_timeout == OnTimeout::Proceed {
                    require(
                        is_admin || (author != a.requester && self.is_approver(&author)),
                        "only an admin or an approver lets it proceed on timeout",
                    )?;
                } else {
                    require(
                        (author == a.requester && is_member) || is_admin,
                        "only whoever asked, or an admin, records a timeout",
                    )?;
                }
                let since = a.since_ms.ok_or("it has not begun to wait (the tasks before it are not done)")?;
                let timeout = u64::from(self.governance.timeout_secs) * 1000;
                require(time >= since.saturating_add(timeout), "its time to wait has not run out")?;
                let (is_task, task_id) = (a.attempt.is_none(), a.task);
                let a = self.approvals.get_mut(&subject).ok_or("nothing there waits for approval")?;
                a.verdict = Verdict::Expired(on_timeout);
                a.expired_by = Some(event.id());
                if is_task {
                    let secs = self.governance.timeout_secs;
                    let why = format!("nobody approved it within {secs}s");
                    self.decide_task(task_id, Verdict::Expired(on_timeout), &why, author, time);
                }
                Ok(())
            }
            Body::Assign(b) => {
                let task = self.open_task(&b.task)?;
                require(
                    (task.creator == author && is_member) || is_admin,
                    "only the task's creator or an admin assigns it",
                )?;
                require(task.status != TaskStatus::Waiting, "it waits for the tasks it depends on")?;
                require(task.status != TaskStatus::AwaitingApproval, "it waits for approval")?;
                let max = usize::from(self.governance.max_running);
                require(
                    max == 0 || task.current().is_some() || self.running() < max,
                    &format!("the group runs at most {max} tasks at once"),
                )?;
                let expected = task.attempts.len() as u32 + 1;
                require(b.attempt == expected, &format!("attempt {} is not the next ({expected})", b.attempt))?;
                require(b.attempt <= u32::from(self.policy.max_attempts), "no attempts left")?;
                let member = node(&b.member)?;
                require(self.active(&member).is_some(), "the assignee is not a member")?;
                let task = self.task_mut(&b.task)?;
                if let Some(last) = task.attempts.last_mut().filter(|a| a.ended.is_none()) {
                    last.ended = Some("superseded by a new attempt".into());
                }
                task.attempts.push(Attempt {
                    n: b.attempt,
                    member,
                    assigned_by: event.id(),
                    claimed: false,
                    ended: None,
                    spend: None,
                });
                task.status = TaskStatus::Submitted;
                task.question = None;
                task.updated_ms = time;
                Ok(())
            }
            Body::Claim(b) => {
                let task = self.attempt_of(&b.task, b.attempt, author)?;
                require(task.status == TaskStatus::Submitted, "already claimed")?;
                let task = self.task_mut(&b.task)?;
                task.status = TaskStatus::Working;
                if let Some(a) = task.attempts.last_mut() {
                    a.claimed = true;
                }
                task.updated_ms = time;
                Ok(())
            }
            Body::Renew(b) => {
                let task = self.attempt_of(&b.task, b.attempt, author)?;
                require(task.status != TaskStatus::Submitted, "not claimed")?;
                Ok(())
            }
            Body::Progress(b) => {
                self.attempt_of(&b.task, b.attempt, author)?;
                let task = self.task_mut(&b.task)?;
                task.progress.push(b.text.clone());
                if task.progress.len() > PROGRESS_KEPT {
                    task.progress.remove(0);
                }
                task.updated_ms = time;
                Ok(())
            }
            Body::InputNeeded(b) => {
                let task = self.attempt_of(&b.task, b.attempt, author)?;
                require(task.status == TaskStatus::Working, "not working on it")?;
                let task = self.task_mut(&b.task)?;
                task.status = TaskStatus::InputRequired;
                task.question = Some(b.question.clone());
                task.updated_ms = time;
                Ok(())
            }
            Body::Reply(b) => {
                let task = self.open_task(&b.task)?;
                require(
                    (task.creator == author && is_member) || is_admin,
                    "only the task's creator or an admin answers",
                )?;
                require(task.status == TaskStatus::InputRequired, "no question is open")?;
                let task = self.task_mut(&b.task)?;
                task.status = TaskStatus::Working;
                task.question = None;
                task.replies.push(b.text.clone());
                task.updated_ms = time;
                Ok(())
            }
            Body::Complete(b) => {
                if self.is_superseded(&b.task, b.attempt, author) {
                    self.task_mut(&b.task)?.late.push(event.id());
                    return Err(format!("attempt {} was superseded: recorded, not counted", b.attempt));
                }
                self.attempt_of(&b.task, b.attempt, author)?;
                let task = self.task_mut(&b.task)?;
                task.status = TaskStatus::Completed;
                task.question = None;
                task.output = Some(Output {
                    text: b.text.clone(),
                    artefacts: b.artefacts.clone(),
                    by: author,
                    attempt: b.attempt,
                    event: event.id(),
                });
                task.updated_ms = time;
                Ok(())
            }
            Body::Fail(b) => {
                let task = self.open_task(&b.task)?;
                let current = task.current().map(|a| (a.n, a.member));
                let creator = task.creator;
                let Some((n, member)) = current.filter(|(n, _)| *n == b.attempt) else {
                    if self.is_superseded(&b.task, b.attempt, author) {
                        self.task_mut(&b.task)?.late.push(event.id());
                    }
                    return Err(format!("attempt {} is not in progress", b.attempt));
                };
                require(
                    author == member || (author == creator && is_member) || is_admin,
                    "only the assignee, the task's creator or an admin ends an attempt",
                )?;
                let max = if b.retry { u32::from(self.policy.max_attempts) } else { n };
                let child_looped = self.tasks[&EventId(b.task)]
                    .children
                    .iter()
                    .any(|c| self.tasks.get(c).is_some_and(|c| c.loop_detected));
                let task = self.task_mut(&b.task)?;
                end_attempt(task, n, &b.reason, max, time);
                if !b.retry && child_looped {
                    task.loop_detected = true;
                }
                Ok(())
            }
            Body::Cancel(b) => {
                let reason = if b.reason.is_empty() { "canceled".to_owned() } else { b.reason.clone() };
                match b.task {
                    Some(id) => {
                        let task = self.open_task(&id)?;
                        require(
                            (task.creator == author && is_member) || is_admin,
                            "only the task's creator or an admin cancels it",
                        )?;
                        let task = self.task_mut(&id)?;
                        cancel(task, &reason, time);
                    }
                    None => {
                        require(is_admin, "only an admin cancels the whole group's work")?;
                        for id in &self.open {
                            if let Some(task) = self.tasks.get_mut(id) {
                                cancel(task, &reason, time);
                            }
                        }
                    }
                }
                Ok(())
            }
            Body::Spend(b) => {
                let task = self.tasks.get(&EventId(b.task)).ok_or("no such task")?;
                require(task.status != TaskStatus::Canceled, "the task was canceled: spend after that is refused")?;
                let attempt = task.attempts.iter().find(|a| a.n == b.attempt).ok_or("no such attempt")?;
                require(attempt.member == author, "only the attempt's member reports its spend")?;
                require(is_member || attempt.ended.is_some(), "not a member")?;
                let before = attempt.spend.as_ref().map(Usage::of).unwrap_or_default();
                // Reports only grow (a later one cannot take back what was
                // spent), and an attempt counts at most twice the task's
                // budget in each unit it limits.
                let cap = |limit: Option<u64>| limit.map_or(u64::MAX, |l| l.saturating_mul(2));
                let now = Usage {
                    tokens: before.tokens.max(b.tokens()).min(cap(task.spec.budget.tokens)),
                    usd_micros: before.usd_micros.max(b.usd_micros).min(cap(task.spec.budget.usd_micros)),
                };
                let model_before = attempt.spend.as_ref().map(|s| s.model.clone());
                let mut chain = vec![task.id];
                let mut up = task.spec.parent;
                while let Some(p) = up.map(EventId).filter(|p| !chain.contains(p)) {
                    chain.push(p);
                    up = self.tasks.get(&p).and_then(|t| t.spec.parent);
                }
                self.spent.sub(before);
                self.spent.add(now);
                if let Some(m) = self.members.get_mut(&author) {
                    m.spent.sub(before);
                    m.spent.add(now);
                }
                if let Some(model) = model_before {
                    self.spent_by_model.entry(model).or_default().sub(before);
                }
                self.spent_by_model.entry(b.model.clone()).or_default().add(now);
                for id in chain {
                    if let Some(t) = self.tasks.get_mut(&id) {
                        t.subtree_spent.sub(before);
                        t.subtree_spent.add(now);
                    }
                }
                let task = self.task_mut(&b.task)?;
                if let Some(a) = task.attempts.iter_mut().find(|a| a.n == b.attempt) {
                    let mut counted = b.clone();
                    counted.input_tokens = now.tokens.min(b.input_tokens.max(before.tokens));
                    counted.output_tokens = now.tokens - counted.input_tokens;
                    counted.usd_micros = now.usd_micros;
                    a.spend = Some(counted);
                }
                Ok(())
            }
        }
    }

    /// Adds a task: submitted if it fits the group's rules, else rejected.
    fn create_task(&mut self, event: &Event, spec: TaskCreate) {
        let (depth, rejection) = self.admit(event.author(), &spec);
        let time = event.header().time_ms;
        let tier = self.tier_of(event.author(), &spec);
        let parent_attempt =
            spec.parent.and_then(|p| self.tasks.get(&EventId(p))).and_then(|p| p.current()).map(|a| a.n);
        let task = Task {
            id: event.id(),
            creator: event.author(),
            spec,
            depth,
            tier,
            parent_attempt,
            status: if rejection.is_some() { TaskStatus::Rejected } else { TaskStatus::Waiting },
            attempts: Vec::new(),
            question: None,
            replies: Vec::new(),
            progress: Vec::new(),
            output: None,
            reason: rejection,
            late: Vec::new(),
            children: Vec::new(),
            subtree_spent: Usage::default(),
            loop_detected: false,
            created_ms: time,
            updated_ms: time,
        };
        let looped = task.reason.as_deref().is_some_and(|r| r.starts_with("loop detected"));
        let mut task = task;
        task.loop_detected = looped;
        if let Some(parent) = task.spec.parent.map(EventId)
            && let Some(p) = self.tasks.get_mut(&parent)
        {
            p.children.push(task.id);
        }
        self.task_order.push(task.id);
        if !task.status.is_terminal() {
            self.open.insert(task.id);
        }
        let id = task.id;
        if !task.status.is_terminal() {
            self.request_approval(&task);
        }
        self.tasks.insert(id, task);
        // Its dependencies may all be done already (or it has none).
        self.release_dependents(&[id], time);
    }

    /// Moves tasks waiting on `changed` (or `changed` themselves) on: to
    /// `Submitted` once every task they wait for has completed (or ended,
    /// where optional), to `Failed` once one they need has ended without a
    /// result; and so on down the graph.
    fn release_dependents(&mut self, changed: &[EventId], time: u64) {
        let mut queue: Vec<EventId> = changed.to_vec();
        while let Some(id) = queue.pop() {
            let mut next: Vec<EventId> = self
                .open
                .iter()
                .filter(|o| self.tasks[*o].spec.after.iter().any(|a| EventId(a.task) == id))
                .copied()
                .collect();
            if self.tasks.get(&id).is_some_and(|t| t.status == TaskStatus::Waiting) {
                next.push(id);
            }
            for w in next {
                let Some(task) = self.tasks.get(&w).filter(|t| t.status == TaskStatus::Waiting) else { continue };
                let mut ready = true;
                let mut failed = None;
                for a in &task.spec.after {
                    match self.tasks.get(&EventId(a.task)).map(|d| (d.status, d.reason.clone())) {
                        Some((TaskStatus::Completed, _)) => {}
                        Some((s, reason)) if s.is_terminal() => {
                            if !a.optional && failed.is_none() {
                                // Capped: reasons must not grow down a chain or fan out.
                                let why: String =
                                    reason.unwrap_or_else(|| s.as_str().to_owned()).chars().take(200).collect();
                                failed =
                                    Some(format!("its dependency {} {}: {why}", EventId(a.task).short(), s.as_str()));
                            }
                        }
                        _ => ready = false,
                    }
                }
                let Some(task) = self.tasks.get_mut(&w) else { continue };
                if let Some(reason) = failed {
                    task.status = TaskStatus::Failed;
                    task.reason = Some(reason);
                    task.updated_ms = time;
                    self.open.remove(&w);
                    queue.push(w);
                } else if ready {
                    task.updated_ms = time;
                    match self.approvals.get_mut(&w).map(|a| (a.verdict, a)) {
                        Some((Verdict::Pending, a)) => {
                            // Never before its creator's own clock said it
                            // was made: another member's event dated early
                            // cannot shorten the wait.
                            a.since_ms = Some(time.max(task.created_ms));
                            task.status = TaskStatus::AwaitingApproval;
                        }
                        // Denied or skipped before it was ready: settled already.
                        _ => task.status = TaskStatus::Submitted,
                    }
                }
            }
        }
    }

    /// A new task's tier: the one it declares, or the group's default
    /// (only an admin declares less than the default); at least its
    /// parent's.
    fn tier_of(&self, author: NodeId, spec: &TaskCreate) -> Risk {
        let default = self.governance.default_tier;
        let declared = spec.tier.unwrap_or(default);
        let mut tier = if declared < default && !self.is_admin(&author) { default } else { declared };
        if let Some(p) = spec.parent.and_then(|p| self.tasks.get(&EventId(p))) {
            tier = tier.max(p.tier);
        }
        tier
    }

    /// Opens the approval a new task's tier needs, if it needs one (a
    /// delegated task too: its approvers saw only its parent's goal).
    fn request_approval(&mut self, task: &Task) {
        let needed = self.governance.needs.of(task.tier);
        if needed == 0 {
            return;
        }
        let approval = Approval {
            subject: task.id,
            task: task.id,
            attempt: None,
            requester: task.creator,
            tier: task.tier,
            action: task.spec.goal.chars().take(200).collect(),
            needed,
            since_ms: None,
            approvals: Vec::new(),
            denial: None,
            verdict: Verdict::Pending,
            expired_by: None,
        };
        self.approvals_by_task.entry(task.id).or_default().push(task.id);
        self.approvals.insert(task.id, approval);
    }

    /// A task's approval was decided: it runs, or ends with the reason.
    fn decide_task(&mut self, id: EventId, verdict: Verdict, reason: &str, by: NodeId, time: u64) {
        let Some(task) = self.tasks.get_mut(&id).filter(|t| !t.status.is_terminal()) else { return };
        let reason: String = reason.chars().take(200).collect();
        let (status, why) = match verdict {
            Verdict::Pending => return,
            Verdict::Approved | Verdict::Expired(OnTimeout::Proceed) => {
                if task.status == TaskStatus::AwaitingApproval {
                    task.status = TaskStatus::Submitted;
                    task.updated_ms = time;
                }
                return;
            }
            Verdict::Denied => (TaskStatus::Rejected, format!("denied by {}: {reason}", by.short())),
            Verdict::Expired(OnTimeout::Deny) => (TaskStatus::Rejected, format!("denied: {reason}")),
            Verdict::Expired(OnTimeout::Skip) => (TaskStatus::Canceled, format!("skipped: {reason}")),
        };
        task.status = status;
        task.reason = Some(why);
        task.updated_ms = time;
    }

    /// A new task's depth, and why the group refuses it, if it does.
    fn admit(&self, author: NodeId, spec: &TaskCreate) -> (u8, Option<String>) {
        let mut depth = 0u8;
        if let Some(parent) = spec.parent {
            let Some(p) = self.tasks.get(&EventId(parent)) else {
                return (0, Some("its parent task does not exist".into()));
            };
            if p.status.is_terminal() {
                return (0, Some("its parent task is over".into()));
            }
            if p.assignee() != Some(author) {
                return (0, Some("only the member working on a task delegates from it".into()));
            }
            depth = p.depth.saturating_add(1);
            if depth > self.policy.max_depth {
                let max = self.policy.max_depth;
                return (depth, Some(format!("loop detected: delegation {depth} deep, the group allows {max}")));
            }
            let mut up = Some(p);
            while let Some(a) = up {
                if a.spec.goal == spec.goal && a.spec.to == spec.to && a.spec.role == spec.role {
                    let id = a.id.short();
                    return (depth, Some(format!("loop detected: task {id} up the chain asks the same")));
                }
                up = a.spec.parent.and_then(|p| self.tasks.get(&EventId(p)));
            }
        }
        if let Some(missing) = spec.after.iter().find(|a| !self.tasks.contains_key(&EventId(a.task))) {
            return (
                depth,
                Some(format!("it waits for task {}, which is not in the group", EventId(missing.task).short())),
            );
        }
        if let Some(to) = spec.to
            && NodeId::from_bytes(to).ok().and_then(|n| self.active(&n)).is_none()
        {
            return (depth, Some("it names a member that is not in the group".into()));
        }
        if let Some(role) = &spec.role
            && !self.members.values().any(|m| m.is_active() && m.roles.contains(role))
        {
            return (depth, Some(format!("no member has the role `{role}`")));
        }
        // A delegated task draws on what its parent has left (less what its
        // other open delegated tasks hold); any other task on the group's.
        let whose = if spec.parent.is_some() { "its parent task's" } else { "the group's" };
        let (tokens, usd, total) = match spec.parent.and_then(|p| self.tasks.get(&EventId(p))) {
            Some(p) => {
                let mut left = p.reserved();
                for c in p.children.iter().filter_map(|c| self.tasks.get(c)) {
                    left.sub(c.reserved());
                }
                let limits = p.spec.budget;
                (limits.tokens.map(|_| left.tokens), limits.usd_micros.map(|_| left.usd_micros), limits)
            }
            None => {
                let (t, u) = self.available();
                (t, u, self.budget)
            }
        };
        let over = |unit: &str, left: Option<u64>, wanted: Option<u64>, total: Option<u64>| match (left, wanted) {
            (None, _) => None,
            (Some(_), None) => Some(format!("{whose} budget limits {unit}, so the task needs a budget in {unit}")),
            (Some(left), Some(w)) if w > left => {
                Some(format!("over {whose} budget: {left} of {} {unit} left, the task needs {w}", total.unwrap_or(0)))
            }
            _ => None,
        };
        let b = spec.budget;
        let rejection = over("tokens", tokens, b.tokens, total.tokens)
            .or_else(|| over("USD micros", usd, b.usd_micros, total.usd_micros));
        (depth, rejection)
    }

    /// Ends `node`'s membership at `event`: its attempt in progress ends,
    /// and the open tasks it created are canceled (nobody is left to
    /// assign or answer them).
    fn end_membership(&mut self, node: NodeId, status: MemberStatus, event: &Event) {
        let time = event.header().time_ms;
        if let Some(m) = self.members.get_mut(&node) {
            m.status = status;
            m.ended_clock = Some(event.header().clock);
        }
        let why = match status {
            MemberStatus::Removed => "its member was removed",
            _ => "its member left",
        };
        let max = u32::from(self.policy.max_attempts);
        for id in &self.open {
            let Some(task) = self.tasks.get_mut(id) else { continue };
            if task.creator == node {
                let reason =
                    if status == MemberStatus::Removed { "its creator was removed" } else { "its creator left" };
                cancel(task, reason, time);
            } else if let Some(n) = task.current().filter(|a| a.member == node).map(|a| a.n) {
                end_attempt(task, n, why, max, time);
            }
        }
    }

    fn open_task(&self, id: &Key) -> Result<&Task, String> {
        let task = self.tasks.get(&EventId(*id)).ok_or("no such task")?;
        if task.status.is_terminal() {
            return Err(format!("the task is {}", task.status.as_str()));
        }
        Ok(task)
    }

    fn task_mut(&mut self, id: &Key) -> Result<&mut Task, String> {
        self.tasks.get_mut(&EventId(*id)).ok_or_else(|| "no such task".to_owned())
    }

    /// The open task whose attempt in progress is `attempt`, run by `author`.
    fn attempt_of(&self, id: &Key, attempt: u32, author: NodeId) -> Result<&Task, String> {
        let task = self.open_task(id)?;
        let current = task.current().ok_or("no attempt is in progress")?;
        require(current.n == attempt, &format!("attempt {attempt} is not the one in progress"))?;
        require(current.member == author, "only the attempt's member reports on it")?;
        Ok(task)
    }

    /// Whether `attempt` of the task was `author`'s and has been superseded.
    fn is_superseded(&self, id: &Key, attempt: u32, author: NodeId) -> bool {
        self.tasks
            .get(&EventId(*id))
            .is_some_and(|t| t.attempts.iter().any(|a| a.n == attempt && a.member == author && a.ended.is_some()))
    }
}

/// Ends the attempt in progress; the task waits for another, or fails if
/// none is left.
fn end_attempt(task: &mut Task, n: u32, reason: &str, max_attempts: u32, time: u64) {
    if let Some(a) = task.attempts.iter_mut().find(|a| a.n == n) {
        a.ended = Some(reason.to_owned());
    }
    task.question = None;
    task.updated_ms = time;
    if n >= max_attempts {
        task.status = TaskStatus::Failed;
        task.reason = Some(format!("failed after {n} attempt(s): {reason}"));
    } else {
        task.status = TaskStatus::Submitted;
    }
}

fn cancel(task: &mut Task, reason: &str, time: u64) {
    task.status = TaskStatus::Canceled;
    task.reason = Some(reason.to_owned());
    task.question = None;
    task.updated_ms = time;
    if let Some(a) = task.attempts.last_mut().filter(|a| a.ended.is_none()) {
        a.ended = Some("canceled".into());
    }
}

fn node(key: &Key) -> Result<NodeId, String> {
    NodeId::from_bytes(*key).map_err(|_| "not a node id".to_owned())
}

fn require(ok: bool, why: &str) -> Result<(), String> {
    if ok { Ok(()) } else { Err(why.to_owned()) }
}

#[cfg(test)]
mod tests;
