//! `alp config show`.

use alp_profiles::config::Entry;
use serde::Serialize;

use crate::cli::ConfigCmd;
use crate::ctx::Ctx;
use crate::error::CliResult;

#[derive(Serialize)]
struct EntryOut<'a> {
    key: &'a str,
    value: &'a toml::Value,
    source: String,
}

pub(crate) fn run(ctx: &Ctx, cmd: ConfigCmd) -> CliResult {
    match cmd {
        ConfigCmd::Show => show(ctx),
    }
}

fn show(ctx: &Ctx) -> CliResult {
    let profile = ctx.open()?;
    let resolved = ctx.config(&profile)?;
    if ctx.json {
        let out: Vec<EntryOut<'_>> = resolved.entries.iter().map(entry_out).collect();
        return ctx.print_json(&out);
    }
    let lines: Vec<(String, String)> =
        resolved.entries.iter().map(|e| (format!("{} = {}", e.key, e.value), e.source.to_string())).collect();
    let width = lines.iter().map(|(l, _)| l.len()).max().unwrap_or(0);
    let text: Vec<String> = lines.iter().map(|(l, s)| format!("{l:width$}  # {s}")).collect();
    ctx.print(&text.join("\n"))
}

fn entry_out(e: &Entry) -> EntryOut<'_> {
    EntryOut { key: e.key, value: &e.value, source: e.source.to_string() }
}
