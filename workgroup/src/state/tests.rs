use proptest::prelude::*;

use super::*;
use crate::body::{
    Assign, AttemptRef, Budget, Cancel, Complete, Fail, InputNeeded, MemberRoles, Note, Policy, Remove, Reply, Spend,
    TaskCreate,
};
use crate::testing::Group;

fn task(goal: &str) -> TaskCreate {
    TaskCreate::new(goal)
}

fn assign(g: &mut Group, by: usize, t: EventId, attempt: u32, to: usize) -> Event {
    let member = *g.node(to).as_bytes();
    g.write(by, Body::Assign(Assign { task: t.0, attempt, member }), vec![t])
}

fn at(t: EventId, attempt: u32) -> AttemptRef {
    AttemptRef { task: t.0, attempt }
}

fn spend(t: EventId, attempt: u32, tokens: u64, usd: u64) -> Body {
    Body::Spend(Spend {
        task: t.0,
        attempt,
        model: "m".into(),
        input_tokens: tokens,
        output_tokens: 0,
        usd_micros: usd,
        model_ms: 1,
    })
}

fn complete(t: EventId, attempt: u32, text: &str) -> Body {
    Body::Complete(Complete { task: t.0, attempt, text: text.into(), artefacts: vec![] })
}

fn refused(s: &State, e: &Event) -> Option<String> {
    s.refused.iter().find(|r| r.id == e.id()).map(|r| r.reason.clone())
}

#[test]
fn members_join_by_invitation_and_only_admins_manage_them() {
    let mut g = Group::new(3);
    let s = State::fold(&g.log);
    assert!(s.is_admin(&g.node(0)));
    assert!(s.active(&g.node(1)).is_some() && !s.is_admin(&g.node(1)));
    // A member who is not an admin cannot invite or remove.
    let outsider = ed25519_dalek::SigningKey::from_bytes(&[99; 32]);
    let invite = MemberRoles { member: *outsider.verifying_key().as_bytes(), roles: vec![], admin: false };
    let by_member = g.write(1, Body::Invite(invite.clone()), vec![]);
    let remove = g.write(1, Body::Remove(Remove { member: *g.node(2).as_bytes() }), vec![]);
    let s = State::fold(&g.log);
    assert!(refused(&s, &by_member).unwrap().contains("only an admin"));
    assert!(refused(&s, &remove).unwrap().contains("only an admin"));
    assert_eq!(s.members[&g.node(2)].status, MemberStatus::Active);
    // The admin promotes member 1, who then may.
    let roles = MemberRoles { member: *g.node(1).as_bytes(), roles: vec!["writer".into()], admin: true };
    g.write(0, Body::Roles(roles), vec![]);
    let removed = g.write(1, Body::Remove(Remove { member: *g.node(2).as_bytes() }), vec![]);
    let s = State::fold(&g.log);
    assert_eq!(refused(&s, &removed), None);
    assert_eq!(s.members[&g.node(2)].status, MemberStatus::Removed);
    assert_eq!(s.members[&g.node(1)].roles, ["writer"]);
    // A removed member's later events do not count.
    let late = g.note(2, "still here?");
    assert_eq!(refused(&State::fold(&g.log), &late).unwrap(), "not a member");
}

#[test]
fn a_task_runs_through_its_lifecycle() {
    let mut g = Group::new(2);
    let t = g.write(0, Body::TaskCreate(task("summarise")), vec![]).id();
    assert_eq!(State::fold(&g.log).tasks[&t].status, TaskStatus::Submitted);
    assign(&mut g, 0, t, 1, 1);
    g.write(1, Body::Claim(at(t, 1)), vec![t]);
    assert_eq!(State::fold(&g.log).tasks[&t].status, TaskStatus::Working);
    let q = Body::InputNeeded(InputNeeded { task: t.0, attempt: 1, question: "how long?".into() });
    g.write(1, q, vec![t]);
    let s = State::fold(&g.log);
    assert_eq!((s.tasks[&t].status, s.tasks[&t].question.as_deref()), (TaskStatus::InputRequired, Some("how long?")));
    // Only the creator answers.
    let wrong = g.write(1, Body::Reply(Reply { task: t.0, text: "long".into() }), vec![t]);
    g.write(0, Body::Reply(Reply { task: t.0, text: "short".into() }), vec![t]);
    let s = State::fold(&g.log);
    assert!(refused(&s, &wrong).is_some());
    assert_eq!(s.tasks[&t].status, TaskStatus::Working);
    g.write(1, spend(t, 1, 500, 0), vec![t]);
    g.write(1, complete(t, 1, "done"), vec![t]);
    let s = State::fold(&g.log);
    let task = &s.tasks[&t];
    assert_eq!(task.status, TaskStatus::Completed);
    assert_eq!(task.output.as_ref().map(|o| (o.text.as_str(), o.by)), Some(("done", g.node(1))));
    assert_eq!((s.spent.tokens, s.members[&g.node(1)].spent.tokens, s.spent_by_model["m"].tokens), (500, 500, 500));
    assert_eq!(task.replies, ["short"]);
}

