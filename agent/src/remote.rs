//! HTTP providers: OpenAI-compatible chat completions and the Anthropic
//! Messages API, both streamed as server-sent events.
//!
//! Reliability: a request that gets 429, a 5xx, a refused connection or a
//! timeout is retried (up to `max_attempts` in all) after an exponential
//! backoff with full jitter, or after the server's `Retry-After` when it
//! sends one (capped). Retries happen only before the first byte of an
//! answer; a stream that breaks halfway is an error, never a duplicate.
//! The API key is sent in a header and appears in no log, error or
//! transcript: [`ApiKey`]'s `Debug` prints a placeholder.

use std::fmt;
use std::time::Duration;

use serde_json::{Value, json};

use crate::provider::{BoxFuture, Delta, Message, Provider, ProviderError, Reply, Request, Role, ToolCall, Usage};
use crate::sse::{SseEvent, SseParser};

/// Largest SSE line or event accepted from a provider.
const MAX_EVENT: usize = 1 << 20;
/// Largest error body read for its message.
const MAX_ERROR_BODY: usize = 64 << 10;
/// Largest answer accepted.
const MAX_ANSWER: usize = 16 << 20;
/// Most tool calls accepted in one reply.
const MAX_TOOL_CALLS: usize = 64;
/// Backoff: first delay, and the cap of any delay (including `Retry-After`).
const BACKOFF_BASE: Duration = Duration::from_millis(250);
const BACKOFF_CAP: Duration = Duration::from_secs(20);

/// The wire format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    OpenAi,
    Anthropic,
}

/// An API key. Never printed.
#[derive(Clone)]
pub struct ApiKey(pub String);

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

/// Where to send requests and how.
#[derive(Debug, Clone)]
pub struct RemoteConfig {
    /// The provider's name (`openai`, or a `[providers.NAME]` table).
    pub name: String,
    pub wire: Wire,
    /// Endpoint root: `…/v1` for OpenAI-compatible servers; the host root
    /// for Anthropic (`/v1/messages` is appended).
    pub base_url: String,
    pub model: String,
    pub api_key: Option<ApiKey>,
    /// Where the key is set, for the 401 message.
    pub key_hint: String,
    pub max_attempts: u32,
    /// Longest silence from the server: before its answer starts, a retry;
    /// in the middle of a stream, an error.
    pub idle_timeout: Duration,
}

/// An OpenAI-compatible or Anthropic endpoint.
#[derive(Debug)]
pub struct RemoteProvider {
    cfg: RemoteConfig,
    client: reqwest::Client,
}

