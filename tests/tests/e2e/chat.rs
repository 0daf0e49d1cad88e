//! `alp chat --once` on the embedded default model, offline.
//!
//! These need the real model: `scripts/test.sh` fetches it and sets
//! `ALP_TEST_MODEL`. Without it they say so and pass vacuously.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::Home;

const PROMPT: &str = "What is the capital of France?";
const ANSWER: &str = "The capital of France is Paris.";

fn test_model() -> Option<PathBuf> {
    let p = std::env::var_os("ALP_TEST_MODEL").map(PathBuf::from);
    if p.is_none() {
        eprintln!("ALP_TEST_MODEL is not set: skipping (scripts/test.sh sets it)");
    }
    p
}

/// A home whose models dir holds the default model, as the fetch script
/// leaves it.
fn home_with_model() -> Option<Home> {
    let model = test_model()?;
    let h = Home::new();
    let dir = h.path().join("models");
    std::fs::create_dir_all(&dir).unwrap();
    std::os::unix::fs::symlink(&model, dir.join("SmolLM2-135M-Instruct.Q4_1.gguf")).unwrap();
    Some(h)
}

#[test]
fn once_prints_only_the_answer_and_is_deterministic() {
    let Some(h) = home_with_model() else { return };
    let first = h.run(&["chat", "--once", PROMPT]);
    assert_eq!(first.ok(), format!("{ANSWER}\n"));
    assert!(!first.stderr.contains('\x1b'), "ANSI codes on a non-terminal: {:?}", first.stderr);
    assert_eq!(h.run(&["chat", "--once", PROMPT]).ok(), first.stdout);
}

#[test]
fn json_has_the_documented_shape() {
    let Some(h) = home_with_model() else { return };
    let v = h.run(&["--json", "chat", "--once", PROMPT]).json();
    assert_eq!(v["answer"], ANSWER);
    assert_eq!(v["error"], serde_json::Value::Null);
    assert!(v["usage"]["input_tokens"].as_u64().unwrap() > 10);
    assert!(v["usage"]["output_tokens"].as_u64().unwrap() >= 7);
    assert_eq!(v["cost"], 0.0);
    assert_eq!(v["tool_calls"], serde_json::json!([]));
    assert!(v.as_object().unwrap().contains_key("session_id"));
}

#[test]
fn stream_json_events_add_up_to_the_answer() {
    let Some(h) = home_with_model() else { return };
    let run = h.run(&["chat", "--once", PROMPT, "--stream-json"]);
    let events: Vec<serde_json::Value> = run.ok().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let (done, texts) = events.split_last().unwrap();
    assert_eq!(done["type"], "done");
    assert_eq!(done["answer"], ANSWER);
    let joined: String = texts.iter().map(|e| e["text"].as_str().unwrap()).collect();
    assert_eq!(joined, ANSWER);
    assert!(texts.len() > 3, "the answer should arrive in pieces");
}

#[test]
fn prompt_from_stdin_and_attached_stdin() {
    let Some(h) = home_with_model() else { return };
    let mut c = h.cmd(&["chat", "--once", "-"]);
    let piped = |mut c: std::process::Command, input: &str| {
        c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        (out.status.code(), String::from_utf8(out.stdout).unwrap())
    };
    assert_eq!(piped(c, PROMPT), (Some(0), format!("{ANSWER}\n")));
    c = h.cmd(&["--json", "chat", "--once", "Answer this question:", "--stdin"]);
    let (code, out) = piped(c, PROMPT);
    assert_eq!(code, Some(0));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(v["usage"]["input_tokens"].as_u64().unwrap() > 35, "stdin was attached: {v}");
}

#[test]
fn an_open_stdin_pipe_is_never_read_with_a_prompt_argument() {
    let Some(h) = home_with_model() else { return };
    let mut c = h.cmd(&["chat", "--once", PROMPT]);
    c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let _keep_open = child.stdin.take();
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "alp chat waited on an open stdin");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(child.wait().unwrap().success());
}

#[test]
fn usage_errors_exit_2_with_what_to_do() {
    let Some(h) = home_with_model() else { return };
    h.run(&["chat", "--once", "  "]).fails(2, &["prompt is empty"]);
    h.run(&["chat", "--once", "hi", "--model-path", "/nonexistent.gguf"])
        .fails(2, &["/nonexistent.gguf", "does not exist"]);
    h.run(&["chat", "--once", "hi", "--temperature=-1"]).fails(2, &["--temperature"]);
    // Interactive mode needs a terminal, and never prompts on a pipe.
    h.run(&["chat"]).fails(2, &["needs a terminal", "alp chat \"PROMPT\""]);
    // `-` with stdin on /dev/null reads an empty prompt.
    h.run(&["chat", "--once", "-"]).fails(2, &["prompt is empty"]);
}

#[test]
fn no_model_lists_the_ways_to_get_one() {
    let h = Home::new();
    let run = h.run(&["chat", "--once", PROMPT]);
    run.fails(2, &["no model available", "alp model pull", "--model-path"]);
    let json = h.run(&["--json", "chat", "--once", PROMPT]);
    assert_eq!(json.code, 2);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert!(v["error"].as_str().unwrap().contains("no model available"), "{v}");
}

