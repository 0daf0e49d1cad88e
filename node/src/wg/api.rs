//! The control protocol between `alp wg` commands and the running node:
//! one JSON request per connection on the control socket, answered by one
//! JSON line (or, for `watch`, a line per event until the client goes).
//! Also the views the commands print with `--json`: their schema is
//! versioned (`schema` field) and documented in docs/WORKGROUPS.md.

use alp_protocol::NodeId;
use alp_workgroup::body::{Artefact, Budget, Card};
use alp_workgroup::state::{Member, Task};
use alp_workgroup::{Body, Event, State};
use serde::{Deserialize, Serialize};

/// The `schema` of `alp wg status --json`.
pub(crate) const STATUS_SCHEMA: &str = "alp.wg.status/1";
/// The `schema` of each line of `alp wg watch --json` and `alp wg log --json`.
pub(crate) const EVENT_SCHEMA: &str = "alp.wg.event/1";

/// A command for the node.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case", deny_unknown_fields)]
pub(crate) enum Request {
    /// Create a group; this node is its first admin.
    Create {
        name: String,
        briefing: String,
        budget: Budget,
        roles: Vec<String>,
        lease_secs: Option<u32>,
        max_attempts: Option<u8>,
        max_depth: Option<u8>,
    },
    /// Invite a trusted peer.
    Invite { group: String, peer: String, roles: Vec<String>, admin: bool },
    /// Accept an invitation.
    Join { group: String },
    /// Drop an invitation (or a group this node is no longer in).
    Decline { group: String },
    /// Leave a group.
    Leave { group: String },
    /// Remove a member (admins).
    Remove { group: String, member: String },
    /// Publish this node's card again (after a config change).
    Card { group: String },
    /// A note in the transcript.
    Note { group: String, text: String },
    /// Every group here.
    List,
    /// A group, or one of its tasks.
    Status { group: String, task: Option<String> },
    /// Ask the group for work.
    Task {
        group: String,
        goal: String,
        to: Option<String>,
        role: Option<String>,
        /// Files the command imported into the store.
        inputs: Vec<Artefact>,
        /// Blobs named by hash: this node's, or artefacts of the group's tasks.
        input_hashes: Vec<String>,
        budget: Budget,
        deadline_secs: Option<u64>,
        /// Tasks (ids or unique prefixes) it waits for; `optional` ones may
        /// fail without failing it.
        #[serde(default)]
        after: Vec<String>,
        #[serde(default)]
        optional: Vec<String>,
        /// The risk tier it declares (low, medium, high, critical).
        #[serde(default)]
        tier: Option<String>,
    },
    /// Show, or (admins) change, the group's governance.
    Policy { group: String, change: crate::cmd::wg_govern::PolicyArgs },
    /// Approve or deny a task or tool call waiting for approval.
    Decide { subject: String, approve: bool, reason: String },
    /// Trusted peers (online or not) and transfers under way.
    Node,
    /// Answer a task's question (the task is found in any group).
    Reply { task: String, text: String },
    /// Cancel a task (found in any group), or every open task of a group.
    Cancel { group: Option<String>, task: Option<String>, reason: String },
    /// The transcript.
    Log { group: String },
    /// Every event from now on.
    Watch { group: String },
    /// Re-check the stored log.
    Verify { group: String },
    /// How an artefact (a blob hash, hex) was made, in whichever group made it.
    Provenance { hash: String },
    /// A graph of tasks for `goal`, proposed by this node's model and
    /// checked against the group (not submitted).
    Plan { group: String, goal: String },
}

/// One answer line.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Reply {
    /// It worked; the value depends on the request.
    Ok(serde_json::Value),
    /// It did not; the message says what to do.
    Error {
        /// For people.
        message: String,
        /// The exit code the CLI should use (2: usage, 1: failure).
        exit: u8,
    },
}

