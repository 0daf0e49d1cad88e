//! In-process inference for GGUF llama-family models on the CPU.
//!
//! alp's embedded default model (SmolLM2-135M-Instruct, Q4_1) runs here.
//! Everything the model needs comes from the GGUF file: hyper-parameters,
//! weights, the byte-level BPE tokenizer and the chat template. Nothing is
//! fetched at run time.
//!
//! Why not a general tensor library: for a model this small the time goes
//! into per-operation overhead and, in candle 0.9, a scalar Q4_1 dot
//! product. A fixed llama forward pass over AVX2 integer kernels, with
//! batched prefill and rows split across cores, is several times faster
//! (see docs/BENCHMARKS.md).

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod attention;
pub mod chat;
pub mod dequant;
pub mod gguf;
mod mmap;
pub mod model;
pub mod quant;
pub mod sample;
pub mod tokenizer;

pub use chat::{ChatTemplate, Role};
pub use model::{Generation, LoadError, Model, PREFILL_SLICE, Step, StopReason};
pub use sample::SamplerOptions;
