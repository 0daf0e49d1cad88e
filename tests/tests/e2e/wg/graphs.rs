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
    // alice received the brief from carol: carol's signed receipt, checked.
    let receipt = &t.wg_json(0, &["provenance", &brief])["steps"][0]["artefacts"][0]["receipts"][0];
    assert_eq!(receipt["from"], "carol", "{receipt}");
    assert_eq!(receipt["signature_valid"], true);
    assert!(text.contains("received from carol") && text.contains("receipt signature valid"), "{text}");
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
    // The provenance holds on its own from the exported log, and not from
    // a tampered one.
    let p = t.h.run(&["--json", "wg", "provenance", &brief, "--file", file.to_str().unwrap()]).json();
    assert_eq!(p["steps"].as_array().unwrap().len(), 2, "{p}");
    t.h.run(&["wg", "provenance", &brief, "--file", bad.to_str().unwrap()]).fails(1, &["does not check out"]);
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

/// The dashboard in a real browser: the group's task graph renders; a
/// change in the group appears without a reload; a peer's `<script>` in a
/// task's goal is shown as text; an approval made on the page lands in the
/// signed log and the task runs.
#[test]
fn the_dashboard_draws_live_states_and_takes_approvals_in_a_real_browser() {
    let Some(chromium) = crate::browser::chromium() else {
        eprintln!("chromium is not installed: skipping (scripts/test.sh installs it)");
        return;
    };
    let bob = vec![openai_stream(&["Owls are nocturnal."], 1, 1)];
    let carol = vec![openai_stream(&["A brief on owls."], 1, 1), openai_stream(&["Approved work done."], 1, 1)];
    let t = Team::new(&["alice", "bob", "carol"], vec![vec![], bob, carol], &[]);
    t.form(&[&["lead"], &["research"], &["writer"]], &[]);
    t.wg_json(0, &["run", GROUP, "A brief on owls", "--pipeline", "research,writer", "--wait"]);

    let mut c = t.h.cmd(&["-p", "alice", "ui"]);
    c.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::null());
    let mut child = c.spawn().unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line).unwrap();
    let url = line.trim().to_owned();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let mut b = crate::browser::Browser::start(chromium, &t.h.path().join("chromium"));

    b.open(&url);
    assert!(b.eval("document.body.textContent").as_str().unwrap().contains(GROUP));
    b.wait("both peers shown connected", 20, "document.querySelectorAll('tr.peer td.online').length === 2");
    assert!(b.eval("document.body.textContent").as_str().unwrap().contains("none under way"));
    b.open(&format!("{url}g/{}", t.group_id()));
    let paint = b.eval("performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd");
    eprintln!("dashboard: first paint after {paint} ms");
    assert_eq!(b.eval("document.querySelectorAll('g.task.status-completed').length"), 2);
    assert_eq!(b.eval("document.querySelectorAll('line.edge').length"), 1, "the pipeline's edge is drawn");
    assert!(b.eval("document.getElementById('verify').className").as_str() == Some("ok"));
    b.wait("the event stream", 20, "document.body.dataset.stream === 'live'");

    // bob asks for risky work, with markup in its goal: it appears,
    // awaiting approval, without a reload, and as text.
    b.eval("window.sameDocument = true");
    let evil = "Publish <script>document.title='pwned'</script><img src=x onerror=\"document.title='pwned'\">";
    let started = std::time::Instant::now();
    let id = t.submit(1, evil, &["--to", "carol", "--tier", "critical"]);
    b.wait("the approval to appear", 20, "document.querySelectorAll('tr[data-approval]').length === 1");
    eprintln!("dashboard: the new task showed {:?} after the command was run", started.elapsed());
    assert_eq!(b.eval("window.sameDocument"), true, "no reload");
    assert_eq!(b.eval("document.querySelectorAll('#live script, #live img').length"), 0);
    assert!(b.eval("document.getElementById('live').textContent").as_str().unwrap().contains("<script>document.title"));
    assert_ne!(b.eval("document.title"), "pwned");

    // Approved on the page: signed by alice, in the log; the task runs.
    b.eval("document.querySelector('tr[data-approval] input[name=reason]').value = 'fine by me'");
    b.eval("document.querySelector('button[data-decide=approve]').click()");
    b.wait("the page to confirm", 20, "document.getElementById('message').textContent.startsWith('approved')");
    let task = t.task(0, &id);
    assert_eq!(task["approvals"][0]["approved_by"][0], "me", "{task}");
    let log = t.log(0);
    assert!(log.iter().any(|e| e["kind"] == "approve" && e["author"] == "me" && e["refused"].is_null()), "{log:?}");
    let row = format!("document.querySelector('tr[data-task=\"{}\"]')", &id[..12]);
    b.wait("the task to complete on the page", 30, &format!("{row} && {row}.className === 'status-completed'"));
    assert_eq!(b.eval("window.sameDocument"), true, "still no reload");
    drop(b);
    let _ = child.kill();
    let _ = child.wait();
}

