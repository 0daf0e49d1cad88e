//! The gate a task's tool calls pass on this node: a call whose risk tier
//! (the group's tier for the tool, else its own: read-only is low, side
//! effects medium, running programs high) is above the task's and needs
//! approval under the group's policy is asked about in the log
//! (`approval-request`, showing the call whole), and held until the
//! group's approvers decide, or its time runs out and the group's
//! `on_timeout` applies. Meanwhile the attempt does not take up this
//! node's capacity.

use std::sync::Arc;

use alp_agent::ToolCall;
use alp_agent::run::Gate;
use alp_agent::tools::Tier;
use alp_workgroup::body::{ApprovalRequest, MAX_ACTION, OnTimeout, Risk};
use alp_workgroup::state::Verdict;
use alp_workgroup::{Body, State};

use super::tools::{Waiting, next_change};
use super::worker::{RunCtx, write};

/// The gate for a run of `ctx`'s attempt.
pub(crate) fn gate(ctx: Arc<RunCtx>) -> Gate {
    Arc::new(move |call: &ToolCall, tier: Tier| {
        let ctx = ctx.clone();
        let action = describe(call);
        let tool = call.name.clone();
        Box::pin(async move { decide(&ctx, &tool, action, tier).await })
    })
}

/// A tool's own tier, as a risk.
pub(crate) fn risk_of(tier: Tier) -> Risk {
    match tier {
        Tier::ReadOnly => Risk::Low,
        Tier::SideEffect => Risk::Medium,
        Tier::Privileged => Risk::High,
    }
}

/// The call, as approvers read it: the tool and its arguments, whole. One
/// too long to show whole is not asked about: an approver must never
/// approve more than it read.
fn describe(call: &ToolCall) -> Result<String, String> {
    let text = format!("{} {}", call.name, call.arguments);
    if text.len() > MAX_ACTION {
        return Err(format!(
            "the call is {} bytes, too long to show an approver whole (at most {MAX_ACTION}): make it shorter",
            text.len()
        ));
    }
    Ok(text)
}

async fn decide(c: &RunCtx, tool: &str, action: Result<String, String>, tier: Tier) -> Result<(), String> {
    let state = c.node.wg.state(c.group).ok_or("the workgroup is gone")?;
    let task = state.tasks.get(&c.task).ok_or("the task is gone")?;
    let risk = state.tool_tier(tool, risk_of(tier));
    if state.needs_for(task, risk) == 0 {
        return Ok(());
    }
    ask(c, &state, tool, risk, action?).await
}

/// Asks the group about the call and waits for its verdict.
async fn ask(c: &RunCtx, state: &State, tool: &str, risk: Risk, action: String) -> Result<(), String> {
    let wg = &c.node.wg;
    let mut changes = wg.subscribe();
    let body = Body::ApprovalRequest(ApprovalRequest { task: c.task.0, attempt: c.attempt, tier: risk, action });
    let request = write(&c.node, c.group, body, vec![c.task]).await.map_err(|e| e.to_string())?.id();
    if let Some(state) = wg.state(c.group)
        && let Some(r) = state.refused.iter().find(|r| r.id == request)
    {
        return Err(format!("the group would not take the approval request: {}", r.reason));
    }
    tracing::info!(
        group = %state.name,
        task = %c.task.short(),
        request = %request.short(),
        "{tool} is a {} action: waiting for approval (`alp wg approve {}`)",
        risk.as_str(),
        request.short()
    );
    let _waiting = Waiting::new(c);
    loop {
        let state = wg.state(c.group).ok_or("the workgroup is gone")?;
        let a = state.approvals.get(&request).ok_or("the group refused the approval request")?;
        match a.verdict {
            Verdict::Pending => {}
            Verdict::Approved | Verdict::Expired(OnTimeout::Proceed) => return Ok(()),
            Verdict::Denied => {
                let (by, why) = a.denial.as_ref().map(|d| (d.by.short(), d.reason.clone())).unwrap_or_default();
                return Err(format!("the workgroup's approver {by} denied it: {why}"));
            }
            Verdict::Expired(_) => {
                return Err(format!("nobody approved it within {}s", state.governance.timeout_secs));
            }
        }
        if state.tasks.get(&c.task).and_then(|t| t.current()).is_none_or(|a| a.n != c.attempt) {
            return Err("the task ended while waiting for approval".into());
        }
        next_change(&mut changes, c.group).await?;
    }
}
