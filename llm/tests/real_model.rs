//! Tests against the real default model (SmolLM2-135M-Instruct Q4_1).
//!
//! `scripts/test.sh` fetches the model and sets `ALP_TEST_MODEL`; without
//! it (a bare `cargo test`) these tests say so and pass vacuously.

use std::path::PathBuf;
use std::sync::OnceLock;

use alp_llm::{Model, Role, SamplerOptions, StopReason};

fn model_path() -> Option<PathBuf> {
    match std::env::var_os("ALP_TEST_MODEL") {
        Some(p) => Some(PathBuf::from(p)),
        None => {
            eprintln!("ALP_TEST_MODEL is not set: skipping (scripts/test.sh sets it)");
            None
        }
    }
}

fn model() -> Option<&'static Model> {
    static M: OnceLock<Option<Model>> = OnceLock::new();
    M.get_or_init(|| model_path().map(|p| Model::load(&p).expect("load the test model"))).as_ref()
}

#[derive(serde::Deserialize)]
struct Case {
    text: String,
    ids: Vec<u32>,
}

#[test]
fn tokenizer_matches_the_reference_implementation() {
    let Some(m) = model() else { return };
    let cases: Vec<Case> = serde_json::from_str(include_str!("fixtures/smollm2_tokens.json")).unwrap();
    for c in &cases {
        assert_eq!(m.tokenizer.encode(&c.text), c.ids, "encoding {:?}", c.text);
    }
}

#[test]
fn every_vocabulary_token_round_trips_as_text() {
    let Some(m) = model() else { return };
    let mut checked = 0;
    for id in 0..m.tokenizer.len() as u32 {
        let Ok(text) = std::str::from_utf8(m.tokenizer.token_bytes(id)) else { continue };
        if text.is_empty() {
            continue; // control tokens
        }
        assert_eq!(m.tokenizer.decode(&m.tokenizer.encode(text)), text, "token {id}");
        checked += 1;
    }
    assert!(checked > 40_000, "only {checked} tokens checked");
}

#[test]
fn greedy_answer_is_fixed_and_deterministic() {
    let Some(m) = model() else { return };
    let prompt = m.chat.render(&m.tokenizer, &[(Role::User, "What is the capital of France?")]);
    let run = || {
        let mut out = String::new();
        let g = m
            .generate(&prompt, &SamplerOptions::default(), 64, |s| {
                out.push_str(s);
                true
            })
            .unwrap();
        (out, g.stop)
    };
    let first = run();
    assert_eq!(first, ("The capital of France is Paris.".to_string(), StopReason::EndOfTurn));
    assert_eq!(run(), first);
}

#[test]
fn seeded_sampling_is_deterministic() {
    let Some(m) = model() else { return };
    let prompt = m.chat.render(&m.tokenizer, &[(Role::User, "Name a colour.")]);
    let run = |seed| {
        let opts = SamplerOptions { temperature: 0.8, top_p: 0.95, seed };
        let mut out = String::new();
        m.generate(&prompt, &opts, 24, |s| {
            out.push_str(s);
            true
        })
        .unwrap();
        out
    };
    assert_eq!(run(7), run(7));
}

#[test]
fn truncated_or_corrupt_files_are_clear_errors() {
    let Some(path) = model_path() else { return };
    let bytes = std::fs::read(&path).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.gguf");
    for (what, data) in [
        ("empty", Vec::new()),
        ("header only", bytes[..64].to_vec()),
        ("metadata cut", bytes[..1_000_000].to_vec()),
        ("weights cut", bytes[..bytes.len() / 2].to_vec()),
        ("one byte short", bytes[..bytes.len() - 1].to_vec()),
        ("not gguf", b"PK\x03\x04 a zip file".to_vec()),
    ] {
        std::fs::write(&bad, &data).unwrap();
        let err = Model::load(&bad).expect_err(what).to_string();
        assert!(err.contains("bad.gguf"), "{what}: {err}");
        assert!(err.contains("truncated") || err.contains("not a GGUF"), "{what}: {err}");
    }
    // A corrupted count deep in the header.
    let mut data = bytes[..2_000_000].to_vec();
    data[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
    std::fs::write(&bad, &data).unwrap();
    assert!(Model::load(&bad).is_err());
    let err = Model::load(&dir.path().join("missing.gguf")).unwrap_err().to_string();
    assert!(err.contains("missing.gguf"), "{err}");
}

#[test]
fn a_long_prompt_reports_its_progress_slice_by_slice_and_can_be_stopped_while_read() {
    let Some(m) = model() else { return };
    let text = "word ".repeat(alp_llm::PREFILL_SLICE * 2);
    let prompt = m.chat.render(&m.tokenizer, &[(Role::User, &text)]);
    let mut seen = Vec::new();
    let g = m
        .generate_with(&prompt, &SamplerOptions::default(), 1, |step| {
            if let alp_llm::Step::Prefill { done, total } = step {
                assert_eq!(total, prompt.len());
                seen.push(done);
            }
            true
        })
        .unwrap();
    assert_eq!(g.prompt_tokens, prompt.len());
    let expected: Vec<usize> = (1..=prompt.len().div_ceil(alp_llm::PREFILL_SLICE))
        .map(|i| (i * alp_llm::PREFILL_SLICE).min(prompt.len()))
        .collect();
    assert_eq!(seen, expected);

    // Stopped after the first slice: nothing generated, the rest unread.
    let g = m.generate_with(&prompt, &SamplerOptions::default(), 10, |_| false).unwrap();
    assert_eq!((g.stop, g.generated_tokens, g.prompt_tokens), (StopReason::Cancelled, 0, alp_llm::PREFILL_SLICE));
}
