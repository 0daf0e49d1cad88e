//! Byte-level BPE (the GPT-2 family, `tokenizer.ggml.model = "gpt2"`), built
//! entirely from the GGUF metadata: the vocabulary, token types and merges.
//!
//! Text is split by the pre-tokenizer (digits one by one, then GPT-2's
//! pattern `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`,
//! written out by hand below), each piece's bytes are mapped to GPT-2's
//! printable alphabet, and merges are applied lowest rank first.
//!
//! Special tokens are never produced from text: `encode` treats
//! `<|im_start|>` in a user's message as plain characters, so a prompt
//! cannot forge a turn boundary. The chat template inserts them by id.

use std::collections::HashMap;

use crate::gguf::{Gguf, GgufError, Value};

/// ggml token types.
const TYPE_CONTROL: u64 = 3;
const TYPE_UNUSED: u64 = 5;

/// A tokenizer loaded from GGUF metadata.
#[derive(Debug)]
pub struct Tokenizer {
    /// Each token's bytes, for decoding.
    bytes: Vec<Vec<u8>>,
    /// Control tokens decode to nothing.
    control: Vec<bool>,
    by_text: HashMap<String, u32>,
    /// (left, right) → (rank, merged id).
    merges: HashMap<(u32, u32), (u32, u32)>,
    /// A vocabulary may lack some bytes (SmolLM's has no token for most
    /// control characters, nor for bytes that never occur in UTF-8).
    byte_ids: [Option<u32>; 256],
    pub eos: u32,
    pub bos: Option<u32>,
    /// Whether prompts start with `bos` (`tokenizer.ggml.add_bos_token`).
    pub add_bos: bool,
    pre: Pre,
}

/// How text is split before BPE (`tokenizer.ggml.pre`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pre {
    /// Each digit alone, then GPT-2's pattern (SmolLM, StarCoder).
    DigitsThenGpt2,
    /// GPT-2's pattern.
    Gpt2,
    /// Llama 3's pattern: contractions in any case, a letter run with one
    /// leading non-letter, digits in threes, newlines kept with what precedes.
    Llama3,
}

impl Pre {
    fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "smollm" | "starcoder" | "refact" => Pre::DigitsThenGpt2,
            "gpt-2" | "gpt2" => Pre::Gpt2,
            "llama-bpe" | "llama3" => Pre::Llama3,
            _ => return None,
        })
    }
}

/// GPT-2's map from bytes to printable characters.
pub(crate) fn byte_to_char() -> [char; 256] {
    let mut out = ['\0'; 256];
    let mut n = 0u32;
    for b in 0..=255u8 {
        let printable = matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
        out[b as usize] = if printable {
            char::from(b)
        } else {
            n += 1;
            char::from_u32(255 + n).unwrap_or('\0')
        };
    }
    out
}

