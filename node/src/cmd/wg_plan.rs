//! `alp wg run NAME --plan "GOAL"`: a model proposes the graph (the
//! model of a member with the `planner` role, asked through a task of the
//! group, else this node's own), alp checks
//! it (every rule of a graph file, plus: each role or member exists in the
//! group, the budgets fit in what the group has left, and the graph stays
//! within the planner's limits of size, width and depth), shows it, and
//! runs it once confirmed. A proposal that fails the checks is sent back
//! with what was wrong, a bounded number of times.

use std::io::IsTerminal;

use alp_agent::run;
use alp_agent::{Caller, Local, Message, Role, Setup};
use serde_json::Value;

use super::wg_graph::{self, Graph, Node};
use crate::error::{CliError, CliResult, DENIED, usage};

/// Proposals asked for before giving up.
const ATTEMPTS: usize = 3;

/// How large a plan may be (`workgroup.plan_max_*`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Most tasks.
    pub(crate) tasks: usize,
    /// Most tasks one task may be waited on by, or wait for.
    pub(crate) width: usize,
    /// Longest chain of tasks.
    pub(crate) depth: usize,
}

impl Limits {
    /// From the profile's config (tasks capped at a graph file's limit).
    pub(crate) fn of(w: &alp_profiles::config::WorkgroupConfig) -> Self {
        Self {
            tasks: usize::from(w.plan_max_tasks).clamp(1, wg_graph::MAX_TASKS),
            width: usize::from(w.plan_max_width).max(1),
            depth: usize::from(w.plan_max_depth).max(1),
        }
    }
}

/// What the group offers a plan: its members' names and roles, what its
/// budget has left (`None`: no limit), and the plan's limits.
pub(crate) struct Group {
    pub(crate) members: Vec<String>,
    pub(crate) roles: Vec<String>,
    pub(crate) tokens_left: Option<u64>,
    pub(crate) limits: Limits,
}

impl Group {
    /// From `alp wg status NAME --json`, with `limits`.
    pub(crate) fn from_view(view: &Value, limits: Limits) -> Self {
        let members: Vec<&Value> =
            view["members"].as_array().into_iter().flatten().filter(|m| m["status"] == "active").collect();
        let mut roles: Vec<String> = members
            .iter()
            .flat_map(|m| m["roles"].as_array().into_iter().flatten().filter_map(|r| r.as_str().map(str::to_owned)))
            .collect();
        roles.sort();
        roles.dedup();
        Group {
            members: members.iter().filter_map(|m| m["name"].as_str().map(str::to_owned)).collect(),
            roles,
            tokens_left: view["available_tokens"].as_u64(),
            limits,
        }
    }
}

/// Asks the node's model for a graph until one passes the checks (run
/// by the node, with its model and ledger; `setup` has no tools).
pub(crate) async fn propose(
    setup: &Setup,
    provider: &dyn alp_agent::Provider,
    group: &Group,
    goal: &str,
) -> Result<(Graph, Vec<String>), String> {
    let local = Local { allow: Vec::new(), yes: false, max_cost: None, ask: None, truncate: false };
    propose_with(group, goal, async |messages: &mut Vec<Message>| {
        let mut job = setup.job(Caller::Local(&local), provider).map_err(|e| e.to_string())?;
        let outcome = run::run(provider, &mut job, messages, &mut |_| {}).await;
        setup.record(Caller::Local(&local), provider, &job);
        Ok(outcome.map_err(|e| e.to_string())?.answer)
    })
    .await
}

/// The conversation with a planner that is not this node's model, as one
/// task's goal: the instructions, the goal, and every refused proposal
/// with its reasons.
pub(crate) fn as_goal(messages: &[Message]) -> String {
    let mut out = String::new();
    for m in messages {
        let who = match m.role {
            Role::System => "Instructions",
            Role::User => "Request",
            _ => "Your earlier plan",
        };
        out.push_str(&format!("{who}:\n{}\n\n", m.content));
    }
    out.trim_end().to_owned()
}