/// Raw HTTP to the dashboard: `(status line, body)`.
fn http(addr: &str, request: &str) -> (String, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    std::io::Write::write_all(&mut s, request.as_bytes()).unwrap();
    let mut reply = String::new();
    std::io::Read::read_to_string(&mut s, &mut reply).unwrap();
    let status = reply.lines().next().unwrap_or_default().to_owned();
    let body = reply.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

#[test]
fn the_dashboard_refuses_a_wrong_token_another_host_and_cross_site_decisions() {
    let t = Team::new(&["alice", "bob"], vec![vec![], vec![]], &[]);
    t.form(&[&["lead"], &["research"]], &[]);
    let mut c = t.h.cmd(&["-p", "alice", "wg", "dashboard"]);
    c.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::null());
    let mut child = c.spawn().unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line).unwrap();
    let url = line.trim().trim_start_matches("http://").to_owned();
    let (addr, token) = url.split_once('/').unwrap();
    let token = token.trim_end_matches('/');
    let id = t.submit(1, "Risky", &["--to", "me", "--tier", "critical"]);
    let get = |path: &str, host: &str| http(addr, &format!("GET {path} HTTP/1.1\r\nhost: {host}\r\n\r\n"));
    let (status, body) = get("/not-the-token/", addr);
    assert!(status.starts_with("HTTP/1.1 404") && !body.contains(GROUP), "{status}");
    let (status, _) = get(&format!("/{token}/"), "rebound.example:80");
    assert!(status.starts_with("HTTP/1.1 404"), "another Host (DNS rebinding) gets nothing: {status}");
    let (status, body) = get(&format!("/{token}/"), addr);
    assert!(status.starts_with("HTTP/1.1 200") && body.contains(GROUP), "{status}");
    let post = |origin: &str, kind: &str| {
        let body = format!("{{\"id\":\"{id}\",\"approve\":true}}");
        http(
            addr,
            &format!(
                "POST /{token}/g/{GROUP}/decide HTTP/1.1\r\nhost: {addr}\r\norigin: {origin}\r\ncontent-type: {kind}\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            ),
        )
    };
    assert!(post("http://evil.example", "application/json").0.starts_with("HTTP/1.1 403"));
    assert!(post(&format!("http://{addr}"), "text/plain").0.starts_with("HTTP/1.1 403"), "a simple cross-site form");
    assert_eq!(t.task(0, &id)["status"], "awaiting-approval", "nothing was decided");
    let (status, body) = post(&format!("http://{addr}"), "application/json");
    assert!(status.starts_with("HTTP/1.1 200"), "{status} {body}");
    let _ = child.kill();
    let _ = child.wait();
    assert_ne!(t.task(0, &id)["status"], "awaiting-approval");
}

/// With a member in the `planner` role, `--plan` asks it through tasks
/// of the group (in the signed log, on its model): a proposal with a cycle
/// goes back to it with the reason, the corrected one runs.
#[test]
fn a_planner_member_proposes_the_graph_through_the_group() {
    let cycle = r#"{"tasks": [{"id": "r", "goal": "Research owls", "role": "research", "after": ["w"]},
        {"id": "w", "goal": "Write", "role": "research", "after": ["r"]}]}"#;
    let good = r#"{"tasks": [{"id": "r", "goal": "Research owls", "role": "research"},
        {"id": "w", "goal": "Write it up", "role": "research", "after": ["r"]}]}"#;
    let bob = vec![openai_stream(&["Owls hunt at night."], 1, 1), openai_stream(&["Owls: nocturnal hunters."], 1, 1)];
    let carol = vec![openai_stream(&[cycle], 5, 5), openai_stream(&[good], 5, 5)];
    let t = Team::new(&["alice", "bob", "carol"], vec![vec![], bob, carol], &[]);
    t.form(&[&["lead"], &["research"], &["planner"]], &[]);

    let r = t.wg(0, &["--json", "run", GROUP, "A brief on owls", "--plan", "--yes", "--wait"]);
    let v: serde_json::Value = serde_json::from_str(r.ok()).unwrap();
    assert_eq!(v["output"], "Owls: nocturnal hunters.", "{v}");
    assert!(r.stderr.contains("plan 1 of 3 refused") && r.stderr.contains("cycle"), "{}", r.stderr);
    assert!(t.members[0].fake.requests().is_empty(), "alice's own model was not asked");
    // Two planning tasks went to carol; the second carried the reason.
    let tasks = t.status(0)["tasks"].as_array().unwrap().clone();
    let planning: Vec<&serde_json::Value> = tasks.iter().filter(|t| t["to"] == "carol").collect();
    assert_eq!(planning.len(), 2, "{tasks:?}");
    assert!(planning.iter().all(|t| t["status"] == "completed"));
    assert!(planning[1]["goal"].as_str().unwrap().contains("cycle"), "{}", planning[1]["goal"]);
    assert!(planning[1]["goal"].as_str().unwrap().contains("A brief on owls"));
}