impl RemoteProvider {
    pub fn new(cfg: RemoteConfig) -> Result<Self, ProviderError> {
        // reqwest's TLS takes the process's default rustls provider: make
        // it aws-lc-rs, the one provider the whole binary is built with
        // (one installed earlier is kept).
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(cfg.idle_timeout)
            .user_agent(concat!("alp/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ProviderError::Config(format!("cannot set up HTTP for provider {}: {e}", cfg.name)))?;
        Ok(RemoteProvider { cfg, client })
    }

    fn url(&self) -> String {
        let base = self.cfg.base_url.trim_end_matches('/');
        match self.cfg.wire {
            Wire::OpenAi => format!("{base}/chat/completions"),
            Wire::Anthropic if base.ends_with("/v1") => format!("{base}/messages"),
            Wire::Anthropic => format!("{base}/v1/messages"),
        }
    }

    fn body(&self, req: &Request) -> Value {
        match self.cfg.wire {
            Wire::OpenAi => {
                let mut body = json!({
                    "model": self.cfg.model,
                    "messages": req.messages.iter().map(openai_message).collect::<Vec<_>>(),
                    "stream": true,
                    "stream_options": {"include_usage": true},
                    "max_tokens": req.max_tokens,
                    "temperature": req.temperature,
                });
                if !req.tools.is_empty() {
                    body["tools"] = req
                        .tools
                        .iter()
                        .map(|t| json!({"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.parameters}}))
                        .collect();
                }
                body
            }
            Wire::Anthropic => {
                let system: Vec<&str> =
                    req.messages.iter().filter(|m| m.role == Role::System).map(|m| m.content.as_str()).collect();
                let mut body = json!({
                    "model": self.cfg.model,
                    "messages": anthropic_messages(&req.messages),
                    "stream": true,
                    "max_tokens": req.max_tokens,
                    "temperature": req.temperature.min(1.0),
                });
                if !system.is_empty() {
                    body["system"] = Value::String(system.join("\n\n"));
                }
                if !req.tools.is_empty() {
                    body["tools"] = req
                        .tools
                        .iter()
                        .map(|t| json!({"name": t.name, "description": t.description, "input_schema": t.parameters}))
                        .collect();
                }
                body
            }
        }
    }

    /// Sends the request, retrying what is worth retrying; returns the
    /// response once it has a success status.
    async fn send(&self, body: &Value) -> Result<reqwest::Response, ProviderError> {
        let url = self.url();
        let name = &self.cfg.name;
        let attempts = self.cfg.max_attempts.max(1);
        let mut last = String::new();
        for attempt in 1..=attempts {
            let mut rb = self.client.post(&url).header("content-type", "application/json").body(body.to_string());
            rb = match (self.cfg.wire, &self.cfg.api_key) {
                (Wire::OpenAi, Some(k)) => rb.bearer_auth(&k.0),
                (Wire::Anthropic, Some(k)) => rb.header("x-api-key", &k.0),
                (_, None) => rb,
            };
            if self.cfg.wire == Wire::Anthropic {
                rb = rb.header("anthropic-version", "2023-06-01");
            }
            let retry_after = match rb.send().await {
                Ok(resp) if resp.status().is_success() => return Ok(resp),
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let retry_after = resp
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(Duration::from_secs);
                    let message = error_message(read_capped(resp, MAX_ERROR_BODY).await);
                    let retryable = status == 429 || status >= 500;
                    if !retryable {
                        return Err(self.classify(status, &message));
                    }
                    last = format!("HTTP {status}: {message}");
                    retry_after
                }
                Err(e) if e.is_timeout() => {
                    last = format!("no answer from {url} within {}s", self.cfg.idle_timeout.as_secs_f64());
                    None
                }
                Err(e) if e.is_connect() || e.is_request() => {
                    last = format!("cannot reach {url}: {}", error_chain(&e));
                    None
                }
                Err(e) => return Err(ProviderError::Runtime(format!("provider {name}: {}", error_chain(&e)))),
            };
            if attempt < attempts {
                let delay = backoff(attempt, retry_after);
                tracing::warn!(provider = %name, attempt, delay_ms = delay.as_millis() as u64, error = %last, "retrying");
                tokio::time::sleep(delay).await;
            }
        }
        Err(ProviderError::Unavailable(format!(
            "provider {name} failed after {attempts} attempt{}: {last}",
            if attempts == 1 { "" } else { "s" }
        )))
    }

    fn classify(&self, status: u16, message: &str) -> ProviderError {
        let name = &self.cfg.name;
        match status {
            401 | 403 => ProviderError::Config(format!(
                "provider {name} refused the API key (HTTP {status}: {message}); set it in {}",
                self.cfg.key_hint
            )),
            404 => ProviderError::Config(format!(
                "provider {name} does not know model {:?} or the endpoint {} (HTTP 404: {message}); \
                 pick a model with --model, or check base_url",
                self.cfg.model,
                self.url()
            )),
            _ => ProviderError::Config(format!("provider {name} refused the request (HTTP {status}: {message})")),
        }
    }

    async fn stream(
        &self,
        mut resp: reqwest::Response,
        on_delta: &mut (dyn FnMut(Delta<'_>) + Send),
    ) -> Result<Reply, ProviderError> {
        let name = &self.cfg.name;
        let broken = |what: String| ProviderError::Runtime(format!("provider {name} sent a broken stream: {what}"));
        let mut parser = SseParser::new(MAX_EVENT);
        let mut events = Vec::new();
        let mut state = StreamState::default();
        loop {
            let chunk = resp.chunk().await.map_err(|e| broken(error_chain(&e)))?;
            let Some(chunk) = chunk else { break };
            parser.feed(&chunk, &mut events).map_err(|e| broken(e.to_string()))?;
            for ev in events.drain(..) {
                let piece = match self.cfg.wire {
                    Wire::OpenAi => state.openai(&ev),
                    Wire::Anthropic => state.anthropic(&ev),
                }
                .map_err(broken)?;
                if let Some(piece) = piece {
                    on_delta(Delta::Text(&piece));
                    state.text.push_str(&piece);
                    if state.text.len() > MAX_ANSWER {
                        return Err(broken(format!("answer larger than {} MiB", MAX_ANSWER >> 20)));
                    }
                }
            }
            if state.done {
                break;
            }
        }
        if !state.done {
            return Err(broken("it ended before the answer was complete".into()));
        }
        let tool_calls = state.finish_tool_calls().map_err(broken)?;
        Ok(Reply {
            text: state.text,
            tool_calls,
            usage: state.usage,
            truncated: state.truncated,
            timings: None,
            cost: None,
        })
    }
}

#[derive(Default)]
struct StreamState {
    text: String,
    usage: Usage,
    truncated: bool,
    done: bool,
    /// Tool calls being streamed, by the provider's index: (id, name, JSON text).
    calls: Vec<(u64, String, String, String)>,
}

impl StreamState {
    fn call(&mut self, index: u64) -> Result<&mut (u64, String, String, String), String> {
        if let Some(pos) = self.calls.iter().position(|c| c.0 == index) {
            return Ok(&mut self.calls[pos]);
        }
        if self.calls.len() >= MAX_TOOL_CALLS {
            return Err(format!("more than {MAX_TOOL_CALLS} tool calls in one reply"));
        }
        self.calls.push((index, String::new(), String::new(), String::new()));
        let last = self.calls.len() - 1;
        Ok(&mut self.calls[last])
    }

    fn finish_tool_calls(&mut self) -> Result<Vec<ToolCall>, String> {
        let mut calls = std::mem::take(&mut self.calls);
        calls.sort_by_key(|c| c.0);
        calls
            .into_iter()
            .map(|(i, id, name, args)| {
                if name.is_empty() {
                    return Err(format!("tool call {i} has no name"));
                }
                let arguments = match args.trim() {
                    "" => json!({}),
                    text => serde_json::from_str(text).unwrap_or(Value::String(args)),
                };
                let id = if id.is_empty() { format!("call_{i}") } else { id };
                Ok(ToolCall { id, name, arguments })
            })
            .collect()
    }

    fn openai(&mut self, ev: &SseEvent) -> Result<Option<String>, String> {
        if ev.data == "[DONE]" {
            self.done = true;
            return Ok(None);
        }
        let v: Value = serde_json::from_str(&ev.data).map_err(|e| format!("bad JSON in an event ({e})"))?;
        if let Some(err) = v.get("error") {
            return Err(format!("error event: {}", error_message(err.to_string())));
        }
        if let Some(u) = v.get("usage").filter(|u| !u.is_null()) {
            self.usage.input_tokens = u["prompt_tokens"].as_u64().unwrap_or(0);
            self.usage.output_tokens = u["completion_tokens"].as_u64().unwrap_or(0);
        }
        let Some(choice) = v["choices"].get(0) else { return Ok(None) };
        if choice["finish_reason"] == "length" {
            self.truncated = true;
        }
        if let Some(deltas) = choice["delta"]["tool_calls"].as_array() {
            for d in deltas {
                let index = d["index"].as_u64().unwrap_or(0);
                let call = self.call(index)?;
                if let Some(id) = d["id"].as_str() {
                    call.1 = id.to_owned();
                }
                if let Some(name) = d["function"]["name"].as_str() {
                    call.2.push_str(name);
                }
                if let Some(args) = d["function"]["arguments"].as_str() {
                    call.3.push_str(args);
                }
            }
        }
        Ok(choice["delta"]["content"].as_str().filter(|s| !s.is_empty()).map(str::to_owned))
    }

    fn anthropic(&mut self, ev: &SseEvent) -> Result<Option<String>, String> {
        let v: Value = serde_json::from_str(&ev.data).map_err(|e| format!("bad JSON in an event ({e})"))?;
        match v["type"].as_str().unwrap_or(&ev.event) {
            "message_start" => {
                let u = &v["message"]["usage"];
                self.usage.input_tokens = u["input_tokens"].as_u64().unwrap_or(0);
                self.usage.output_tokens = u["output_tokens"].as_u64().unwrap_or(0);
            }
            "content_block_delta" if v["delta"]["type"] == "text_delta" => {
                return Ok(v["delta"]["text"].as_str().map(str::to_owned));
            }
            "content_block_start" if v["content_block"]["type"] == "tool_use" => {
                let index = v["index"].as_u64().unwrap_or(0);
                let block = &v["content_block"];
                let call = self.call(index)?;
                call.1 = block["id"].as_str().unwrap_or("").to_owned();
                call.2 = block["name"].as_str().unwrap_or("").to_owned();
            }
            "content_block_delta" if v["delta"]["type"] == "input_json_delta" => {
                let index = v["index"].as_u64().unwrap_or(0);
                let part = v["delta"]["partial_json"].as_str().unwrap_or("").to_owned();
                self.call(index)?.3.push_str(&part);
            }
            "message_delta" => {
                if let Some(n) = v["usage"]["output_tokens"].as_u64() {
                    self.usage.output_tokens = n;
                }
                if v["delta"]["stop_reason"] == "max_tokens" {
                    self.truncated = true;
                }
            }
            "message_stop" => self.done = true,
            "error" => return Err(format!("error event: {}", error_message(v.to_string()))),
            _ => {}
        }
        Ok(None)
    }
}

impl Provider for RemoteProvider {
    fn name(&self) -> &str {
        &self.cfg.name
    }

    fn model(&self) -> &str {
        &self.cfg.model
    }

    fn complete<'a>(
        &'a self,
        request: &'a Request,
        on_delta: &'a mut (dyn FnMut(Delta<'_>) + Send),
    ) -> BoxFuture<'a, Result<Reply, ProviderError>> {
        Box::pin(async move {
            let body = self.body(request);
            let resp = self.send(&body).await?;
            self.stream(resp, on_delta).await
        })
    }
}

fn openai_message(m: &Message) -> Value {
    match m.role {
        Role::System => json!({"role": "system", "content": m.content}),
        Role::User => json!({"role": "user", "content": m.content}),
        Role::Assistant if m.tool_calls.is_empty() => json!({"role": "assistant", "content": m.content}),
        Role::Assistant => json!({
            "role": "assistant",
            "content": if m.content.is_empty() { Value::Null } else { Value::String(m.content.clone()) },
            "tool_calls": m.tool_calls.iter().map(|c| json!({
                "id": c.id,
                "type": "function",
                "function": {"name": c.name, "arguments": arguments_text(&c.arguments)},
            })).collect::<Vec<_>>(),
        }),
        Role::Tool => json!({"role": "tool", "tool_call_id": m.tool_call_id, "content": m.content}),
    }
}

fn arguments_text(v: &Value) -> String {
    match v {
        Value::String(raw) => raw.clone(),
        other => other.to_string(),
    }
}

/// Anthropic's shape: no system messages in the list, tool calls as
/// `tool_use` blocks, and consecutive tool results as one user message of
/// `tool_result` blocks.
fn anthropic_messages(messages: &[Message]) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    for m in messages {
        match m.role {
            Role::System => {}
            Role::User => out.push(json!({"role": "user", "content": m.content})),
            Role::Assistant => {
                let mut blocks = Vec::new();
                if !m.content.is_empty() {
                    blocks.push(json!({"type": "text", "text": m.content}));
                }
                for c in &m.tool_calls {
                    let input = if c.arguments.is_object() { c.arguments.clone() } else { json!({}) };
                    blocks.push(json!({"type": "tool_use", "id": c.id, "name": c.name, "input": input}));
                }
                out.push(json!({"role": "assistant", "content": blocks}));
            }
            Role::Tool => {
                let block = json!({
                    "type": "tool_result",
                    "tool_use_id": m.tool_call_id,
                    "content": m.content,
                    "is_error": m.is_error,
                });
                match out.last_mut() {
                    Some(last) if last["role"] == "user" && last["content"].is_array() => {
                        if let Some(a) = last["content"].as_array_mut() {
                            a.push(block);
                        }
                    }
                    _ => out.push(json!({"role": "user", "content": [block]})),
                }
            }
        }
    }
    out
}

/// A provider with a fallback, tried when the first is unavailable and has
/// not streamed anything yet.
pub struct WithFallback {
    pub primary: Box<dyn Provider>,
    pub fallback: Box<dyn Provider>,
}

impl fmt::Debug for WithFallback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WithFallback({} -> {})", self.primary.name(), self.fallback.name())
    }
}

