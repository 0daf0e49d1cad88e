//! What each kind of event says. A body is a CBOR map in canonical form:
//! the encoding of exactly these fields, in this order, definite lengths,
//! shortest integers. A decoder re-encodes what it read and refuses the
//! event unless the bytes are identical, so every value has one encoding
//! and nothing signed is ever re-serialised differently.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::event::EventError;

/// A node id or event id inside a body.
pub type Key = [u8; 32];

/// A node id in a list, encoded as a byte string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NodeKey(#[serde(with = "serde_bytes")] pub Key);

/// Longest workgroup name.
pub const MAX_NAME: usize = 64;
/// Longest role name.
pub const MAX_ROLE: usize = 32;
/// Most roles per member.
pub const MAX_ROLES: usize = 16;
/// Most artefacts per task input or output.
pub const MAX_ARTEFACTS: usize = 64;
/// Most tasks one task waits for (each is among its event's references,
/// of which there are at most 16).
pub const MAX_AFTER: usize = 16;
/// Most designated approvers, submitters or per-tool tiers in a policy.
pub const MAX_LISTED: usize = 64;
/// Longest description of an action waiting for approval, and longest
/// reason given with a decision.
pub const MAX_ACTION: usize = 1024;

/// Spending limits; `None` is no limit in that unit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    /// US dollars, in millionths.
    pub usd_micros: Option<u64>,
    /// Model tokens, input and output together.
    pub tokens: Option<u64>,
}

/// How the group runs tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// A working member renews its claim at least this often (seconds);
    /// the task's creator gives up on it after this long without news.
    pub lease_secs: u32,
    /// Attempts per task before it fails.
    pub max_attempts: u8,
    /// How deep tasks may delegate to further tasks.
    pub max_depth: u8,
}

impl Default for Policy {
    fn default() -> Self {
        Self { lease_secs: 30, max_attempts: 3, max_depth: 4 }
    }
}

/// A member's capability card: what it offers the group.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Card {
    /// A short bio.
    pub bio: String,
    /// The models it runs (a provider's model, or the local model).
    pub models: Vec<String>,
    /// The tools it runs for this group's tasks.
    pub tools: Vec<String>,
    /// Tasks it works on at once.
    pub capacity: u8,
    /// Its prices, per model, if it charges.
    pub prices: Vec<Price>,
}

/// What a member charges for a model, per million tokens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// The model.
    pub model: String,
    /// Input tokens, US dollars per million, in millionths.
    pub input_usd_micros: u64,
    /// Output tokens, likewise.
    pub output_usd_micros: u64,
}

/// A file that travels as a blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Artefact {
    /// Its file name (no directories).
    pub name: String,
    /// The blob's BLAKE3 hash.
    #[serde(with = "serde_bytes")]
    pub hash: Key,
    /// The blob's size.
    pub size: u64,
}

/// The group's first event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Create {
    /// Its name.
    pub name: String,
    /// What the group is for, given to every task's agent.
    pub briefing: String,
    /// The group's total budget.
    pub budget: Budget,
    /// How it runs tasks.
    pub policy: Policy,
    /// The creator's roles.
    pub roles: Vec<String>,
}

/// A node with roles: in `invite` (an admin invites it, with the roles
/// it will have once it joins) and in `roles` (an admin changes a
/// member's roles).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberRoles {
    /// The node.
    #[serde(with = "serde_bytes")]
    pub member: Key,
    /// Its roles.
    pub roles: Vec<String>,
    /// Whether it is (or will be) an admin.
    pub admin: bool,
}

/// A card: in `join` (the invited node accepts; its deps name the
/// invite) and in `card` (a member publishes a new one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WithCard {
    /// The capability card.
    pub card: Card,
}

/// An admin removes a member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Remove {
    /// The member.
    #[serde(with = "serde_bytes")]
    pub member: Key,
}

/// An admin changes the group's budget.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetChange {
    /// The new total budget.
    pub budget: Budget,
}

/// Free text in the transcript.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Note {
    /// The text.
    pub text: String,
}

