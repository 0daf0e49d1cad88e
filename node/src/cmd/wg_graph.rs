//! `alp wg run`: a whole piece of work as a graph of tasks, from a
//! pipeline (`--pipeline a,b`), a fan-out (`--fanout a,b --then c`) or a
//! graph file (`--graph plan.toml`). The graph is checked here before
//! anything is submitted (names, references, no cycle, size), then its
//! tasks go to the group in dependency order, each naming the tasks it
//! waits for; the group's log does the rest (a task starts when those
//! have completed, and gets their results).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{CliResult, usage};

/// Most tasks in one graph.
pub(crate) const MAX_TASKS: usize = 256;

/// One task of a graph, as a graph file writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Node {
    /// Its name within the graph.
    pub(crate) id: String,
    /// What it is to achieve (default: the run's goal).
    #[serde(default)]
    pub(crate) goal: Option<String>,
    /// A role to pick a member by.
    #[serde(default)]
    pub(crate) role: Option<String>,
    /// A member to run it.
    #[serde(default)]
    pub(crate) to: Option<String>,
    /// Tasks of the graph it waits for.
    #[serde(default)]
    pub(crate) after: Vec<String>,
    /// Tasks it uses if they succeed, and goes on without if not.
    #[serde(default)]
    pub(crate) optional_after: Vec<String>,
    /// Its budget in tokens.
    #[serde(default)]
    pub(crate) budget_tokens: Option<u64>,
    /// Its budget in US dollars.
    #[serde(default)]
    pub(crate) budget_usd: Option<f64>,
    /// Its risk tier (low, medium, high, critical).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) tier: Option<String>,
}

/// A graph file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    goal: Option<String>,
    #[serde(rename = "task", default)]
    tasks: Vec<Node>,
}

/// A checked graph: tasks in an order where each comes after those it
/// waits for.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Graph {
    pub(crate) goal: String,
    pub(crate) tasks: Vec<Node>,
}

/// A step of a shorthand: a member's name or a role; which one is decided
/// by the group (`roles` are the roles its members have).
fn step(id: String, name: &str, roles: &[String], after: Vec<String>) -> Node {
    let is_role = roles.iter().any(|r| r == name);
    Node {
        id,
        goal: None,
        role: is_role.then(|| name.to_owned()),
        to: (!is_role).then(|| name.to_owned()),
        after,
        optional_after: Vec::new(),
        budget_tokens: None,
        budget_usd: None,
        tier: None,
    }
}

/// `--pipeline a,b,c`: each step waits for the one before.
pub(crate) fn pipeline(goal: &str, steps: &[String], roles: &[String]) -> CliResult<Graph> {
    let tasks = steps
        .iter()
        .enumerate()
        .map(|(i, s)| {
            step(
                format!("{}-{s}", i + 1),
                s,
                roles,
                if i == 0 { vec![] } else { vec![format!("{i}-{}", steps[i - 1])] },
            )
        })
        .collect();
    check(goal.to_owned(), tasks)
}

/// `--fanout a,b --then c`: `a` and `b` at once, `c` once both are done.
pub(crate) fn fanout(goal: &str, parallel: &[String], then: Option<&str>, roles: &[String]) -> CliResult<Graph> {
    let mut tasks: Vec<Node> =
        parallel.iter().enumerate().map(|(i, s)| step(format!("{}-{s}", i + 1), s, roles, vec![])).collect();
    if let Some(t) = then {
        let after = tasks.iter().map(|n| n.id.clone()).collect();
        tasks.push(step(format!("then-{t}"), t, roles, after));
    }
    check(goal.to_owned(), tasks)
}

/// A graph file (TOML: an optional `goal`, and `[[task]]` tables).
pub(crate) fn parse(text: &str, goal: Option<&str>) -> CliResult<Graph> {
    let file: File = toml::from_str(text).map_err(|e| usage(format!("the graph file is not valid: {e}")))?;
    let goal = goal.map(str::to_owned).or(file.goal).unwrap_or_default();
    check(goal, file.tasks)
}

/// [`check`], for a graph from elsewhere (a planner's proposal).
pub(crate) fn checked(goal: String, tasks: Vec<Node>) -> CliResult<Graph> {
    check(goal, tasks)
}

