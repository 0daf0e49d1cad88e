//! Diagnostics on stderr. Level: `-v`/`-q` if given, else `RUST_LOG`, else
//! the profile's `log.level` if set, else warn (info, with timestamps, for
//! the long-running `alp serve`). Colour only on a terminal and never with
//! `NO_COLOR`.

use std::io::IsTerminal;

use alp_profiles::config::{self, Layers, LogLevel, Source};
use tracing_subscriber::EnvFilter;

use crate::cli::Global;
use crate::ctx::{Ctx, alp_env};

/// Installs the subscriber; `service` marks a long-running command.
pub(crate) fn init(g: &Global, ctx: &Ctx, service: bool) {
    let filter = match (g.verbose, g.quiet) {
        (0, 0) => match std::env::var("RUST_LOG") {
            Ok(spec) if !spec.is_empty() => EnvFilter::new(spec),
            _ => EnvFilter::new(level_name(configured_level(ctx, service))),
        },
        // The MCP SDK's own chatter one level down.
        (v, 0) => EnvFilter::new(["info,rmcp=warn", "debug,rmcp=info", "trace"][usize::from(v.min(3)) - 1]),
        (_, 1) => EnvFilter::new("error"),
        _ => EnvFilter::new("off"),
    };
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let fmt = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_target(false);
    if service { fmt.init() } else { fmt.without_time().init() }
}

/// The profile's `log.level`; a broken config is reported by the command
/// itself, so here it only falls back to the default.
fn configured_level(ctx: &Ctx, service: bool) -> LogLevel {
    let file = ctx.home.profile(&ctx.profile).config();
    let layers = Layers { file: Some(&file), env: alp_env(), cli: ctx.cli_overrides() };
    let fallback = if service { LogLevel::Info } else { LogLevel::Warn };
    let Ok(resolved) = config::load(&layers) else {
        return fallback;
    };
    let chosen = resolved.entries.iter().any(|e| e.key == "log.level" && e.source != Source::Default);
    if chosen { resolved.config.log.level } else { fallback }
}

fn level_name(l: LogLevel) -> &'static str {
    match l {
        LogLevel::Off => "off",
        LogLevel::Error => "error",
        LogLevel::Warn => "warn",
        LogLevel::Info => "info",
        LogLevel::Debug => "debug",
        LogLevel::Trace => "trace",
    }
}
