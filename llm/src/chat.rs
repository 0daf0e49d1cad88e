//! Chat templates, recognised from `tokenizer.chat_template`.
//!
//! GGUF files carry the template as Jinja source. Rather than embed a Jinja
//! engine, alp recognises the template families it knows and renders them
//! directly; an unknown template is an error that names the family it
//! looked for: ChatML (`<|im_start|>role\n...<|im_end|>\n`, SmolLM2, Qwen
//! and many others) and Llama 3 (`<|start_header_id|>role<|end_header_id|>`).

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
    family: Family,
    /// The system prompt the template adds when the conversation has none.
    pub default_system: Option<String>,
    /// Token ids that start every prompt (BOS, when the model wants it).
    prefix: Vec<u32>,
}

#[derive(Debug, Clone)]
enum Family {
    /// `<|im_start|>role\ncontent<|im_end|>\n`
    ChatMl { im_start: u32, im_end: u32 },
    /// `<|start_header_id|>role<|end_header_id|>\n\ncontent<|eot_id|>`
    Llama3 { start: u32, end: u32, eot: u32, eom: Option<u32> },
}

impl ChatTemplate {
    pub(crate) fn from_gguf(g: &Gguf, tok: &Tokenizer) -> Result<Self, String> {
        let template = g.get_str("tokenizer.chat_template").unwrap_or("");
        let prefix = if tok.add_bos { tok.bos.into_iter().collect() } else { Vec::new() };
        if template.contains("<|start_header_id|>") {
            let (Some(start), Some(end), Some(eot)) =
                (tok.special("<|start_header_id|>"), tok.special("<|end_header_id|>"), tok.special("<|eot_id|>"))
            else {
                return Err("the Llama 3 chat template's special tokens are missing from the vocabulary".into());
            };
            let eom = tok.special("<|eom_id|>");
            return Ok(ChatTemplate { family: Family::Llama3 { start, end, eot, eom }, default_system: None, prefix });
        }
        let (Some(im_start), Some(im_end)) = (tok.special("<|im_start|>"), tok.special("<|im_end|>")) else {
            return Err(
                "chat template not recognised: alp supports ChatML (<|im_start|>) and Llama 3 (<|start_header_id|>) models"
                    .into(),
            );
        };
        if !template.is_empty() && !template.contains("<|im_start|>") {
            return Err("chat template not recognised: alp supports ChatML and Llama 3 templates".into());
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
        Ok(ChatTemplate { family: Family::ChatMl { im_start, im_end }, default_system, prefix })
    }

    /// Token ids for `messages`, ending with the opening of the assistant's turn.
    pub fn render(&self, tok: &Tokenizer, messages: &[(Role, &str)]) -> Vec<u32> {
        let mut ids = self.prefix.clone();
        let turn = |role: Role, content: &str, ids: &mut Vec<u32>| match self.family {
            Family::ChatMl { im_start, im_end } => {
                ids.push(im_start);
                ids.extend(tok.encode(&format!("{}\n{content}", role.as_str())));
                ids.push(im_end);
                ids.extend(tok.encode("\n"));
            }
            Family::Llama3 { start, end, eot, .. } => {
                ids.push(start);
                ids.extend(tok.encode(role.as_str()));
                ids.push(end);
                ids.extend(tok.encode(&format!("\n\n{}", content.trim())));
                ids.push(eot);
            }
        };
        if messages.first().map(|m| m.0) != Some(Role::System)
            && let Some(sys) = &self.default_system
        {
            turn(Role::System, sys, &mut ids);
        }
        for &(role, content) in messages {
            turn(role, content, &mut ids);
        }
        match self.family {
            Family::ChatMl { im_start, .. } => {
                ids.push(im_start);
                ids.extend(tok.encode("assistant\n"));
            }
            Family::Llama3 { start, end, .. } => {
                ids.push(start);
                ids.extend(tok.encode("assistant"));
                ids.push(end);
                ids.extend(tok.encode("\n\n"));
            }
        }
        ids
    }

    /// The tokens that end the assistant's turn.
    pub fn stop_tokens(&self, tok: &Tokenizer) -> Vec<u32> {
        let mut s = match self.family {
            Family::ChatMl { im_end, .. } => vec![im_end],
            Family::Llama3 { eot, eom, .. } => std::iter::once(eot).chain(eom).collect(),
        };
        s.push(tok.eos);
        s.sort_unstable();
        s.dedup();
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A metadata-only GGUF: a byte-level vocabulary plus `specials`.
    fn vocab_file(specials: &[&str], template: &str, add_bos: bool, pre: &str) -> Vec<u8> {
        let mut f = Vec::new();
        let s = |f: &mut Vec<u8>, s: &str| {
            f.extend_from_slice(&(s.len() as u64).to_le_bytes());
            f.extend_from_slice(s.as_bytes());
        };
        let tokens: Vec<String> = crate::tokenizer::byte_to_char()
            .iter()
            .map(|c| c.to_string())
            .chain(specials.iter().map(|s| s.to_string()))
            .collect();
        f.extend_from_slice(b"GGUF");
        f.extend_from_slice(&3u32.to_le_bytes());
        f.extend_from_slice(&0u64.to_le_bytes());
        f.extend_from_slice(&9u64.to_le_bytes());
        s(&mut f, "tokenizer.ggml.model");
        f.extend_from_slice(&8u32.to_le_bytes());
        s(&mut f, "gpt2");
        s(&mut f, "tokenizer.ggml.pre");
        f.extend_from_slice(&8u32.to_le_bytes());
        s(&mut f, pre);
        s(&mut f, "tokenizer.ggml.tokens");
        f.extend_from_slice(&9u32.to_le_bytes());
        f.extend_from_slice(&8u32.to_le_bytes());
        f.extend_from_slice(&(tokens.len() as u64).to_le_bytes());
        for t in &tokens {
            s(&mut f, t);
        }
        s(&mut f, "tokenizer.ggml.token_type");
        f.extend_from_slice(&9u32.to_le_bytes());
        f.extend_from_slice(&5u32.to_le_bytes()); // i32
        f.extend_from_slice(&(tokens.len() as u64).to_le_bytes());
        for i in 0..tokens.len() {
            f.extend_from_slice(&(if i < 256 { 1i32 } else { 3 }).to_le_bytes());
        }
        s(&mut f, "tokenizer.ggml.merges");
        f.extend_from_slice(&9u32.to_le_bytes());
        f.extend_from_slice(&8u32.to_le_bytes());
        f.extend_from_slice(&0u64.to_le_bytes());
        s(&mut f, "tokenizer.ggml.eos_token_id");
        f.extend_from_slice(&4u32.to_le_bytes());
        f.extend_from_slice(&256u32.to_le_bytes());
        s(&mut f, "tokenizer.ggml.bos_token_id");
        f.extend_from_slice(&4u32.to_le_bytes());
        f.extend_from_slice(&257u32.to_le_bytes());
        s(&mut f, "tokenizer.ggml.add_bos_token");
        f.extend_from_slice(&7u32.to_le_bytes());
        f.push(u8::from(add_bos));
        s(&mut f, "tokenizer.chat_template");
        f.extend_from_slice(&8u32.to_le_bytes());
        s(&mut f, template);
        f
    }

    fn bytes(tok: &Tokenizer, s: &str) -> Vec<u32> {
        tok.encode(s)
    }

    #[test]
    fn llama3_template_renders_headers_bos_and_stops() {
        let specials = [
            "<|end_of_text|>",
            "<|begin_of_text|>",
            "<|start_header_id|>",
            "<|end_header_id|>",
            "<|eot_id|>",
            "<|eom_id|>",
        ];
        let f = vocab_file(&specials, "{{ '<|start_header_id|>' + role }}", true, "llama-bpe");
        let g = Gguf::parse(&f).unwrap();
        let tok = Tokenizer::from_gguf(&g).unwrap();
        let t = ChatTemplate::from_gguf(&g, &tok).unwrap();
        let ids = t.render(&tok, &[(Role::User, " Hi ")]);
        let mut want = vec![257, 258];
        want.extend(bytes(&tok, "user"));
        want.push(259);
        want.extend(bytes(&tok, "\n\nHi"));
        want.push(260);
        want.push(258);
        want.extend(bytes(&tok, "assistant"));
        want.push(259);
        want.extend(bytes(&tok, "\n\n"));
        assert_eq!(ids, want);
        assert_eq!(t.stop_tokens(&tok), [256, 260, 261]);
    }

    #[test]
    fn chatml_template_and_unknown_ones() {
        let tpl = "{% if x %}{{ '<|im_start|>system\nYou are kind.<|im_end|>\n' }}{% endif %}";
        let f = vocab_file(&["<|endoftext|>", "<|bos|>", "<|im_start|>", "<|im_end|>"], tpl, false, "smollm");
        let g = Gguf::parse(&f).unwrap();
        let tok = Tokenizer::from_gguf(&g).unwrap();
        let t = ChatTemplate::from_gguf(&g, &tok).unwrap();
        assert_eq!(t.default_system.as_deref(), Some("You are kind."));
        let ids = t.render(&tok, &[(Role::System, "S"), (Role::User, "U")]);
        assert_eq!(ids[0], 258, "no BOS when add_bos_token is false, and no default system when one is given");
        assert_eq!(ids.iter().filter(|&&i| i == 258).count(), 3);

        let f = vocab_file(&["</s>", "<s>"], "[INST] {{ content }} [/INST]", true, "gpt-2");
        let g = Gguf::parse(&f).unwrap();
        let tok = Tokenizer::from_gguf(&g).unwrap();
        assert!(ChatTemplate::from_gguf(&g, &tok).unwrap_err().contains("not recognised"));
        let f = vocab_file(&["</s>", "<s>"], "", true, "some-future-pre");
        let e = Tokenizer::from_gguf(&Gguf::parse(&f).unwrap()).unwrap_err().to_string();
        assert!(e.contains("tokenizer.ggml.pre"), "{e}");
    }
}