/// A member asks the group for work; the task's id is this event's id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskCreate {
    /// What is wanted.
    pub goal: String,
    /// A member to run it, or none.
    #[serde(with = "opt_key")]
    pub to: Option<Key>,
    /// A role to pick a member by, or none.
    pub role: Option<String>,
    /// Files it works on.
    pub inputs: Vec<Artefact>,
    /// Its budget, reserved from the group's.
    pub budget: Budget,
    /// When it must be done by, Unix milliseconds.
    pub deadline_ms: Option<u64>,
    /// The task that delegated it, if any.
    #[serde(with = "opt_key")]
    pub parent: Option<Key>,
    /// Tasks it waits for: it starts once they have all completed, and
    /// gets their results as inputs. Omitted when empty (so tasks without
    /// dependencies encode as before).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<After>,
    /// The risk its creator declares. Omitted when none is (the group's
    /// default tier applies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<Risk>,
}

/// How much an action risks, which decides how many approvals it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Risk {
    /// Reads and talks.
    Low,
    /// Changes files, reaches peers.
    Medium,
    /// Runs programs.
    High,
    /// Whatever the group says is worse.
    Critical,
}

impl Risk {
    /// Every tier, lowest first.
    pub const ALL: [Risk; 4] = [Risk::Low, Risk::Medium, Risk::High, Risk::Critical];

    /// The tier's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Risk::Low => "low",
            Risk::Medium => "medium",
            Risk::High => "high",
            Risk::Critical => "critical",
        }
    }
}

impl std::str::FromStr for Risk {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Risk::ALL
            .into_iter()
            .find(|r| r.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| format!("{s:?} is not a risk tier: low, medium, high or critical"))
    }
}

/// Approvals needed per tier (0: it runs without one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Needs {
    /// Low-risk actions.
    pub low: u8,
    /// Medium-risk actions.
    pub medium: u8,
    /// High-risk actions.
    pub high: u8,
    /// Critical actions.
    pub critical: u8,
}

impl Needs {
    /// Approvals an action of `tier` needs.
    pub fn of(&self, tier: Risk) -> u8 {
        match tier {
            Risk::Low => self.low,
            Risk::Medium => self.medium,
            Risk::High => self.high,
            Risk::Critical => self.critical,
        }
    }

    /// Sets what `tier` needs.
    pub fn set(&mut self, tier: Risk, n: u8) {
        match tier {
            Risk::Low => self.low = n,
            Risk::Medium => self.medium = n,
            Risk::High => self.high = n,
            Risk::Critical => self.critical = n,
        }
    }
}

/// What happens to an action nobody decided on in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnTimeout {
    /// It does not run; a task counts as canceled (optional dependents go on).
    Skip,
    /// It is denied; a task counts as rejected.
    Deny,
    /// It runs as if approved.
    Proceed,
}

impl OnTimeout {
    /// The action's name.
    pub fn as_str(self) -> &'static str {
        match self {
            OnTimeout::Skip => "skip",
            OnTimeout::Deny => "deny",
            OnTimeout::Proceed => "proceed",
        }
    }
}

/// A tool's tier, set by the group over the one its member gives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolRisk {
    /// The tool's name, as the model calls it.
    pub tool: String,
    /// Its tier in this group.
    pub tier: Risk,
}

/// The group's governance, set whole by an admin (`policy` events): who
/// may submit, how many tasks run at once, and which risks need whose
/// approval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Governance {
    /// Tasks with an attempt under way at once, across the group (0: no limit).
    pub max_running: u16,
    /// The tier of a task that declares none.
    pub default_tier: Risk,
    /// Approvals needed per tier.
    pub needs: Needs,
    /// Who may approve; empty: the admins.
    pub approvers: Vec<NodeKey>,
    /// How long an action may wait for its approvals, seconds.
    pub timeout_secs: u32,
    /// What happens then.
    pub on_timeout: OnTimeout,
    /// Who may submit tasks besides the admins; `None`: every member.
    pub submitters: Option<Vec<NodeKey>>,
    /// Tools whose tier the group sets.
    pub tools: Vec<ToolRisk>,
}

