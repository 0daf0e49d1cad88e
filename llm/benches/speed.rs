//! Prefill at 512, 2,048 and 4,096 tokens and decode (64 tokens) at depths
//! 0, 512 and 2,048, beside llama.cpp's `llama-bench` on the same file and
//! threads when `LLAMA_BENCH` names its binary (`scripts/bench-llm.sh`
//! builds it and runs this); time to first token for 1,000- and 4,000-token
//! prompts; peak RSS.
//!
//!     ALP_TEST_MODEL=$(scripts/fetch-model.sh --dir target/models) cargo bench -p alp-llm --bench speed
//!
//! Prints a Markdown table for docs/BENCHMARKS.md.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use alp_llm::{Model, PREFILL_SLICE};

const PREFILL: [usize; 3] = [512, 2048, 4096];
const DEPTHS: [usize; 3] = [0, 512, 2048];
const DECODE: usize = 64;

fn best(runs: usize, mut f: impl FnMut() -> Duration) -> Duration {
    (0..runs).map(|_| f()).min().unwrap_or_default()
}

/// `n` prompt tokens: plain English text, repeated.
fn tokens(model: &Model, n: usize) -> Vec<u32> {
    let text = "The bicycle stays upright because the rider steers into any lean, so the wheels come back \
                under the centre of mass; the fork's rake and trail help it steer itself. ";
    let mut out = Vec::new();
    while out.len() < n {
        out.extend(model.tokenizer.encode(text));
    }
    out.truncate(n);
    out
}

fn prefill(model: &Model, toks: &[u32]) -> (Duration, alp_llm::model::Context, Vec<f32>) {
    let mut ctx = model.context();
    let t = Instant::now();
    let mut logits = Vec::new();
    for chunk in toks.chunks(PREFILL_SLICE) {
        logits = model.forward(&mut ctx, chunk).unwrap();
    }
    (t.elapsed(), ctx, logits)
}

fn decode(model: &Model, depth: usize) -> Duration {
    let toks = tokens(model, depth.max(1));
    let (_, mut ctx, mut logits) = if depth == 0 {
        let mut ctx = model.context();
        let logits = model.forward(&mut ctx, &toks[..1]).unwrap();
        (Duration::ZERO, ctx, logits)
    } else {
        prefill(model, &toks)
    };
    let t = Instant::now();
    for _ in 0..DECODE {
        let next = alp_llm::sample::argmax(&logits);
        logits = model.forward(&mut ctx, &[next]).unwrap();
    }
    t.elapsed()
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

/// llama-bench's tokens/s per (prompt, generated, depth), if it ran.
fn llama(bin: &Path, model: &Path, threads: usize) -> Vec<(u64, u64, u64, f64)> {
    let mut out = Vec::new();
    let p: Vec<String> = PREFILL.iter().map(ToString::to_string).collect();
    let d: Vec<String> = DEPTHS.iter().map(ToString::to_string).collect();
    let t = threads.to_string();
    let m = model.to_str().unwrap_or_default();
    for args in [
        vec!["-m", m, "-t", &t, "-p", &p.join(","), "-n", "0", "-r", "2", "-o", "json"],
        vec!["-m", m, "-t", &t, "-p", "0", "-n", "64", "-d", &d.join(","), "-r", "2", "-o", "json"],
    ] {
        let Ok(o) = Command::new(bin).args(&args).output() else { continue };
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(&o.stdout) else {
            eprintln!("llama-bench gave no JSON: {}", String::from_utf8_lossy(&o.stderr));
            continue;
        };
        for r in v.as_array().into_iter().flatten() {
            let n = |k: &str| r[k].as_u64().unwrap_or(0);
            out.push((n("n_prompt"), n("n_gen"), n("n_depth"), r["avg_ts"].as_f64().unwrap_or(0.0)));
        }
    }
    out
}

fn main() {
    let Some(path) = std::env::var_os("ALP_TEST_MODEL").map(PathBuf::from) else {
        eprintln!("set ALP_TEST_MODEL to the model file (scripts/fetch-model.sh prints it)");
        std::process::exit(2);
    };
    let model = Model::load(&path).unwrap();
    let threads = rayon::current_num_threads();
    println!("model: {}, {threads} threads\n", model.name);
    let anchor = std::env::var_os("LLAMA_BENCH").map(PathBuf::from);
    let theirs = anchor.as_deref().map(|b| llama(b, &path, threads)).unwrap_or_default();
    // `-- WORDS`: only the rows whose name contains one of them.
    let only: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let wanted = |name: &str| only.is_empty() || only.iter().any(|w| name.contains(w.as_str()));
    let find = |p: u64, g: u64, d: u64| theirs.iter().find(|r| (r.0, r.1, r.2) == (p, g, d)).map(|r| r.3);

    println!("| measure | alp tok/s | llama.cpp tok/s | alp / llama.cpp |");
    println!("|---|---:|---:|---:|");
    let row = |what: String, ours: f64, theirs: Option<f64>| {
        let (t, r) = match theirs {
            Some(x) if x > 0.0 => (format!("{x:.1}"), format!("{:.2}x", ours / x)),
            _ => ("-".to_owned(), "-".to_owned()),
        };
        println!("| {what} | {ours:.1} | {t} | {r} |");
    };
    for n in PREFILL.into_iter().filter(|n| wanted(&format!("prefill {n}"))) {
        let toks = tokens(&model, n);
        let runs = if n > 2048 { 1 } else { 2 };
        let took = best(runs, || prefill(&model, &toks).0);
        row(format!("prefill {n}"), n as f64 / took.as_secs_f64(), find(n as u64, 0, 0));
    }
    let rss = peak_rss_mib();
    for d in DEPTHS.into_iter().filter(|d| wanted(&format!("decode 64 at depth {d}"))) {
        let took = best(2, || decode(&model, d));
        row(format!("decode 64 at depth {d}"), DECODE as f64 / took.as_secs_f64(), find(0, DECODE as u64, d as u64));
    }
    println!();
    for n in [1000, 4000].into_iter().filter(|n| wanted(&format!("time to first token {n}"))) {
        let toks = tokens(&model, n);
        let (took, mut ctx, logits) = prefill(&model, &toks);
        let t = Instant::now();
        model.forward(&mut ctx, &[alp_llm::sample::argmax(&logits)]).unwrap();
        println!("time to first token, {n}-token prompt: {:.2} s", (took + t.elapsed()).as_secs_f64());
    }
    println!("peak RSS after the 4,096-token prefill: {rss:.0} MiB (weights memory-mapped)");
}
