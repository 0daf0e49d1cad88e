use super::*;
use crate::body::{Assign, AttemptRef, Body, Budget, Cancel, Card, MemberRoles, Policy, TaskCreate, WithCard};
use crate::testing::Group;

fn task(g: &mut Group, by: usize, role: Option<&str>) -> EventId {
    let spec = TaskCreate { role: role.map(str::to_owned), ..TaskCreate::new("g") };
    g.write(by, Body::TaskCreate(spec), vec![]).id()
}

fn plan_for(g: &Group, me: usize, silent: Option<u64>, running: &HashSet<(EventId, u32)>) -> Vec<Action> {
    let state = State::fold(&g.log);
    let silent_for = move |_: EventId, _: u32| silent;
    let now = Now {
        me: g.node(me),
        wall_ms: 1_000,
        silent_for: &silent_for,
        up_ms: 0,
        running,
        room: 4,
        pending_for: &|_| None,
    };
    plan(&state, &now)
}

fn set_roles(g: &mut Group, member: usize, role: &str) {
    let roles = MemberRoles { member: *g.node(member).as_bytes(), roles: vec![role.into()], admin: false };
    g.write(0, Body::Roles(roles), vec![]);
}

#[test]
fn the_creator_assigns_to_the_least_loaded_member_with_the_role_and_room() {
    let mut g = Group::new(4);
    set_roles(&mut g, 1, "research");
    set_roles(&mut g, 2, "research");
    let a = task(&mut g, 0, Some("research"));
    let b = task(&mut g, 0, Some("research"));
    let c = task(&mut g, 0, Some("research"));
    let none = HashSet::new();
    let actions = plan_for(&g, 0, None, &none);
    let assigned: Vec<_> = actions
        .iter()
        .filter_map(|x| match x {
            Action::Assign { task, member, attempt: 1 } => Some((*task, *member)),
            _ => None,
        })
        .collect();
    // Capacity 1 each: two tasks go out, one to each; the third waits.
    assert_eq!(assigned.len(), 2, "{actions:?}");
    assert_eq!(assigned[0].0, a);
    assert_eq!(assigned[1].0, b);
    assert_ne!(assigned[0].1, assigned[1].1);
    let _ = c;
    // Only the creator assigns.
    assert!(plan_for(&g, 3, None, &none).iter().all(|x| !matches!(x, Action::Assign { .. })));
    // A member with more capacity takes more.
    let card = Card { capacity: 3, ..Card::default() };
    g.write(1, Body::Card(WithCard { card }), vec![]);
    let n = plan_for(&g, 0, None, &none).iter().filter(|x| matches!(x, Action::Assign { .. })).count();
    assert_eq!(n, 3);
}

#[test]
fn a_silent_member_loses_its_attempt_and_the_next_goes_elsewhere() {
    let mut g = Group::with(3, Budget::default(), Policy { lease_secs: 10, ..Policy::default() });
    let t = task(&mut g, 0, None);
    let member = *g.node(1).as_bytes();
    g.write(0, Body::Assign(Assign { task: t.0, attempt: 1, member }), vec![t]);
    g.write(1, Body::Claim(AttemptRef { task: t.0, attempt: 1 }), vec![t]);
    let none = HashSet::new();
    assert!(plan_for(&g, 0, Some(9_000), &none).is_empty());
    let actions = plan_for(&g, 0, Some(11_000), &none);
    assert!(
        matches!(&actions[..], [Action::EndAttempt { attempt: 1, reason, .. }] if reason.contains("lease expired"))
    );
    g.write(0, Body::Fail(crate::body::Fail { task: t.0, attempt: 1, reason: "lease".into(), retry: true }), vec![t]);
    let actions = plan_for(&g, 0, None, &none);
    // Member 1 tried already: member 0 or 2 gets attempt 2.
    assert!(matches!(&actions[..], [Action::Assign { attempt: 2, member, .. }] if *member != g.node(1)), "{actions:?}");
}