impl Default for Governance {
    fn default() -> Self {
        Self {
            max_running: 0,
            default_tier: Risk::Medium,
            needs: Needs { low: 0, medium: 0, high: 0, critical: 1 },
            approvers: Vec::new(),
            timeout_secs: 3600,
            on_timeout: OnTimeout::Skip,
            submitters: None,
            tools: Vec::new(),
        }
    }
}

/// A member running an attempt asks for approval of one action (a tool
/// call) whose tier needs it; the request's id is this event's id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalRequest {
    /// The task.
    #[serde(with = "serde_bytes")]
    pub task: Key,
    /// The attempt.
    pub attempt: u32,
    /// The action's tier.
    pub tier: Risk,
    /// What it would do (the tool and its arguments, shortened).
    pub action: String,
}

/// An approver's answer on a task or an approval request (`approve`,
/// `deny`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    /// The task, or the approval request.
    #[serde(with = "serde_bytes")]
    pub subject: Key,
    /// Why, in the approver's words.
    pub reason: String,
}

/// Whoever waits for approval, or an admin, records that nobody decided
/// in time; the group's `on_timeout` applies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expire {
    /// The task, or the approval request.
    #[serde(with = "serde_bytes")]
    pub subject: Key,
}

impl TaskCreate {
    /// A task for `goal`, with nothing else set: any member, no inputs, no
    /// budget, deadline, parent or dependencies, the group's default tier.
    pub fn new(goal: impl Into<String>) -> Self {
        Self {
            goal: goal.into(),
            to: None,
            role: None,
            inputs: Vec::new(),
            budget: Budget::default(),
            deadline_ms: None,
            parent: None,
            after: Vec::new(),
            tier: None,
        }
    }
}

/// One task another waits for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct After {
    /// The task.
    #[serde(with = "serde_bytes")]
    pub task: Key,
    /// Whether the waiting task goes on if this one fails or is canceled
    /// (then without its result) instead of failing with it.
    pub optional: bool,
}

/// The task's creator (or an admin) gives an attempt to a member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Assign {
    /// The task.
    #[serde(with = "serde_bytes")]
    pub task: Key,
    /// The attempt, from 1, one more than the last.
    pub attempt: u32,
    /// Who runs it.
    #[serde(with = "serde_bytes")]
    pub member: Key,
}

/// An attempt's assignee claims it, or renews its claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttemptRef {
    /// The task.
    #[serde(with = "serde_bytes")]
    pub task: Key,
    /// The attempt.
    pub attempt: u32,
}

/// How the work is going.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Progress {
    /// The task.
    #[serde(with = "serde_bytes")]
    pub task: Key,
    /// The attempt.
    pub attempt: u32,
    /// What happened.
    pub text: String,
}

/// The assignee needs an answer to go on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputNeeded {
    /// The task.
    #[serde(with = "serde_bytes")]
    pub task: Key,
    /// The attempt.
    pub attempt: u32,
    /// The question.
    pub question: String,
}

/// The task's creator answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reply {
    /// The task.
    #[serde(with = "serde_bytes")]
    pub task: Key,
    /// The answer.
    pub text: String,
}

/// The assignee delivers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Complete {
    /// The task.
    #[serde(with = "serde_bytes")]
    pub task: Key,
    /// The attempt.
    pub attempt: u32,
    /// The answer.
    pub text: String,
    /// Files it made.
    pub artefacts: Vec<Artefact>,
}

/// An attempt ends without a result: the assignee failed or declined, or
/// the creator gave up on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fail {
    /// The task.
    #[serde(with = "serde_bytes")]
    pub task: Key,
    /// The attempt.
    pub attempt: u32,
    /// Why.
    pub reason: String,
    /// Whether another attempt could succeed (false: the task fails now,
    /// e.g. its budget would not cover another try).
    pub retry: bool,
}

/// The task's creator (or an admin) cancels a task, or every open task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cancel {
    /// The task, or none for every open task of the group.
    #[serde(with = "opt_key")]
    pub task: Option<Key>,
    /// Why.
    pub reason: String,
}