impl Provider for WithFallback {
    fn name(&self) -> &str {
        self.primary.name()
    }

    fn model(&self) -> &str {
        self.primary.model()
    }

    fn complete<'a>(
        &'a self,
        request: &'a Request,
        on_delta: &'a mut (dyn FnMut(Delta<'_>) + Send),
    ) -> BoxFuture<'a, Result<Reply, ProviderError>> {
        Box::pin(async move {
            let mut streamed = false;
            let first = {
                let mut tee = |d: Delta<'_>| {
                    streamed |= matches!(d, Delta::Text(_));
                    on_delta(d)
                };
                self.primary.complete(request, &mut tee).await
            };
            match first {
                Err(ProviderError::Unavailable(why)) if !streamed => {
                    tracing::warn!(primary = self.primary.name(), fallback = self.fallback.name(), error = %why, "using the fallback provider");
                    self.fallback.complete(request, on_delta).await
                }
                other => other,
            }
        })
    }
}

/// Exponential backoff with full jitter; the server's `Retry-After` wins
/// when it sends one. Both capped.
fn backoff(attempt: u32, retry_after: Option<Duration>) -> Duration {
    if let Some(d) = retry_after {
        return d.min(BACKOFF_CAP);
    }
    let ceiling = BACKOFF_BASE.saturating_mul(1 << attempt.min(10)).min(BACKOFF_CAP);
    let r = getrandom::u64().unwrap_or(0) % 1000;
    // At least half the ceiling, so retries never hammer back-to-back.
    ceiling / 2 + ceiling / 2 * r as u32 / 1000
}