impl Tokenizer {
    /// Builds the tokenizer from `tokenizer.ggml.*` metadata.
    pub fn from_gguf(g: &Gguf) -> Result<Self, GgufError> {
        let model = g.get_str("tokenizer.ggml.model")?;
        if model != "gpt2" {
            return Err(GgufError::WrongType {
                key: "tokenizer.ggml.model".into(),
                expected: "\"gpt2\" (byte-level BPE; other tokenizers are not supported yet)",
            });
        }
        let wrong = |key: &str, expected| GgufError::WrongType { key: key.into(), expected };
        let tokens = g.get_array("tokenizer.ggml.tokens")?;
        let types = match g.metadata.get("tokenizer.ggml.token_type") {
            Some(Value::Array(t)) if t.len() == tokens.len() => Some(t),
            Some(_) => return Err(wrong("tokenizer.ggml.token_type", "an array as long as the vocabulary")),
            None => None,
        };
        let to_byte: HashMap<char, u8> = byte_to_char().iter().enumerate().map(|(b, &c)| (c, b as u8)).collect();

        let mut bytes = Vec::with_capacity(tokens.len());
        let mut control = Vec::with_capacity(tokens.len());
        let mut by_text = HashMap::with_capacity(tokens.len());
        for (id, tok) in tokens.iter().enumerate() {
            let Value::Str(text) = tok else { return Err(wrong("tokenizer.ggml.tokens", "an array of strings")) };
            let ty = types.and_then(|t| t[id].as_u64()).unwrap_or(1);
            let is_control = ty == TYPE_CONTROL || ty == TYPE_UNUSED;
            control.push(is_control);
            // Special tokens are stored verbatim; normal ones in GPT-2's alphabet.
            let decoded: Option<Vec<u8>> = text.chars().map(|c| to_byte.get(&c).copied()).collect();
            bytes.push(if is_control {
                text.as_bytes().to_vec()
            } else {
                decoded.unwrap_or_else(|| text.as_bytes().to_vec())
            });
            by_text.insert(text.clone(), id as u32);
        }

        let map = byte_to_char();
        let mut byte_ids = [None; 256];
        for (b, c) in map.iter().enumerate() {
            byte_ids[b] = by_text.get(&c.to_string()).copied();
        }
        if byte_ids.iter().flatten().count() < 128 {
            return Err(wrong("tokenizer.ggml.tokens", "a byte-level vocabulary (most single bytes are missing)"));
        }

        let mut merges = HashMap::new();
        for (rank, m) in g.get_array("tokenizer.ggml.merges")?.iter().enumerate() {
            let Value::Str(m) = m else { return Err(wrong("tokenizer.ggml.merges", "an array of strings")) };
            let Some((a, b)) = m.split_once(' ') else {
                return Err(wrong("tokenizer.ggml.merges", "\"left right\" pairs"));
            };
            let (Some(&ia), Some(&ib), Some(&iab)) = (by_text.get(a), by_text.get(b), by_text.get(&format!("{a}{b}")))
            else {
                continue; // a merge whose parts are not all in the vocabulary can never fire
            };
            merges.entry((ia, ib)).or_insert((rank as u32, iab));
        }

        let n = tokens.len() as u64;
        let id = |key: &str| -> Result<Option<u32>, GgufError> {
            match g.metadata.get(key).map(|v| v.as_u64()) {
                None => Ok(None),
                Some(Some(v)) if v < n => Ok(Some(v as u32)),
                Some(_) => Err(wrong(key, "a token id inside the vocabulary")),
            }
        };
        let eos = id("tokenizer.ggml.eos_token_id")?
            .ok_or_else(|| GgufError::Missing { key: "tokenizer.ggml.eos_token_id".into() })?;
        let bos = id("tokenizer.ggml.bos_token_id")?;
        let add_bos = matches!(g.metadata.get("tokenizer.ggml.add_bos_token"), Some(Value::Bool(true)));
        let pre = match g.metadata.get("tokenizer.ggml.pre") {
            Some(Value::Str(name)) => Pre::from_name(name).ok_or_else(|| {
                wrong("tokenizer.ggml.pre", "a known pre-tokenizer (smollm, starcoder, refact, gpt-2 or llama-bpe)")
            })?,
            // Files from before the key existed: GPT-2's pattern.
            None => Pre::Gpt2,
            Some(_) => return Err(wrong("tokenizer.ggml.pre", "a string")),
        };
        Ok(Tokenizer { bytes, control, by_text, merges, byte_ids, eos, bos, add_bos, pre })
    }

    /// Vocabulary size.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// True for an empty vocabulary (never, for a loaded model).
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The id of a special token given by its exact text, such as `<|im_end|>`.
    pub fn special(&self, text: &str) -> Option<u32> {
        self.by_text.get(text).copied().filter(|&id| self.control[id as usize])
    }

