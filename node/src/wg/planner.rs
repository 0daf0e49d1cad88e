//! Planning by a member: when the group has a member with the `planner`
//! role (other than this node), `alp wg run --plan` asks it through a task
//! of the group, so that the planning is itself in the signed log, on the
//! planner's model and the group's budget. Each refused proposal is sent
//! back as a new task with the reasons.

use std::sync::Arc;
use std::time::Duration;

use alp_agent::Message;
use alp_protocol::NodeId;
use alp_workgroup::body::{Budget, TaskCreate};
use alp_workgroup::state::TaskStatus;
use alp_workgroup::{Body, GroupId, State};

use super::WgNode;

/// The role of members that plan.
pub(crate) const ROLE: &str = "planner";
/// Longest wait for one proposal.
const WAIT: Duration = Duration::from_secs(600);
/// Most a planning task may spend, in each unit the group limits.
const MAX_TOKENS: u64 = 16_384;
const MAX_USD_MICROS: u64 = 200_000;

/// The active member with the planner role, other than this node.
pub(crate) fn planner(state: &State, me: &NodeId) -> Option<NodeId> {
    state.members.values().find(|m| m.is_active() && m.node != *me && m.roles.iter().any(|r| r == ROLE)).map(|m| m.node)
}

/// Asks `planner` with the conversation so far, as one task; its result
/// is the proposal.
pub(crate) async fn ask(
    node: &Arc<WgNode>,
    group: GroupId,
    planner: NodeId,
    messages: &[Message],
) -> Result<String, String> {
    let wg = &node.wg;
    let state = wg.state(group).ok_or("the workgroup is gone")?;
    let (tokens, usd) = state.available();
    let budget = Budget {
        tokens: state.budget.tokens.map(|_| tokens.unwrap_or(0).min(MAX_TOKENS)),
        usd_micros: state.budget.usd_micros.map(|_| usd.unwrap_or(0).min(MAX_USD_MICROS)),
    };
    let spec = TaskCreate {
        goal: crate::cmd::wg_plan::as_goal(messages),
        to: Some(*planner.as_bytes()),
        role: None,
        inputs: Vec::new(),
        budget,
        deadline_ms: Some(super::now_ms() + WAIT.as_millis() as u64),
        parent: None,
        after: Vec::new(),
        tier: None,
    };
    let mut changes = wg.subscribe();
    let n = node.clone();
    let id = tokio::task::spawn_blocking(move || n.wg.write_counted(group, Body::TaskCreate(spec), vec![]))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?
        .id();
    let who = node.links.name_of(planner);
    tracing::info!(group = %state.name, task = %id.short(), "asked {who} (the group's planner) for a plan");
    let wait = async {
        loop {
            let state = wg.state(group).ok_or("the workgroup is gone")?;
            let task = state.tasks.get(&id).ok_or("the planning task is gone")?;
            match task.status {
                TaskStatus::Completed => return Ok(task.output.as_ref().map(|o| o.text.clone()).unwrap_or_default()),
                s if s.is_terminal() => {
                    let why = task.reason.clone().unwrap_or_else(|| s.as_str().to_owned());
                    return Err(format!("the planner {who} gave no plan (task {} {}): {why}", id.short(), s.as_str()));
                }
                _ => {}
            }
            super::tools::next_change(&mut changes, group).await?;
        }
    };
    tokio::time::timeout(WAIT, wait)
        .await
        .map_err(|_| format!("the planner {who} did not answer in {}s", WAIT.as_secs()))?
}