/// What an attempt has cost so far (a later report replaces an earlier
/// one for the same attempt).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spend {
    /// The task.
    #[serde(with = "serde_bytes")]
    pub task: Key,
    /// The attempt.
    pub attempt: u32,
    /// The model that ran.
    pub model: String,
    /// Input tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Cost in US dollars, millionths (0 for a local model).
    pub usd_micros: u64,
    /// Time the model ran, milliseconds.
    pub model_ms: u64,
}

impl Spend {
    /// Tokens, input and output.
    pub fn tokens(&self) -> u64 {
        self.input_tokens.saturating_add(self.output_tokens)
    }
}

macro_rules! bodies {
    ($($variant:ident($ty:ty) = $kind:literal, $name:literal;)*) => {
        /// An event's body, by kind.
        #[derive(Debug, Clone, PartialEq, Eq)]
        #[allow(missing_docs)]
        pub enum Body {
            $($variant($ty),)*
        }

        impl Body {
            /// The kind byte and the canonical CBOR bytes.
            pub fn encode(&self) -> (u8, Vec<u8>) {
                match self {
                    $(Body::$variant(b) => ($kind, encode(b)),)*
                }
            }

            /// Decodes a body of `kind`, refusing any non-canonical encoding.
            pub fn decode(kind: u8, bytes: &[u8]) -> Result<Self, EventError> {
                let body = match kind {
                    $($kind => Body::$variant(decode::<$ty>(bytes)?),)*
                    _ => return Err(EventError::Body(format!("unknown kind {kind}"))),
                };
                body.check()?;
                Ok(body)
            }

            /// The kind's name, as PROTOCOL.md names it (and `alp wg log` shows it).
            pub fn name(&self) -> &'static str {
                match self {
                    $(Body::$variant(_) => $name,)*
                }
            }
        }
    };
}

bodies! {
    Create(Create) = 1, "create";
    Invite(MemberRoles) = 2, "invite";
    Join(WithCard) = 3, "join";
    Leave(Note) = 4, "leave";
    Remove(Remove) = 5, "remove";
    Card(WithCard) = 6, "card";
    Roles(MemberRoles) = 7, "roles";
    Budget(BudgetChange) = 8, "budget";
    Note(Note) = 9, "note";
    TaskCreate(TaskCreate) = 10, "task";
    Assign(Assign) = 11, "assign";
    Claim(AttemptRef) = 12, "claim";
    Renew(AttemptRef) = 13, "renew";
    Progress(Progress) = 14, "progress";
    InputNeeded(InputNeeded) = 15, "input-needed";
    Reply(Reply) = 16, "reply";
    Complete(Complete) = 17, "complete";
    Fail(Fail) = 18, "fail";
    Cancel(Cancel) = 19, "cancel";
    Spend(Spend) = 20, "spend";
    Policy(Governance) = 21, "policy";
    ApprovalRequest(ApprovalRequest) = 22, "approval-request";
    Approve(Decision) = 23, "approve";
    Deny(Decision) = 24, "deny";
    Expire(Expire) = 25, "expire";
}

impl Body {
    /// The task an event is about, if any.
    pub fn task(&self) -> Option<Key> {
        match self {
            Body::Assign(b) => Some(b.task),
            Body::Claim(b) | Body::Renew(b) => Some(b.task),
            Body::Progress(b) => Some(b.task),
            Body::InputNeeded(b) => Some(b.task),
            Body::Reply(b) => Some(b.task),
            Body::Complete(b) => Some(b.task),
            Body::Fail(b) => Some(b.task),
            Body::Cancel(b) => b.task,
            Body::Spend(b) => Some(b.task),
            Body::ApprovalRequest(b) => Some(b.task),
            _ => None,
        }
    }