    /// Encodes ordinary text (special tokens are not recognised).
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let mut out = Vec::new();
        let mut cache: HashMap<&str, Vec<u32>> = HashMap::new();
        for piece in split(self.pre, text) {
            if let Some(ids) = cache.get(piece) {
                out.extend_from_slice(ids);
                continue;
            }
            let ids = self.bpe(piece.as_bytes());
            out.extend_from_slice(&ids);
            cache.insert(piece, ids);
        }
        out
    }

    fn bpe(&self, piece: &[u8]) -> Vec<u32> {
        // Bytes the vocabulary cannot express are dropped, as Hugging Face's
        // tokenizer does for a BPE model without an unknown token.
        let mut syms: Vec<u32> = piece.iter().filter_map(|&b| self.byte_ids[b as usize]).collect();
        loop {
            let best = syms
                .windows(2)
                .enumerate()
                .filter_map(|(i, w)| self.merges.get(&(w[0], w[1])).map(|&(rank, id)| (rank, i, id)))
                .min();
            let Some((_, i, id)) = best else { return syms };
            syms[i] = id;
            syms.remove(i + 1);
        }
    }

    /// The bytes of one token (empty for control tokens).
    pub fn token_bytes(&self, id: u32) -> &[u8] {
        match self.bytes.get(id as usize) {
            Some(_) if self.control[id as usize] => &[],
            Some(b) => b,
            None => &[],
        }
    }

    /// Decodes ids to text; invalid UTF-8 becomes U+FFFD.
    pub fn decode(&self, ids: &[u32]) -> String {
        let bytes: Vec<u8> = ids.iter().flat_map(|&id| self.token_bytes(id).iter().copied()).collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Class {
    Letter,
    Number,
    Space,
    Other,
}

fn class(c: char) -> Class {
    if c.is_alphabetic() {
        Class::Letter
    } else if c.is_numeric() {
        Class::Number
    } else if c.is_whitespace() {
        Class::Space
    } else {
        Class::Other
    }
}

/// Splits text before BPE, as `pre` says.
pub fn split(pre: Pre, text: &str) -> Vec<&str> {
    match pre {
        Pre::DigitsThenGpt2 => pre_tokenize(text),
        Pre::Gpt2 => {
            let mut out = Vec::new();
            gpt2_split(text, &mut out);
            out
        }
        Pre::Llama3 => llama3_split(text),
    }
}

/// Llama 3's pattern, written out:
/// `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
pub fn llama3_split(s: &str) -> Vec<&str> {
    let chars: Vec<(usize, char)> = s.char_indices().collect();
    let at = |i: usize| chars.get(i).map(|&(_, c)| c);
    let pos = |i: usize| chars.get(i).map_or(s.len(), |&(p, _)| p);
    let is_nl = |c: char| c == '\r' || c == '\n';
    let run = |mut i: usize, f: &dyn Fn(char) -> bool| {
        while at(i).is_some_and(f) {
            i += 1;
        }
        i
    };
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i].1;
        let end = 'm: {
            if c == '\'' {
                let rest = s[pos(i + 1)..].chars().take(2).collect::<String>().to_lowercase();
                for suffix in ["re", "ve", "ll", "s", "t", "m", "d"] {
                    if rest.starts_with(suffix) {
                        break 'm i + 1 + suffix.chars().count();
                    }
                }
            }
            let letter = |c: char| class(c) == Class::Letter;
            // [^\r\n\p{L}\p{N}]?\p{L}+
            if letter(c) {
                break 'm run(i, &letter);
            }
            if !is_nl(c) && class(c) != Class::Number && at(i + 1).is_some_and(letter) {
                break 'm run(i + 1, &letter);
            }
            // \p{N}{1,3}
            if class(c) == Class::Number {
                let e = run(i, &|c| class(c) == Class::Number);
                break 'm e.min(i + 3);
            }
            // ` ?[^\s\p{L}\p{N}]+[\r\n]*`
            let other = |c: char| class(c) == Class::Other;
            let lead = usize::from(c == ' ' && at(i + 1).is_some_and(other));
            if other(c) || lead == 1 {
                let e = run(i + lead, &other);
                break 'm run(e, &is_nl);
            }
            // `\s*[\r\n]+`: through the last newline of the whitespace run.
            let e = run(i, &|c| class(c) == Class::Space);
            if let Some(last_nl) = (i..e).rev().find(|&k| at(k).is_some_and(is_nl)) {
                break 'm last_nl + 1;
            }
            // `\s+(?!\S)` then `\s+`
            if e < chars.len() && e - i > 1 { e - 1 } else { e }
        };
        out.push(&s[pos(i)..pos(end)]);
        i = end;
    }
    out
}