/// Checks a graph and orders it: unique ids, references to tasks of the
/// graph, a member or a role each (not both), a goal each, no cycle.
fn check(goal: String, tasks: Vec<Node>) -> CliResult<Graph> {
    if tasks.is_empty() {
        return Err(usage("the graph has no task"));
    }
    if tasks.len() > MAX_TASKS {
        return Err(usage(format!("the graph has {} tasks; at most {MAX_TASKS}", tasks.len())));
    }
    let mut by_id: BTreeMap<&str, &Node> = BTreeMap::new();
    for t in &tasks {
        if t.id.is_empty() || by_id.insert(&t.id, t).is_some() {
            return Err(usage(format!("task id {:?} is empty or used twice", t.id)));
        }
        if t.role.is_some() && t.to.is_some() {
            return Err(usage(format!("task {} names both a member and a role: one of them", t.id)));
        }
        if t.goal.as_deref().unwrap_or(&goal).trim().is_empty() {
            return Err(usage(format!("task {} has no goal (give it one, or the run one)", t.id)));
        }
    }
    for t in &tasks {
        if t.after.len() + t.optional_after.len() > alp_workgroup::body::MAX_AFTER {
            return Err(usage(format!("task {} waits for more than {} tasks", t.id, alp_workgroup::body::MAX_AFTER)));
        }
        if t.budget_usd.is_some_and(|u| !u.is_finite() || u < 0.0) {
            return Err(usage(format!("task {}: budget_usd must be a number of dollars, 0 or more", t.id)));
        }
        for d in t.after.iter().chain(&t.optional_after) {
            if !by_id.contains_key(d.as_str()) {
                return Err(usage(format!("task {} waits for {d:?}, which is not in the graph", t.id)));
            }
            if d == &t.id {
                return Err(usage(format!("task {} waits for itself", t.id)));
            }
        }
    }
    // Kahn's algorithm: what is left when nothing more is ready is a cycle.
    let mut ordered: Vec<Node> = Vec::new();
    let mut left: Vec<Node> = tasks;
    while !left.is_empty() {
        let ready: Vec<usize> = (0..left.len())
            .filter(|&i| {
                left[i].after.iter().chain(&left[i].optional_after).all(|d| ordered.iter().any(|o| &o.id == d))
            })
            .collect();
        if ready.is_empty() {
            let names: Vec<&str> = left.iter().map(|n| n.id.as_str()).collect();
            return Err(usage(format!("the graph has a cycle among {}", names.join(", "))));
        }
        // In the order given, among those ready together.
        let mut batch: Vec<Node> = ready.into_iter().rev().map(|i| left.remove(i)).collect();
        batch.reverse();
        ordered.extend(batch);
    }
    Ok(Graph { goal, tasks: ordered })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shorthands_make_the_graphs_they_name() {
        let roles = vec!["research".to_owned(), "writer".to_owned()];
        let g = pipeline("owls", &["research".into(), "writer".into()], &roles).unwrap();
        assert_eq!(g.tasks[1].after, ["1-research"]);
        assert_eq!((g.tasks[1].role.as_deref(), g.tasks[1].to.as_deref()), (Some("writer"), None));
        let g = fanout("owls", &["research".into(), "bob".into()], Some("writer"), &roles).unwrap();
        assert_eq!(g.tasks.len(), 3);
        assert_eq!(g.tasks[1].to.as_deref(), Some("bob"), "not a role: a member");
        assert_eq!(g.tasks[2].after, ["1-research", "2-bob"]);
    }

    #[test]
    fn graph_files_are_checked_and_ordered() {
        let text = r#"
            goal = "a report"
            [[task]]
            id = "write"
            role = "writer"
            after = ["a", "b"]
            [[task]]
            id = "a"
            role = "research"
            goal = "find sources"
            [[task]]
            id = "b"
            to = "bob"
            optional_after = ["a"]
        "#;
        let g = parse(text, None).unwrap();
        let order: Vec<&str> = g.tasks.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(order, ["a", "b", "write"]);
        let bad = |t: &str, why: &str| {
            let e = parse(t, Some("x")).unwrap_err().error.to_string();
            assert!(e.contains(why), "{e}");
        };
        bad("[[task]]\nid = \"a\"\nafter = [\"b\"]\n[[task]]\nid = \"b\"\nafter = [\"a\"]", "cycle");
        bad("[[task]]\nid = \"a\"\nafter = [\"zz\"]", "not in the graph");
        bad("[[task]]\nid = \"a\"\n[[task]]\nid = \"a\"", "used twice");
        bad("[[task]]\nid = \"a\"\nrole = \"r\"\nto = \"m\"", "both");
        bad("[[task]]\nid = \"a\"\nwhat = 1", "not valid");
        bad("", "no task");
    }
}