#[test]
fn only_the_assignee_reports_and_a_superseded_result_does_not_count() {
    let mut g = Group::new(3);
    let t = g.write(0, Body::TaskCreate(task("work")), vec![]).id();
    assign(&mut g, 0, t, 1, 1);
    g.write(1, Body::Claim(at(t, 1)), vec![t]);
    let intruder = g.write(2, complete(t, 1, "mine!"), vec![t]);
    // The creator gives up on member 1 and hands attempt 2 to member 2.
    g.write(0, Body::Fail(Fail { task: t.0, attempt: 1, reason: "lease expired".into(), retry: true }), vec![t]);
    assign(&mut g, 0, t, 2, 2);
    g.write(2, Body::Claim(at(t, 2)), vec![t]);
    g.write(1, spend(t, 1, 100, 0), vec![t]);
    let late = g.write(1, complete(t, 1, "late"), vec![t]);
    g.write(2, spend(t, 2, 50, 0), vec![t]);
    g.write(2, complete(t, 2, "on time"), vec![t]);
    let s = State::fold(&g.log);
    let task = &s.tasks[&t];
    assert!(refused(&s, &intruder).is_some());
    assert!(refused(&s, &late).unwrap().contains("superseded"));
    assert_eq!(task.late, [late.id()]);
    assert_eq!(task.output.as_ref().map(|o| o.text.as_str()), Some("on time"));
    // Each attempt's spend is counted once.
    assert_eq!(s.spent.tokens, 150);
}

#[test]
fn a_later_spend_report_replaces_the_earlier_and_spend_after_cancel_is_refused() {
    let mut g = Group::new(2);
    let t = g.write(0, Body::TaskCreate(task("work")), vec![]).id();
    assign(&mut g, 0, t, 1, 1);
    g.write(1, Body::Claim(at(t, 1)), vec![t]);
    g.write(1, spend(t, 1, 100, 10), vec![t]);
    g.write(1, spend(t, 1, 300, 30), vec![t]);
    assert_eq!(State::fold(&g.log).spent, Usage { tokens: 300, usd_micros: 30 });
    g.write(0, Body::Cancel(Cancel { task: Some(t.0), reason: "enough".into() }), vec![t]);
    let after = g.write(1, spend(t, 1, 900, 90), vec![t]);
    let s = State::fold(&g.log);
    assert_eq!(s.tasks[&t].status, TaskStatus::Canceled);
    assert!(refused(&s, &after).unwrap().contains("canceled"));
    assert_eq!(s.spent, Usage { tokens: 300, usd_micros: 30 });
}

#[test]
fn a_group_budget_admits_only_what_it_covers() {
    let mut g = Group::with(2, Budget { usd_micros: None, tokens: Some(3000) }, Policy::default());
    let mut ids = Vec::new();
    for i in 0..10 {
        let mut spec = task(&format!("task {i}"));
        spec.budget.tokens = Some(1000);
        ids.push(g.write(0, Body::TaskCreate(spec), vec![]).id());
    }
    let no_budget = g.write(0, Body::TaskCreate(task("no budget")), vec![]).id();
    let s = State::fold(&g.log);
    let admitted = ids.iter().filter(|t| s.tasks[*t].status == TaskStatus::Submitted).count();
    assert_eq!(admitted, 3);
    let reason = s.tasks[&ids[3]].reason.clone().unwrap();
    assert!(reason.contains("over the group's budget: 0 of 3000 tokens left, the task needs 1000"), "{reason}");
    assert!(s.tasks[&no_budget].reason.as_ref().unwrap().contains("needs a budget in tokens"));
    // A finished task returns what it did not spend.
    let t = ids[0];
    assign(&mut g, 0, t, 1, 1);
    g.write(1, Body::Claim(at(t, 1)), vec![t]);
    g.write(1, spend(t, 1, 400, 0), vec![t]);
    g.write(1, complete(t, 1, "ok"), vec![t]);
    assert_eq!(State::fold(&g.log).available().0, Some(3000 - 400 - 2000));
}

#[test]
fn delegation_loops_end_as_rejected() {
    let policy = Policy { max_depth: 3, ..Policy::default() };
    let mut g = Group::with(3, Budget::default(), policy);
    let root = g.write(0, Body::TaskCreate(task("root")), vec![]).id();
    assign(&mut g, 0, root, 1, 1);
    // Member 1 delegates "ping" to member 2, who delegates "pong" back...
    let mut parent = root;
    let mut worker = 1;
    let mut last = None;
    for depth in 1..=4 {
        let mut spec = task(if depth % 2 == 1 { "ping" } else { "pong" });
        spec.parent = Some(parent.0);
        let next = if worker == 1 { 2 } else { 1 };
        spec.to = Some(*g.node(next).as_bytes());
        let t = g.write(worker, Body::TaskCreate(spec), vec![parent]).id();
        let s = State::fold(&g.log);
        if s.tasks[&t].status == TaskStatus::Rejected {
            last = Some((depth, s.tasks[&t].reason.clone().unwrap()));
            break;
        }
        assign(&mut g, worker, t, 1, next);
        parent = t;
        worker = next;
    }
    let (depth, reason) = last.expect("the loop was stopped");
    assert_eq!(depth, 3, "the third delegation repeats the first");
    assert!(reason.starts_with("loop detected"), "{reason}");
    // Depth alone also stops it.
    let mut g = Group::with(2, Budget::default(), Policy { max_depth: 1, ..Policy::default() });
    let root = g.write(0, Body::TaskCreate(task("a")), vec![]).id();
    assign(&mut g, 0, root, 1, 1);
    let mut spec = task("b");
    spec.parent = Some(root.0);
    let child = g.write(1, Body::TaskCreate(spec), vec![root]).id();
    assign(&mut g, 1, child, 1, 1);
    let mut spec = task("c");
    spec.parent = Some(child.0);
    let grandchild = g.write(1, Body::TaskCreate(spec), vec![child]).id();
    let s = State::fold(&g.log);
    assert_eq!(s.tasks[&child].status, TaskStatus::Submitted);
    assert!(s.tasks[&grandchild].reason.as_ref().unwrap().contains("loop detected: delegation 2 deep"));
}

