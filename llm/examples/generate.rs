//! Quick manual check: `cargo run --release -p alp-llm --example generate -- MODEL.gguf "prompt"`.
use std::io::Write;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let model = alp_llm::Model::load(std::path::Path::new(&args[1])).unwrap();
    eprintln!("loaded {} in {:?}", model.name, model.load_time);
    let ids = model.chat.render(&model.tokenizer, &[(alp_llm::Role::User, &args[2])]);
    let g = model
        .generate(&ids, &Default::default(), 256, |s| {
            print!("{s}");
            std::io::stdout().flush().ok();
            true
        })
        .unwrap();
    println!();
    eprintln!(
        "prompt {} tok in {:?} ({:.1} tok/s), {} tok in {:?} ({:.1} tok/s)",
        g.prompt_tokens,
        g.prefill,
        g.prompt_tokens as f64 / g.prefill.as_secs_f64(),
        g.generated_tokens,
        g.decode,
        g.generated_tokens as f64 / g.decode.as_secs_f64()
    );
}