/// A member, as shown.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct MemberView {
    pub(crate) node_id: String,
    /// Its peer name here (`me` for this node).
    pub(crate) name: String,
    pub(crate) status: String,
    pub(crate) roles: Vec<String>,
    pub(crate) admin: bool,
    pub(crate) card: Option<Card>,
    /// Whether this node has a live connection to it (always for itself).
    pub(crate) online: bool,
    /// Its latest event's time (its clock), Unix milliseconds.
    pub(crate) last_seen_ms: Option<u64>,
    pub(crate) spent_tokens: u64,
    pub(crate) spent_usd: f64,
    /// Open tasks assigned to it.
    pub(crate) load: usize,
}

/// An attempt, as shown.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct AttemptView {
    pub(crate) n: u32,
    pub(crate) member: String,
    pub(crate) claimed: bool,
    pub(crate) ended: Option<String>,
    pub(crate) model: Option<String>,
    pub(crate) tokens: u64,
    pub(crate) usd: f64,
}

/// A task, as shown.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct TaskView {
    pub(crate) id: String,
    pub(crate) goal: String,
    pub(crate) status: String,
    pub(crate) creator: String,
    pub(crate) to: Option<String>,
    pub(crate) role: Option<String>,
    pub(crate) assignee: Option<String>,
    pub(crate) attempts: Vec<AttemptView>,
    pub(crate) inputs: Vec<Artefact>,
    pub(crate) budget: Budget,
    pub(crate) spent_tokens: u64,
    pub(crate) spent_usd: f64,
    pub(crate) question: Option<String>,
    pub(crate) progress: Option<String>,
    pub(crate) output: Option<String>,
    pub(crate) artefacts: Vec<Artefact>,
    pub(crate) output_by: Option<String>,
    pub(crate) reason: Option<String>,
    pub(crate) late_results: usize,
    pub(crate) parent: Option<String>,
    /// Tasks it waits for: `{task, optional}`.
    #[serde(default)]
    pub(crate) after: Vec<serde_json::Value>,
    pub(crate) depth: u8,
    /// Its risk tier.
    #[serde(default)]
    pub(crate) tier: String,
    /// Its approvals: the task's own, and its tool calls'.
    #[serde(default)]
    pub(crate) approvals: Vec<serde_json::Value>,
    pub(crate) created_ms: u64,
    pub(crate) updated_ms: u64,
}

/// A group, as `alp wg status --json` prints it.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct GroupView {
    pub(crate) schema: String,
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) briefing: String,
    /// This node's standing in it.
    pub(crate) me: String,
    pub(crate) budget: Budget,
    pub(crate) spent_tokens: u64,
    pub(crate) spent_usd: f64,
    pub(crate) available_tokens: Option<u64>,
    pub(crate) available_usd: Option<f64>,
    pub(crate) spent_by_model: Vec<(String, u64, f64)>,
    pub(crate) lease_secs: u32,
    pub(crate) max_attempts: u8,
    pub(crate) max_depth: u8,
    pub(crate) members: Vec<MemberView>,
    pub(crate) tasks: Vec<TaskView>,
    /// Who submits, what runs at once, what needs approval.
    #[serde(default)]
    pub(crate) policy: serde_json::Value,
    /// Approvals waiting for a decision.
    #[serde(default)]
    pub(crate) pending_approvals: Vec<serde_json::Value>,
    /// Tasks under way now.
    #[serde(default)]
    pub(crate) running: usize,
    pub(crate) events: usize,
    pub(crate) refused_events: usize,
    /// Authors set aside for equivocation, with the sequence number.
    pub(crate) equivocations: Vec<(String, u64)>,
}

/// One event, as `alp wg log` and `alp wg watch` show it.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct EventView {
    pub(crate) schema: String,
    pub(crate) id: String,
    pub(crate) clock: u64,
    pub(crate) time_ms: u64,
    pub(crate) author: String,
    pub(crate) seq: u64,
    pub(crate) kind: String,
    pub(crate) task: Option<String>,
    pub(crate) summary: String,
    /// Why it did not count, if it did not.
    pub(crate) refused: Option<String>,
}

