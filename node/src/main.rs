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
mod bar;
mod cli;
mod cmd;
mod ctx;
mod discovery;
mod error;
mod logging;
mod mcp_server;
mod netwatch;
mod peer_tools;
mod rendezvous;
mod say;
mod service;
mod store;
mod wg;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if e.use_stderr() && std::env::args_os().any(|a| a == "--json") => {
            // Under --json, even a usage error is JSON on stderr.
            let text = e.render().to_string();
            let message = text.lines().next().unwrap_or_default().trim_start_matches("error: ").to_owned();
            error::print_json_error(
                e.exit_code() as u8,
                &message,
                text.lines().skip(1).collect::<Vec<_>>().join("\n").trim().to_owned(),
            );
            return ExitCode::from(e.exit_code() as u8);
        }
        // Under -qq, even a usage error is only its exit code.
        Err(e) if e.use_stderr() && quiet_flags() >= 2 => return ExitCode::from(e.exit_code() as u8),
        Err(e) => e.exit(),
    };
    let json = cli.global.json;
    say::set_quiet(cli.global.quiet);
    let ctx = match ctx::Ctx::new(&cli.global) {
        Ok(ctx) => ctx,
        Err(e) => return report(e, json),
    };
    let service = matches!(cli.command, cli::Command::Serve { .. });
    logging::init(&cli.global, &ctx, service);
    match cmd::run(&ctx, cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => report(e, json),
    }
}

/// How many times -q was given, read from the raw arguments (for when
/// they do not parse).
fn quiet_flags() -> usize {
    std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .take_while(|a| a != "--")
        .map(|a| match a.as_str() {
            "--quiet" => 1,
            short if short.starts_with('-') && !short.starts_with("--") && short[1..].chars().all(|c| c == 'q') => {
                short.len() - 1
            }
            _ => 0,
        })
        .sum()
}

fn report(e: error::CliError, json: bool) -> ExitCode {
    if error::is_broken_pipe(&e.error) {
        return ExitCode::SUCCESS;
    }
    if say::quiet() >= 2 {
        return ExitCode::from(e.code);
    }
    // Every message embeds its cause, so the chain would repeat it.
    let text = e.error.to_string();
    if json {
        // The first line says what failed; what follows, what to do.
        let (message, hint) = text.split_once('\n').unwrap_or((&text, ""));
        error::print_json_error(e.code, message, hint.trim().to_owned());
    } else {
        eprintln!("alp: error: {text}");
    }
    ExitCode::from(e.code)
}
