//! Governance: `alp wg policy` (who submits, how much runs at once, which
//! risk tiers need whose approval, and what happens when nobody answers)
//! and `alp wg approve|deny` (an approver's signed decision on a task or
//! a tool call waiting for it). The CLI half sends the request to the
//! running node; the node half (`answer_*`) checks it against the group's
//! state and writes the event.

use std::time::Duration;

use alp_workgroup::body::{Decision, Governance, NodeKey, OnTimeout, Risk, ToolRisk};
use alp_workgroup::state::{Approval, Verdict};
use alp_workgroup::{Body, EventId, State};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ctx::Ctx;
use crate::error::{CliResult, usage};
use crate::say::status;
use crate::wg::api::{Namer, Request};
use crate::wg::{WgError, WgNode};

/// `alp wg policy GROUP [changes]`: the whole of it is shown; an admin's
/// changes are written as one `policy` event.
#[derive(Debug, Clone, Default, clap::Args, Serialize, Deserialize)]
pub(crate) struct PolicyArgs {
    /// Tasks under way at once across the group (0: no limit)
    #[arg(long, value_name = "N")]
    pub(crate) max_running: Option<u16>,
    /// The tier of a task that declares none (low, medium, high, critical)
    #[arg(long, value_name = "TIER")]
    pub(crate) default_tier: Option<String>,
    /// Approvals a tier needs, e.g. `high=1,critical=2` (0: none)
    #[arg(long, value_name = "TIER=K", value_delimiter = ',')]
    pub(crate) approvals: Vec<String>,
    /// Who may approve: members' names, or `admins` (the default)
    #[arg(long, value_name = "NAME,...|admins", value_delimiter = ',')]
    pub(crate) approvers: Vec<String>,
    /// How long an approval may wait (e.g. 10m)
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    #[serde(with = "opt_secs")]
    pub(crate) approval_timeout: Option<Duration>,
    /// What happens then: skip (the default), deny or proceed
    #[arg(long, value_name = "ACTION")]
    pub(crate) on_timeout: Option<String>,
    /// Who may submit tasks besides admins: members' names, `all` (the default) or `admins`
    #[arg(long, value_name = "NAME,...|all|admins", value_delimiter = ',')]
    pub(crate) submitters: Vec<String>,
    /// A tool's tier in this group, e.g. `shell=critical` (`TOOL=default` drops it; repeatable)
    #[arg(long, value_name = "TOOL=TIER")]
    pub(crate) tool_tier: Vec<String>,
}

mod opt_secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(v: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(d) => s.serialize_some(&d.as_secs()),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<u64>::deserialize(d)?.map(Duration::from_secs))
    }
}

impl PolicyArgs {
    fn is_empty(&self) -> bool {
        self.max_running.is_none()
            && self.default_tier.is_none()
            && self.approvals.is_empty()
            && self.approvers.is_empty()
            && self.approval_timeout.is_none()
            && self.on_timeout.is_none()
            && self.submitters.is_empty()
            && self.tool_tier.is_empty()
    }
}

/// `alp wg policy`.
pub(crate) fn policy(ctx: &Ctx, node: &crate::cmd::wg::Control, group: String, change: PolicyArgs) -> CliResult {
    let changing = !change.is_empty();
    let v = node.call(&Request::Policy { group: group.clone(), change })?;
    for w in v["warnings"].as_array().into_iter().flatten() {
        status!("warning: {}", w.as_str().unwrap_or_default());
    }
    if changing {
        status!("policy of {group} updated");
    }
    if ctx.json {
        return ctx.print_json(&v["policy"]);
    }
    ctx.print(&policy_text(&v["policy"]))?;
    Ok(())
}