/// Asks `planner` (given the conversation so far, it appends its answer's
/// text or says why it could not) for a graph until one passes the checks.
pub(crate) async fn propose_with(
    group: &Group,
    goal: &str,
    mut planner: impl AsyncFnMut(&mut Vec<Message>) -> Result<String, String>,
) -> Result<(Graph, Vec<String>), String> {
    let mut messages = vec![Message::new(Role::System, instructions(group)), Message::new(Role::User, goal.to_owned())];
    let mut refusals = Vec::new();
    for attempt in 1..=ATTEMPTS {
        let answer = planner(&mut messages).await?;
        if messages.last().is_none_or(|m| m.role != Role::Assistant) {
            messages.push(Message::new(Role::Assistant, answer.clone()));
        }
        match parse(&answer, goal).and_then(|g| check(&g, group).map(|()| g)) {
            Ok(graph) => return Ok((graph, refusals)),
            Err(why) => {
                refusals.push(format!("plan {attempt} of {ATTEMPTS} refused: {why}"));
                messages.push(Message::new(
                    Role::User,
                    format!("That plan cannot run: {why}. Send the corrected plan, as JSON only."),
                ));
            }
        }
    }
    Err(format!(
        "the model proposed no valid plan in {ATTEMPTS} tries ({}); write a graph file (--graph) instead",
        refusals.join("; ")
    ))
}

fn instructions(group: &Group) -> String {
    let Limits { tasks: max_tasks, width: max_width, depth: max_depth } = group.limits;
    let budget = group.tokens_left.map_or("no token limit".to_owned(), |t| format!("{t} tokens left in all"));
    format!(
        "You plan work for a group of agents. Split the goal into tasks and answer with JSON only, no prose:\n\
         {{\"tasks\": [{{\"id\": \"short-name\", \"goal\": \"what this task does\", \"role\": \"ROLE\", \"after\": [\"ids it needs first\"], \"budget_tokens\": N}}]}}\n\
         Use \"to\": \"MEMBER\" instead of \"role\" to name a member. Roles: {}. Members: {}. Budget: {budget}.\n\
         At most {max_tasks} tasks, at most {max_width} waiting for or on any one task, chains at most {max_depth} long, no cycles.",
        if group.roles.is_empty() { "none".to_owned() } else { group.roles.join(", ") },
        group.members.join(", "),
    )
}

/// The plan in a model's answer: the first JSON object in it.
fn parse(answer: &str, goal: &str) -> Result<Graph, String> {
    let start = answer.find('{').ok_or("the answer holds no JSON object")?;
    let end = answer.rfind('}').ok_or("the answer holds no JSON object")?;
    #[derive(serde::Deserialize)]
    struct Plan {
        tasks: Vec<Node>,
    }
    let mut plan: Plan = serde_json::from_str(answer.get(start..=end).unwrap_or_default())
        .map_err(|e| format!("the JSON does not describe tasks ({e})"))?;
    // A model does not set risk: its tasks take the group's default tier.
    plan.tasks.iter_mut().for_each(|t| t.tier = None);
    wg_graph::checked(goal.to_owned(), plan.tasks).map_err(|e| e.error.to_string())
}

/// The checks a graph file does not need: the group's roles and members,
/// its budget, and the planner's limits.
fn check(g: &Graph, group: &Group) -> Result<(), String> {
    let Limits { tasks: max_tasks, width: max_width, depth: max_depth } = group.limits;
    if g.tasks.len() > max_tasks {
        return Err(format!("{} tasks; at most {max_tasks} (workgroup.plan_max_tasks)", g.tasks.len()));
    }
    let mut problems = Vec::new();
    for t in &g.tasks {
        match (&t.role, &t.to) {
            (Some(r), _) if !group.roles.contains(r) => {
                problems.push(format!("task {}: no member has the role {r}", t.id))
            }
            (_, Some(m)) if !group.members.contains(m) => problems.push(format!("task {}: no member {m}", t.id)),
            (None, None) => problems.push(format!("task {}: give it a role or a member", t.id)),
            _ => {}
        }
        let waited_on = g.tasks.iter().filter(|o| o.after.contains(&t.id) || o.optional_after.contains(&t.id)).count();
        if t.after.len() + t.optional_after.len() > max_width || waited_on > max_width {
            problems.push(format!("task {}: more than {max_width} tasks wait for it or it waits for", t.id));
        }
    }
    // Depth: tasks come in dependency order, so one pass suffices.
    let mut depth: Vec<(String, usize)> = Vec::new();
    for t in &g.tasks {
        let d = 1 + t
            .after
            .iter()
            .chain(&t.optional_after)
            .filter_map(|a| depth.iter().find(|(i, _)| i == a))
            .map(|(_, d)| *d)
            .max()
            .unwrap_or(0);
        if d > max_depth {
            problems.push(format!("a chain of {d} tasks; at most {max_depth}"));
            break;
        }
        depth.push((t.id.clone(), d));
    }
    if let Some(left) = group.tokens_left {
        let asked: u64 = g.tasks.iter().fold(0u64, |sum, t| sum.saturating_add(t.budget_tokens.unwrap_or(0)));
        if g.tasks.iter().any(|t| t.budget_tokens.is_none()) {
            problems.push("the group has a token budget: give every task budget_tokens".into());
        } else if asked > left {
            problems.push(format!("the tasks ask {asked} tokens, the group has {left} left"));
        }
    }
    if problems.is_empty() { Ok(()) } else { Err(problems.join("; ")) }
}

