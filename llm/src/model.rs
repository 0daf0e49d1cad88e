//! The llama forward pass: RMSNorm, rotary attention with grouped KV heads,
//! SwiGLU feed-forward, all on [`QMatrix`] products.

use std::fs::File;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::attention;
use crate::chat::ChatTemplate;
use crate::gguf::{Gguf, GgufError, TensorInfo, TensorType};
use crate::quant::{Precision, QActs, QMatrix};
use crate::sample::{Sampler, SamplerOptions};
use crate::tokenizer::Tokenizer;

/// Why a model could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read model {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("model {path} is not a usable GGUF file: {source}")]
    Gguf { path: String, source: GgufError },
    #[error("model {path}: {reason}")]
    Unsupported { path: String, reason: String },
}

/// Hyper-parameters from `llama.*` metadata.
#[derive(Debug, Clone)]
pub struct Config {
    pub n_layer: usize,
    pub n_embd: usize,
    pub n_ff: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim: usize,
    pub rope_base: f32,
    pub eps: f32,
    pub context: usize,
    pub vocab: usize,
}

#[derive(Debug)]
struct Layer {
    attn_norm: Vec<f32>,
    wq: QMatrix,
    wk: QMatrix,
    wv: QMatrix,
    wo: QMatrix,
    ffn_norm: Vec<f32>,
    gate: QMatrix,
    up: QMatrix,
    down: QMatrix,
}

/// A loaded model: weights, tokenizer and chat template.
#[derive(Debug)]
pub struct Model {
    pub config: Config,
    pub tokenizer: Tokenizer,
    pub chat: ChatTemplate,
    /// What `general.name` says, for display.
    pub name: String,
    embd: QMatrix,
    layers: Vec<Layer>,
    out_norm: Vec<f32>,
    /// `None` when the output projection is tied to the embeddings.
    output: Option<QMatrix>,
    inv_freq: Vec<f32>,
    pub load_time: Duration,
    /// How activations enter the matrix products (F32 unless changed).
    pub precision: Precision,
}

impl Model {
    /// Loads a GGUF llama-family model. The file is memory-mapped for
    /// parsing; weights are repacked once into the kernels' layout, after
    /// which the mapping is dropped.
    pub fn load(path: &Path) -> Result<Self, LoadError> {
        let started = Instant::now();
        let p = path.display().to_string();
        let io = |source| LoadError::Io { path: p.clone(), source };
        let file = File::open(path).map_err(io)?;
        let map = crate::mmap::map(&file).map_err(io)?;
        let mut m = Self::from_bytes(&map, &p)?;
        m.load_time = started.elapsed();
        Ok(m)
    }

    /// Builds a model from the bytes of a whole GGUF file; `label` names it
    /// in errors. (What `load` does after mapping the file; public for the
    /// fuzz target.)
    pub fn from_bytes(data: &[u8], label: &str) -> Result<Self, LoadError> {
        let g = Gguf::parse(data).map_err(|source| LoadError::Gguf { path: label.into(), source })?;
        Self::from_gguf(&g, data).map_err(|e| match e {
            BuildError::Gguf(source) => LoadError::Gguf { path: label.into(), source },
            BuildError::Unsupported(reason) => LoadError::Unsupported { path: label.into(), reason },
        })
    }

