//! The in-process provider: a GGUF model run by `alp-llm` on this machine.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use alp_llm::{Model, SamplerOptions, StopReason};

use crate::provider::{BoxFuture, Provider, ProviderError, Reply, Request, Role, Timings, Usage};

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
        on_text: &'a mut (dyn FnMut(&str) + Send),
    ) -> BoxFuture<'a, Result<Reply, ProviderError>> {
        Box::pin(async move {
            let m = &self.model;
            let messages: Vec<(alp_llm::Role, &str)> = request
                .messages
                .iter()
                .map(|msg| {
                    let role = match msg.role {
                        Role::System => alp_llm::Role::System,
                        Role::User | Role::Tool => alp_llm::Role::User,
                        Role::Assistant => alp_llm::Role::Assistant,
                    };
                    (role, msg.content.as_str())
                })
                .collect();
            let prompt = m.chat.render(&m.tokenizer, &messages);
            let opts = SamplerOptions {
                temperature: request.temperature as f32,
                top_p: request.top_p as f32,
                seed: request.seed,
            };
            let max_tokens = request.max_tokens as usize;
            // Generation is CPU-bound: it runs on the blocking pool and
            // streams text back. When this future is dropped the receiver
            // goes with it, the next send fails, and generation stops.
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
            let model = Arc::clone(&self.model);
            let job = tokio::task::spawn_blocking(move || {
                model.generate(&prompt, &opts, max_tokens, |piece| tx.send(piece.to_owned()).is_ok())
            });
            let mut text = String::new();
            while let Some(piece) = rx.recv().await {
                on_text(&piece);
                text.push_str(&piece);
            }
            let generation = job
                .await
                .map_err(|e| ProviderError::Runtime(format!("local model stopped unexpectedly: {e}")))?
                .map_err(|e| ProviderError::Config(format!("{e}; shorten the prompt")))?;
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