#[test]
fn attempts_run_out_and_removal_ends_the_attempt() {
    let policy = Policy { max_attempts: 2, ..Policy::default() };
    let mut g = Group::with(3, Budget::default(), policy);
    let t = g.write(0, Body::TaskCreate(task("x")), vec![]).id();
    assign(&mut g, 0, t, 1, 1);
    g.write(0, Body::Remove(Remove { member: *g.node(1).as_bytes() }), vec![]);
    let s = State::fold(&g.log);
    assert_eq!(s.tasks[&t].status, TaskStatus::Submitted);
    assert_eq!(s.tasks[&t].attempts[0].ended.as_deref(), Some("its member was removed"));
    assign(&mut g, 0, t, 2, 2);
    g.write(2, Body::Fail(Fail { task: t.0, attempt: 2, reason: "no tool".into(), retry: true }), vec![t]);
    let s = State::fold(&g.log);
    assert_eq!(s.tasks[&t].status, TaskStatus::Failed);
    assert_eq!(s.tasks[&t].reason.as_deref(), Some("failed after 2 attempt(s): no tool"));
    let third = assign(&mut g, 0, t, 3, 2);
    assert!(refused(&State::fold(&g.log), &third).is_some());
}

#[test]
fn an_equivocating_author_is_set_aside_from_the_fork_on() {
    let mut g = Group::new(3);
    let before = g.note(1, "fine");
    let mut h = g.fork();
    let a = g.note(1, "a");
    let b = h.note(1, "b");
    // Member 2 builds on a, then goes on writing.
    let on_a = g.write(2, Body::Note(Note { text: "builds on a".into() }), vec![a.id()]);
    let next = g.note(2, "and goes on");
    g.log.add_evidence(a.clone(), b.clone());
    let s = State::fold(&g.log);
    assert_eq!(refused(&s, &before), None);
    assert!(refused(&s, &a).unwrap().contains("equivocated"));
    assert_eq!(s.forks.get(&g.node(1)), Some(&a.header().seq));
    // The event built on the fork does not count; member 2's chain does.
    assert!(refused(&s, &on_a).unwrap().contains("set aside"));
    assert_eq!(refused(&s, &next), None);
}

#[test]
fn notes_need_membership_and_the_group_is_created_once() {
    let mut g = Group::new(1);
    let n = g.write(0, Body::Note(Note { text: "hi".into() }), vec![]);
    assert_eq!(refused(&State::fold(&g.log), &n), None);
}

#[test]
fn a_creator_that_leaves_takes_its_open_tasks_with_it_and_keeps_no_power() {
    let mut g = Group::new(3);
    let t = g.write(1, Body::TaskCreate(task("mine")), vec![]).id();
    let done = g.write(1, Body::TaskCreate(task("done")), vec![]).id();
    assign(&mut g, 1, done, 1, 2);
    g.write(2, Body::Claim(at(done, 1)), vec![done]);
    g.write(2, complete(done, 1, "ok"), vec![done]);
    g.write(1, Body::Leave(Note { text: String::new() }), vec![]);
    let s = State::fold(&g.log);
    assert_eq!(s.tasks[&t].status, TaskStatus::Canceled);
    assert_eq!(s.tasks[&t].reason.as_deref(), Some("its creator left"));
    assert_eq!(s.tasks[&done].status, TaskStatus::Completed, "finished work stays finished");
    assert!(s.members[&g.node(1)].ended_clock.is_some());
    // It can no longer answer, assign or cancel.
    let t2 = g.write(0, Body::TaskCreate(task("admin's")), vec![]).id();
    let late = g.write(1, Body::Cancel(Cancel { task: Some(t2.0), reason: "x".into() }), vec![t2]);
    assert!(refused(&State::fold(&g.log), &late).is_some());
}

#[test]
fn spend_reports_only_grow_and_are_capped_by_the_budget() {
    let mut g = Group::with(2, Budget { usd_micros: None, tokens: Some(10_000) }, Policy::default());
    let mut spec = task("x");
    spec.budget.tokens = Some(1000);
    let t = g.write(0, Body::TaskCreate(spec), vec![]).id();
    assign(&mut g, 0, t, 1, 1);
    g.write(1, Body::Claim(at(t, 1)), vec![t]);
    g.write(1, spend(t, 1, 900, 0), vec![t]);
    g.write(1, spend(t, 1, 10, 0), vec![t]);
    assert_eq!(State::fold(&g.log).spent.tokens, 900, "a report cannot take spend back");
    g.write(1, spend(t, 1, u64::MAX / 2, 0), vec![t]);
    let s = State::fold(&g.log);
    assert_eq!(s.spent.tokens, 2000, "an attempt counts at most twice the task's budget");
    assert_eq!(s.available().0, Some(10_000 - 2000));
}

