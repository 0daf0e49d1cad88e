//! Agent work: model providers behind one trait, the tool loop that runs
//! on them, the tools it may call, and what a run is held to (approvals,
//! budgets, limits) and leaves behind (sessions, the spending ledger).
//!
//! This crate does no networking between nodes: it knows nothing of the
//! link. Tools that reach peers implement its [`tools::Tool`] trait in the
//! `alp` binary, which also serves peers' asks with it.
//!
//! Key types: [`Provider`] (a conversation in, the next assistant message
//! out, streamed; [`local::LocalProvider`] is the embedded default),
//! [`Setup`] (one place that builds a run for `chat --once`, the REPL or
//! a peer's `agent.ask`), [`run::Job`] and [`run::run`] (the loop),
//! [`tools::Registry`] (the tools of a context, filtered by policy).
//!
//! ```ignore
//! let setup = Setup::new(resolved, home, Some(ledger), Some(tools));
//! let selected = setup.provider(&Choice::default())?;
//! let mut job = setup.job(Caller::Local(&Local::default()), selected.provider())?;
//! let outcome = run::run(selected.provider(), &mut job, &mut messages, &mut |_| {}).await;
//! setup.record(Caller::Local(&local), selected.provider(), &job);
//! ```
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod budget;
pub mod fetch;
pub mod ledger;
pub mod local;
pub mod provider;
pub mod remote;
pub mod run;
pub mod select;
pub mod session;
mod setup;
pub mod sse;
pub mod tools;

pub use provider::{Delta, Message, Provider, ProviderError, Reply, Request, Role, Timings, ToolCall, ToolSpec, Usage};
pub use setup::{Caller, Local, Setup, SetupError, TaskGrant};
