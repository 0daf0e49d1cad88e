//! `alp config show` and `alp config set`.

use crate::say::status;
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
        ConfigCmd::Set { key, value } => set(ctx, &key, &value),
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

/// Writes `key = value` into the profile's config.toml, after checking it
/// as `--set` would (an unknown key, or a value of the wrong kind, is
/// refused before the file is touched); other lines and comments stay.
fn set(ctx: &Ctx, key: &str, value: &str) -> CliResult {
    let profile = ctx.open()?;
    // Typed and checked as `--set` would: text for a text key, else TOML.
    let assignment = format!("{key}={value}");
    let check = alp_profiles::config::Override { flag: format!("alp config set {key}"), assignment };
    let resolved = ctx.config_with(&profile, vec![check])?;
    let typed = resolved.entries.iter().find(|e| e.key == key).map(|e| e.value.to_string()).unwrap_or_default();
    let parsed: toml_edit::Value = typed.parse().unwrap_or_else(|_| toml_edit::Value::from(value.to_owned()));
    let path = profile.paths().config();
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let mut doc: toml_edit::DocumentMut = text
        .parse()
        .map_err(|e| crate::error::usage(format!("{} is not valid TOML ({e}): fix it first", path.display())))?;
    let mut parts: Vec<&str> = key.split('.').collect();
    let last = parts.pop().unwrap_or(key);
    let mut table = doc.as_table_mut();
    for part in parts {
        let entry = table.entry(part).or_insert_with(|| toml_edit::Item::Table(toml_edit::Table::new()));
        table = entry.as_table_mut().ok_or_else(|| {
            crate::error::usage(format!("`{part}` in {} is not a table: fix the file first", path.display()))
        })?;
    }
    table[last] = toml_edit::value(parsed.clone());
    alp_profiles::write_atomic(&path, doc.to_string().as_bytes(), 0o600)?;
    status!("{key} = {} in {}", parsed.to_string().trim(), path.display());
    Ok(())
}
