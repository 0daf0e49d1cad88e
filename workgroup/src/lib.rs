//! Workgroups: peer profiles working together through a signed,
//! replicated log.
//!
//! - [`event`]: the signed event layout; each author's events form a chain
//!   (sequence number and previous id), and events name the events they
//!   depend on.
//! - [`body`]: what each kind of event says, in canonical CBOR.
//! - [`log`]: one group's events, each checked as it arrives (author,
//!   chain, references, clock), with equivocation kept as evidence.
//! - [`state`]: the deterministic fold of a log into members, roles, tasks
//!   and budgets, checking each event's authority at its point in the fold.
//! - [`schedule`]: what a node should do next (assign, give up on silent
//!   members, run, stop), from the state and the time, both passed in.
//! - [`sync`]: the bodies of `wg.sync` and `wg.push`.
//! - [`verify`]: re-checking stored bytes, naming the first bad event.
//! - [`store`]: the log on disk (append and sync before acting).
//!
//! Everything but [`store`] is pure: no clock, no I/O, no threads.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod body;
pub mod event;
pub mod log;
pub mod schedule;
pub mod state;
pub mod store;
pub mod sync;
#[cfg(test)]
mod testing;
pub mod verify;

pub use body::Body;
pub use event::{Event, EventError, EventId, GroupId, Header};
pub use log::{Ingested, Log, Refused};
pub use state::{State, TaskStatus};
