//! The in-process provider: a GGUF model run by `alp-llm` on this machine.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use alp_llm::{Model, SamplerOptions, Step, StopReason};

use crate::provider::{BoxFuture, Delta, Provider, ProviderError, Reply, Request, Role, Timings, Usage};

/// The default model: file name, and how to get it.
pub const DEFAULT_MODEL_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

/// A loaded local model. Loading happens once; every request reuses it.
#[derive(Debug, Clone)]
pub struct LocalProvider {
    model: Arc<Model>,
    name: String,
    path: PathBuf,
}

impl LocalProvider {
    /// Loads the GGUF file at `path`.
    pub fn load(path: &Path) -> Result<Self, alp_llm::LoadError> {
        let model = Model::load(path)?;
        let name = path.file_name().map_or_else(|| model.name.clone(), |n| n.to_string_lossy().into_owned());
        Ok(LocalProvider { model: Arc::new(model), name, path: path.to_owned() })
    }

    /// The loaded model (for its load time and configuration).
    pub fn inner(&self) -> &Model {
        &self.model
    }

    /// The file it was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Provider for LocalProvider {
    fn name(&self) -> &str {
        "local"
    }

    fn model(&self) -> &str {
        &self.name
    }

    fn supports_tools(&self) -> bool {
        false
    }

    fn complete<'a>(
        &'a self,
        request: &'a Request,
        on_delta: &'a mut (dyn FnMut(Delta<'_>) + Send),
    ) -> BoxFuture<'a, Result<Reply, ProviderError>> {
        Box::pin(async move {
            let opts = SamplerOptions {
                temperature: request.temperature as f32,
                top_p: request.top_p as f32,
                seed: request.seed,
            };
            let max_tokens = request.max_tokens as usize;
            // Generation is CPU-bound: it runs on the blocking pool and
            // streams progress and text back. When this future is dropped
            // the receiver goes with it, the next send fails, and
            // generation stops (within one prompt slice or one token).
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Piece>();
            let model = Arc::clone(&self.model);
            let (name, request) = (self.name.clone(), request.clone());
            let job = tokio::task::spawn_blocking(move || {
                // Tokenizing a long prompt takes a while too: here, off
                // the thread that watches for Ctrl-C.
                let prompt = fit(&model, &name, &request)?;
                let generated = model.generate_with(&prompt, &opts, max_tokens, |step| {
                    let piece = match step {
                        Step::Prefill { done, total } => Piece::Prefill(done, total),
                        Step::Text(s) => Piece::Text(s.to_owned()),
                    };
                    tx.send(piece).is_ok()
                });
                generated.map_err(|e| ProviderError::Config(format!("{e}; shorten the prompt")))
            });
            let mut text = String::new();
            while let Some(piece) = rx.recv().await {
                match piece {
                    Piece::Prefill(done, total) => on_delta(Delta::Prefill { done, total }),
                    Piece::Text(s) => {
                        on_delta(Delta::Text(&s));
                        text.push_str(&s);
                    }
                }
            }
            let generation =
                job.await.map_err(|e| ProviderError::Runtime(format!("local model stopped unexpectedly: {e}")))??;
            Ok(Reply {
                text,
                tool_calls: Vec::new(),
                usage: Usage {
                    input_tokens: generation.prompt_tokens as u64,
                    output_tokens: generation.generated_tokens as u64,
                },
                truncated: generation.stop == StopReason::MaxTokens,
                timings: Some(Timings { prefill: generation.prefill, decode: generation.decode }),
                cost: Some(0.0),
            })
        })
    }
}

/// What the generating thread sends back.
enum Piece {
    Prefill(usize, usize),
    Text(String),
}

