//! The tool loop end to end: a scripted provider calls tools, `alp` runs
//! them in the profile's workspace and sends the results back.

use crate::common::{Home, Run, output};
use crate::fake_provider::{FakeProvider, anthropic_stream, anthropic_tool_call, openai_stream, openai_tool_call};

const KEY: &str = "sk-agent-test-key-77";

fn openai(h: &Home, fake: &FakeProvider, args: &[&str]) -> Run {
    let mut c = h.cmd(args);
    c.env("OPENAI_BASE_URL", fake.url("/v1")).env("OPENAI_API_KEY", KEY);
    output(c)
}

fn home_with_file(name: &str, content: &str) -> Home {
    let h = Home::new();
    h.init("personal");
    let ws = h.path().join("profiles/personal/workspace");
    std::fs::create_dir_all(&ws).unwrap();
    std::fs::write(ws.join(name), content).unwrap();
    h
}

#[test]
fn a_read_only_tool_runs_and_its_result_goes_back() {
    let h = home_with_file("notes.txt", "the meeting is at noon");
    let fake = FakeProvider::start(vec![
        openai_tool_call("call_7", "read_file", r#"{"path":"notes.txt"}"#),
        openai_stream(&["It is at noon."], 30, 5),
    ]);
    let run = openai(&h, &fake, &["--json", "chat", "--once", "When is the meeting?"]);
    let v = run.json();
    assert_eq!(v["answer"], "It is at noon.");
    assert_eq!(
        v["tool_calls"],
        serde_json::json!([{"name": "read_file", "arguments": {"path": "notes.txt"}, "ok": true}])
    );
    assert_eq!(v["usage"], serde_json::json!({"input_tokens": 40, "output_tokens": 10}));
    assert!(run.stderr.contains("tool: read_file"), "{}", run.stderr);

    let reqs = fake.requests();
    assert_eq!(reqs.len(), 2);
    let names: Vec<&str> =
        reqs[0].body["tools"].as_array().unwrap().iter().map(|t| t["function"]["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "read_file",
            "list_dir",
            "search_files",
            "write_file",
            "edit_file",
            "shell",
            "ask_peer",
            "send_blob",
            "fetch_blob"
        ]
    );
    assert_eq!(reqs[0].body["tools"][0]["function"]["parameters"]["required"], serde_json::json!(["path"]));
    let history = reqs[1].body["messages"].as_array().unwrap();
    assert_eq!(history.len(), 3, "{history:?}");
    assert_eq!(history[1]["tool_calls"][0]["id"], "call_7");
    assert_eq!(history[1]["tool_calls"][0]["function"]["arguments"], r#"{"path":"notes.txt"}"#);
    assert_eq!(
        history[2],
        serde_json::json!({"role": "tool", "tool_call_id": "call_7", "content": "the meeting is at noon"})
    );
    for r in &reqs {
        assert!(!r.body.to_string().contains(KEY), "the key went into a request body");
    }
}

#[test]
fn side_effect_tools_are_denied_in_one_shot_unless_allowed() {
    let h = home_with_file("a.txt", "x");
    let write = || openai_tool_call("c1", "write_file", r#"{"path":"out.txt","content":"done"}"#);
    let fake = FakeProvider::start(vec![write()]);
    let run = openai(&h, &fake, &["chat", "--once", "write it"]);
    run.fails(4, &["write_file", "--allow-tools write_file", "--yes"]);
    let out = h.path().join("profiles/personal/workspace/out.txt");
    assert!(!out.exists());

    let fake = FakeProvider::start(vec![write(), openai_stream(&["Written."], 1, 1)]);
    assert_eq!(openai(&h, &fake, &["chat", "--once", "write it", "--allow-tools", "write_file"]).ok(), "Written.\n");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "done");
    // The failing result of a tool goes back to the model, which carries on.
    let fake = FakeProvider::start(vec![
        openai_tool_call("c2", "read_file", r#"{"path":"../../etc/passwd"}"#),
        openai_stream(&["Cannot."], 1, 1),
    ]);
    let run = openai(&h, &fake, &["--json", "chat", "--once", "read it", "--yes"]);
    assert_eq!(run.json()["tool_calls"][0]["ok"], false);
    let tool_msg = &fake.requests()[1].body["messages"][2];
    assert!(tool_msg["content"].as_str().unwrap().contains("outside the workspace"), "{tool_msg}");
}

#[test]
fn the_turn_limit_stops_with_its_own_exit_code() {
    let h = home_with_file("a.txt", "x");
    let call = || openai_tool_call("c", "list_dir", "{}");
    let fake = FakeProvider::start(vec![call(), call(), call()]);
    openai(&h, &fake, &["chat", "--once", "loop", "--max-turns", "2"]).fails(3, &["2 model turns", "--max-turns"]);
    assert_eq!(fake.requests().len(), 2);
}

#[test]
fn denied_tools_are_never_offered() {
    let h = home_with_file("a.txt", "x");
    let fake = FakeProvider::start(vec![openai_stream(&["ok"], 1, 1)]);
    openai(&h, &fake, &["--set", "agent.deny_tools=[\"shell\", \"write_file\"]", "chat", "--once", "hi"]).ok();
    let tools = fake.requests()[0].body["tools"].to_string();
    assert!(
        !tools.contains("\"shell\"") && !tools.contains("\"write_file\"") && tools.contains("read_file"),
        "{tools}"
    );
}

#[test]
fn anthropic_tool_use_round_trip() {
    let h = home_with_file("todo.md", "- buy milk");
    let fake = FakeProvider::start(vec![
        anthropic_tool_call("toolu_1", "search_files", r#"{"text":"milk"}"#),
        anthropic_stream(&["Milk is on the list."], 20, 6),
    ]);
    let mut c = h.cmd(&["--json", "chat", "--once", "Is milk on my list?"]);
    c.env("ANTHROPIC_BASE_URL", fake.url("")).env("ANTHROPIC_API_KEY", KEY);
    let v = output(c).json();
    assert_eq!(v["answer"], "Milk is on the list.");
    let reqs = fake.requests();
    assert_eq!(reqs[0].body["tools"][2]["name"], "search_files");
    assert!(reqs[0].body["tools"][2]["input_schema"]["properties"]["text"].is_object());
    let msgs = reqs[1].body["messages"].as_array().unwrap();
    assert_eq!(
        msgs[1]["content"][0],
        serde_json::json!({"type": "tool_use", "id": "toolu_1", "name": "search_files", "input": {"text": "milk"}})
    );
    assert_eq!(msgs[2]["role"], "user");
    assert_eq!(msgs[2]["content"][0]["type"], "tool_result");
    assert_eq!(msgs[2]["content"][0]["tool_use_id"], "toolu_1");
    assert_eq!(msgs[2]["content"][0]["content"], "todo.md:1: - buy milk");
}

#[test]
fn stream_json_reports_tool_events() {
    let h = home_with_file("n.txt", "42");
    let fake = FakeProvider::start(vec![
        openai_tool_call("c", "read_file", r#"{"path":"n.txt"}"#),
        openai_stream(&["42"], 1, 1),
    ]);
    let run = openai(&h, &fake, &["chat", "--once", "n?", "--stream-json"]);
    let kinds: Vec<String> = run
        .ok()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(kinds, ["tool_call", "tool_result", "text", "done"]);
}

/// `alp chat` on a pseudo-terminal made by `script(1)`, against `fake`,
/// typing `lines` one by one; what the terminal showed (`None`: no script(1)).
fn repl(h: &Home, fake: &FakeProvider, lines: &[&str]) -> Option<String> {
    use std::io::Write;
    if std::process::Command::new("script").arg("--version").output().is_err() {
        eprintln!("script(1) is not installed: skipping");
        return None;
    }
    let alp = crate::common::alp_bin().display().to_string();
    let cmd = format!("{alp} --home {} chat", h.path().display());
    let mut c = std::process::Command::new("script");
    c.args(["-qec", &cmd, "/dev/null"])
        .env("OPENAI_BASE_URL", fake.url("/v1"))
        .env("OPENAI_API_KEY", KEY)
        .env_remove("ALP_HOME")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    for line in lines {
        std::thread::sleep(std::time::Duration::from_millis(700));
        stdin.write_all(format!("{line}\r").as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The interactive REPL, on a pseudo-terminal made by `script(1)`.
#[test]
fn the_repl_answers_keeps_history_and_asks_before_side_effects() {
    let h = home_with_file("a.txt", "x");
    let fake = FakeProvider::start(vec![
        openai_stream(&["Hi there."], 1, 1),
        openai_tool_call("c", "write_file", r#"{"path":"b.txt","content":"y"}"#),
        openai_stream(&["Not written."], 1, 1),
    ]);
    let Some(text) = repl(&h, &fake, &["hello", "write b.txt", "n", "/session", "/help", "/exit"]) else { return };
    assert!(text.contains("Hi there."), "{text}");
    // The side-effect call was put to the user, who said no.
    assert!(text.contains("allow SideEffect tool write_file"), "{text}");
    assert!(!h.path().join("profiles/personal/workspace/b.txt").exists());
    assert!(text.contains("session: 20"), "{text}");
    assert!(text.contains("/cost     tokens and dollars"), "/help lists the commands: {text}");
    let history = std::fs::read_to_string(h.path().join("profiles/personal/chat_history")).unwrap();
    assert!(history.contains("hello") && history.contains("write b.txt"), "{history}");
}

/// `--workspace` (and `agent.workspace`) moves where tools work; the
/// workspace shows in `--json` and `profile show`.
#[test]
fn tools_work_where_the_workspace_says_and_it_is_shown() {
    let h = home_with_file("a.txt", "x");
    let project = h.path().join("project");
    std::fs::create_dir(&project).unwrap();
    let write = || openai_tool_call("c1", "write_file", r#"{"path":"out.txt","content":"here"}"#);
    let fake = FakeProvider::start(vec![write(), openai_stream(&["Written."], 1, 1)]);
    let dir = project.to_str().unwrap();
    let v =
        openai(&h, &fake, &["--json", "chat", "write it", "--allow-tools", "write_file", "--workspace", dir]).json();
    assert_eq!(v["workspace"], dir);
    assert_eq!(std::fs::read_to_string(project.join("out.txt")).unwrap(), "here");
    assert!(!h.path().join("profiles/personal/workspace/out.txt").exists());
    // The profile's default, shown.
    let shown = h.run(&["profile", "show", "--json"]).json();
    assert!(shown["workspace"].as_str().unwrap().ends_with("profiles/personal/workspace"), "{shown}");
    h.run(&["config", "set", "agent.workspace", dir]).ok();
    assert_eq!(h.run(&["profile", "show", "--json"]).json()["workspace"], dir);
    let fake = FakeProvider::start(vec![openai_stream(&["ok"], 1, 1)]);
    openai(&h, &fake, &["chat", "hi", "--workspace", "/nonexistent/dir"]).fails(2, &["not a directory"]);
}

/// Tool names given by the user are checked before any model is called
/// (this home has no model at all), with the name meant; so are providers.
#[test]
fn mistyped_tool_and_provider_names_get_the_name_meant() {
    let h = Home::new();
    h.init("personal");
    h.run(&["chat", "hi", "--allow-tools", "read_file,reed_fil"])
        .fails(2, &["--allow-tools: there is no tool \"reed_fil\"", "did you mean \"read_file\"", "write_file"]);
    h.run(&["chat", "hi", "--provider", "opnai"]).fails(2, &["unknown provider \"opnai\"", "did you mean \"openai\""]);
    let r = h.run(&["--set", "agent.deny_tools=[\"shel\"]", "chat", "hi", "--provider", "nope"]);
    assert!(r.stderr.contains("agent.deny_tools: there is no tool \"shel\"; did you mean \"shell\""), "{}", r.stderr);
}

/// In the REPL, "always" lets a tool run without asking for the rest of
/// the session, and `/model NAME` switches the model mid-conversation.
#[test]
fn the_repl_remembers_always_and_switches_models() {
    let h = home_with_file("a.txt", "x");
    let fake = FakeProvider::start(vec![
        openai_tool_call("c1", "write_file", r#"{"path":"b.txt","content":"1"}"#),
        openai_stream(&["First written."], 1, 1),
        openai_tool_call("c2", "write_file", r#"{"path":"c.txt","content":"2"}"#),
        openai_stream(&["Second written."], 1, 1),
        openai_stream(&["From the other model."], 1, 1),
    ]);
    let lines = ["write b", "a", "write c", "/model gpt-other", "/model nosuch.gguf", "hello", "/model", "/exit"];
    let Some(text) = repl(&h, &fake, &lines) else { return };
    let ws = h.path().join("profiles/personal/workspace");
    assert_eq!(std::fs::read_to_string(ws.join("b.txt")).unwrap(), "1");
    assert_eq!(std::fs::read_to_string(ws.join("c.txt")).unwrap(), "2", "{text}");
    assert_eq!(text.matches("[a]lways this session").count(), 1, "asked once: {text}");
    assert!(text.contains("tool write_file runs: allowed for this session"), "{text}");
    assert!(text.contains("now answering: provider openai, model gpt-other"), "{text}");
    assert!(text.contains("nosuch.gguf"), "a bad switch says why and keeps the model: {text}");
    assert!(text.contains("From the other model.") && text.contains("provider openai, model gpt-other"), "{text}");
    let models: Vec<String> =
        fake.requests().iter().map(|r| r.body["model"].as_str().unwrap_or_default().to_owned()).collect();
    assert_eq!(models.last().map(String::as_str), Some("gpt-other"), "{models:?}");
    assert_ne!(models[0], "gpt-other");
}