/// Shows the plan and, on a terminal, asks to run it; `yes` runs it
/// without asking. Elsewhere without `yes`, refuses (exit 4).
pub(crate) fn confirm(g: &Graph, yes: bool) -> CliResult {
    // A model wrote all of it: one line each, control characters escaped.
    let one = |s: &str| -> String {
        s.chars().map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() }).collect()
    };
    let mut text = format!("plan for: {}\n", one(&g.goal));
    for t in &g.tasks {
        let who = match (&t.role, &t.to) {
            (Some(r), _) => format!("role {}", one(r)),
            (None, to) => format!("member {}", one(to.as_deref().unwrap_or("?"))),
        };
        let after = if t.after.is_empty() { String::new() } else { format!(", after {}", one(&t.after.join(", "))) };
        let optional = if t.optional_after.is_empty() {
            String::new()
        } else {
            format!(", optionally after {}", one(&t.optional_after.join(", ")))
        };
        let budget = t.budget_tokens.map_or(String::new(), |b| format!(", {b} tokens"));
        let goal = one(t.goal.as_deref().unwrap_or(&g.goal));
        text.push_str(&format!("  {} ({who}{after}{optional}{budget}): {goal}\n", one(&t.id)));
    }
    eprint!("{text}");
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(CliError { code: DENIED, error: anyhow::anyhow!("run it with --yes (no terminal to ask on)") });
    }
    eprint!("run this plan? [y/N] ");
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    if matches!(line.trim(), "y" | "Y" | "yes") { Ok(()) } else { Err(usage("not run")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group() -> Group {
        Group {
            members: vec!["me".into(), "bob".into()],
            roles: vec!["research".into(), "writer".into()],
            tokens_left: Some(1000),
            limits: Limits { tasks: 16, width: 8, depth: 8 },
        }
    }

    #[test]
    fn a_proposal_is_checked_against_the_group_and_the_limits() {
        let ok = r#"Here: {"tasks": [{"id": "a", "goal": "find", "role": "research", "budget_tokens": 400},
            {"id": "b", "goal": "write", "to": "bob", "after": ["a"], "budget_tokens": 500}]}"#;
        let g = parse(ok, "owls").unwrap();
        assert!(check(&g, &group()).is_ok());
        let over = ok.replace("500", "700");
        assert!(check(&parse(&over, "owls").unwrap(), &group()).unwrap_err().contains("1100 tokens"));
        let stranger = ok.replace("\"bob\"", "\"carol\"");
        assert!(check(&parse(&stranger, "owls").unwrap(), &group()).unwrap_err().contains("no member carol"));
        let cycle = r#"{"tasks": [{"id": "a", "role": "research", "after": ["b"]}, {"id": "b", "role": "writer", "after": ["a"]}]}"#;
        assert!(parse(cycle, "x").unwrap_err().contains("cycle"));
        assert!(parse("no plan, sorry", "x").is_err());
        // The limits are the profile's.
        let small = Group { limits: Limits { tasks: 1, width: 8, depth: 8 }, ..group() };
        assert!(check(&g, &small).unwrap_err().contains("workgroup.plan_max_tasks"));
        let shallow = Group { limits: Limits { tasks: 16, width: 8, depth: 1 }, ..group() };
        assert!(check(&g, &shallow).unwrap_err().contains("a chain of 2 tasks; at most 1"));
    }
}