async fn read_capped(mut resp: reqwest::Response, cap: usize) -> String {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = resp.chunk().await {
        body.extend_from_slice(&chunk[..chunk.len().min(cap - body.len())]);
        if body.len() >= cap {
            break;
        }
    }
    String::from_utf8_lossy(&body).into_owned()
}

/// The human part of an error body: `error.message` when it is JSON.
fn error_message(body: String) -> String {
    let v: Option<Value> = serde_json::from_str(&body).ok();
    let msg = v.as_ref().and_then(|v| {
        v["error"]["message"].as_str().or(v["message"].as_str()).or(v["error"].as_str()).map(str::to_owned)
    });
    let msg = msg.unwrap_or(body);
    let msg = msg.trim();
    if msg.is_empty() {
        return "no details".into();
    }
    msg.chars().take(300).collect()
}

pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(cause) = src {
        let c = cause.to_string();
        if !s.contains(&c) {
            s.push_str(": ");
            s.push_str(&c);
        }
        src = cause.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_jittered_and_capped() {
        for attempt in 1..20 {
            let d = backoff(attempt, None);
            let ceiling = BACKOFF_BASE.saturating_mul(1 << attempt.min(10)).min(BACKOFF_CAP);
            assert!(d >= ceiling / 2 && d <= ceiling, "{attempt}: {d:?}");
        }
        assert_eq!(backoff(1, Some(Duration::from_secs(2))), Duration::from_secs(2));
        assert_eq!(backoff(1, Some(Duration::from_secs(3600))), BACKOFF_CAP);
    }

    #[test]
    fn api_keys_never_print() {
        let k = ApiKey("sk-secret".into());
        assert!(!format!("{k:?}").contains("secret"));
    }

    #[test]
    fn error_messages_are_extracted_and_bounded() {
        assert_eq!(error_message(r#"{"error":{"message":"bad key","type":"x"}}"#.into()), "bad key");
        assert_eq!(
            error_message(r#"{"type":"error","error":{"type":"not_found_error","message":"model: x"}}"#.into()),
            "model: x"
        );
        assert_eq!(error_message("".into()), "no details");
        assert_eq!(error_message("x".repeat(1000)).len(), 300);
    }

    #[test]
    fn openai_events() {
        let mut s = StreamState::default();
        let ev = |d: &str| SseEvent { event: String::new(), data: d.into() };
        assert_eq!(s.openai(&ev(r#"{"choices":[{"delta":{"role":"assistant"}}]}"#)), Ok(None));
        assert_eq!(s.openai(&ev(r#"{"choices":[{"delta":{"content":"Hi"}}]}"#)), Ok(Some("Hi".into())));
        s.openai(&ev(r#"{"choices":[{"delta":{},"finish_reason":"length"}]}"#)).unwrap();
        s.openai(&ev(r#"{"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2}}"#)).unwrap();
        assert!(s.truncated);
        assert_eq!(s.usage, Usage { input_tokens: 5, output_tokens: 2 });
        assert!(s.openai(&ev("not json")).is_err());
        assert!(s.openai(&ev(r#"{"error":{"message":"overloaded"}}"#)).unwrap_err().contains("overloaded"));
        s.openai(&ev("[DONE]")).unwrap();
        assert!(s.done);
    }

    #[test]
    fn anthropic_events() {
        let mut s = StreamState::default();
        let ev = |d: &str| SseEvent { event: String::new(), data: d.into() };
        s.anthropic(&ev(r#"{"type":"message_start","message":{"usage":{"input_tokens":7,"output_tokens":1}}}"#))
            .unwrap();
        assert_eq!(
            s.anthropic(&ev(r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Yo"}}"#)),
            Ok(Some("Yo".into()))
        );
        s.anthropic(&ev(r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":3}}"#))
            .unwrap();
        s.anthropic(&ev(r#"{"type":"message_stop"}"#)).unwrap();
        assert_eq!((s.usage, s.done, s.truncated), (Usage { input_tokens: 7, output_tokens: 3 }, true, false));
        assert!(s.anthropic(&ev(r#"{"type":"error","error":{"message":"Overloaded"}}"#)).is_err());
    }
}