    fn from_gguf(g: &Gguf, data: &[u8]) -> Result<Self, BuildError> {
        let arch = g.get_str("general.architecture")?;
        if arch != "llama" {
            return Err(BuildError::Unsupported(format!(
                "architecture {arch:?} is not supported (alp runs llama-family GGUF models)"
            )));
        }
        let u = |k: &str| g.get_u64(&format!("llama.{k}")).map(|v| v as usize);
        let tokenizer = Tokenizer::from_gguf(g)?;
        let n_embd = u("embedding_length")?;
        let n_head = u("attention.head_count")?;
        let n_head_kv = g.get_u64("llama.attention.head_count_kv").map(|v| v as usize).unwrap_or(n_head);
        let sane = |v: usize, max: usize| v > 0 && v <= max;
        if !sane(n_embd, 1 << 16)
            || !sane(n_head, 1024)
            || !sane(n_head_kv, n_head)
            || n_embd % n_head != 0
            || n_head % n_head_kv != 0
        {
            return Err(BuildError::Unsupported(format!(
                "inconsistent attention shape: embedding {n_embd}, heads {n_head}, kv heads {n_head_kv}"
            )));
        }
        let head_dim = n_embd / n_head;
        if head_dim % 2 != 0 {
            return Err(BuildError::Unsupported(format!("odd head dimension {head_dim}")));
        }
        let config = Config {
            n_layer: u("block_count")?,
            n_embd,
            n_ff: u("feed_forward_length")?,
            n_head,
            n_head_kv,
            head_dim,
            rope_base: g.get_f32("llama.rope.freq_base").unwrap_or(10_000.0),
            eps: g.get_f32("llama.attention.layer_norm_rms_epsilon").unwrap_or(1e-5),
            context: u("context_length")?.clamp(1, 1 << 20),
            vocab: tokenizer.len(),
        };
        if !sane(config.n_layer, 1024) || !sane(config.n_ff, 1 << 18) {
            return Err(BuildError::Unsupported("implausible layer count or feed-forward size".into()));
        }

        let kv = n_head_kv * head_dim;
        let w = Weights { g, data };
        let mut layers = Vec::with_capacity(config.n_layer);
        for i in 0..config.n_layer {
            let n = |s: &str| format!("blk.{i}.{s}.weight");
            layers.push(Layer {
                attn_norm: w.vector(&n("attn_norm"), n_embd)?,
                wq: w.matrix(&n("attn_q"), n_embd, n_embd)?,
                wk: w.matrix(&n("attn_k"), kv, n_embd)?,
                wv: w.matrix(&n("attn_v"), kv, n_embd)?,
                wo: w.matrix(&n("attn_output"), n_embd, n_embd)?,
                ffn_norm: w.vector(&n("ffn_norm"), n_embd)?,
                gate: w.matrix(&n("ffn_gate"), config.n_ff, n_embd)?,
                up: w.matrix(&n("ffn_up"), config.n_ff, n_embd)?,
                down: w.matrix(&n("ffn_down"), n_embd, config.n_ff)?,
            });
        }
        let embd = w.matrix("token_embd.weight", config.vocab, n_embd)?;
        let output = match g.tensors.contains_key("output.weight") {
            true => Some(w.matrix("output.weight", config.vocab, n_embd)?),
            false => None,
        };
        let mut inv_freq: Vec<f32> =
            (0..head_dim / 2).map(|i| config.rope_base.powf(-2.0 * i as f32 / head_dim as f32)).collect();
        // Llama 3.1+ stretch long wavelengths: per-frequency divisors.
        if g.tensors.contains_key("rope_freqs.weight") {
            let factors = w.vector("rope_freqs.weight", head_dim / 2)?;
            for (f, k) in inv_freq.iter_mut().zip(factors) {
                if k > 0.0 && k.is_finite() {
                    *f /= k;
                }
            }
        }
        let chat = ChatTemplate::from_gguf(g, &tokenizer).map_err(BuildError::Unsupported)?;
        let name = g.get_str("general.name").unwrap_or("unnamed model").to_string();
        Ok(Model {
            out_norm: w.vector("output_norm.weight", n_embd)?,
            config,
            tokenizer,
            chat,
            name,
            embd,
            layers,
            output,
            inv_freq,
            load_time: Duration::ZERO,
            precision: Precision::default(),
        })
    }

    /// A fresh context (KV cache) for this model.
    pub fn context(&self) -> Context {
        Context { cache: vec![attention::Cache::default(); self.config.n_layer], pos: 0 }
    }

