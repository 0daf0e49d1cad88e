//! Governance end to end: a high-risk task waits for a designated
//! approver (not its creator, not a member who merely signs an approval);
//! an unanswered one takes the group's timeout action; a tool call above
//! its task's tier is approved through the log; the group runs at most
//! `max_running` tasks at once, and only submitters submit.

use alp_protocol::envelope::to_cbor;
use alp_workgroup::body::Decision;
use alp_workgroup::store::GroupFiles;
use alp_workgroup::sync::PushRequest;
use alp_workgroup::{Body, Event, EventId};
use serde_bytes::ByteBuf;

use super::{GROUP, Team, wait_until};
use crate::fake_provider::{openai_stream, openai_tool_call};

#[test]
fn a_high_risk_task_waits_for_its_approver_and_runs_once_approved() {
    let alice = vec![
        openai_tool_call("c1", "write_file", r#"{"path":"removed.txt","content":"drafts 1-9"}"#),
        openai_stream(&["Old drafts deleted."], 5, 3),
    ];
    let mut t = Team::new(&["alice", "bob", "carol"], vec![alice, vec![], vec![]], &[]);
    t.form(&[&["lead"], &["research"], &["review"]], &[]);
    t.wg(0, &["policy", GROUP, "--approvers", "carol", "--approvals", "high=1"]).ok();
    let id = t.submit(0, "Delete the old drafts", &["--to", "me", "--tier", "high"]);
    assert_eq!(t.task(0, &id)["status"], "awaiting-approval");
    let shown = t.wg(0, &["status", GROUP]).ok().to_owned();
    assert!(shown.contains("awaiting approval") && shown.contains("high task by me"), "{shown}");

    // Its creator is not an approver (once approvers are named, not even
    // as an admin).
    t.wg(0, &["approve", &id]).fails(2, &["not an approver"]);

    // bob signs an approval with his own key and pushes it: it is a valid
    // event, kept in the log, and it does not count.
    t.stop(1);
    let group_dir = t.events_file(1).parent().unwrap().to_owned();
    let (_, log, _) = GroupFiles::open(&group_dir).unwrap();
    let bob = t.key(1);
    let subject: EventId = id.parse().unwrap();
    let header = log.next_header(bob.verifying_key().into(), vec![subject], 1);
    let body = Body::Approve(Decision { subject: subject.0, reason: "trust me".into() });
    let forged = Event::sign(&bob, header, body).unwrap();
    let push =
        PushRequest { group: log.group().0, events: vec![ByteBuf::from(forged.bytes().to_vec())], evidence: vec![] };
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
        let link = t.link_as(&bob, 0).await.unwrap();
        let answer: alp_workgroup::sync::PushResponse =
            alp_protocol::envelope::from_cbor(&link.call("wg.push", to_cbor(&push)).await.unwrap()).unwrap();
        assert_eq!(answer.added, 1, "{:?}", answer.refused);
    });
    let log = t.log(0);
    let seen = log.iter().find(|e| e["id"] == forged.id().to_string()).expect("kept in the log");
    assert_eq!(seen["refused"], "not an approver of this group", "{seen}");
    assert_eq!(t.task(0, &id)["status"], "awaiting-approval");

    // carol, the approver, approves: it runs.
    wait_until("carol to see the task", 20, || t.task(2, &id)["status"] == "awaiting-approval");
    t.wg(2, &["approve", &id[..10], "--reason", "drafts are in git"]).ok();
    wait_until("the task to complete", 30, || t.task(0, &id)["status"] == "completed");
    let task = t.task(0, &id);
    assert_eq!(task["output"], "Old drafts deleted.");
    assert_eq!(task["approvals"][0]["verdict"], "approved", "{task}");
    assert_eq!(task["approvals"][0]["approved_by"][0], "carol");
    let shown = t.wg(0, &["status", GROUP, &id]).ok().to_owned();
    assert!(shown.contains("approval approved") && shown.contains("carol"), "{shown}");
    // The provenance of what it made names the approval and its event.
    let made = blake3::hash(b"drafts 1-9").to_hex().to_string();
    let p = t.wg_json(0, &["provenance", &made]);
    let approval = &p["steps"][0]["approvals"][0];
    assert_eq!(approval["approved_by"][0], "carol", "{p}");
    assert_eq!(p["steps"][0]["tier"], "high");
    let approve_event = approval["approval_events"][0].as_str().unwrap();
    assert!(t.log(0).iter().any(|e| e["id"] == approve_event && e["kind"] == "approve" && e["author"] == "carol"));
    let text = t.wg(0, &["provenance", &made]).ok().to_owned();
    assert!(text.contains("high task approved") && text.contains("approved by carol"), "{text}");
}

