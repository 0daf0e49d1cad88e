//! Chat templates, recognised from `tokenizer.chat_template`.
//!
//! GGUF files carry the template as Jinja source. Rather than embed a Jinja
//! engine, alp recognises the template families it knows and renders them
//! directly; an unknown template is an error that names the family it
//! looked for. Today that is ChatML (`<|im_start|>role\n...<|im_end|>\n`),
//! which SmolLM2, Qwen and many others use.

use crate::gguf::Gguf;
use crate::tokenizer::Tokenizer;

/// Who said a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    System,
    User,
    Assistant,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

/// A recognised chat template.
#[derive(Debug, Clone)]
pub struct ChatTemplate {
    im_start: u32,
    im_end: u32,
    /// The system prompt the template adds when the conversation has none.
    pub default_system: Option<String>,
}

impl ChatTemplate {
    pub(crate) fn from_gguf(g: &Gguf, tok: &Tokenizer) -> Result<Self, String> {
        let template = g.get_str("tokenizer.chat_template").unwrap_or("");
        let (Some(im_start), Some(im_end)) = (tok.special("<|im_start|>"), tok.special("<|im_end|>")) else {
            return Err("chat template not recognised: alp supports ChatML models (<|im_start|> / <|im_end|>)".into());
        };
        if !template.is_empty() && !template.contains("<|im_start|>") {
            return Err("chat template is not ChatML, the only family alp supports today".into());
        }
        // The default system prompt, as the template writes it: the text
        // between "<|im_start|>system\n" and the next "<|im_end|>" in the
        // branch taken when the first message is not a system message.
        let marker = "<|im_start|>system\n";
        let default_system = template.find(marker).and_then(|i| {
            let rest = &template[i + marker.len()..];
            let end = rest.find("<|im_end|>")?;
            let s = &rest[..end];
            (!s.contains("{{") && !s.contains("{%")).then(|| s.to_string())
        });
        Ok(ChatTemplate { im_start, im_end, default_system })
    }

    /// Token ids for `messages`, ending with the opening of the assistant's turn.
    pub fn render(&self, tok: &Tokenizer, messages: &[(Role, &str)]) -> Vec<u32> {
        let mut ids = Vec::new();
        let mut turn = |role: Role, content: &str| {
            ids.push(self.im_start);
            ids.extend(tok.encode(&format!("{}\n{content}", role.as_str())));
            ids.push(self.im_end);
            ids.extend(tok.encode("\n"));
        };
        if messages.first().map(|m| m.0) != Some(Role::System)
            && let Some(sys) = &self.default_system
        {
            turn(Role::System, sys);
        }
        for &(role, content) in messages {
            turn(role, content);
        }
        ids.push(self.im_start);
        ids.extend(tok.encode("assistant\n"));
        ids
    }

    /// The tokens that end the assistant's turn.
    pub fn stop_tokens(&self, tok: &Tokenizer) -> Vec<u32> {
        let mut s = vec![self.im_end, tok.eos];
        s.dedup();
        s
    }
}
