//! `alp chat --once` against the scripted fake provider: both wire formats,
//! selection by environment and config, retries, fallback and every error.

use crate::common::{Home, Run, output};
use crate::fake_provider::{FakeProvider, Script, anthropic_stream, error, openai_stream};

const KEY: &str = "sk-test-DO-NOT-LEAK-4242";

fn run_with(h: &Home, env: &[(&str, &str)], args: &[&str]) -> Run {
    let mut c = h.cmd(args);
    for (k, v) in env {
        c.env(k, v);
    }
    output(c)
}

fn assert_no_secret(run: &Run) {
    assert!(!run.stdout.contains(KEY) && !run.stderr.contains(KEY), "the API key leaked: {run:?}");
}

#[test]
fn openai_from_the_environment_streams_the_answer() {
    let fake = FakeProvider::start(vec![openai_stream(&["Hello", ", ", "world"], 12, 3)]);
    let h = Home::new();
    let env = [("OPENAI_BASE_URL", &*fake.url("/v1")), ("OPENAI_API_KEY", KEY)];
    let run = run_with(&h, &env, &["-vv", "chat", "--once", "Say hello", "--system", "Be brief."]);
    assert_eq!(run.ok(), "Hello, world\n");
    assert!(run.stderr.contains("provider chosen") && run.stderr.contains("openai"), "{}", run.stderr);
    assert_no_secret(&run);
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(r.path, "/v1/chat/completions");
    assert_eq!(r.header("authorization"), Some(&*format!("Bearer {KEY}")));
    assert_eq!(r.body["model"], "gpt-4o-mini");
    assert_eq!(r.body["stream"], true);
    assert_eq!(
        r.body["messages"],
        serde_json::json!([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello"}])
    );
}

#[test]
fn json_reports_usage_from_the_stream() {
    let fake = FakeProvider::start(vec![openai_stream(&["4"], 20, 1)]);
    let h = Home::new();
    let env = [("OPENAI_BASE_URL", &*fake.url("/v1")), ("OPENAI_API_KEY", KEY)];
    let run = run_with(&h, &env, &["--json", "chat", "--once", "2+2?", "--model", "gpt-test"]);
    let v = run.json();
    assert_eq!(v["answer"], "4");
    assert_eq!(v["usage"], serde_json::json!({"input_tokens": 20, "output_tokens": 1}));
    assert_eq!(v["error"], serde_json::Value::Null);
    assert_eq!(fake.requests()[0].body["model"], "gpt-test");
    // Which provider and model answered, said plainly.
    assert_eq!((v["provider"].as_str(), v["model"].as_str()), (Some("openai"), Some("gpt-test")));
}

#[test]
fn anthropic_from_the_environment() {
    let fake = FakeProvider::start(vec![anthropic_stream(&["Bonjour", " !"], 9, 4)]);
    let h = Home::new();
    let env = [("ANTHROPIC_BASE_URL", &*fake.url("")), ("ANTHROPIC_API_KEY", KEY)];
    let run = run_with(&h, &env, &["--json", "chat", "--once", "Greet me", "--system", "In French."]);
    let v = run.json();
    assert_no_secret(&run);
    assert_eq!(v["answer"], "Bonjour !");
    assert_eq!(v["usage"], serde_json::json!({"input_tokens": 9, "output_tokens": 4}));
    let r = &fake.requests()[0];
    assert_eq!(r.path, "/v1/messages");
    assert_eq!(r.header("x-api-key"), Some(KEY));
    assert_eq!(r.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(r.body["system"], "In French.");
    assert_eq!(r.body["messages"], serde_json::json!([{"role": "user", "content": "Greet me"}]));
    assert!(r.body["max_tokens"].as_u64().unwrap() > 0);
}

#[test]
fn ollama_host_gives_an_openai_compatible_provider_without_a_key() {
    let fake = FakeProvider::start(vec![openai_stream(&["hi"], 1, 1)]);
    let h = Home::new();
    let host = fake.addr.to_string();
    let run = run_with(&h, &[("OLLAMA_HOST", &host)], &["chat", "--once", "hi"]);
    assert_eq!(run.ok(), "hi\n");
    let r = &fake.requests()[0];
    assert_eq!((r.path.as_str(), r.header("authorization")), ("/v1/chat/completions", None));
    assert_eq!(r.body["model"], "llama3.2");
}

#[test]
fn rate_limits_and_server_errors_are_retried() {
    let fake = FakeProvider::start(vec![
        Script::Status(429, r#"{"error":{"message":"slow down"}}"#.into(), Some(0)),
        error(500, "boom"),
        openai_stream(&["finally"], 1, 1),
    ]);
    let h = Home::new();
    let env = [("OPENAI_BASE_URL", &*fake.url("/v1")), ("OPENAI_API_KEY", KEY)];
    let run = run_with(&h, &env, &["chat", "--once", "hi"]);
    assert_eq!(run.ok(), "finally\n");
    assert_eq!(fake.requests().len(), 3);
    assert!(run.stderr.contains("retrying"), "{}", run.stderr);
    // The three requests were identical.
    let bodies: Vec<_> = fake.requests().into_iter().map(|r| r.body).collect();
    assert!(bodies.windows(2).all(|w| w[0] == w[1]));
}

#[test]
fn retries_stop_at_max_attempts() {
    let fake =
        FakeProvider::start(vec![error(503, "overloaded"), error(503, "overloaded"), openai_stream(&["x"], 1, 1)]);
    let h = Home::new();
    let env = [("OPENAI_BASE_URL", &*fake.url("/v1")), ("OPENAI_API_KEY", KEY)];
    let run = run_with(&h, &env, &["--set", "model.max_attempts=2", "chat", "--once", "hi"]);
    run.fails(1, &["openai", "after 2 attempts", "503", "overloaded"]);
    assert_eq!(fake.requests().len(), 2);
}

#[test]
fn a_refused_key_says_where_to_set_it() {
    let fake = FakeProvider::start(vec![error(401, "Incorrect API key provided")]);
    let h = Home::new();
    let env = [("OPENAI_BASE_URL", &*fake.url("/v1")), ("OPENAI_API_KEY", KEY)];
    let run = run_with(&h, &env, &["chat", "--once", "hi"]);
    run.fails(2, &["refused the API key", "401", "OPENAI_API_KEY"]);
    assert_no_secret(&run);
    assert_eq!(fake.requests().len(), 1, "a 401 is not retried");
}

#[test]
fn an_unknown_model_is_a_usage_error() {
    let fake = FakeProvider::start(vec![error(404, "The model `nope` does not exist")]);
    let h = Home::new();
    let env = [("OPENAI_BASE_URL", &*fake.url("/v1")), ("OPENAI_API_KEY", KEY)];
    run_with(&h, &env, &["chat", "--once", "hi", "--model", "nope"])
        .fails(2, &["does not know model \"nope\"", "--model"]);
}

#[test]
fn malformed_streams_are_runtime_errors() {
    let h = Home::new();
    for body in ["data: {not json\n\n", "data: {\"choices\":[{\"delta\":{\"content\":\"cut\"}}]}\n\n"] {
        let fake = FakeProvider::start(vec![Script::Sse(body.into())]);
        let env = [("OPENAI_BASE_URL", &*fake.url("/v1")), ("OPENAI_API_KEY", KEY)];
        run_with(&h, &env, &["chat", "--once", "hi"]).fails(1, &["broken stream"]);
    }
    let fake = FakeProvider::start(vec![Script::Sse(
        "event: error\ndata: {\"type\":\"error\",\"error\":{\"message\":\"Overloaded\"}}\n\n".into(),
    )]);
    let env = [("ANTHROPIC_BASE_URL", &*fake.url("")), ("ANTHROPIC_API_KEY", KEY)];
    run_with(&h, &env, &["chat", "--once", "hi"]).fails(1, &["Overloaded"]);
}

#[test]
fn an_unreachable_endpoint_is_reported() {
    // A port nobody listens on: bind, note it, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let h = Home::new();
    let url = format!("http://127.0.0.1:{port}/v1");
    let env = [("OPENAI_BASE_URL", url.as_str()), ("OPENAI_API_KEY", KEY)];
    let run = run_with(&h, &env, &["--set", "model.max_attempts=1", "chat", "--once", "hi"]);
    run.fails(1, &["cannot reach", &url]);
}

#[test]
fn config_providers_default_and_fallback() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let fake = FakeProvider::start(vec![anthropic_stream(&["from backup"], 1, 2)]);
    let h = Home::new();
    h.init("personal");
    let key_file = h.path().join("backup.key");
    std::fs::write(&key_file, format!("{KEY}\n")).unwrap();
    std::fs::set_permissions(&key_file, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let config = h.path().join("profiles/personal/config.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!(
        "\n[providers.main]\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:{port}/v1\"\nmodel = \"m\"\nfallback = \"backup\"\nmax_attempts = 1\n\
         \n[providers.backup]\nkind = \"anthropic\"\nbase_url = \"{}\"\nmodel = \"claude-test\"\napi_key_file = \"{}\"\n",
        fake.url(""),
        key_file.display()
    ));
    std::fs::write(&config, text).unwrap();
    let run = h.run(&["--set", "model.provider=main", "chat", "--once", "hi"]);
    assert_eq!(run.ok(), "from backup\n");
    assert!(run.stderr.contains("fallback"), "{}", run.stderr);
    let r = &fake.requests()[0];
    assert_eq!((r.header("x-api-key"), &r.body["model"]), (Some(KEY), &serde_json::json!("claude-test")));

    // A key file others can read is refused, with the fix.
    std::fs::set_permissions(&key_file, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    h.run(&["chat", "--once", "hi", "--provider", "backup"]).fails(2, &["backup.key", "chmod 600"]);
}

#[test]
fn selection_errors() {
    let h = Home::new();
    let env = [("OPENAI_API_KEY", KEY), ("ANTHROPIC_API_KEY", KEY)];
    run_with(&h, &env, &["chat", "--once", "hi"]).fails(2, &["several providers", "openai", "anthropic", "--provider"]);
    run_with(&h, &env, &["chat", "--once", "hi", "--provider", "nope"])
        .fails(2, &["unknown provider \"nope\"", "local"]);
    let run = run_with(&h, &[], &["chat", "--once", "hi", "--model", "gpt-x"]);
    run.fails(2, &["--model-path"]);
}

#[test]
fn a_silent_provider_is_retried_and_a_slow_turn_times_out() {
    let fake =
        FakeProvider::start(vec![Script::Hang(std::time::Duration::from_secs(5)), openai_stream(&["awake"], 1, 1)]);
    let h = Home::new();
    let env = [("OPENAI_BASE_URL", &*fake.url("/v1")), ("OPENAI_API_KEY", KEY)];
    let run = run_with(&h, &env, &["--set", "model.idle_timeout=1s", "chat", "--once", "hi"]);
    assert_eq!(run.ok(), "awake\n");
    assert!(run.stderr.contains("retrying") && run.stderr.contains("no answer"), "{}", run.stderr);
    assert_eq!(fake.requests().len(), 2);

    // A stream that keeps trickling past model.timeout is cut off.
    let fake = FakeProvider::start(vec![crate::fake_provider::openai_slow(100, std::time::Duration::from_millis(200))]);
    let env = [("OPENAI_BASE_URL", &*fake.url("/v1")), ("OPENAI_API_KEY", KEY)];
    run_with(&h, &env, &["--set", "model.timeout=1s", "chat", "--once", "hi"])
        .fails(1, &["within 1s", "model.timeout"]);
}

/// The prompt is a positional argument: flags go before or after it,
/// `--once` is optional (a prompt given means one shot), `-` reads stdin.
#[test]
fn the_prompt_is_positional_and_flags_go_in_any_order() {
    let fake = FakeProvider::start(vec![
        openai_stream(&["4"], 5, 1),
        openai_stream(&["4"], 5, 1),
        openai_stream(&["4"], 5, 1),
    ]);
    let h = Home::new();
    let env = [("OPENAI_BASE_URL", &*fake.url("/v1")), ("OPENAI_API_KEY", KEY)];
    assert_eq!(run_with(&h, &env, &["chat", "--once", "--max-tokens", "20", "What is 2+2?"]).ok(), "4\n");
    assert_eq!(run_with(&h, &env, &["chat", "What is 2+2?", "--max-tokens", "20"]).ok(), "4\n");
    assert_eq!(run_with(&h, &env, &["chat", "--max-tokens", "20", "What is 2+2?"]).ok(), "4\n");
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 3);
    for r in &reqs {
        assert_eq!(r.body["messages"][0]["content"], "What is 2+2?");
        assert_eq!(r.body["max_tokens"], 20);
    }
    run_with(&h, &env, &["chat", "--once"]).fails(2, &["PROMPT"]);
}

/// On a terminal, a provider chosen by the environment (an API key left
/// set) says so in one line, instead of silently replacing the local model.
#[test]
fn a_provider_from_the_environment_says_so_on_a_terminal() {
    let fake = FakeProvider::start(vec![openai_stream(&["hi"], 1, 1)]);
    let h = Home::new();
    let alp = crate::common::alp_bin();
    let line = format!("{} --home {} chat hello", alp.display(), h.path().display());
    let mut c = std::process::Command::new("script");
    c.args(["-qec", &line, "/dev/null"]);
    c.env("OPENAI_BASE_URL", fake.url("/v1")).env("OPENAI_API_KEY", KEY);
    c.stdin(std::process::Stdio::null());
    let out = c.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("answering with openai (gpt-4o-mini), found in the environment"), "{text}");
    assert!(!text.contains(KEY));
}
