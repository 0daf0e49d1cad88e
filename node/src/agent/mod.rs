//! Agent work: model providers behind one trait, and what runs on them.
//!
//! A [`Provider`] turns a conversation into the assistant's next message,
//! streaming its text as it arrives. The in-process GGUF model
//! ([`local::LocalProvider`]) is the embedded default; HTTP providers
//! implement the same trait.

pub mod ledger;
pub mod link_tools;
pub mod local;
pub mod provider;
pub mod remote;
pub mod run;
pub mod select;
pub mod session;
pub mod sse;
pub mod tools;

pub use provider::{Message, Provider, ProviderError, Reply, Request, Role, Timings, ToolCall, ToolSpec, Usage};