pub(crate) fn usd(micros: u64) -> f64 {
    micros as f64 / 1e6
}

/// Names nodes for people: `me`, a peer's name, or a short id.
pub(crate) struct Namer {
    /// This node (`None`: reading a log from elsewhere).
    pub(crate) me: Option<NodeId>,
    pub(crate) names: std::collections::HashMap<NodeId, String>,
}

impl Namer {
    pub(crate) fn name(&self, node: &NodeId) -> String {
        if Some(*node) == self.me {
            return "me".to_owned();
        }
        self.names.get(node).cloned().unwrap_or_else(|| node.short())
    }

    fn key(&self, key: &[u8; 32]) -> String {
        NodeId::from_bytes(*key).map_or_else(|_| "?".to_owned(), |n| self.name(&n))
    }
}

pub(crate) fn member_view(s: &State, m: &Member, namer: &Namer, online: bool, last_seen_ms: Option<u64>) -> MemberView {
    MemberView {
        node_id: m.node.to_string(),
        name: namer.name(&m.node),
        status: format!("{:?}", m.status).to_lowercase(),
        roles: m.roles.clone(),
        admin: m.admin,
        card: m.card.clone(),
        online,
        last_seen_ms,
        spent_tokens: m.spent.tokens,
        spent_usd: usd(m.spent.usd_micros),
        load: s.load(&m.node),
    }
}

pub(crate) fn task_view(s: &State, t: &Task, namer: &Namer) -> TaskView {
    let spent = t.spent();
    let attempts = t
        .attempts
        .iter()
        .map(|a| AttemptView {
            n: a.n,
            member: namer.name(&a.member),
            claimed: a.claimed,
            ended: a.ended.clone(),
            model: a.spend.as_ref().map(|s| s.model.clone()),
            tokens: a.spend.as_ref().map_or(0, |s| s.tokens()),
            usd: a.spend.as_ref().map_or(0.0, |s| usd(s.usd_micros)),
        })
        .collect();
    TaskView {
        id: t.id.to_string(),
        goal: t.spec.goal.clone(),
        status: t.status.as_str().to_owned(),
        creator: namer.name(&t.creator),
        to: t.spec.to.map(|k| namer.key(&k)),
        role: t.spec.role.clone(),
        assignee: t.assignee().map(|n| namer.name(&n)),
        attempts,
        inputs: t.spec.inputs.clone(),
        budget: t.spec.budget,
        spent_tokens: spent.tokens,
        spent_usd: usd(spent.usd_micros),
        question: t.question.clone(),
        progress: t.progress.last().cloned(),
        output: t.output.as_ref().map(|o| o.text.clone()),
        artefacts: t.output.as_ref().map(|o| o.artefacts.clone()).unwrap_or_default(),
        output_by: t.output.as_ref().map(|o| namer.name(&o.by)),
        reason: t.reason.clone(),
        late_results: t.late.len(),
        parent: t.spec.parent.map(|p| alp_workgroup::EventId(p).to_string()),
        after: t
            .spec
            .after
            .iter()
            .map(|a| serde_json::json!({"task": alp_workgroup::EventId(a.task).to_string(), "optional": a.optional}))
            .collect(),
        depth: t.depth,
        tier: t.tier.as_str().to_owned(),
        approvals: s.approvals_of(&t.id).map(|a| crate::cmd::wg_govern::approval_view(s, a, namer)).collect(),
        created_ms: t.created_ms,
        updated_ms: t.updated_ms,
    }
}