#[test]
fn delegated_tasks_draw_on_their_parent_and_end_with_it() {
    let mut g = Group::with(3, Budget { usd_micros: None, tokens: Some(3000) }, Policy::default());
    let mut spec = task("root");
    spec.budget.tokens = Some(2000);
    let root = g.write(0, Body::TaskCreate(spec), vec![]).id();
    assign(&mut g, 0, root, 1, 1);
    let child = |g: &mut Group, goal: &str, tokens: u64| {
        let mut spec = task(goal);
        spec.parent = Some(root.0);
        spec.budget.tokens = Some(tokens);
        g.write(1, Body::TaskCreate(spec), vec![root]).id()
    };
    let a = child(&mut g, "a", 1500);
    let b = child(&mut g, "b", 1000);
    let s = State::fold(&g.log);
    assert_eq!(s.tasks[&a].status, TaskStatus::Submitted);
    assert!(
        s.tasks[&b].reason.as_ref().unwrap().contains("over its parent task's budget: 500 of 2000"),
        "{:?}",
        s.tasks[&b].reason
    );
    // The child's budget is the parent's: the group still has 1000 free.
    assert_eq!(s.available().0, Some(1000));
    // The child's spend counts against the parent.
    assign(&mut g, 1, a, 1, 2);
    g.write(2, Body::Claim(at(a, 1)), vec![a]);
    g.write(2, spend(a, 1, 700, 0), vec![a]);
    let s = State::fold(&g.log);
    assert_eq!(s.tasks[&root].subtree_spent.tokens, 700);
    assert_eq!(s.available().0, Some(1000));
    // The parent ends: the child is canceled.
    g.write(0, Body::Cancel(Cancel { task: Some(root.0), reason: "stop".into() }), vec![root]);
    let s = State::fold(&g.log);
    assert_eq!(s.tasks[&a].status, TaskStatus::Canceled);
    assert_eq!(s.tasks[&a].reason.as_deref(), Some("the task it was delegated from ended"));
    assert_eq!(s.available().0, Some(3000 - 700));
}

/// Every member, whatever order events reach it in, folds the same state.
fn scenario() -> Group {
    let mut g = Group::with(3, Budget { usd_micros: Some(1_000_000), tokens: None }, Policy::default());
    let mut tasks = Vec::new();
    for i in 0..4 {
        let mut spec = task(&format!("t{i}"));
        spec.budget.usd_micros = Some(300_000);
        tasks.push(g.write(i % 3, Body::TaskCreate(spec), vec![]).id());
    }
    for (i, t) in tasks.iter().enumerate() {
        let by = i % 3;
        let to = (i + 1) % 3;
        assign(&mut g, by, *t, 1, to);
        g.write(to, Body::Claim(at(*t, 1)), vec![*t]);
        g.write(to, spend(*t, 1, 10, 1000 * i as u64), vec![*t]);
        if i % 2 == 0 {
            g.write(to, complete(*t, 1, "ok"), vec![*t]);
        } else {
            g.write(by, Body::Cancel(Cancel { task: Some(t.0), reason: "no".into() }), vec![*t]);
        }
    }
    g.write(0, Body::Remove(Remove { member: *g.node(2).as_bytes() }), vec![]);
    g.note(2, "after removal");
    g
}

#[test]
fn folding_as_events_arrive_gives_the_fold_of_the_whole_log() {
    let g = scenario();
    let all: Vec<Event> = g.log.ordered().into_iter().cloned().collect();
    let mut log = Log::new(all[0].clone()).unwrap();
    let mut state = State::fold(&log);
    // In order (the incremental path), then one out of order (a full refold).
    for e in &all[1..all.len() - 3] {
        log.ingest(e.clone()).unwrap();
        state.advance(&log, std::slice::from_ref(e));
    }
    let tail = &all[all.len() - 3..];
    for e in tail {
        log.ingest(e.clone()).unwrap();
    }
    state.advance(&log, &[tail[2].clone(), tail[0].clone(), tail[1].clone()]);
    assert_eq!(state, State::fold(&g.log));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn any_delivery_order_folds_to_the_same_state(seed in any::<u64>()) {
        let g = scenario();
        let want = State::fold(&g.log);
        let mut events: Vec<Event> = g.log.events().filter(|e| e.id() != g.log.group()).cloned().collect();
        // A deterministic shuffle from the seed.
        let mut x = seed | 1;
        for i in (1..events.len()).rev() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            events.swap(i, (x % (i as u64 + 1)) as usize);
        }
        let mut log = Log::new(g.log.genesis().clone()).unwrap();
        // Deliver in that order; what cannot be taken yet waits, as a
        // member would fetch it again later.
        let mut waiting = events;
        while !waiting.is_empty() {
            let before = waiting.len();
            waiting.retain(|e| log.ingest(e.clone()).is_err());
            prop_assert!(waiting.len() < before, "no progress");
        }
        prop_assert_eq!(State::fold(&log), want);
    }
}

