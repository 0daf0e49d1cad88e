//! Tasks: by member and by role, inputs and outputs as blobs, results
//! seen by every member; the embedded model end to end; budgets.

use super::{GROUP, Team, wait_until};
use crate::fake_provider::{openai_stream, openai_tool_call, openai_tool_call_usage};

#[test]
fn tasks_by_role_and_by_member_with_blob_inputs_and_outputs_seen_by_everyone() {
    let bob = vec![
        openai_tool_call("c1", "write_file", r#"{"path":"notes.md","content":"Owls hunt at night."}"#),
        openai_stream(&["Notes are in notes.md."], 40, 6),
    ];
    let carol = vec![
        openai_tool_call("c1", "read_file", r#"{"path":"notes.md"}"#),
        openai_tool_call("c2", "write_file", r#"{"path":"draft.md","content":"A brief on owls."}"#),
        openai_stream(&["Draft done."], 30, 3),
    ];
    let t = Team::new(&["alice", "bob", "carol"], vec![vec![], bob, carol], &[]);
    t.form(&[&["lead"], &["research"], &["writer"]], &["--briefing", "Owl facts for a brief."]);
    let topic = t.h.path().join("topic.txt");
    std::fs::write(&topic, "owls").unwrap();

    // By role: research goes to bob, the only member with it.
    let research = t.wg_json(
        0,
        &["task", GROUP, "Research owls", "--role", "research", "--input", topic.to_str().unwrap(), "--wait"],
    );
    assert_eq!(research["status"], "completed");
    assert_eq!(research["output"], "Notes are in notes.md.");
    assert_eq!(research["output_by"], "bob");
    let notes = &research["artefacts"][0];
    assert_eq!(notes["name"], "notes.md");
    assert_eq!(notes["size"], 19);
    // bob's model saw the briefing and the input, and only the card's tools.
    let asked = &t.members[1].fake.requests()[0].body;
    let system = asked["messages"][0]["content"].as_str().unwrap();
    assert!(system.contains("Owl facts for a brief.") && system.contains("topic.txt"), "{system}");
    let tools: Vec<&str> =
        asked["tools"].as_array().unwrap().iter().map(|t| t["function"]["name"].as_str().unwrap()).collect();
    assert!(tools.contains(&"write_file") && tools.contains(&"ask_creator") && !tools.contains(&"shell"), "{tools:?}");

    // By member, with bob's artefact as input: carol fetches it from bob.
    let hash = blake3::hash(b"Owls hunt at night.").to_hex().to_string();
    let brief = t.wg_json(0, &["task", GROUP, "Write a brief", "--to", "carol", "--input", &hash, "--wait"]);
    assert_eq!(brief["status"], "completed");
    assert_eq!(brief["output"], "Draft done.");
    let read = &t.members[2].fake.requests()[1].body["messages"];
    assert!(read.to_string().contains("Owls hunt at night."), "carol's read_file did not see the notes: {read}");
    let draft = blake3::hash(b"A brief on owls.").to_hex().to_string();
    assert_eq!(brief["artefacts"][0]["name"], "draft.md");

    // The creator gets the artefacts, verified, with the maker's receipt.
    wait_until("alice to hold the draft", 20, || t.h.run(&["-p", "alice", "blob", "cat", &draft]).code == 0);
    let receipts = t.h.run(&["-p", "alice", "--json", "blob", "receipt", &draft]).json();
    assert_eq!(receipts[0]["sender_name"], "carol");
    assert_eq!(receipts[0]["signature_valid"], true);

    // Every member sees both results.
    for i in 0..3 {
        wait_until("every member to see both results", 20, || {
            let s = t.status(i);
            let tasks = s["tasks"].as_array().unwrap();
            tasks.len() == 2 && tasks.iter().all(|t| t["status"] == "completed")
        });
        let s = t.status(i);
        assert_eq!(s["schema"], "alp.wg.status/1");
        assert_eq!(s["tasks"][1]["output"], "Draft done.");
        assert_eq!(s["spent_tokens"], 40 + 6 + 10 + 5 + 10 + 5 + 10 + 5 + 30 + 3);
    }
    t.wg(0, &["verify", GROUP]).ok();
}

#[test]
fn errors_say_what_to_do() {
    let mut t = Team::new(&["alice", "bob"], vec![vec![], vec![]], &[]);
    t.form(&[&[], &["research"]], &[]);
    t.wg(0, &["task", GROUP, "x", "--role", "poetry"])
        .fails(2, &["nobody in team has the role `poetry`", "alp wg invite team PEER --role poetry"]);
    t.wg(0, &["task", "nope", "x"]).fails(2, &["no workgroup nope here"]);
    t.wg(0, &["invite", GROUP, "mallory"]).fails(2, &["mallory"]);
    t.stop(1);
    t.wg(1, &["status", GROUP]).fails(1, &["not running", "alp -p bob serve"]);
}

#[test]
fn a_group_budget_admits_only_the_tasks_it_covers_and_is_never_overspent() {
    // Every task's model takes 800 tokens a call and would call tools for
    // ever: with 1000 tokens of budget the second call could overrun it,
    // so the task stops after the first.
    let call = || openai_tool_call_usage("c1", "list_dir", r#"{"path":"."}"#, 780, 20);
    let bob: Vec<_> = (0..3).map(|_| call()).collect();
    let t = Team::new(&["alice", "bob"], vec![vec![], bob], &[]);
    t.form(&[&[], &["worker"]], &["--budget-tokens", "3000"]);
    let mut admitted = Vec::new();
    for i in 0..10 {
        let run = t.wg(0, &["task", GROUP, &format!("job {i}"), "--role", "worker", "--budget-tokens", "1000"]);
        if run.code == 0 {
            admitted.push(run.stdout.trim().to_owned());
        } else {
            run.fails(
                3,
                &["the group refused the task", "over the group's budget", "of 3000 tokens left, the task needs 1000"],
            );
        }
    }
    assert_eq!(admitted.len(), 3);
    for id in &admitted {
        wait_until("the admitted tasks to end", 30, || {
            let s = t.task(0, id)["status"].clone();
            s == "failed" || s == "completed"
        });
        let task = t.task(0, id);
        assert_eq!(task["status"], "failed", "{task}");
        assert!(task["reason"].as_str().unwrap().contains("could take this task past its budget"), "{task}");
        assert_eq!(task["spent_tokens"], 800);
    }
    let s = t.status(0);
    assert_eq!(s["spent_tokens"], 2400);
    assert!(s["spent_tokens"].as_u64().unwrap() <= 3000);
    let rejected = s["tasks"].as_array().unwrap().iter().filter(|t| t["status"] == "rejected").count();
    assert_eq!(rejected, 7);
    // Each model call was within the task's tokens: 3 tasks, one call each.
    assert_eq!(t.members[1].fake.requests().len(), 3);
}

#[test]
fn the_embedded_model_runs_a_task_end_to_end_offline() {
    let Some(model) = std::env::var_os("ALP_TEST_MODEL") else {
        eprintln!("ALP_TEST_MODEL is not set: skipping (scripts/test.sh sets it)");
        return;
    };
    let t = Team::new(&["alice", "bob"], vec![vec![], vec![]], &[("OPENAI_BASE_URL", ""), ("OPENAI_API_KEY", "")]);
    let models = t.h.path().join("models");
    std::fs::create_dir_all(&models).unwrap();
    std::os::unix::fs::symlink(model, models.join("SmolLM2-135M-Instruct.Q4_1.gguf")).unwrap();
    t.form(&[&[], &["writer"]], &[]);
    let done = t.wg_json(0, &["task", GROUP, "Write one sentence about owls.", "--to", "bob", "--wait"]);
    assert_eq!(done["status"], "completed");
    assert!(!done["output"].as_str().unwrap().trim().is_empty());
    assert!(done["attempts"][0]["model"].as_str().unwrap().starts_with("local:"), "{done}");
    assert_eq!(done["spent_usd"], 0.0);
    assert!(done["spent_tokens"].as_u64().unwrap() > 10);
}

#[test]
fn a_member_asks_the_creator_and_goes_on_with_the_answer() {
    let bob = vec![
        openai_tool_call("c1", "ask_creator", r#"{"question":"How long should it be?"}"#),
        openai_stream(&["A short brief."], 5, 3),
    ];
    let t = Team::new(&["alice", "bob"], vec![vec![], bob], &[]);
    t.form(&[&[], &["writer"]], &[]);
    let id = t.submit(0, "Write a brief", &["--role", "writer"]);
    wait_until("the question", 20, || t.task(0, &id)["status"] == "input-required");
    assert_eq!(t.task(0, &id)["question"], "How long should it be?");
    t.h.run(&["-p", "alice", "wg", "reply", &id[..10], "Keep it short."]).ok();
    wait_until("the answer", 20, || t.task(0, &id)["status"] == "completed");
    assert_eq!(t.task(0, &id)["output"], "A short brief.");
    // bob's model got the answer as the tool's result.
    let second = t.members[1].fake.requests()[1].body["messages"].to_string();
    assert!(second.contains("Keep it short."), "{second}");
    // Only a task waiting for an answer takes one.
    t.h.run(&["-p", "alice", "wg", "reply", &id[..10], "again"]).fails(2, &["not waiting for an answer"]);
}

#[test]
fn ping_pong_delegation_ends_as_failed_with_loop_detected() {
    // bob hands "ping" to carol, who hands "pong" back to bob, who hands
    // "ping" to carol again: the group refuses that, and every task of
    // the chain fails with the reason.
    let delegate =
        |goal: &str, to: &str| openai_tool_call("d", "delegate", &format!(r#"{{"goal":"{goal}","member":"{to}"}}"#));
    let bob = vec![
        delegate("ping", "carol"),
        delegate("ping", "carol"),
        openai_stream(&["x"], 1, 1),
        openai_stream(&["y"], 1, 1),
    ];
    let carol = vec![delegate("pong", "bob"), openai_stream(&["z"], 1, 1)];
    let t = Team::new(&["alice", "bob", "carol"], vec![vec![], bob, carol], &[]);
    t.form(&[&[], &["worker"], &["worker"]], &[]);
    let id = t.submit(0, "play", &["--to", "bob"]);
    wait_until("the chain to end", 60, || t.task(0, &id)["status"] == "failed");
    let root = t.task(0, &id);
    assert!(root["reason"].as_str().unwrap().contains("loop detected"), "{root}");
    let tasks = t.status(0)["tasks"].as_array().unwrap().clone();
    assert_eq!(tasks.len(), 4, "{tasks:?}");
    let last = &tasks[3];
    assert_eq!(last["status"], "rejected");
    assert!(last["reason"].as_str().unwrap().starts_with("loop detected"), "{last}");
    assert_eq!(last["depth"], 3);
    for t in &tasks[..3] {
        assert_eq!(t["status"], "failed", "{t}");
    }
}