    /// Runs `tokens` through the model after what `ctx` already holds and
    /// returns the logits for the last one.
    pub fn forward(&self, ctx: &mut Context, tokens: &[u32]) -> Result<Vec<f32>, ContextFull> {
        let c = &self.config;
        let t = tokens.len();
        if ctx.pos + t > c.context {
            return Err(ContextFull { limit: c.context });
        }
        let (d, kvd) = (c.n_embd, c.n_head_kv * c.head_dim);
        let mut x = vec![0.0f32; t * d];
        for (i, &tok) in tokens.iter().enumerate() {
            let row = (tok as usize).min(c.vocab - 1);
            self.embd.row_to_f32(row, &mut x[i * d..(i + 1) * d]);
        }
        let mut h = vec![0.0f32; t * d];
        let mut qa = QActs::new(self.precision);
        let (mut q, mut k, mut v) = (vec![0.0; t * d], vec![0.0; t * kvd], vec![0.0; t * kvd]);
        let mut attn = vec![0.0f32; t * d];
        let mut o = vec![0.0f32; t * d];
        let (mut gate, mut up) = (vec![0.0; t * c.n_ff], vec![0.0; t * c.n_ff]);
        let shape = attention::Shape { n_head: c.n_head, n_head_kv: c.n_head_kv, head_dim: c.head_dim };

        for (li, layer) in self.layers.iter().enumerate() {
            rms_norm(&x, &layer.attn_norm, c.eps, &mut h);
            qa.quantize(&h, d);
            layer.wq.matmul(&qa, &mut q);
            layer.wk.matmul(&qa, &mut k);
            layer.wv.matmul(&qa, &mut v);
            for i in 0..t {
                let pos = ctx.pos + i;
                self.rope(&mut q[i * d..(i + 1) * d], pos);
                self.rope(&mut k[i * kvd..(i + 1) * kvd], pos);
            }
            ctx.cache[li].push(kvd, &k, &v);
            attention::attend(shape, &q, &ctx.cache[li], ctx.pos, &mut attn);
            qa.quantize(&attn, d);
            layer.wo.matmul(&qa, &mut o);
            add(&mut x, &o);

            rms_norm(&x, &layer.ffn_norm, c.eps, &mut h);
            qa.quantize(&h, d);
            layer.gate.matmul(&qa, &mut gate);
            layer.up.matmul(&qa, &mut up);
            for (g, u) in gate.iter_mut().zip(&up) {
                *g = *g / (1.0 + (-*g).exp()) * u;
            }
            qa.quantize(&gate, c.n_ff);
            layer.down.matmul(&qa, &mut o);
            add(&mut x, &o);
        }
        ctx.pos += t;

        let last = &x[(t - 1) * d..];
        let mut normed = vec![0.0f32; d];
        rms_norm(last, &self.out_norm, c.eps, &mut normed);
        qa.quantize(&normed, d);
        let mut logits = vec![0.0f32; c.vocab];
        self.output.as_ref().unwrap_or(&self.embd).matmul(&qa, &mut logits);
        Ok(logits)
    }

    /// Rotary embedding, ggml's "normal" mode: adjacent pairs rotate.
    fn rope(&self, x: &mut [f32], pos: usize) {
        let hd = self.config.head_dim;
        let (sin, cos): (Vec<f32>, Vec<f32>) = self.inv_freq.iter().map(|f| (pos as f32 * f).sin_cos()).unzip();
        for head in x.chunks_exact_mut(hd) {
            for (i, pair) in head.chunks_exact_mut(2).enumerate() {
                let (a, b) = (pair[0], pair[1]);
                pair[0] = a * cos[i] - b * sin[i];
                pair[1] = a * sin[i] + b * cos[i];
            }
        }
    }

    /// Generates a reply to `prompt` (token ids, template already applied),
    /// calling `on_text` with each piece of decoded text as it is produced.
    /// `on_text` returns `false` to stop early.
    pub fn generate(
        &self,
        prompt: &[u32],
        opts: &SamplerOptions,
        max_tokens: usize,
        mut on_text: impl FnMut(&str) -> bool,
    ) -> Result<Generation, ContextFull> {
        self.generate_with(prompt, opts, max_tokens, |step| match step {
            Step::Prefill { .. } => true,
            Step::Text(s) => on_text(s),
        })
    }

