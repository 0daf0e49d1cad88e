//! `alp`: the command-line face of an alp node, and the wiring of its
//! libraries. Commands turn parsed arguments into calls on `alp-link`,
//! `alp-agent`, `alp-blobstore` and `alp-profiles`; this crate also holds
//! what joins the link to agent work: the `agent.ask` / `agent.cancel`
//! handlers (`ask`), the tools that reach peers (`peer_tools`), and the
//! verbs `alp serve` registers (`cmd::serve::router`).
//!
//! Conventions every command follows: stdout carries only the result (JSON
//! with `--json`), diagnostics go to stderr through `tracing`, exit codes are
//! those of [`error`], and a closed stdout ends the program quietly.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod ask;
mod cli;
mod cmd;
mod ctx;
mod error;
mod logging;
mod peer_tools;
mod store;
mod wg;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let ctx = match ctx::Ctx::new(&cli.global) {
        Ok(ctx) => ctx,
        Err(e) => return report(e),
    };
    let service = matches!(cli.command, cli::Command::Serve { .. });
    logging::init(&cli.global, &ctx, service);
    match cmd::run(&ctx, cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => report(e),
    }
}

fn report(e: error::CliError) -> ExitCode {
    if error::is_broken_pipe(&e.error) {
        return ExitCode::SUCCESS;
    }
    // Every message embeds its cause, so the chain would repeat it.
    eprintln!("alp: error: {}", e.error);
    ExitCode::from(e.code)
}