/// Splits text the way SmolLM's pre-tokenizer does: each digit alone, then
/// the GPT-2 pattern on what lies between.
pub fn pre_tokenize(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, c) in text.char_indices() {
        if c.is_numeric() {
            gpt2_split(&text[start..i], &mut out);
            out.push(&text[i..i + c.len_utf8()]);
            start = i + c.len_utf8();
        }
    }
    gpt2_split(&text[start..], &mut out);
    out
}

fn gpt2_split<'a>(s: &'a str, out: &mut Vec<&'a str>) {
    let chars: Vec<(usize, char)> = s.char_indices().collect();
    let at = |i: usize| chars.get(i).map(|&(_, c)| c);
    let pos = |i: usize| chars.get(i).map_or(s.len(), |&(p, _)| p);
    let run = |mut i: usize, k: Class| {
        while at(i).is_some_and(|c| class(c) == k) {
            i += 1;
        }
        i
    };
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i].1;
        let end = 'm: {
            if c == '\'' {
                for suffix in ["s", "t", "re", "ve", "m", "ll", "d"] {
                    if s[pos(i + 1)..].starts_with(suffix) {
                        break 'm i + 1 + suffix.len();
                    }
                }
            }
            // ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`
            let (lead, first) = if c == ' ' { (1, at(i + 1)) } else { (0, Some(c)) };
            if let Some(k) = first.map(class).filter(|&k| k != Class::Space) {
                break 'm run(i + lead, k);
            }
            // `\s+(?!\S)` then `\s+`
            let e = run(i, Class::Space);
            if e < chars.len() && e - i > 1 { e - 1 } else { e }
        };
        out.push(&s[pos(i)..pos(end)]);
        i = end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pre_tokenizer_matches_gpt2_pattern() {
        assert_eq!(pre_tokenize("Hello world"), ["Hello", " world"]);
        assert_eq!(pre_tokenize("I'm  here!\n\nOK"), ["I", "'m", " ", " here", "!", "\n", "\n", "OK"]);
        assert_eq!(pre_tokenize("''s'x 'll"), ["''", "s", "'", "x", " '", "ll"]);
        assert_eq!(pre_tokenize("a  b\t\tc\n"), ["a", " ", " b", "\t", "\t", "c", "\n"]);
        assert_eq!(pre_tokenize("x = 42;"), ["x", " =", " ", "4", "2", ";"]);
        assert_eq!(pre_tokenize("end  "), ["end", "  "]);
        assert_eq!(pre_tokenize("  a"), [" ", " a"]);
        assert_eq!(pre_tokenize("héllo wörld"), ["héllo", " wörld"]);
        assert_eq!(pre_tokenize(""), Vec::<&str>::new());
    }

    #[test]
    fn pre_tokenizer_covers_the_input() {
        for s in ["a  b\t\tc\n", "''s'x 'll", "日本語 テキスト 123", " ?? !! ", "\u{3000}x"] {
            assert_eq!(pre_tokenize(s).concat(), s);
        }
    }

    #[test]
    fn byte_map_is_a_bijection() {
        let m = byte_to_char();
        let set: std::collections::HashSet<char> = m.iter().copied().collect();
        assert_eq!(set.len(), 256);
        assert_eq!(m[b' ' as usize], 'Ġ');
        assert_eq!(m[b'\n' as usize], 'Ċ');
    }
}

#[cfg(test)]
mod llama3_tests {
    #[derive(serde::Deserialize)]
    struct Case {
        text: String,
        pieces: Vec<String>,
    }

    #[test]
    fn llama3_splits_match_the_reference() {
        let cases: Vec<Case> = serde_json::from_str(include_str!("../tests/fixtures/llama3_splits.json")).unwrap();
        for c in &cases {
            assert_eq!(super::llama3_split(&c.text), c.pieces, "splitting {:?}", c.text);
        }
    }
}