    /// Like [`Model::generate`], also reporting prompt processing: the
    /// prompt runs in slices of [`PREFILL_SLICE`] tokens, each followed by
    /// a [`Step::Prefill`]. Returning `false` from either step stops.
    pub fn generate_with(
        &self,
        prompt: &[u32],
        opts: &SamplerOptions,
        max_tokens: usize,
        mut on_step: impl FnMut(Step<'_>) -> bool,
    ) -> Result<Generation, ContextFull> {
        if prompt.len() > self.config.context {
            return Err(ContextFull { limit: self.config.context });
        }
        let mut ctx = self.context();
        let mut sampler = Sampler::new(opts.clone());
        let stop = self.chat.stop_tokens(&self.tokenizer);
        let started = Instant::now();
        let mut logits = Vec::new();
        for slice in prompt.chunks(PREFILL_SLICE) {
            logits = self.forward(&mut ctx, slice)?;
            if !on_step(Step::Prefill { done: ctx.pos, total: prompt.len() }) {
                let prefill = started.elapsed();
                let stop = StopReason::Cancelled;
                return Ok(Generation {
                    prompt_tokens: ctx.pos,
                    generated_tokens: 0,
                    prefill,
                    decode: Duration::ZERO,
                    stop,
                });
            }
        }
        let prefill = started.elapsed();
        let decode_start = Instant::now();
        let mut text = Utf8Stream::default();
        let mut generated = 0usize;
        let mut reason = StopReason::MaxTokens;
        while generated < max_tokens && !logits.is_empty() {
            let tok = sampler.sample(&mut logits);
            if stop.contains(&tok) {
                reason = StopReason::EndOfTurn;
                break;
            }
            generated += 1;
            if let Some(s) = text.push(self.tokenizer.token_bytes(tok))
                && !on_step(Step::Text(&s))
            {
                reason = StopReason::Cancelled;
                break;
            }
            if generated == max_tokens || ctx.pos >= self.config.context {
                break;
            }
            logits = self.forward(&mut ctx, &[tok])?;
        }
        if let Some(rest) = text.finish() {
            on_step(Step::Text(&rest));
        }
        Ok(Generation {
            prompt_tokens: prompt.len(),
            generated_tokens: generated,
            prefill,
            decode: decode_start.elapsed(),
            stop: reason,
        })
    }
}

/// Prompt tokens run through the model at a time: small enough that
/// progress shows every second or two and a cancelled run stops soon,
/// large enough that slicing costs little (measured against one whole
/// forward pass at 2,048 tokens: 256 costs 1%, 128 6%, 64 7%; the
/// logits agree to rounding: a slice of fewer than four tokens takes the
/// one-token products, which add in another order).
pub const PREFILL_SLICE: usize = 256;

/// One step of [`Model::generate_with`].
#[derive(Debug, Clone, Copy)]
pub enum Step<'a> {
    /// `done` of the prompt's `total` tokens have been processed.
    Prefill { done: usize, total: usize },
    /// A piece of the reply.
    Text(&'a str),
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The model ended its turn.
    EndOfTurn,
    /// `max_tokens` or the context length was reached.
    MaxTokens,
    /// The caller asked to stop.
    Cancelled,
}

/// Counts and timings of one generation.
#[derive(Debug, Clone)]
pub struct Generation {
    pub prompt_tokens: usize,
    pub generated_tokens: usize,
    pub prefill: Duration,
    pub decode: Duration,
    pub stop: StopReason,
}

/// The prompt and reply do not fit in the model's context.
#[derive(Debug, thiserror::Error)]
#[error("the conversation does not fit in the model's context of {limit} tokens")]
pub struct ContextFull {
    pub limit: usize,
}

/// The KV cache of one conversation.
#[derive(Debug)]
pub struct Context {
    cache: Vec<attention::Cache>,
    pos: usize,
}

/// Turns a stream of token bytes into whole UTF-8 text pieces.
#[derive(Debug, Default)]
struct Utf8Stream {
    pending: Vec<u8>,
}

impl Utf8Stream {
    fn push(&mut self, bytes: &[u8]) -> Option<String> {
        self.pending.extend_from_slice(bytes);
        let valid = match std::str::from_utf8(&self.pending) {
            Ok(_) => self.pending.len(),
            // An incomplete sequence at the end waits for the next token; an
            // invalid one in the middle is replaced.
            Err(e) if e.error_len().is_none() => e.valid_up_to(),
            Err(_) => {
                let s = String::from_utf8_lossy(&self.pending).into_owned();
                self.pending.clear();
                return Some(s);
            }
        };
        if valid == 0 {
            return None;
        }
        let rest = self.pending.split_off(valid);
        let s = String::from_utf8(std::mem::replace(&mut self.pending, rest)).ok();
        s.filter(|s| !s.is_empty())
    }