#[test]
fn a_join_names_the_invitation_that_counts() {
    let mut g = Group::new(1);
    let guest = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    g.keys.push(guest);
    let invite = |g: &mut Group| {
        let body = MemberRoles { member: *g.node(1).as_bytes(), roles: vec![], admin: false };
        g.write(0, Body::Invite(body), vec![])
    };
    let join =
        |g: &mut Group, deps| g.sign(1, Body::Join(crate::body::WithCard { card: crate::body::Card::default() }), deps);
    let first = invite(&mut g);
    // Naming an event that is not its invitation: not a join. (Naming
    // nothing is not even an event: a first event names something.)
    let note = g.note(0, "hello");
    let s = State::fold(&g.log);
    let wrong = join(&mut g, vec![note.id()]);
    assert_eq!(s.refusal(&wrong).as_deref(), Some("a join names the invitation it accepts"));
    // Invited again (new roles, say): only the latest invitation counts.
    let second = invite(&mut g);
    let s = State::fold(&g.log);
    assert!(s.refusal(&join(&mut g, vec![first.id()])).is_some());
    let ok = join(&mut g, vec![second.id()]);
    assert_eq!(s.refusal(&ok), None);
    g.log.ingest(ok).unwrap();
    assert_eq!(State::fold(&g.log).members[&g.node(1)].status, MemberStatus::Active);
}

fn after(deps: &[(EventId, bool)], goal: &str) -> TaskCreate {
    TaskCreate {
        after: deps.iter().map(|(t, optional)| crate::body::After { task: t.0, optional: *optional }).collect(),
        ..task(goal)
    }
}

#[test]
fn a_task_waits_for_its_dependencies_and_starts_when_all_completed() {
    let mut g = Group::new(2);
    let a = g.write(0, Body::TaskCreate(task("research")), vec![]).id();
    let b = g.write(0, Body::TaskCreate(task("more research")), vec![]).id();
    let c = g.write(0, Body::TaskCreate(after(&[(a, false), (b, false)], "write")), vec![a, b]).id();
    let s = State::fold(&g.log);
    assert_eq!((s.tasks[&a].status, s.tasks[&c].status), (TaskStatus::Submitted, TaskStatus::Waiting));
    // Nothing is assigned while it waits.
    for (t, who) in [(a, 1), (b, 1)] {
        assign(&mut g, 0, t, 1, who);
        g.write(who, Body::Claim(at(t, 1)), vec![t]);
    }
    g.write(1, complete(a, 1, "owls hunt at night"), vec![a]);
    assert_eq!(State::fold(&g.log).tasks[&c].status, TaskStatus::Waiting, "one of two done");
    g.write(1, complete(b, 1, "and sleep by day"), vec![b]);
    assert_eq!(State::fold(&g.log).tasks[&c].status, TaskStatus::Submitted);
    // A task whose dependencies are done already starts at once.
    let d = g.write(0, Body::TaskCreate(after(&[(a, false)], "again")), vec![a]).id();
    assert_eq!(State::fold(&g.log).tasks[&d].status, TaskStatus::Submitted);
}

#[test]
fn a_failed_dependency_fails_its_dependents_down_the_graph_unless_optional() {
    let mut g = Group::new(2);
    let a = g.write(0, Body::TaskCreate(task("fetch")), vec![]).id();
    let needs = g.write(0, Body::TaskCreate(after(&[(a, false)], "use it")), vec![a]).id();
    let then = g.write(0, Body::TaskCreate(after(&[(needs, false)], "then this")), vec![needs]).id();
    let optional = g.write(0, Body::TaskCreate(after(&[(a, true)], "with or without")), vec![a]).id();
    assign(&mut g, 0, a, 1, 1);
    g.write(1, Body::Claim(at(a, 1)), vec![a]);
    g.write(1, Body::Fail(Fail { task: a.0, attempt: 1, reason: "no network".into(), retry: false }), vec![a]);
    let s = State::fold(&g.log);
    assert_eq!(s.tasks[&needs].status, TaskStatus::Failed);
    assert!(s.tasks[&needs].reason.as_deref().unwrap().contains("failed: failed after 1 attempt(s): no network"));
    assert_eq!(s.tasks[&then].status, TaskStatus::Failed, "and down the graph");
    assert_eq!(s.tasks[&optional].status, TaskStatus::Submitted, "an optional dependency lets it go on");
    // A dependency that is not in the group is refused.
    let stranger = g.write(0, Body::TaskCreate(after(&[(EventId([7; 32]), false)], "x")), vec![]).id();
    let s = State::fold(&g.log);
    assert_eq!(s.tasks[&stranger].status, TaskStatus::Rejected);
    // Canceling a dependency fails the waiting task too.
    let e = g.write(0, Body::TaskCreate(task("e")), vec![]).id();
    let f = g.write(0, Body::TaskCreate(after(&[(e, false)], "f")), vec![e]).id();
    g.write(0, Body::Cancel(Cancel { task: Some(e.0), reason: "not needed".into() }), vec![e]);
    let s = State::fold(&g.log);
    assert_eq!(s.tasks[&f].status, TaskStatus::Failed);
    assert!(s.tasks[&f].reason.as_deref().unwrap().contains("canceled: not needed"));
}

