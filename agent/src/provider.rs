//! The provider trait and the conversation types it speaks.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Who said a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
    /// The result of a tool call, answering an assistant message.
    Tool,
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub role: Role,
    pub content: String,
    /// Tools the assistant asked to run (assistant messages).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// The call this message answers (tool messages).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// The tool failed; `content` says why (tool messages).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub is_error: bool,
}

impl Message {
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Message { role, content: content.into(), tool_calls: Vec::new(), tool_call_id: None, is_error: false }
    }

    /// The result of tool call `id`.
    pub fn tool_result(id: &str, content: impl Into<String>, is_error: bool) -> Self {
        Message { tool_call_id: Some(id.to_owned()), is_error, ..Message::new(Role::Tool, content) }
    }
}

/// A tool the model asked to run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The provider's id for this call, echoed in the result.
    pub id: String,
    pub name: String,
    /// The arguments: a JSON object, or the raw text when the model sent
    /// something that is not JSON (the tool then reports the error).
    pub arguments: Value,
}

/// A tool offered to the model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    /// JSON Schema of the arguments object.
    pub parameters: Value,
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct Request {
    pub messages: Vec<Message>,
    /// Tools the model may call (empty: none).
    pub tools: Vec<ToolSpec>,
    pub max_tokens: u32,
    pub temperature: f64,
    pub top_p: f64,
    pub seed: u64,
    /// A prompt longer than the model's context is cut to fit (the
    /// longest user message loses its end) rather than refused.
    pub truncate: bool,
}

/// What a provider reports while it answers.
#[derive(Debug, Clone, Copy)]
pub enum Delta<'a> {
    /// A piece of the answer's text.
    Text(&'a str),
    /// The prompt is being read: `done` of `total` tokens so far (the
    /// in-process model; remote providers do not say).
    Prefill { done: usize, total: usize },
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
    /// Tools the model asked to run before it can finish.
    pub tool_calls: Vec<ToolCall>,
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
    /// Whether it can call tools (the local model cannot).
    fn supports_tools(&self) -> bool {
        true
    }
    /// Generates the next assistant message, calling `on_delta` with each
    /// piece of text as it arrives (and with prompt progress, where known).
    /// Dropping the future cancels the request.
    fn complete<'a>(
        &'a self,
        request: &'a Request,
        on_delta: &'a mut (dyn FnMut(Delta<'_>) + Send),
    ) -> BoxFuture<'a, Result<Reply, ProviderError>>;
}
