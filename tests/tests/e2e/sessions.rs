//! Chat sessions: recorded per profile, resumed, listed, redacted.

use crate::common::{Home, Run, output};
use crate::fake_provider::{FakeProvider, openai_stream};

const KEY: &str = "sk-session-test-key-99";

fn chat(h: &Home, fake: &FakeProvider, args: &[&str]) -> Run {
    let mut c = h.cmd(args);
    c.env("OPENAI_BASE_URL", fake.url("/v1")).env("OPENAI_API_KEY", KEY);
    output(c)
}

#[test]
fn sessions_are_recorded_continued_and_listed() {
    let h = Home::new();
    h.init("personal");
    let fake = FakeProvider::start(vec![openai_stream(&["Paris."], 5, 2), openai_stream(&["About 2 million."], 9, 4)]);
    let first = chat(&h, &fake, &["--json", "chat", "--once", "Capital of France?"]).json();
    let id = first["session_id"].as_str().unwrap().to_owned();

    let second = chat(&h, &fake, &["--json", "chat", "--once", "Its population?", "--continue"]).json();
    assert_eq!(second["session_id"], id.as_str());
    let sent = &fake.requests()[1].body["messages"];
    assert_eq!(
        sent,
        &serde_json::json!([
            {"role": "user", "content": "Capital of France?"},
            {"role": "assistant", "content": "Paris."},
            {"role": "user", "content": "Its population?"},
        ])
    );

    let list = h.run(&["--json", "sessions", "list"]).json();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["id"], id.as_str());
    assert_eq!(list[0]["messages"], 4);
    assert_eq!(list[0]["title"], "Capital of France?");
    let shown = h.run(&["sessions", "show", &id]);
    assert!(shown.ok().contains("[assistant] About 2 million."), "{}", shown.stdout);
}

#[test]
fn no_session_records_nothing_and_bad_ids_are_refused() {
    let h = Home::new();
    h.init("personal");
    let fake = FakeProvider::start(vec![openai_stream(&["hi"], 1, 1)]);
    let v = chat(&h, &fake, &["--json", "chat", "--once", "hi", "--no-session"]).json();
    assert_eq!(v["session_id"], serde_json::Value::Null);
    assert_eq!(h.run(&["--json", "sessions", "list"]).json(), serde_json::json!([]));
    chat(&h, &fake, &["chat", "--once", "hi", "--continue"]).fails(2, &["no session to continue"]);
    chat(&h, &fake, &["chat", "--once", "hi", "--session", "../../etc"]).fails(2, &["not valid"]);
    chat(&h, &fake, &["chat", "--once", "hi", "--session", "20990101T000000Z-0000"])
        .fails(2, &["no session", "sessions list"]);
}

#[test]
fn secrets_never_reach_the_transcript() {
    let h = Home::new();
    h.init("personal");
    let fake = FakeProvider::start(vec![openai_stream(&["noted"], 1, 1)]);
    let prompt = format!("remember my key {KEY}");
    chat(&h, &fake, &["chat", "--once", &prompt]).ok();
    let dir = h.path().join("profiles/personal/sessions");
    let file = std::fs::read_dir(&dir).unwrap().next().unwrap().unwrap().path();
    let text = std::fs::read_to_string(file).unwrap();
    assert!(!text.contains(KEY), "{text}");
    assert!(text.contains("remember my key [REDACTED]"), "{text}");
}

/// Short ids, the latest by default, removing and pruning.
#[test]
fn short_ids_the_latest_by_default_rm_and_prune() {
    let h = Home::new();
    h.init("personal");
    let fake = FakeProvider::start(vec![openai_stream(&["one"], 1, 1), openai_stream(&["two"], 1, 1)]);
    let a = chat(&h, &fake, &["--json", "chat", "first"]).json()["session_id"].as_str().unwrap().to_owned();
    let b = chat(&h, &fake, &["--json", "chat", "second"]).json()["session_id"].as_str().unwrap().to_owned();
    // `show` without an id: the latest.
    assert!(h.run(&["sessions", "show"]).ok().contains("[assistant] two"));
    // The short random end names a session.
    let short = a.rsplit('-').next().unwrap();
    assert!(h.run(&["sessions", "show", short]).ok().contains("[assistant] one"));
    h.run(&["sessions", "rm", short]).ok();
    let list = h.run(&["--json", "sessions", "ls"]).json();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["id"], b.as_str());
    // Nothing is idle for a day yet; everything is idle for 0 s.
    assert!(h.run(&["--json", "sessions", "prune", "--older-than", "1d"]).json().as_array().unwrap().is_empty());
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert_eq!(h.run(&["--json", "sessions", "prune", "--older-than", "1ms"]).json()[0], b.as_str());
    h.run(&["sessions", "show"]).fails(2, &["no session"]);
}