#[test]
fn a_waiting_task_cannot_be_assigned_early() {
    let mut g = Group::new(2);
    let a = g.write(0, Body::TaskCreate(task("first")), vec![]).id();
    let b = g.write(0, Body::TaskCreate(after(&[(a, false)], "second")), vec![a]).id();
    let early = assign(&mut g, 0, b, 1, 1);
    let s = State::fold(&g.log);
    assert!(refused(&s, &early).unwrap().contains("waits for the tasks it depends on"));
    assert_eq!(s.tasks[&b].status, TaskStatus::Waiting);
}

mod governance {
    use super::*;
    use crate::body::{ApprovalRequest, Decision, Expire, Governance, NodeKey, OnTimeout, Risk};

    fn high(goal: &str) -> TaskCreate {
        TaskCreate { tier: Some(Risk::High), ..task(goal) }
    }

    fn approve(g: &mut Group, by: usize, subject: EventId) -> Event {
        g.write(by, Body::Approve(Decision { subject: subject.0, reason: "fine".into() }), vec![subject])
    }

    /// Members 0 (admin), 1 and 2; member 2 is the one approver; high and
    /// critical actions need one approval.
    fn governed(policy: impl FnOnce(&mut Governance)) -> Group {
        let mut g = Group::new(3);
        let mut gov = Governance { approvers: vec![NodeKey(*g.node(2).as_bytes())], ..Governance::default() };
        gov.needs.set(Risk::High, 1);
        policy(&mut gov);
        g.write(0, Body::Policy(gov), vec![]);
        g
    }

    #[test]
    fn a_high_risk_task_waits_for_a_designated_approver() {
        let mut g = governed(|_| {});
        let t = g.write(0, Body::TaskCreate(high("delete the old backups")), vec![]).id();
        let s = State::fold(&g.log);
        assert_eq!(s.tasks[&t].status, TaskStatus::AwaitingApproval);
        assert_eq!(s.pending_approvals().count(), 1);
        // Nobody assigns it meanwhile.
        let early = assign(&mut g, 0, t, 1, 1);
        assert!(refused(&State::fold(&g.log), &early).unwrap().contains("waits for approval"));
        // Not an approver (even the admin, once approvers are named), and
        // not the task's own creator.
        let by_admin = approve(&mut g, 0, t);
        let by_member = approve(&mut g, 1, t);
        let s = State::fold(&g.log);
        assert_eq!(refused(&s, &by_admin).unwrap(), "not an approver of this group");
        assert_eq!(refused(&s, &by_member).unwrap(), "not an approver of this group");
        assert_eq!(s.tasks[&t].status, TaskStatus::AwaitingApproval);
        let ok = approve(&mut g, 2, t);
        let s = State::fold(&g.log);
        assert_eq!(refused(&s, &ok), None);
        assert_eq!(s.tasks[&t].status, TaskStatus::Submitted);
        assert_eq!(s.approvals[&t].verdict, Verdict::Approved);
        assert_eq!(s.approvals[&t].approvals[0].by, g.node(2));
        // A second decision on a decided approval does not count.
        let again = approve(&mut g, 2, t);
        assert!(refused(&State::fold(&g.log), &again).unwrap().contains("decided already"));
        // The approver cannot approve a task it created itself.
        let own = g.write(2, Body::TaskCreate(high("mine")), vec![]).id();
        let selfish = approve(&mut g, 2, own);
        assert!(refused(&State::fold(&g.log), &selfish).unwrap().contains("own requester"));
    }

    #[test]
    fn k_of_n_approvals_and_a_denial_rejects() {
        let mut g = Group::new(4);
        let approvers = (1..4).map(|i| NodeKey(*g.node(i).as_bytes())).collect();
        let mut gov = Governance { approvers, ..Governance::default() };
        gov.needs.set(Risk::Critical, 2);
        g.write(0, Body::Policy(gov), vec![]);
        let t = g.write(0, Body::TaskCreate(TaskCreate { tier: Some(Risk::Critical), ..task("wire money") }), vec![]);
        let t = t.id();
        approve(&mut g, 1, t);
        assert_eq!(State::fold(&g.log).tasks[&t].status, TaskStatus::AwaitingApproval, "one of two");
        approve(&mut g, 2, t);
        assert_eq!(State::fold(&g.log).tasks[&t].status, TaskStatus::Submitted);
        let u = g.write(0, Body::TaskCreate(TaskCreate { tier: Some(Risk::Critical), ..task("again") }), vec![]).id();
        approve(&mut g, 1, u);
        g.write(3, Body::Deny(Decision { subject: u.0, reason: "too much".into() }), vec![u]);
        let s = State::fold(&g.log);
        assert_eq!(s.tasks[&u].status, TaskStatus::Rejected);
        assert!(s.tasks[&u].reason.as_deref().unwrap().contains("too much"), "{:?}", s.tasks[&u].reason);
    }