#[test]
fn a_member_runs_its_attempts_once_and_stops_those_that_no_longer_count() {
    let mut g = Group::new(2);
    let t = task(&mut g, 0, None);
    let member = *g.node(1).as_bytes();
    g.write(0, Body::Assign(Assign { task: t.0, attempt: 1, member }), vec![t]);
    let none = HashSet::new();
    assert_eq!(plan_for(&g, 1, None, &none), [Action::Run { task: t, attempt: 1 }]);
    let running = HashSet::from([(t, 1)]);
    assert!(plan_for(&g, 1, None, &running).is_empty());
    g.write(1, Body::Claim(AttemptRef { task: t.0, attempt: 1 }), vec![t]);
    // Claimed but not running: this node restarted mid-task.
    let actions = plan_for(&g, 1, None, &none);
    assert!(matches!(&actions[..], [Action::EndAttempt { reason, .. }] if reason.contains("restarted")));
    g.write(0, Body::Cancel(Cancel { task: Some(t.0), reason: "stop".into() }), vec![t]);
    assert_eq!(plan_for(&g, 1, None, &running), [Action::Stop { task: t, attempt: 1 }]);
}

#[test]
fn deadlines_cancel() {
    let mut g = Group::new(1);
    let spec = TaskCreate { deadline_ms: Some(500), ..TaskCreate::new("soon") };
    let t = g.write(0, Body::TaskCreate(spec), vec![]).id();
    let none = HashSet::new();
    let actions = plan_for(&g, 0, None, &none);
    assert!(matches!(&actions[..], [Action::Cancel { task, .. }] if *task == t));
}

#[test]
fn a_member_starts_no_more_attempts_than_it_has_room_for() {
    let mut g = Group::new(2);
    let ids: Vec<EventId> = (0..3).map(|_| task(&mut g, 0, None)).collect();
    for t in &ids {
        let member = *g.node(1).as_bytes();
        g.write(0, Body::Assign(Assign { task: t.0, attempt: 1, member }), vec![*t]);
    }
    let state = State::fold(&g.log);
    let silent_for = |_: EventId, _: u32| None;
    let running = HashSet::from([(ids[0], 1)]);
    let now = Now {
        me: g.node(1),
        wall_ms: 1_000,
        silent_for: &silent_for,
        up_ms: 0,
        running: &running,
        room: 1,
        pending_for: &|_| None,
    };
    let runs = plan(&state, &now).into_iter().filter(|a| matches!(a, Action::Run { .. })).count();
    assert_eq!(runs, 1);
}

#[test]
fn an_approval_expires_by_this_nodes_clock_and_by_the_wall_clock() {
    use crate::body::{Governance, NodeKey, Risk};
    let mut g = Group::new(3);
    let mut gov =
        Governance { approvers: vec![NodeKey(*g.node(2).as_bytes())], timeout_secs: 60, ..Governance::default() };
    gov.needs.set(Risk::High, 1);
    g.write(0, Body::Policy(gov), vec![]);
    let spec = TaskCreate { tier: Some(Risk::High), ..TaskCreate::new("risky") };
    let t = g.write(0, Body::TaskCreate(spec), vec![]).id();
    let state = State::fold(&g.log);
    let since = state.approvals[&t].since_ms.unwrap();
    let running = HashSet::new();
    let silent_for = |_: EventId, _: u32| None;
    let plan_at = |wall_ms: u64, seen_ms: Option<u64>| {
        let pending_for = move |_: EventId| seen_ms;
        let now = Now {
            me: g.node(0),
            wall_ms,
            silent_for: &silent_for,
            up_ms: 0,
            running: &running,
            room: 1,
            pending_for: &pending_for,
        };
        plan(&state, &now).into_iter().any(|a| a == Action::Expire { subject: t })
    };
    assert!(!plan_at(since + 60_000, Some(1_000)), "this node has not waited long enough itself");
    assert!(!plan_at(since + 1_000, Some(60_000)), "the wall clock says it is too early");
    assert!(plan_at(since + 60_000, Some(60_000)));
}