/// The request's prompt as tokens, checked against the model's context
/// before any work: too long is refused with the numbers, or, when the
/// request allows it, the longest user message is cut at its end until
/// the prompt leaves room for a reply.
fn fit(model: &Model, name: &str, request: &Request) -> Result<Vec<u32>, ProviderError> {
    let context = model.config.context;
    // Room kept for the answer when cutting: max_tokens, but never more
    // than a quarter of the context.
    let reserve = (request.max_tokens as usize).clamp(1, (context / 4).max(1));
    let mut messages: Vec<(alp_llm::Role, String)> = request
        .messages
        .iter()
        .map(|msg| {
            let role = match msg.role {
                Role::System => alp_llm::Role::System,
                Role::User | Role::Tool => alp_llm::Role::User,
                Role::Assistant => alp_llm::Role::Assistant,
            };
            (role, msg.content.clone())
        })
        .collect();
    let render = |messages: &[(alp_llm::Role, String)]| {
        let borrowed: Vec<(alp_llm::Role, &str)> = messages.iter().map(|(r, s)| (*r, s.as_str())).collect();
        model.chat.render(&model.tokenizer, &borrowed)
    };
    let mut prompt = render(&messages);
    if prompt.len() < context {
        return Ok(prompt);
    }
    let refuse = |n: usize| {
        ProviderError::Config(format!(
            "the prompt is {n} tokens but the local model ({name}) reads at most {context}: shorten the input, \
             use a model with a longer context, or pass --truncate to cut the longest message to fit"
        ))
    };
    if !request.truncate {
        return Err(refuse(prompt.len()));
    }
    let Some(longest) = messages
        .iter()
        .enumerate()
        .filter(|(_, (r, _))| *r == alp_llm::Role::User)
        .max_by_key(|(_, (_, s))| s.len())
        .map(|(i, _)| i)
    else {
        return Err(refuse(prompt.len()));
    };
    let tokens = model.tokenizer.encode(&messages[longest].1);
    let mut keep = tokens.len();
    // Cutting changes the token count a little at the seam: a few rounds.
    for _ in 0..4 {
        let over = (prompt.len() + reserve).saturating_sub(context);
        if over == 0 || keep == 0 {
            break;
        }
        keep = keep.saturating_sub(over + 8);
        messages[longest].1 =
            format!("{}\n[... cut to fit the model's context]", model.tokenizer.decode(&tokens[..keep]));
        prompt = render(&messages);
    }
    tracing::warn!(
        from = tokens.len(),
        to = keep,
        "the longest message was cut to fit the model's context (--truncate)"
    );
    if prompt.len() + reserve > context { Err(refuse(prompt.len())) } else { Ok(prompt) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::Message;

    /// The default model, when `ALP_TEST_MODEL` names it (scripts/test.sh).
    fn model() -> Option<Model> {
        let Some(path) = std::env::var_os("ALP_TEST_MODEL") else {
            eprintln!("ALP_TEST_MODEL is not set: skipping (scripts/test.sh sets it)");
            return None;
        };
        Some(Model::load(Path::new(&path)).expect("load the test model"))
    }

    fn request(prompt: &str, truncate: bool) -> Request {
        Request {
            messages: vec![Message::new(Role::System, "Be brief."), Message::new(Role::User, prompt)],
            tools: Vec::new(),
            max_tokens: 100,
            temperature: 0.0,
            top_p: 1.0,
            seed: 0,
            truncate,
        }
    }

    #[test]
    fn a_prompt_longer_than_the_context_is_refused_with_the_numbers_or_cut_to_fit() {
        let Some(m) = model() else { return };
        let context = m.config.context;
        let long = format!("Summarise this: {}THE END", "word ".repeat(context + 500));

        let ProviderError::Config(why) = fit(&m, "m.gguf", &request(&long, false)).unwrap_err() else {
            panic!("expected a configuration error")
        };
        assert!(why.contains(&format!("reads at most {context}")), "{why}");
        assert!(why.contains("--truncate") && why.contains("m.gguf"), "{why}");

        let cut = fit(&m, "m.gguf", &request(&long, true)).unwrap();
        assert!(cut.len() + 100 <= context, "{} tokens leave no room for the answer", cut.len());
        assert!(cut.len() + 200 > context, "{} tokens: cut far more than needed", cut.len());
        let text = m.tokenizer.decode(&cut);
        assert!(text.starts_with("system\nBe brief.\n"), "the template survives: {text:.80}");
        assert!(text.contains("Summarise this:") && !text.contains("THE END"), "the end goes, the start stays");
        assert!(text.contains("[... cut to fit the model's context]"));

        // A prompt that fits is left alone, flag or not.
        assert_eq!(fit(&m, "m.gguf", &request("hi", true)).unwrap(), fit(&m, "m.gguf", &request("hi", false)).unwrap());
    }
}