    #[test]
    fn an_unanswered_approval_takes_the_default_action_after_its_timeout() {
        for (on_timeout, status) in [
            (OnTimeout::Skip, TaskStatus::Canceled),
            (OnTimeout::Deny, TaskStatus::Rejected),
            (OnTimeout::Proceed, TaskStatus::Submitted),
        ] {
            let mut g = governed(|p| {
                p.timeout_secs = 60;
                p.on_timeout = on_timeout;
            });
            let t = g.write(0, Body::TaskCreate(high("x")), vec![]).id();
            let early = g.write(0, Body::Expire(Expire { subject: t.0 }), vec![t]);
            assert!(refused(&State::fold(&g.log), &early).unwrap().contains("not run out"));
            g.advance(60_000);
            // Only whoever asked (or an admin; to proceed, an admin or an
            // approver) records the timeout.
            let by_other = g.write(1, Body::Expire(Expire { subject: t.0 }), vec![t]);
            assert!(refused(&State::fold(&g.log), &by_other).unwrap().contains("only"));
            g.write(0, Body::Expire(Expire { subject: t.0 }), vec![t]);
            let s = State::fold(&g.log);
            assert_eq!(s.tasks[&t].status, status, "{on_timeout:?}");
            assert_eq!(s.approvals[&t].verdict, Verdict::Expired(on_timeout));
        }
    }

    #[test]
    fn a_task_waiting_for_others_asks_for_approval_once_they_are_done() {
        let mut g = governed(|p| p.timeout_secs = 1);
        let a = g.write(0, Body::TaskCreate(task("first")), vec![]).id();
        let b = g.write(
            0,
            Body::TaskCreate(TaskCreate { tier: Some(Risk::High), ..after(&[(a, false)], "then") }),
            vec![a],
        );
        let b = b.id();
        let s = State::fold(&g.log);
        assert_eq!(s.tasks[&b].status, TaskStatus::Waiting);
        // Its timeout has not begun: it cannot expire yet.
        g.advance(5_000);
        let early = g.write(0, Body::Expire(Expire { subject: b.0 }), vec![b]);
        assert!(refused(&State::fold(&g.log), &early).unwrap().contains("not begun to wait"));
        assign(&mut g, 0, a, 1, 1);
        g.write(1, Body::Claim(at(a, 1)), vec![a]);
        g.write(1, complete(a, 1, "done"), vec![a]);
        assert_eq!(State::fold(&g.log).tasks[&b].status, TaskStatus::AwaitingApproval);
    }

    #[test]
    fn only_admins_declare_less_than_the_default_and_delegation_keeps_the_tier() {
        let mut g = governed(|p| p.default_tier = Risk::High);
        let by_member = g.write(1, Body::TaskCreate(TaskCreate { tier: Some(Risk::Low), ..task("a") }), vec![]).id();
        let by_admin = g.write(0, Body::TaskCreate(TaskCreate { tier: Some(Risk::Low), ..task("b") }), vec![]).id();
        let s = State::fold(&g.log);
        assert_eq!((s.tasks[&by_member].tier, s.tasks[&by_admin].tier), (Risk::High, Risk::Low));
        assert_eq!(s.tasks[&by_member].status, TaskStatus::AwaitingApproval);
        // Approved, its delegated task keeps its tier and needs its own
        // approval (its approvers saw only the parent's goal).
        approve(&mut g, 2, by_member);
        assign(&mut g, 1, by_member, 1, 1);
        g.write(1, Body::Claim(at(by_member, 1)), vec![by_member]);
        let child = TaskCreate { parent: Some(by_member.0), tier: Some(Risk::Low), ..task("part of it") };
        let child = g.write(1, Body::TaskCreate(child), vec![by_member]).id();
        let s = State::fold(&g.log);
        assert_eq!(s.tasks[&child].tier, Risk::High);
        assert_eq!(s.tasks[&child].status, TaskStatus::AwaitingApproval);
    }

    #[test]
    fn an_early_dated_event_of_another_member_does_not_shorten_the_wait() {
        let mut g = governed(|p| p.timeout_secs = 60);
        let a = g.write(0, Body::TaskCreate(task("first")), vec![]).id();
        g.advance(100_000);
        let b = g.write(
            0,
            Body::TaskCreate(TaskCreate { tier: Some(Risk::High), ..after(&[(a, false)], "then") }),
            vec![a],
        );
        let (b, created) = (b.id(), State::fold(&g.log).tasks[&b.id()].created_ms);
        assign(&mut g, 0, a, 1, 1);
        g.write(1, Body::Claim(at(a, 1)), vec![a]);
        // Member 1 completes the first task with a clock far behind.
        let mut h = g.log.next_header(g.node(1), vec![a], 0);
        h.time_ms = 1;
        let done = Event::sign(&g.keys[1], h, complete(a, 1, "done")).unwrap();
        g.log.ingest(done).unwrap();
        let s = State::fold(&g.log);
        assert_eq!(s.tasks[&b].status, TaskStatus::AwaitingApproval);
        assert_eq!(s.approvals[&b].since_ms, Some(created), "the wait starts no earlier than the task");
    }

    #[test]
    fn at_most_eight_approval_requests_pending_and_none_from_ended_attempts() {
        let mut g = governed(|_| {});
        let t = g.write(0, Body::TaskCreate(task("tidy up")), vec![]).id();
        assign(&mut g, 0, t, 1, 1);
        g.write(1, Body::Claim(at(t, 1)), vec![t]);
        let ask = |action: &str| ApprovalRequest { task: t.0, attempt: 1, tier: Risk::High, action: action.into() };
        for i in 0..8 {
            g.write(1, Body::ApprovalRequest(ask(&format!("shell {i}"))), vec![t]);
        }
        let ninth = g.write(1, Body::ApprovalRequest(ask("shell 9")), vec![t]);
        assert!(refused(&State::fold(&g.log), &ninth).unwrap().contains("at most 8"));
        assert_eq!(State::fold(&g.log).pending_approvals().count(), 8);
        // The attempt ends: its request no longer waits for anyone.
        g.write(1, Body::Fail(Fail { task: t.0, attempt: 1, reason: "crashed".into(), retry: true }), vec![t]);
        assert_eq!(State::fold(&g.log).pending_approvals().count(), 0);
    }