/// One line saying what an event does.
pub(crate) fn summary(e: &Event, namer: &Namer) -> String {
    let short = |k: &[u8; 32]| alp_workgroup::EventId(*k).short();
    match e.body() {
        Body::Create(c) => format!("created workgroup {:?}", c.name),
        Body::Invite(i) => format!("invited {} (roles: {})", namer.key(&i.member), i.roles.join(", ")),
        Body::Join(_) => "joined".into(),
        Body::Leave(_) => "left".into(),
        Body::Remove(r) => format!("removed {}", namer.key(&r.member)),
        Body::Card(_) => "published a new card".into(),
        Body::Roles(r) => format!("set the roles of {} to {}", namer.key(&r.member), r.roles.join(", ")),
        Body::Budget(_) => "changed the budget".into(),
        Body::Note(n) => format!("note: {}", one_line(&n.text)),
        Body::TaskCreate(t) => format!("task {}: {}", e.id().short(), one_line(&t.goal)),
        Body::Assign(a) => {
            format!("assigned task {} (attempt {}) to {}", short(&a.task), a.attempt, namer.key(&a.member))
        }
        Body::Claim(a) => format!("claimed task {} (attempt {})", short(&a.task), a.attempt),
        Body::Renew(a) => format!("still on task {} (attempt {})", short(&a.task), a.attempt),
        Body::Progress(p) => format!("task {}: {}", short(&p.task), one_line(&p.text)),
        Body::InputNeeded(q) => format!("task {} needs input: {}", short(&q.task), one_line(&q.question)),
        Body::Reply(r) => format!("answered task {}: {}", short(&r.task), one_line(&r.text)),
        Body::Complete(c) => {
            format!("completed task {} (attempt {}): {}", short(&c.task), c.attempt, one_line(&c.text))
        }
        Body::Fail(f) => format!("ended attempt {} of task {}: {}", f.attempt, short(&f.task), one_line(&f.reason)),
        Body::Cancel(c) => match c.task {
            Some(t) => format!("canceled task {}: {}", short(&t), one_line(&c.reason)),
            None => format!("canceled every open task: {}", one_line(&c.reason)),
        },
        Body::Spend(s) => format!(
            "spent {} tokens, ${:.4} on {} for task {} (attempt {})",
            s.tokens(),
            usd(s.usd_micros),
            s.model,
            short(&s.task),
            s.attempt
        ),
        Body::Policy(p) => format!(
            "set the policy: at most {} running, default tier {}, approvals low={} medium={} high={} critical={}, \
             timeout {}s then {}",
            p.max_running,
            p.default_tier.as_str(),
            p.needs.low,
            p.needs.medium,
            p.needs.high,
            p.needs.critical,
            p.timeout_secs,
            p.on_timeout.as_str()
        ),
        Body::ApprovalRequest(r) => format!(
            "asks approval {} for a {} action in task {}: {}",
            e.id().short(),
            r.tier.as_str(),
            short(&r.task),
            one_line(&r.action)
        ),
        Body::Approve(d) => format!("approved {}{}", short(&d.subject), reason(&d.reason)),
        Body::Deny(d) => format!("denied {}{}", short(&d.subject), reason(&d.reason)),
        Body::Expire(x) => format!("nobody decided on {} in time", short(&x.subject)),
    }
}

fn reason(text: &str) -> String {
    if text.is_empty() { String::new() } else { format!(": {}", one_line(text)) }
}

fn one_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or_default();
    let mut out: String = line.chars().take(120).collect();
    if out.len() < text.len() {
        out.push('…');
    }
    out
}

pub(crate) fn event_view(e: &Event, namer: &Namer, refused: Option<String>) -> EventView {
    let h = e.header();
    EventView {
        schema: EVENT_SCHEMA.to_owned(),
        id: e.id().to_string(),
        clock: h.clock,
        time_ms: h.time_ms,
        author: namer.name(&h.author),
        seq: h.seq,
        kind: e.body().name().to_owned(),
        task: e
            .body()
            .task()
            .map(|t| alp_workgroup::EventId(t).to_string())
            .or_else(|| matches!(e.body(), Body::TaskCreate(_)).then(|| e.id().to_string())),
        summary: summary(e, namer),
        refused,
    }
}
