//! End-to-end tests: each runs the real `alp` binary against a temporary
//! home. One test binary, one module per area.

mod browser;
mod common;
mod throttle;

mod agent;
mod ask;
mod attack;
mod blob_abuse;
mod blobs;
mod budget;
mod chat;
mod config;
mod conventions;
mod fake_provider;
mod lan;
mod link;
mod mcp;
mod model;
mod multi;
mod nat;
mod netns;
mod peers;
mod profiles;
mod providers;
mod resume;
mod sessions;
mod sharing;
mod wg;
