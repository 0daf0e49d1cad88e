//! Task graphs: a pipeline whose second step gets the first one's result
//! and files; a fan-out merged by a last step; a failed step failing what
//! waits for it; a graph file checked before anything is submitted.

use super::{GROUP, Team, wait_until};
use crate::fake_provider::{openai_stream, openai_tool_call};

#[test]
fn a_pipeline_hands_each_step_the_results_before_it() {
    let bob = vec![
        openai_tool_call("c1", "write_file", r#"{"path":"notes.md","content":"Owls hunt at night."}"#),
        openai_stream(&["Owls are nocturnal."], 10, 3),
    ];
    let carol = vec![openai_stream(&["A brief: owls hunt by night."], 10, 5)];
    let t = Team::new(&["alice", "bob", "carol"], vec![vec![], bob, carol], &[]);
    t.form(&[&["lead"], &["research"], &["writer"]], &[]);

    let v = t.wg_json(0, &["run", GROUP, "A brief on owls", "--pipeline", "research,writer", "--wait"]);
    assert_eq!(v["status"], "completed", "{v}");
    assert_eq!(v["output"], "A brief: owls hunt by night.");
    assert_eq!(v["output_by"], "carol");
    // carol's model got the goal and bob's result; bob's file was in her workspace.
    let asked = t.members[2].fake.requests()[0].body["messages"].to_string();
    assert!(asked.contains("A brief on owls") && asked.contains("Owls are nocturnal."), "{asked}");
    assert!(asked.contains("notes.md"), "bob's file is among her inputs: {asked}");
    // The log says which task waited for which.
    let status = t.status(0);
    let tasks = status["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 2);
}

#[test]
fn a_fanout_is_merged_and_a_failed_step_fails_what_waits_for_it() {
    let bob = vec![openai_stream(&["Owls: nocturnal."], 1, 1)];
    let carol = vec![openai_stream(&["Bats: echolocation."], 1, 1), openai_stream(&["Both fly at night."], 1, 1)];
    let t = Team::new(&["alice", "bob", "carol"], vec![vec![], bob, carol], &[]);
    t.form(&[&["lead"], &["research"], &["writer"]], &[]);

    let v = t.wg_json(0, &["run", GROUP, "Night animals", "--fanout", "bob,carol", "--then", "writer", "--wait"]);
    assert_eq!(v["output"], "Both fly at night.", "{v}");
    let merged = t.members[2].fake.requests()[1].body["messages"].to_string();
    assert!(merged.contains("Owls: nocturnal.") && merged.contains("Bats: echolocation."), "{merged}");

    // A step refused by its member's model fails; what waits for it fails with it.
    let first = t.submit(0, "Doomed", &["--to", "bob", "--deadline", "1s"]);
    let second = t.submit(0, "After it", &["--role", "writer", "--after", &first]);
    wait_until("the dependent to fail", 30, || t.task(0, &second)["status"] == "failed");
    let reason = t.task(0, &second)["reason"].as_str().unwrap().to_owned();
    assert!(reason.contains("its dependency"), "{reason}");
}

#[test]
fn a_graph_file_is_checked_before_anything_is_submitted() {
    let t = Team::new(&["alice", "bob"], vec![vec![], vec![]], &[]);
    t.form(&[&["lead"], &["research"]], &[]);
    let plan = t.h.path().join("plan.toml");
    std::fs::write(
        &plan,
        "[[task]]\nid = \"a\"\nrole = \"research\"\nafter = [\"b\"]\n[[task]]\nid = \"b\"\nafter = [\"a\"]\n",
    )
    .unwrap();
    t.wg(0, &["run", GROUP, "x", "--graph", plan.to_str().unwrap()]).fails(2, &["cycle"]);
    t.wg(0, &["run", GROUP, "x"]).fails(2, &["--pipeline"]);
    assert_eq!(t.status(0)["tasks"].as_array().unwrap().len(), 0, "nothing was submitted");
}

/// An artefact's provenance: the task that made it, who ran it with which
/// model, and the task before it in the pipeline; an exported log checks
/// out on its own, and a tampered copy does not.
#[test]
fn provenance_names_the_chain_and_an_exported_log_verifies_anywhere() {
    let bob = vec![openai_stream(&["Owls are nocturnal."], 10, 3)];
    let carol = vec![
        openai_tool_call("c1", "write_file", r#"{"path":"brief.md","content":"Owls hunt by night."}"#),
        openai_stream(&["Brief written."], 10, 5),
    ];
    let t = Team::new(&["alice", "bob", "carol"], vec![vec![], bob, carol], &[]);
    t.form(&[&["lead"], &["research"], &["writer"]], &[]);
    let v = t.wg_json(0, &["run", GROUP, "A brief on owls", "--pipeline", "research,writer", "--wait"]);
    assert_eq!(v["output"], "Brief written.", "{v}");
    let brief = blake3::hash(b"Owls hunt by night.").to_hex().to_string();

    let p = t.wg_json(0, &["provenance", &brief]);
    assert_eq!(p["name"], "brief.md");
    let steps = p["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2, "{p}");
    assert_eq!(steps[0]["run_by"], "carol");
    assert!(steps[0]["model"].as_str().unwrap().starts_with("openai:"), "{p}");
    assert_eq!(steps[1]["run_by"], "bob");
    assert_eq!(steps[0]["after"][0]["task"], steps[1]["task"]);
    // A prefix is resolved in alice's store: wait for her copy of the brief.
    wait_until("alice to hold the brief", 30, || t.h.run(&["-p", "alice", "blob", "cat", &brief]).code == 0);
    let text = t.wg(0, &["provenance", &brief[..12]]).ok().to_owned();
    assert!(text.contains("run by carol") && text.contains("run by bob"), "{text}");
    t.wg(0, &["provenance", &"0".repeat(64)]).fails(2, &["not made by a task of any workgroup here"]);

    let file = t.h.path().join("brief-log.bin");
    t.wg(0, &["export", GROUP, file.to_str().unwrap()]).ok();
    let r = t.h.run(&["wg", "verify", "--file", file.to_str().unwrap()]);
    assert!(r.ok().is_empty() && r.stderr.contains("checks out"), "{}", r.stderr);
    t.wg(0, &["export", GROUP, file.to_str().unwrap()]).fails(2, &["exists"]);
    let mut bytes = std::fs::read(&file).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 1;
    let bad = t.h.path().join("tampered.bin");
    std::fs::write(&bad, bytes).unwrap();
    t.h.run(&["wg", "verify", "--file", bad.to_str().unwrap()]).fails(1, &["does not check out"]);
}

/// The planner: this profile's model proposes the graph; a proposal naming
/// a role nobody has is sent back with the reason; the corrected one runs
/// once confirmed (`--yes`), and without a terminal or `--yes` nothing runs.
#[test]
fn a_planned_graph_is_checked_corrected_confirmed_and_run() {
    let bad = r#"{"tasks": [{"id": "r", "goal": "Research owls", "role": "editor"}]}"#;
    let good = r#"{"tasks": [{"id": "r", "goal": "Research owls", "role": "research"},
        {"id": "w", "goal": "Write the brief", "role": "writer", "after": ["r"]}]}"#;
    let alice = vec![openai_stream(&[bad], 5, 5), openai_stream(&[good], 5, 5), openai_stream(&[good], 5, 5)];
    let bob = vec![openai_stream(&["Owls hunt at night."], 1, 1)];
    let carol = vec![openai_stream(&["Brief: owls are nocturnal."], 1, 1)];
    let t = Team::new(&["alice", "bob", "carol"], vec![alice, bob, carol], &[]);
    t.form(&[&["lead"], &["research"], &["writer"]], &[]);

    let r = t.wg(0, &["--json", "run", GROUP, "A brief on owls", "--plan", "--yes", "--wait"]);
    let v: serde_json::Value = serde_json::from_str(r.ok()).unwrap();
    assert_eq!(v["output"], "Brief: owls are nocturnal.", "{v}");
    assert!(
        r.stderr.contains("plan 1 of 3 refused") && r.stderr.contains("no member has the role editor"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("w (role writer, after r): Write the brief"), "the plan is shown: {}", r.stderr);
    let second = t.members[0].fake.requests()[1].body["messages"].to_string();
    assert!(second.contains("no member has the role editor"), "{second}");

    // No terminal and no --yes: shown, not run.
    let before = t.status(0)["tasks"].as_array().unwrap().len();
    t.wg(0, &["run", GROUP, "Again", "--plan"]).fails(4, &["--yes"]);
    assert_eq!(t.status(0)["tasks"].as_array().unwrap().len(), before);
}

/// The headless browser of the Debian packages, if installed.
fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser"]
        .into_iter()
        .find(|b| std::process::Command::new(b).arg("--version").output().is_ok())
}

/// What Chromium renders at `url` (its DOM after the page loaded).
fn rendered(browser: &str, url: &str, profile: &std::path::Path) -> String {
    // Bounded by timeout(1): a hung browser must not hang the suite.
    let out = std::process::Command::new("timeout")
        .args(["60", browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--dump-dom", url])
        .arg(format!("--user-data-dir={}", profile.display()))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The dashboard draws the group's task graph: rendered in a real
/// browser, it shows each task with its status and the edge between them;
/// a wrong token gets nothing.
#[test]
fn the_dashboard_draws_the_task_graph_in_a_real_browser() {
    let Some(browser) = chromium() else {
        eprintln!("chromium is not installed: skipping (scripts/test.sh installs it)");
        return;
    };
    let bob = vec![openai_stream(&["Owls are nocturnal."], 1, 1)];
    let carol = vec![openai_stream(&["A brief on owls."], 1, 1)];
    let t = Team::new(&["alice", "bob", "carol"], vec![vec![], bob, carol], &[]);
    t.form(&[&["lead"], &["research"], &["writer"]], &[]);
    t.wg_json(0, &["run", GROUP, "A brief on owls", "--pipeline", "research,writer", "--wait"]);

    let mut c = t.h.cmd(&["-p", "alice", "wg", "dashboard"]);
    c.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::null());
    let mut child = c.spawn().unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line).unwrap();
    let url = line.trim().to_owned();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let profile = t.h.path().join("chromium");

    let index = rendered(browser, &url, &profile);
    assert!(index.contains(GROUP), "{index}");
    let page = rendered(browser, &format!("{url}g/{}", t.group_id()), &profile);
    let _ = child.kill();
    let _ = child.wait();
    assert!(page.contains("<svg"), "{page}");
    assert_eq!(page.matches("class=\"task status-completed\"").count(), 2, "{page}");
    assert!(page.contains("class=\"edge\" data-from="), "the pipeline's edge is drawn: {page}");
    assert!(page.contains("A brief on owls"), "{page}");
}

#[test]
fn the_dashboard_refuses_a_wrong_token_and_other_addresses() {
    let t = Team::new(&["alice", "bob"], vec![vec![], vec![]], &[]);
    t.form(&[&["lead"], &["research"]], &[]);
    t.wg(0, &["dashboard", "--listen", "0.0.0.0:0"]).fails(2, &["loopback"]);
    let mut c = t.h.cmd(&["-p", "alice", "wg", "dashboard"]);
    c.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::null());
    let mut child = c.spawn().unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line).unwrap();
    let addr = line.trim().trim_start_matches("http://").split('/').next().unwrap().to_owned();
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    std::io::Write::write_all(&mut s, b"GET /not-the-token/ HTTP/1.1\r\nhost: x\r\n\r\n").unwrap();
    let mut reply = String::new();
    std::io::Read::read_to_string(&mut s, &mut reply).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(reply.starts_with("HTTP/1.1 404"), "{reply}");
    assert!(!reply.contains(GROUP));
}
