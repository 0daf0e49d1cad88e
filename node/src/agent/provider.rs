//! The provider trait and the conversation types it speaks.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use serde::Serialize;

/// Who said a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Message {
    pub role: Role,
    pub content: String,
}

impl Message {
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Message { role, content: content.into() }
    }
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct Request {
    pub messages: Vec<Message>,
    pub max_tokens: u32,
    pub temperature: f64,
    pub top_p: f64,
    pub seed: u64,
}

/// Token counts of one reply.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
}

/// Where an in-process model spent its time (absent for remote providers).
#[derive(Debug, Clone, Copy)]
pub struct Timings {
    pub prefill: Duration,
    pub decode: Duration,
}

/// The assistant's reply.
#[derive(Debug, Clone)]
pub struct Reply {
    pub text: String,
    pub usage: Usage,
    /// The reply was cut by `max_tokens` rather than ended by the model.
    pub truncated: bool,
    pub timings: Option<Timings>,
    /// What the reply cost, when known (0 for the local model).
    pub cost: Option<f64>,
}

/// Why a provider failed.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The request cannot work as configured (a refused key, an unknown
    /// model, a prompt too long): the user must change something.
    #[error("{0}")]
    Config(String),
    /// The provider could not be reached, or kept answering 429 or 5xx
    /// after every retry. A fallback provider is tried on this one.
    #[error("{0}")]
    Unavailable(String),
    /// The provider failed while answering (a broken stream, bad data).
    #[error("{0}")]
    Runtime(String),
}

/// A boxed future, so the trait stays object-safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A model that answers conversations.
pub trait Provider: Send + Sync {
    /// The provider's name, as selected with `--provider`.
    fn name(&self) -> &str;
    /// The model it runs.
    fn model(&self) -> &str;
    /// Generates the next assistant message, calling `on_text` with each
    /// piece of text as it arrives. Dropping the future cancels the request.
    fn complete<'a>(
        &'a self,
        request: &'a Request,
        on_text: &'a mut (dyn FnMut(&str) + Send),
    ) -> BoxFuture<'a, Result<Reply, ProviderError>>;
}