    /// Field limits beyond the body's size.
    pub(crate) fn check(&self) -> Result<(), EventError> {
        let bad = |what: &str| Err(EventError::Body(what.to_owned()));
        let roles_ok =
            |roles: &[String]| roles.len() <= MAX_ROLES && roles.iter().all(|r| !r.is_empty() && r.len() <= MAX_ROLE);
        let artefacts_ok = |a: &[Artefact]| {
            a.len() <= MAX_ARTEFACTS
                && a.iter().all(|f| !f.name.is_empty() && f.name.len() <= 255 && !f.name.contains(['/', '\0']))
                && a.iter().all(|f| f.name != "." && f.name != "..")
        };
        match self {
            Body::Create(c) if c.name.is_empty() || c.name.len() > MAX_NAME => bad("the name must be 1 to 64 bytes"),
            Body::Create(c) if !roles_ok(&c.roles) => bad("at most 16 roles of 1 to 32 bytes"),
            Body::Create(c) if c.policy.max_attempts == 0 || c.policy.lease_secs == 0 => {
                bad("a policy needs at least one attempt and a lease")
            }
            Body::Create(c) if c.policy.max_depth == u8::MAX => bad("delegation depth is at most 254"),
            Body::Invite(i) if !roles_ok(&i.roles) => bad("at most 16 roles of 1 to 32 bytes"),
            Body::Roles(r) if !roles_ok(&r.roles) => bad("at most 16 roles of 1 to 32 bytes"),
            Body::TaskCreate(t) if t.goal.is_empty() => bad("a task needs a goal"),
            Body::TaskCreate(t) if !artefacts_ok(&t.inputs) => bad("at most 64 inputs, each a plain file name"),
            Body::TaskCreate(t) if t.to.is_some() && t.role.is_some() => bad("a task goes to a member or a role"),
            Body::TaskCreate(t) if t.after.len() > MAX_AFTER => bad("a task waits for at most 16 tasks"),
            Body::TaskCreate(t)
                if (1..t.after.len()).any(|i| t.after[..i].iter().any(|a| a.task == t.after[i].task)) =>
            {
                bad("a task names each task it waits for once")
            }
            Body::Complete(c) if !artefacts_ok(&c.artefacts) => bad("at most 64 artefacts, each a plain file name"),
            Body::Assign(a) if a.attempt == 0 => bad("attempts count from 1"),
            Body::Policy(g) if g.approvers.len() > MAX_LISTED || g.tools.len() > MAX_LISTED => {
                bad("at most 64 approvers and 64 tool tiers")
            }
            Body::Policy(g) if g.submitters.as_ref().is_some_and(|s| s.len() > MAX_LISTED) => {
                bad("at most 64 submitters")
            }
            Body::Policy(g) if g.timeout_secs == 0 => bad("an approval waits at least a second"),
            Body::Policy(g) if g.tools.iter().any(|t| t.tool.is_empty() || t.tool.len() > 128) => {
                bad("a tool's name is 1 to 128 bytes")
            }
            Body::ApprovalRequest(r) if r.action.is_empty() || r.action.len() > MAX_ACTION => {
                bad("an action is described in 1 to 1024 bytes")
            }
            Body::Approve(d) | Body::Deny(d) if d.reason.len() > MAX_ACTION => bad("a reason is at most 1024 bytes"),
            _ => Ok(()),
        }
    }
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Plain structs of strings, integers and byte strings always encode.
    serde_cbor::to_vec(value).unwrap_or_default()
}

fn decode<T: Serialize + DeserializeOwned>(bytes: &[u8]) -> Result<T, EventError> {
    let value: T = serde_cbor::from_slice(bytes).map_err(|e| EventError::Body(e.to_string()))?;
    if encode(&value) != bytes {
        return Err(EventError::Body("not in canonical form".into()));
    }
    Ok(value)
}

mod opt_key {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(v: &Option<[u8; 32]>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(k) => s.serialize_bytes(k),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<[u8; 32]>, D::Error> {
        let v: Option<serde_bytes::ByteBuf> = Option::deserialize(d)?;
        v.map(|b| b.into_vec().try_into().map_err(|_| serde::de::Error::custom("expected 32 bytes"))).transpose()
    }
}