    fn finish(&mut self) -> Option<String> {
        (!self.pending.is_empty()).then(|| String::from_utf8_lossy(&std::mem::take(&mut self.pending)).into_owned())
    }
}

enum BuildError {
    Gguf(GgufError),
    Unsupported(String),
}

impl From<GgufError> for BuildError {
    fn from(e: GgufError) -> Self {
        BuildError::Gguf(e)
    }
}

struct Weights<'a> {
    g: &'a Gguf,
    data: &'a [u8],
}

impl Weights<'_> {
    fn info(&self, name: &str) -> Result<&TensorInfo, BuildError> {
        self.g.tensors.get(name).ok_or_else(|| BuildError::Unsupported(format!("tensor {name:?} is missing")))
    }

    fn bytes(&self, t: &TensorInfo) -> &[u8] {
        // Parsing checked that every tensor lies inside the file.
        &self.data[t.offset..t.offset + t.len]
    }

    fn matrix(&self, name: &str, rows: usize, cols: usize) -> Result<QMatrix, BuildError> {
        let t = self.info(name)?;
        if t.dims.len() != 2 || t.dims[0] != cols as u64 || t.dims[1] != rows as u64 {
            return Err(BuildError::Unsupported(format!(
                "tensor {name:?} has shape {:?}, expected [{cols}, {rows}]",
                t.dims
            )));
        }
        QMatrix::from_ggml(t.ty, rows, cols, self.bytes(t))
            .map_err(|e| BuildError::Unsupported(format!("tensor {name:?}: {e}")))
    }

    fn vector(&self, name: &str, n: usize) -> Result<Vec<f32>, BuildError> {
        let t = self.info(name)?;
        if t.dims.iter().product::<u64>() != n as u64 {
            return Err(BuildError::Unsupported(format!("tensor {name:?} has shape {:?}, expected [{n}]", t.dims)));
        }
        let b = self.bytes(t);
        match t.ty {
            TensorType::F32 => Ok(b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()),
            TensorType::F16 => Ok(b.chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32()).collect()),
            TensorType::Bf16 => {
                let mut v = Vec::with_capacity(n);
                crate::dequant::dequantize(TensorType::Bf16, b, &mut v);
                Ok(v)
            }
            other => Err(BuildError::Unsupported(format!("tensor {name:?} has type {other}; expected F32 or F16"))),
        }
    }
}

fn rms_norm(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    let d = w.len();
    for (xi, oi) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
        let ms = xi.iter().map(|v| v * v).sum::<f32>() / d as f32;
        let r = 1.0 / (ms + eps).sqrt();
        for ((o, v), g) in oi.iter_mut().zip(xi).zip(w) {
            *o = v * r * g;
        }
    }
}

fn add(x: &mut [f32], y: &[f32]) {
    for (a, b) in x.iter_mut().zip(y) {
        *a += b;
    }
}

pub(crate) fn softmax(x: &mut [f32]) {
    let max = x.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    let mut sum = 0.0;
    for v in x.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    for v in x.iter_mut() {
        *v /= sum;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_stream_holds_back_split_characters() {
        let mut s = Utf8Stream::default();
        let e = "é".as_bytes();
        assert_eq!(s.push(b"a"), Some("a".into()));
        assert_eq!(s.push(&e[..1]), None);
        assert_eq!(s.push(&e[1..]), Some("é".into()));
        assert_eq!(s.push(&[0xFF, b'b']), Some("\u{FFFD}b".into()));
        assert_eq!(s.push(&e[..1]), None);
        assert_eq!(s.finish(), Some("\u{FFFD}".into()));
    }
}
