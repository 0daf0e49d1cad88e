//! Tasks that survive crashes, go offline and come back, and cancel.

use std::time::{Duration, Instant};

use super::{GROUP, Team, wait_until};
use crate::fake_provider::{openai_slow, openai_stream, openai_tool_call};

/// How many `completed` events member `i`'s transcript holds that count.
fn completions(t: &Team, i: usize) -> usize {
    t.log(i).iter().filter(|e| e["kind"] == "complete" && e["refused"].is_null()).count()
}

#[test]
fn a_member_killed_mid_task_restarts_and_the_task_completes_exactly_once() {
    let bob = vec![openai_slow(100, Duration::from_millis(100)), openai_stream(&["done after restart"], 5, 5)];
    let mut t = Team::new(&["alice", "bob"], vec![vec![], bob], &[]);
    t.form(&[&[], &["worker"]], &[]);
    let id = t.submit(0, "long job", &["--role", "worker"]);
    wait_until("bob to call his model", 20, || !t.members[1].fake.requests().is_empty());
    t.kill(1);
    t.start(1);
    wait_until("the task to complete", 30, || t.task(0, &id)["status"] == "completed");
    let task = t.task(0, &id);
    assert_eq!(task["output"], "done after restart");
    let attempts = task["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{task}");
    assert!(attempts[0]["ended"].as_str().unwrap().contains("restarted"), "{task}");
    assert_eq!(completions(&t, 0), 1);
    wait_until("bob to agree", 20, || t.task(1, &id)["status"] == "completed");
    assert_eq!(completions(&t, 1), 1);
}

#[test]
fn a_creator_killed_mid_task_sees_the_result_once_after_restart() {
    let bob = vec![openai_slow(20, Duration::from_millis(100))];
    let mut t = Team::new(&["alice", "bob"], vec![vec![], bob], &[]);
    t.form(&[&[], &["worker"]], &[]);
    let id = t.submit(0, "job", &["--role", "worker"]);
    wait_until("bob to work on it", 20, || t.task(0, &id)["status"] == "working");
    t.kill(0);
    wait_until("bob to finish", 30, || t.task(1, &id)["status"] == "completed");
    t.start(0);
    wait_until("alice to catch up", 30, || t.task(0, &id)["status"] == "completed");
    let task = t.task(0, &id);
    assert_eq!(task["attempts"].as_array().unwrap().len(), 1, "{task}");
    assert!(task["output"].as_str().unwrap().starts_with("w0 w1"));
    assert_eq!(completions(&t, 0), 1);
}

#[test]
fn an_offline_member_loses_its_task_to_another_and_its_late_work_does_not_count() {
    // Whoever gets the first attempt is frozen after calling its model;
    // the creator gives up on it after the 2 s lease and the other worker
    // gets attempt 2. Thawed, the first either learns it was superseded
    // and stops, or finishes first: then its result is recorded, not
    // counted (the fold's rule, unit-tested in the workgroup crate).
    let script = |who: &str| vec![openai_slow(30, Duration::from_millis(100)), openai_stream(&[who], 7, 3)];
    let t = Team::new(&["alice", "bob", "carol"], vec![vec![], script("bob"), script("carol")], &[]);
    t.form(&[&[], &["worker"], &["worker"]], &["--lease", "2s"]);
    let id = t.submit(0, "job", &["--role", "worker"]);
    wait_until("a worker to claim it", 20, || t.task(0, &id)["status"] == "working");
    let first = t.task(0, &id)["assignee"].as_str().unwrap().to_owned();
    let (frozen, other) = if first == "bob" { (1, "carol") } else { (2, "bob") };
    wait_until("it to call its model", 20, || !t.members[frozen].fake.requests().is_empty());
    t.signal(frozen, "STOP");
    wait_until("the other worker to finish attempt 2", 40, || t.task(0, &id)["status"] == "completed");
    let task = t.task(0, &id);
    assert_eq!(task["output_by"], other, "{task}");
    assert!(task["attempts"][0]["ended"].as_str().unwrap().contains("lease expired"), "{task}");
    t.signal(frozen, "CONT");
    wait_until("the thawed member to catch up", 40, || t.task(frozen, &id)["status"] == "completed");
    std::thread::sleep(Duration::from_secs(1));
    let task = t.task(0, &id);
    assert_eq!(task["output_by"], other, "late work replaced the counted result: {task}");
    assert!(task["late_results"].as_u64().unwrap() <= 1);
    assert_eq!(completions(&t, 0), 1);
    // What each attempt spent is charged once.
    let spent: u64 = task["attempts"].as_array().unwrap().iter().map(|a| a["tokens"].as_u64().unwrap()).sum();
    assert_eq!(task["spent_tokens"].as_u64().unwrap(), spent);
}

/// `sleep` processes with this exact argument still running.
fn sleepers(arg: &str) -> usize {
    let out = std::process::Command::new("pgrep").args(["-f", &format!("^sleep {arg}$")]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).lines().count()
}