/// `alp wg approve|deny SUBJECT`.
pub(crate) fn decide(
    ctx: &Ctx,
    node: &crate::cmd::wg::Control,
    subject: String,
    approve: bool,
    reason: String,
) -> CliResult {
    let v = node.call(&Request::Decide { subject, approve, reason })?;
    let verdict = v["verdict"].as_str().unwrap_or_default();
    let what = v["action"].as_str().unwrap_or_default();
    match (approve, verdict) {
        (true, "approved") => status!("approved: {what}; it goes ahead"),
        (true, _) => status!(
            "approval recorded ({} of {} needed): {what}",
            v["approvals"].as_u64().unwrap_or(0),
            v["needed"].as_u64().unwrap_or(0)
        ),
        (false, _) => status!("denied: {what}"),
    }
    if ctx.json {
        return ctx.print_json(&v);
    }
    ctx.print(v["event"].as_str().unwrap_or_default())?;
    Ok(())
}

fn policy_text(p: &Value) -> String {
    let list = |v: &Value| -> String {
        let names: Vec<&str> = v.as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        names.join(", ")
    };
    let needs = &p["approvals"];
    let tiers: Vec<String> =
        Risk::ALL.iter().map(|r| format!("{}={}", r.as_str(), needs[r.as_str()].as_u64().unwrap_or(0))).collect();
    let tools: Vec<String> = p["tool_tiers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| format!("{}={}", t["tool"].as_str().unwrap_or(""), t["tier"].as_str().unwrap_or("")))
        .collect();
    let max = p["max_running"].as_u64().unwrap_or(0);
    [
        format!("max running:   {}", if max == 0 { "no limit".to_owned() } else { max.to_string() }),
        format!("default tier:  {}", p["default_tier"].as_str().unwrap_or("")),
        format!("approvals:     {}", tiers.join(" ")),
        format!("approvers:     {}", list(&p["approvers"])),
        format!(
            "timeout:       {} then {}",
            humantime::format_duration(Duration::from_secs(p["timeout_secs"].as_u64().unwrap_or(0))),
            p["on_timeout"].as_str().unwrap_or("")
        ),
        format!("submitters:    {}", list(&p["submitters"])),
        format!(
            "tool tiers:    {}",
            if tools.is_empty() { "as each member gives them".to_owned() } else { tools.join(" ") }
        ),
    ]
    .join("\n")
}

/// The group's governance, as shown (`--json` and the status view).
pub(crate) fn governance_view(s: &State, namer: &Namer) -> Value {
    let g = &s.governance;
    let name = |k: &NodeKey| alp_protocol::NodeId::from_bytes(k.0).map_or_else(|_| "?".to_owned(), |n| namer.name(&n));
    let approvers: Vec<String> =
        if g.approvers.is_empty() { vec!["admins".to_owned()] } else { g.approvers.iter().map(name).collect() };
    let submitters: Vec<String> = match &g.submitters {
        None => vec!["all members".to_owned()],
        Some(list) => std::iter::once("admins".to_owned()).chain(list.iter().map(name)).collect(),
    };
    serde_json::json!({
        "max_running": g.max_running,
        "default_tier": g.default_tier.as_str(),
        "approvals": {
            "low": g.needs.low, "medium": g.needs.medium, "high": g.needs.high, "critical": g.needs.critical,
        },
        "approvers": approvers,
        "timeout_secs": g.timeout_secs,
        "on_timeout": g.on_timeout.as_str(),
        "submitters": submitters,
        "tool_tiers": g.tools.iter().map(|t| serde_json::json!({"tool": t.tool, "tier": t.tier.as_str()})).collect::<Vec<_>>(),
    })
}

/// An approval, as shown.
pub(crate) fn approval_view(s: &State, a: &Approval, namer: &Namer) -> Value {
    let verdict = match a.verdict {
        Verdict::Pending => "pending".to_owned(),
        Verdict::Approved => "approved".to_owned(),
        Verdict::Denied => "denied".to_owned(),
        Verdict::Expired(on) => format!("expired ({})", on.as_str()),
    };
    let expires_ms = a.since_ms.map(|t| t.saturating_add(u64::from(s.governance.timeout_secs) * 1000));
    serde_json::json!({
        "id": a.subject.to_string(),
        "task": a.task.to_string(),
        "kind": if a.attempt.is_some() { "tool-call" } else { "task" },
        "attempt": a.attempt,
        "requester": namer.name(&a.requester),
        "tier": a.tier.as_str(),
        "action": a.action,
        "needed": a.needed,
        "approved_by": a.approvals.iter().map(|v| namer.name(&v.by)).collect::<Vec<_>>(),
        "approval_events": a.approvals.iter().map(|v| v.event.to_string()).collect::<Vec<_>>(),
        "denied_by": a.denial.as_ref().map(|v| namer.name(&v.by)),
        "denial_reason": a.denial.as_ref().map(|v| v.reason.clone()),
        "verdict": verdict,
        "since_ms": a.since_ms,
        "expires_ms": expires_ms,
    })
}

/// Node side of `alp wg policy`.
pub(crate) fn answer_policy(node: &WgNode, group: &str, change: PolicyArgs) -> Result<Value, WgError> {
    let wg = &node.wg;
    let group = wg.resolve(group)?;
    // Read, change and write as one: two edits from this node at once
    // must not lose one another's changes.
    let _edit = node.edits.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let state = wg.state(group).ok_or_else(|| WgError::Unknown(group.short()))?;
    if !change.is_empty() {
        if !state.is_admin(&wg.me()) {
            return Err(WgError::Invalid(format!("only an admin of {} sets its policy", state.name)));
        }
        let next = apply(node, &state, state.governance.clone(), change)?;
        wg.write_counted(group, Body::Policy(next), vec![])?;
    }
    let state = wg.state(group).ok_or_else(|| WgError::Unknown(group.short()))?;
    let namer = node.namer();
    Ok(serde_json::json!({"policy": governance_view(&state, &namer), "warnings": warnings(&state)}))
}

fn apply(node: &WgNode, state: &State, mut g: Governance, c: PolicyArgs) -> Result<Governance, WgError> {
    let bad = |m: String| WgError::Invalid(m);
    let key = |name: &str| -> Result<NodeKey, WgError> {
        let n = node.member_named(state, name.trim())?;
        if state.active(&n).is_none() {
            return Err(bad(format!("{name} is not an active member of {}", state.name)));
        }
        Ok(NodeKey(*n.as_bytes()))
    };
    if let Some(n) = c.max_running {
        g.max_running = n;
    }
    if let Some(t) = &c.default_tier {
        g.default_tier = t.parse().map_err(bad)?;
    }
    for pair in &c.approvals {
        let (tier, k) = pair.split_once('=').ok_or_else(|| bad(format!("--approvals takes TIER=K, not {pair:?}")))?;
        let tier: Risk = tier.parse().map_err(bad)?;
        let k: u8 = k.trim().parse().map_err(|_| bad(format!("{k:?} is not a number of approvals (0 to 255)")))?;
        g.needs.set(tier, k);
    }
    match c.approvers.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        [] => {}
        ["admins"] => g.approvers.clear(),
        names => g.approvers = dedup(names.iter().map(|n| key(n)).collect::<Result<_, _>>()?),
    }
    if let Some(d) = c.approval_timeout {
        g.timeout_secs = d.as_secs().clamp(1, u64::from(u32::MAX)) as u32;
    }
    if let Some(a) = &c.on_timeout {
        g.on_timeout = match a.trim().to_ascii_lowercase().as_str() {
            "skip" => OnTimeout::Skip,
            "deny" => OnTimeout::Deny,
            "proceed" => OnTimeout::Proceed,
            other => return Err(bad(format!("--on-timeout is skip, deny or proceed, not {other:?}"))),
        };
    }
    match c.submitters.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        [] => {}
        ["all"] => g.submitters = None,
        ["admins"] => g.submitters = Some(Vec::new()),
        names => g.submitters = Some(dedup(names.iter().map(|n| key(n)).collect::<Result<_, _>>()?)),
    }
    for pair in &c.tool_tier {
        let (tool, tier) =
            pair.split_once('=').ok_or_else(|| bad(format!("--tool-tier takes TOOL=TIER, not {pair:?}")))?;
        let tool = tool.trim().to_owned();
        g.tools.retain(|t| t.tool != tool);
        if tier.trim() != "default" {
            g.tools.push(ToolRisk { tool, tier: tier.parse().map_err(bad)? });
        }
    }
    Ok(g)
}