/// A four-task graph (two research steps at once, a merge, a final edit)
/// whose files flow from step to step as blobs; one researcher is killed
/// mid-answer and restarted, and every task still completes exactly once.
#[test]
fn a_four_task_graph_completes_exactly_once_with_a_member_killed_mid_run() {
    let write = |id: &str, path: &str, text: &str| {
        openai_tool_call(id, "write_file", &format!(r#"{{"path":"{path}","content":"{text}"}}"#))
    };
    let alice =
        vec![write("e1", "final.md", "FINAL: owls eat mice and live in barns."), openai_stream(&["Edited."], 9, 2)];
    let bob = vec![write("b1", "diets.md", "Owls eat mice."), openai_stream(&["Diets done."], 5, 2)];
    let carol = vec![
        crate::fake_provider::openai_slow(60, std::time::Duration::from_millis(100)),
        write("c1", "habitats.md", "Owls live in barns."),
        openai_stream(&["Habitats done."], 5, 2),
    ];
    let dave = vec![write("d1", "report.md", "Owls eat mice and live in barns."), openai_stream(&["Merged."], 9, 2)];
    let mut t = Team::new(&["alice", "bob", "carol", "dave"], vec![alice, bob, carol, dave], &[]);
    t.form(&[&["editor"], &["research"], &["research"], &["writer"]], &[]);
    let plan = t.h.path().join("plan.toml");
    std::fs::write(
        &plan,
        "goal = \"A report on owls\"\n\
         [[task]]\nid = \"diets\"\nto = \"bob\"\ngoal = \"Research what owls eat\"\n\
         [[task]]\nid = \"habitats\"\nto = \"carol\"\ngoal = \"Research where owls live\"\n\
         [[task]]\nid = \"merge\"\nrole = \"writer\"\nafter = [\"diets\", \"habitats\"]\ngoal = \"Merge the research\"\n\
         [[task]]\nid = \"edit\"\nrole = \"editor\"\nafter = [\"merge\"]\ngoal = \"Edit the report\"\n",
    )
    .unwrap();
    let steps = t.wg_json(0, &["run", GROUP, "--graph", plan.to_str().unwrap()]);
    let id = |name: &str| {
        let step = steps.as_array().unwrap().iter().find(|s| s["step"] == name).unwrap();
        step["task"].as_str().unwrap().to_owned()
    };

    // carol is killed while her model answers, and comes back.
    wait_until("carol to call her model", 20, || !t.members[2].fake.requests().is_empty());
    t.kill(2);
    t.start(2);
    wait_until("the graph to complete", 60, || t.task(0, &id("edit"))["status"] == "completed");

    let edit = t.task(0, &id("edit"));
    assert_eq!(edit["output"], "Edited.");
    let habitats = t.task(0, &id("habitats"));
    assert_eq!(habitats["attempts"].as_array().unwrap().len(), 2, "carol's first attempt ended with her: {habitats}");
    // Each of the four completed exactly once, as every member sees it.
    for i in 0..4 {
        wait_until("every member to see the graph done", 30, || t.task(i, &id("edit"))["status"] == "completed");
        let log = t.log(i);
        for name in ["diets", "habitats", "merge", "edit"] {
            let done = log
                .iter()
                .filter(|e| e["kind"] == "complete" && e["refused"].is_null() && e["task"] == id(name))
                .count();
            assert_eq!(done, 1, "{name} as member {i} sees it");
        }
    }
    // The files flowed: dave had both research files, alice the report.
    let merged = t.members[3].fake.requests()[0].body["messages"].to_string();
    assert!(
        merged.contains("diets.md") && merged.contains("habitats.md") && merged.contains("Diets done."),
        "{merged}"
    );
    let edited = t.members[0].fake.requests()[0].body["messages"].to_string();
    assert!(edited.contains("report.md") && edited.contains("Merged."), "{edited}");
    // The final file's provenance walks the whole graph.
    let made = blake3::hash(b"FINAL: owls eat mice and live in barns.").to_hex().to_string();
    let p = t.wg_json(0, &["provenance", &made]);
    assert_eq!(p["steps"].as_array().unwrap().len(), 4, "{p}");
}
