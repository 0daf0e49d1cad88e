//! Load time, prefill and decode speed of the default model.
//!
//!     ALP_TEST_MODEL=$(scripts/fetch-model.sh --dir target/models) cargo bench -p alp-llm --bench generate
//!
//! Prints a Markdown table for docs/BENCHMARKS.md. Baselines measured in the
//! same run: the same model with 8-bit activations (llama.cpp's approach),
//! and the default path on one thread.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use alp_llm::quant::Precision;
use alp_llm::{Model, Role};

const RUNS: usize = 5;
const DECODE_TOKENS: usize = 128;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let Some(path) = std::env::var_os("ALP_TEST_MODEL").map(PathBuf::from) else {
        eprintln!("set ALP_TEST_MODEL to the model file (scripts/fetch-model.sh prints it)");
        std::process::exit(2);
    };
    // Load: median of several loads (the file is in the page cache after the first).
    let loads: Vec<Duration> = (0..RUNS).map(|_| Model::load(&path).unwrap().load_time).collect();
    let mut model = Model::load(&path).unwrap();
    println!("model: {} ({:.1} MB)", model.name, std::fs::metadata(&path).unwrap().len() as f64 / 1e6);
    println!("load time, median of {RUNS}: {:.1} ms\n", median(loads).as_secs_f64() * 1e3);

    let long = "Explain, step by step and in plain words, how a bicycle stays upright while it moves, \
                what the rider does to steer it, why it is hard to balance when standing still, and \
                what role the shape of the front fork plays in all of this.";
    let prompt = model.chat.render(&model.tokenizer, &[(Role::User, long)]);
    println!("| variant | prompt tokens | prefill tok/s | decode tok/s ({DECODE_TOKENS} tokens) |");
    println!("|---|---:|---:|---:|");
    let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    for (label, precision, single) in [
        ("alp default: f32 activations, all cores", Precision::F32, false),
        ("baseline: 8-bit activations (llama.cpp style), all cores", Precision::Int8, false),
        ("baseline: f32 activations, one thread", Precision::F32, true),
    ] {
        model.precision = precision;
        let measure = || {
            let mut pre = Vec::new();
            let mut dec = Vec::new();
            for _ in 0..RUNS {
                // Greedy decoding may stop early at the end of the turn; a
                // fixed count needs the loop to continue, so ignore stops by
                // decoding with forward() directly.
                let mut ctx = model.context();
                let t = Instant::now();
                let mut logits = model.forward(&mut ctx, &prompt).unwrap();
                pre.push(t.elapsed());
                let t = Instant::now();
                for _ in 0..DECODE_TOKENS {
                    let tok = alp_llm::sample::argmax(&logits);
                    logits = model.forward(&mut ctx, &[tok]).unwrap();
                }
                dec.push(t.elapsed());
            }
            (median(pre), median(dec))
        };
        let (pre, dec) = if single { one.install(measure) } else { measure() };
        println!(
            "| {label} | {} | {:.0} | {:.1} |",
            prompt.len(),
            prompt.len() as f64 / pre.as_secs_f64(),
            DECODE_TOKENS as f64 / dec.as_secs_f64()
        );
    }
}