fn dedup(mut keys: Vec<NodeKey>) -> Vec<NodeKey> {
    keys.sort();
    keys.dedup();
    keys
}

/// What in the policy cannot work as set.
fn warnings(s: &State) -> Vec<String> {
    let eligible = s.members.values().filter(|m| s.is_approver(&m.node)).count();
    Risk::ALL
        .iter()
        .filter(|r| usize::from(s.governance.needs.of(**r)) > eligible)
        .map(|r| {
            format!(
                "{} actions need {} approvals but {} can approve: they will wait until they time out",
                r.as_str(),
                s.governance.needs.of(*r),
                eligible
            )
        })
        .collect()
}

/// Node side of `alp wg approve|deny`: `subject` is a task or an approval
/// request (its id or a prefix of 6 digits or more). A tool call is named
/// by its request's id only, shown with the call in `alp wg status`, so
/// that nobody approves a call they have not seen.
pub(crate) fn answer_decide(node: &WgNode, subject: &str, approve: bool, reason: String) -> Result<Value, WgError> {
    let wg = &node.wg;
    let text = subject.trim();
    if text.len() < 6 {
        return Err(WgError::Invalid("give at least 6 digits of the task's or request's id".into()));
    }
    if reason.len() > alp_workgroup::body::MAX_ACTION {
        return Err(WgError::Invalid(format!(
            "the reason is {} bytes; at most {}",
            reason.len(),
            alp_workgroup::body::MAX_ACTION
        )));
    }
    let mut found: Vec<(alp_workgroup::GroupId, EventId)> = Vec::new();
    let mut calls: Vec<String> = Vec::new();
    for state in wg.states() {
        let matches = |id: &EventId| id.to_string().starts_with(text);
        found.extend(state.pending_approvals().filter(|a| matches(&a.subject)).map(|a| (state.group, a.subject)));
        calls.extend(
            state
                .pending_approvals()
                .filter(|a| a.attempt.is_some() && matches(&a.task))
                .map(|a| format!("{} ({})", a.subject.short(), a.action.chars().take(80).collect::<String>())),
        );
    }
    let (group, id) = match found.as_slice() {
        [one] => *one,
        [] if !calls.is_empty() => {
            return Err(WgError::Invalid(format!(
                "task {text} has tool calls waiting: name the call's request, having read it: {}",
                calls.join("; ")
            )));
        }
        [] => {
            return Err(WgError::Invalid(format!(
                "nothing waits for approval as {text} (see the approvals in `alp wg status GROUP`)"
            )));
        }
        _ => return Err(WgError::Invalid(format!("more than one approval matches {text}: give more of its id"))),
    };
    let d = Decision { subject: id.0, reason };
    let body = if approve { Body::Approve(d) } else { Body::Deny(d) };
    let event = wg.write_counted(group, body, vec![id])?;
    let state = wg.state(group).ok_or_else(|| WgError::Unknown(group.short()))?;
    let a = state.approvals.get(&id).ok_or_else(|| WgError::Invalid("the approval is gone (refolded)".into()))?;
    let mut v = approval_view(&state, a, &node.namer());
    v["event"] = Value::String(event.id().to_string());
    v["approvals"] = Value::from(a.approvals.len());
    v["verdict"] = Value::String(if a.verdict == Verdict::Approved { "approved" } else { "pending" }.to_owned());
    if a.verdict == Verdict::Denied {
        v["verdict"] = Value::String("denied".to_owned());
    }
    Ok(v)
}

/// The parse of a declared tier (`--tier`, a graph's `tier`).
pub(crate) fn tier(text: Option<&str>) -> Result<Option<Risk>, WgError> {
    text.map(|t| t.parse().map_err(WgError::Invalid)).transpose()
}

/// For `alp wg task --tier`: checked before anything is sent.
pub(crate) fn check_tier(text: Option<&str>) -> CliResult<()> {
    tier(text).map(drop).map_err(|e| usage(e.to_string()))
}