#[test]
fn cancel_stops_five_running_tasks_on_three_members_and_their_tools() {
    let call = || openai_tool_call("c1", "shell", r#"{"argv":["sleep","317"],"timeout_secs":600}"#);
    let scripts = vec![vec![call()], vec![call(), call()], vec![call(), call()]];
    let env = [("ALP__WORKGROUP__CAPACITY", "2"), ("ALP__WORKGROUP__TOOLS", r#"["shell"]"#)];
    let t = Team::new(&["alice", "bob", "carol"], scripts, &env);
    t.form(&[&["worker"], &["worker"], &["worker"]], &[]);
    // Running programs is high risk: approved for the whole group here.
    t.wg(0, &["policy", GROUP, "--approvals", "high=0"]).ok();
    let ids: Vec<String> = (0..5).map(|i| t.submit(0, &format!("job {i}"), &["--role", "worker"])).collect();
    wait_until("five tasks running their tools", 60, || {
        ids.iter().all(|id| t.task(0, id)["status"] == "working") && sleepers("317") >= 5
    });
    let start = Instant::now();
    t.wg(0, &["cancel", "--all", GROUP, "--reason", "enough"]).ok();
    for i in 0..3 {
        wait_until("every member to see every task canceled", 30, || {
            ids.iter().all(|id| t.task(i, id)["status"] == "canceled")
        });
    }
    wait_until("every tool process to be gone", 30, || sleepers("317") == 0);
    eprintln!("canceled 5 tasks on 3 members and stopped their tools in {:?}", start.elapsed());
    // Nothing runs on after cancel: no spend is accepted for them.
    std::thread::sleep(Duration::from_millis(500));
    for id in &ids {
        assert_eq!(t.task(0, id)["reason"], "enough");
    }
}

/// The ids of member `i`'s events, in fold order.
fn event_ids(t: &Team, i: usize) -> Vec<String> {
    t.log(i).iter().map(|e| e["id"].as_str().unwrap().to_owned()).collect()
}

#[test]
fn three_members_apart_each_write_then_converge_on_one_state() {
    let mut t = Team::new(&["alice", "bob", "carol"], vec![vec![], vec![], vec![]], &[]);
    t.form(&[&["lead"], &["research"], &["writer"]], &[]);
    // Apart: each member writes while the other two are down.
    t.stop(1);
    t.stop(2);
    t.wg(0, &["note", GROUP, "alice alone"]).ok();
    t.wg(0, &["card", GROUP]).ok();
    t.stop(0);
    t.start(1);
    t.wg(1, &["note", GROUP, "bob alone"]).ok();
    t.stop(1);
    t.start(2);
    t.wg(2, &["note", GROUP, "carol alone"]).ok();
    t.wg(2, &["cancel", "--all", GROUP]).fails(2, &["does not accept that", "only an admin"]);
    // Together again.
    t.start(0);
    t.start(1);
    wait_until("the three logs to be the same", 60, || {
        let a = event_ids(&t, 0);
        // create, 2 cards, 2 invites, 2 joins, 3 notes (carol's refused
        // cancel is never written).
        a.len() == 10 && a == event_ids(&t, 1) && a == event_ids(&t, 2)
    });
    // The same events fold to the same state everywhere.
    let views: Vec<serde_json::Value> = (0..3).map(|i| t.status(i)).collect();
    for v in &views[1..] {
        for key in ["events", "refused_events", "spent_tokens", "budget"] {
            assert_eq!(v[key], views[0][key], "{key}");
        }
        let tasks = |v: &serde_json::Value| {
            v["tasks"].as_array().unwrap().iter().map(|t| (t["id"].clone(), t["status"].clone())).collect::<Vec<_>>()
        };
        assert_eq!(tasks(v), tasks(&views[0]));
        let roster = |v: &serde_json::Value| {
            v["members"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| (m["node_id"].clone(), m["status"].clone(), m["roles"].clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(roster(v), roster(&views[0]));
    }
    t.wg(0, &["verify", GROUP]).ok();
}

/// A node killed and started again on its address answers its previous
/// life's connections with a QUIC stateless reset (its reset key and
/// connection-id key come from its identity), so a peer holding one learns
/// at its next packet that the connection is gone, instead of waiting out
/// the idle timeout.
#[test]
fn a_restarted_node_resets_its_previous_connections_at_once() {
    let mut t = Team::new(&["alice", "bob"], vec![vec![], vec![]], &[]);
    let alice = t.key(0);
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
        let link = t.link_as(&alice, 1).await.unwrap();
        link.ping(1).await.unwrap();
        t.kill(1);
        t.start(1);
        assert!(link.ping(2).await.is_err());
        let why = link.connection().close_reason();
        assert!(matches!(why, Some(quinn::ConnectionError::Reset)), "{why:?}");
        // A new connection works at once.
        t.link_as(&alice, 1).await.unwrap().ping(3).await.unwrap();
    });
}