#[test]
fn unanswered_approvals_time_out_and_a_tool_call_waits_for_its_approval() {
    let bob =
        vec![openai_tool_call("c1", "shell", r#"{"argv":["echo","approved-run"]}"#), openai_stream(&["Ran it."], 5, 3)];
    let env = [("ALP__WORKGROUP__TOOLS", r#"["shell"]"#)];
    let t = Team::new(&["alice", "bob"], vec![vec![], bob], &env);
    t.form(&[&["lead"], &["ops"]], &[]);
    t.wg(0, &["policy", GROUP, "--approval-timeout", "2s", "--approvals", "high=1"]).ok();
    // Nobody answers: skipped (the default).
    let skipped = t.submit(0, "Reboot the server", &["--to", "bob", "--tier", "critical"]);
    wait_until("the timeout to skip it", 30, || t.task(0, &skipped)["status"] == "canceled");
    let reason = t.task(0, &skipped)["reason"].as_str().unwrap().to_owned();
    assert!(reason.contains("skipped: nobody approved it within 2s"), "{reason}");
    // With `deny`, it is rejected instead.
    t.wg(0, &["policy", GROUP, "--on-timeout", "deny"]).ok();
    let denied = t.submit(0, "Reboot it again", &["--to", "bob", "--tier", "high"]);
    wait_until("the timeout to deny it", 30, || t.task(0, &denied)["status"] == "rejected");
    assert_eq!(t.task(1, &denied)["approvals"][0]["verdict"], "expired (deny)");

    // A medium task whose agent runs a program (a high-risk tool call):
    // bob asks, alice (an admin, and so an approver) approves, it runs.
    t.wg(0, &["policy", GROUP, "--approval-timeout", "10m"]).ok();
    let id = t.submit(0, "Check the disk", &["--to", "bob"]);
    wait_until("bob to ask for approval", 30, || {
        t.status(0)["pending_approvals"].as_array().is_some_and(|p| p.iter().any(|a| a["kind"] == "tool-call"))
    });
    let pending = t.status(0)["pending_approvals"][0].clone();
    assert_eq!(pending["requester"], "bob");
    assert_eq!(pending["tier"], "high");
    assert!(pending["action"].as_str().unwrap().contains("approved-run"), "{pending}");
    // A tool call is named by its request, not its task: nobody approves
    // a call they have not read.
    t.wg(0, &["approve", &id]).fails(2, &["tool calls waiting", "approved-run"]);
    let request = pending["id"].as_str().unwrap();
    // bob cannot approve his own request.
    t.wg(1, &["approve", request]).fails(2, &["not an approver"]);
    t.wg(0, &["approve", request]).ok();
    wait_until("the task to complete", 30, || t.task(0, &id)["status"] == "completed");
    assert_eq!(t.task(0, &id)["output"], "Ran it.");
    let asked = t.members[1].fake.requests()[1].body["messages"].to_string();
    assert!(asked.contains("approved-run") && !asked.contains("not run"), "the program ran: {asked}");
}

#[test]
fn the_group_runs_at_most_max_running_tasks_and_only_submitters_submit() {
    let bob = vec![openai_stream(&["first done"], 1, 1)];
    let carol = vec![openai_stream(&["second done"], 1, 1)];
    let t = Team::new(&["alice", "bob", "carol"], vec![vec![], bob, carol], &[]);
    t.form(&[&["lead"], &["w"], &["w"]], &[]);
    t.wg(0, &["policy", GROUP, "--max-running", "1", "--submitters", "admins"]).ok();
    wait_until("bob to have the policy", 20, || t.status(1)["policy"]["max_running"] == 1);
    t.wg(1, &["task", GROUP, "Something", "--to", "carol"]).fails(2, &["may not submit"]);
    let a = t.submit(0, "First", &["--to", "bob"]);
    let b = t.submit(0, "Second", &["--to", "carol"]);
    wait_until("both to complete", 60, || {
        t.task(0, &a)["status"] == "completed" && t.task(0, &b)["status"] == "completed"
    });
    // One at a time: the second was assigned only after the first completed.
    let kinds: Vec<String> = t
        .log(0)
        .iter()
        .filter(|e| e["refused"].is_null() && (e["kind"] == "assign" || e["kind"] == "complete"))
        .map(|e| e["kind"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(kinds, ["assign", "complete", "assign", "complete"]);
    let shown = t.wg(0, &["policy", GROUP]).ok().to_owned();
    assert!(shown.contains("max running:   1") && shown.contains("submitters:    admins"), "{shown}");
    // `alp status` shows the running node's live connections.
    let status = t.h.run(&["-p", "alice", "--json", "status"]).json();
    let peers = status["peers"].as_array().unwrap();
    assert!(peers.len() == 2 && peers.iter().all(|p| p["connected"] == true), "{status}");
    assert_eq!(status["transfers"], serde_json::json!([]));
}