#[test]
fn corrupt_or_truncated_models_are_clear_errors() {
    let Some(model) = test_model() else { return };
    let h = Home::new();
    let bytes = std::fs::read(&model).unwrap();
    let truncated = h.path().join("truncated.gguf");
    std::fs::write(&truncated, &bytes[..bytes.len() / 3]).unwrap();
    let run = h.run(&["chat", "--once", PROMPT, "--model-path", truncated.to_str().unwrap()]);
    run.fails(2, &["truncated.gguf", "truncated"]);
    let garbage = h.path().join("garbage.gguf");
    std::fs::write(&garbage, b"GGUF\x03\x00\x00\x00\xff\xff\xff\xff\xff\xff\xff\xff").unwrap();
    let run = h.run(&["chat", "--once", PROMPT, "--model-path", garbage.to_str().unwrap()]);
    run.fails(2, &["garbage.gguf"]);
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
}

#[test]
fn verbose_reports_load_time_and_token_rates() {
    let Some(h) = home_with_model() else { return };
    let run = h.run(&["-v", "chat", "--once", PROMPT]);
    assert_eq!(run.ok(), format!("{ANSWER}\n"));
    for field in ["load_ms=", "prefill_tok_s=", "decode_tok_s=", "prompt_tokens=", "output_tokens="] {
        assert!(run.stderr.contains(field), "stderr lacks {field}: {}", run.stderr);
    }
}

#[test]
fn max_tokens_and_config_apply() {
    let Some(h) = home_with_model() else { return };
    let v = h.run(&["--json", "chat", "--once", "Write a long poem about the sea.", "--max-tokens", "5"]).json();
    assert_eq!(v["usage"]["output_tokens"], 5);
    let v = h.run(&["--json", "--set", "model.max_tokens=3", "chat", "--once", "Write a poem."]).json();
    assert_eq!(v["usage"]["output_tokens"], 3);
    // Seeded sampling: the same seed gives the same text.
    let args = ["chat", "--once", "Name a colour.", "--temperature", "0.9", "--seed", "11", "--max-tokens", "20"];
    assert_eq!(h.run(&args).ok(), h.run(&args).ok());
}

#[test]
fn sigint_stops_the_answer_with_exit_130() {
    let Some(h) = home_with_model() else { return };
    let mut c = h.cmd(&["chat", "--once", "Write a very long story about a lighthouse.", "--stream-json"]);
    c.args(["--max-tokens", "4000"]).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // Wait for the first streamed event: the model is generating.
    let first = lines.next().unwrap().unwrap();
    assert!(first.contains("\"text\""), "{first}");
    let status = crate::common::interrupt(&mut child);
    assert_eq!(status.code(), Some(130));
}

/// On a terminal, an answer cut at `--max-tokens` ends its line before the
/// warning says so.
#[test]
fn the_cut_warning_starts_on_its_own_line() {
    let Some(h) = home_with_model() else { return };
    let line =
        format!("{} --home {} chat --max-tokens 3 '{PROMPT}'", crate::common::alp_bin().display(), h.path().display());
    let out =
        std::process::Command::new("script").args(["-qec", &line, "/dev/null"]).stdin(Stdio::null()).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    let at = text.find("the answer was cut").unwrap_or_else(|| panic!("no warning: {text}"));
    let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    assert!(!text[line_start..at].contains("The capital"), "the warning shares the answer's line: {text}");
}

/// A prompt longer than the model's context is refused before any work,
/// with the numbers and the ways out.
#[test]
fn a_prompt_longer_than_the_context_is_refused_at_once() {
    let Some(h) = home_with_model() else { return };
    let long = format!("Summarise: {}", "word ".repeat(9000));
    let file = h.path().join("long.txt");
    std::fs::write(&file, long).unwrap();
    let mut c = h.cmd(&["chat", "-"]);
    c.stdin(std::fs::File::open(&file).unwrap());
    crate::common::output(c).fails(2, &["tokens but the local model", "reads at most 8192", "--truncate"]);
}

/// A long prompt shows its progress on a terminal, and the bar is gone
/// before the answer.
#[test]
fn a_long_prompt_shows_progress_on_a_terminal() {
    let Some(h) = home_with_model() else { return };
    let words = "Summarise in one line: ".to_owned() + &"the river runs past the mill. ".repeat(100);
    let line =
        format!("{} --home {} chat --max-tokens 5 '{words}'", crate::common::alp_bin().display(), h.path().display());
    let out =
        std::process::Command::new("script").args(["-qec", &line, "/dev/null"]).stdin(Stdio::null()).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("reading the prompt") && text.contains("tokens"), "no progress: {text}");
    // Not on a terminal: no bar.
    let piped = h.run(&["chat", "--max-tokens", "5", &words]);
    assert!(!piped.stderr.contains("reading the prompt"), "{}", piped.stderr);
}

/// When the reader of stdout goes away, generation stops and alp exits
/// quietly, as after a closed pipe anywhere else.
#[test]
fn a_closed_stdout_stops_generation() {
    let Some(h) = home_with_model() else { return };
    let mut c = h.cmd(&["-v", "chat", "Write a very long story about a lighthouse.", "--max-tokens", "4000"]);
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("stdout was closed: stopped generating"), "{err}");
    assert!(!err.contains("generation done"), "the answer ran to its end: {err}");
}