    #[test]
    fn a_policy_whose_approvals_decrease_with_risk_does_not_count() {
        let mut g = Group::new(1);
        let mut gov = Governance::default();
        gov.needs.set(Risk::High, 2);
        gov.needs.set(Risk::Critical, 1);
        let e = g.write(0, Body::Policy(gov), vec![]);
        let s = State::fold(&g.log);
        assert!(refused(&s, &e).unwrap().contains("never decrease"));
        assert_eq!(s.governance, Governance::default());
    }

    #[test]
    fn a_parent_waiting_on_its_delegated_task_leaves_room_under_max_running() {
        let mut g = governed(|p| p.max_running = 1);
        let t = g.write(0, Body::TaskCreate(task("big job")), vec![]).id();
        assign(&mut g, 0, t, 1, 1);
        g.write(1, Body::Claim(at(t, 1)), vec![t]);
        let child = g.write(1, Body::TaskCreate(TaskCreate { parent: Some(t.0), ..task("part") }), vec![t]).id();
        let s = State::fold(&g.log);
        assert_eq!(s.running(), 0, "the parent waits for its child");
        let assigned = assign(&mut g, 1, child, 1, 2);
        assert_eq!(refused(&State::fold(&g.log), &assigned), None);
    }

    #[test]
    fn a_tool_call_above_the_tasks_tier_is_approved_through_the_log() {
        let mut g = governed(|_| {});
        let t = g.write(0, Body::TaskCreate(task("tidy up")), vec![]).id();
        assign(&mut g, 0, t, 1, 1);
        g.write(1, Body::Claim(at(t, 1)), vec![t]);
        let s = State::fold(&g.log);
        assert_eq!(s.needs_for(&s.tasks[&t], Risk::Medium), 0, "within the task's tier");
        assert_eq!(s.needs_for(&s.tasks[&t], Risk::High), 1);
        let ask = ApprovalRequest { task: t.0, attempt: 1, tier: Risk::High, action: "shell rm -r old".into() };
        // Only the attempt's member asks.
        let by_other = g.write(2, Body::ApprovalRequest(ask.clone()), vec![t]);
        assert!(refused(&State::fold(&g.log), &by_other).is_some());
        let req = g.write(1, Body::ApprovalRequest(ask), vec![t]).id();
        // Its own requester cannot approve it, even were it an approver.
        let approvers = vec![NodeKey(*g.node(1).as_bytes()), NodeKey(*g.node(2).as_bytes())];
        let gov = Governance { approvers, ..Governance::default() };
        g.write(0, Body::Policy(gov), vec![]);
        let own = approve(&mut g, 1, req);
        assert!(refused(&State::fold(&g.log), &own).unwrap().contains("own requester"));
        approve(&mut g, 2, req);
        let s = State::fold(&g.log);
        assert_eq!(s.approvals[&req].verdict, Verdict::Approved);
        assert_eq!(s.approvals[&req].attempt, Some(1));
    }

    #[test]
    fn the_group_runs_at_most_max_running_tasks_and_only_submitters_submit() {
        let mut g = governed(|p| {
            p.max_running = 1;
            p.submitters = Some(vec![]);
        });
        let by_member = g.write(1, Body::TaskCreate(task("x")), vec![]);
        assert!(refused(&State::fold(&g.log), &by_member).unwrap().contains("may not submit"));
        // Nor through delegation.
        let job = g.write(0, Body::TaskCreate(task("job")), vec![]).id();
        assign(&mut g, 0, job, 1, 1);
        g.write(1, Body::Claim(at(job, 1)), vec![job]);
        let sub = g.write(1, Body::TaskCreate(TaskCreate { parent: Some(job.0), ..task("sub") }), vec![job]);
        assert!(refused(&State::fold(&g.log), &sub).unwrap().contains("may not submit"));
        g.write(1, complete(job, 1, "done"), vec![job]);
        let a = g.write(0, Body::TaskCreate(task("a")), vec![]).id();
        let b = g.write(0, Body::TaskCreate(task("b")), vec![]).id();
        assign(&mut g, 0, a, 1, 1);
        let second = assign(&mut g, 0, b, 1, 2);
        assert!(refused(&State::fold(&g.log), &second).unwrap().contains("at most 1 tasks at once"));
        g.write(1, Body::Claim(at(a, 1)), vec![a]);
        g.write(1, complete(a, 1, "done"), vec![a]);
        let now = assign(&mut g, 0, b, 1, 2);
        assert_eq!(refused(&State::fold(&g.log), &now), None);
        // Only an admin sets the policy.
        let coup = g.write(1, Body::Policy(Governance::default()), vec![]);
        assert!(refused(&State::fold(&g.log), &coup).unwrap().contains("only an admin"));
    }
}
